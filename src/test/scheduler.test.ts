// The keep-alive scheduler on a real platform (real sandbox hosts): auto invocations never share
// a sandbox, idle sandboxes expire after the keep-alive (also when time is scaled), and every
// start is counted by kind.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { deployExample, newPlatform, text } from './helpers.js';
import { registerPolicy } from '../memory/policies/index.js';
import type { InvokeResult } from '../platform/types.js';
import type { MemoryPolicy } from '../memory/types.js';
import type { ThawError } from '../core/errors.js';

const platforms: ReturnType<typeof newPlatform>[] = [];
after(async () => {
  await Promise.all(platforms.map((p) => p.close()));
});

function platform(overrides: Parameters<typeof newPlatform>[0] = {}): ReturnType<typeof newPlatform> {
  const p = newPlatform({ spareHosts: 0, maxIdleSandboxes: 32, ...overrides });
  platforms.push(p);
  return p;
}

const auto = (p: ReturnType<typeof newPlatform>, fn: string, input: string): Promise<InvokeResult> =>
  p.invoke({ function: fn, mode: 'auto', input: Buffer.from(input) });

test('auto invocations never give one sandbox two concurrent invocations', async () => {
  const p = platform();
  await deployExample(p, 'faulty-c', { name: 'hammer' });
  // A burst is placed before any of it completes: every call must get its own sandbox.
  const burst1 = await Promise.all(Array.from({ length: 6 }, (_, i) => auto(p, 'hammer', `a${i}`)));
  assert.deepEqual(burst1.map((r) => r.start), Array(6).fill('cold'));
  assert.equal(new Set(burst1.map((r) => r.sandboxId)).size, 6);
  // The next, larger burst reuses all six idle sandboxes (warm) and starts three more.
  const burst2 = await Promise.all(Array.from({ length: 9 }, (_, i) => auto(p, 'hammer', `b${i}`)));
  const ids2 = burst2.map((r) => r.sandboxId);
  assert.equal(new Set(ids2).size, 9, 'a sandbox was given two invocations of one burst');
  assert.equal(burst2.filter((r) => r.start === 'warm').length, 6);
  for (const r of burst2.filter((x) => x.start === 'warm')) assert.ok(burst1.some((b) => b.sandboxId === r.sandboxId));
  // Random arrivals: each reply is its own input (no crossed requests), none waits or is refused.
  const replies = await Promise.all(Array.from({ length: 40 }, async (_, i) => {
    await sleep(Math.floor(Math.random() * 40));
    const r = await auto(p, 'hammer', `c${i}`);
    assert.equal(text(r.output), `c${i}`);
    return r;
  }));
  const report = await p.scheduler();
  const starts = report.functions.hammer!.starts;
  assert.equal(starts.cold + starts.snapshot + starts.warm + starts['semi-warm'], 55);
  const made = new Set([...burst1, ...burst2, ...replies].map((r) => r.sandboxId)).size;
  assert.equal(starts.cold + starts.snapshot, made, 'every new sandbox is one cold or snapshot start');
  assert.ok((await p.listSandboxes()).every((s) => s.state === 'idle'));
});

test('idle sandboxes expire after the keep-alive, scaled by the time scale', async () => {
  const p = platform({ keepAliveS: 1 });
  await deployExample(p, 'faulty-c', { name: 'expiring' });
  const first = await auto(p, 'expiring', 'x');
  assert.equal(first.start, 'cold');
  assert.equal((await auto(p, 'expiring', 'y')).start, 'warm');
  await sleep(300);
  assert.equal((await p.listSandboxes()).length, 1, 'expired before its keep-alive');
  await sleep(1900);
  assert.equal((await p.listSandboxes()).length, 0, 'still alive 1 s past its keep-alive of 1 s');
  assert.equal((await p.scheduler()).functions.expiring!.expired, 1);
  // 600 trace seconds at time scale 1200: half a real second.
  const r = await p.configureScheduler({ keepAliveS: 600, timeScale: 1200 });
  assert.equal(r.keepAliveMs, 500);
  assert.equal((await auto(p, 'expiring', 'z')).start, 'cold');
  await sleep(1200);
  assert.equal((await p.listSandboxes()).length, 0);
  assert.equal((await p.scheduler()).functions.expiring!.expired, 2);
});

