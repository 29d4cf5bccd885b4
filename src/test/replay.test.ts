// `thaw replay` end to end: a real daemon (`thaw daemon --port 0`), the shipped CI config (a
// minute of generated trace at 6x), the CLI replaying it over HTTP and writing its tables.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, startDaemon, tempDataDir } from './helpers.js';
import { generateTrace } from '../harness/trace/generate.js';
import { REPLAY_CONFIG_DIR, loadReplayConfigFile, parseReplayConfig } from '../harness/trace/replay-config.js';
import type { ReplayRun } from '../harness/trace/replay-run.js';
import { START_KINDS } from '../platform/types.js';

test('thaw replay replay-ci runs a minute of generated trace against a daemon and writes per-window results', async () => {
  const { url, daemon } = await startDaemon();
  after(() => daemon.kill('SIGKILL'));
  const outputDir = tempDataDir();
  // faasmem is another module's: where it is not built, its setting is skipped with the reason.
  const r = spawnSync(process.execPath, [CLI, '--daemon', url, 'replay', 'replay-ci', '--output-dir', outputDir, '--no-progress'], { encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /per setting/);
  assert.match(r.stdout, /per 10 s window/);

  const dirs = readdirSync(outputDir);
  assert.equal(dirs.length, 1);
  const dir = join(outputDir, dirs[0]!);
  const run = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as ReplayRun & { windows: { setting: string; requests: number }[] };
  // Every invocation of the four most invoked generated functions was replayed, and succeeded.
  const p = parseReplayConfig(loadReplayConfigFile(join(REPLAY_CONFIG_DIR, 'replay-ci.json')).raw, REPLAY_CONFIG_DIR);
  const trace = generateTrace(p.source.kind === 'generator' ? p.source.generator : assert.fail('replay-ci is generated'));
  const expected = trace.invocations.filter((i) => i.fn < 4).length;
  const none = run.rows.filter((x) => x.setting === 'none');
  assert.equal(none.length, expected);
  assert.deepEqual(none.filter((x) => !x.ok).map((x) => x.error), []);
  // The starts the replies named are the ones the daemon's scheduler counted.
  const counted = Object.values(run.scheduler.none!.functions).reduce((acc, f) => {
    for (const k of START_KINDS) acc[k] += f.starts[k];
    return acc;
  }, { cold: 0, snapshot: 0, warm: 0, 'semi-warm': 0 });
  for (const k of START_KINDS) assert.equal(none.filter((x) => x.start === k).length, counted[k], k);
  assert.ok(counted.snapshot > 0 && counted.warm > 0, JSON.stringify(counted));
  // Six windows of 10 s whose requests add up; memory was sampled.
  const windows = run.windows.filter((w) => w.setting === 'none');
  assert.equal(windows.length, 6);
  assert.equal(windows.reduce((a, w) => a + w.requests, 0), expected);
  assert.ok(run.samples.some((s) => s.setting === 'none' && s.residentBytes > 0));
  if (!run.settings.every((s) => s === 'none' || run.skipped.some((k) => k.setting === s))) assert.ok(run.rows.some((x) => x.setting !== 'none'));
  for (const s of run.skipped) assert.match(r.stdout, new RegExp(`skipped ${s.setting}: THAW_`));
  for (const f of ['windows.csv', 'summary.txt', 'report.html', 'plots/density.svg', 'plots/memory-latency.svg']) assert.ok(existsSync(join(dir, f)), f);
  assert.match(readFileSync(join(dir, 'plots/density.svg'), 'utf8'), /^<svg/);
  assert.match(readFileSync(join(dir, 'report.html'), 'utf8'), /<svg/);
  daemon.kill('SIGTERM');
  const [code] = await once(daemon, 'exit');
  assert.equal(code, 0);
});
