// Property tests of the working-set file decoder (ws.reap): round-trips, and decodeWorkingSet()
// on mutated files either refuses with THAW_SNAPSHOT_CORRUPT or returns runs reap and thaw can map.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeWorkingSet, encodeWorkingSet, type WorkingSet } from './working-set.js';
import { runsArb } from '../test/fuzz/_arbitraries.js';
import { check, decodes, fixTrailingCrc, mutate, mutationPlanArb } from '../test/fuzz/_fuzz.js';

/** Valid working sets: sorted runs with at least one page between neighbours (as runsFromOffsets makes them). */
const workingSetArb: fc.Arbitrary<WorkingSet> = fc.integer({ min: 1, max: 4096 }).chain((memoryPages) =>
  runsArb(memoryPages).map((runs) => ({ memoryPages, runs })));

/** The decoder's promise to reap and thaw, which map every run into guest memory. */
function assertUsable(ws: WorkingSet, memoryPages: number): void {
  let prevEnd = -1;
  for (const r of ws.runs) {
    assert.ok(Number.isInteger(r.firstPage) && r.pageCount > 0, 'runs are non-empty');
    assert.ok(r.firstPage > prevEnd && r.firstPage + r.pageCount <= memoryPages, 'runs ascending, disjoint, inside memory');
    prevEnd = r.firstPage + r.pageCount;
  }
}

test('decodeWorkingSet() inverts encodeWorkingSet()', () => {
  check('ws-roundtrip', 300, workingSetArb, (ws) => {
    assert.deepEqual(decodeWorkingSet('x', encodeWorkingSet(ws), ws.memoryPages), ws);
  });
});

test('decodeWorkingSet() refuses mutated files with THAW_SNAPSHOT_CORRUPT or returns mappable runs', () => {
  const sets = fc.sample(workingSetArb, { seed: 3, numRuns: 16 });
  const seeds = sets.map(encodeWorkingSet);
  check('ws-mutate', 3000, mutationPlanArb, (plan) => {
    const buf = mutate(seeds, plan.mutations, plan.seed);
    if (plan.fixChecksums) fixTrailingCrc(buf);
    const memoryPages = sets[plan.seed % sets.length]!.memoryPages;
    const r = decodes(['THAW_SNAPSHOT_CORRUPT'], 4096, () => decodeWorkingSet('x', buf, memoryPages));
    if (r.ok) assertUsable(r.value, memoryPages);
  });
});
