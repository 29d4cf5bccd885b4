// `npm run bench:core`: cold boot + invoke, snapshot restore + invoke and warm invoke, side by
// side in one run, for a WASI hello, a WASI function with 64 MiB of initialised memory and a
// Python function with a stdlib-heavy init. Prints medians and writes raw samples to results/.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { parseDaemonConfig } from '../core/config.js';
import { Platform } from '../platform/platform.js';
import { measurePaths, summaryRow, type PathFigures } from '../harness/measure-paths.js';
import { EXAMPLES } from '../harness/examples.js';
import { printTable } from '../cli/commands/with-api.js';
import { TIMING_PARTS } from '../platform/types.js';
import { PlatformTracing } from '../platform/tracing.js';

const runs = Number(process.env.RUNS ?? 10);
const only = (process.argv[2] ?? 'hello-c,mem64-c,stdlib-py').split(',');
const strategy = process.env.STRATEGY ?? 'eager';
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
try {
  for (const name of only) {
    const ex = EXAMPLES.find((e) => e.name === name);
    if (!ex) throw new Error(`unknown example ${name}`);
    process.stderr.write(`  ${name} ...\n`);
    figures.push(await measurePaths(platform, join(root, 'functions', name, 'function.json'), Buffer.from(ex.input), runs, strategy));
  }
} finally {
  await platform.close();
  await tracing?.close();
  rmSync(dataDir, { recursive: true, force: true });
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
const out = join(root, 'results', `bench-core-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
mkdirSync(join(root, 'results'), { recursive: true });
writeFileSync(out, JSON.stringify({ host, runs, strategy, layout, traced, figures }, null, 2));
process.stdout.write(`\nraw samples: ${out}\n`);
