// Results of a replay: per setting and window (trace time), P50/P95 latency, average and peak
// resident memory, starts by kind, bytes offloaded and faulted back, memory saved against `none`
// in the same window, and density by FaaSMem's formula; tables, SVG plots and an HTML report.
//
// Density (FaaSMem): Q / (Q - Q_off * (1 - M_f / M_b)), where Q is the memory the setting's own
// sandboxes would hold without offloading (their average resident plus offloaded bytes in the
// window), Q_off what they hold offloaded, and M_f / M_b the local memory an offloaded byte still
// costs on the setting's tier (config far_memory_cost). Where the samples carry the compressed
// store's size (storedBytes, counted in resident memory), that cost is measured instead: Q =
// resident - stored + offloaded, and the density is Q / resident. A setting that offloads nothing through a
// tier (tmo: its cgroup reclaim is not counted as held) is measured against none instead: Q is
// none's average resident memory in the window and Q_off how much less this setting held. It says how
// many times as many sandboxes fit in the same local memory; it is read beside the P95 columns
// (FaaSMem's "at the same P95"), not adjusted for them.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { writeFileDurable } from '../../snapshot/snapshot-io.js';
import { formatTable, renderSvg } from '../bench-report.js';
import { p95 } from '../bench-run.js';
import { median } from '../measure-paths.js';
import { START_KINDS, type StartKind } from '../../platform/types.js';
import type { ReplayRun } from './replay-run.js';

export interface WindowResult {
  readonly setting: string;
  readonly window: number;
  /** Window start and end, trace seconds. */
  readonly fromS: number;
  readonly toS: number;
  readonly requests: number;
  readonly requestsPerMin: number;
  readonly errors: number;
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly starts: Record<StartKind, number>;
  readonly avgResidentBytes: number;
  readonly peakResidentBytes: number;
  readonly avgOffloadedBytes: number;
  /** Bytes faulted back during the window (null when the daemon does not report them). */
  readonly faultedBackBytes: number | null;
  /** 1 - avg resident / none's avg resident in the same window (none: the first setting, `none` in some layout). */
  readonly savedVsNone: number;
  readonly density: number;
}

const MiB = 2 ** 20;

/** Per setting and window; windows with neither requests nor memory samples are left out. */
export function windowResults(run: ReplayRun): WindowResult[] {
  const count = Math.max(1, Math.ceil(run.durationS / run.windowS));
  const out: WindowResult[] = [];
  const noneResident = new Map<number, number>();
  for (const setting of run.settings) {
    if (run.skipped.some((s) => s.setting === setting)) continue;
    const tier = settingTier(setting);
    const cost = tier ? run.farMemoryCost[tier] ?? 0 : 0;
    for (let w = 0; w < count; w++) {
      const fromS = w * run.windowS;
      const toS = Math.min(run.durationS, fromS + run.windowS);
      const rows = run.rows.filter((r) => r.setting === setting && r.traceS >= fromS && r.traceS < toS);
      const samples = run.samples.filter((s) => s.setting === setting && s.traceS >= fromS && s.traceS < toS);
      if (rows.length === 0 && samples.length === 0) continue;
      const ok = rows.filter((r) => r.ok).map((r) => r.latencyMs);
      const resident = samples.map((s) => s.residentBytes);
      const avgResident = resident.length ? resident.reduce((a, b) => a + b, 0) / resident.length : NaN;
      const avgOffloaded = samples.length ? samples.reduce((a, s) => a + s.offloadedBytes, 0) / samples.length : 0;
      const faulted = samples.map((s) => s.faultedBackBytes).filter((x): x is number => x !== null);
      if (setting === run.settings[0]) noneResident.set(w, avgResident);
      const noneQ = noneResident.get(w) ?? NaN;
      const stored = samples.every((s) => s.storedBytes !== undefined) ? mean(samples.map((s) => s.storedBytes!)) : null;
      const density = densityOf(avgResident, avgOffloaded, stored, cost, noneQ);
      const starts = Object.fromEntries(START_KINDS.map((k) => [k, rows.filter((r) => r.start === k).length])) as Record<StartKind, number>;
      out.push({
        setting, window: w, fromS, toS, requests: rows.length, requestsPerMin: rows.length / ((toS - fromS) / 60), errors: rows.length - ok.length,
        p50Ms: ok.length ? median(ok) : NaN, p95Ms: ok.length ? p95(ok) : NaN, starts,
        avgResidentBytes: avgResident, peakResidentBytes: resident.length ? Math.max(...resident) : NaN, avgOffloadedBytes: avgOffloaded,
        faultedBackBytes: faulted.length ? Math.max(...faulted) - Math.min(...faulted) : null,
        savedVsNone: noneQ > 0 ? 1 - avgResident / noneQ : NaN,
        density,
      });
    }
  }
  return out;
}

