// `npm run bench:core`: cold boot + invoke, snapshot restore + invoke and warm invoke, side by
// side in one run, for a WASI hello, a WASI function with 64 MiB of initialised memory and a
// Python function with a stdlib-heavy init; then the same restore and warm invoke through a
// `thaw daemon` over HTTP on loopback (HTTP=off skips it). Prints medians and writes raw samples
// to results/.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { parseDaemonConfig } from '../core/config.js';
import { Platform } from '../platform/platform.js';
import { measurePaths, median, summaryRow, type PathFigures } from '../harness/measure-paths.js';
import { measureHttpPaths, startDaemonProcess, type HttpFigures } from '../harness/measure-http.js';
import { EXAMPLES } from '../harness/examples.js';
import { printTable } from '../cli/commands/with-api.js';
import { TIMING_PARTS } from '../platform/types.js';
import { PlatformTracing } from '../platform/tracing.js';

const runs = Number(process.env.RUNS ?? 10);
const only = (process.argv[2] ?? 'hello-c,mem64-c,stdlib-py').split(',');
// The platform's default (what a request that names no strategy gets); STRATEGY=eager for the baseline.
const strategy = process.env.STRATEGY ?? 'auto';
const root = fileURLToPath(new URL('../../', import.meta.url));

const dataDir = mkdtempSync(join(tmpdir(), 'thaw-bench-'));
// JAIL=off measures without the sandbox host's jail (the default is the daemon's: jailed where it can be).
// LAYOUT=vertical: instances share a host per function (restores go into the host that ran the function).
const layout = process.env.LAYOUT ?? 'horizontal';
const platform = new Platform({ ...parseDaemonConfig({ dataDir, spareHosts: 1, preparedPerFunction: 1, jail: process.env.JAIL ?? 'auto', layout }), logger: pino({ level: 'warn' }) });
const host = `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
// TRACE=on traces every invocation (the daemon's spans and those its hosts record, collected in
// memory: the cost of recording and joining them, not of a collector's network).
const traced = process.env.TRACE === 'on';
let spanCount = 0;
const tracing = traced ? new PlatformTracing({ exportTo: null, sink: () => spanCount++ }) : null;
platform.setTracing(tracing);
process.stdout.write(`bench:core  runs=${runs} strategy=${strategy} layout=${layout} jail=${platform.jail.jailed ? 'on' : 'off'} trace=${traced ? 'on' : 'off'}  host: ${host}\n`);
const figures: PathFigures[] = [];
const examples = only.map((name) => {
  const ex = EXAMPLES.find((e) => e.name === name);
  if (!ex) throw new Error(`unknown example ${name}`);
  return { manifest: join(root, 'functions', name, 'function.json'), input: Buffer.from(ex.input), name };
});
try {
  for (const ex of examples) {
    process.stderr.write(`  ${ex.name} ...\n`);
    figures.push(await measurePaths(platform, ex.manifest, ex.input, runs, strategy));
  }
} finally {
  await platform.close();
  await tracing?.close();
  rmSync(dataDir, { recursive: true, force: true });
}
// The same restore and warm invoke through the daemon over HTTP: what a client waits for. The
// daemon runs with its default log level (info: Fastify logs every request) unless DAEMON_LOG says.
const http: HttpFigures[] = [];
const daemonLog = process.env.DAEMON_LOG ?? 'info';
if (process.env.HTTP !== 'off') {
  const httpDir = mkdtempSync(join(tmpdir(), 'thaw-bench-http-'));
  try {
    const daemon = await startDaemonProcess(httpDir, ['--spare-hosts', '1', '--prepared-per-function', '1', '--jail', process.env.JAIL ?? 'auto', '--layout', layout, '--log-level', daemonLog]);
    try {
      for (const ex of examples) {
        process.stderr.write(`  ${ex.name} over HTTP ...\n`);
        http.push(await measureHttpPaths(daemon.url, ex.manifest, ex.input, runs, strategy));
      }
    } finally {
      await daemon.stop();
    }
  } finally {
    rmSync(httpDir, { recursive: true, force: true });
  }
}
if (traced) process.stdout.write(`spans recorded: ${spanCount}\n`);
process.stdout.write('\nmedians, ms:\n');
printTable(figures.map(summaryRow));
// Every part of the time (platform/types.ts TIMING_PARTS) of the run with the median total
// (medians of parts do not add up; one run's parts sum to its total).
const paths = ['cold', 'snapshot', 'warm'] as const;
const shown = TIMING_PARTS.filter((p) => !('optional' in p) || figures.some((f) => paths.some((path) => f[path][p.key].some((v) => v !== 0))));
process.stdout.write(`\nbreakdown of the median run (ms): ${shown.map((p) => p.label).join(' | ')}\n`);
printTable(figures.flatMap((f) => paths.map((path) => {
  const s = f[path];
  const order = s.totalMs.map((t, i) => [t, i] as const).sort((a, b) => a[0] - b[0]);
  const i = order[(order.length - 1) >> 1]![1];
  return {
    function: f.function, path,
    ...Object.fromEntries(shown.map((p) => [p.label, s[p.key][i]!.toFixed(3)])),
    sum: shown.reduce((a, p) => a + s[p.key][i]!, 0).toFixed(3),
    total: s.totalMs[i]!.toFixed(3),
  };
})));
if (http.length > 0) {
  process.stdout.write(`\nrestore + invoke and warm, medians (ms): in process (above) beside the whole request over HTTP on loopback to \`thaw daemon\` (log level ${daemonLog}), with the daemon's own total of those requests (inside Thaw)\n`);
  printTable(http.map((h) => {
    const f = figures.find((x) => x.function === h.function)!;
    const m = (xs: readonly number[]): string => median(xs).toFixed(2);
    return {
      function: h.function,
      'restore+invoke in process': m(f.snapshot.totalMs),
      'restore+invoke HTTP': m(h.snapshot.httpMs),
      '(inside Thaw)': m(h.snapshot.insideMs),
      'warm in process': m(f.warm.totalMs),
      'warm HTTP': m(h.warm.httpMs),
      '(inside Thaw) ': m(h.warm.insideMs),
      'same output': h.outputsIdentical ? 'yes' : 'NO',
    };
  }));
}
const out = join(root, 'results', `bench-core-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
mkdirSync(join(root, 'results'), { recursive: true });
writeFileSync(out, JSON.stringify({ host, runs, strategy, layout, traced, figures, http }, null, 2));
process.stdout.write(`\nraw samples: ${out}\n`);
