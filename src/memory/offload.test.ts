// Offloading through the daemon, end to end: a real (jailed when root) sandbox host running
// mem64-c, whose init fills 64 MiB with a pattern and whose handler replies with a checksum of all
// of it. Every tier offloads that memory and the next request faults it back: the same checksum
// means every byte came back. A sandbox whose memory server dies is discarded with a clear error.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { deployExample, newPlatform, rejectsWith, tempDataDir, text } from '../test/helpers.js';
import { SANDBOX_GID } from '../sandbox/jail.js';
import { startMemoryServer, type MemoryServer } from './remote-server.js';
import { TIER_IDS } from './tiers/index.js';
import type { Platform } from '../platform/platform.js';

const MiB = 1024 * 1024;
const dataDir = tempDataDir();
const p: Platform = newPlatform({ dataDir, jail: 'auto' });
let server: MemoryServer;
let checksum = '';
let snapshotId = '';

before(async () => {
  p.setMemoryTracking(true);
  if (process.getuid?.() === 0) assert.ok(p.jail.jailed, 'as root, the hosts under test are jailed');
  server = await p.startMemoryServer(20); // the daemon's: stopped by p.close()
  await deployExample(p, 'mem64-c');
  const cold = await p.invoke({ function: 'mem64-c', mode: 'cold', input: new Uint8Array(0) });
  checksum = text(cold.output);
  assert.match(checksum, /^checksum=/);
  snapshotId = (await p.createSnapshot({ sandboxId: cold.sandboxId })).id;
});
after(() => p.close());

async function restored(): Promise<string> {
  const r = await p.invoke({ function: 'mem64-c', mode: 'snapshot', snapshotId, strategy: 'eager', input: new Uint8Array(0) });
  assert.equal(text(r.output), checksum);
  return r.sandboxId;
}

for (const tier of TIER_IDS) {
  test(`${tier} tier: a restored sandbox gives back its memory and gets every byte back`, async () => {
    const id = await restored();
    const s = p.policySandbox(id, server.socketPath);
    const stages = await s.memoryStages();
    assert.ok(stages.initBytes + stages.requestBytes >= 64 * MiB, JSON.stringify(stages));
    const rep = await s.offload({ tier, scope: { shrinkToBytes: 8 * MiB } });
    assert.ok(rep.offloadedBytes >= 56 * MiB, `offloaded ${rep.offloadedBytes}`);
    assert.ok(rep.residentBytes <= 9 * MiB, `resident ${rep.residentBytes}`);
    const warm = await p.invoke({ function: 'mem64-c', mode: 'warm', sandboxId: id, input: new Uint8Array(0) });
    assert.equal(text(warm.output), checksum);
    assert.ok((await s.memoryStages()).residentBytes >= 64 * MiB);
    // Twice: pages that faulted back are offloaded and fault back again.
    await s.offload({ tier, scope: { shrinkToBytes: 8 * MiB } });
    assert.equal(text((await p.invoke({ function: 'mem64-c', mode: 'warm', sandboxId: id, input: new Uint8Array(0) })).output), checksum);
    // A third time brought back in bulk (a semi-warm sandbox picked for a request): the request then needs no fault-back.
    await s.offload({ tier, scope: { shrinkToBytes: 8 * MiB } });
    const pre = await s.prefetch();
    assert.ok(pre.prefetchedBytes >= 56 * MiB, `prefetched ${pre.prefetchedBytes}`);
    assert.ok(pre.residentBytes >= 64 * MiB, `resident after prefetch ${pre.residentBytes}`);
    const before = await s.offloadStats();
    assert.equal(before.heldBytes, 0);
    assert.equal(text((await p.invoke({ function: 'mem64-c', mode: 'warm', sandboxId: id, input: new Uint8Array(0) })).output), checksum);
    assert.equal((await s.offloadStats()).faultBacks, before.faultBacks, 'no page faulted back after the prefetch');
    await p.deleteSandbox(id);
  });
}

test('a booted sandbox: stages split runtime, init and request; the file tier refuses it', async () => {
  const cold = await p.invoke({ function: 'mem64-c', mode: 'cold', input: new Uint8Array(0) });
  const s = p.policySandbox(cold.sandboxId, server.socketPath);
  const st = await s.memoryStages();
  // A C guest's runtime is its data segments and stack, which init writes again (then they are init's).
  assert.ok(st.runtimeBytes < 8 * MiB, `runtime ${st.runtimeBytes}`);
  assert.ok(st.initBytes >= 64 * MiB, `init ${st.initBytes}`);
  assert.ok(st.requestBytes > 0 && st.requestBytes < MiB, `request ${st.requestBytes}`);
  await rejectsWith(s.offload({ tier: 'file', scope: { stages: ['init'] } }), 'THAW_OFFLOAD_UNAVAILABLE');
  const rep = await s.offload({ tier: 'compressed', scope: { shrinkToBytes: 8 * MiB } });
  assert.ok(rep.offloadedBytes >= 56 * MiB);
  assert.equal(text((await p.invoke({ function: 'mem64-c', mode: 'warm', sandboxId: cold.sandboxId, input: new Uint8Array(0) })).output), checksum);
  await p.deleteSandbox(cold.sandboxId);
});

