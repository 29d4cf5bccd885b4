// `npm run bench:firecracker`: the Firecracker page server per strategy against thaw-fc-testvmm
// (a real process whose guest memory faults over userfaultfd, as Firecracker's does). For each
// strategy: the time for the guest to read every page once (user mode), its throughput, the
// guest-side first-touch latency and the server-side service time per fault (medians over RUNS),
// beside the host's own limits (bench:restore's uffd bulk copy and fresh-page touch).
// Environment: SIZE_MIB [64] guest size (two regions: 3/4 and 1/4, as x86 above 3 GiB);
// RUNS [5]; BENCH_DIR [os.tmpdir()]. Quick run: SIZE_MIB=32 RUNS=3 npm run bench:firecracker
// Where the page server can be jailed (root), a row serves uffd from a jailed page server
// (page-server-jail.ts: its own process, seccomp with ioctl filtered, Landlock) beside the
// in-process one.

import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { printTable } from '../cli/commands/with-api.js';
import { freshTouchGbps, heapLikeImage, uffdBulkCopyGbps } from '../native/host-limits.js';
import { writeSnapshot } from '../snapshot/snapshot-io.js';
import { PageServer, type PageServerEvent, type SessionStats } from './page-server.js';
import { JailedPageServer } from './page-server-jail.js';
import { jailAvailability } from '../sandbox/jail.js';
import { runTestVmm, type VmmReport } from './test-vmm.js';

const MiB = 1 << 20;
const sizeMiB = Number(process.env.SIZE_MIB ?? 64);
const runs = Number(process.env.RUNS ?? 5);
const dir = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'thaw-fc-bench-'));
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

interface Sample { vmm: VmmReport; server: SessionStats }

const JAIL_GID = 62990;

async function cell(snapshot: string, memory: string, strategy: string, ws: string, jailed: boolean): Promise<Sample[]> {
  const out: Sample[] = [];
  const regions = `${(sizeMiB * 3) / 4}M,${sizeMiB / 4}M`;
  // reap: one recording run first (not measured), then replays.
  for (let i = strategy === 'reap' ? -1 : 0; i < runs; i++) {
    const events: PageServerEvent[] = [];
    const socket = join(dir, jailed ? 'jail' : '', 'uffd.sock');
    const server = jailed
      ? await JailedPageServer.start({ socket, snapshot, strategy, gid: JAIL_GID, onEvent: (e) => events.push(e) })
      : await PageServer.listen({ socket, snapshot, strategy, workingSet: ws, onEvent: (e) => events.push(e) });
    const run = await runTestVmm({ socket, memory, regions, gap: '2M', stride: 1, verify: false });
    for (let k = 0; k < 200 && !events.some((e) => e.event === 'session-end'); k++) await new Promise((r) => setTimeout(r, 5));
    await server.close();
    const end = events.find((e) => e.event === 'session-end');
    if (run.code !== 0 || !run.report || !end || end.event !== 'session-end') throw new Error(`${strategy}: ${run.stderr} ${JSON.stringify(events)}`);
    if (i >= 0) out.push({ vmm: run.report, server: end.stats });
  }
  return out;
}

// Heap-like contents (text, pointers, zeros) as bench:restore's host limits use, so lz4 sees a
// realistic ratio.
const memory = heapLikeImage(sizeMiB * MiB);
const fcFile = join(dir, 'vm.mem');
writeFileSync(fcFile, memory);
writeSnapshot(dir, { id: 'snap', kind: 'full', baseId: null, functionName: 'bench', runtime: 'wasi', moduleDigest: 'x', memoryBytes: memory.length, guestState: null, createdAt: new Date().toISOString(), sourceSandboxId: 'bench' }, memory);
const thawDir = join(dir, 'snap');

const jailOk = jailAvailability().ok;
if (jailOk) {
  chmodSync(dir, 0o711);
  chownSync(fcFile, 0, JAIL_GID);
  chmodSync(fcFile, 0o640);
}
const cells: [string, string, string, string, boolean?][] = [
  ['uffd', 'Firecracker memory file (unchecked)', fcFile, fcFile],
  ...(jailOk ? [['uffd', 'same, page server jailed', fcFile, fcFile, true] as [string, string, string, string, boolean]] : []),
  ['eager', 'Firecracker memory file (unchecked)', fcFile, fcFile],
  ['reap', 'Firecracker memory file (unchecked)', fcFile, fcFile],
  ['uffd', 'Thaw snapshot (each page checked)', thawDir, join(thawDir, 'memory.img')],
  ['sabre', 'Thaw snapshot (lz4 partitions, checked)', thawDir, join(thawDir, 'memory.img')],
];
const rows: Record<string, string | number>[] = [];
const load0 = loadavg()[0]!;
let baseMs = 0;
try {
  for (const [strategy, source, snapshot, mem, jailed] of cells) {
    const ws = join(dir, `ws-${rows.length}.reap`);
    const s = await cell(snapshot, mem, strategy, ws, jailed === true);
    const ms = median(s.map((x) => x.vmm.touchNs)) / 1e6;
    if (rows.length === 0) baseMs = ms;
    rows.push({
      strategy, source, 'touch all ms': ms.toFixed(1), 'GB/s': (memory.length / (ms * 1e6)).toFixed(2),
      'vs uffd file': (ms / baseMs).toFixed(2), 'faults': median(s.map((x) => x.server.faults)),
      'guest fault med us': (median(s.map((x) => x.vmm.userFaultMedianNs)) / 1e3).toFixed(1),
      'server service med us': (median(s.map((x) => x.server.serviceMedianNs)) / 1e3).toFixed(1),
      'server service p99 us': (median(s.map((x) => x.server.serviceP99Ns)) / 1e3).toFixed(1),
      'prefetch ms': (median(s.map((x) => x.server.prefetchNs)) / 1e6).toFixed(1),
    });
  }
  const limitBytes = Math.min(memory.length, 64 * MiB);
  const bulk = uffdBulkCopyGbps(limitBytes, 3, 'mmap');
  process.stdout.write(`Firecracker page server vs thaw-fc-testvmm: guest ${sizeMiB} MiB in two regions, ${runs} runs per row (medians), every page read once from user mode\n`);
  printTable(rows);
  process.stdout.write(`host limits (bench:restore's): uffd bulk copy ${typeof bulk === 'number' ? `${bulk.toFixed(2)} GB/s` : bulk}, fresh-page touch ${freshTouchGbps(limitBytes, 3).toFixed(2)} GB/s\n`);
  process.stdout.write(`load average: ${load0.toFixed(2)} at start, ${loadavg().map((l) => l.toFixed(2)).join(' ')} at end (${cpus().length} cores)\n`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
