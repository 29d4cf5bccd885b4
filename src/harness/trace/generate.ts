// A synthetic invocation trace with the published shape of the Azure Functions traces (the 2021
// invocation trace FaaSMem replays is not available offline). Seeded and deterministic: the same
// params give the same trace, byte for byte.
//
// The shape, and where each number comes from (../shared/data/azure2019/README.md, Shahrad et al.
// "Serverless in the Wild", ATC 2020):
// - apps have 1..10 functions, geometric with P(1) = 0.54 ("54% of apps have one function");
// - each function's trigger: HTTP 55%, queue 15%, event 2%, timer 16%, other 12% of functions,
//   allocated by largest remainder (exact shares, +-1 function) and shuffled;
// - each function's mean rate: log10(invocations per day) from a normal fitted to "45% of apps
//   are invoked at most once an hour, 81% at most once a minute" (mu 1.60, sigma 1.77), truncated
//   to [0, 8]: rates span about 8 orders of magnitude;
// - rates are then scaled per trigger group so that the groups carry HTTP 36%, queue 34%, event
//   25%, timer 2%, other 3% of the invocations (renormalised over the groups present), and all
//   together `totalRatePerMin` (which keeps the spread and makes the trace replayable here);
// - arrivals: HTTP and other Poisson; queue and event bursty (on/off: bursts of mean `burstS`
//   seconds at `burstiness` x the mean rate, silent between them, so the mean rate is kept);
//   timer periodic (period 1 / rate, random phase, 1% jitter);
// - durations: each function's median duration log-normal (mu -0.38, sigma 2.36 in ln seconds,
//   so about half the functions run under 1 s), each invocation log-normal around it (sigma 0.5),
//   clipped to [1 ms, 600 s];
// - memory: each app draws one application of the Azure 2019 memory data (day 1), uniformly per
//   application (not weighted by SampleCount), and its functions take its AverageAllocatedMb.

import { readFileSync } from 'node:fs';
import { ThawError } from '../../core/errors.js';
import { Prng } from '../../suite/inputs/prng.js';
import { ARRIVAL_OF, rankFunctions, TRIGGERS, type Trace, type TraceFunction, type TraceInvocation, type Trigger } from './types.js';

/** Shares of functions and of invocations per trigger (Azure 2019). */
export const FUNCTION_SHARE: Readonly<Record<Trigger, number>> = { http: 0.55, queue: 0.15, event: 0.02, timer: 0.16, other: 0.12 };
export const INVOCATION_SHARE: Readonly<Record<Trigger, number>> = { http: 0.36, queue: 0.34, event: 0.25, timer: 0.02, other: 0.03 };
/** log10(invocations per day) ~ N(mu, sigma) truncated to [min, max]. */
export const DAILY_RATE_LOG10 = { mu: 1.6, sigma: 1.77, min: 0, max: 8 } as const;
/** ln(median duration in seconds) ~ N(mu, sigma); per invocation ln-sigma around it. */
export const DURATION_LN = { mu: -0.38, sigma: 2.36, perInvocationSigma: 0.5, minS: 0.001, maxS: 600 } as const;
/** P(an app has one function) = 0.54: functions per app ~ geometric, at most 10. */
export const ONE_FUNCTION_APPS = 0.54;

/** Validated generator settings (replay-config.ts builds them from a config's `generator`). */
export interface GeneratorParams {
  readonly name: string;
  readonly seed: number;
  /** Trace length in seconds. */
  readonly durationS: number;
  readonly apps: number;
  /** Mean invocations per minute of all functions together. */
  readonly totalRatePerMin: number;
  readonly burstiness: number;
  readonly burstS: number;
  /** Azure 2019 memory rows (AverageAllocatedMb per application). */
  readonly memoryMb: readonly number[];
}

/** A generated function before its invocations are counted. */
type Drawn = Omit<TraceFunction, 'invocations'> & { trigger: Trigger; ratePerMin: number; medianS: number };

/** Generates the trace `p` describes. */
export function generateTrace(p: GeneratorParams): Trace {
  const rng = new Prng(p.seed);
  const fns = drawFunctions(p, rng);
  const invocations: TraceInvocation[] = [];
  fns.forEach((f, i) => {
    for (const startS of arrivals(f.trigger, f.ratePerMin / 60, p, rng)) {
      invocations.push({ fn: i, startS, durationS: clip(f.medianS * Math.exp(DURATION_LN.perInvocationSigma * normal(rng)), DURATION_LN.minS, DURATION_LN.maxS) });
    }
  });
  const ranked = rankFunctions(fns.map(({ medianS: _m, ...f }) => f), invocations);
  return { source: `generated ${p.name} seed ${p.seed}`, functions: ranked.functions, invocations: ranked.invocations, durationS: p.durationS };
}

