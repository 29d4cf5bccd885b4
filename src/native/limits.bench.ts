// Prints this host's memory limits that decide restore strategies (not a test): memcpy into
// touched memory, fresh page touch, bulk UFFDIO_COPY in 64 KiB chunks, lz4/zstd decode.
// Each figure is the median of 5 runs. Run: node dist/native/limits.bench.js [sizeMiB]

import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  compress, copyInto, decompressInto, hostPageSizeBytes, madviseDontneed, touchPages, uffdAvailability, uffdCreate,
  type Codec,
} from './index.js';

const RUNS = 5;
const MiB = 1024 * 1024;
const sizeBytes = Number(process.argv[2] ?? 256) * MiB;
const PAGE = hostPageSizeBytes();

function median(xs: number[]): number {
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
 * A heap-like image: per page, 45% zero, 25% text (JS sources from node_modules), 15% pointer-like
 * u32 sequences, 15% random. Deterministic.
 */
function heapLikeImage(bytes: number): Uint8Array {
  const text = collectText(4 * MiB);
  const out = new Uint8Array(bytes);
  let x = 0x12345678;
  const rand = (): number => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
  for (let at = 0; at < bytes; at += PAGE) {
    const kind = rand() % 100;
    if (kind < 45) continue;
    if (kind < 70) {
      const from = rand() % (text.length - PAGE);
      out.set(text.subarray(from, from + PAGE), at);
    } else if (kind < 85) {
      const words = new Uint32Array(out.buffer, at, PAGE / 4);
      const base = rand() & 0xfffff0;
      for (let i = 0; i < words.length; i++) words[i] = i % 4 === 3 ? 0 : base + (rand() % 64) * 16;
    } else {
      const words = new Uint32Array(out.buffer, at, PAGE / 4);
      for (let i = 0; i < words.length; i++) words[i] = rand();
    }
  }
  return out;
}

function collectText(bytes: number): Uint8Array {
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
  walk('node_modules');
  return new Uint8Array(Buffer.concat(parts)).subarray(0, Math.max(total, 2 * PAGE));
}

function memcpyTouched(): number {
  const memory = new WebAssembly.Memory({ initial: sizeBytes / 65536 });
  const source = new Uint8Array(sizeBytes).fill(7);
  touchPages(memory.buffer, 0, sizeBytes);
  return median(Array.from({ length: RUNS }, () => gbps(sizeBytes, timeNs(() => copyInto(memory.buffer, 0, source)))));
}

function freshTouch(): number {
  const memory = new WebAssembly.Memory({ initial: sizeBytes / 65536 });
  return median(Array.from({ length: RUNS }, () => {
    madviseDontneed(memory.buffer, 0, sizeBytes);
    return gbps(sizeBytes, timeNs(() => touchPages(memory.buffer, 0, sizeBytes)));
  }));
}

/** Installs the whole image with UFFDIO_COPY in 64 KiB chunks (prefetch), from a tmpfs file. */
function uffdBulkCopy(read: 'mmap' | 'pread'): number | string {
  const availability = uffdAvailability();
  if (!availability.available) return `unavailable: ${availability.reason}`;
  const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'thaw-bench-'));
  const path = join(dir, 'image.bin');
  writeFileSync(path, new Uint8Array(sizeBytes).fill(3));
  try {
    // One memory for all runs: each uffdCreate maps fresh anonymous pages over the last run's.
    const memory = new WebAssembly.Memory({ initial: sizeBytes / 65536 });
    return median(Array.from({ length: RUNS }, () => {
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

function decode(codec: Codec, image: Uint8Array, level: number): { gbps: number; ratio: number } {
  const packed = compress(codec, image, level);
  const memory = new WebAssembly.Memory({ initial: image.length / 65536 });
  touchPages(memory.buffer, 0, image.length);
  const rate = median(Array.from({ length: RUNS }, () =>
    gbps(image.length, timeNs(() => decompressInto(codec, packed, memory.buffer, 0, image.length)))));
  return { gbps: rate, ratio: image.length / packed.length };
}

const fmt = (v: number | string): string => (typeof v === 'number' ? `${v.toFixed(2)} GB/s` : v);
const image = heapLikeImage(Math.min(sizeBytes, 64 * MiB));
const lz4 = decode('lz4', image, 1);
const zstd = decode('zstd', image, 1);
const rows: [string, number | string][] = [
  [`memcpy into touched memory (${sizeBytes / MiB} MiB)`, memcpyTouched()],
  [`fresh page touch (${sizeBytes / MiB} MiB, ${PAGE} B pages)`, freshTouch()],
  ['bulk UFFDIO_COPY, 64 KiB chunks, from mmap of tmpfs file', uffdBulkCopy('mmap')],
  ['bulk UFFDIO_COPY, 64 KiB chunks, through pread buffer', uffdBulkCopy('pread')],
  [`lz4 decode (heap-like ${image.length / MiB} MiB, ratio ${lz4.ratio.toFixed(2)})`, lz4.gbps],
  [`zstd-1 decode (heap-like ${image.length / MiB} MiB, ratio ${zstd.ratio.toFixed(2)})`, zstd.gbps],
];
console.log(`host limits, median of ${RUNS} runs (GB/s = 1e9 bytes/s)`);
for (const [name, value] of rows) console.log(`  ${name.padEnd(64)} ${fmt(value)}`);
