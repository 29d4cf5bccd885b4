// Test-only helpers for the native tests: a hand-assembled Wasm probe module over an imported
// memory, temp snapshot files and counts of this process's threads and fds.

import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * (module (import "env" "mem" (memory 1))
 *   (func (export "load") (param i32) (result i32) local.get 0 i32.load)
 *   (func (export "grow") (param i32) (result i32) local.get 0 memory.grow))
 */
const PROBE_WASM = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x06, 0x01, 0x60, 0x01, 0x7f, 0x01, 0x7f, // type 0: (i32) -> i32
  0x02, 0x0c, 0x01, 0x03, 0x65, 0x6e, 0x76, 0x03, 0x6d, 0x65, 0x6d, 0x02, 0x00, 0x01, // import env.mem, min 1
  0x03, 0x03, 0x02, 0x00, 0x00, // two functions of type 0
  0x07, 0x0f, 0x02, 0x04, 0x6c, 0x6f, 0x61, 0x64, 0x00, 0x00, 0x04, 0x67, 0x72, 0x6f, 0x77, 0x00, 0x01,
  0x0a, 0x10, 0x02,
  0x07, 0x00, 0x20, 0x00, 0x28, 0x02, 0x00, 0x0b, // load: local.get 0; i32.load align=4; end
  0x06, 0x00, 0x20, 0x00, 0x40, 0x00, 0x0b, // grow: local.get 0; memory.grow 0; end
]);

/** Guest code reading a memory: load(address) = i32 at address (little endian); grow(pages) = old size or -1. */
export interface Probe {
  load(address: number): number;
  grow(pages: number): number;
}

/** Instantiates the probe module over `memory`. */
export function probe(memory: WebAssembly.Memory): Probe {
  const instance = new WebAssembly.Instance(new WebAssembly.Module(PROBE_WASM), { env: { mem: memory } });
  return instance.exports as unknown as Probe;
}

/** Deterministic pseudo-random bytes (xorshift32), never all zero per page. */
export function patternBytes(length: number, seed = 0x9e3779b9): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0;
  for (let i = 0; i < length; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** Writes `bytes` to a fresh temp file; returns its path and a cleanup function. */
export function tempFile(bytes: Uint8Array): { path: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'thaw-native-'));
  const path = join(dir, 'image.bin');
  writeFileSync(path, bytes);
  return { path, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Threads (/proc/self/task) and open fds (/proc/self/fd) of this process. */
export function processCounts(): { threads: number; fds: number } {
  return { threads: readdirSync('/proc/self/task').length, fds: readdirSync('/proc/self/fd').length };
}