/** Apps, their functions, triggers, rates, median durations and memory. */
export function drawFunctions(p: GeneratorParams, rng: Prng): Drawn[] {
  const perApp: number[] = [];
  for (let a = 0; a < p.apps; a++) {
    let n = 1;
    while (n < 10 && rng.double() >= ONE_FUNCTION_APPS) n++;
    perApp.push(n);
  }
  const total = perApp.reduce((x, y) => x + y, 0);
  const triggers = shuffle(allocate(total, FUNCTION_SHARE), rng);
  const fns: Drawn[] = [];
  perApp.forEach((n) => {
    const app = hex(rng);
    const memoryMb = p.memoryMb[rng.int(p.memoryMb.length)]!;
    for (let k = 0; k < n; k++) {
      const trigger = triggers[fns.length]!;
      const log10Daily = truncatedNormal(rng, DAILY_RATE_LOG10.mu, DAILY_RATE_LOG10.sigma, DAILY_RATE_LOG10.min, DAILY_RATE_LOG10.max);
      const medianS = clip(Math.exp(DURATION_LN.mu + DURATION_LN.sigma * normal(rng)), DURATION_LN.minS, DURATION_LN.maxS);
      fns.push({ app, func: hex(rng), trigger, ratePerMin: 10 ** log10Daily / 1440, memoryMb, medianS });
    }
  });
  // Scale each trigger group to its share of invocations, renormalised over the groups present.
  const present = TRIGGERS.filter((t) => fns.some((f) => f.trigger === t));
  const shareSum = present.reduce((s, t) => s + INVOCATION_SHARE[t], 0);
  for (const t of present) {
    const group = fns.filter((f) => f.trigger === t);
    const sum = group.reduce((s, f) => s + f.ratePerMin, 0);
    const target = (p.totalRatePerMin * INVOCATION_SHARE[t]) / shareSum;
    for (const f of group) f.ratePerMin *= target / sum;
  }
  return fns;
}

/** Arrival times in [0, durationS) of one function at `rate` per second. */
function arrivals(trigger: Trigger, rate: number, p: GeneratorParams, rng: Prng): number[] {
  const out: number[] = [];
  if (rate <= 0) return out;
  switch (ARRIVAL_OF[trigger]) {
    case 'poisson':
      for (let t = exponential(rng, rate); t < p.durationS; t += exponential(rng, rate)) out.push(t);
      break;
    case 'bursty': {
      // On/off: on for Exp(burstS), off for Exp(burstS * (burstiness - 1)); Poisson at rate * burstiness while on.
      let t = 0;
      let on = rng.double() < 1 / p.burstiness;
      while (t < p.durationS) {
        const end = Math.min(p.durationS, t + exponential(rng, 1 / (on ? p.burstS : p.burstS * (p.burstiness - 1))));
        if (on) for (let a = t + exponential(rng, rate * p.burstiness); a < end; a += exponential(rng, rate * p.burstiness)) out.push(a);
        t = end;
        on = !on;
      }
      break;
    }
    case 'periodic': {
      const period = 1 / rate;
      for (let t = rng.double() * period; t < p.durationS; t += period) {
        const jittered = t + 0.01 * period * normal(rng);
        if (jittered >= 0 && jittered < p.durationS) out.push(jittered);
      }
      break;
    }
  }
  return out;
}

/**
 * Reads AverageAllocatedMb per application from an Azure 2019 memory file: the original
 * (app_memory_percentiles.anon.d01.csv) or the shipped extract (harness/replay/), which keeps
 * its HashApp (12 hex digits), SampleCount and AverageAllocatedMb columns.
 */
export function readAzureMemory(path: string): number[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err: unknown) {
    throw new ThawError('THAW_CONFIG_INVALID', { detail: `cannot read the Azure 2019 memory data ${path}: ${(err as Error).message}` });
  }
  const lines = text.split('\n');
  const header = lines[0]!.trim().split(',');
  const col = header.indexOf('AverageAllocatedMb');
  if (col < 0) throw new ThawError('THAW_CONFIG_INVALID', { detail: `${path} line 1: no AverageAllocatedMb column (header: ${header.join(',')})` });
  const out: number[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line) continue;
    const mb = Number(line.split(',')[col]);
    if (!Number.isFinite(mb) || mb <= 0) throw new ThawError('THAW_CONFIG_INVALID', { detail: `${path} line ${i + 1}: AverageAllocatedMb is not a positive number` });
    out.push(mb);
  }
  if (out.length === 0) throw new ThawError('THAW_CONFIG_INVALID', { detail: `${path} has no application rows` });
  return out;
}

/** Counts per key for `n` items by largest remainder of n * share. */
function allocate<K extends string>(n: number, shares: Readonly<Record<K, number>>): K[] {
  const keys = Object.keys(shares) as K[];
  const exact = keys.map((k) => n * shares[k]);
  const counts = exact.map(Math.floor);
  const order = keys.map((_, i) => i).sort((a, b) => (exact[b]! - counts[b]!) - (exact[a]! - counts[a]!) || a - b);
  for (let left = n - counts.reduce((x, y) => x + y, 0), j = 0; left > 0; left--, j++) counts[order[j % keys.length]!]!++;
  return keys.flatMap((k, i) => Array<K>(counts[i]!).fill(k));
}

function shuffle<T>(xs: T[], rng: Prng): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

/** Standard normal (Box-Muller). */
function normal(rng: Prng): number {
  const u = 1 - rng.double();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.double());
}

function truncatedNormal(rng: Prng, mu: number, sigma: number, min: number, max: number): number {
  for (;;) {
    const x = mu + sigma * normal(rng);
    if (x >= min && x <= max) return x;
  }
}

function exponential(rng: Prng, rate: number): number {
  return -Math.log(1 - rng.double()) / rate;
}

const clip = (x: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, x));

function hex(rng: Prng): string {
  return [rng.u32(), rng.u32()].map((x) => x.toString(16).padStart(8, '0')).join('');
}
