// `npm run bench:restore`: every restore strategy registered and supported on this host, side by
// side in one run. Part 1 restores synthetic snapshot images (working sets of 5/25/60%, sequential
// or scattered, dense or zero-heavy) into a fresh Wasm memory and has a tiny Wasm guest touch the
// working set; part 2 restores the example functions through the Platform. Prints medians, ratios
// against eager-from-DRAM and vanilla, working-set throughput against the host's measured limits,
// and writes raw samples to results/ (gitignored).
//
// Environment (defaults in brackets): SIZE_MIB [256] image size; RUNS [5] measured runs per cell;
// WS [5,25,60] working sets, %; ORDERS [seq,rand]; CONTENTS [dense,zero]; ACCESS [rw] (r: reads
// only; rw: each touched page read and written); STRATEGIES [every supported] comma list;
// FUNCTIONS [mem64-c,hello-c,stdlib-py] ('' skips part 2); SYNTHETIC [1] (0 skips part 1);
// DROP_CACHES [1] also echo 1 > /proc/sys/vm/drop_caches before cold runs where permitted (it
// drops the whole machine's page cache); BENCH_DIR [os.tmpdir()] where images are written (use a
// disk, not tmpfs). Quick run: SIZE_MIB=32 RUNS=3 WS=5,25 ORDERS=rand CONTENTS=dense npm run bench:restore

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { parseDaemonConfig } from '../core/config.js';
import { PAGE_BYTES, type SnapshotState } from '../core/snapshot-format.js';
import { Platform } from '../platform/platform.js';
import { EXAMPLES } from '../harness/examples.js';
import { readManifestFile } from '../cli/context.js';
import { printTable } from '../cli/commands/with-api.js';
import { discardArtefacts, getStrategy, listStrategies, type RestoreStrategy } from '../restore/index.js';
import { mapAnonymous, pageFaultCounts } from '../native/index.js';
import { freshTouchGbps, memcpyTouchedGbps, uffdBulkCopyGbps } from '../native/host-limits.js';
import { expectedChecksum, newToucher } from './_guest-toucher.js';
import { dropCaches, measureDisk, probeDropCaches, storageReadBytes, warmCaches, type DropMode } from './_page-cache.js';
import { scenarios, syntheticMemory, touchPlan, writeScenarioSnapshot, type Scenario } from './_synthetic-images.js';

const MiB = 1 << 20;
const env = process.env;
const list = (v: string | undefined, d: string): string[] => (v ?? d).split(',').map((s) => s.trim()).filter(Boolean);
const sizeBytes = Number(env.SIZE_MIB ?? 256) * MiB;
const runs = Number(env.RUNS ?? 5);
const access = env.ACCESS ?? 'rw';
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const gc = (globalThis as { gc?: () => void }).gc;

// ---- which strategies, under which cache condition --------------------------------------

/** A benchmark row: a strategy under a cache condition. 'warm' = snapshot files in the page cache. */
interface Row {
  readonly label: string;
  readonly strategy: RestoreStrategy;
  readonly cond: 'cold' | 'warm';
}

const supported = listStrategies();
const wanted = env.STRATEGIES ? list(env.STRATEGIES, '') : supported.filter((s) => s.support.ok).map((s) => s.id);
const rows: Row[] = [];
for (const id of wanted) {
  const strategy = getStrategy(id);
  // vanilla-cache is by definition the page-cache-resident case; everything else starts cold.
  rows.push({ label: id, strategy, cond: id === 'vanilla-cache' ? 'warm' : 'cold' });
}
if (wanted.includes('eager')) rows.unshift({ label: 'eager@dram', strategy: getStrategy('eager'), cond: 'warm' });
const BASE_DRAM = 'eager@dram';
const BASE_VANILLA = 'vanilla';

// ---- host description and limits ----------------------------------------------------------

