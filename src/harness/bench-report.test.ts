import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BenchRun } from './bench-run.js';
import { summarize, summaryRows } from './bench-report.js';

test('a cell whose prepare step failed is a summary line saying so, not a missing row', () => {
  const row = { function: 'hello-c', setting: 'warm', strategy: 'warm', parallelism: 1, parSnapshots: 1, ok: true, totalMs: 2, restoreMs: 0, handlerMs: 1, scaling: 'none', declaredBytes: null, residentBytes: null };
  const run = {
    rows: [row, { ...row, totalMs: 4 }],
    settings: [{ id: 'warm', strategy: 'warm', scaling: 'none' }, { id: 'faascale', strategy: 'eager', scaling: 'faascale' }],
    prepare: [
      { function: 'hello-c', setting: 'warm', recordInput: 0, step: 'boot', snapshotId: '', ms: 1, detail: 'sandbox sb-1' },
      { function: 'image', setting: 'faascale', recordInput: 0, step: 'boot', snapshotId: '', ms: 0, detail: 'failed: THAW_INIT_TIMEOUT: init took longer than 60000 ms' },
      { function: 'image', setting: 'faascale', recordInput: 1, step: 'boot', snapshotId: '', ms: 0, detail: 'failed: THAW_INIT_TIMEOUT: again' },
    ],
  } as unknown as BenchRun;
  const lines = summarize(run);
  assert.deepEqual(lines.map((l) => [l.function, l.setting, l.n, l.prepareFailed]), [
    ['hello-c', 'warm', 2, undefined],
    ['image', 'faascale', 0, 'THAW_INIT_TIMEOUT: init took longer than 60000 ms'],
  ]);
  assert.equal(lines[0]!.medianMs, 3);
  const rows = summaryRows(lines);
  assert.equal(rows[1]!.n, 'not run: THAW_INIT_TIMEOUT: init took longer than 60000 ms');
  assert.equal(rows[1]!['median ms'], '-');
  assert.equal(rows[1]!['declared MiB'], '-', 'memory columns, since a setting scales memory');
});
