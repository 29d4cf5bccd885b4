// `npm run bench:scaling`: memory scaling per invocation (Faascale) against balloon-style scaling and
// a cgroup limit change, on real memory in this process, side by side in one run, each table beside
// Faascale's published figure (../shared/DESIGN.md section 4):
//   E1      scale-up and scale-down latency, balloon vs cgroup v1 limit change vs faascale;
//   E2      first-write time after a scale-up, lazy vs pre-populated (ms per MiB);
//   Eval-2  populating SIZE by page faults, MADV_WILLNEED, MADV_POPULATE_WRITE, UFFDIO_COPY, the pool;
//   targets 1 GiB up+down faascale >= 100x faster than the balloon; first write after a pre-populated
//           scale-up within 2x of memcpy into touched memory; an idle faascale sandbox (scaling-c
//           through the Platform) resident within 10% of its init footprint after a 1 GiB invocation.
// A3 (invocation time per suite function under cold, warm, vanilla, vanilla-cache, balloon and
// faascale) is a harness config: node dist/cli/main.js bench harness/configs/a3-scaling.json.
//
// Environment (defaults in brackets): RUNS [3] repetitions per cell (Faascale: mean of 100);
// SIZES [512,1024,2048,3072] MiB for E1 and E2; SIZE_MIB [3072] for Eval-2; BLOCK_MIB [64] faascale's
// block; PLATFORM [1] (0 skips the Platform target). Quick run: RUNS=1 SIZES=512,1024 SIZE_MIB=1024 npm run bench:scaling

import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, rmdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setImmediate as nextTurn } from 'node:timers/promises';
import pino from 'pino';
import { printTable } from '../cli/commands/with-api.js';
import { readManifestFile } from '../cli/context.js';
import { parseDaemonConfig } from '../core/config.js';
import { Platform } from '../platform/platform.js';
import { getScaling, DEFAULT_SCALING, type ByteRange, type ScalingGuest, type ScalingSpec } from '../memory/scaling/index.js';
import {
  copyInto, madviseDontneed, madvisePopulateWrite, madviseWillneed, poolMoveRuns, poolRelease, poolReserve, residentBytes, touchPages, uffdAvailability, uffdCreate,
} from '../native/index.js';

const MiB = 1024 * 1024;
const env = process.env;
const RUNS = Math.max(1, Number(env.RUNS ?? 3));
const SIZES = (env.SIZES ?? '512,1024,2048,3072').split(',').map(Number);
const SIZE_MIB = Number(env.SIZE_MIB ?? 3072);
const BLOCK_MIB = Number(env.BLOCK_MIB ?? 64);
const KEPT_MIB = 16;
const gc = (globalThis as { gc?: () => void }).gc;
const out = (s: string): void => void process.stdout.write(s);
const load = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');
const fmt = (ms: number): string => (ms < 1 ? ms.toFixed(3) : ms < 100 ? ms.toFixed(2) : ms.toFixed(0));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

function timeMs(work: () => void): number {
  const t0 = performance.now();
  work();
  return performance.now() - t0;
}

async function timeMsAsync(work: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await work();
  return performance.now() - t0;
}

/** A guest of KEPT_MIB + sizeMiB whose allocator holds everything above KEPT_MIB free (as scaling-c between invocations). */
function syntheticGuest(sizeMiB: number): ScalingGuest & { free: ByteRange[] } {
  const bytes = (KEPT_MIB + sizeMiB) * MiB;
  const memory = new WebAssembly.Memory({ initial: bytes / 65536, maximum: bytes / 65536 });
  touchPages(memory.buffer, 0, KEPT_MIB * MiB);
  const free = [{ offset: KEPT_MIB * MiB, length: sizeMiB * MiB }];
  return { name: 'bench', memory, declaredBytes: bytes, fileBacked: false, free, freeRanges: () => ({ ranges: free, source: 'bench' }) };
}

const specOf = (mechanism: 'balloon' | 'faascale', sizeMiB: number, populate: ScalingSpec['populate'] = 'populate-write'): ScalingSpec =>
  ({ ...DEFAULT_SCALING, mechanism, grantMiB: sizeMiB, baseMiB: KEPT_MIB, blockMiB: BLOCK_MIB, populate });

