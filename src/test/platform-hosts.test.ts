// Sandbox hosts as the pool and vertical hosts prepare them ahead of requests: a pooled host that
// dies before use (also one killed right before a request, before the platform saw it die) is
// replaced without failing a request, and every path (cold, snapshot, warm;
// horizontal and vertical, with a vertical host making its next shell between requests) gives the
// same output. Real jailed hosts where the machine allows.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { assertBreakdown, deployExample, newPlatform, tempDataDir, text } from './helpers.js';
import { Platform } from '../platform/platform.js';
import { parseDaemonConfig } from '../core/config.js';

const horizontal = newPlatform({ preparedPerFunction: 1, maxIdleSandboxes: 8 });
const vertical = newPlatform({ preparedPerFunction: 1, maxIdleSandboxes: 8, layout: 'vertical', instancesPerHost: 3 });
after(() => Promise.all([horizontal.close(), vertical.close()]));

/** Child processes of this process (the daemon's hosts, or their jailers). */
function children(): number[] {
  const out = readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8').trim();
  return out ? out.split(/\s+/).map(Number) : [];
}

/** The sandbox host process behind a child: the jailer's own child when jailed, else the child itself. */
function hostProcessOf(pid: number): number {
  try {
    const grandchildren = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    return grandchildren ? Number(grandchildren.split(/\s+/)[0]) : pid;
  } catch {
    return pid;
  }
}

/** Hosts waiting in the pool: children that carry no sandbox. */
async function pooledHosts(p: Platform): Promise<number[]> {
  const inUse = new Set((await p.listSandboxes()).map((s) => s.hostPid));
  return children().filter((pid) => !inUse.has(pid));
}

async function waitUntil(what: string, cond: () => boolean, timeoutMs = 30_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) assert.fail(`timed out waiting until ${what}`);
    await sleep(10);
  }
}

test('a pooled host killed before use is replaced: the next invocation succeeds and the pool refills', async () => {
  await deployExample(horizontal, 'hello-c', { name: 'victim-c' });
  const cold = await horizontal.invoke({ function: 'victim-c', mode: 'cold', input: Buffer.from('a') });
  const snap = await horizontal.createSnapshot({ sandboxId: cold.sandboxId });
  await horizontal.deleteSandbox(cold.sandboxId);
  await horizontal.poolSettled();
  assert.equal(horizontal.poolState().prepared['victim-c'], 1, 'a host waits prepared for the function');
  const pooled = await pooledHosts(horizontal);
  assert.ok(pooled.length >= 1);
  // A crash while pooled (the OOM killer, a bug): the host process dies, not by Thaw's hand.
  for (const pid of pooled) process.kill(hostProcessOf(pid), 'SIGKILL');
  await waitUntil('the killed hosts are gone', () => pooled.every((pid) => !children().includes(pid)));
  const r = await horizontal.invoke({ function: 'victim-c', mode: 'snapshot', snapshotId: snap.id, input: Buffer.from('b'), keep: false });
  assert.equal(text(r.output), 'hello, b');
  assertBreakdown(r.timings, ['restoreMs']);
  await horizontal.poolSettled();
  assert.equal(horizontal.poolState().prepared['victim-c'], 1, 'the pool refilled');
  const now = await pooledHosts(horizontal);
  assert.ok(now.length >= 1 && now.every((pid) => !pooled.includes(pid)), `new hosts ${now} replace ${pooled}`);
});

test('a pooled host that dies while a request waits for it to start is replaced in that request', async () => {
  await deployExample(horizontal, 'hello-c', { name: 'victim-start' });
  const before = new Set(children());
  // The first request starts a host of its own; the pool starts one for the next right after.
  const first = await horizontal.invoke({ function: 'victim-start', mode: 'cold', input: Buffer.from('1') });
  assert.equal(text(first.output), 'hello, 1');
  const taken = (await horizontal.listSandboxes()).find((s) => s.id === first.sandboxId)!.hostPid;
  await horizontal.deleteSandbox(first.sandboxId);
  let starting: number | undefined;
  await waitUntil('the next host starts', () => (starting = children().find((pid) => !before.has(pid) && pid !== taken)) !== undefined);
  // The next request takes it from the pool while it starts, and then it dies (a jailer's host
  // dies with its jailer): the request waits for a host started in its place.
  const next = horizontal.invoke({ function: 'victim-start', mode: 'cold', input: Buffer.from('2'), keep: false });
  process.kill(starting!, 'SIGKILL');
  const r = await next;
  assert.equal(text(r.output), 'hello, 2');
  assert.equal(r.start, 'cold');
  await horizontal.poolSettled();
  assert.equal(horizontal.poolState().prepared['victim-start'], 1, 'the pool refilled');
});

