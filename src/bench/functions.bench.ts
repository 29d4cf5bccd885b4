// `npm run bench:functions`: every suite function on its two published inputs (record 0,
// test 1): cold, snapshot-restore and warm times, memory and snapshot size, and the working
// set (pages a restored sandbox touches while serving the input, counted by a userfaultfd
// restore). Prints medians; raw samples go to results/. Usage: [names,...] with RUNS=n.
// Every function runs in both host layouts (LAYOUTS=horizontal,vertical), side by side: the
// first request after a restore against a warm one (issue 12: restored code as fast as warm).
// Horizontal: each restore goes into a fresh pooled host; vertical: into the host that already
// ran the function (its cold sandbox still lives there), whose V8 has optimised its code.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { parseDaemonConfig } from '../core/config.js';
import { PAGE_BYTES } from '../core/snapshot-format.js';
import { Platform } from '../platform/platform.js';
import { readManifestFile } from '../cli/context.js';
import { printTable } from '../cli/commands/with-api.js';
import { median } from '../harness/measure-paths.js';
import { SUITE, type SuiteFunction, type SuiteInput, type SuiteReply } from '../suite/index.js';
import type { InvokeRequest } from '../platform/types.js';
import type { HostLayout } from '../core/function-spec.js';

const runs = Number(process.env.RUNS ?? 3);
const names = process.argv[2]?.split(',');
const root = fileURLToPath(new URL('../../', import.meta.url));
const MiB = 2 ** 20;

const LAYOUTS = (process.env.LAYOUTS ?? 'horizontal,vertical').split(',') as HostLayout[];

interface Row {
  function: string;
  input: string;
  layout: HostLayout;
  /** The handler's time in the first request after each restore, and in warm requests. */
  restoredHandlerMs: number[];
  warmHandlerMs: number[];
  coldMs: number[];
  snapshotMs: number[];
  restoreMs: number[];
  warmMs: number[];
  memoryBytes: number;
  snapshotDiskBytes: number;
  workingSetPages: number | null;
  checksOk: boolean;
}

async function invokeChecked(p: Platform, fn: SuiteFunction, input: SuiteInput, req: Omit<InvokeRequest, 'function' | 'input'>) {
  const res = await p.invoke({ ...req, function: fn.name, input: fn.event(input) });
  const reply = JSON.parse(Buffer.from(res.output).toString('utf8')) as SuiteReply;
  fn.check(input, reply, await p.getObject(reply.output_key));
  return res;
}

async function measure(p: Platform, fn: SuiteFunction, input: SuiteInput, layout: HostLayout): Promise<Row> {
  await p.putObject(input.key, input.bytes);
  const row: Row = {
    function: fn.name, input: input.description, layout, restoredHandlerMs: [], warmHandlerMs: [], coldMs: [], snapshotMs: [], restoreMs: [], warmMs: [],
    memoryBytes: 0, snapshotDiskBytes: 0, workingSetPages: null, checksOk: true,
  };
  await p.poolSettled();
  const first = await invokeChecked(p, fn, input, { mode: 'cold' });
  row.coldMs.push(first.timings.totalMs);
  for (let i = 1; i < runs; i++) {
    await p.poolSettled();
    row.coldMs.push((await invokeChecked(p, fn, input, { mode: 'cold', keep: false })).timings.totalMs);
  }
  const snap = await p.createSnapshot({ sandboxId: first.sandboxId });
  row.memoryBytes = snap.memoryBytes;
  row.snapshotDiskBytes = snap.diskBytes;
  for (let i = 0; i < runs; i++) {
    await p.poolSettled();
    const r = await invokeChecked(p, fn, input, { mode: 'snapshot', snapshotId: snap.id, keep: false });
    row.snapshotMs.push(r.timings.totalMs);
    row.restoreMs.push(r.timings.restoreMs);
    row.restoredHandlerMs.push(r.timings.handlerMs);
  }
  for (let i = 0; i < runs; i++) {
    const r = await invokeChecked(p, fn, input, { mode: 'warm', sandboxId: first.sandboxId });
    row.warmMs.push(r.timings.totalMs);
    row.warmHandlerMs.push(r.timings.handlerMs);
  }
  // Working set: reap's first restore records every page the guest touches (a userfaultfd
  // server serves each one once) until the first invocation ends.
  const strategies = await p.listStrategies();
  if (layout === 'horizontal' && strategies.some((s) => s.id === 'reap' && s.available)) {
    await p.poolSettled();
    const r = await invokeChecked(p, fn, input, { mode: 'snapshot', snapshotId: snap.id, strategy: 'reap', keep: false });
    if (r.restore?.phase === 'record') row.workingSetPages = r.restore.uffdFaults;
  }
  await p.deleteSandbox(first.sandboxId);
  await p.deleteSnapshot(snap.id);
  return row;
}