/** One line per setting over the whole replay. */
export function settingSummary(run: ReplayRun, windows: readonly WindowResult[]): Record<string, string>[] {
  return run.settings.map((setting) => {
    const skipped = run.skipped.find((s) => s.setting === setting);
    if (skipped) return { setting, requests: '-', errors: '-', 'p50 ms': '-', 'p95 ms': '-', 'avg MiB': '-', 'peak MiB': '-', cold: '-', snapshot: '-', warm: '-', 'semi-warm': '-', 'saved vs none': '-', 'held offloaded avg MiB': '-', 'faulted back MiB': '-', density: '-', 'sent late p95 ms': '-', note: `skipped: ${skipped.reason}` };
    const rows = run.rows.filter((r) => r.setting === setting);
    const ok = rows.filter((r) => r.ok).map((r) => r.latencyMs);
    const samples = run.samples.filter((s) => s.setting === setting);
    const avg = mean(samples.map((s) => s.residentBytes));
    const held = mean(samples.map((s) => s.offloadedBytes));
    const noneAvg = mean(run.samples.filter((s) => s.setting === run.settings[0]).map((s) => s.residentBytes));
    const tier = settingTier(setting);
    const cost = tier ? run.farMemoryCost[tier] ?? 0 : 0;
    // Over the whole replay (a mean of per-window ratios would be dominated by near-empty windows).
    const stored = samples.length && samples.every((s) => s.storedBytes !== undefined) ? mean(samples.map((s) => s.storedBytes!)) : null;
    const density = densityOf(avg, held, stored, cost, noneAvg);
    return {
      setting, requests: String(rows.length), errors: String(rows.length - ok.length),
      'p50 ms': fmt(ok.length ? median(ok) : NaN), 'p95 ms': fmt(ok.length ? p95(ok) : NaN),
      'avg MiB': fmt(avg / MiB), 'peak MiB': fmt(Math.max(...samples.map((s) => s.residentBytes)) / MiB),
      ...Object.fromEntries(START_KINDS.map((k) => [k, String(rows.filter((r) => r.start === k).length)])),
      'saved vs none': noneAvg > 0 ? `${(100 * (1 - avg / noneAvg)).toFixed(1)}%` : '-',
      'held offloaded avg MiB': fmt(held / MiB),
      // Summed over the windows: bytes faulted back from the tier into live sandboxes.
      'faulted back MiB': fmt(windows.filter((x) => x.setting === setting).reduce((a, x) => a + (x.faultedBackBytes ?? 0), 0) / MiB),
      density: fmt(density, 2),
      // The replayer's own lag: an open loop is only open if invocations leave on time.
      'sent late p95 ms': fmt(rows.length ? p95(rows.map((r) => r.sentLateMs)) : NaN),
      note: '',
    };
  });
}

/** Latency by how the sandbox started, per setting: FaaSMem's semi-warm starts against snapshot restores. */
export function startKindRows(run: ReplayRun): Record<string, string>[] {
  const out: Record<string, string>[] = [];
  for (const setting of run.settings) {
    for (const kind of START_KINDS) {
      const lat = run.rows.filter((r) => r.setting === setting && r.ok && r.start === kind).map((r) => r.latencyMs);
      const thaw = run.rows.filter((r) => r.setting === setting && r.ok && r.start === kind && r.thawMs !== null).map((r) => r.thawMs!);
      if (lat.length === 0) continue;
      out.push({ setting, start: kind, n: String(lat.length), 'p50 ms': fmt(median(lat)), 'p95 ms': fmt(p95(lat)), 'p50 in Thaw ms': fmt(thaw.length ? median(thaw) : NaN) });
    }
  }
  return out;
}

/**
 * Semi-warm starts against snapshot restores of the same functions (the ranks that had a
 * semi-warm start), per setting: medians end to end and inside Thaw, and their ratio.
 */
export function semiWarmRows(run: ReplayRun): Record<string, string>[] {
  const out: Record<string, string>[] = [];
  for (const setting of run.settings) {
    const ok = run.rows.filter((r) => r.setting === setting && r.ok);
    const semi = ok.filter((r) => r.start === 'semi-warm');
    if (semi.length === 0) continue;
    const ranks = new Set(semi.map((r) => r.rank));
    const snap = ok.filter((r) => r.start === 'snapshot' && ranks.has(r.rank));
    const m = (xs: readonly number[]): number => (xs.length ? median(xs) : NaN);
    const inThaw = (xs: typeof ok): number[] => xs.filter((r) => r.thawMs !== null).map((r) => r.thawMs!);
    const semiMs = m(semi.map((r) => r.latencyMs));
    const snapMs = m(snap.map((r) => r.latencyMs));
    out.push({
      setting, functions: [...ranks].sort((a, b) => a - b).map((r) => run.functions[r]?.deployedAs ?? String(r)).join(' '),
      'semi-warm n': String(semi.length), 'semi-warm p50 ms': fmt(semiMs), 'snapshot n': String(snap.length), 'snapshot p50 ms': fmt(snapMs),
      'snapshot / semi-warm': fmt(snapMs / semiMs, 2),
      'in Thaw: semi-warm p50 ms': fmt(m(inThaw(semi))), 'snapshot p50 ms (in Thaw)': fmt(m(inThaw(snap))), 'ratio in Thaw': fmt(m(inThaw(snap)) / m(inThaw(semi)), 2),
    });
  }
  return out;
}

