// Guest-memory mechanics every strategy shares: growing a live Wasm memory to the snapshot's
// size, clearing what lies beyond it, measuring a fill (time, page faults) and checking what a
// fill put there against the snapshot's chunk checksums.

import { performance } from 'node:perf_hooks';
import { crc32 } from 'node:zlib';
import { ThawError } from '../core/errors.js';
import { CHUNK_BYTES, PAGE_BYTES, type PageRun, type SnapshotState } from '../core/snapshot-format.js';
import { madviseDontneed, pageFaultCounts } from '../native/index.js';
import type { RestoreStats } from './strategy.js';

const dirtySpans = new WeakMap<WebAssembly.Memory, Float64Array>();

/** Size of a WebAssembly page in bytes. */
export const WASM_PAGE_BYTES = 65536;

/**
 * Grows `memory` to at least `byteLength` bytes (a multiple of 64 KiB) and returns its buffer
 * (the one valid after growing). Throws THAW_GUEST_OOM when the module's maximum forbids it.
 */
export function growTo(memory: WebAssembly.Memory, byteLength: number, functionName: string): ArrayBuffer {
  dirtySpans.delete(memory); // a fill is about to write: a record of its non-zero pages no longer holds
  const have = memory.buffer.byteLength;
  if (have < byteLength) {
    try {
      memory.grow((byteLength - have) / WASM_PAGE_BYTES);
    } catch (err: unknown) {
      throw new ThawError('THAW_GUEST_OOM', { name: functionName, limitMiB: Math.round(have / 2 ** 20), detail: `cannot grow memory to the snapshot's ${byteLength} bytes` }, { cause: err });
    }
  }
  return memory.buffer;
}

/**
 * Makes bytes [byteLength, end) of `buffer` zero again (a memory already larger than the
 * snapshot, e.g. a pre-grown Pyodide shell). V8's Wasm memory is anonymous, so MADV_DONTNEED
 * gives zero pages back without touching them.
 */
export function clearBeyond(buffer: ArrayBuffer, byteLength: number): void {
  if (buffer.byteLength > byteLength) madviseDontneed(buffer, byteLength, buffer.byteLength - byteLength);
}

/**
 * Records which pages of `memory` are not zero (`spans`: [offset, length] pairs, ascending), for
 * the next fill to look only at those (a Pyodide shell measures its memory while it waits). Valid
 * only until something writes into the memory: whoever writes first calls forgetDirtySpans.
 */
export function markDirtySpans(memory: WebAssembly.Memory, spans: Float64Array): void {
  dirtySpans.set(memory, spans);
}

/** Forgets markDirtySpans's record (the memory is about to be written). */
export function forgetDirtySpans(memory: WebAssembly.Memory): void {
  dirtySpans.delete(memory);
}

/** The non-zero pages recorded for `memory` (null when nothing is known), and forgets them. */
export function takeDirtySpans(memory: WebAssembly.Memory): Float64Array | null {
  const spans = dirtySpans.get(memory) ?? null;
  dirtySpans.delete(memory);
  return spans;
}

/** The parts of `spans` (ascending [offset, length] pairs) inside the ascending byte spans `within`. */
export function intersectSpans(spans: Float64Array, within: readonly ByteSpan[]): Float64Array {
  const out: number[] = [];
  let j = 0;
  for (let i = 0; i < spans.length; i += 2) {
    const lo = spans[i]!;
    const hi = lo + spans[i + 1]!;
    while (j < within.length && within[j]!.offsetBytes + within[j]!.lengthBytes <= lo) j++;
    for (let k = j; k < within.length && within[k]!.offsetBytes < hi; k++) {
      const a = Math.max(lo, within[k]!.offsetBytes);
      const b = Math.min(hi, within[k]!.offsetBytes + within[k]!.lengthBytes);
      if (a < b) out.push(a, b - a);
    }
  }
  return new Float64Array(out);
}

/** Runs `fill`, adding its time and the process's page faults during it to `stats`. */
export function measured<T>(stats: RestoreStats, fill: () => T): T {
  const faults0 = pageFaultCounts();
  const t0 = performance.now();
  try {
    return fill();
  } finally {
    stats.fillMs += performance.now() - t0;
    const faults1 = pageFaultCounts();
    stats.majorFaults += faults1.major - faults0.major;
    stats.minorFaults += faults1.minor - faults0.minor;
  }
}

/** Guest byte ranges [offsetBytes, offsetBytes + lengthBytes). */
export interface ByteSpan {
  readonly offsetBytes: number;
  readonly lengthBytes: number;
}

const zeroChunkCrc = new Map<number, number>();

function crcOfZeros(length: number): number {
  let c = zeroChunkCrc.get(length);
  if (c === undefined) {
    c = crc32(new Uint8Array(length));
    zeroChunkCrc.set(length, c);
  }
  return c;
}

/**
 * Checks restored guest memory against the snapshot's chunk checksums, reading the bytes the
 * guest will see. `zeroSpans`: ranges this restore itself made fresh anonymous memory and wrote
 * nothing into, so they read as zero without reading them (a chunk wholly inside one is checked
 * against the checksum of zeros: that still catches page runs that left data out). `only`: check
 * just the chunks wholly inside these ranges (the rest is someone else's to check). Throws
 * THAW_SNAPSHOT_CORRUPT naming the first bad chunk.
 */
export function verifyRestored(state: SnapshotState, buffer: ArrayBuffer, options: { zeroSpans?: readonly ByteSpan[]; only?: readonly ByteSpan[] } = {}): void {
  const memoryBytes = state.meta.memoryBytes;
  const inside = (spans: readonly ByteSpan[], lo: number, hi: number): boolean =>
    spans.some((s) => s.offsetBytes <= lo && hi <= s.offsetBytes + s.lengthBytes);
  for (let c = 0; c * CHUNK_BYTES < memoryBytes; c++) {
    const lo = c * CHUNK_BYTES;
    const hi = Math.min(memoryBytes, lo + CHUNK_BYTES);
    if (options.only && !inside(options.only, lo, hi)) continue;
    const actual = options.zeroSpans && inside(options.zeroSpans, lo, hi) ? crcOfZeros(hi - lo) : crc32(new Uint8Array(buffer, lo, hi - lo));
    if (actual !== state.chunkCrcs[c]) {
      throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id: state.meta.id, detail: `restored memory fails the checksum of chunk ${c} (bytes ${lo}..${hi})` });
    }
  }
}

/** The spans of [0, memoryBytes) not covered by `runs` (sorted, disjoint page runs). */
export function holeSpans(runs: readonly PageRun[], memoryBytes: number): ByteSpan[] {
  const out: ByteSpan[] = [];
  let at = 0;
  for (const r of runs) {
    const lo = r.firstPage * PAGE_BYTES;
    if (lo > at) out.push({ offsetBytes: at, lengthBytes: lo - at });
    at = lo + r.pageCount * PAGE_BYTES;
  }
  if (memoryBytes > at) out.push({ offsetBytes: at, lengthBytes: memoryBytes - at });
  return out;
}
