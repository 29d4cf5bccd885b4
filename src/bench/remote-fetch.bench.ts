// `node dist/bench/remote-fetch.bench.js`: where the remote tier's time goes, without a sandbox.
// An in-process Wasm memory of PAGES pages (random bytes) gets a GuestOffloader connected to a
// real memory server (its own process, Unix socket relay to TCP); each run offloads every page,
// faults them all back by reading one word per page in order (the fault thread's readahead:
// one exchange with the server per fault), offloads them again and prefetches them all (one
// exchange per 256 pages). Prints medians: offload us/page, fault-back wall us/page, the fault
// thread's us/page and us/fault, prefetch us/page, per injected latency.
// Env: RUNS (default 5), PAGES (default 16384 = 64 MiB), LATENCIES_US (default "0,50"),
// SOCKET (use a memory server already listening there instead of starting one, e.g. one
// started under `node --cpu-prof`; its latency is then whatever it was started with).

import { randomFillSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { PAGE_BYTES } from '../core/snapshot-format.js';
import { median } from '../harness/measure-paths.js';
import { printTable } from '../cli/commands/with-api.js';
import { GuestOffloader } from '../native/index.js';
import { startMemoryServer } from '../memory/remote-server.js';
import { REMOTE_TIMEOUT_MS } from '../memory/tiers/remote.js';

const runs = Number(process.env.RUNS ?? 5);
const pages = Number(process.env.PAGES ?? 16384);
const latencies = (process.env.LATENCIES_US ?? '0,50').split(',').map(Number);
const load = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');
process.stdout.write(`remote-fetch: ${pages} pages (${(pages * PAGE_BYTES) / 2 ** 20} MiB), runs=${runs}, load average ${load()}\n`);

const memory = new WebAssembly.Memory({ initial: Math.ceil((pages * PAGE_BYTES) / 65536) });
const bytes = new Uint8Array(memory.buffer);
randomFillSync(bytes);
const expected = Buffer.from(bytes);
const all = Uint32Array.from({ length: pages }, (_, i) => i);
const words = new Uint32Array(memory.buffer);

/** Reads one word of every page in order; returns the sum (so the reads are not optimised away). */
function touchAll(): number {
  let sum = 0;
  for (let p = 0; p < pages; p++) sum = (sum + words[(p * PAGE_BYTES) / 4]!) >>> 0;
  return sum;
}

const dir = mkdtempSync(join(tmpdir(), 'thaw-remote-fetch-'));
const rows: Record<string, string>[] = [];
try {
  for (const latencyUs of process.env.SOCKET ? [NaN] : latencies) {
    const server = process.env.SOCKET ? null : await startMemoryServer({ socketPath: join(dir, `m${latencyUs}.sock`), gid: process.getgid?.() ?? 0, latencyUs });
    const socket = process.env.SOCKET ?? server!.socketPath;
    const m = { offload: [] as number[], wall: [] as number[], thread: [] as number[], perFault: [] as number[], pagesPerFault: [] as number[], prefetch: [] as number[] };
    const o = GuestOffloader.start(memory.buffer)!;
    try {
      o.connect(socket, REMOTE_TIMEOUT_MS);
      for (let r = 0; r < runs; r++) {
        const s0 = o.stats();
        let t = performance.now();
        if (o.offload('remote', all) !== pages) throw new Error('not every page was offloaded');
        m.offload.push(((performance.now() - t) * 1000) / pages);
        t = performance.now();
        touchAll();
        m.wall.push(((performance.now() - t) * 1000) / pages);
        const s1 = o.stats();
        const faulted = s1.faultedPages - s0.faultedPages;
        const faults = s1.faults - s0.faults;
        m.thread.push((s1.faultNs - s0.faultNs) / 1000 / faulted);
        m.perFault.push((s1.faultNs - s0.faultNs) / 1000 / faults);
        m.pagesPerFault.push(faulted / faults);
        o.offload('remote', all);
        t = performance.now();
        if (o.prefetch(all) !== pages) throw new Error('prefetch did not bring every page back');
        m.prefetch.push(((performance.now() - t) * 1000) / pages);
        if (!Buffer.from(bytes).equals(expected)) throw new Error('the memory came back different');
      }
      if (o.stats().failure) throw new Error(o.stats().failure);
    } finally {
      o.stop('fill');
      await server?.kill();
    }
    const columns: [string, number[], number][] = [
      ['offload us/page', m.offload, 2], ['fault-back wall us/page', m.wall, 2], ['fault thread us/page', m.thread, 2],
      ['fault thread us/fault', m.perFault, 1], ['pages/fault', m.pagesPerFault, 1], ['prefetch us/page', m.prefetch, 2],
    ];
    rows.push({
      'injected us': Number.isNaN(latencyUs) ? `(${socket})` : String(latencyUs),
      ...Object.fromEntries(columns.map(([name, xs, digits]) => [name, median(xs).toFixed(digits)])),
    });
  }
  process.stdout.write(`medians of ${runs} runs (every page checked byte for byte after each run):\n`);
  printTable(rows);
  process.stdout.write(`load average at the end ${load()}\n`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
