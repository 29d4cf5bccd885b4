// End to end on the in-process platform with the WASI examples: deploy, cold, snapshot,
// restore, warm, diff snapshots, and every bad input the platform must survive.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, openSync, readSync, writeSync, closeSync, truncateSync, statSync, existsSync, writeFileSync, rmSync } from 'node:fs';
import { readState } from '../snapshot/snapshot-io.js';
import { crc32 } from 'node:zlib';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { assertBreakdown, deployExample, manifestPath, newPlatform, rejectsWith, smallTmpfs, tempDataDir, text, unmount } from './helpers.js';
import { readManifestFile } from '../cli/context.js';
import type { SnapshotInfo } from '../platform/types.js';
import type { ThawError } from '../core/errors.js';
import { moduleOf, name, section } from '../runtimes/wasi/_wasm-fixtures.js';
import { setUpCgroupParent } from '../sandbox/cgroup.js';

const p = newPlatform({ maxIdleSandboxes: 8 });
after(() => p.close());
const input = Buffer.from('world');

for (const name of ['hello-c', 'hello-as', 'mem64-c']) {
  test(`${name}: cold, snapshot restore and warm give identical outputs`, async () => {
    await deployExample(p, name);
    const cold = await p.invoke({ function: name, mode: 'cold', input });
    assertBreakdown(cold.timings, ['acquireMs', 'bootMs']);
    const snap = await p.createSnapshot({ sandboxId: cold.sandboxId });
    assert.equal(snap.function, name);
    assert.ok(snap.current);
    const restored = await p.invoke({ function: name, mode: 'snapshot', snapshotId: snap.id, input, keep: false });
    assertBreakdown(restored.timings, ['acquireMs', 'restoreMs']);
    assert.equal(restored.timings.bootMs + restored.timings.initMs, 0);
    const warm = await p.invoke({ function: name, mode: 'warm', sandboxId: cold.sandboxId, input });
    assertBreakdown(warm.timings, []);
    assert.equal(text(restored.output), text(cold.output));
    assert.equal(text(warm.output), text(cold.output));
    if (name !== 'mem64-c') assert.equal(text(cold.output), 'hello, world');
    await p.deleteSandbox(cold.sandboxId);
  });
}

