// `thaw replay <config | trace.csv>`: replays a trace open loop against the daemon (or an
// in-process platform), per memory policy setting, with a progress bar on stderr; prints the
// per-setting and per-window tables and where the results, plots and report went.

import cliProgress from 'cli-progress';
import { ThawError } from '../../core/errors.js';
import { generateTrace } from '../../harness/trace/generate.js';
import { readTrace } from '../../harness/trace/read.js';
import { configBaseDir, loadReplayConfigFile, parseReplayConfig, type ReplayConfig, type ReplayParams } from '../../harness/trace/replay-config.js';
import { writeReplayOutputs } from '../../harness/trace/replay-report.js';
import { runReplay, type ReplayRun } from '../../harness/trace/replay-run.js';
import { openApi, type GlobalOptions } from '../context.js';

export interface ReplayOptions {
  functions?: string;
  policies?: string;
  timeScale?: string;
  windowS?: string;
  durationS?: string;
  outputDir?: string;
  progress?: boolean;
}

/** A trace file given directly is replayed with these settings unless flags say otherwise. */
const TRACE_FILE_DEFAULTS = { functions: ['hello-c', 'faulty-c'], settings: ['none'], time_scale: 60 };

export async function runReplayCommand(g: GlobalOptions, arg: string, o: ReplayOptions): Promise<void> {
  const isTrace = /\.(csv|txt)$/i.test(arg);
  const { path, raw } = isTrace ? { path: arg, raw: { name: 'trace', trace: arg, ...TRACE_FILE_DEFAULTS } } : loadReplayConfigFile(arg);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ThawError('THAW_CONFIG_INVALID', { detail: `${path} is not a JSON object` });
  // Flags override the file's fields before validation, so they are checked the same way.
  const cfg: Record<string, unknown> = { ...(raw as ReplayConfig), ...replayFlagOverrides(o) };
  const p = parseReplayConfig(cfg, isTrace ? process.cwd() : configBaseDir(path));
  await replayAndReport(g, p, cfg, o);
}

/** A replay command's flags as config fields (`--time-scale` -> time_scale, ...). */
export function replayFlagOverrides(o: ReplayOptions): Record<string, unknown> {
  const num = (flag: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || v.trim() === '') throw new ThawError('THAW_CONFIG_INVALID', { detail: `${flag} must be a number, got '${v}'` });
    return n;
  };
  const cfg: Record<string, unknown> = {};
  if (o.functions !== undefined) cfg.functions = o.functions.split(',').filter(Boolean);
  if (o.policies !== undefined) cfg.settings = o.policies.split(',').filter(Boolean);
  for (const [key, flag, v] of [['time_scale', '--time-scale', o.timeScale], ['window_s', '--window-s', o.windowS], ['duration_s', '--duration-s', o.durationS]] as const) {
    const n = num(flag, v);
    if (n !== undefined) cfg[key] = n;
  }
  if (o.outputDir !== undefined) cfg.output_dir = o.outputDir;
  return cfg;
}

/** What a command built on the replay adds: the hosts' memory to sample, and its own outputs. */
export interface ReplayHooks {
  hostMemory?: (pid: number) => number | null;
  /** Writes more results into the replay's output directory; returns text to print and the files. */
  report?: (run: ReplayRun, dir: string) => Promise<{ text: string; files: string[] }>;
}

/** Replays `p` with a progress bar, writes its outputs and prints its tables (and the hooks'). */
export async function replayAndReport(g: GlobalOptions, p: ReplayParams, cfg: Record<string, unknown>, o: ReplayOptions, hooks: ReplayHooks = {}): Promise<void> {
  const trace = p.source.kind === 'generator' ? generateTrace(p.source.generator) : await readTrace(p.source.path, p.durationS ?? Infinity);
  const traceS = Math.min(trace.durationS, p.durationS ?? Infinity);
  process.stderr.write(`thaw replay ${p.name}: ${trace.source}, ${trace.invocations.length} invocations of ${trace.functions.length} functions; `
    + `the ${p.maxFunctions} most invoked replayed as ${p.targets.map((t) => t.target.name).join(', ')} (rank r -> functions[r mod ${p.targets.length}]); `
    + `${traceS} s of trace at ${p.timeScale}x = ${(traceS / p.timeScale).toFixed(1)} s per setting; settings ${p.settings.map((s) => s.id).join(', ')}\n`);
  const bar = o.progress === false ? undefined : new cliProgress.SingleBar({
    stream: process.stderr,
    format: ' {bar} {percentage}% | {value}/{total} invocations | elapsed {duration_formatted} | {label}',
    noTTYOutput: !process.stderr.isTTY,
    notTTYSchedule: 10_000,
    hideCursor: true,
  }, cliProgress.Presets.shades_classic);
  // In-process, the platform keeps hosts ready as a daemon does (one-shot commands keep none):
  // otherwise every start would spawn and compile a host and the latencies would not be a daemon's.
  // It keeps them for every replayed function: with fewer (the default 8), functions rotating
  // through the most recently used would have their prepared hosts killed and started again.
  const api = openApi(g, { spareHosts: 1, preparedPerFunction: 1, maxPreparedFunctions: p.maxFunctions });
  if (g.daemon ?? process.env.THAW_DAEMON) {
    process.stderr.write(`note: a daemon keeps prepared hosts for its --max-prepared-functions most recently used functions (default 8); this replay has ${p.maxFunctions}\n`);
  }
  try {
    bar?.start(1, 0, { label: 'deploying' });
    let run;
    try {
      run = await runReplay(api, p, trace, {
        ...(hooks.hostMemory && { hostMemory: hooks.hostMemory }),
        onProgress: (done, total, label) => {
          bar?.setTotal(total);
          bar?.update(done, { label });
        },
      });
    } finally {
      bar?.stop();
    }
    const out = await writeReplayOutputs(run, p.outputDir, cfg);
    const extra = hooks.report ? await hooks.report(run, out.dir) : { text: '', files: [] };
    process.stdout.write(`\nper setting (resident memory from ${run.memorySource}):\n${out.summary}\nper ${p.windowS} s window:\n${out.windows}${extra.text ? `\n${extra.text}` : ''}`);
    for (const s of run.skipped) process.stdout.write(`skipped ${s.setting}: ${s.reason}\n`);
    if (run.sampleErrors.length) process.stdout.write(`${run.sampleErrors.length} memory samples failed, first: ${run.sampleErrors[0]}\n`);
    process.stdout.write(`load average ${run.loadAvg.before.map((x) => x.toFixed(2)).join(' ')} before, ${run.loadAvg.after.map((x) => x.toFixed(2)).join(' ')} after\nresults: ${out.dir}\n  ${[...out.files, ...extra.files].join('\n  ')}\n`);
  } finally {
    await api.close();
  }
}