out(`# bench:scaling  RUNS=${RUNS} (Faascale: mean of 100)  sizes ${SIZES.join(',')} MiB  Eval-2 ${SIZE_MIB} MiB  faascale block ${BLOCK_MIB} MiB\n`);
out(`# load average at start: ${load()}\n\n`);

// ---- E1: scale-up and scale-down latency ------------------------------------------------------

interface E1Cell { up: number; down: number }
const e1: Record<string, Record<number, E1Cell>> = { balloon: {}, cgroup: {}, faascale: {}, 'faascale-pool': {} };

async function e1Mechanism(mechanism: 'balloon' | 'faascale', sizeMiB: number, populate: ScalingSpec['populate'] = 'populate-write'): Promise<E1Cell> {
  const ups: number[] = [];
  const downs: number[] = [];
  const g = syntheticGuest(sizeMiB);
  const session = getScaling(mechanism).session(g, specOf(mechanism, sizeMiB, populate));
  for (let i = 0; i < RUNS; i++) {
    await nextTurn(); // the idle gap between invocations (faascale's pool refills here)
    ups.push(await timeMsAsync(() => session.grant()));
    // The invocation writes its whole grant (not timed), so the scale-down has resident memory to give back.
    touchPages(g.memory.buffer, KEPT_MIB * MiB, sizeMiB * MiB);
    downs.push(await timeMsAsync(() => session.release()));
    if (residentBytes(g.memory.buffer, KEPT_MIB * MiB, sizeMiB * MiB) !== 0) throw new Error(`${mechanism} left memory resident after scale-down`);
  }
  await nextTurn();
  if (populate === 'pool') poolRelease();
  return { up: median(ups), down: median(downs) };
}

/** cgroup v1: the time of the limit write alone (the bench process is not in the cgroup). */
function e1Cgroup(sizeMiB: number): E1Cell | string {
  const root = '/sys/fs/cgroup/memory';
  if (!existsSync(join(root, 'memory.limit_in_bytes'))) return 'no cgroup v1 memory controller';
  const dir = join(root, `thaw-bench-scaling-${process.pid}`);
  try {
    mkdirSync(dir);
  } catch (err) {
    return `cannot create ${dir}: ${(err as Error).message}`;
  }
  try {
    const file = join(dir, 'memory.limit_in_bytes');
    const base = KEPT_MIB * MiB;
    writeFileSync(file, String(base));
    const ups: number[] = [];
    const downs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      ups.push(timeMs(() => writeFileSync(file, String(base + sizeMiB * MiB))));
      downs.push(timeMs(() => writeFileSync(file, String(base))));
    }
    return { up: median(ups), down: median(downs) };
  } finally {
    rmdirSync(dir);
  }
}

let cgroupNote = '';
for (const size of SIZES) {
  e1.balloon![size] = await e1Mechanism('balloon', size);
  gc?.();
  e1.faascale![size] = await e1Mechanism('faascale', size);
  gc?.();
  e1['faascale-pool']![size] = await e1Mechanism('faascale', size, 'pool');
  gc?.();
  const cg = e1Cgroup(size);
  if (typeof cg === 'string') cgroupNote = cg;
  else e1.cgroup![size] = cg;
}
out(`## E1: scale-up / scale-down latency, ms (median of ${RUNS}); load ${load()}\n`);
printTable(SIZES.map((size) => {
  const b = e1.balloon![size]!;
  const f = e1.faascale![size]!;
  const c = e1.cgroup![size];
  const fp = e1['faascale-pool']![size]!;
  return {
    MiB: size,
    'balloon up': fmt(b.up), 'balloon down': fmt(b.down),
    'cgroup up': c ? fmt(c.up) : '-', 'cgroup down': c ? fmt(c.down) : '-',
    'faascale up': fmt(f.up), 'faascale down': fmt(f.down),
    'faascale-pool up': fmt(fp.up), 'faascale-pool down': fmt(fp.down),
    'balloon/faascale': `${((b.up + b.down) / (f.up + f.down)).toFixed(1)}x`,
    'balloon/faascale-pool': `${((b.up + b.down) / (fp.up + fp.down)).toFixed(1)}x`,
  };
}));
out('  faascale up = grant + MADV_POPULATE_WRITE of the grant, per block; faascale-pool up = pre-faulted pool pages moved under the grant (mremap; refilled between invocations); balloon up = deflation 4 KiB page by page in batches of 256\n');
out('  with the platform polling between batches, pages come back lazily; balloon down = inflation, one madvise(MADV_DONTNEED) per 4 KiB page.\n');
out(`  cgroup = the memory.limit_in_bytes write alone${cgroupNote ? ` (${cgroupNote})` : ''}: it gives no memory back by itself (anonymous memory without swap is not reclaimable).\n`);
out('  Faascale (paper): scaling 2-3 orders of magnitude faster than balloons (QEMU/Firecracker balloon, virtio-mem), 512-3072 MiB, mean of 100.\n\n');

