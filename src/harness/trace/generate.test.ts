// The trace generator: deterministic, and its shape statistics are the published ones it claims
// (generate.ts's header); the 2021-format reader round-trips it and names malformed rows.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Prng } from '../../suite/inputs/prng.js';
import { ThawError } from '../../core/errors.js';
import { DURATION_LN, FUNCTION_SHARE, INVOCATION_SHARE, drawFunctions, generateTrace, readAzureMemory, type GeneratorParams } from './generate.js';
import { readTrace } from './read.js';
import { TRIGGERS, traceToCsv, type Trace } from './types.js';
import { AZURE_MEMORY_FILE } from './replay-config.js';

const memoryMb = readAzureMemory(AZURE_MEMORY_FILE);
const params = (o: Partial<GeneratorParams> = {}): GeneratorParams => ({
  name: 't', seed: 11, durationS: 600, apps: 40, totalRatePerMin: 60, burstiness: 10, burstS: 20, memoryMb, ...o,
});

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const sd = (xs: readonly number[]): number => Math.sqrt(mean(xs.map((x) => (x - mean(xs)) ** 2)));

test('generateTrace() is deterministic: equal params give the same trace, another seed another', () => {
  const a = traceToCsv(generateTrace(params()));
  assert.equal(traceToCsv(generateTrace(params())), a);
  assert.notEqual(traceToCsv(generateTrace(params({ seed: 12 }))), a);
  assert.ok(a.split('\n').length > 100);
});

test('generated functions have the published trigger mix, rate spread, durations and real memory sizes', () => {
  const fns = drawFunctions(params({ apps: 1500 }), new Prng(3));
  for (const t of TRIGGERS) {
    const share = fns.filter((f) => f.trigger === t).length / fns.length;
    assert.ok(Math.abs(share - FUNCTION_SHARE[t]) < 0.005, `${t}: ${share} of functions`);
  }
  const rates = fns.map((f) => f.ratePerMin);
  const decades = Math.log10(Math.max(...rates) / Math.min(...rates));
  assert.ok(decades >= 7 && decades <= 10, `rates span ${decades.toFixed(1)} orders of magnitude`);
  const lnMedian = fns.map((f) => Math.log(f.medianS));
  assert.ok(Math.abs(mean(lnMedian) - DURATION_LN.mu) < 0.15, `ln duration mean ${mean(lnMedian)}`);
  assert.ok(Math.abs(sd(lnMedian) - DURATION_LN.sigma) < 0.15, `ln duration sd ${sd(lnMedian)}`);
  const underOneS = fns.filter((f) => f.medianS < 1).length / fns.length;
  assert.ok(underOneS > 0.5 && underOneS < 0.62, `${underOneS} of functions under 1 s`);
  const known = new Set(memoryMb);
  assert.ok(fns.every((f) => known.has(f.memoryMb!)), 'a memory size not in the Azure 2019 data');
  // Uniform per application: the mean of the apps' draws is near the data's mean.
  const perApp = [...new Map(fns.map((f) => [f.app, f.memoryMb!])).values()];
  assert.ok(Math.abs(mean(perApp) / mean(memoryMb) - 1) < 0.1, `apps' mean ${mean(perApp)} MB vs data ${mean(memoryMb)} MB`);
});

test('generated arrivals: invocation shares per trigger, Poisson, bursty and periodic inter-arrivals', () => {
  const trace = generateTrace(params({ apps: 300, durationS: 6 * 3600, totalRatePerMin: 60 }));
  const total = trace.invocations.length;
  assert.ok(Math.abs(total / (6 * 60 * 60) - 1) < 0.15, `${total} invocations for 60/min over 6 h`);
  const byTrigger = new Map<string, number>();
  for (const inv of trace.invocations) byTrigger.set(trace.functions[inv.fn]!.trigger!, (byTrigger.get(trace.functions[inv.fn]!.trigger!) ?? 0) + 1);
  for (const t of TRIGGERS) {
    const share = (byTrigger.get(t) ?? 0) / total;
    assert.ok(Math.abs(share - INVOCATION_SHARE[t]) < 0.07, `${t}: ${share.toFixed(3)} of invocations, published ${INVOCATION_SHARE[t]}`);
  }
  // Coefficient of variation of each trigger's busiest function's inter-arrival times.
  const cv = (t: string): number => {
    const fn = trace.functions.findIndex((f) => f.trigger === t);
    const starts = trace.invocations.filter((i) => i.fn === fn).map((i) => i.startS);
    assert.ok(starts.length > 50, `${t}: ${starts.length} arrivals`);
    const gaps = starts.slice(1).map((s, i) => s - starts[i]!);
    return sd(gaps) / mean(gaps);
  };
  assert.ok(Math.abs(cv('http') - 1) < 0.2, `http CV ${cv('http')}`);
  assert.ok(cv('queue') > 1.8, `queue CV ${cv('queue')}`);
  assert.ok(cv('timer') < 0.1, `timer CV ${cv('timer')}`);
  for (let i = 1; i < trace.functions.length; i++) assert.ok(trace.functions[i - 1]!.invocations >= trace.functions[i]!.invocations, 'not ranked by invocations');
});

test('readTrace() reads the 2021 format back, and names the line of a malformed row', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'thaw-trace-'));
  const gen: Trace = generateTrace(params());
  const file = join(dir, 'trace.csv');
  writeFileSync(file, traceToCsv(gen));
  const read = await readTrace(file);
  assert.equal(read.invocations.length, gen.invocations.length);
  assert.deepEqual(read.functions.map((f) => [f.app, f.func, f.invocations]), gen.functions.filter((f) => f.invocations > 0).map((f) => [f.app, f.func, f.invocations]));
  const t0 = gen.invocations[0]!.startS;
  read.invocations.forEach((inv, i) => assert.ok(Math.abs(inv.startS - (gen.invocations[i]!.startS - t0)) < 1e-5));
  const cases: [string, RegExp][] = [
    ['app,func,end_timestamp\na,f,1\n', /line 1: the header lacks column\(s\) duration/],
    ['app,func,end_timestamp,duration\na,f,10,1\na,f,ten,1\n', /line 3: end_timestamp 'ten' is not a number/],
    ['app,func,end_timestamp,duration\na,f,10,-1\n', /line 2: duration '-1' is not a non-negative/],
    ['app,func,end_timestamp,duration\na,f,10\n', /line 2: 3 fields, the header has 4/],
    ['app,func,end_timestamp,duration\n', /no invocations/],
    ['', /empty/],
  ];
  for (const [text, re] of cases) {
    writeFileSync(file, text);
    await assert.rejects(readTrace(file), (e: unknown) => e instanceof ThawError && e.code === 'THAW_CONFIG_INVALID' && re.test(e.message), text);
  }
  await assert.rejects(readTrace(join(dir, 'absent.csv')), /cannot read trace/);
});
