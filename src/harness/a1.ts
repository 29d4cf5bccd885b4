// Faascale's A1 on Thaw: cold starts and sandbox counts, vertical hosts (several instances per host
// process, as Faascale's VM serves many instances) against horizontal ones (one instance per host),
// replaying a generated day of invocations. The replay is `thaw replay`'s (replay-run.ts): an A1
// config is a replay config whose settings name the layout (`none/horizontal`, `none/vertical`),
// plus `windows_s`, the window lengths the results are cut into (Faascale: 1, 10 and 60 minutes).
//
// Per setting and window (trace time): invocations and errors; instance starts (Thaw's cold and
// snapshot starts: a new sandbox, in a new host or a free slot of a live one); host starts (host
// processes that carried a replayed sandbox, dated by the first invocation served in them or the
// first sample that saw them: Faascale's VM starts, its cold starts); live hosts and instances (average and peak over the samples); resident guest memory
// (the hosts' mincore) and the hosts' own resident memory (/proc, where the hosts run here).

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { ThawError } from '../core/errors.js';
import { writeFileDurable } from '../snapshot/snapshot-io.js';
import { REPO_ROOT } from './bench-targets.js';
import { formatTable, renderSvg } from './bench-report.js';
import { configBaseDir, loadReplayConfigFile, parseReplayConfig, type ReplayParams } from './trace/replay-config.js';
import type { ReplayRun } from './trace/replay-run.js';

/** Shipped A1 configs (a subdirectory: harness/configs/*.json are bench configs). */
export const A1_CONFIG_DIR = join(REPO_ROOT, 'harness', 'configs', 'a1');
/** Faascale's windows: 1, 10 and 60 minutes. */
export const A1_DEFAULT_WINDOWS_S: readonly number[] = [60, 600, 3600];

export interface A1Params {
  readonly replay: ReplayParams;
  readonly windowsS: readonly number[];
}

/**
 * Loads an A1 config (a path, or a shipped name: `a1-day` -> harness/configs/a1/a1-day.json),
 * with `overrides` (the CLI's flags, in the config's terms) applied before validation.
 *
 * @throws THAW_CONFIG_INVALID naming the field at fault
 */
export function loadA1Config(nameOrPath: string, overrides: Record<string, unknown> = {}): { params: A1Params; config: Record<string, unknown> } {
  const shipped = !nameOrPath.includes('/') ? join(A1_CONFIG_DIR, nameOrPath.endsWith('.json') ? nameOrPath : `${nameOrPath}.json`) : nameOrPath;
  let loaded: { path: string; raw: unknown };
  try {
    loaded = loadReplayConfigFile(shipped);
  } catch {
    loaded = loadReplayConfigFile(nameOrPath);
  }
  const { path, raw } = loaded;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ThawError('THAW_CONFIG_INVALID', { detail: `${path} is not a JSON object` });
  const { windows_s: windows, ...rest } = { ...(raw as Record<string, unknown>), ...overrides };
  if (windows !== undefined && (!Array.isArray(windows) || windows.length === 0 || !windows.every((w) => typeof w === 'number' && Number.isFinite(w) && w > 0))) {
    throw new ThawError('THAW_CONFIG_INVALID', { detail: `A1 config: windows_s must be a non-empty list of positive numbers (trace seconds), got ${JSON.stringify(windows)}` });
  }
  const replay = parseReplayConfig(rest, configBaseDir(path));
  if (!replay.settings.some((s) => s.layout !== null)) {
    throw new ThawError('THAW_CONFIG_INVALID', { detail: 'A1 config: settings name no layout (e.g. none/horizontal, none/vertical): there is nothing to compare' });
  }
  return { params: { replay, windowsS: (windows as number[] | undefined) ?? A1_DEFAULT_WINDOWS_S }, config: { ...rest, windows_s: windows ?? A1_DEFAULT_WINDOWS_S } };
}

/** What A1 counts over a window, or over all windows of one length. */
export interface A1Counts {
  readonly setting: string;
  readonly windowS: number;
  readonly invocations: number;
  readonly errors: number;
  /** New sandboxes (cold and snapshot starts). */
  readonly instanceStarts: number;
  /** Host processes that carried a replayed sandbox (named by a reply or seen in a sample), by when they first served. */
  readonly hostStarts: number;
  readonly avgHosts: number;
  readonly peakHosts: number;
  readonly avgInstances: number;
  readonly peakInstances: number;
  readonly avgResidentBytes: number;
  /** NaN when the hosts' memory could not be read here. */
  readonly avgHostRssBytes: number;
}

export interface A1Window extends A1Counts {
  readonly fromS: number;
  readonly toS: number;
}

