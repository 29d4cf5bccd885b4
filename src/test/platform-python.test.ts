// End to end on the in-process platform with the Python (Pyodide) examples: the module's
// top level runs once at cold boot and is captured by the snapshot, not re-run on restore.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { deployExample, newPlatform, rejectsWith, text } from './helpers.js';

const p = newPlatform({ preparedPerFunction: 1 });
after(() => p.close());

for (const [name, event] of [['hello-py', '{"name": "thaw"}'], ['stdlib-py', '{"n": 3}']] as const) {
  test(`${name}: cold, snapshot restore and warm give identical outputs`, async () => {
    await deployExample(p, name);
    const input = Buffer.from(event);
    const cold = await p.invoke({ function: name, mode: 'cold', input });
    assert.ok((cold.timings.initMs ?? 0) > 0);
    const snap = await p.createSnapshot({ sandboxId: cold.sandboxId });
    assert.equal(snap.runtime, 'python');
    const restored = await p.invoke({ function: name, mode: 'snapshot', snapshotId: snap.id, input, keep: false });
    assert.equal(restored.timings.initMs, undefined, 'a restore does not run init again');
    const warm = await p.invoke({ function: name, mode: 'warm', sandboxId: cold.sandboxId, input });
    assert.equal(text(restored.output), text(cold.output));
    assert.equal(text(warm.output), text(cold.output));
    await p.deleteSandbox(cold.sandboxId);
  });
}

test('hello-py replies with the event it was given', async () => {
  const r = await p.invoke({ function: 'hello-py', mode: 'snapshot', input: Buffer.from('{"name": "again"}'), keep: false });
  assert.deepEqual(JSON.parse(text(r.output)), { hello: { name: 'again' } });
});

test('a Python exception is a function error naming it; the sandbox stays usable', async () => {
  await deployExample(p, 'faulty-py');
  const cold = await p.invoke({ function: 'faulty-py', mode: 'cold', input: Buffer.from('{"raise": false}') });
  const err = await rejectsWith(p.invoke({ function: 'faulty-py', mode: 'warm', sandboxId: cold.sandboxId, input: Buffer.from('{"raise": true}') }), 'THAW_GUEST_ERROR');
  assert.match(err.message, /ValueError/);
  const again = await p.invoke({ function: 'faulty-py', mode: 'warm', sandboxId: cold.sandboxId, input: Buffer.from('{"raise": false}') });
  assert.equal(text(again.output), text(cold.output));
});

test('a Python output over maxOutputBytes is THAW_OUTPUT_TOO_LARGE', async () => {
  await deployExample(p, 'hello-py', { name: 'py-small-output', maxOutputBytes: 32 });
  const ok = await p.invoke({ function: 'py-small-output', mode: 'cold', input: Buffer.from('{"n": 1}'), keep: false });
  assert.ok(ok.output.length <= 32);
  const err = await rejectsWith(p.invoke({ function: 'py-small-output', mode: 'cold', input: Buffer.from(JSON.stringify({ n: 'x'.repeat(64) })) }), 'THAW_OUTPUT_TOO_LARGE');
  assert.match(err.message, /limit of 32 output bytes/);
});
