// `faascale` (Faascale, DESIGN.md section 4): memory granted in blocks when an invocation starts,
// pre-populated before the guest runs, and given back when it ends.
//
// On a Wasm guest: the grant is carved from the guest allocator's free ranges (what it will hand
// out next), split into blocks of `blockMiB` (4..512 MiB) and populated one block at a time with
// madvise(MADV_POPULATE_WRITE) (or by moving pre-faulted pool pages under the blocks). Memory the
// guest has not grown yet cannot be populated (V8 keeps it inaccessible until memory.grow): a
// guest's first invocation past its high-water mark faults that part in lazily. The release
// discards every free range the guest reports (discard.ts), so an idle sandbox keeps only what
// its allocator holds.

import { madvisePopulateWrite, poolMoveRuns, poolReserve, hostPageSizeBytes } from '../../native/index.js';
import { discardRange } from './discard.js';
import { checkFreeRanges, grantBytesOf, rangeBytes, type ByteRange, type ScalingGuest, type ScalingMechanism, type ScalingSession, type ScalingSpec } from './scaling.js';
import { since } from './time.js';

export const faascale: ScalingMechanism = {
  id: 'faascale',
  description: 'memory granted in 4-512 MiB blocks per invocation, pre-populated before the guest runs, discarded when it ends',
  session(guest: ScalingGuest, spec: ScalingSpec): ScalingSession {
    const grantBytes = grantBytesOf(guest, spec);
    const blockBytes = spec.blockMiB * 1024 * 1024;
    let granted = guest.declaredBytes;
    if (spec.populate === 'pool') poolReserve(grantBytes);
    return {
      async grant() {
        const t0 = performance.now();
        const report = guest.freeRanges();
        if (report === null) {
          granted = guest.declaredBytes;
          return { grantMs: since(t0), populateMs: 0 };
        }
        const memoryBytes = guest.memory.buffer.byteLength;
        checkFreeRanges(guest.name, report, memoryBytes, hostPageSizeBytes());
        const blocks = carveBlocks(report.ranges, grantBytes, blockBytes);
        granted = Math.min(guest.declaredBytes, memoryBytes - rangeBytes(report.ranges) + grantBytes);
        const grantMs = since(t0);
        const t1 = performance.now();
        populate(guest.memory, blocks, spec);
        return { grantMs, populateMs: since(t1) };
      },
      async release() {
        const t0 = performance.now();
        const report = guest.freeRanges();
        if (report === null) return { releaseMs: since(t0), releasedBytes: 0 };
        const memoryBytes = guest.memory.buffer.byteLength;
        checkFreeRanges(guest.name, report, memoryBytes, hostPageSizeBytes());
        for (const r of report.ranges) discardRange(guest.memory, r, guest.fileBacked);
        const releasedBytes = rangeBytes(report.ranges);
        granted = memoryBytes - releasedBytes;
        // The pool is refilled for the next grant after the invocation's reply has gone (the next
        // event-loop turn), off the invocation's path; a grant that finds it short populates the rest.
        if (spec.populate === 'pool') setImmediate(() => poolReserve(grantBytes));
        return { releaseMs: since(t0), releasedBytes };
      },
      grantedBytes: () => granted,
    };
  },
};

/** The first `grantBytes` of the free ranges (lowest addresses first: where an allocator hands out next), in blocks of at most `blockBytes`. */
export function carveBlocks(ranges: readonly ByteRange[], grantBytes: number, blockBytes: number): ByteRange[] {
  const out: ByteRange[] = [];
  let left = grantBytes;
  for (const r of ranges) {
    for (let off = r.offset; off < r.offset + r.length && left > 0;) {
      const length = Math.min(blockBytes, r.offset + r.length - off, left);
      out.push({ offset: off, length });
      off += length;
      left -= length;
    }
    if (left <= 0) break;
  }
  return out;
}

function populate(memory: WebAssembly.Memory, blocks: readonly ByteRange[], spec: ScalingSpec): void {
  if (spec.populate === 'pool') {
    const moved = poolMoveRuns(memory.buffer, blocks.map((b) => ({ offsetBytes: b.offset, lengthBytes: b.length })));
    // What the pool could not cover is populated the ordinary way.
    for (const b of blocks.slice(moved)) madvisePopulateWrite(memory.buffer, b.offset, b.length);
    return;
  }
  for (const b of blocks) madvisePopulateWrite(memory.buffer, b.offset, b.length);
}
