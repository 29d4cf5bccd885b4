// Every restore strategy end to end on the in-process platform with mem64-c (whose output is a
// checksum of 64 MiB of memory): restored output equals warm output, from a full snapshot and a
// diff chain, and under 8 concurrent restores of one snapshot and of 8 snapshot copies.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeWorkingSet, WORKING_SET_FILE } from '../restore/working-set.js';
import { ARTEFACTS_MAC_FILE } from '../snapshot/snapshot-seal.js';
import { deployExample, newPlatform, rejectsWith, text } from './helpers.js';
import { discardArtefacts, listStrategies } from '../restore/index.js';
import { dramDir } from '../restore/strategies/dram.js';

const p = newPlatform({ maxIdleSandboxes: 16 });
const input = Buffer.from('restore');
const strategies = listStrategies().filter((s) => s.support.ok).map((s) => s.id);
const unsupported = listStrategies().filter((s) => !s.support.ok);
const snapshotRoot = (p as unknown as { snapshotRoot: string }).snapshotRoot;
const snapshotIds: string[] = [];
after(async () => {
  await p.close();
  for (const id of snapshotIds) discardArtefacts(snapshotRoot, id);
});

let warmOutput = '';
let fullId = '';
let diffId = '';

test('setup: mem64-c cold, full snapshot, warm output, diff snapshot', async () => {
  await deployExample(p, 'mem64-c');
  const cold = await p.invoke({ function: 'mem64-c', mode: 'cold', input });
  const full = await p.createSnapshot({ sandboxId: cold.sandboxId });
  fullId = full.id;
  warmOutput = text((await p.invoke({ function: 'mem64-c', mode: 'warm', sandboxId: cold.sandboxId, input })).output);
  assert.equal(warmOutput, text(cold.output));
  const restored = await p.invoke({ function: 'mem64-c', mode: 'snapshot', snapshotId: full.id, input });
  diffId = (await p.createSnapshot({ sandboxId: restored.sandboxId, kind: 'diff' })).id;
  snapshotIds.push(fullId, diffId);
  await p.deleteSandbox(cold.sandboxId);
  await p.deleteSandbox(restored.sandboxId);
});

for (const strategy of strategies) {
  test(`${strategy}: restored output equals the warm output (full snapshot, twice, and a diff chain)`, async () => {
    for (let i = 0; i < 2; i++) {
      const r = await p.invoke({ function: 'mem64-c', mode: 'snapshot', snapshotId: fullId, strategy, input, keep: false });
      assert.equal(r.strategy, strategy);
      assert.equal(text(r.output), warmOutput, `${strategy} run ${i}`);
    }
    const fromDiff = await p.invoke({ function: 'mem64-c', mode: 'snapshot', snapshotId: diffId, strategy, input, keep: false });
    assert.equal(text(fromDiff.output), warmOutput);
  });

  test(`${strategy}: 8 concurrent restores of one snapshot and of 8 copies`, async () => {
    const one = await Promise.all(Array.from({ length: 8 }, () =>
      p.invoke({ function: 'mem64-c', mode: 'snapshot', snapshotId: fullId, strategy, input, keep: false })));
    for (const r of one) assert.equal(text(r.output), warmOutput);
    const copies = await copiesOfFull();
    const many = await Promise.all(copies.map((snapshotId) =>
      p.invoke({ function: 'mem64-c', mode: 'snapshot', snapshotId, strategy, input, keep: false })));
    for (const r of many) assert.equal(text(r.output), warmOutput);
  });
}