const selected = SUITE.filter((f) => !names || names.includes(f.name));
const dataDir = mkdtempSync(join(tmpdir(), 'thaw-bench-fn-'));
const platform = new Platform({ ...parseDaemonConfig({ dataDir, spareHosts: 1, preparedPerFunction: 1 }), logger: pino({ level: 'warn' }) });
const rows: Row[] = [];
process.stdout.write(`bench:functions  runs=${runs}  host: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}\n`);
try {
  for (const fn of selected) {
    for (const obj of fn.initObjects()) await platform.putObject(obj.key, obj.bytes);
    const { manifest, artefact } = readManifestFile(join(root, fn.dir, 'function.json'));
    for (const layout of LAYOUTS) {
      // A redeploy with another layout is another deployment: the other layout's hosts retire.
      await platform.deployFunction({ ...(manifest as object), layout }, artefact);
      for (const input of fn.twoInputs()) {
        process.stderr.write(`  ${fn.name} ${input.description} ${layout} ...\n`);
        try {
          rows.push(await measure(platform, fn, input, layout));
        } catch (err) {
          process.stderr.write(`  ${fn.name} ${input.description} ${layout} FAILED: ${err instanceof Error ? err.message : String(err)}\n`);
          rows.push({
            function: fn.name, input: input.description, layout, restoredHandlerMs: [], warmHandlerMs: [], coldMs: [], snapshotMs: [], restoreMs: [], warmMs: [],
            memoryBytes: 0, snapshotDiskBytes: 0, workingSetPages: null, checksOk: false,
          });
        }
      }
    }
  }
} finally {
  await platform.close();
  rmSync(dataDir, { recursive: true, force: true });
}
const f = (xs: number[]): string => (xs.length ? median(xs).toFixed(1) : '-');
process.stdout.write('\nmedians, ms (eager restore; working set = pages touched after a restore, recorded by reap)\n');
printTable(rows.map((r) => ({
  function: r.function,
  input: r.input,
  layout: r.layout,
  'cold ms': f(r.coldMs),
  'snapshot ms': f(r.snapshotMs),
  '(restore)': f(r.restoreMs),
  'warm ms': f(r.warmMs),
  'mem MiB': (r.memoryBytes / MiB).toFixed(1),
  'snap disk MiB': (r.snapshotDiskBytes / MiB).toFixed(1),
  'working set MiB': r.workingSetPages === null ? '-' : ((r.workingSetPages * PAGE_BYTES) / MiB).toFixed(1),
  'ws %': r.workingSetPages === null || !r.memoryBytes ? '-' : `${((100 * r.workingSetPages * PAGE_BYTES) / r.memoryBytes).toFixed(0)}%`,
  checks: r.checksOk ? 'ok' : 'FAILED',
})));
// The first request after a restore against a warm request, both layouts side by side: the
// handler's own time (where V8's code tiers show) and the whole request.
const ratio = (a: number[], b: number[]): string => (a.length && b.length ? `${(median(a) / median(b)).toFixed(2)}x` : '-');
process.stdout.write('\nfirst request after a restore vs warm (medians, ms; ratio = restored / warm)\n');
const keyOf = (r: Row): string => `${r.function}\u0000${r.input}`;
const keys = [...new Set(rows.map(keyOf))];
printTable(keys.map((k) => {
  const out: Record<string, string> = { function: k.split('\u0000')[0]!, input: k.split('\u0000')[1]! };
  for (const layout of LAYOUTS) {
    const r = rows.find((x) => keyOf(x) === k && x.layout === layout);
    const tag = layout === 'horizontal' ? 'h' : 'v';
    out[`${tag} warm handler`] = r ? f(r.warmHandlerMs) : '-';
    out[`${tag} restored handler`] = r ? f(r.restoredHandlerMs) : '-';
    out[`${tag} handler ratio`] = r ? ratio(r.restoredHandlerMs, r.warmHandlerMs) : '-';
    out[`${tag} total ratio`] = r ? ratio(r.snapshotMs, r.warmMs) : '-';
  }
  return out;
}));
mkdirSync(join(root, 'results'), { recursive: true });
const out = join(root, 'results', `bench-functions-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(out, JSON.stringify({ runs, rows }, null, 2));
process.stdout.write(`\nraw samples: ${out}\n`);