/** The per-window table as text rows. */
export function windowRows(windows: readonly WindowResult[]): Record<string, string>[] {
  return windows.map((w) => ({
    setting: w.setting, window: `${fmt(w.fromS, 0)}-${fmt(w.toS, 0)} s`, req: String(w.requests), 'req/min': fmt(w.requestsPerMin, 1), err: String(w.errors),
    'p50 ms': fmt(w.p50Ms), 'p95 ms': fmt(w.p95Ms), 'avg MiB': fmt(w.avgResidentBytes / MiB), 'peak MiB': fmt(w.peakResidentBytes / MiB),
    cold: String(w.starts.cold), snap: String(w.starts.snapshot), warm: String(w.starts.warm), semi: String(w.starts['semi-warm']),
    'offl MiB': fmt(w.avgOffloadedBytes / MiB), 'back MiB': w.faultedBackBytes === null ? '-' : fmt(w.faultedBackBytes / MiB),
    saved: Number.isFinite(w.savedVsNone) ? `${(100 * w.savedVsNone).toFixed(1)}%` : '-', density: fmt(w.density, 2),
  }));
}

export function densitySpec(run: ReplayRun, windows: readonly WindowResult[]): TopLevelSpec {
  const values = windows.filter((w) => Number.isFinite(w.density)).map((w) => ({ setting: w.setting, rpm: w.requestsPerMin, density: w.density }));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `${run.name}: density Q / (Q - Q_off (1 - M_f/M_b)) per ${run.windowS} s window`,
    data: { values }, width: 420, height: 260,
    mark: { type: 'point', filled: true },
    encoding: {
      x: { field: 'rpm', type: 'quantitative', title: 'requests per minute (trace time)' },
      y: { field: 'density', type: 'quantitative', title: 'density (x sandboxes in the same memory)', scale: { zero: false } },
      color: { field: 'setting', type: 'nominal' },
    },
  };
}

export function memorySpec(run: ReplayRun, windows: readonly WindowResult[]): TopLevelSpec {
  const values = windows.filter((w) => Number.isFinite(w.avgResidentBytes)).map((w) => ({ setting: w.setting, t: w.fromS, mib: w.avgResidentBytes / MiB, p95: w.p95Ms }));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `${run.name}: average resident memory and P95 latency per window`,
    data: { values },
    hconcat: [
      { width: 360, height: 220, mark: { type: 'line', point: true }, encoding: { x: { field: 't', type: 'quantitative', title: 'trace s' }, y: { field: 'mib', type: 'quantitative', title: 'avg resident MiB' }, color: { field: 'setting', type: 'nominal' } } },
      { width: 360, height: 220, mark: { type: 'line', point: true }, encoding: { x: { field: 't', type: 'quantitative', title: 'trace s' }, y: { field: 'p95', type: 'quantitative', title: 'P95 ms' }, color: { field: 'setting', type: 'nominal' } } },
    ],
  };
}

export interface ReplayOutputs {
  readonly dir: string;
  readonly summary: string;
  readonly windows: string;
  readonly files: readonly string[];
}

