// What a bench run leaves behind, in <output_dir>/<experiment>-<timestamp>/: results.json (every
// row, prepare step and setting), results.csv (one row per invocation), summary.txt and
// summary.csv (median, p95, ratios to vanilla and warm), traces.json (OpenTelemetry spans),
// plots/*.svg (vega-lite, rendered headless) and report.html (self-contained).

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { TopLevelSpec } from 'vega-lite';
import { median } from './measure-paths.js';
import { p95, type BenchRow, type BenchRun } from './bench-run.js';

/** One line of the summary: a function under a setting at one (parallelism, par_snapshots). */
export interface SummaryLine {
  readonly function: string;
  readonly setting: string;
  readonly strategy: string;
  readonly parallelism: number;
  readonly parSnapshots: number;
  readonly n: number;
  readonly ok: number;
  readonly medianMs: number;
  readonly p95Ms: number;
  readonly medianRestoreMs: number;
  readonly medianHandlerMs: number;
  /** Median total / the vanilla setting's median total at the same function and parallelism; null without vanilla. */
  readonly vsVanilla: number | null;
  readonly vsWarm: number | null;
  /** The setting's memory scaling mechanism, and the sandbox's declared and resident memory after the invocations (medians, MiB). */
  readonly scaling: string;
  readonly medianDeclaredMiB: number;
  readonly medianResidentMiB: number;
  /** Why the cell has no invocations: a prepare step failed (the first failure's detail); else absent. */
  readonly prepareFailed?: string;
}

const CSV_COLUMNS: readonly (keyof BenchRow)[] = [
  'experiment', 'function', 'setting', 'strategy', 'storage', 'cacheDrop', 'parallelism', 'parSnapshots', 'recordInput', 'testInput', 'testInputKey',
  'repeat', 'worker', 'snapshotId', 'acquireMs', 'bootMs', 'initMs', 'restoreMs', 'handlerMs', 'totalMs', 'wallMs', 'read_s', 'process_s', 'write_s',
  'scaling', 'declaredBytes', 'grantedBytes', 'residentBytes', 'grantMs', 'populateMs', 'releaseMs',
  'restoreBytesRead', 'uffdFaults', 'prefetchedPages', 'ok', 'error', 'traceId',
];

