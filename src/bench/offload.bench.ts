// `npm run bench:offload`: what each offload tier costs, side by side in one run, on real
// (jailed when root) sandboxes of mem64-c (init fills 64 MiB with random words; the handler reads
// all of it and replies with a checksum), or FUNCTION=memlog-c (the same with 64 MiB of log text,
// which compresses). Per tier, each run: restore a sandbox (eager), one warm
// request with everything resident, offload down to 8 MiB (a semi-warm sandbox at its floor),
// one request that faults all of it back page by page; then offload down to 8 MiB again, bring
// the working set back in bulk (prefetch, as faasmem does when a semi-warm sandbox is picked) and
// run the request. Prints medians: offload time, resident before and after, the fault thread's
// time per page put back (fetch + UFFDIO_COPY), each semi-warm request end to end (invocation
// total; with prefetch, the prefetch's round trip plus the invocation), and beside them what an
// eager snapshot restore plus the same request costs (the alternative to keeping a semi-warm
// sandbox) and the ratios restore / semi-warm (the issue's target: >= 3x).
// The remote tier runs twice: no injected latency, and LATENCY_US (default 50) per page.
// Env: RUNS (default 3), LATENCY_US, FUNCTION (mem64-c or memlog-c).

import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { parseDaemonConfig } from '../core/config.js';
import { Platform } from '../platform/platform.js';
import { median } from '../harness/measure-paths.js';
import { printTable } from '../cli/commands/with-api.js';
import { readManifestFile } from '../cli/context.js';
import { SANDBOX_GID } from '../sandbox/jail.js';
import { startMemoryServer, type MemoryServer } from '../memory/remote-server.js';
import type { OffloadTierId } from '../memory/types.js';