/** Writes results.json, windows.csv, summary.txt, plots/*.svg and report.html under outputDir/<name>-<stamp>/. */
export async function writeReplayOutputs(run: ReplayRun, outputDir: string, config: unknown): Promise<ReplayOutputs> {
  const stamp = run.startedAt.replace(/[-:]/g, '').replace(/\..*$/, '').replace('T', '-');
  const dir = join(outputDir, `${run.name}-${stamp}`);
  mkdirSync(join(dir, 'plots'), { recursive: true });
  const windows = windowResults(run);
  const summaryRows = settingSummary(run, windows);
  const wRows = windowRows(windows);
  const kindRows = startKindRows(run);
  const semiRows = semiWarmRows(run);
  const summary = `${formatTable(summaryRows)}\nlatency by start kind:\n${formatTable(kindRows)}`
    + (semiRows.length ? `\nsemi-warm starts against snapshot restores of the same functions:\n${formatTable(semiRows)}` : '');
  const windowsText = formatTable(wRows);
  const files: string[] = [];
  const put = (name: string, text: string): void => {
    writeFileDurable(join(dir, name), Buffer.from(text, 'utf8'));
    files.push(join(dir, name));
  };
  put('config.json', JSON.stringify(config, null, 2) + '\n');
  put('results.json', JSON.stringify({ ...run, windows }, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 1) + '\n');
  const cols = Object.keys(wRows[0] ?? {});
  put('windows.csv', [cols.join(','), ...wRows.map((r) => cols.map((c) => r[c]).join(','))].join('\n') + '\n');
  put('summary.txt', `${summary}\n${windowsText}`);
  const svgs: { title: string; svg: string }[] = [];
  for (const [file, title, spec] of [
    ['density.svg', 'Density against requests per minute', densitySpec(run, windows)],
    ['memory-latency.svg', 'Average resident memory and P95 latency per window', memorySpec(run, windows)],
  ] as const) {
    const svg = await renderSvg(spec);
    put(`plots/${file}`, svg);
    svgs.push({ title, svg });
  }
  put('report.html', reportHtml(run, summaryRows, kindRows, semiRows, wRows, svgs));
  return { dir, summary, windows: windowsText, files };
}

const esc = (s: string): string => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

function htmlTable(rows: readonly Record<string, string>[]): string {
  const cols = rows.length ? Object.keys(rows[0]!) : [];
  return `<table><thead><tr>${cols.map((c) => `<th>${esc(c)}</th>`).join('')}</tr></thead><tbody>${
    rows.map((r) => `<tr>${cols.map((c) => `<td>${esc(r[c] ?? '')}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
}

function reportHtml(run: ReplayRun, summary: readonly Record<string, string>[], kinds: readonly Record<string, string>[], semi: readonly Record<string, string>[], windows: readonly Record<string, string>[], svgs: readonly { title: string; svg: string }[]): string {
  const fns = run.functions.map((f) => ({
    rank: String(f.rank), app: f.app.slice(0, 12), func: f.func.slice(0, 12), trigger: f.trigger ?? '-', 'memory MB (Azure 2019)': f.memoryMb === null ? '-' : String(f.memoryMb),
    invocations: String(f.invocations), 'replayed as': f.deployedAs, input: f.input,
  }));
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>thaw replay: ${esc(run.name)}</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th:first-child,td:first-child{text-align:left}figure{margin:1.5em 0}</style>
</head><body>
<h1>thaw replay: ${esc(run.name)}</h1>
<p>${esc(run.description)}</p>
<p>Trace ${esc(run.source)}: ${run.durationS} s of trace replayed at ${run.timeScale}x (${(run.durationS / run.timeScale).toFixed(1)} s real per setting), windows of ${run.windowS} s, keep-alive ${run.keepAliveS} s (trace time).
Started ${esc(run.startedAt)}, finished ${esc(run.finishedAt)}; load average ${run.loadAvg.before.map((x) => x.toFixed(2)).join(' ')} before, ${run.loadAvg.after.map((x) => x.toFixed(2)).join(' ')} after.
Resident memory read from ${esc(run.memorySource)}. Latency is end to end as the replayer saw it.</p>
<h2>Per setting</h2>
${htmlTable(summary)}
<h2>Latency by start kind</h2>
${htmlTable(kinds)}
${semi.length ? `<h2>Semi-warm starts against snapshot restores of the same functions</h2>\n${htmlTable(semi)}` : ''}
${svgs.map((s) => `<figure><figcaption>${esc(s.title)}</figcaption>${s.svg}</figure>`).join('\n')}
<h2>Per window</h2>
${htmlTable(windows)}
<h2>Functions replayed (ranked by invocations; rank r runs functions[r mod k])</h2>
${htmlTable(fns)}
</body></html>
`;
}

/**
 * FaaSMem's density (see the header): `resident` local memory (with the compressed store when
 * `stored` is known), `held` offloaded bytes, `cost` the assumed M_f/M_b, `noneResident` none's.
 */
function densityOf(resident: number, held: number, stored: number | null, cost: number, noneResident: number): number {
  if (held > 0) {
    if (stored !== null) return resident > 0 ? (resident - stored + held) / resident : NaN;
    const q = resident + held;
    return q / (q - held * (1 - cost));
  }
  const qOff = Math.max(0, noneResident - resident);
  return noneResident > 0 ? noneResident / (noneResident - qOff) : NaN;
}

/** The tier of a setting id (`faasmem:remote@20us` -> remote), or null. */
function settingTier(setting: string): string | null {
  return setting.includes(':') ? setting.split(':')[1]!.split('@')[0]! : null;
}

function mean(xs: readonly number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
}

function fmt(x: number, digits = 1): string {
  return Number.isFinite(x) ? x.toFixed(digits) : '-';
}