// ---- E2: first-write time after a scale-up -------------------------------------------------------

out(`## E2: first write after a scale-up, one write per 4 KiB page, ms per MiB (median of ${RUNS}); load ${load()}\n`);
const e2Rows: Record<string, string | number>[] = [];
for (const size of SIZES) {
  const g = syntheticGuest(size);
  const session = getScaling('faascale').session(g, specOf('faascale', size));
  const lazy: number[] = [];
  const populated: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    madviseDontneed(g.memory.buffer, KEPT_MIB * MiB, size * MiB);
    lazy.push(timeMs(() => touchPages(g.memory.buffer, KEPT_MIB * MiB, size * MiB)) / size);
    madviseDontneed(g.memory.buffer, KEPT_MIB * MiB, size * MiB);
    await session.grant();
    populated.push(timeMs(() => touchPages(g.memory.buffer, KEPT_MIB * MiB, size * MiB)) / size);
  }
  e2Rows.push({ MiB: size, 'lazy ms/MiB': median(lazy).toFixed(4), 'pre-populated ms/MiB': median(populated).toFixed(4), 'lazy/populated': `${(median(lazy) / median(populated)).toFixed(0)}x` });
  gc?.();
}
printTable(e2Rows);
out('  Faascale (paper): lazy 0.821 ms/MB, pre-populated 0.0039 ms/MB (210x).\n\n');

// ---- Eval-2: populating SIZE_MIB ----------------------------------------------------------------

out(`## Eval-2: populating ${SIZE_MIB} MiB, ms (median of ${RUNS}); load ${load()}\n`);
const populateBytes = SIZE_MIB * MiB;
const evalRows: Record<string, string | number>[] = [];
{
  const memory = new WebAssembly.Memory({ initial: populateBytes / 65536 });
  const row = (method: string, ms: number[], note: string): void => {
    const resident = residentBytes(memory.buffer, 0, populateBytes);
    evalRows.push({ method, ms: fmt(median(ms)), 'us/page': ((median(ms) * 1000) / (populateBytes / 4096)).toFixed(3), 'resident after': `${(resident / MiB).toFixed(0)} MiB`, note });
  };
  const fresh = (): void => madviseDontneed(memory.buffer, 0, populateBytes);
  const runs = (work: () => void): number[] => Array.from({ length: RUNS }, () => { fresh(); return timeMs(work); });
  row('page faults (one write per page)', runs(() => touchPages(memory.buffer, 0, populateBytes)), 'what a lazy guest pays on first touch');
  const willneed = runs(() => madviseWillneed(memory.buffer, 0, populateBytes));
  row('MADV_WILLNEED', willneed, 'a hint: on anonymous memory it populates nothing');
  row('MADV_POPULATE_WRITE', runs(() => madvisePopulateWrite(memory.buffer, 0, populateBytes)), 'faascale populate-write');
  const uffd = uffdAvailability();
  if (uffd.available) {
    const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'thaw-bench-scaling-'));
    const path = join(dir, 'zeros.bin');
    closeSync(openSync(path, 'w'));
    truncateSync(path, populateBytes); // sparse: reads as zeros, holds no memory
    try {
      const ms = runs(() => {
        const fd = openSync(path, 'r');
        const server = uffdCreate(memory.buffer, 0, populateBytes, { fd }, { prefetch: [{ offsetBytes: 0, lengthBytes: populateBytes }], chunkBytes: 1 * MiB });
        closeSync(fd);
        server.waitPrefetch();
        server.stop();
      });
      row('UFFDIO_COPY (1 MiB chunks, from a file)', ms, 'a page server installing every page');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  } else {
    evalRows.push({ method: 'UFFDIO_COPY', ms: '-', 'us/page': '-', 'resident after': '-', note: `unavailable: ${uffd.reason}` });
  }
  const pool: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    fresh();
    poolReserve(populateBytes); // pre-faulted ahead (not timed): faascale's pool refills after a release
    pool.push(timeMs(() => poolMoveRuns(memory.buffer, [{ offsetBytes: 0, lengthBytes: populateBytes }])));
  }
  row('pre-faulted pool (mremap)', pool, 'faascale populate: pool; the pool is filled ahead, off the invocation');
  poolRelease();
  fresh();
}
printTable(evalRows);
out('  Faascale (paper, Eval-2): 3 GiB by faults, WILLNEED, POPULATE_WRITE, UFFDIO_COPY and a device; DESIGN.md: POPULATE_WRITE ~0.55 us/page here against 12-17 us per first touch under load.\n\n');
gc?.();