test('a pooled host killed after it reported ready, right before a request and before the platform saw it die, costs that request a replacement host, not a failure', async () => {
  for (const [mode, fn] of [['cold', 'victim-late-cold'], ['snapshot', 'victim-late-snap'], ['boot', 'victim-late-boot']] as const) {
    await deployExample(horizontal, 'hello-c', { name: fn });
    const cold = await horizontal.invoke({ function: fn, mode: 'cold', input: Buffer.from('a') });
    const snap = await horizontal.createSnapshot({ sandboxId: cold.sandboxId });
    await horizontal.deleteSandbox(cold.sandboxId);
    await horizontal.poolSettled();
    assert.equal(horizontal.poolState().prepared[fn], 1, 'a host waits prepared for the function');
    const pooled = await pooledHosts(horizontal);
    assert.ok(pooled.length >= 1);
    // Killed and asked in the same turn of the event loop: the platform has not seen the exit yet.
    for (const pid of pooled) process.kill(hostProcessOf(pid), 'SIGKILL');
    if (mode === 'boot') {
      const booted = await horizontal.bootSandbox(fn);
      assert.ok(!pooled.includes(booted.hostPid), 'booted in a new host');
      const r = await horizontal.invoke({ function: fn, mode: 'warm', sandboxId: booted.id, input: Buffer.from('c') });
      assert.equal(text(r.output), 'hello, c');
      await horizontal.deleteSandbox(booted.id);
    } else {
      const r = await horizontal.invoke({ function: fn, mode, input: Buffer.from('b'), keep: false, ...(mode === 'snapshot' && { snapshotId: snap.id }) });
      assert.equal(text(r.output), 'hello, b', mode);
      assert.equal(r.start, mode);
      assertBreakdown(r.timings, mode === 'snapshot' ? ['restoreMs'] : ['bootMs']);
      assert.equal((await horizontal.listSandboxes()).find((s) => s.id === r.sandboxId), undefined, 'keep: false still applies to the replacement');
    }
    await horizontal.poolSettled();
    assert.equal(horizontal.poolState().prepared[fn], 1, 'the pool refilled');
  }
});

for (const [name, event, expected] of [
  ['hello-c', 'world', 'hello, world'],
  ['hello-py', '{"name": "thaw"}', '{"hello": {"name": "thaw"}}'],
] as const) {
  for (const [layout, p] of [['horizontal', horizontal], ['vertical', vertical]] as const) {
    test(`${name}, ${layout}: cold, snapshot restores back to back and warm give identical outputs`, async () => {
      const fn = `${name}-${layout}`;
      await deployExample(p, name, { name: fn });
      const input = Buffer.from(event);
      const cold = await p.invoke({ function: fn, mode: 'cold', input });
      assert.equal(text(cold.output), expected);
      const snap = await p.createSnapshot({ sandboxId: cold.sandboxId });
      await p.poolSettled();
      // Back to back, without waiting for the pool or for the vertical host's next shell: the
      // second restore may wait for the shell its host makes after the first reply (queueMs).
      const restored = [];
      for (let i = 0; i < 3; i++) restored.push(await p.invoke({ function: fn, mode: 'snapshot', snapshotId: snap.id, input, keep: i < 2 }));
      // A warm request to each instance, all at once (siblings in one vertical host).
      const warm = await Promise.all([cold, ...restored.slice(0, 2)].map((r) => p.invoke({ function: fn, mode: 'warm', sandboxId: r.sandboxId, input })));
      for (const r of [...restored, ...warm]) {
        assert.equal(text(r.output), expected);
        assertBreakdown(r.timings, []);
      }
      const hosts = new Set((await p.listSandboxes()).filter((s) => s.function === fn).map((s) => s.hostPid));
      assert.equal(hosts.size, layout === 'vertical' ? 1 : 3, `${layout}: instances in ${hosts.size} hosts`);
      for (const r of [cold, ...restored.slice(0, 2)]) await p.deleteSandbox(r.sandboxId);
    });
  }
}

