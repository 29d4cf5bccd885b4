// tmo on the compressed tier: the platform sets up a zram swap device for the setting and removes
// it after; with it, tmo lowers a host's cgroup limit below its anonymous memory (the guest's heap
// goes to compressed RAM) and the guest still reads every byte back. Needs root and zram.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { deployExample, newPlatform, tempDataDir, text } from '../test/helpers.js';
import { createPolicy, DEFAULT_TIMING } from './policies/index.js';

const MiB = 1024 * 1024;
const swaps = (): string => readFileSync('/proc/swaps', 'utf8');

test('tmo:compressed sets up a zram swap, reclaims a guest heap into it below its anonymous memory, and removes it at close', async (t) => {
  if (process.getuid?.() !== 0 || !existsSync('/sys/class/zram-control')) return t.skip('needs root and zram');
  const p = newPlatform({ dataDir: tempDataDir(), jail: 'auto' });
  let device = '';
  try {
    const rep = await p.configureScheduler({ policy: 'tmo', tier: 'compressed' });
    assert.equal(rep.policy, 'tmo');
    const z0 = (await p.scheduler()).zram;
    assert.ok(z0, 'the scheduler report carries the zram device');
    device = z0.device;
    assert.ok(swaps().includes(device), `${device} is swapped on`);
    await deployExample(p, 'mem64-c');
    const cold = await p.invoke({ function: 'mem64-c', mode: 'cold', input: new Uint8Array(0) });
    const checksum = text(cold.output);
    const s = p.policySandbox(cold.sandboxId);
    const cg = s.cgroup;
    if (!cg) return t.skip('no memory cgroup for sandbox hosts here');
    const anon0 = cg.anonBytes();
    assert.ok(anon0 >= 64 * MiB, `anon ${anon0}`);
    let clock = 0;
    const policy = createPolicy('tmo', { timing: { tmoSwap: true, tmoStepBytes: 16 * MiB }, now: () => clock });
    for (let k = 0; k < 16; k++) {
      await policy.onIdle(s, 0, 0);
      clock += DEFAULT_TIMING.tmoStepMs;
    }
    const limit = cg.limitBytes();
    assert.ok(limit < anon0, `limit ${limit} went below the anonymous memory ${anon0}`);
    const z1 = (await p.scheduler()).zram!;
    assert.ok(z1.origBytes >= 32 * MiB, `swapped out ${z1.origBytes}`);
    assert.ok(z1.memUsedBytes > 0, `the device takes RAM for what it holds: ${z1.memUsedBytes}`);
    // The host tells the guest's own pages on swap (pagemap) from the rest of what the device holds.
    const swapped = async (): Promise<number> => (await p.scheduler()).memory!.find((m) => m.id === s.id)!.swappedBytes;
    const swapped1 = await swapped();
    assert.ok(swapped1 >= 16 * MiB && swapped1 <= z1.origBytes, `guest pages on swap ${swapped1} of ${z1.origBytes} swapped out`);
    // Back to a roomy limit, the guest reads every byte back from swap.
    cg.setLimit(anon0 * 4);
    assert.equal(text((await p.invoke({ function: 'mem64-c', mode: 'warm', sandboxId: s.id, input: new Uint8Array(0) })).output), checksum);
    assert.ok((await swapped()) < swapped1 / 2, 'the pages the request read are back in memory');
    // Another setting removes the device.
    await p.configureScheduler({ policy: 'none', tier: null });
    assert.equal((await p.scheduler()).zram, undefined);
    assert.ok(!swaps().includes(device), `${device} is swapped off`);
    await p.configureScheduler({ policy: 'tmo', tier: 'compressed' });
    device = (await p.scheduler()).zram!.device;
  } finally {
    await p.close();
  }
  assert.ok(!swaps().includes(device), `${device} is removed at close`);
});
