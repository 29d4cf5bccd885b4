// How each runtime's guest reports the memory its allocator holds free.

import { ThawError } from '../../core/errors.js';
import { hostPageSizeBytes } from '../../native/index.js';
import type { ByteRange, FreeRangeReport } from './scaling.js';

/** The WASI export (docs/abi.md "Memory scaling"): `thaw_free_ranges() -> i32`, a pointer to [count, (offset, length) x count] as u32 little endian. */
export const FREE_RANGES_EXPORT = 'thaw_free_ranges';
/** Most ranges one report may hold (Faascale's virtio messages carry at most 128 too). */
export const MAX_FREE_RANGES = 128;

/** Rounds each byte range inward to whole host pages, dropping what holds none. */
export function pagesInside(ranges: readonly ByteRange[], pageBytes = hostPageSizeBytes()): ByteRange[] {
  const out: ByteRange[] = [];
  for (const r of ranges) {
    const start = Math.ceil(r.offset / pageBytes) * pageBytes;
    const end = Math.floor((r.offset + r.length) / pageBytes) * pageBytes;
    if (end > start) out.push({ offset: start, length: end - start });
  }
  return out;
}

/**
 * Calls a WASI guest's `thaw_free_ranges` export and reads its list. Returns null when the
 * module has no such export. A list pointer or count out of bounds is THAW_GUEST_ERROR.
 */
export function wasiFreeRanges(name: string, exports: WebAssembly.Exports, memory: WebAssembly.Memory): FreeRangeReport | null {
  const fn = exports[FREE_RANGES_EXPORT];
  if (typeof fn !== 'function') return null;
  const bad = (detail: string): never => {
    throw new ThawError('THAW_GUEST_ERROR', { name, detail: `${FREE_RANGES_EXPORT}: ${detail}; nothing was released` });
  };
  let ptr: number;
  try {
    ptr = Number((fn as () => number)()) >>> 0;
  } catch (err: unknown) {
    return bad(`trapped (${err instanceof Error ? err.message : String(err)})`);
  }
  const view = new DataView(memory.buffer);
  if (ptr + 4 > view.byteLength) bad(`list pointer ${ptr} is outside linear memory`);
  const count = view.getUint32(ptr, true);
  if (count > MAX_FREE_RANGES) bad(`reported ${count} ranges (at most ${MAX_FREE_RANGES})`);
  if (ptr + 4 + count * 8 > view.byteLength) bad('the list runs past the end of linear memory');
  const raw: ByteRange[] = [];
  for (let i = 0; i < count; i++) raw.push({ offset: view.getUint32(ptr + 4 + i * 8, true), length: view.getUint32(ptr + 8 + i * 8, true) });
  // The list itself is live guest data: a range covering it is a bad report.
  for (const r of raw) if (r.offset < ptr + 4 + count * 8 && ptr < r.offset + r.length) bad(`range [${r.offset}, +${r.length}) covers the list itself`);
  return { ranges: pagesInside(raw), source: FREE_RANGES_EXPORT };
}

/** The parts of Pyodide's Emscripten module (its dlmalloc) that the Python report uses. */
export interface DlmallocModule {
  readonly _malloc?: (n: number) => number;
  readonly _free?: (p: number) => void;
  readonly _mallinfo?: (out: number) => void;
  readonly _malloc_trim?: (pad: number) => number;
  readonly _sbrk?: (n: number) => number;
}

/** Bytes kept either side of the top chunk's body: its header, and the segment footer dlmalloc keeps after it (TOP_FOOT_SIZE <= 64 on wasm32). */
const DLMALLOC_MARGIN_BYTES = 64;

/**
 * What Pyodide's allocator (Emscripten's dlmalloc) can report free: `malloc_trim(0)` first moves
 * the break down past a free top chunk where it can, then the top chunk left (mallinfo's
 * `keepcost`: its size; it ends just below the break) and everything from the break to the end
 * of linear memory. Free chunks inside the heap and pymalloc's free pools inside live arenas are
 * not reachable from outside, so they stay resident.
 */
export function dlmallocFreeRanges(mod: DlmallocModule, memory: WebAssembly.Memory): FreeRangeReport | null {
  const { _malloc, _free, _mallinfo, _malloc_trim, _sbrk } = mod;
  if (!_malloc || !_free || !_mallinfo || !_malloc_trim || !_sbrk) return null;
  _malloc_trim(0);
  const info = _malloc(64);
  if (info === 0) return null;
  let keepcost: number;
  try {
    _mallinfo(info);
    keepcost = new DataView(memory.buffer).getUint32(info + 36, true); // struct mallinfo: ten 4-byte fields, keepcost last
  } finally {
    _free(info);
  }
  const brk = _sbrk(0) >>> 0;
  const end = memory.buffer.byteLength;
  const ranges: ByteRange[] = [];
  if (keepcost > 2 * DLMALLOC_MARGIN_BYTES) ranges.push({ offset: brk - keepcost, length: keepcost - DLMALLOC_MARGIN_BYTES });
  if (end > brk) ranges.push({ offset: brk, length: end - brk });
  return { ranges: pagesInside(ranges), source: 'pyodide dlmalloc (malloc_trim, mallinfo.keepcost, sbrk)' };
}