test('a vertical host restoring two snapshots in turn gives each its own state (the host reuses only the same snapshot\'s checked state)', async () => {
  const source = Buffer.from('count = 0\n\ndef handler(event, context):\n    global count\n    count += 1\n    return {"count": count}\n');
  await vertical.deployFunction({ name: 'turns-py', runtime: 'python', source: 'handler.py', memoryMiB: 96, instancesPerHost: 3 }, source);
  const input = Buffer.from('{}');
  const cold = await vertical.invoke({ function: 'turns-py', mode: 'cold', input });
  const one = await vertical.createSnapshot({ sandboxId: cold.sandboxId });
  await vertical.invoke({ function: 'turns-py', mode: 'warm', sandboxId: cold.sandboxId, input });
  const two = await vertical.createSnapshot({ sandboxId: cold.sandboxId });
  const counts = [];
  for (const snap of [one, two, one, two, two]) {
    const r = await vertical.invoke({ function: 'turns-py', mode: 'snapshot', snapshotId: snap.id, input, keep: false });
    counts.push((JSON.parse(text(r.output)) as { count: number }).count);
  }
  assert.deepEqual(counts, [2, 3, 2, 3, 3]);
  await vertical.deleteSandbox(cold.sandboxId);
});

test('host starts are capped: a burst larger than the cap queues and is served in full; past maxSandboxes the rest get a clear THAW_POOL_EXHAUSTED', async () => {
  // The same burst with room for 8 starts at once and with 1: the count sees concurrency where it
  // is allowed, and never more than the cap where it is not.
  const peaks: Record<number, number> = {};
  for (const cap of [8, 1]) {
    const p = newPlatform({ maxHostStarts: cap, spareHosts: 0, preparedPerFunction: 0, maxIdleSandboxes: 16 });
    try {
      await deployExample(p, 'hello-c', { name: 'burst-c' });
      let sampledMax = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          sampledMax = Math.max(sampledMax, p.poolState().starting);
          await sleep(1);
        }
      })();
      const burst = await Promise.all([0, 1, 2, 3, 4].map((i) => p.invoke({ function: 'burst-c', mode: 'cold', input: Buffer.from(`b${i}`) })));
      sampling = false;
      await sampler;
      burst.forEach((r, i) => {
        assert.equal(text(r.output), `hello, b${i}`);
        // The queue wait is part of acquireMs: the parts still sum to the total.
        assertBreakdown(r.timings, ['acquireMs']);
      });
      const state = p.poolState();
      assert.ok(state.peakStarting <= cap && sampledMax <= cap, `cap ${cap}: ${state.peakStarting} hosts started at once (sampled ${sampledMax})`);
      assert.equal(state.starting, 0);
      assert.equal(state.startsQueued, 0);
      peaks[cap] = state.peakStarting;
      if (cap === 1) {
        // Each waited for the starts before it: the last acquire is far longer than the first.
        const acquire = burst.map((r) => r.timings.acquireMs).sort((a, b) => a - b);
        assert.ok(acquire[4]! > 2 * acquire[0]!, `acquire times ${acquire.map((x) => x.toFixed(1)).join(', ')} ms`);
      }
    } finally {
      await p.close();
    }
  }
  assert.ok(peaks[8]! > 1, `uncapped, the burst started ${peaks[8]} hosts at once`);

  // The real limit: 3 live sandboxes, a burst of 5 busy ones; 3 served, 2 refused by name.
  const p = newPlatform({ maxHostStarts: 1, maxSandboxes: 3, spareHosts: 0, preparedPerFunction: 0 });
  try {
    await deployExample(p, 'hello-c', { name: 'limit-c' });
    const results = await Promise.allSettled([0, 1, 2, 3, 4].map((i) => p.invoke({ function: 'limit-c', mode: 'cold', input: Buffer.from(`l${i}`) })));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 3);
    for (const r of results) {
      if (r.status === 'rejected') {
        assert.equal((r.reason as { code?: string }).code, 'THAW_POOL_EXHAUSTED');
        assert.match(String((r.reason as Error).message), /3 sandboxes are busy or starting \(maxSandboxes; \d+ of them waiting for a host, \d+ queued for a host start\)/);
      }
    }
    // The daemon keeps serving.
    const sb = (await p.listSandboxes())[0]!;
    assert.equal(text((await p.invoke({ function: 'limit-c', mode: 'warm', sandboxId: sb.id, input: Buffer.from('after') })).output), 'hello, after');
  } finally {
    await p.close();
  }
});