/** Every setting's windows of `windowS` trace seconds (windows with neither invocations nor samples left out). */
export function a1Windows(run: ReplayRun, windowS: number): A1Window[] {
  const out: A1Window[] = [];
  const count = Math.max(1, Math.ceil(run.durationS / windowS));
  for (const setting of run.settings) {
    if (run.skipped.some((s) => s.setting === setting)) continue;
    const rows = run.rows.filter((r) => r.setting === setting);
    const samples = run.samples.filter((s) => s.setting === setting);
    const hosts = (run.hosts ?? []).filter((h) => h.setting === setting);
    for (let w = 0; w < count; w++) {
      const fromS = w * windowS;
      const toS = Math.min(run.durationS, fromS + windowS);
      const inW = <T extends { traceS: number }>(xs: readonly T[]): T[] => xs.filter((x) => x.traceS >= fromS && (x.traceS < toS || (w === count - 1 && x.traceS <= toS)));
      const r = inW(rows);
      const s = inW(samples);
      if (r.length === 0 && s.length === 0) continue;
      const rss = s.map((x) => x.hostRssBytes ?? null);
      out.push({
        setting, windowS, fromS, toS, invocations: r.length, errors: r.filter((x) => !x.ok).length,
        instanceStarts: r.filter((x) => x.start === 'cold' || x.start === 'snapshot').length,
        hostStarts: hosts.filter((h) => h.firstS >= fromS && (h.firstS < toS || (w === count - 1 && h.firstS <= toS))).length,
        avgHosts: mean(s.map((x) => x.hosts ?? NaN)), peakHosts: max(s.map((x) => x.hosts ?? NaN)),
        avgInstances: mean(s.map((x) => x.instances ?? NaN)), peakInstances: max(s.map((x) => x.instances ?? NaN)),
        avgResidentBytes: mean(s.map((x) => x.residentBytes)),
        avgHostRssBytes: rss.every((x) => x !== null) ? mean(rss as number[]) : NaN,
      });
    }
  }
  return out;
}

/** Over all windows of one length; averages are means of the windows' averages, peaks the most in any sample. */
export interface A1Summary extends A1Counts {
  readonly windows: number;
  /** Host and instance starts per window: mean, and most host starts in one window. */
  readonly hostStartsMean: number;
  readonly hostStartsMax: number;
  readonly instanceStartsMean: number;
}

/** One line per setting and window length. */
export function a1Summary(run: ReplayRun, windowsS: readonly number[]): A1Summary[] {
  const out: A1Summary[] = [];
  for (const windowS of windowsS) {
    const all = a1Windows(run, windowS);
    for (const setting of run.settings) {
      const ws = all.filter((w) => w.setting === setting);
      if (ws.length === 0) continue;
      const sum = (f: (w: A1Window) => number): number => ws.reduce((a, w) => a + f(w), 0);
      out.push({
        setting, windowS, windows: ws.length, invocations: sum((w) => w.invocations), errors: sum((w) => w.errors),
        instanceStarts: sum((w) => w.instanceStarts), hostStarts: sum((w) => w.hostStarts),
        hostStartsMean: mean(ws.map((w) => w.hostStarts)), hostStartsMax: max(ws.map((w) => w.hostStarts)), instanceStartsMean: mean(ws.map((w) => w.instanceStarts)),
        avgHosts: mean(ws.map((w) => w.avgHosts)), peakHosts: max(ws.map((w) => w.peakHosts)),
        avgInstances: mean(ws.map((w) => w.avgInstances)), peakInstances: max(ws.map((w) => w.peakInstances)),
        avgResidentBytes: mean(ws.map((w) => w.avgResidentBytes)), avgHostRssBytes: mean(ws.map((w) => w.avgHostRssBytes)),
      });
    }
  }
  return out;
}

const MiB = 2 ** 20;

/** The summary as text rows, with each non-first setting's change against the first (horizontal). */
export function a1SummaryRows(summary: readonly A1Summary[]): Record<string, string>[] {
  return summary.map((s) => {
    const base = summary.find((b) => b.windowS === s.windowS)!;
    const vs = (a: number, b: number): string => (s === base || !(b > 0) ? '' : ` (${a >= b ? '+' : ''}${(100 * (a / b - 1)).toFixed(0)}%)`);
    return {
      window: label(s.windowS), setting: s.setting, windows: String(s.windows), invocations: String(s.invocations), errors: String(s.errors),
      'instance starts': `${s.instanceStarts}${vs(s.instanceStarts, base.instanceStarts)}`,
      'host starts': `${s.hostStarts}${vs(s.hostStarts, base.hostStarts)}`,
      'host starts / window mean (max)': `${fmt(s.hostStartsMean, 2)} (${s.hostStartsMax})`,
      'hosts avg (peak)': `${fmt(s.avgHosts, 2)}${vs(s.avgHosts, base.avgHosts)} (${fmt(s.peakHosts, 0)})`,
      'instances avg (peak)': `${fmt(s.avgInstances, 2)} (${fmt(s.peakInstances, 0)})`,
      'guest resident MiB': fmt(s.avgResidentBytes / MiB),
      'host RSS MiB': `${fmt(s.avgHostRssBytes / MiB)}${vs(s.avgHostRssBytes, base.avgHostRssBytes)}`,
    };
  });
}

