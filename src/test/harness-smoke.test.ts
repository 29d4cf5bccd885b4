// The shipped smoke experiment end to end through the CLI (`thaw bench smoke`) against a real
// redis-server: it must leave results.json, results.csv, the summary, traces, SVG plots and an
// HTML report with plausible content (every setting present, times > 0, every check ok).
// The harness never asserts timings; this test checks only that the numbers exist and are sane.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadBenchConfigFile, type BenchConfig } from '../harness/bench-config.js';
import type { BenchRow } from '../harness/bench-run.js';
import { redisServerSkipReason, startRedisServer } from '../store/testing/redis-server.js';
import { CLI } from './helpers.js';

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, THAW_LOG_LEVEL: 'error' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('thaw bench smoke runs end to end against redis-server and writes every output', { skip: redisServerSkipReason(), timeout: 15 * 60_000 }, async () => {
  const redis = await startRedisServer();
  const out = mkdtempSync(join(tmpdir(), 'thaw-bench-smoke-'));
  try {
    const res = await runCli(['--object-store', redis.url, 'bench', 'smoke', '--output-dir', out, '--no-progress']);
    assert.equal(res.code, 0, `stdout:\n${res.stdout}\nstderr:\n${res.stderr}`);
    const [runDir] = readdirSync(out).filter((n) => n.startsWith('smoke-'));
    assert.ok(runDir, 'a run directory');
    const dir = join(out, runDir);

    const config = loadBenchConfigFile('smoke').raw as BenchConfig;
    const settings = Object.keys(config.settings);
    const functions = config.functions.map((f) => f.id ?? f.name);
    const results = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as { rows: BenchRow[]; skipped: unknown[]; prepare: { step: string }[] };
    assert.deepEqual(results.skipped, []);
    const failed = results.rows.filter((r) => !r.ok);
    assert.deepEqual(failed.map((r) => `${r.function}/${r.setting}: ${r.error}`), []);
    for (const fn of functions) {
      for (const s of settings) {
        const rows = results.rows.filter((r) => r.function === fn && r.setting === s);
        assert.equal(rows.length, config.repeat ?? 1, `${fn} x ${s} rows`);
        for (const r of rows) {
          assert.ok(r.totalMs > 0 && r.handlerMs > 0 && r.wallMs > 0, `${fn} x ${s}: times > 0`);
          if (s !== 'warm') assert.ok(r.restoreMs > 0 && r.snapshotId !== '', `${fn} x ${s}: restored from a snapshot`);
        }
      }
    }
    const suiteRows = results.rows.filter((r) => r.function === 'json');
    assert.ok(suiteRows.every((r) => typeof r.read_s === 'number' && typeof r.process_s === 'number'), 'suite functions report read/process/write');
    assert.ok(results.prepare.some((p) => p.step === 'record-run'), 'reap had its record run');

    const csv = readFileSync(join(dir, 'results.csv'), 'utf8').trim().split('\n');
    assert.equal(csv.length, results.rows.length + 1);
    assert.match(csv[0]!, /^experiment,function,setting,strategy,storage,cacheDrop,parallelism,parSnapshots,recordInput,testInput/);

    const summary = readFileSync(join(dir, 'summary.txt'), 'utf8');
    for (const s of settings) assert.match(summary, new RegExp(`\\b${s}\\b`));
    assert.match(summary, /median ms/);
    assert.match(res.stdout, /vs vanilla/);

    type Saved = { traceId: string; spanId: string; parentSpanId: string | null; name: string; durationMs: number; service: string; attributes: Record<string, unknown> };
    const traces = JSON.parse(readFileSync(join(dir, 'traces.json'), 'utf8')) as { spans: Saved[] };
    const spanNamed = (name: string, service: string): Saved[] => traces.spans.filter((s) => s.name === name && s.service === service);
    for (const name of ['setting', 'prepare: boot', 'prepare: snapshot', 'step', 'invocation', 'read', 'process', 'write']) assert.ok(spanNamed(name, 'thaw-bench').length > 0, `harness span '${name}'`);
    for (const name of ['acquire', 'host restore', 'host invoke']) assert.ok(spanNamed(name, 'thaw-daemon').length > 0, `platform span '${name}'`);
    // Recorded inside the sandbox hosts, not placed from reported durations.
    for (const name of ['restore', 'open snapshot', 'resume', 'map or prefetch (fill)', 'invoke', 'handler', 'object get', 'object put']) {
      const recorded = spanNamed(name, 'thaw-sandbox-host');
      assert.ok(recorded.length > 0 && recorded.every((s) => s.attributes['thaw.placed'] === undefined), `host span '${name}', recorded`);
    }
    assert.ok(traces.spans.every((s) => s.attributes['thaw.placed'] !== true || ['read', 'process', 'write'].includes(s.name)), 'only the function\'s own seconds are placed');
    // Every recorded span hangs in its trace under a span that is there.
    const ids = new Set(traces.spans.map((s) => `${s.traceId}/${s.spanId}`));
    assert.deepEqual(traces.spans.filter((s) => s.parentSpanId !== null && !ids.has(`${s.traceId}/${s.parentSpanId}`)).map((s) => s.name), []);

    const plots = readdirSync(join(dir, 'plots'));
    assert.deepEqual(plots.sort(), ['breakdown.svg', 'latency-by-setting.svg', 'latency-vs-parallelism.svg']);
    for (const p of plots) {
      const svg = readFileSync(join(dir, 'plots', p), 'utf8');
      assert.match(svg, /^<svg[^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
      for (const s of settings) assert.ok(svg.includes(s), `${p} names setting ${s}`);
    }
    const html = readFileSync(join(dir, 'report.html'), 'utf8');
    assert.match(html, /^<!doctype html>/);
    assert.equal((html.match(/<svg/g) ?? []).length >= 3, true, 'inline SVGs');
    for (const fn of functions) assert.ok(html.includes(fn), `report names ${fn}`);
    assert.ok(!/<script|src="http|href="http/.test(html.replace(/xmlns(:xlink)?="http[^"]*"/g, '')), 'self-contained');
  } finally {
    await redis.stop();
    rmSync(out, { recursive: true, force: true });
  }
});
