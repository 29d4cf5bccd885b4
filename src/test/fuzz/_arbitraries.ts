// Generators of valid structures for the fuzz tests (page runs, snapshot states), shared by the
// property tests of several decoders.

import fc from 'fast-check';
import { CHUNK_BYTES, PAGE_BYTES, type PageRun, type SnapshotMeta, type SnapshotState } from '../../core/snapshot-format.js';

/** Sorted, disjoint runs inside `pages` pages. */
export function runsArb(pages: number): fc.Arbitrary<PageRun[]> {
  return fc.uniqueArray(fc.nat(Math.max(0, pages - 1)), { maxLength: Math.min(pages, 64) }).map((ps) => {
    const runs: PageRun[] = [];
    for (const p of [...ps].sort((a, b) => a - b)) {
      const last = runs[runs.length - 1];
      if (last && last.firstPage + last.pageCount === p) runs[runs.length - 1] = { firstPage: last.firstPage, pageCount: last.pageCount + 1 };
      else runs.push({ firstPage: p, pageCount: 1 });
    }
    return pages === 0 ? [] : runs;
  });
}

const metaArb = (memoryBytes: number): fc.Arbitrary<SnapshotMeta> => fc.record({
  id: fc.string({ minLength: 1, maxLength: 24 }),
  kind: fc.constantFrom('full' as const, 'diff' as const),
  baseId: fc.option(fc.string({ minLength: 1, maxLength: 24 }), { nil: null }),
  functionName: fc.string({ maxLength: 16 }),
  runtime: fc.constantFrom('wasi', 'python'),
  moduleDigest: fc.string({ maxLength: 64 }),
  memoryBytes: fc.constant(memoryBytes),
  guestState: fc.jsonValue({ maxDepth: 2 }),
  createdAt: fc.string({ maxLength: 24 }),
  sourceSandboxId: fc.string({ maxLength: 16 }),
}).map((m) => (m.kind === 'diff' && m.baseId === null ? { ...m, baseId: 'base' } : m.kind === 'full' ? { ...m, baseId: null } : m));

/** A valid state: up to 4 chunks of memory (so the chunk table has several entries). */
export const stateArb: fc.Arbitrary<SnapshotState> = fc.integer({ min: 0, max: 4 * (CHUNK_BYTES / PAGE_BYTES) }).chain((pages) =>
  fc.record({
    meta: metaArb(pages * PAGE_BYTES),
    runs: runsArb(pages),
    chunkCrcs: fc.array(fc.nat({ max: 0xffff_ffff }), {
      minLength: Math.ceil((pages * PAGE_BYTES) / CHUNK_BYTES), maxLength: Math.ceil((pages * PAGE_BYTES) / CHUNK_BYTES),
    }).map((a) => Uint32Array.from(a)),
    pageCrcs: fc.array(fc.nat({ max: 0xffff_ffff }), { minLength: pages, maxLength: pages }).map((a) => Uint32Array.from(a)),
  }));