test('a snapshot restore without a strategy is auto: it names the strategy it picked and why, and GET of the snapshot says what it would pick', async () => {
  await deployExample(p, 'mem64-c');
  const cold = await p.invoke({ function: 'mem64-c', mode: 'cold', input, keep: false });
  const snap = await p.createSnapshot({ sandboxId: (await p.invoke({ function: 'mem64-c', mode: 'cold', input })).sandboxId });
  // A new snapshot of this size is sealed ahead of its first restore (the platform's sealAhead), in the worker.
  const deadline = Date.now() + 20_000;
  while ((await p.getSnapshot(snap.id)).auto?.strategy !== 'sealed' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const restored = await p.invoke({ function: 'mem64-c', mode: 'snapshot', snapshotId: snap.id, input, keep: false });
  assert.equal(text(restored.output), text(cold.output));
  assert.equal(restored.strategy, 'sealed', `the first restore after the snapshot is already sealed: ${restored.strategyReason}`);
  assert.match(restored.strategyReason ?? '', /holds this image/);
  assert.equal(restored.restore?.strategy, restored.strategy);
  const explicit = await p.invoke({ function: 'mem64-c', mode: 'snapshot', snapshotId: snap.id, strategy: 'eager', input, keep: false });
  assert.equal(explicit.strategy, 'eager');
  assert.equal(explicit.strategyReason, undefined, 'a named strategy needs no reason');
  const info = await p.getSnapshot(snap.id);
  assert.ok(info.auto && info.auto.strategy === 'sealed' && info.auto.reason.length > 0, JSON.stringify(info.auto));
  await p.deleteSnapshot(snap.id);
});

test('a diff snapshot of a restored sandbox stores fewer bytes and restores the same outputs', async () => {
  await deployExample(p, 'mem64-c');
  const cold = await p.invoke({ function: 'mem64-c', mode: 'cold', input });
  const full = await p.createSnapshot({ sandboxId: cold.sandboxId });
  const restored = await p.invoke({ function: 'mem64-c', mode: 'snapshot', snapshotId: full.id, input });
  const diff = await p.createSnapshot({ sandboxId: restored.sandboxId, kind: 'diff' });
  assert.equal(diff.kind, 'diff');
  assert.equal(diff.baseId, full.id);
  assert.ok(diff.diskBytes < full.diskBytes / 10, `diff ${diff.diskBytes} vs full ${full.diskBytes}`);
  const fromDiff = await p.invoke({ function: 'mem64-c', mode: 'snapshot', snapshotId: diff.id, input, keep: false });
  assert.equal(text(fromDiff.output), text(cold.output));
  await rejectsWith(p.deleteSnapshot(full.id), 'THAW_SNAPSHOT_IN_USE');
  await p.deleteSnapshot(diff.id);
  await p.deleteSnapshot(full.id);
});

test('bad modules are refused at deploy with a clear error', async () => {
  const { manifest } = readManifestFile(manifestPath('hello-c'));
  await rejectsWith(p.deployFunction({ ...manifest, name: 'junk' }, Buffer.from('definitely not wasm')), 'THAW_MODULE_INVALID');
  const hello = readFileSync(join(manifestPath('hello-c'), '..', 'build', 'hello.wasm'));
  await rejectsWith(p.deployFunction({ ...manifest, name: 'nohandler', handler: 'does_not_exist' }, hello), 'THAW_HANDLER_MISSING');
  await rejectsWith(p.deployFunction({ ...manifest, name: 'x', runtime: 'cobol' }, hello), 'THAW_RUNTIME_UNKNOWN');
  // A valid module that is not WASI: it imports env.foo.
  const envImport = moduleOf(
    section(1, [1, 0x60, 0, 0]),
    section(2, [1], name('env'), name('foo'), [0x00, 0]),
  );
  const notWasi = await rejectsWith(p.deployFunction({ ...manifest, name: 'notwasi' }, envImport), 'THAW_MODULE_NOT_WASI');
  assert.match(notWasi.message, /env/);
  await rejectsWith(p.deployFunction({ ...manifest, name: 'x', colour: 'blue' }, hello), 'THAW_CONFIG_INVALID');
});

test('unknown function, sandbox and snapshot ids are 404s', async () => {
  await rejectsWith(p.invoke({ function: 'nope', mode: 'cold', input }), 'THAW_FUNCTION_NOT_FOUND');
  await deployExample(p, 'hello-c');
  await rejectsWith(p.invoke({ function: 'hello-c', mode: 'warm', sandboxId: 'sb-000000000000', input }), 'THAW_SANDBOX_NOT_FOUND');
  await rejectsWith(p.invoke({ function: 'hello-c', mode: 'snapshot', snapshotId: 'snap-000000000000', input }), 'THAW_SNAPSHOT_NOT_FOUND');
  await rejectsWith(p.invoke({ function: 'hello-c', mode: 'snapshot', snapshotId: '../../etc', input }), 'THAW_SNAPSHOT_NOT_FOUND');
  await rejectsWith(p.deleteSandbox('sb-nope'), 'THAW_SANDBOX_NOT_FOUND');
  await rejectsWith(p.invoke({ function: 'hello-c', mode: 'snapshot', strategy: 'teleport', input }), 'THAW_STRATEGY_UNKNOWN');
});

test('an input over the function limit is refused before any sandbox runs', async () => {
  await deployExample(p, 'hello-c', { name: 'small-input', maxInputBytes: 8 });
  await rejectsWith(p.invoke({ function: 'small-input', mode: 'cold', input: Buffer.alloc(9) }), 'THAW_INPUT_TOO_LARGE');
  assert.equal((await p.listSandboxes()).filter((s) => s.function === 'small-input').length, 0);
});

test('a trap, a function error and memory exhaustion are reported; the daemon keeps serving', async () => {
  await deployExample(p, 'faulty-c');
  const cold = await p.invoke({ function: 'faulty-c', mode: 'cold', input: Buffer.from('echo') });
  assert.equal(text(cold.output), 'echo');
  const err = await rejectsWith(p.invoke({ function: 'faulty-c', mode: 'warm', sandboxId: cold.sandboxId, input: Buffer.from('trap') }), 'THAW_GUEST_TRAP');
  assert.match(err.message, /unreachable/);
  // A trapped sandbox is stopped: its state cannot be trusted.
  await rejectsWith(p.invoke({ function: 'faulty-c', mode: 'warm', sandboxId: cold.sandboxId, input }), 'THAW_SANDBOX_NOT_FOUND');
  const fail = await rejectsWith(p.invoke({ function: 'faulty-c', mode: 'cold', input: Buffer.from('fail') }), 'THAW_GUEST_ERROR');
  assert.match(fail.message, /asked to fail/);
  await rejectsWith(p.invoke({ function: 'faulty-c', mode: 'cold', input: Buffer.from('oom') }), 'THAW_GUEST_OOM');
  const ok = await p.invoke({ function: 'faulty-c', mode: 'cold', input: Buffer.from('still here'), keep: false });
  assert.equal(text(ok.output), 'still here');
});

test('keep=false discards the sandbox after a function error too', async () => {
  await deployExample(p, 'faulty-c', { name: 'not-kept' });
  const sandboxes = async () => (await p.listSandboxes()).filter((s) => s.function === 'not-kept').map((s) => s.id);
  await rejectsWith(p.invoke({ function: 'not-kept', mode: 'cold', input: Buffer.from('fail'), keep: false }), 'THAW_GUEST_ERROR');
  assert.deepEqual(await sandboxes(), []);
  const sb = await p.bootSandbox('not-kept');
  await rejectsWith(p.invoke({ function: 'not-kept', mode: 'warm', sandboxId: sb.id, input: Buffer.from('fail'), keep: false }), 'THAW_GUEST_ERROR');
  assert.deepEqual(await sandboxes(), []);
  // Without keep=false a function error leaves the sandbox for the next warm invocation.
  await rejectsWith(p.invoke({ function: 'not-kept', mode: 'cold', input: Buffer.from('fail') }), 'THAW_GUEST_ERROR');
  assert.equal((await sandboxes()).length, 1);
});

test('a warm invocation waits briefly for a busy sandbox, then gets THAW_FUNCTION_BUSY; none at all is THAW_NO_WARM_SANDBOX', async () => {
  await deployExample(p, 'faulty-c', { name: 'busy-fn', timeoutMs: 3_000 });
  const cold = await p.invoke({ function: 'busy-fn', mode: 'cold', input: Buffer.from('a') });
  // A snapshot holds the only sandbox busy for a moment: the warm invocation waits for it.
  const [, warm] = await Promise.all([
    p.createSnapshot({ sandboxId: cold.sandboxId }),
    p.invoke({ function: 'busy-fn', mode: 'warm', input: Buffer.from('b') }),
  ]);
  assert.equal(warm.sandboxId, cold.sandboxId);
  assert.equal(text(warm.output), 'b');
  // A handler that spins holds it past the wait: 429, after about a second, not at once.
  const spinning = p.invoke({ function: 'busy-fn', mode: 'warm', sandboxId: cold.sandboxId, input: Buffer.from('spin') });
  const t0 = performance.now();
  const busy = await rejectsWith(p.invoke({ function: 'busy-fn', mode: 'warm', input: Buffer.from('c') }), 'THAW_FUNCTION_BUSY');
  const waitedMs = performance.now() - t0;
  assert.equal(busy.status, 429);
  assert.ok(waitedMs >= 900 && waitedMs < 2_500, `waited ${waitedMs} ms`);
  await rejectsWith(spinning, 'THAW_TIMEOUT');
  const none = await rejectsWith(p.invoke({ function: 'busy-fn', mode: 'warm', input: Buffer.from('d') }), 'THAW_NO_WARM_SANDBOX');
  assert.equal(none.status, 404);
});

test('an output over maxOutputBytes is refused in the sandbox host with THAW_OUTPUT_TOO_LARGE', async () => {
  await deployExample(p, 'faulty-c', { name: 'small-output', maxOutputBytes: 4 });
  assert.equal((await p.getFunction('small-output')).maxOutputBytes, 4);
  assert.equal(text((await p.invoke({ function: 'small-output', mode: 'cold', input: Buffer.from('four'), keep: false })).output), 'four');
  const err = await rejectsWith(p.invoke({ function: 'small-output', mode: 'cold', input: Buffer.from('five!') }), 'THAW_OUTPUT_TOO_LARGE');
  assert.equal(err.status, 502);
  assert.match(err.message, /'small-output' wrote more than its limit of 4 output bytes/);
  // The guest was stopped mid-handler: its sandbox is not kept.
  assert.equal((await p.listSandboxes()).filter((s) => s.function === 'small-output').length, 0);
  await deployExample(p, 'faulty-c', { name: 'default-output' });
  assert.equal((await p.getFunction('default-output')).maxOutputBytes, 6 * 1024 * 1024);
});

test('a handler that runs past its timeout is killed and reported', async () => {
  await deployExample(p, 'faulty-c', { name: 'slow', timeoutMs: 300 });
  const err = await rejectsWith(p.invoke({ function: 'slow', mode: 'cold', input: Buffer.from('spin') }), 'THAW_TIMEOUT');
  assert.match(err.message, /300 ms/);
  // From a snapshot too: the handler's budget, not the restore's (initTimeoutMs), is named.
  const sb = await p.bootSandbox('slow');
  const snap = await p.createSnapshot({ sandboxId: sb.id });
  const restored = await rejectsWith(p.invoke({ function: 'slow', mode: 'snapshot', snapshotId: snap.id, input: Buffer.from('spin') }), 'THAW_TIMEOUT');
  assert.match(restored.message, /timed out after 300 ms/);
  await p.deleteSandbox(sb.id);
  const ok = await p.invoke({ function: 'slow', mode: 'cold', input: Buffer.from('after'), keep: false });
  assert.equal(text(ok.output), 'after');
});

test('a sandbox host killed mid-invocation is reported as died and replaced', async () => {
  await deployExample(p, 'faulty-c', { name: 'victim', timeoutMs: 10_000 });
  const cold = await p.invoke({ function: 'victim', mode: 'cold', input: Buffer.from('x') });
  const pid = (await p.listSandboxes()).find((s) => s.id === cold.sandboxId)!.hostPid;
  const pending = p.invoke({ function: 'victim', mode: 'warm', sandboxId: cold.sandboxId, input: Buffer.from('spin') });
  setTimeout(() => process.kill(pid, 'SIGKILL'), 150);
  await rejectsWith(pending, 'THAW_SANDBOX_DIED');
  const ok = await p.invoke({ function: 'victim', mode: 'cold', input: Buffer.from('next'), keep: false });
  assert.equal(text(ok.output), 'next');
});

test('truncated or bit-flipped snapshots are refused by checksum and never used', async () => {
  await deployExample(p, 'mem64-c');
  const cold = await p.invoke({ function: 'mem64-c', mode: 'cold', input, keep: false });
  void cold;
  const sb = await p.bootSandbox('mem64-c');
  const a = await p.createSnapshot({ sandboxId: sb.id });
  const b = await p.createSnapshot({ sandboxId: sb.id });
  const dataDir = join(p.functions.hostFunction('mem64-c').artefactPath, '..', '..', '..', 'snapshots');
  const fd = openSync(join(dataDir, a.id, 'memory.img'), 'r+');
  writeSync(fd, Buffer.from([0x5a]), 0, 1, 1 << 20);
  closeSync(fd);
  // eager reads the file (auto may restore from the sealed image the daemon made when the
  // snapshot was taken, which holds the bytes as they were checked then).
  const err = await rejectsWith(p.invoke({ function: 'mem64-c', mode: 'snapshot', snapshotId: a.id, strategy: 'eager', input }), 'THAW_SNAPSHOT_CORRUPT');
  assert.match(err.message, /checksum/);
  const state = join(dataDir, b.id, 'state.thaw');
  truncateSync(state, statSync(state).size - 5);
  await rejectsWith(p.invoke({ function: 'mem64-c', mode: 'snapshot', snapshotId: b.id, input }), 'THAW_SNAPSHOT_CORRUPT');
  await rejectsWith(p.invoke({ function: 'mem64-c', mode: 'snapshot', snapshotId: b.id, strategy: 'eager', input }), 'THAW_SNAPSHOT_CORRUPT');
  const ok = await p.invoke({ function: 'mem64-c', mode: 'warm', sandboxId: sb.id, input });
  assert.ok(ok.output.length > 0);
});

test('snapshots are sealed by the daemon: a forged state file, a forged MAC and a missing MAC are refused before any restore', async () => {
  await deployExample(p, 'hello-c');
  const sb = await p.bootSandbox('hello-c');
  const snaps = [];
  for (let i = 0; i < 3; i++) snaps.push(await p.createSnapshot({ sandboxId: sb.id }));
  const [forged, badMac, unsealed] = snaps as [SnapshotInfo, SnapshotInfo, SnapshotInfo];
  const root = join(p.functions.hostFunction('hello-c').artefactPath, '..', '..', '..', 'snapshots');
  for (const s of snaps) assert.ok(existsSync(join(root, s.id, 'state.mac')), 'sealed when taken');
  const ok = await p.invoke({ function: 'hello-c', mode: 'snapshot', snapshotId: forged.id, input, keep: false });
  assert.equal(text(ok.output), 'hello, world');
  // Page runs shifted by one page and the file CRC recomputed: the file still decodes.
  const statePath = join(root, forged.id, 'state.thaw');
  const bytes = readFileSync(statePath);
  const runsAt = 24 + bytes.readUInt32LE(12);
  bytes.writeUInt32LE(bytes.readUInt32LE(runsAt) + 1, runsAt);
  bytes.writeUInt32LE(crc32(bytes.subarray(0, bytes.length - 4)), bytes.length - 4);
  writeFileSync(statePath, bytes);
  const err = await rejectsWith(p.invoke({ function: 'hello-c', mode: 'snapshot', snapshotId: forged.id, input }), 'THAW_SNAPSHOT_CORRUPT');
  assert.match(err.message, /MAC/);
  const macPath = join(root, badMac.id, 'state.mac');
  writeFileSync(macPath, JSON.stringify({ ...JSON.parse(readFileSync(macPath, 'utf8')) as object, mac: '00'.repeat(32) }));
  await rejectsWith(p.invoke({ function: 'hello-c', mode: 'snapshot', snapshotId: badMac.id, input }), 'THAW_SNAPSHOT_CORRUPT');
  rmSync(join(root, unsealed.id, 'state.mac'));
  await rejectsWith(p.invoke({ function: 'hello-c', mode: 'snapshot', snapshotId: unsealed.id, input }), 'THAW_SNAPSHOT_UNSEALED');
  await p.deleteSandbox(sb.id);
});

test('POST /v1/snapshots/:id/verify (Platform.verifySnapshot) reads every file and names the corrupt one', async () => {
  await deployExample(p, 'hello-c');
  const sb = await p.bootSandbox('hello-c');
  const snap = await p.createSnapshot({ sandboxId: sb.id });
  await p.prepareSnapshot(snap.id, 'sabre');
  const clean = await p.verifySnapshot(snap.id);
  assert.ok(clean.ok, JSON.stringify(clean));
  assert.ok(clean.files.some((f) => f.file === 'sabre-lz4-1.img' && f.status === 'ok'));
  const root = join(p.functions.hostFunction('hello-c').artefactPath, '..', '..', '..', 'snapshots');
  // A byte in a present page fails both the load and the file as mapped; one in a hole (a page
  // outside the page runs) only the file as mapped, which is what vanilla would serve.
  const present = readState(root, snap.id).runs[0]!.firstPage * 4096 + 1;
  const hole = (readState(root, snap.id).runs.at(-1)!.firstPage + readState(root, snap.id).runs.at(-1)!.pageCount) * 4096 + 1;
  const corruptAt = async (offset: number): Promise<string[]> => {
    const fd = openSync(join(root, snap.id, 'memory.img'), 'r+');
    const was = Buffer.alloc(1);
    readSync(fd, was, 0, 1, offset);
    writeSync(fd, Buffer.from([was[0]! ^ 0x5a]), 0, 1, offset);
    const bad = await p.verifySnapshot(snap.id);
    writeSync(fd, was, 0, 1, offset);
    closeSync(fd);
    assert.equal(bad.ok, false);
    return bad.files.filter((f) => f.status === 'corrupt').map((f) => f.file);
  };
  assert.deepEqual(await corruptAt(present), ['memory.img', 'memory.img (as mapped)']);
  assert.deepEqual(await corruptAt(hole), ['memory.img (as mapped)']);
  assert.ok((await p.verifySnapshot(snap.id)).ok, 'clean again');
  await rejectsWith(p.verifySnapshot('snap-nope'), 'THAW_SNAPSHOT_NOT_FOUND');
  await p.deleteSandbox(sb.id);
});

test('a periodic scrub that finds a flipped byte keeps the snapshot from every restore until it is whole again', async () => {
  const scrubbed = newPlatform({ scrubIntervalS: 1 });
  try {
    await deployExample(scrubbed, 'hello-c');
    const cold = await scrubbed.invoke({ function: 'hello-c', mode: 'cold', input });
    const snap = await scrubbed.createSnapshot({ sandboxId: cold.sandboxId });
    const root = join(scrubbed.functions.hostFunction('hello-c').artefactPath, '..', '..', '..', 'snapshots');
    // A hole page: only what vanilla maps would serve it, so only a scrub can catch it.
    const runs = readState(root, snap.id).runs;
    let holePage = 0;
    for (const r of runs) {
      if (r.firstPage > holePage) break;
      holePage = r.firstPage + r.pageCount;
    }
    assert.ok(holePage * 4096 < (await scrubbed.getSnapshot(snap.id)).memoryBytes, 'the image has a hole');
    const offset = holePage * 4096 + 7;
    const fd = openSync(join(root, snap.id, 'memory.img'), 'r+');
    try {
      writeSync(fd, Buffer.from([0x5a]), 0, 1, offset);
      // Within a few scrub periods the snapshot is known bad: no strategy restores it.
      let err: ThawError | undefined;
      for (let i = 0; i < 40 && err === undefined; i++) {
        await new Promise((r) => setTimeout(r, 250));
        err = await scrubbed.invoke({ function: 'hello-c', mode: 'snapshot', snapshotId: snap.id, strategy: 'vanilla', input, keep: false }).then(() => undefined, (e: unknown) => e as ThawError);
      }
      assert.equal(err?.code, 'THAW_SNAPSHOT_CORRUPT', String(err));
      assert.match(err!.message, /last scrub found memory\.img \(as mapped\)/);
      await rejectsWith(scrubbed.invoke({ function: 'hello-c', mode: 'snapshot', snapshotId: snap.id, strategy: 'eager', input, keep: false }), 'THAW_SNAPSHOT_CORRUPT');
      // Repaired and scrubbed again: restores work.
      writeSync(fd, Buffer.from([0]), 0, 1, offset);
    } finally {
      closeSync(fd);
    }
    assert.ok((await scrubbed.verifySnapshot(snap.id)).ok);
    const r = await scrubbed.invoke({ function: 'hello-c', mode: 'snapshot', snapshotId: snap.id, strategy: 'vanilla', input, keep: false });
    assert.equal(text(r.output), text(cold.output));
  } finally {
    await scrubbed.close();
  }
});

test('a snapshot of an older module version is refused after a redeploy', async () => {
  await deployExample(p, 'hello-c', { name: 'versioned' });
  const sb = await p.bootSandbox('versioned');
  const snap = await p.createSnapshot({ sandboxId: sb.id });
  const { manifest } = readManifestFile(manifestPath('hello-as'));
  const other = readFileSync(join(manifestPath('hello-as'), '..', 'build', 'hello.wasm'));
  await p.deployFunction({ ...manifest, name: 'versioned' }, other);
  assert.equal((await p.getSnapshot(snap.id)).current, false);
  await rejectsWith(p.invoke({ function: 'versioned', mode: 'snapshot', snapshotId: snap.id, input }), 'THAW_SNAPSHOT_VERSION');
  // Its sandbox ran the old version: warm invocations must not pick it up implicitly.
  await rejectsWith(p.invoke({ function: 'versioned', mode: 'warm', input }), 'THAW_NO_WARM_SANDBOX');
});

test('past maxSandboxes, idle sandboxes are evicted and busy ones make new requests fail with 503', async () => {
  const small = newPlatform({ maxSandboxes: 1 });
  try {
    await deployExample(small, 'faulty-c', { timeoutMs: 5_000 });
    const first = await small.invoke({ function: 'faulty-c', mode: 'cold', input: Buffer.from('a') });
    const second = await small.invoke({ function: 'faulty-c', mode: 'cold', input: Buffer.from('b') });
    assert.deepEqual((await small.listSandboxes()).map((s) => s.id), [second.sandboxId], `${first.sandboxId} was evicted`);
    const busy = small.invoke({ function: 'faulty-c', mode: 'warm', sandboxId: second.sandboxId, input: Buffer.from('spin') });
    const err = await rejectsWith(small.invoke({ function: 'faulty-c', mode: 'cold', input: Buffer.from('c') }), 'THAW_POOL_EXHAUSTED');
    assert.equal(err.status, 503);
    await rejectsWith(busy, 'THAW_TIMEOUT');
  } finally {
    await small.close();
  }
});

test('a host killed by its memory cgroup is THAW_GUEST_OOM naming the sandbox', async (t) => {
  const cg = setUpCgroupParent('thaw');
  if ('unavailable' in cg) return t.skip(cg.unavailable);
  // The cgroup allows memoryMiB (16) + 64 MiB for the host; reading a 300 MiB object into the
  // host's own memory passes it (the Wasm memory limit never sees those bytes).
  const small = newPlatform({ hostOverheadMiB: 64 });
  try {
    await deployExample(small, 'faulty-c', { name: 'hog' });
    await small.putObject('big', Buffer.alloc(300 * 1024 * 1024, 1));
    const cold = await small.invoke({ function: 'hog', mode: 'cold', input: Buffer.from('x') });
    const err = await rejectsWith(small.invoke({ function: 'hog', mode: 'warm', sandboxId: cold.sandboxId, input: Buffer.from('copy:big') }), 'THAW_GUEST_OOM');
    assert.equal(err.status, 502);
    assert.match(err.message, new RegExp(`function 'hog' ran out of memory \\(limit 16 MiB\\): sandbox '${cold.sandboxId}' .*killed by its memory cgroup`));
    assert.deepEqual(await small.listSandboxes(), []);
  } finally {
    await small.close();
  }
});

test('a snapshot written to a full disk is THAW_STORAGE_FULL from the sandbox host; the sandbox stays usable', async (t) => {
  const dataDir = tempDataDir();
  const snapshots = join(dataDir, 'snapshots');
  const skip = smallTmpfs(snapshots);
  if (skip) return t.skip(skip);
  const full = newPlatform({ dataDir });
  try {
    // mem64-c fills 64 MiB at init: far more than the 64 KiB the snapshot directory holds.
    await deployExample(full, 'mem64-c');
    const sb = await full.bootSandbox('mem64-c');
    const err = await rejectsWith(full.createSnapshot({ sandboxId: sb.id }), 'THAW_STORAGE_FULL');
    assert.equal(err.status, 507);
    assert.match(err.message, /ENOSPC/);
    assert.ok((await full.invoke({ function: 'mem64-c', mode: 'warm', sandboxId: sb.id, input })).output.length > 0);
  } finally {
    await full.close();
    unmount(snapshots);
  }
});
