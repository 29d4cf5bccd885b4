// End to end on the in-process platform with the Python (Pyodide) examples: the module's
// top level runs once at cold boot and is captured by the snapshot, not re-run on restore.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { assertBreakdown, deployExample, manifestPath, newPlatform, rejectsWith, text } from './helpers.js';
import { readManifestFile } from '../cli/context.js';

const p = newPlatform({ preparedPerFunction: 1 });
after(() => p.close());

for (const [name, event] of [['hello-py', '{"name": "thaw"}'], ['stdlib-py', '{"n": 3}']] as const) {
  test(`${name}: cold, snapshot restore and warm give identical outputs`, async () => {
    await deployExample(p, name);
    const input = Buffer.from(event);
    const cold = await p.invoke({ function: name, mode: 'cold', input });
    assertBreakdown(cold.timings, ['acquireMs', 'bootMs', 'initMs']);
    const snap = await p.createSnapshot({ sandboxId: cold.sandboxId });
    assert.equal(snap.runtime, 'python');
    const restored = await p.invoke({ function: name, mode: 'snapshot', snapshotId: snap.id, input, keep: false });
    assert.equal(restored.timings.initMs, 0, 'a restore does not run init again');
    assertBreakdown(restored.timings, ['acquireMs', 'restoreMs']);
    const warm = await p.invoke({ function: name, mode: 'warm', sandboxId: cold.sandboxId, input });
    assertBreakdown(warm.timings, []);
    assert.equal(warm.timings.restoreMs + warm.timings.bootMs + warm.timings.acquireMs, 0);
    assert.equal(text(restored.output), text(cold.output));
    assert.equal(text(warm.output), text(cold.output));
    await p.deleteSandbox(cold.sandboxId);
  });
}

test('hello-py replies with the event it was given, restored from its newest snapshot', async () => {
  await deployExample(p, 'hello-py');
  const cold = await p.invoke({ function: 'hello-py', mode: 'cold', input: Buffer.from('{}') });
  await p.createSnapshot({ sandboxId: cold.sandboxId });
  await p.deleteSandbox(cold.sandboxId);
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

test('boot and init have their own budget: a Python function with timeoutMs 1000 boots; initTimeoutMs bounds the boot', async () => {
  // Pyodide boots in about 3 s: that used to count against timeoutMs (twice it, for boot + handler).
  // Its own artefact (a comment added): a host prepares a function once per artefact digest.
  const { manifest, artefact } = readManifestFile(manifestPath('hello-py'));
  await p.deployFunction({ ...manifest, name: 'py-short-handler', timeoutMs: 1000 }, Buffer.concat([artefact, Buffer.from('\n# py-short-handler\n')]));
  const cold = await p.invoke({ function: 'py-short-handler', mode: 'cold', input: Buffer.from('{"n": 1}') });
  assert.deepEqual(JSON.parse(text(cold.output)), { hello: { n: 1 } });
  const snap = await p.createSnapshot({ sandboxId: cold.sandboxId });
  const restored = await p.invoke({ function: 'py-short-handler', mode: 'snapshot', snapshotId: snap.id, input: Buffer.from('{"n": 2}'), keep: false });
  assert.deepEqual(JSON.parse(text(restored.output)), { hello: { n: 2 } });
  await p.deleteSandbox(cold.sandboxId);
  await deployExample(p, 'hello-py', { name: 'py-short-init', initTimeoutMs: 200 });
  const err = await rejectsWith(p.invoke({ function: 'py-short-init', mode: 'cold', input: Buffer.from('{}') }), 'THAW_INIT_TIMEOUT');
  assert.equal(err.status, 504);
  assert.match(err.message, /boot and init did not finish within its initTimeoutMs of 200 ms/);
  assert.equal((await p.listSandboxes()).filter((s) => s.function === 'py-short-init').length, 0);
});

test('a new Python snapshot is sealed ahead of its first restore: that restore is already sealed, into the prepared host that mapped it', async () => {
  await deployExample(p, 'hello-py', { name: 'sealed-ahead-py' });
  const input = Buffer.from('{"name": "ahead"}');
  const cold = await p.invoke({ function: 'sealed-ahead-py', mode: 'cold', input });
  const snap = await p.createSnapshot({ sandboxId: cold.sandboxId });
  // Sealing runs in the daemon's worker after the snapshot is taken; auto says sealed once it holds the image.
  const deadline = Date.now() + 30_000;
  while ((await p.getSnapshot(snap.id)).auto?.strategy !== 'sealed' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await p.poolSettled();
  const restored = await p.invoke({ function: 'sealed-ahead-py', mode: 'snapshot', snapshotId: snap.id, input, keep: false });
  assert.equal(restored.strategy, 'sealed', `the first restore: ${restored.strategyReason}`);
  assert.match(restored.strategyReason ?? '', /holds this image/);
  assert.equal(text(restored.output), text(cold.output));
  const again = await p.invoke({ function: 'sealed-ahead-py', mode: 'snapshot', snapshotId: snap.id, input, keep: false });
  assert.equal(again.strategy, 'sealed');
  assert.equal(text(again.output), text(cold.output));
  await p.deleteSandbox(cold.sandboxId);
});
