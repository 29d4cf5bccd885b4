// A sandbox's memory as the API, the CLI, the harness and traces report it (SandboxMemory).

import { residentBytes } from '../native/index.js';
import type { SandboxMemory } from './types.js';

/**
 * Measures a guest's memory now: resident bytes by mincore(2) over its whole linear memory (for
 * WASI and for Python alike: Pyodide's heap is one WebAssembly.Memory), beside what it declared
 * and what its scaling mechanism grants it.
 */
export function measureSandboxMemory(memory: WebAssembly.Memory, declaredBytes: number, grantedBytes: number, offloadedBytes = 0): SandboxMemory {
  const length = memory.buffer.byteLength;
  return { declaredBytes, grantedBytes, residentBytes: length === 0 ? 0 : residentBytes(memory.buffer, 0, length), offloadedBytes };
}

/** A sandbox's memory before any is measured (its declared size granted, nothing resident). */
export function declaredOnly(declaredBytes: number): SandboxMemory {
  return { declaredBytes, grantedBytes: declaredBytes, residentBytes: 0, offloadedBytes: 0 };
}

/** Bytes as MiB with one decimal (CLI tables). */
export function mib(bytes: number): string {
  return (bytes / 2 ** 20).toFixed(1);
}

/** One line: declared, granted, resident and offloaded memory in MiB. */
export function formatMemory(m: SandboxMemory): string {
  return `declared=${mib(m.declaredBytes)}MiB granted=${mib(m.grantedBytes)}MiB resident=${mib(m.residentBytes)}MiB offloaded=${mib(m.offloadedBytes)}MiB`;
}