test('the pool\'s idle times follow the scheduler\'s time scale: prepared hosts and empty vertical hosts retire after preparedIdleS of trace time', async () => {
  const p = newPlatform({ preparedPerFunction: 1, preparedIdleS: 600, layout: 'vertical', instancesPerHost: 2 });
  try {
    await deployExample(p, 'hello-c', { name: 'scaled-c' });
    const r = await p.invoke({ function: 'scaled-c', mode: 'cold', input: Buffer.from('x') });
    const hostPid = (await p.listSandboxes()).find((s) => s.id === r.sandboxId)!.hostPid;
    await p.deleteSandbox(r.sandboxId);
    await p.poolSettled();
    // At time scale 1, 600 s are real: nothing retires within a second.
    await sleep(1000);
    assert.equal(p.poolState().prepared['scaled-c'], 1);
    assert.ok(children().includes(hostPid), 'the empty vertical host is kept');
    // At 10000x, 600 s of trace are 60 ms.
    await p.configureScheduler({ timeScale: 10_000 });
    await waitUntil('the prepared host retires', () => p.poolState().prepared['scaled-c'] === undefined, 5000);
    await waitUntil('the empty vertical host retires', () => !children().includes(hostPid), 5000);
    // What a replay asks before each setting: the pool prepared again, as after a first use.
    await p.configureScheduler({ timeScale: 1, preparePool: true });
    assert.equal(p.poolState().prepared['scaled-c'], 1, 'preparePool answers once the function has its prepared host');
  } finally {
    await p.close();
  }
});

test('an empty vertical host is not retired while an instance in it is being destroyed', async () => {
  const warnings: string[] = [];
  const params = parseDaemonConfig({ dataDir: tempDataDir(), spareHosts: 0, preparedPerFunction: 0, layout: 'vertical', instancesPerHost: 2 });
  const p = new Platform({ ...params, logger: pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) }) });
  let stopped: number | undefined;
  try {
    await deployExample(p, 'hello-c', { name: 'race-c' });
    // a and b in host H, c in host H2.
    const ids = [];
    for (const i of [0, 1, 2]) ids.push((await p.invoke({ function: 'race-c', mode: 'cold', input: Buffer.from(`${i}`) })).sandboxId);
    const listed = await p.listSandboxes();
    const hostOf = (id: string): number => listed.find((s) => s.id === id)!.hostPid;
    const [h, h2] = [hostOf(ids[0]!), hostOf(ids[2]!)];
    assert.equal(hostOf(ids[1]!), h);
    assert.notEqual(h, h2);
    // H cannot answer its destroys until it is continued; H2 answers at once, and the retire that
    // follows finds H empty (its instances are out of the list) with the function gone.
    stopped = hostProcessOf(h);
    process.kill(stopped, 'SIGSTOP');
    const deleting = p.deleteFunction('race-c');
    await waitUntil('H2 retires', () => !children().includes(h2), 10_000);
    await sleep(100);
    assert.ok(children().includes(h), 'H was retired while it destroyed its instances');
    process.kill(stopped, 'SIGCONT');
    stopped = undefined;
    await deleting;
    await waitUntil('H retires once its instances are destroyed', () => !children().includes(h), 10_000);
    assert.deepEqual(warnings.filter((w) => /cannot destroy/.test(w)), []);
  } finally {
    if (stopped !== undefined) process.kill(stopped, 'SIGCONT');
    await p.close();
  }
});
