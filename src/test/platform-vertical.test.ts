// Vertical sandboxes: one host process carries several instances of one function (separate
// Wasm instances, each its own memory and runtime state, sharing the compiled module), on the
// in-process platform with real jailed hosts where the machine allows.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { assertBreakdown, deployExample, manifestPath, newPlatform, rejectsWith, text } from './helpers.js';
import { readManifestFile } from '../cli/context.js';

const p = newPlatform({ maxIdleSandboxes: 16, layout: 'vertical', instancesPerHost: 3 });
after(() => p.close());

test('a vertical host carries up to instancesPerHost instances; the next one starts another host', async () => {
  await deployExample(p, 'hello-c', { name: 'v-hello' });
  const cold = await Promise.all([1, 2, 3, 4].map((i) => p.invoke({ function: 'v-hello', mode: 'cold', input: Buffer.from(`v${i}`) })));
  cold.forEach((r, i) => assert.equal(text(r.output), `hello, v${i + 1}`));
  const sandboxes = (await p.listSandboxes()).filter((s) => s.function === 'v-hello');
  assert.equal(sandboxes.length, 4);
  const byHost = new Map<number, number[]>();
  for (const s of sandboxes) byHost.set(s.hostPid, [...(byHost.get(s.hostPid) ?? []), s.instance]);
  assert.deepEqual([...byHost.values()].map((xs) => xs.sort()).sort((a, b) => b.length - a.length), [[0, 1, 2], [0]]);
  for (const s of sandboxes) {
    assert.equal(s.layout, 'vertical');
    assert.equal(s.instancesPerHost, 3);
  }
  // Each instance answers warm on its own.
  for (const r of cold) assert.equal(text((await p.invoke({ function: 'v-hello', mode: 'warm', sandboxId: r.sandboxId, input: Buffer.from('again') })).output), 'hello, again');
  for (const r of cold) await p.deleteSandbox(r.sandboxId);
});

test('instances in one host have separate memories: one exhausting its memory leaves its sibling serving', async () => {
  await deployExample(p, 'faulty-c', { name: 'v-faulty', timeoutMs: 3000 });
  const a = await p.invoke({ function: 'v-faulty', mode: 'cold', input: Buffer.from('a') });
  const b = await p.invoke({ function: 'v-faulty', mode: 'cold', input: Buffer.from('b') });
  const listed = await p.listSandboxes();
  const hostOf = (id: string): number => listed.find((s) => s.id === id)!.hostPid;
  assert.equal(hostOf(a.sandboxId), hostOf(b.sandboxId), 'both instances in one host');
  await rejectsWith(p.invoke({ function: 'v-faulty', mode: 'warm', sandboxId: a.sandboxId, input: Buffer.from('oom') }), 'THAW_GUEST_OOM');
  await rejectsWith(p.invoke({ function: 'v-faulty', mode: 'warm', sandboxId: a.sandboxId, input: Buffer.from('x') }), 'THAW_SANDBOX_NOT_FOUND');
  const still = await p.invoke({ function: 'v-faulty', mode: 'warm', sandboxId: b.sandboxId, input: Buffer.from('still here') });
  assert.equal(text(still.output), 'still here');
  // A trap stops its own instance only, too.
  await rejectsWith(p.invoke({ function: 'v-faulty', mode: 'warm', sandboxId: b.sandboxId, input: Buffer.from('trap') }), 'THAW_GUEST_TRAP');
  const c = await p.invoke({ function: 'v-faulty', mode: 'cold', input: Buffer.from('c') });
  assert.equal((await p.listSandboxes()).find((s) => s.id === c.sandboxId)!.hostPid, hostOf(a.sandboxId), 'the host outlived its instances and takes the next one');
  await p.deleteSandbox(c.sandboxId);
});

test('a host that dies takes all its instances, each with a clear error', async () => {
  await deployExample(p, 'faulty-c', { name: 'v-spin', timeoutMs: 1500 });
  const a = await p.invoke({ function: 'v-spin', mode: 'cold', input: Buffer.from('a') });
  const b = await p.invoke({ function: 'v-spin', mode: 'cold', input: Buffer.from('b') });
  // a's handler spins past its timeout: the host is killed (a guest stuck in Wasm cannot be
  // stopped otherwise), and b's request queued behind it dies with the host.
  const spinning = p.invoke({ function: 'v-spin', mode: 'warm', sandboxId: a.sandboxId, input: Buffer.from('spin') });
  const queued = p.invoke({ function: 'v-spin', mode: 'warm', sandboxId: b.sandboxId, input: Buffer.from('queued') });
  await rejectsWith(spinning, 'THAW_TIMEOUT');
  const died = await rejectsWith(queued, 'THAW_SANDBOX_DIED');
  assert.match(died.message, new RegExp(`${b.sandboxId}.*another request to the same host ran past its timeout.*${a.sandboxId} went with it`));
  assert.deepEqual((await p.listSandboxes()).filter((s) => s.function === 'v-spin'), []);
  await rejectsWith(p.invoke({ function: 'v-spin', mode: 'warm', sandboxId: b.sandboxId, input: Buffer.from('x') }), 'THAW_SANDBOX_NOT_FOUND');
  // The function keeps serving from a new host.
  assert.equal(text((await p.invoke({ function: 'v-spin', mode: 'cold', input: Buffer.from('new'), keep: false })).output), 'new');
});

