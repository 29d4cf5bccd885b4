// `node dist/bench/host-starts.bench.js [caps] [n] [runs]`: how fast the pool starts sandbox hosts
// under a storm, per cap on concurrent host starts (--max-host-starts; default caps 1,2,4,8, n 16,
// runs 3): n cold starts of hello-c sent at once, nothing prepared. Prints, per cap, the median of
// the runs: the burst's wall time, starts per second, the requests' median and largest acquireMs
// (the queue wait for a start slot plus the start), the most hosts seen starting at once, each
// against cap 1, and the load average.

import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { parseDaemonConfig } from '../core/config.js';
import { Platform } from '../platform/platform.js';
import { readManifestFile } from '../cli/context.js';
import { printTable } from '../cli/commands/with-api.js';
import { median } from '../harness/measure-paths.js';

const caps = (process.argv[2] ?? '1,2,4,8').split(',').map(Number);
const n = Number(process.argv[3] ?? 16);
const runs = Number(process.argv[4] ?? 3);
const manifestPath = fileURLToPath(new URL('../../functions/hello-c/function.json', import.meta.url));

const rows: Record<string, string>[] = [];
let base: { wallMs: number } | undefined; // the first cap's
for (const cap of caps) {
  const dataDir = mkdtempSync(join(tmpdir(), 'thaw-bench-starts-'));
  const platform = new Platform({ ...parseDaemonConfig({ dataDir, spareHosts: 0, preparedPerFunction: 0, maxHostStarts: cap }), logger: pino({ level: 'warn' }) });
  try {
    const { manifest, artefact } = readManifestFile(manifestPath);
    await platform.deployFunction({ ...manifest, name: 'starts' }, artefact);
    await platform.invoke({ function: 'starts', mode: 'cold', input: Buffer.from('warm-up'), keep: false });
    const walls: number[] = [];
    const acquireP50: number[] = [];
    const acquireMax: number[] = [];
    const load = loadavg()[0]!;
    for (let r = 0; r < runs; r++) {
      const t0 = performance.now();
      const replies = await Promise.all(Array.from({ length: n }, (_, i) => platform.invoke({ function: 'starts', mode: 'cold', input: Buffer.from(String(i)), keep: false })));
      walls.push(performance.now() - t0);
      const acquire = replies.map((x) => x.timings.acquireMs);
      acquireP50.push(median(acquire));
      acquireMax.push(Math.max(...acquire));
    }
    const wallMs = median(walls);
    base ??= { wallMs };
    rows.push({
      cap: String(cap), 'burst ms': wallMs.toFixed(0), 'starts/s': ((n / wallMs) * 1000).toFixed(1), [`speed vs cap ${caps[0]}`]: `${(base.wallMs / wallMs).toFixed(2)}x`,
      'acquire p50 ms': median(acquireP50).toFixed(0), 'acquire max ms': median(acquireMax).toFixed(0),
      'peak starting': String(platform.poolState().peakStarting), 'load 1m': load.toFixed(2),
    });
  } finally {
    await platform.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
process.stdout.write(`${n} cold starts of hello-c at once, median of ${runs} bursts per cap\n`);
printTable(rows);
