// `thaw a1 a1-ci` end to end, in-process: five minutes of generated trace at 10x replayed against
// horizontal hosts (one instance each) and vertical hosts (4 instances each). Every invocation must
// be served in both layouts; horizontal hosts carry one instance each; vertical hosts carry several
// and fewer hosts start for the same invocations. The config's trace (seed 351) has two pairs of
// invocations of one function due under 1 ms apart in real time: the replayer sends each pair
// together, so that function needs two sandboxes at once in either layout, quiet machine or not.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, tempDataDir } from './helpers.js';
import { generateTrace } from '../harness/trace/generate.js';
import { A1_CONFIG_DIR, a1Windows, loadA1Config, type A1Summary } from '../harness/a1.js';
import type { ReplayRun } from '../harness/trace/replay-run.js';

test('thaw a1 a1-ci: vertical hosts serve the same invocations with fewer host starts than horizontal ones', () => {
  const dataDir = tempDataDir();
  const outputDir = tempDataDir();
  try {
    const r = spawnSync(process.execPath, [CLI, '--data-dir', dataDir, 'a1', 'a1-ci', '--output-dir', outputDir, '--no-progress'], { encoding: 'utf8', timeout: 300_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /host starts/);
    const dirs = readdirSync(outputDir);
    assert.equal(dirs.length, 1);
    const dir = join(outputDir, dirs[0]!);
    const run = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as ReplayRun;
    assert.deepEqual(run.settings, ['none/horizontal', 'none/vertical']);

    // Every invocation of the four most invoked functions, served in both layouts.
    const { params } = loadA1Config(join(A1_CONFIG_DIR, 'a1-ci.json'));
    const p = params.replay;
    const trace = generateTrace(p.source.kind === 'generator' ? p.source.generator : assert.fail('a1-ci is generated'));
    const expected = trace.invocations.filter((i) => i.fn < p.maxFunctions && i.startS < trace.durationS).length;
    for (const setting of run.settings) {
      const rows = run.rows.filter((x) => x.setting === setting);
      assert.equal(rows.length, expected, setting);
      assert.deepEqual(rows.filter((x) => !x.ok).map((x) => x.error), [], setting);
    }

    const hosts = (setting: string): NonNullable<ReplayRun['hosts']> => run.hosts!.filter((h) => h.setting === setting);
    const horizontal = hosts('none/horizontal');
    const vertical = hosts('none/vertical');
    // Horizontal: one instance per host, and a function needed two sandboxes at once.
    assert.ok(horizontal.length > p.maxFunctions, `${horizontal.length} horizontal hosts for ${p.maxFunctions} functions`);
    assert.deepEqual([...new Set(horizontal.map((h) => h.maxInstances))], [1]);
    // Vertical: some host carried several instances, and fewer hosts started.
    assert.ok(vertical.some((h) => h.maxInstances >= 2), JSON.stringify(vertical));
    assert.ok(vertical.every((h) => h.maxInstances <= p.instancesPerHost), JSON.stringify(vertical));
    assert.ok(vertical.length < horizontal.length, `vertical ${vertical.length} hosts, horizontal ${horizontal.length}`);

    // The A1 tables: per window length, windows whose invocations add up, host starts as counted above.
    const summary = JSON.parse(readFileSync(join(dir, 'a1-summary.json'), 'utf8')) as A1Summary[];
    for (const windowS of [60, 300]) {
      for (const [setting, n] of [['none/horizontal', horizontal.length], ['none/vertical', vertical.length]] as const) {
        const s = summary.find((x) => x.windowS === windowS && x.setting === setting)!;
        assert.equal(s.invocations, expected);
        assert.equal(s.hostStarts, n);
        assert.equal(a1Windows(run, windowS).filter((w) => w.setting === setting).reduce((a, w) => a + w.invocations, 0), expected);
      }
    }
    // Hosts' memory was read (in-process: the hosts run here).
    assert.ok(run.samples.some((s) => (s.hostRssBytes ?? 0) > 0), 'no host memory sampled');
    for (const f of ['a1.txt', 'a1-windows.csv', 'plots/a1-1min.svg', 'plots/a1-5min.svg', 'report.html']) assert.ok(existsSync(join(dir, f)), f);
    assert.match(readFileSync(join(dir, 'plots/a1-1min.svg'), 'utf8'), /^<svg/);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(outputDir, { recursive: true, force: true });
  }
});

test('loadA1Config() reads layouts from settings; without a layout, or with bad windows, it is THAW_CONFIG_INVALID naming the field', () => {
  const base = join(A1_CONFIG_DIR, 'a1-ci.json');
  // A layout is part of a setting; none in any layout is the baseline, replayed first.
  const ok = loadA1Config(base, { settings: ['tmo/vertical', 'none/vertical', 'none/horizontal'], instances_per_host: 8 }).params.replay;
  assert.deepEqual(ok.settings.map((s) => [s.id, s.policy, s.layout]), [['none/vertical', 'none', 'vertical'], ['none/horizontal', 'none', 'horizontal'], ['tmo/vertical', 'tmo', 'vertical']]);
  assert.equal(ok.instancesPerHost, 8);
  assert.throws(() => loadA1Config(base, { settings: ['none'] }), (e: Error & { code?: string }) => e.code === 'THAW_CONFIG_INVALID' && /layout/.test(e.message));
  assert.throws(() => loadA1Config(base, { windows_s: [60, -1] }), (e: Error & { code?: string }) => e.code === 'THAW_CONFIG_INVALID' && /windows_s/.test(e.message));
  assert.throws(() => loadA1Config(base, { settings: ['none/diagonal'] }), (e: Error & { code?: string }) => e.code === 'THAW_CONFIG_INVALID' && /settings/.test(e.message));
  assert.throws(() => loadA1Config(base, { instances_per_host: 0 }), (e: Error & { code?: string }) => e.code === 'THAW_CONFIG_INVALID' && /instances_per_host/.test(e.message));
});