function csvCell(v: unknown): string {
  if (v === null || v === undefined || (typeof v === 'number' && Number.isNaN(v))) return '';
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Rows as CSV with a header line. */
export function rowsToCsv(rows: readonly BenchRow[]): string {
  return [CSV_COLUMNS.join(','), ...rows.map((r) => CSV_COLUMNS.map((c) => csvCell(r[c])).join(','))].join('\n') + '\n';
}

/** Median / p95 per (function, setting, parallelism, par_snapshots) over the ok rows, in config order. */
export function summarize(run: BenchRun): SummaryLine[] {
  const groups = new Map<string, BenchRow[]>();
  for (const r of run.rows) {
    const key = JSON.stringify([r.function, r.setting, r.parallelism, r.parSnapshots]);
    const list = groups.get(key) ?? [];
    list.push(r);
    groups.set(key, list);
  }
  const base = [...groups.values()].map((rs) => {
    const r0 = rs[0]!;
    const ok = rs.filter((r) => r.ok);
    return {
      function: r0.function, setting: r0.setting, strategy: r0.strategy, parallelism: r0.parallelism, parSnapshots: r0.parSnapshots,
      n: rs.length, ok: ok.length,
      medianMs: median(ok.map((r) => r.totalMs)), p95Ms: p95(ok.map((r) => r.totalMs)),
      medianRestoreMs: median(ok.map((r) => r.restoreMs)), medianHandlerMs: median(ok.map((r) => r.handlerMs)),
      scaling: r0.scaling ?? 'none',
      medianDeclaredMiB: median(ok.flatMap((r) => (r.declaredBytes == null ? [] : [r.declaredBytes / 2 ** 20]))),
      medianResidentMiB: median(ok.flatMap((r) => (r.residentBytes == null ? [] : [r.residentBytes / 2 ** 20]))),
    };
  });
  const ref = (line: (typeof base)[number], strategy: string): number | null => {
    const other = base.find((b) => b.function === line.function && b.parallelism === line.parallelism && b.parSnapshots === line.parSnapshots && b.strategy === strategy);
    return other && Number.isFinite(other.medianMs) && other.medianMs > 0 ? line.medianMs / other.medianMs : null;
  };
  const measured = base.map((b) => ({ ...b, vsVanilla: ref(b, 'vanilla'), vsWarm: ref(b, 'warm') }));
  // A cell whose prepare failed has no rows: it gets a line saying so instead of vanishing.
  const unmeasured: SummaryLine[] = [];
  for (const f of run.prepare) {
    if (!f.detail.startsWith('failed:')) continue;
    if (measured.some((l) => l.function === f.function && l.setting === f.setting) || unmeasured.some((l) => l.function === f.function && l.setting === f.setting)) continue;
    const setting = run.settings.find((x) => x.id === f.setting);
    unmeasured.push({
      function: f.function, setting: f.setting, strategy: setting?.strategy ?? '', parallelism: 1, parSnapshots: 1, n: 0, ok: 0,
      medianMs: NaN, p95Ms: NaN, medianRestoreMs: NaN, medianHandlerMs: NaN, vsVanilla: null, vsWarm: null,
      scaling: setting?.scaling ?? 'none', medianDeclaredMiB: NaN, medianResidentMiB: NaN, prepareFailed: f.detail.replace(/^failed: /, ''),
    });
  }
  return [...measured, ...unmeasured];
}

const fmt = (x: number, digits = 2): string => (Number.isFinite(x) ? x.toFixed(digits) : '-');
const ratio = (x: number | null): string => (x === null || !Number.isFinite(x) ? '-' : `${x.toFixed(2)}x`);

/** The summary as printable rows (column -> text), for the terminal, summary.txt and the HTML report. */
export function summaryRows(lines: readonly SummaryLine[]): Record<string, string>[] {
  const parallel = lines.some((l) => l.parallelism !== 1 || l.parSnapshots !== 1);
  // Memory columns when the run compares memory scaling mechanisms (Faascale's A3).
  const memory = lines.some((l) => l.scaling !== 'none');
  return lines.map((l) => ({
    function: l.function,
    setting: l.setting,
    ...(parallel ? { 'par/snaps': `${l.parallelism}/${l.parSnapshots}` } : {}),
    n: l.prepareFailed !== undefined ? `not run: ${l.prepareFailed.slice(0, 80)}` : l.ok === l.n ? String(l.n) : `${l.ok}/${l.n} ok`,
    'median ms': fmt(l.medianMs),
    'p95 ms': fmt(l.p95Ms),
    'restore ms': fmt(l.medianRestoreMs),
    'handler ms': fmt(l.medianHandlerMs),
    'vs vanilla': ratio(l.vsVanilla),
    'vs warm': ratio(l.vsWarm),
    ...(memory ? { 'declared MiB': fmt(l.medianDeclaredMiB, 0), 'resident MiB': fmt(l.medianResidentMiB, 1) } : {}),
  }));
}

/** Rows as an aligned text table. */
export function formatTable(rows: readonly Record<string, string>[]): string {
  if (rows.length === 0) return '(no rows)\n';
  const cols = Object.keys(rows[0]!);
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(width[i]!)).join('  ').trimEnd();
  return [line(cols), line(width.map((w) => '-'.repeat(w))), ...rows.map((r) => line(cols.map((c) => r[c] ?? '')))].join('\n') + '\n';
}

/** Renders a vega-lite spec to SVG, headless (no canvas, no network). */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

const settingOrder = (run: BenchRun): string[] => run.settings.filter((s) => s.skipReason === null).map((s) => s.id);

/** Grouped bars as in the papers' figures: per function, one bar per setting (median total ms at parallelism 1). */
export function barsSpec(run: BenchRun, lines: readonly SummaryLine[]): TopLevelSpec {
  const minPar = Math.min(...lines.map((l) => l.parallelism));
  const values = lines.filter((l) => l.parallelism === minPar && l.parSnapshots === 1 && Number.isFinite(l.medianMs))
    .map((l) => ({ function: l.function, setting: l.setting, median_ms: l.medianMs, p95_ms: l.p95Ms }));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `${run.experiment}: median end-to-end latency per function and setting (ms)`,
    data: { values },
    width: { step: 14 },
    height: 260,
    layer: [
      { mark: 'bar', encoding: { y: { field: 'median_ms', type: 'quantitative', title: 'median ms' } } },
      { mark: { type: 'tick', color: 'black', thickness: 1 }, encoding: { y: { field: 'p95_ms', type: 'quantitative' } } },
    ],
    encoding: {
      x: { field: 'function', type: 'nominal', title: null },
      xOffset: { field: 'setting', type: 'nominal', sort: settingOrder(run) },
      color: { field: 'setting', type: 'nominal', sort: settingOrder(run) },
      tooltip: [{ field: 'function' }, { field: 'setting' }, { field: 'median_ms', format: '.2f' }, { field: 'p95_ms', format: '.2f' }],
    },
  } as TopLevelSpec;
}