const dropMode: DropMode = { dropCaches: env.DROP_CACHES !== '0' && probeDropCaches() };
const host = `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
const load0 = loadavg();
const workDir = mkdtempSync(join(env.BENCH_DIR ?? tmpdir(), 'thaw-bench-restore-'));
const out = (s: string): void => void process.stdout.write(s);
const note = (s: string): void => void process.stderr.write(`  ${s}\n`);

out(`bench:restore  size=${sizeBytes / MiB} MiB  runs=${runs}  access=${access}  host: ${host}\n`);
out(`load average at start: ${load0.map((l) => l.toFixed(2)).join(' ')}\n`);
out(`cold runs: posix_fadvise(DONTNEED) on every snapshot file${dropMode.dropCaches ? ' + echo 1 > /proc/sys/vm/drop_caches' : ' (drop_caches not permitted or DROP_CACHES=0)'}\n`);
out(`strategies: ${rows.map((r) => `${r.label}(${r.cond})`).join(' ')}\n`);
const unsupported = supported.filter((s) => !s.support.ok);
if (unsupported.length) out(`not supported here: ${unsupported.map((s) => `${s.id} (${s.support.ok ? '' : s.support.reason})`).join('; ')}\n`);

note('measuring host limits ...');
const limitBytes = Math.min(sizeBytes, 256 * MiB);
const uffdLimit = uffdBulkCopyGbps(limitBytes, runs, 'pread');
const disk = measureDisk(workDir, limitBytes, Math.min(runs, 3), dropMode);
const limits = {
  memcpyGbps: memcpyTouchedGbps(limitBytes, runs),
  freshTouchGbps: freshTouchGbps(limitBytes, runs),
  uffdCopyGbps: typeof uffdLimit === 'number' ? uffdLimit : NaN,
  diskGbps: Math.max(disk.bufferedGbps, typeof disk.directGbps === 'number' ? disk.directGbps : 0),
};
out('\nhost limits (median, GB/s = 1e9 B/s):\n');
printTable([
  { limit: `memcpy into touched memory (${limitBytes / MiB} MiB)`, 'GB/s': limits.memcpyGbps.toFixed(2) },
  { limit: `fresh page touch (${limitBytes / MiB} MiB, 4 KiB pages)`, 'GB/s': limits.freshTouchGbps.toFixed(2) },
  { limit: 'bulk UFFDIO_COPY, 64 KiB chunks (pread from tmpfs)', 'GB/s': typeof uffdLimit === 'number' ? uffdLimit.toFixed(2) : uffdLimit },
  { limit: 'disk read, cold, buffered 8 MiB reads', 'GB/s': disk.bufferedGbps.toFixed(2) },
  { limit: 'disk read, cold, one O_DIRECT read', 'GB/s': typeof disk.directGbps === 'number' ? disk.directGbps.toFixed(2) : disk.directGbps },
]);

// ---- part 1: synthetic images ---------------------------------------------------------------

/** One measured restore of a synthetic image. */
interface Sample {
  scenario: string;
  row: string;
  strategy: string;
  cond: 'cold' | 'warm';
  run: number;
  /** open + fill + guest touching its working set: the time to first response. */
  ttfrMs: number;
  restoreMs: number;
  touchMs: number;
  fillMs: number;
  majorFaults: number;
  minorFaults: number;
  uffdFaults: number;
  prefetchedPages: number;
  bytesRead: number;
  storageReadBytes: number;
  compressionRatio: number;
  phase: string | null;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function restoreOnce(row: Row, root: string, chain: readonly SnapshotState[], s: Scenario, expected: number, run: number): Sample {
  const plan = touchPlan(s);
  if (row.cond === 'cold') dropCaches(root, dropMode);
  else warmCaches(root);
  // What a sandbox host does at prepare time, before any request (thaw pre-faults its pool here).
  row.strategy.preallocate?.(s.sizeBytes);
  gc?.();
  const memory = new WebAssembly.Memory({ initial: 1, maximum: s.sizeBytes / 65536 });
  const toucher = newToucher(memory);
  const io0 = storageReadBytes();
  const f0 = pageFaultCounts();
  const t0 = performance.now();
  const image = row.strategy.open(root, chain);
  let sum: number;
  let t1: number;
  try {
    image.fill(memory);
    t1 = performance.now();
    sum = toucher.touch(plan);
  } catch (err: unknown) {
    image.release();
    throw err;
  }
  const t2 = performance.now();
  const f1 = pageFaultCounts();
  image.afterInvoke();
  const stats = image.release();
  const io1 = storageReadBytes();
  // Give the pages back now (a fenced range becomes plain anonymous memory again).
  mapAnonymous(memory.buffer, 0, memory.buffer.byteLength);
  if (sum !== expected) throw new Error(`${row.label} on ${s.id}: the guest read checksum ${sum}, the image has ${expected}`);
  const ratio = (stats as { compressionRatio?: unknown }).compressionRatio;
  return {
    scenario: s.id, row: row.label, strategy: row.strategy.id, cond: row.cond, run,
    ttfrMs: t2 - t0, restoreMs: t1 - t0, touchMs: t2 - t1, fillMs: stats.fillMs,
    majorFaults: f1.major - f0.major, minorFaults: f1.minor - f0.minor, uffdFaults: stats.uffdFaults,
    prefetchedPages: stats.prefetchedPages, bytesRead: stats.bytesRead, storageReadBytes: io1 - io0,
    compressionRatio: typeof ratio === 'number' ? ratio : 0, phase: stats.phase,
  };
}

const samples: Sample[] = [];
const prepareMs: Record<string, Record<string, number>> = {};
const scenarioList = env.SYNTHETIC === '0' ? [] : scenarios(sizeBytes, list(env.WS, '5,25,60').map(Number),
  list(env.ORDERS, 'seq,rand') as Scenario['order'][], list(env.CONTENTS, 'dense,zero') as Scenario['content'][], access !== 'r');

const fmt = (x: number, d = 1): string => (Number.isFinite(x) ? x.toFixed(d) : '-');
const summaries: Record<string, string | number>[] = [];

for (const s of scenarioList) {
  note(`${s.id}: writing the image ...`);
  const root = join(workDir, s.id);
  mkdirSync(root, { recursive: true });
  const memory = syntheticMemory(s);
  const plan = touchPlan(s);
  const expected = expectedChecksum(memory, plan);
  const chain = writeScenarioSnapshot(root, 'img', memory);
  const presentBytes = chain[0]!.runs.reduce((n, r) => n + r.pageCount * PAGE_BYTES, 0);
  const wsBytes = plan.count * PAGE_BYTES;
  prepareMs[s.id] = {};
  for (const row of rows) {
    note(`${s.id}: ${row.label} ...`);
    const t0 = performance.now();
    row.strategy.prepare(root, chain);
    prepareMs[s.id]![row.label] = performance.now() - t0;
    restoreOnce(row, root, chain, s, expected, -1); // unmeasured: records reap's working set, warms code paths
    for (let i = 0; i < runs; i++) samples.push(restoreOnce(row, root, chain, s, expected, i));
  }
  discardArtefacts(root, 'img');
  rmSync(root, { recursive: true, force: true });

  const med = (label: string, k: keyof Sample): number => median(samples.filter((x) => x.scenario === s.id && x.row === label).map((x) => x[k] as number));
  const dramBase = med(BASE_DRAM, 'ttfrMs');
  const vanillaBase = med(BASE_VANILLA, 'ttfrMs');
  out(`\n${s.id}: ${s.sizeBytes / MiB} MiB, ${fmt(presentBytes / MiB)} MiB present, working set ${s.workingSetPct}% = ${fmt(wsBytes / MiB)} MiB ` +
    `${s.order === 'seq' ? 'sequential' : 'scattered'}, ${s.write ? 'read+write' : 'read'} per page; medians of ${runs}\n`);
  const table = rows.map((row) => {
    const ttfr = med(row.label, 'ttfrMs');
    const wsGbps = wsBytes / (ttfr * 1e6);
    const r: Record<string, string | number> = {
      strategy: row.label, cache: row.cond,
      'ttfr ms': fmt(ttfr, 2), 'restore ms': fmt(med(row.label, 'restoreMs'), 2), 'touch ms': fmt(med(row.label, 'touchMs'), 2),
      'x dram': fmt(ttfr / dramBase, 2), 'x vanilla': fmt(ttfr / vanillaBase, 2),
      'maj flt': fmt(med(row.label, 'majorFaults'), 0), 'min flt': fmt(med(row.label, 'minorFaults'), 0), 'uffd flt': fmt(med(row.label, 'uffdFaults'), 0),
      'read MiB': fmt(med(row.label, 'bytesRead') / MiB), 'disk MiB': fmt(med(row.label, 'storageReadBytes') / MiB),
      ratio: med(row.label, 'compressionRatio') > 0 ? fmt(med(row.label, 'compressionRatio'), 2) : '-',
      'ws GB/s': fmt(wsGbps, 2),
      '%memcpy': fmt((100 * wsGbps) / limits.memcpyGbps, 0), '%touch': fmt((100 * wsGbps) / limits.freshTouchGbps, 0),
      '%uffd': fmt((100 * wsGbps) / limits.uffdCopyGbps, 0), '%disk': fmt((100 * wsGbps) / limits.diskGbps, 0),
    };
    summaries.push({ scenario: s.id, strategy: row.label, ttfrMs: ttfr });
    return r;
  });
  printTable(table);
}

if (scenarioList.length > 0) {
  out('\ntime to first response, median ms (rows: strategy; columns: scenario)\n');
  const byRow = rows.map((row) => {
    const r: Record<string, string | number> = { strategy: `${row.label} (${row.cond})` };
    for (const s of scenarioList) r[s.id] = fmt(Number(summaries.find((x) => x.scenario === s.id && x.strategy === row.label)?.ttfrMs), 1);
    const vc = scenarioList.map((s) => Number(summaries.find((x) => x.scenario === s.id && x.strategy === row.label)?.ttfrMs) /
      Number(summaries.find((x) => x.scenario === s.id && x.strategy === 'vanilla-cache')?.ttfrMs));
    r['geomean x vanilla-cache'] = fmt(Math.exp(vc.reduce((a, x) => a + Math.log(x), 0) / vc.length), 2);
    return r;
  });
  printTable(byRow);
}

// ---- part 2: example functions through the Platform -------------------------------------------

interface PlatformSample {
  function: string;
  strategy: string;
  cond: 'cold' | 'warm';
  run: number;
  totalMs: number;
  restoreMs: number;
  handlerMs: number;
  majorFaults: number;
  minorFaults: number;
  uffdFaults: number;
  bytesRead: number;
  compressionRatio: number;
}

/**
 * Part 2's rows: every strategy row, and `auto` (the default) from a cold and a warm cache twice:
 * first, before the platform has measured anything of the snapshot (its rules alone), and last,
 * after every other row has restored the snapshot (auto then also uses those measurements).
 */
interface FunctionRow { readonly label: string; readonly id: string; readonly cond: 'cold' | 'warm' }
const autoRows = (when: string): FunctionRow[] => (['cold', 'warm'] as const).map((cond) => ({ label: `auto, ${when}`, id: 'auto', cond }));
const functionRows: FunctionRow[] = [
  ...autoRows('rules'), ...rows.map((r) => ({ label: r.label, id: r.strategy.id, cond: r.cond })), ...autoRows('measured'),
];
/** What auto picked, per function and row. */
const autoPicks = new Map<string, Set<string>>();

const platformSamples: PlatformSample[] = [];
const platformErrors: Record<string, string> = {};
const functions = list(env.FUNCTIONS, 'mem64-c,hello-c,stdlib-py');
if (functions.length > 0) {
  const dataDir = mkdtempSync(join(workDir, 'platform-'));
  const platform = new Platform({ ...parseDaemonConfig({ dataDir, spareHosts: 1, preparedPerFunction: 1 }), logger: pino({ level: 'warn' }) });
  const snapshotRoot = (platform as unknown as { snapshotRoot: string }).snapshotRoot;
  const snapshotIds: string[] = [];
  try {
    for (const name of functions) {
      const ex = EXAMPLES.find((e) => e.name === name);
      if (!ex) throw new Error(`unknown example ${name}`);
      note(`${name}: deploy, cold run, snapshot ...`);
      const { manifest, artefact } = readManifestFile(join(repoRoot, 'functions', name, 'function.json'));
      const fn = await platform.deployFunction(manifest, artefact);
      const input = Buffer.from(ex.input);
      const first = await platform.invoke({ function: fn.name, mode: 'cold', input, keep: true });
      const snap = await platform.createSnapshot({ sandboxId: first.sandboxId, kind: 'full' });
      snapshotIds.push(snap.id);
      const warmOutput = Buffer.from(first.output).toString('base64');
      await platform.deleteSandbox(first.sandboxId);
      for (const row of functionRows) {
        note(`${name}: ${row.label} (${row.cond}) ...`);
        try {
          if (row.id !== 'auto') await platform.prepareSnapshot(snap.id, row.id);
          const once = async (run: number): Promise<void> => {
            if (row.cond === 'cold') dropCaches(snapshotRoot, dropMode);
            else warmCaches(join(snapshotRoot, snap.id));
            await platform.poolSettled();
            const r = await platform.invoke({ function: fn.name, mode: 'snapshot', snapshotId: snap.id, strategy: row.id, input, keep: false });
            if (row.id === 'auto') {
              const key = `${name}/${row.label}/${row.cond}`;
              autoPicks.set(key, (autoPicks.get(key) ?? new Set()).add(r.strategy ?? '?'));
            }
            if (Buffer.from(r.output).toString('base64') !== warmOutput) throw new Error(`${row.label}: output differs from the cold run's`);
            if (run < 0) return;
            const st = r.restore;
            const ratio = (st as { compressionRatio?: unknown } | undefined)?.compressionRatio;
            platformSamples.push({
              function: name, strategy: `${row.label}\0${row.cond}`, cond: row.cond, run, totalMs: r.timings.totalMs, restoreMs: r.timings.restoreMs ?? NaN,
              handlerMs: r.timings.handlerMs, majorFaults: st?.majorFaults ?? NaN, minorFaults: st?.minorFaults ?? NaN,
              uffdFaults: st?.uffdFaults ?? NaN, bytesRead: st?.bytesRead ?? NaN, compressionRatio: typeof ratio === 'number' ? ratio : 0,
            });
          };
          await once(-1); // unmeasured: reap records here
          for (let i = 0; i < runs; i++) await once(i);
        } catch (err: unknown) {
          platformErrors[`${name}/${row.label}\0${row.cond}`] = err instanceof Error ? `${(err as { code?: string }).code ?? ''} ${err.message}` : String(err);
        }
      }
    }
  } finally {
    await platform.close();
    for (const id of snapshotIds) discardArtefacts(snapshotRoot, id);
  }
  out(`\nexample functions through the Platform (restore + invoke, keep:false), medians of ${runs}; restore stats are the fill's\n`);
  const rowsOut: Record<string, string | number>[] = [];
  for (const name of functions) {
    const pickRow = (row: FunctionRow, k: keyof PlatformSample): number =>
      median(platformSamples.filter((x) => x.function === name && x.strategy === `${row.label}\0${row.cond}`).map((x) => x[k] as number));
    const pick = (label: string, k: keyof PlatformSample): number => {
      const row = functionRows.find((r) => r.label === label);
      return row ? pickRow(row, k) : NaN;
    };
    // auto's yardstick: the fastest strategy row measured from the same cache condition.
    const best = (cond: string): number => Math.min(...functionRows.filter((r) => r.id !== 'auto' && r.cond === cond).map((r) => pickRow(r, 'totalMs')).filter((v) => !Number.isNaN(v)));
    for (const row of functionRows) {
      const err = platformErrors[`${name}/${row.label}\0${row.cond}`];
      if (err) {
        rowsOut.push({ function: name, strategy: row.label, cache: row.cond, 'total ms': `error: ${err.slice(0, 90)}` });
        continue;
      }
      const total = pickRow(row, 'totalMs');
      const picked = row.id === 'auto' ? ` -> ${[...(autoPicks.get(`${name}/${row.label}/${row.cond}`) ?? [])].join('/')}` : '';
      rowsOut.push({
        function: name, strategy: `${row.label}${picked}`, cache: row.cond, 'total ms': fmt(total, 2), 'restore ms': fmt(pickRow(row, 'restoreMs'), 2),
        'handler ms': fmt(pickRow(row, 'handlerMs'), 2), 'x dram': fmt(total / pick(BASE_DRAM, 'totalMs'), 2), 'x vanilla': fmt(total / pick(BASE_VANILLA, 'totalMs'), 2),
        'x best': fmt(total / best(row.cond), 2),
        'maj flt': fmt(pickRow(row, 'majorFaults'), 0), 'min flt': fmt(pickRow(row, 'minorFaults'), 0), 'uffd flt': fmt(pickRow(row, 'uffdFaults'), 0),
        'read MiB': fmt(pickRow(row, 'bytesRead') / MiB, 1), ratio: pickRow(row, 'compressionRatio') > 0 ? fmt(pickRow(row, 'compressionRatio'), 2) : '-',
      });
    }
  }
  out("'x best': against the fastest strategy row from the same cache condition (target for auto: at most 1.1)\n");
  printTable(rowsOut, ['function', 'strategy', 'cache', 'total ms', 'restore ms', 'handler ms', 'x dram', 'x vanilla', 'x best', 'maj flt', 'min flt', 'uffd flt', 'read MiB', 'ratio']);
}

// ---- raw samples -------------------------------------------------------------------------------

const load1 = loadavg();
out(`\nload average at end: ${load1.map((l) => l.toFixed(2)).join(' ')}\n`);
rmSync(workDir, { recursive: true, force: true });
const file = join(repoRoot, 'results', `bench-restore-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
mkdirSync(join(repoRoot, 'results'), { recursive: true });
writeFileSync(file, JSON.stringify({
  host, loadAtStart: load0, loadAtEnd: load1, sizeBytes, runs, access, dropCaches: dropMode.dropCaches, limits, disk, prepareMs,
  rows: rows.map((r) => ({ label: r.label, strategy: r.strategy.id, cond: r.cond })), samples, platformSamples, platformErrors,
}, null, 1));
out(`raw samples: ${file}\n`);
