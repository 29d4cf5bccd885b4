// Where a Python snapshot restore's time goes, in one process the way a vertical sandbox host runs
// it (a shell made ahead and ready, the snapshot in the page cache, a real strategy reading the real
// snapshot files): state read and check, the strategy's open, its fill (read, checksum, faults),
// the Pyodide steps after the heap is in place, the first handler. Prints medians (ms) and one JSON
// line per round. Not a test. Unjailed (the jail's share is in bench:core, which runs hosts jailed).
//
//   node dist/runtimes/python/restore-split.bench.js [function=stdlib-py] [rounds=9] [strategies=eager]
//   PROFILE=out.cpuprofile ...   also writes a CPU profile of the last round's Pyodide steps

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { chunkChecksums, type SnapshotMeta } from '../../core/snapshot-format.js';
import { readChain, writeSnapshot } from '../../snapshot/snapshot-io.js';
import { getStrategy } from '../../restore/index.js';
import type { MemoryImage } from '../runtime.js';
import { benchFunction } from './bench-function.js';
import { pythonAdapter } from './adapter.js';
import { setRestoreProbe, type RestoreProbe } from './_pyodide-host.js';

const name = process.argv[2] ?? 'stdlib-py';
const rounds = Number(process.argv[3] ?? 9);
const strategies = (process.argv[4] ?? 'eager').split(',');
const { fn, ctx } = benchFunction(name);
const input = new TextEncoder().encode('{"n": 7}');
const now = (): number => performance.now();

const root = mkdtempSync(join(tmpdir(), 'thaw-split-'));
try {
  const prepared = await pythonAdapter.prepare(fn, fn.artefactPath);
  const guest = await pythonAdapter.boot(prepared, ctx);
  await guest.init();
  const expected = await guest.invoke(input);
  const memory = new Uint8Array(guest.memory.buffer);
  const meta: SnapshotMeta = {
    id: 'split', kind: 'full', baseId: null, functionName: fn.name, runtime: 'python', moduleDigest: 'bench',
    memoryBytes: memory.byteLength, guestState: guest.captureState().runtime, createdAt: new Date().toISOString(), sourceSandboxId: 'bench',
  };
  const written = writeSnapshot(root, meta, memory);
  console.log(`# ${name}: heap ${(memory.byteLength / 2 ** 20).toFixed(1)} MiB, present ${(written.storedBytes / 2 ** 20).toFixed(1)} MiB; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);

  for (const id of strategies) {
    const strategy = getStrategy(id);
    strategy.prepare(root, readChain(root, 'split'));
    const rows: Record<string, number>[] = [];
    for (let i = 0; i < rounds; i++) {
      // A vertical host: the shell for the next instance is made ahead and has settled.
      await pythonAdapter.readyNext!(prepared);
      await prepared.shells[0]!.ready;
      strategy.preallocate?.(fn.memoryMiB * 2 ** 20);
      const row: Record<string, number> = {};
      const probe: RestoreProbe = {};
      setRestoreProbe(probe);
      const profile = process.env.PROFILE && i === rounds - 1 ? startProfile() : null;
      const t0 = now();
      const chain = readChain(root, 'split');
      const t1 = now();
      const opened = strategy.open(root, chain);
      const t2 = now();
      let fillMs = 0;
      const image: MemoryImage = {
        byteLength: opened.byteLength,
        fill: (m) => {
          const f = now();
          opened.fill(m);
          fillMs = now() - f;
        },
        toBytes: () => opened.toBytes(),
      };
      const restored = await pythonAdapter.restore(prepared, { runtime: meta.guestState }, image, ctx);
      const t3 = now();
      const out = await restored.invoke(input);
      const t4 = now();
      if (profile) writeFileSync(process.env.PROFILE!, JSON.stringify(await profile()));
      // The checksum's share of the fill: the same checksums again over the (now used) memory.
      const c0 = now();
      chunkChecksums(new Uint8Array(restored.memory.buffer, 0, opened.byteLength));
      const checksumMs = now() - c0;
      setRestoreProbe(null);
      Object.assign(row, {
        stateMs: t1 - t0, openMs: t2 - t1, fillMs, checksumMs, minorFaults: opened.stats.minorFaults,
        beforeFillMs: (probe.fillStart ?? t2) - t2,
        finalizeBootstrapMs: (probe.finalizeEnd ?? 0) - (probe.fillEnd ?? 0),
        afterBootstrapMs: (probe.loaded ?? 0) - (probe.finalizeEnd ?? 0),
        afterLoadMs: t3 - (probe.loaded ?? t3),
        restoreMs: t3 - t0, handlerMs: t4 - t3, totalMs: t4 - t0,
        same: Buffer.compare(out, expected) === 0 ? 1 : 0,
      });
      opened.release();
      rows.push(row);
      console.log(JSON.stringify({ strategy: id, round: i, ...row }));
    }
    const med = (k: string): string => {
      const v = rows.map((r) => r[k]!).sort((a, b) => a - b);
      return v[v.length >> 1]!.toFixed(2);
    };
    console.log(`${id} medians of ${rounds} (ms): ${Object.keys(rows[0]!).map((k) => `${k} ${med(k)}`).join(', ')}; load ${loadavg()[0]!.toFixed(2)}`);
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}

function startProfile(): () => Promise<object> {
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object): Promise<unknown> =>
    new Promise((resolve, reject) => session.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res))));
  void post('Profiler.enable').then(() => post('Profiler.setSamplingInterval', { interval: 50 })).then(() => post('Profiler.start'));
  return async () => {
    const { profile } = (await post('Profiler.stop')) as { profile: object };
    session.disconnect();
    return profile;
  };
}
