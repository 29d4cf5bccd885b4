// Guest-memory mechanics every strategy shares: growing a live Wasm memory to the snapshot's
// size, clearing what lies beyond it, and measuring a fill (time, page faults).

import { performance } from 'node:perf_hooks';
import { ThawError } from '../core/errors.js';
import { madviseDontneed, pageFaultCounts } from '../native/index.js';
import type { RestoreStats } from './strategy.js';

/** Size of a WebAssembly page in bytes. */
export const WASM_PAGE_BYTES = 65536;

/**
 * Grows `memory` to at least `byteLength` bytes (a multiple of 64 KiB) and returns its buffer
 * (the one valid after growing). Throws THAW_GUEST_OOM when the module's maximum forbids it.
 */
export function growTo(memory: WebAssembly.Memory, byteLength: number, functionName: string): ArrayBuffer {
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