// ---- targets -----------------------------------------------------------------------------------

out(`## targets; load ${load()}\n`);
const targets: Record<string, string | number>[] = [];
{
  const gib = 1024;
  const b = e1.balloon![gib] ?? (await e1Mechanism('balloon', gib));
  for (const populate of ['populate-write', 'pool'] as const) {
    const key = populate === 'pool' ? 'faascale-pool' : 'faascale';
    const f = e1[key]![gib] ?? (await e1Mechanism('faascale', gib, populate));
    const ratio = (b.up + b.down) / (f.up + f.down);
    targets.push({ target: `1 GiB up+down: faascale (${populate}) >= 100x faster than balloon`, figure: `balloon ${fmt(b.up)} + ${fmt(b.down)} ms, faascale ${fmt(f.up)} + ${fmt(f.down)} ms: ${ratio.toFixed(1)}x`, met: ratio >= 100 ? 'yes' : 'NO' });
  }
}
{
  // First write (memcpy of 1 GiB) after a pre-populated scale-up vs memcpy into touched memory.
  const g = syntheticGuest(1024);
  const session = getScaling('faascale').session(g, specOf('faascale', 1024));
  const source = new Uint8Array(1024 * MiB).fill(0x3c);
  const afterGrant: number[] = [];
  const touched: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    madviseDontneed(g.memory.buffer, KEPT_MIB * MiB, 1024 * MiB);
    await session.grant();
    afterGrant.push(timeMs(() => copyInto(g.memory.buffer, KEPT_MIB * MiB, source)));
    touched.push(timeMs(() => copyInto(g.memory.buffer, KEPT_MIB * MiB, source)));
  }
  const ratio = median(afterGrant) / median(touched);
  targets.push({ target: 'first write after pre-populated scale-up within 2x of memcpy into touched memory', figure: `${fmt(median(afterGrant))} ms vs ${fmt(median(touched))} ms for 1 GiB: ${ratio.toFixed(2)}x`, met: ratio <= 2 ? 'yes' : 'NO' });
  gc?.();
}
if (env.PLATFORM !== '0') {
  const dataDir = mkdtempSync(join(tmpdir(), 'thaw-bench-scaling-'));
  const platform = new Platform({ ...parseDaemonConfig({ dataDir, spareHosts: 1, preparedPerFunction: 0 }), logger: pino({ level: 'silent' }) });
  try {
    const { manifest, artefact } = readManifestFile(fileURLToPath(new URL('../../functions/scaling-c/function.json', import.meta.url)));
    await platform.deployFunction({ ...manifest, scaling: { mechanism: 'faascale', blockMiB: BLOCK_MIB } }, artefact);
    const booted = await platform.bootSandbox('scaling-c');
    const init = booted.memory.residentBytes;
    const r = await platform.invoke({ function: 'scaling-c', mode: 'warm', sandboxId: booted.id, input: Buffer.from('1024') });
    const idle = r.memory.residentBytes;
    const over = (idle - init) / init;
    targets.push({
      target: 'idle faascale sandbox resident within 10% of its init footprint after a 1 GiB invocation',
      figure: `init ${(init / MiB).toFixed(1)} MiB, after ${(idle / MiB).toFixed(1)} MiB (${(over * 100).toFixed(1)}%); grant ${r.timings.grantMs} ms, populate ${r.timings.populateMs} ms, release ${r.timings.releaseMs} ms, handler ${r.timings.handlerMs} ms`,
      met: Math.abs(over) <= 0.1 ? 'yes' : 'NO',
    });
  } finally {
    await platform.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
printTable(targets);
out(`# load average at end: ${load()}\n`);