test('starts are counted by kind: cold, warm, snapshot and semi-warm', async () => {
  // Semi-warm needs a policy that says so; this one only says so (it offloads nothing) after 200 ms
  // idle, so the test checks the scheduler's bookkeeping, not an offload tier.
  const calls: string[] = [];
  registerPolicy('test-semi-warm', (): MemoryPolicy => ({
    id: 'test-semi-warm',
    afterInit: async (s) => void calls.push(`init ${s.id}`),
    afterRequest: async (s, n) => void calls.push(`request ${s.id} ${n}`),
    onIdle: async (_s, idleMs) => (idleMs > 200 ? 'semi-warm' : 'warm'),
  }));
  const p = platform();
  await deployExample(p, 'faulty-c', { name: 'counted' });
  const cold = await auto(p, 'counted', 'a');
  assert.equal(cold.start, 'cold');
  assert.equal((await auto(p, 'counted', 'b')).start, 'warm');
  await p.createSnapshot({ sandboxId: cold.sandboxId });
  await p.deleteSandbox(cold.sandboxId);
  const restored = await auto(p, 'counted', 'c');
  assert.equal(restored.start, 'snapshot');
  assert.equal(text(restored.output), 'c');
  await p.configureScheduler({ policy: 'test-semi-warm' });
  await sleep(1400); // a tick (1 s at time scale 1) finds it idle > 200 ms
  assert.equal((await p.scheduler()).sandboxes.semiWarm, 1);
  const semi = await auto(p, 'counted', 'd');
  assert.equal(semi.start, 'semi-warm');
  assert.equal(semi.sandboxId, restored.sandboxId);
  // Served once, it is warm again; a new sandbox gets afterInit before its first request.
  assert.equal((await auto(p, 'counted', 'e')).start, 'warm');
  await p.deleteSandbox(restored.sandboxId);
  const again = await auto(p, 'counted', 'f');
  assert.equal(again.start, 'snapshot');
  assert.ok(calls.indexOf(`init ${again.sandboxId}`) >= 0 && calls.indexOf(`init ${again.sandboxId}`) < calls.indexOf(`request ${again.sandboxId} 1`));
  // Explicit modes count too.
  assert.equal((await p.invoke({ function: 'counted', mode: 'cold', input: Buffer.from('g') })).start, 'cold');
  const counts = (await p.scheduler()).functions.counted!.starts;
  assert.deepEqual(counts, { cold: 2, snapshot: 2, warm: 2, 'semi-warm': 1 });
  await p.configureScheduler({ resetCounts: true, policy: 'none' });
  assert.deepEqual((await p.scheduler()).functions.counted!.starts, { cold: 0, snapshot: 0, warm: 0, 'semi-warm': 0 });
  // Counts go, the reuse intervals stay until resetHistory (a replay's next setting starts without them).
  assert.ok((await p.scheduler()).functions.counted!.reuseSamples > 0);
  await p.configureScheduler({ resetHistory: true });
  const history = (await p.scheduler()).functions.counted!;
  assert.deepEqual([history.reuseSamples, history.reuseP99Ms], [0, 0]);
});

test('an invocation that picks a sandbox while a policy call runs on it waits for the call, and no new sandbox starts', async () => {
  let calling: { id: string; endedAt: number } | null = null;
  let onIdleCalls = 0;
  registerPolicy('test-slow-idle', (): MemoryPolicy => ({
    id: 'test-slow-idle',
    afterInit: async () => {},
    afterRequest: async () => {},
    onIdle: async (s) => {
      onIdleCalls++;
      calling = { id: s.id, endedAt: Infinity };
      await sleep(600);
      calling.endedAt = Date.now();
      return 'warm';
    },
  }));
  const p = platform();
  await deployExample(p, 'faulty-c', { name: 'slow-policy' });
  const first = await auto(p, 'slow-policy', 'a');
  await p.configureScheduler({ policy: 'test-slow-idle' });
  const t0 = Date.now();
  while (calling === null && Date.now() - t0 < 5000) await sleep(20);
  assert.ok(calling !== null, 'the policy was never called on the idle sandbox');
  const during = calling as { id: string; endedAt: number };
  assert.equal(during.id, first.sandboxId);
  const r = await auto(p, 'slow-policy', 'b');
  const repliedAt = Date.now();
  assert.equal(r.sandboxId, first.sandboxId, 'a new sandbox was started while the idle one was in a policy call');
  assert.equal(r.start, 'warm');
  assert.ok(repliedAt >= during.endedAt, 'the invocation ran before the policy call ended');
  assert.equal((await p.listSandboxes()).length, 1);
  assert.ok(onIdleCalls >= 1);
  await p.configureScheduler({ policy: 'none' });
});

test('the configured policy turns stage tracking on and starts the remote tier\'s memory server; unknown ids are refused', async () => {
  const p = platform();
  await deployExample(p, 'faulty-c', { name: 'offloaded' });
  await assert.rejects(p.configureScheduler({ policy: 'faasmem-no-semi-warm' }), (e: ThawError) => e.code === 'THAW_CONFIG_INVALID' && /faasmem-no-semiwarm/.test(e.message));
  await assert.rejects(p.configureScheduler({ policy: 'faasmem', tier: 'remote', remoteLatencyUs: -1 }), (e: ThawError) => e.code === 'THAW_CONFIG_INVALID');
  assert.equal((await p.scheduler()).policy, 'none', 'a refused setting left the previous one');
  const untracked = await auto(p, 'offloaded', 'a');
  assert.equal((await p.policySandbox(untracked.sandboxId).memoryStages()).method, 'untracked');
  await p.deleteSandbox(untracked.sandboxId);

  const r = await p.configureScheduler({ policy: 'faasmem', tier: 'remote', remoteLatencyUs: 20 });
  assert.equal(r.remoteLatencyUs, 20);
  const s = await auto(p, 'offloaded', 'b');
  const sandbox = p.policySandbox(s.sandboxId);
  assert.equal((await sandbox.memoryStages()).method, 'write-protect');
  // The remote tier reaches the memory server the setting started (the policy's own offload after
  // the request may have run first: everything still resident goes now); the pages come back byte-exact.
  const moved = await sandbox.offload({ tier: 'remote', scope: { shrinkToBytes: 0 } });
  assert.equal(moved.residentBytes, 0);
  assert.equal(text((await auto(p, 'offloaded', 'c')).output), 'c');
  const m = (await p.scheduler()).memory!.find((x) => x.id === s.sandboxId)!;
  assert.ok(m.offloadedBytes > 0 && m.faultedBackBytes > 0 && m.residentBytes > 0, JSON.stringify(m));
  await p.configureScheduler({ policy: 'none', tier: null });
});