export function a1WindowRows(windows: readonly A1Window[]): Record<string, string>[] {
  return windows.map((w) => ({
    window_s: String(w.windowS), setting: w.setting, from_s: fmt(w.fromS, 0), to_s: fmt(w.toS, 0), invocations: String(w.invocations), errors: String(w.errors),
    instance_starts: String(w.instanceStarts), host_starts: String(w.hostStarts), avg_hosts: fmt(w.avgHosts, 2), peak_hosts: fmt(w.peakHosts, 0),
    avg_instances: fmt(w.avgInstances, 2), peak_instances: fmt(w.peakInstances, 0), avg_guest_resident_mib: fmt(w.avgResidentBytes / MiB), avg_host_rss_mib: fmt(w.avgHostRssBytes / MiB),
  }));
}

/** Host starts and live hosts per window of `windowS`, per setting. */
export function a1Spec(run: ReplayRun, windows: readonly A1Window[], windowS: number): TopLevelSpec {
  const values = windows.filter((w) => w.windowS === windowS).map((w) => ({ setting: w.setting, h: w.fromS / 3600, hostStarts: w.hostStarts, instanceStarts: w.instanceStarts, hosts: Number.isFinite(w.avgHosts) ? w.avgHosts : null }));
  const panel = (field: string, title: string) => ({
    width: 300, height: 200, mark: { type: 'line' as const, point: true },
    encoding: { x: { field: 'h', type: 'quantitative' as const, title: 'trace hour' }, y: { field, type: 'quantitative' as const, title }, color: { field: 'setting', type: 'nominal' as const } },
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `${run.name}: per ${label(windowS)} window, ${run.timeScale}x`,
    data: { values },
    hconcat: [panel('hostStarts', 'host starts (Faascale: cold starts)'), panel('instanceStarts', 'instance starts (cold + snapshot)'), panel('hosts', 'live hosts (average)')],
  };
}

/** Writes a1.txt, a1-windows.csv and plots/a1-<window>.svg into `dir` (a replay's output directory). */
export async function writeA1Outputs(run: ReplayRun, dir: string, windowsS: readonly number[]): Promise<{ text: string; files: string[] }> {
  mkdirSync(join(dir, 'plots'), { recursive: true });
  const files: string[] = [];
  const put = (name: string, text: string): void => {
    writeFileDurable(join(dir, name), Buffer.from(text, 'utf8'));
    files.push(join(dir, name));
  };
  const summary = a1Summary(run, windowsS);
  const windows = windowsS.flatMap((w) => a1Windows(run, w));
  const text = `A1: ${run.source}, ${run.durationS} s of trace at ${run.timeScale}x (${(run.durationS / run.timeScale).toFixed(0)} s per setting), keep-alive ${run.keepAliveS} s (trace)\n`
    + `${formatTable(a1SummaryRows(summary))}\nload average ${run.loadAvg.before.map((x) => x.toFixed(2)).join(' ')} before, ${run.loadAvg.after.map((x) => x.toFixed(2)).join(' ')} after\n`;
  put('a1.txt', text);
  const rows = a1WindowRows(windows);
  const cols = Object.keys(rows[0] ?? {});
  put('a1-windows.csv', [cols.join(','), ...rows.map((r) => cols.map((c) => r[c]).join(','))].join('\n') + '\n');
  put('a1-summary.json', JSON.stringify(summary, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 1) + '\n');
  for (const w of windowsS) put(`plots/a1-${label(w).replace(' ', '')}.svg`, await renderSvg(a1Spec(run, windows, w)));
  return { text, files };
}

function label(windowS: number): string {
  return windowS % 60 === 0 ? `${windowS / 60} min` : `${windowS} s`;
}

function mean(xs: readonly number[]): number {
  const ys = xs.filter((x) => Number.isFinite(x));
  return ys.length ? ys.reduce((a, b) => a + b, 0) / ys.length : NaN;
}

function max(xs: readonly number[]): number {
  const ys = xs.filter((x) => Number.isFinite(x));
  return ys.length ? Math.max(...ys) : NaN;
}

function fmt(x: number, digits = 1): string {
  return Number.isFinite(x) ? x.toFixed(digits) : '-';
}
