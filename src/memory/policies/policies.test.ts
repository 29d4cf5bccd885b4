// The memory policies on real sandboxes (jailed hosts when root): semi-warm steps stop at the
// floor and the sandbox still serves; faasmem offloads what the first request left cold; tmo
// lowers a host's cgroup limit but never below its anonymous memory.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { deployExample, newPlatform, tempDataDir, text } from '../../test/helpers.js';
import type { Platform } from '../../platform/platform.js';
import { createPolicy, DEFAULT_TIMING } from './index.js';

const MiB = 1024 * 1024;
const p: Platform = newPlatform({ dataDir: tempDataDir(), jail: 'auto' });
let checksum = '';
let snapshotId = '';

before(async () => {
  p.setMemoryTracking(true);
  await deployExample(p, 'mem64-c');
  const cold = await p.invoke({ function: 'mem64-c', mode: 'cold', input: new Uint8Array(0) });
  checksum = text(cold.output);
  snapshotId = (await p.createSnapshot({ sandboxId: cold.sandboxId })).id;
});
after(() => p.close());

async function restored(): Promise<string> {
  const r = await p.invoke({ function: 'mem64-c', mode: 'snapshot', snapshotId, strategy: 'eager', input: new Uint8Array(0) });
  return r.sandboxId;
}

test('semi-warm: an idle sandbox shrinks in steps, stops at the floor, and still serves', async () => {
  const scale = 1000; // 60 s -> 60 ms, 10 s -> 10 ms
  const policy = createPolicy('faasmem', { scale });
  const s = p.policySandbox(await restored());
  const minIdle = DEFAULT_TIMING.semiWarmMinIdleMs / scale;
  const step = DEFAULT_TIMING.semiWarmStepMs / scale;
  const start = (await s.memoryStages()).residentBytes;
  assert.ok(start >= 64 * MiB);
  // Reuse P99 below the minimum: the minimum idle time rules. Not yet idle long enough: warm.
  assert.equal(await policy.onIdle(s, minIdle - 1, 5), 'warm');
  assert.equal((await s.memoryStages()).residentBytes, start);
  const seen: number[] = [];
  for (let k = 0; k < 16; k++) {
    assert.equal(await policy.onIdle(s, minIdle + k * step, 5), 'semi-warm');
    seen.push((await s.memoryStages()).residentBytes);
  }
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i]! <= seen[i - 1]!, `resident went up: ${seen.join(', ')}`);
  assert.ok(seen[0]! < start && seen[1]! < seen[0]!, `it shrinks in steps: ${seen.join(', ')}`);
  const floor = DEFAULT_TIMING.semiWarmFloorBytes;
  const last = seen[seen.length - 1]!;
  assert.ok(last >= floor - 64 * 1024 && last <= floor + 64 * 1024, `stops at the floor (${floor}): ${seen.join(', ')}`);
  assert.equal(seen[seen.length - 2], last, 'no step below the floor');
  const warm = await p.invoke({ function: 'mem64-c', mode: 'warm', sandboxId: s.id, input: new Uint8Array(0) });
  assert.equal(text(warm.output), checksum);
  await p.deleteSandbox(s.id);
});

test('faasmem-prefetch: a semi-warm sandbox picked for a request gets its pages back before it; faasmem leaves them to faults', async () => {
  const scale = 1000;
  const minIdle = DEFAULT_TIMING.semiWarmMinIdleMs / scale;
  const step = DEFAULT_TIMING.semiWarmStepMs / scale;
  for (const id of ['faasmem-prefetch', 'faasmem'] as const) {
    const policy = createPolicy(id, { scale });
    const s = p.policySandbox(await restored());
    for (let k = 0; k < 16; k++) await policy.onIdle(s, minIdle + k * step, 5);
    assert.ok((await s.memoryStages()).residentBytes <= 9 * MiB);
    await policy.beforeReuse!(s, true);
    const resident = (await s.memoryStages()).residentBytes;
    if (id === 'faasmem-prefetch') assert.ok(resident >= 64 * MiB, `${id}: resident after beforeReuse ${resident}`);
    else assert.ok(resident <= 9 * MiB, `${id}: resident after beforeReuse ${resident}`);
    const warm = await p.invoke({ function: 'mem64-c', mode: 'warm', sandboxId: s.id, input: new Uint8Array(0) });
    assert.equal(text(warm.output), checksum);
    await p.deleteSandbox(s.id);
  }
});

test('faasmem: the first request leaves stage pages cold, they go; pages requests fault back stay at the next re-offload', async () => {
  const id = await restored();
  const s = p.policySandbox(id);
  let clock = 0;
  const policy = createPolicy('faasmem', { now: () => clock });
  const before = await s.memoryStages();
  // mem64-c's handler only reads its 64 MiB. Write-protect tracking sees writes (and fault-backs),
  // not reads of resident pages (no accessed bits here without MGLRU), so they go at first.
  await policy.afterRequest(s, 1);
  const after = await s.memoryStages();
  assert.ok(after.residentBytes < 8 * MiB, `resident ${before.residentBytes} -> ${after.residentBytes}`);
  const serve = async (): Promise<void> => {
    const warm = await p.invoke({ function: 'mem64-c', mode: 'warm', sandboxId: id, input: new Uint8Array(0) });
    assert.equal(text(warm.output), checksum);
  };
  await serve();
  const touched = await s.memoryStages();
  assert.ok(touched.residentBytes >= 64 * MiB && touched.requestBytes >= 64 * MiB, JSON.stringify(touched));
  // Re-offload of init pages: due after reoffloadEveryRequests requests and reoffloadIntervalMs.
  clock += DEFAULT_TIMING.reoffloadIntervalMs;
  await policy.afterRequest(s, 1 + DEFAULT_TIMING.reoffloadEveryRequests);
  assert.ok((await s.memoryStages()).residentBytes >= 64 * MiB, 'pages requests use are not offloaded again');
  // The ablation without stages offloads them anyway (request pages are not special to it).
  const flat = createPolicy('faasmem-no-stages', { now: () => clock });
  await flat.afterRequest(s, 1);
  assert.ok((await s.memoryStages()).residentBytes < 8 * MiB);
  await serve();
  await p.deleteSandbox(id);
});

test('tmo lowers the host cgroup limit step by step, never below its anonymous memory', async (t) => {
  const id = await restored();
  const s = p.policySandbox(id);
  const cg = s.cgroup;
  if (!cg) return t.skip('no memory cgroup for sandbox hosts here');
  let clock = 0;
  const policy = createPolicy('tmo', { now: () => clock });
  const limit0 = cg.limitBytes();
  for (let k = 0; k < 12; k++) {
    await policy.onIdle(s, 0, 0);
    clock += DEFAULT_TIMING.tmoStepMs;
  }
  const limit1 = cg.limitBytes();
  assert.ok(limit1 < limit0, `limit ${limit0} -> ${limit1}`);
  assert.ok(limit1 >= cg.anonBytes(), `limit ${limit1} >= anon ${cg.anonBytes()}`);
  const warm = await p.invoke({ function: 'mem64-c', mode: 'warm', sandboxId: id, input: new Uint8Array(0) });
  assert.equal(text(warm.output), checksum);
  await p.deleteSandbox(id);
});
