// Every restore strategy with the Python runtime: a stdlib-py snapshot (Pyodide heap) restored
// with each strategy gives the warm output, twice (so record-then-replay strategies run both
// phases).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { deployExample, newPlatform, text } from './helpers.js';
import { discardArtefacts, listStrategies } from '../restore/index.js';

const p = newPlatform({ preparedPerFunction: 1 });
const input = Buffer.from('{"n": 5}');
const strategies = listStrategies().filter((s) => s.support.ok).map((s) => s.id);
const snapshotRoot = (p as unknown as { snapshotRoot: string }).snapshotRoot;
let snapshotId = '';
let warmOutput = '';
after(async () => {
  await p.close();
  if (snapshotId) discardArtefacts(snapshotRoot, snapshotId);
});

test('setup: stdlib-py cold, snapshot, warm output', async () => {
  await deployExample(p, 'stdlib-py');
  const cold = await p.invoke({ function: 'stdlib-py', mode: 'cold', input });
  snapshotId = (await p.createSnapshot({ sandboxId: cold.sandboxId })).id;
  warmOutput = text((await p.invoke({ function: 'stdlib-py', mode: 'warm', sandboxId: cold.sandboxId, input })).output);
  assert.equal(warmOutput, text(cold.output));
  await p.deleteSandbox(cold.sandboxId);
});

for (const strategy of strategies) {
  test(`${strategy}: a restored Python guest gives the warm output, twice`, async () => {
    for (let i = 0; i < 2; i++) {
      await p.poolSettled();
      const r = await p.invoke({ function: 'stdlib-py', mode: 'snapshot', snapshotId, strategy, input, keep: false });
      assert.equal(r.restore?.strategy, strategy);
      assert.equal(text(r.output), warmOutput, `${strategy} run ${i}`);
    }
  });
}