test('a sandbox whose memory server dies gets a clear error and is discarded, never wrong bytes', async () => {
  const own = await startMemoryServer({ socketPath: join(dataDir, 'run', 'memory-doomed.sock'), gid: SANDBOX_GID, latencyUs: 0 });
  const id = await restored();
  const s = p.policySandbox(id, own.socketPath);
  const rep = await s.offload({ tier: 'remote', scope: { shrinkToBytes: 8 * MiB } });
  assert.ok(rep.offloadedBytes >= 56 * MiB);
  await own.kill();
  const err = await rejectsWith(p.invoke({ function: 'mem64-c', mode: 'warm', sandboxId: id, input: new Uint8Array(0) }), 'THAW_MEMORY_SERVER_LOST');
  assert.match(err.message, /remote tier/);
  assert.ok(!(await p.listSandboxes()).some((x) => x.id === id), 'the sandbox is discarded');
});

test('a prefetch from a memory server that died fails clearly; the sandbox then fails its request and is discarded', async () => {
  const own = await startMemoryServer({ socketPath: join(dataDir, 'run', 'memory-doomed2.sock'), gid: SANDBOX_GID, latencyUs: 0 });
  const id = await restored();
  const s = p.policySandbox(id, own.socketPath);
  assert.ok((await s.offload({ tier: 'remote', scope: { shrinkToBytes: 8 * MiB } })).offloadedBytes >= 56 * MiB);
  await own.kill();
  const err = await rejectsWith(s.prefetch(), 'THAW_MEMORY_SERVER_LOST');
  assert.match(err.message, /remote tier/);
  await rejectsWith(p.invoke({ function: 'mem64-c', mode: 'warm', sandboxId: id, input: new Uint8Array(0) }), 'THAW_MEMORY_SERVER_LOST');
  assert.ok(!(await p.listSandboxes()).some((x) => x.id === id), 'the sandbox is discarded');
});

test('per strategy: a file-mapped restore offloads to the file tier only; a live page server means snapshot layers', async () => {
  const v = await p.invoke({ function: 'mem64-c', mode: 'snapshot', snapshotId, strategy: 'vanilla', input: new Uint8Array(0) });
  const sv = p.policySandbox(v.sandboxId, server.socketPath);
  assert.equal((await sv.memoryStages()).method, 'write-protect');
  await rejectsWith(sv.offload({ tier: 'compressed', scope: { shrinkToBytes: 8 * MiB } }), 'THAW_OFFLOAD_UNAVAILABLE');
  assert.ok((await sv.offload({ tier: 'file', scope: { shrinkToBytes: 8 * MiB } })).offloadedBytes >= 56 * MiB);
  assert.equal(text((await p.invoke({ function: 'mem64-c', mode: 'warm', sandboxId: v.sandboxId, input: new Uint8Array(0) })).output), checksum);
  // Its prefetch populates the pages from the mapped file (MADV_POPULATE_READ).
  assert.ok((await sv.offload({ tier: 'file', scope: { shrinkToBytes: 8 * MiB } })).offloadedBytes >= 56 * MiB);
  const pre = await sv.prefetch();
  assert.ok(pre.prefetchedBytes >= 56 * MiB && pre.residentBytes >= 64 * MiB, JSON.stringify(pre));
  assert.equal(text((await p.invoke({ function: 'mem64-c', mode: 'warm', sandboxId: v.sandboxId, input: new Uint8Array(0) })).output), checksum);
  await p.deleteSandbox(v.sandboxId);
  const u = await p.invoke({ function: 'mem64-c', mode: 'snapshot', snapshotId, strategy: 'uffd', input: new Uint8Array(0) });
  const su = p.policySandbox(u.sandboxId, server.socketPath);
  const st = await su.memoryStages();
  assert.equal(st.method, 'snapshot-layers');
  assert.ok(st.initBytes >= 64 * MiB, JSON.stringify(st));
  await rejectsWith(su.offload({ tier: 'compressed', scope: { shrinkToBytes: 8 * MiB } }), 'THAW_OFFLOAD_UNAVAILABLE');
  await p.deleteSandbox(u.sandboxId);
});

test('with tracking off (the default), a sandbox is untracked until its first offload, which still works', async () => {
  p.setMemoryTracking(false);
  try {
    const cold = await p.invoke({ function: 'mem64-c', mode: 'cold', input: new Uint8Array(0) });
    const s = p.policySandbox(cold.sandboxId, server.socketPath);
    const st = await s.memoryStages();
    assert.equal(st.method, 'untracked');
    assert.equal(st.initBytes, st.residentBytes);
    const rep = await s.offload({ tier: 'compressed', scope: { stages: ['init'] } });
    assert.ok(rep.offloadedBytes >= 64 * MiB, `offloaded ${rep.offloadedBytes}`);
    assert.equal((await s.memoryStages()).method, 'write-protect');
    assert.equal(text((await p.invoke({ function: 'mem64-c', mode: 'warm', sandboxId: cold.sandboxId, input: new Uint8Array(0) })).output), checksum);
    await p.deleteSandbox(cold.sandboxId);
  } finally {
    p.setMemoryTracking(true);
  }
});

test('a snapshot of a sandbox whose pages are offloaded holds every byte', async () => {
  const id = await restored();
  const s = p.policySandbox(id);
  assert.ok((await s.offload({ tier: 'compressed', scope: { shrinkToBytes: 8 * MiB } })).offloadedBytes >= 56 * MiB);
  const snap = await p.createSnapshot({ sandboxId: id });
  const r = await p.invoke({ function: 'mem64-c', mode: 'snapshot', snapshotId: snap.id, strategy: 'eager', input: new Uint8Array(0) });
  assert.equal(text(r.output), checksum);
  await p.deleteSandbox(id);
  await p.deleteSandbox(r.sandboxId);
});