/** Where the time goes: per function, a stacked bar per setting (acquire, restore, boot + init, handler medians). */
export function breakdownSpec(run: BenchRun): TopLevelSpec {
  const groups = new Map<string, BenchRow[]>();
  for (const r of run.rows.filter((x) => x.ok && x.parallelism === 1)) {
    const k = `${r.function}\u0000${r.setting}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  const values = [...groups.values()].flatMap((rs) => {
    const m = (f: (r: BenchRow) => number): number => median(rs.map(f));
    const base = { function: rs[0]!.function, setting: rs[0]!.setting };
    return [
      { ...base, step: '1 acquire', ms: m((r) => r.acquireMs) },
      { ...base, step: '2 restore (or boot+init)', ms: m((r) => r.restoreMs + r.bootMs + r.initMs) },
      { ...base, step: '3 handler', ms: m((r) => r.handlerMs) },
      // The rest of the platform's total: host round trips and bookkeeping around the steps.
      { ...base, step: '4 other', ms: m((r) => Math.max(0, r.totalMs - r.acquireMs - r.restoreMs - r.bootMs - r.initMs - r.handlerMs)) },
    ];
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `${run.experiment}: where the time goes (medians, parallelism 1, ms)`,
    data: { values },
    mark: 'bar',
    width: { step: 16 },
    height: 200,
    encoding: {
      column: { field: 'function', type: 'nominal', title: null },
      x: { field: 'setting', type: 'nominal', sort: settingOrder(run), title: null },
      y: { field: 'ms', type: 'quantitative', stack: 'zero', title: 'ms' },
      color: { field: 'step', type: 'nominal', legend: { labelLimit: 300 } },
      order: { field: 'step' },
    },
  } as TopLevelSpec;
}

/** Latency against parallelism: one line per setting, solid for one shared snapshot, dashed for separate copies. */
export function parallelismSpec(run: BenchRun, lines: readonly SummaryLine[]): TopLevelSpec {
  const point = (l: SummaryLine, snapshots: string): Record<string, unknown> => ({
    function: l.function, setting: l.setting, parallelism: l.parallelism, median_ms: l.medianMs, snapshots,
  });
  // A single restore is both "one snapshot" and "one copy each": it starts both lines.
  const values = lines.filter((l) => Number.isFinite(l.medianMs)).flatMap((l) =>
    l.parallelism === 1 ? [point(l, 'same snapshot'), point(l, 'separate copies')] : [point(l, l.parSnapshots === 1 ? 'same snapshot' : 'separate copies')]);
  const ticks = [...new Set(lines.map((l) => l.parallelism))].sort((a, b) => a - b);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `${run.experiment}: median latency against parallelism (ms)`,
    data: { values },
    mark: { type: 'line', point: true },
    width: 220,
    height: 180,
    encoding: {
      facet: { field: 'function', type: 'nominal', columns: 3, title: null },
      x: { field: 'parallelism', type: 'quantitative', scale: { type: 'log', base: 2 }, axis: { values: ticks, format: 'd' } },
      y: { field: 'median_ms', type: 'quantitative', title: 'median ms' },
      color: { field: 'setting', type: 'nominal', sort: settingOrder(run) },
      strokeDash: { field: 'snapshots', type: 'nominal' },
      detail: { field: 'snapshots' },
    },
  } as TopLevelSpec;
}

const esc = (s: string): string => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** The self-contained HTML report: summary table, inline SVG plots, skipped settings and prepare steps. */
export function reportHtml(run: BenchRun, table: readonly Record<string, string>[], svgs: readonly { title: string; svg: string }[]): string {
  const cols = table.length ? Object.keys(table[0]!) : [];
  const tableHtml = `<table><thead><tr>${cols.map((c) => `<th>${esc(c)}</th>`).join('')}</tr></thead><tbody>${
    table.map((r) => `<tr>${cols.map((c) => `<td>${esc(r[c] ?? '')}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
  const failed = run.rows.filter((r) => !r.ok);
  const skipped = run.skipped.length ? `<h2>Skipped settings</h2><ul>${run.skipped.map((s) => `<li><b>${esc(s.setting)}</b>: ${esc(s.reason)}</li>`).join('')}</ul>` : '';
  const failures = failed.length ? `<h2>Failed invocations (${failed.length})</h2><ul>${failed.slice(0, 50).map((r) => `<li>${esc(`${r.function} / ${r.setting} / input ${r.testInput}: ${r.error}`)}</li>`).join('')}</ul>` : '';
  const settings = `<table><thead><tr><th>setting</th><th>strategy</th><th>storage</th><th>cache drop</th><th>record run</th></tr></thead><tbody>${
    run.settings.map((s) => `<tr><td>${esc(s.id)}</td><td>${esc(s.strategy)}</td><td>${esc(s.storage)}</td><td>${esc(s.dropCache)}</td><td>${s.recordRun ? 'yes' : 'no'}</td></tr>`).join('')}</tbody></table>`;
  const prep = `<details><summary>Prepare steps (${run.prepare.length})</summary><table><thead><tr><th>function</th><th>setting</th><th>record</th><th>step</th><th>ms</th><th>detail</th></tr></thead><tbody>${
    run.prepare.map((p) => `<tr><td>${esc(p.function)}</td><td>${esc(p.setting)}</td><td>${p.recordInput}</td><td>${esc(p.step)}</td><td>${p.ms.toFixed(1)}</td><td>${esc(p.detail)}</td></tr>`).join('')}</tbody></table></details>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>thaw bench: ${esc(run.experiment)}</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th:first-child,td:first-child,td:nth-child(2){text-align:left}figure{margin:1.5em 0}code{background:#f4f4f4}</style>
</head><body>
<h1>thaw bench: ${esc(run.experiment)}</h1>
<p>${esc(run.description)}</p>
<p>Started ${esc(run.startedAt)}, finished ${esc(run.finishedAt)}; Node ${esc(run.host.node)}, ${esc(run.host.platform)}, ${run.host.cpus} CPUs; object store ${esc(run.objectStore)}; ${run.rows.length} invocations.</p>
<h2>Summary</h2>
<p>Times are end-to-end inside Thaw (acquire + restore or boot + handler), in ms, over successful invocations; ratios compare medians with the vanilla and warm settings at the same function and parallelism.</p>
${tableHtml}
${svgs.map((s) => `<figure><figcaption>${esc(s.title)}</figcaption>${s.svg}</figure>`).join('\n')}
<h2>Settings</h2>
${settings}
${skipped}
${failures}
${prep}
<p>Raw data beside this file: <code>results.json</code>, <code>results.csv</code>, <code>traces.json</code>.</p>
</body></html>
`;
}

/** Paths of everything a run wrote. */
export interface RunOutputs {
  readonly dir: string;
  readonly json: string;
  readonly csv: string;
  readonly summaryTxt: string;
  readonly summaryCsv: string;
  readonly traces: string;
  readonly plots: readonly string[];
  readonly html: string;
  /** The summary table as text (also in summary.txt). */
  readonly table: string;
}

/**
 * Writes a run's results under `outputDir/<experiment>-<timestamp>/`.
 *
 * @param config the config as given (saved beside the results)
 */
export async function writeRunOutputs(run: BenchRun, outputDir: string, config: unknown): Promise<RunOutputs> {
  const stamp = run.startedAt.replace(/[-:]/g, '').replace(/\..*$/, '').replace('T', '-');
  const dir = join(outputDir, `${run.experiment}-${stamp}`);
  mkdirSync(join(dir, 'plots'), { recursive: true });
  const lines = summarize(run);
  const rows = summaryRows(lines);
  const table = formatTable(rows);
  const { spans, ...rest } = run;
  const out = {
    dir,
    json: join(dir, 'results.json'),
    csv: join(dir, 'results.csv'),
    summaryTxt: join(dir, 'summary.txt'),
    summaryCsv: join(dir, 'summary.csv'),
    traces: join(dir, 'traces.json'),
    html: join(dir, 'report.html'),
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  writeFileSync(out.json, JSON.stringify({ ...rest, summary: lines }, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2) + '\n');
  writeFileSync(out.csv, rowsToCsv(run.rows));
  writeFileSync(out.summaryTxt, table);
  const sumCols = Object.keys(rows[0] ?? {});
  writeFileSync(out.summaryCsv, [sumCols.join(','), ...rows.map((r) => sumCols.map((c) => csvCell(r[c])).join(','))].join('\n') + '\n');
  writeFileSync(out.traces, JSON.stringify({ experiment: run.experiment, spans }, null, 1) + '\n');
  const plotted = lines.filter((l) => l.prepareFailed === undefined);
  const figures = [
    { file: 'latency-by-setting.svg', title: 'Median latency per function and setting (tick: p95)', spec: barsSpec(run, plotted) },
    { file: 'breakdown.svg', title: 'Where the time goes (medians)', spec: breakdownSpec(run) },
    { file: 'latency-vs-parallelism.svg', title: 'Median latency against parallelism', spec: parallelismSpec(run, plotted) },
  ];
  const svgs: { title: string; svg: string }[] = [];
  const plots: string[] = [];
  for (const f of figures) {
    const svg = await renderSvg(f.spec);
    writeFileSync(join(dir, 'plots', f.file), svg);
    plots.push(join(dir, 'plots', f.file));
    svgs.push({ title: f.title, svg });
  }
  writeFileSync(out.html, reportHtml(run, rows, svgs));
  return { ...out, plots, table };
}