const recording = strategies.filter((s) => s === 'reap' || s === 'faasnap');
test(`first restores that all record, staggered so that later ones start from an adopted recording, all succeed (${recording.join(', ')})`, { skip: recording.length > 0 ? false : 'reap and faasnap unsupported here' }, async () => {
  for (const strategy of recording) {
    const r = await p.invoke({ function: 'mem64-c', mode: 'snapshot', snapshotId: fullId, strategy: 'eager', input });
    const fresh = (await p.createSnapshot({ sandboxId: r.sandboxId })).id;
    snapshotIds.push(fresh);
    await p.deleteSandbox(r.sandboxId);
    // Restores that record overlap restores given the sealed digest of the first recording: a
    // second recording adopted over the first would change the bytes under the latter.
    const results = await Promise.allSettled(Array.from({ length: 8 }, async (_, i) => {
      await new Promise((res) => setTimeout(res, i * 40));
      return p.invoke({ function: 'mem64-c', mode: 'snapshot', snapshotId: fresh, strategy, input, keep: false });
    }));
    const failed = results.flatMap((x) => (x.status === 'rejected' ? [String((x.reason as Error).message)] : []));
    assert.deepEqual(failed, [], strategy);
    for (const x of results) if (x.status === 'fulfilled') assert.equal(text(x.value.output), warmOutput, strategy);
    const again = await p.invoke({ function: 'mem64-c', mode: 'snapshot', snapshotId: fresh, strategy, input, keep: false });
    assert.equal(again.restore?.phase, 'replay', `${strategy}: the kept recording is replayed`);
  }
});

let copies: string[] | undefined;
/** Eight snapshots of one warm mem64-c sandbox, taken once. */
async function copiesOfFull(): Promise<string[]> {
  if (copies === undefined) {
    const r = await p.invoke({ function: 'mem64-c', mode: 'snapshot', snapshotId: fullId, input });
    copies = [];
    for (let i = 0; i < 8; i++) copies.push((await p.createSnapshot({ sandboxId: r.sandboxId })).id);
    snapshotIds.push(...copies);
    await p.deleteSandbox(r.sandboxId);
  }
  return copies;
}

test('strategies this host cannot run are refused with their reason, never replaced', async () => {
  for (const s of unsupported) {
    const err = await rejectsWith(p.invoke({ function: 'mem64-c', mode: 'snapshot', snapshotId: fullId, strategy: s.id, input }), 'THAW_STRATEGY_UNAVAILABLE');
    assert.match(err.message, new RegExp(s.id));
  }
});

test('artefacts built from a recorded working set are built by the daemon worker, not in the sandbox host', { skip: strategies.includes('sabre-reap') ? false : 'sabre-reap unsupported here' }, async () => {
  const r0 = await p.invoke({ function: 'mem64-c', mode: 'snapshot', snapshotId: fullId, input });
  const snap = await p.createSnapshot({ sandboxId: r0.sandboxId });
  snapshotIds.push(snap.id);
  await p.deleteSandbox(r0.sandboxId);
  const record = await p.invoke({ function: 'mem64-c', mode: 'snapshot', snapshotId: snap.id, strategy: 'sabre-reap', input, keep: false });
  assert.equal(record.restore?.phase, 'record');
  const replay = await p.invoke({ function: 'mem64-c', mode: 'snapshot', snapshotId: snap.id, strategy: 'sabre-reap', input, keep: false });
  assert.equal(replay.restore?.phase, 'replay');
  assert.ok((replay.timings.prepareMs ?? 0) > 0, 'the compressed working set was built by the prepare step');
  assert.equal(replay.restore?.prepareMs, 0, 'nothing was built inside the sandbox host');
  assert.equal(text(replay.output), warmOutput);
});