test('restores go into the vertical host that already ran the function; the breakdown sums on every path', async () => {
  await deployExample(p, 'hello-c', { name: 'v-restore' });
  const cold = await p.invoke({ function: 'v-restore', mode: 'cold', input: Buffer.from('x') });
  assertBreakdown(cold.timings, ['acquireMs', 'bootMs']);
  const snap = await p.createSnapshot({ sandboxId: cold.sandboxId });
  const hostPid = (await p.listSandboxes()).find((s) => s.id === cold.sandboxId)!.hostPid;
  for (let i = 0; i < 3; i++) {
    const r = await p.invoke({ function: 'v-restore', mode: 'snapshot', snapshotId: snap.id, input: Buffer.from(`r${i}`), keep: i === 2 });
    assert.equal(text(r.output), `hello, r${i}`);
    assertBreakdown(r.timings, ['restoreMs']);
    assert.equal(r.timings.acquireMs, 0, 'no host taken from the pool: an instance slot in the running host');
    if (i === 2) assert.equal((await p.listSandboxes()).find((s) => s.id === r.sandboxId)!.hostPid, hostPid);
  }
});

test('Python: each instance of a vertical host has its own interpreter (one Pyodide per instance)', async () => {
  const source = Buffer.from('count = 0\n\ndef handler(event, context):\n    global count\n    count += 1\n    return {"count": count, "tag": event.get("tag")}\n');
  await p.deployFunction({ name: 'v-count-py', runtime: 'python', source: 'handler.py', memoryMiB: 96, instancesPerHost: 2 }, source);
  const a = await p.invoke({ function: 'v-count-py', mode: 'cold', input: Buffer.from('{"tag": "a"}') });
  const b = await p.invoke({ function: 'v-count-py', mode: 'cold', input: Buffer.from('{"tag": "b"}') });
  const all = await p.listSandboxes();
  assert.equal(all.find((s) => s.id === a.sandboxId)!.hostPid, all.find((s) => s.id === b.sandboxId)!.hostPid);
  for (let i = 0; i < 2; i++) await p.invoke({ function: 'v-count-py', mode: 'warm', sandboxId: a.sandboxId, input: Buffer.from('{"tag": "a"}') });
  const ra = JSON.parse(text((await p.invoke({ function: 'v-count-py', mode: 'warm', sandboxId: a.sandboxId, input: Buffer.from('{"tag": "a"}') })).output));
  const rb = JSON.parse(text((await p.invoke({ function: 'v-count-py', mode: 'warm', sandboxId: b.sandboxId, input: Buffer.from('{"tag": "b"}') })).output));
  assert.deepEqual(ra, { count: 4, tag: 'a' });
  assert.deepEqual(rb, { count: 2, tag: 'b' }, 'the sibling\'s globals are its own');
  // A snapshot of one instance restores into the same host, beside it.
  const snap = await p.createSnapshot({ sandboxId: b.sandboxId });
  await p.deleteSandbox(a.sandboxId);
  const r = await p.invoke({ function: 'v-count-py', mode: 'snapshot', snapshotId: snap.id, input: Buffer.from('{"tag": "r"}') });
  assert.deepEqual(JSON.parse(text(r.output)), { count: 3, tag: 'r' });
  assertBreakdown(r.timings, ['restoreMs']);
  assert.equal((await p.listSandboxes()).find((s) => s.id === r.sandboxId)!.hostPid, all.find((s) => s.id === b.sandboxId)!.hostPid);
});

test('a manifest choosing horizontal keeps one instance per host; instancesPerHost with horizontal is refused', async () => {
  const { manifest, artefact } = readManifestFile(manifestPath('hello-c'));
  await p.deployFunction({ ...manifest, name: 'h-hello', layout: 'horizontal' }, artefact);
  const rs = await Promise.all([1, 2].map(() => p.invoke({ function: 'h-hello', mode: 'cold', input: Buffer.from('h') })));
  const all = await p.listSandboxes();
  const [x, y] = rs.map((r) => all.find((s) => s.id === r.sandboxId)!);
  assert.notEqual(x!.hostPid, y!.hostPid);
  assert.equal(x!.layout, 'horizontal');
  assert.equal(x!.instancesPerHost, 1);
  await rejectsWith(p.deployFunction({ ...manifest, name: 'h-bad', layout: 'horizontal', instancesPerHost: 2 }, artefact), 'THAW_CONFIG_INVALID');
  await rejectsWith(p.deployFunction({ ...manifest, name: 'h-bad', layout: 'sideways' }, artefact), 'THAW_CONFIG_INVALID');
});
