// The `thaw` command as a user runs it: one-shot in-process commands, and the same flow
// against a daemon started with `thaw daemon --port 0`.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { CLI, manifestPath, startDaemon, tempDataDir } from './helpers.js';

function thaw(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('one-shot: deploy, cold invoke with --snapshot-after, snapshot restore, and errors as code: message', () => {
  const d = ['--data-dir', tempDataDir()];
  const dep = thaw([...d, 'deploy', manifestPath('hello-c')]);
  assert.equal(dep.code, 0, dep.stderr);
  assert.equal(JSON.parse(dep.stdout).name, 'hello-c');
  const cold = thaw([...d, 'invoke', 'hello-c', '--mode', 'cold', '-d', 'cli', '--json', '--snapshot-after']);
  assert.equal(cold.code, 0, cold.stderr);
  const c = JSON.parse(cold.stdout);
  assert.equal(c.output, 'hello, cli');
  assert.match(c.snapshot.id, /^snap-/);
  const restored = thaw([...d, 'invoke', 'hello-c', '--mode', 'snapshot', '--snapshot', c.snapshot.id, '-d', 'cli']);
  assert.equal(restored.code, 0, restored.stderr);
  assert.equal(restored.stdout, 'hello, cli\n');
  assert.match(restored.stderr, /restoreMs=/);
  assert.match(thaw([...d, 'snapshots', 'list']).stdout, new RegExp(c.snapshot.id));
  const missing = thaw([...d, 'invoke', 'nope', '-d', 'x']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^THAW_FUNCTION_NOT_FOUND: function 'nope' not found/);
  assert.equal(thaw([...d, 'invoke', 'hello-c', '--mode', 'sideways']).code, 2);
  const warm = thaw([...d, 'invoke', 'hello-c', '--mode', 'warm']);
  assert.equal(warm.code, 1);
  assert.match(warm.stderr, /THAW_NO_WARM_SANDBOX/);
});

test('daemon: deploy -> cold -> snapshot -> restore -> warm through the CLI with --daemon, for C, AssemblyScript and Python', async () => {
  const { url, daemon } = await startDaemon();
  after(() => daemon.kill('SIGKILL'));
  const run = (...args: string[]): string => {
    const r = thaw(['--daemon', url, ...args]);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  // The same flow for a C, an AssemblyScript and a Python function.
  const cases: [string, string, (output: string) => void][] = [
    ['hello-c', 'daemon', (o) => assert.equal(o, 'hello, daemon')],
    ['hello-as', 'daemon', (o) => assert.equal(o, 'hello, daemon')],
    ['hello-py', '{"name": "daemon"}', (o) => assert.deepEqual(JSON.parse(o), { hello: { name: 'daemon' } })],
  ];
  let last = '';
  for (const [name, data, check] of cases) {
    run('deploy', manifestPath(name));
    const cold = JSON.parse(run('invoke', name, '--mode', 'cold', '-d', data, '--json')) as { output: string; sandboxId: string };
    check(cold.output);
    const snap = JSON.parse(run('snapshots', 'create', cold.sandboxId)) as { id: string };
    const restored = JSON.parse(run('invoke', name, '--mode', 'snapshot', '--snapshot', snap.id, '-d', data, '--json')) as { output: string };
    const warm = JSON.parse(run('invoke', name, '--mode', 'warm', '--sandbox', cold.sandboxId, '-d', data, '--json')) as { output: string };
    assert.equal(restored.output, cold.output, name);
    assert.equal(warm.output, cold.output, name);
    assert.match(run('sandboxes', 'list'), new RegExp(cold.sandboxId));
    last = cold.sandboxId;
  }
  run('sandboxes', 'delete', last);
  const gone = thaw(['--daemon', url, 'invoke', 'hello-py', '--mode', 'warm', '--sandbox', last]);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /THAW_SANDBOX_NOT_FOUND/);
  daemon.kill('SIGTERM');
  const [code] = await once(daemon, 'exit');
  assert.equal(code, 0);
});

test('thaw demo prints the three paths with identical outputs', () => {
  const r = thaw(['demo', '--only', 'hello-c', '--runs', '1']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /hello-c\s+wasi/);
  assert.match(r.stdout, /restore\+invoke ms/);
  assert.match(r.stdout, /\byes\s*$/m);
});