test('a forged working set (valid checksum, other pages) is removed by the daemon and recorded again; a forged artefact seal is refused', { skip: strategies.includes('reap') ? false : 'reap unsupported here' }, async () => {
  const r0 = await p.invoke({ function: 'mem64-c', mode: 'snapshot', snapshotId: fullId, input });
  const snap = await p.createSnapshot({ sandboxId: r0.sandboxId });
  snapshotIds.push(snap.id);
  await p.deleteSandbox(r0.sandboxId);
  const dir = join(snapshotRoot, snap.id);
  assert.equal((await p.invoke({ function: 'mem64-c', mode: 'snapshot', snapshotId: snap.id, strategy: 'reap', input, keep: false })).restore?.phase, 'record');
  const sealed = readFileSync(join(dir, WORKING_SET_FILE));
  assert.ok(JSON.parse(readFileSync(join(dir, ARTEFACTS_MAC_FILE), 'utf8')).artefacts[WORKING_SET_FILE], 'the recorded working set is sealed');
  // What a process without the daemon's key could write: a well-formed working set of other pages.
  writeFileSync(join(dir, WORKING_SET_FILE), encodeWorkingSet({ memoryPages: sealed.readUInt32LE(12), runs: [{ firstPage: 0, pageCount: 1 }] }));
  const forged = readFileSync(join(dir, WORKING_SET_FILE));
  const again = await p.invoke({ function: 'mem64-c', mode: 'snapshot', snapshotId: snap.id, strategy: 'reap', input, keep: false });
  assert.equal(again.restore?.phase, 'record', 'the forged working set was removed, not replayed');
  assert.equal(text(again.output), warmOutput);
  assert.notDeepEqual(readFileSync(join(dir, WORKING_SET_FILE)), forged);
  assert.equal((await p.invoke({ function: 'mem64-c', mode: 'snapshot', snapshotId: snap.id, strategy: 'reap', input, keep: false })).restore?.phase, 'replay');
  const seal = JSON.parse(readFileSync(join(dir, ARTEFACTS_MAC_FILE), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(dir, ARTEFACTS_MAC_FILE), JSON.stringify({ ...seal, mac: 'ab'.repeat(32) }));
  const err = await rejectsWith(p.invoke({ function: 'mem64-c', mode: 'snapshot', snapshotId: snap.id, strategy: 'reap', input }), 'THAW_SNAPSHOT_CORRUPT');
  assert.match(err.message, /artefacts\.mac does not match its MAC/);
  writeFileSync(join(dir, ARTEFACTS_MAC_FILE), JSON.stringify(seal));
});

/** Children of this process that have exited but were never reaped (zombies). */
function zombieChildren(): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after ')'.
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(ppid) === process.pid && state === 'Z') out.push(Number(pid));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

const killable = ['uffd', 'reap', 'sabre', 'thaw'].filter((s) => strategies.includes(s));
test(`a sandbox killed mid-restore (${killable.join(', ')}) leaves no process, fd or file behind, and the snapshot restores again`, async () => {
  // Same module, so the snapshot stays current across the redeploys that change only the timeout.
  await deployExample(p, 'mem64-c', { name: 'victim64' });
  const cold = await p.invoke({ function: 'victim64', mode: 'cold', input, keep: false });
  const snap = await p.createSnapshot({ sandboxId: (await p.bootSandbox('victim64')).id });
  snapshotIds.push(snap.id);
  for (const strategy of killable) await p.prepareSnapshot(snap.id, strategy);
  // 5 ms: shorter than touching 64 MiB through a page server or decoding it (>= 50 ms here), so
  // the host is killed while its page server or fill threads are at work. The redeploy retires
  // the idle sandbox and prepared hosts of the first deployment: the fd count is taken after it.
  await deployExample(p, 'mem64-c', { name: 'victim64', timeoutMs: 5 });
  await p.poolSettled();
  const fds = readdirSync('/proc/self/fd').length;
  for (const strategy of killable) {
    await rejectsWith(p.invoke({ function: 'victim64', mode: 'snapshot', snapshotId: snap.id, strategy, input }), 'THAW_TIMEOUT');
  }
  assert.deepEqual((await p.listSandboxes()).filter((s) => s.function === 'victim64' && s.origin.kind === 'snapshot'), []);
  await p.poolSettled();
  assert.deepEqual(zombieChildren(), []);
  assert.equal(readdirSync('/proc/self/fd').length, fds, 'the daemon holds no fd of the killed hosts');
  await deployExample(p, 'mem64-c', { name: 'victim64' });
  for (const strategy of killable) {
    const r = await p.invoke({ function: 'victim64', mode: 'snapshot', snapshotId: snap.id, strategy, input, keep: false });
    assert.equal(text(r.output), text(cold.output), strategy);
  }
});

test('no temporary artefacts remain beside the snapshots or in tmpfs', () => {
  const leftovers = [
    ...snapshotIds.flatMap((id) => readdirSync(`${snapshotRoot}/${id}`)),
    ...(existsSync(dramDir(snapshotRoot)) ? readdirSync(dramDir(snapshotRoot)) : []),
  ].filter((n) => n.includes('.tmp-'));
  assert.deepEqual(leftovers, []);
});
