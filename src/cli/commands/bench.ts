// `thaw bench <config>`: runs an experiment from a JSON config (a path, or the name of a shipped
// config in harness/configs/), with a progress bar on stderr, then prints the summary table and
// where the results, plots and report went.

import cliProgress from 'cli-progress';
import pino from 'pino';
import { loadBenchConfigFile, parseBenchConfig } from '../../harness/bench-config.js';
import { writeRunOutputs } from '../../harness/bench-report.js';
import { countSteps, runBench } from '../../harness/bench-run.js';
import type { GlobalOptions } from '../context.js';

export interface BenchOptions {
  outputDir?: string;
  objectStore?: string;
  repeat?: string;
  validateOnly?: boolean;
  progress?: boolean;
}

export async function runBenchCommand(g: GlobalOptions, configArg: string, o: BenchOptions): Promise<void> {
  const { path, raw } = loadBenchConfigFile(configArg);
  // Flags override the file's fields before validation, so they are checked the same way.
  const overridden: unknown = typeof raw === 'object' && raw !== null && !Array.isArray(raw)
    ? {
        ...raw,
        ...(o.outputDir !== undefined ? { output_dir: o.outputDir } : {}),
        ...(o.objectStore ?? g.objectStore ? { object_store: o.objectStore ?? g.objectStore } : {}),
        ...(o.repeat !== undefined ? { repeat: Number(o.repeat) } : {}),
      }
    : raw;
  const params = await parseBenchConfig(overridden);
  const steps = countSteps(params);
  process.stderr.write(`thaw bench ${params.name} (${path}): ${params.functions.length} functions x ${params.settings.length} settings, ${steps} measured steps\n`);
  for (const s of params.settings) if (s.skipReason) process.stderr.write(`  skipping setting ${s.id}: ${s.skipReason}\n`);
  if (o.validateOnly) {
    process.stdout.write('config valid\n');
    return;
  }
  const bar = o.progress === false ? undefined : new cliProgress.SingleBar({
    stream: process.stderr,
    format: ' {bar} {percentage}% | {value}/{total} steps | elapsed {duration_formatted} | ETA {eta_formatted} | {label}',
    etaBuffer: 20,
    noTTYOutput: !process.stderr.isTTY,
    notTTYSchedule: 10_000,
    hideCursor: true,
  }, cliProgress.Presets.shades_classic);
  bar?.start(steps, 0, { label: 'preparing' });
  let run;
  try {
    run = await runBench(params, {
      logger: pino({ level: process.env.THAW_LOG_LEVEL ?? 'warn' }, pino.destination(2)),
      onProgress: (done, _total, label) => bar?.update(done, { label }),
    });
  } finally {
    bar?.stop();
  }
  const out = await writeRunOutputs(run, params.outputDir, overridden);
  process.stdout.write(`\n${out.table}\n`);
  const failed = run.rows.filter((r) => !r.ok).length;
  if (failed > 0) process.stdout.write(`${failed} of ${run.rows.length} invocations failed (see results.csv, column error)\n`);
  if (run.traceExportError) process.stdout.write(`trace export failed: ${run.traceExportError} (spans are in traces.json)\n`);
  process.stdout.write(`results: ${out.dir}\n  ${out.json}\n  ${out.csv}\n  ${out.traces}\n  ${out.plots.join('\n  ')}\n  report: ${out.html}\n`);
}
