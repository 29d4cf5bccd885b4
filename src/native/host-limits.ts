// Measures this host's memory limits that decide restore strategies: memcpy into touched memory,
// fresh page touch, bulk UFFDIO_COPY in 64 KiB chunks and lz4/zstd decode. Imported by
// limits.bench.ts (prints them) and by the restore benchmark (ratios against them).

import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  compress, copyInto, decompressInto, hostPageSizeBytes, madviseDontneed, touchPages, uffdAvailability, uffdCreate,
  type Codec,
} from './index.js';

const MiB = 1024 * 1024;

/** Median of `xs` (upper median for even counts); NaN when empty. */
function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

/** GB/s (1e9 bytes per second) of `bytes` moved in `ns`. */
function gbps(bytes: number, ns: number): number {
  return bytes / ns;
}

function timeNs(work: () => void): number {
  const t0 = process.hrtime.bigint();
  work();
  return Number(process.hrtime.bigint() - t0);
}

/**
 * A heap-like image of `bytes` (a page multiple): per page, 45% zero, 25% text (JS sources
 * from node_modules), 15% pointer-like u32 sequences, 15% random. Deterministic.
 */
export function heapLikeImage(bytes: number): Uint8Array {
  const page = hostPageSizeBytes();
  const text = collectText(4 * MiB, page);
  const out = new Uint8Array(bytes);
  let x = 0x12345678;
  const rand = (): number => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
  for (let at = 0; at < bytes; at += page) {
    const kind = rand() % 100;
    if (kind < 45) continue;
    if (kind < 70) {
      const from = rand() % (text.length - page);
      out.set(text.subarray(from, from + page), at);
    } else if (kind < 85) {
      const words = new Uint32Array(out.buffer, at, page / 4);
      const base = rand() & 0xfffff0;
      for (let i = 0; i < words.length; i++) words[i] = i % 4 === 3 ? 0 : base + (rand() % 64) * 16;
    } else {
      const words = new Uint32Array(out.buffer, at, page / 4);
      for (let i = 0; i < words.length; i++) words[i] = rand();
    }
  }
  return out;
}

function collectText(bytes: number, page: number): Uint8Array {
  const parts: Buffer[] = [];
  let total = 0;
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (total >= bytes) return;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.js') && statSync(path).size < MiB) { const b = readFileSync(path); parts.push(b); total += b.length; }
    }
  };
  if (existsSync('node_modules')) walk('node_modules');
  const text = new Uint8Array(Buffer.concat(parts)).subarray(0, total);
  return text.length >= 2 * page ? text : new Uint8Array(2 * page).fill(0x61);
}

/** GB/s of memcpy of `sizeBytes` into a Wasm memory whose pages are already touched; median of `runs`. */
export function memcpyTouchedGbps(sizeBytes: number, runs: number): number {
  const memory = new WebAssembly.Memory({ initial: sizeBytes / 65536 });
  const source = new Uint8Array(sizeBytes).fill(7);
  touchPages(memory.buffer, 0, sizeBytes);
  return median(Array.from({ length: runs }, () => gbps(sizeBytes, timeNs(() => copyInto(memory.buffer, 0, source)))));
}

/** GB/s of a first write to each page of `sizeBytes` of fresh (never touched) Wasm memory; median of `runs`. */
export function freshTouchGbps(sizeBytes: number, runs: number): number {
  const memory = new WebAssembly.Memory({ initial: sizeBytes / 65536 });
  return median(Array.from({ length: runs }, () => {
    madviseDontneed(memory.buffer, 0, sizeBytes);
    return gbps(sizeBytes, timeNs(() => touchPages(memory.buffer, 0, sizeBytes)));
  }));
}

/**
 * GB/s of installing `sizeBytes` with UFFDIO_COPY in 64 KiB chunks (a prefetch of one run) from a
 * tmpfs file, read through `read`; median of `runs`. A string (the reason) where userfaultfd is refused.
 */
export function uffdBulkCopyGbps(sizeBytes: number, runs: number, read: 'mmap' | 'pread'): number | string {
  const availability = uffdAvailability();
  if (!availability.available) return `unavailable: ${availability.reason}`;
  const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'thaw-bench-'));
  const path = join(dir, 'image.bin');
  writeFileSync(path, new Uint8Array(sizeBytes).fill(3));
  try {
    // One memory for all runs: each uffdCreate maps fresh anonymous pages over the last run's.
    const memory = new WebAssembly.Memory({ initial: sizeBytes / 65536 });
    return median(Array.from({ length: runs }, () => {
      const fd = openSync(path, 'r');
      const server = uffdCreate(memory.buffer, 0, sizeBytes, { fd, read },
        { prefetch: [{ offsetBytes: 0, lengthBytes: sizeBytes }], chunkBytes: 64 * 1024 });
      closeSync(fd);
      server.waitPrefetch();
      const stats = server.stop();
      return gbps(sizeBytes, stats.prefetchNs);
    }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Decode GB/s (into touched memory) and compression ratio of `image` with `codec` at `level`; median of `runs`. */
export function decodeGbps(codec: Codec, image: Uint8Array, level: number, runs: number): { gbps: number; ratio: number } {
  const packed = compress(codec, image, level);
  const memory = new WebAssembly.Memory({ initial: image.length / 65536 });
  touchPages(memory.buffer, 0, image.length);
  const rate = median(Array.from({ length: runs }, () =>
    gbps(image.length, timeNs(() => decompressInto(codec, packed, memory.buffer, 0, image.length)))));
  return { gbps: rate, ratio: image.length / packed.length };
}