const runs = Number(process.env.RUNS ?? 3);
const latencyUs = Number(process.env.LATENCY_US ?? 50);
const fn = process.env.FUNCTION ?? 'mem64-c';
const MiB = 1024 * 1024;
const FLOOR = 8 * MiB;
const root = fileURLToPath(new URL('../../', import.meta.url));
const load = (): string => loadavg().map((l) => l.toFixed(1)).join(' ');
const host = `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
process.stdout.write(`bench:offload  ${fn}  runs=${runs}  host: ${host}  load average ${load()}\n`);

const dataDir = mkdtempSync(join(tmpdir(), 'thaw-bench-offload-'));
const p = new Platform({ ...parseDaemonConfig({ dataDir, spareHosts: 1, preparedPerFunction: 1, jail: 'auto' }), logger: pino({ level: 'warn' }) });
p.setMemoryTracking(true);
const servers: MemoryServer[] = [];
try {
  const fast = await startMemoryServer({ socketPath: join(dataDir, 'run', 'memory-0.sock'), gid: SANDBOX_GID, latencyUs: 0 });
  const slow = await startMemoryServer({ socketPath: join(dataDir, 'run', 'memory-1.sock'), gid: SANDBOX_GID, latencyUs });
  servers.push(fast, slow);
  process.stdout.write(`jailed hosts: ${p.jail.jailed}; memory server: ${fast.isolation.netns ? 'own network namespace' : `no network namespace (${fast.isolation.reason})`}\n`);
  const { manifest, artefact } = readManifestFile(join(root, 'functions', fn, 'function.json'));
  await p.deployFunction(manifest, artefact);
  const input = new Uint8Array(0);
  const cold = await p.invoke({ function: fn, mode: 'cold', input });
  const expected = Buffer.from(cold.output).toString();
  const snapshotId = (await p.createSnapshot({ sandboxId: cold.sandboxId })).id;
  await p.deleteSandbox(cold.sandboxId);

  const cases: { label: string; tier: OffloadTierId; socket: string | null }[] = [
    { label: 'file', tier: 'file', socket: null },
    { label: 'compressed (lz4)', tier: 'compressed', socket: null },
    { label: 'remote (+0 us)', tier: 'remote', socket: fast.socketPath },
    { label: `remote (+${latencyUs} us)`, tier: 'remote', socket: slow.socketPath },
  ];
  const rows: Record<string, string>[] = [];
  for (const c of cases) {
    process.stderr.write(`  ${c.label} ...\n`);
    const m = { offloadMs: [] as number[], before: [] as number[], after: [] as number[], storeMiB: [] as number[], faultUs: [] as number[], warmMs: [] as number[], backMs: [] as number[], prefetchMs: [] as number[], prefetchedMiB: [] as number[], pfReqMs: [] as number[], restoreMs: [] as number[] };
    for (let i = 0; i < runs; i++) {
      const r = await p.invoke({ function: fn, mode: 'snapshot', snapshotId, strategy: 'eager', input });
      const s = p.policySandbox(r.sandboxId, c.socket);
      const warm = await p.invoke({ function: fn, mode: 'warm', sandboxId: s.id, input });
      const before = (await s.memoryStages()).residentBytes;
      const rep = await s.offload({ tier: c.tier, scope: { shrinkToBytes: FLOOR } });
      m.storeMiB.push((await s.offloadStats()).storedBytes / MiB);
      const back = await p.invoke({ function: fn, mode: 'warm', sandboxId: s.id, input });
      if (Buffer.from(back.output).toString() !== expected) throw new Error(`${c.label}: wrong checksum after fault-back`);
      const st = await s.offloadStats();
      await s.offload({ tier: c.tier, scope: { shrinkToBytes: FLOOR } });
      const t0 = performance.now();
      const pre = await s.prefetch();
      const prefetchMs = performance.now() - t0;
      const after = await p.invoke({ function: fn, mode: 'warm', sandboxId: s.id, input });
      if (Buffer.from(after.output).toString() !== expected) throw new Error(`${c.label}: wrong checksum after prefetch`);
      m.offloadMs.push(rep.elapsedMs);
      m.before.push(before / MiB);
      m.after.push(rep.residentBytes / MiB);
      m.faultUs.push(st.faultBackMeanUs);
      m.warmMs.push(warm.timings.totalMs);
      m.backMs.push(back.timings.totalMs);
      m.prefetchMs.push(prefetchMs);
      m.prefetchedMiB.push(pre.prefetchedBytes / MiB);
      m.pfReqMs.push(prefetchMs + after.timings.totalMs);
      m.restoreMs.push(r.timings.totalMs);
      await p.deleteSandbox(s.id);
    }
    const restore = median(m.restoreMs);
    rows.push({
      tier: c.label,
      'offload ms': median(m.offloadMs).toFixed(1),
      'resident before MiB': median(m.before).toFixed(1),
      'after MiB': median(m.after).toFixed(1),
      'store MiB': median(m.storeMiB).toFixed(1),
      'request ms (resident)': median(m.warmMs).toFixed(1),
      'semi-warm ms (faulting back)': median(m.backMs).toFixed(1),
      'prefetch ms (MiB)': `${median(m.prefetchMs).toFixed(1)} (${median(m.prefetchedMiB).toFixed(0)})`,
      'semi-warm ms (prefetch + request)': median(m.pfReqMs).toFixed(1),
      'restore + request ms': restore.toFixed(1),
      'restore / faulting': (restore / median(m.backMs)).toFixed(2),
      'restore / prefetch': (restore / median(m.pfReqMs)).toFixed(2),
      'fault thread us/page': median(m.faultUs).toFixed(1),
    });
  }
  process.stdout.write(`\nmedians of ${runs} runs; 64 MiB offloaded down to ${FLOOR / MiB} MiB, then one request reads all of it back (faulting back; then again after a prefetch); ms are invocation totals:\n`);
  printTable(rows);
  process.stdout.write(`load average at the end ${load()}\n`);
} finally {
  await p.close();
  for (const s of servers) await s.kill();
  rmSync(dataDir, { recursive: true, force: true });
}
