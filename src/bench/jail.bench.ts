// `npm run bench:jail`: what the sandbox host's jail costs, side by side in one run: for each
// example, cold, snapshot restore and warm invocations from pooled (prepared) hosts, and the
// time to start and prepare a host on the critical path (no prepared host waiting), with the
// jail off and on. Prints medians; the jail's work happens when a host starts, off the path of
// an invocation served by a prepared host.

import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { parseDaemonConfig, type JailMode } from '../core/config.js';
import { Platform } from '../platform/platform.js';
import { measurePaths, median } from '../harness/measure-paths.js';
import { EXAMPLES } from '../harness/examples.js';
import { printTable } from '../cli/commands/with-api.js';
import { readManifestFile } from '../cli/context.js';

const runs = Number(process.env.RUNS ?? 5);
const only = (process.argv[2] ?? 'hello-c,stdlib-py').split(',');
const root = fileURLToPath(new URL('../../', import.meta.url));
const host = `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
process.stdout.write(`bench:jail  runs=${runs}  host: ${host}  load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}\n`);

const rows: Record<string, string>[] = [];
for (const name of only) {
  const ex = EXAMPLES.find((e) => e.name === name);
  if (!ex) throw new Error(`unknown example ${name}`);
  const manifest = join(root, 'functions', name, 'function.json');
  for (const jail of ['off', 'required'] as JailMode[]) {
    process.stderr.write(`  ${name}, jail ${jail} ...\n`);
    const pooled = await withPlatform(jail, 1, (p) => measurePaths(p, manifest, Buffer.from(ex.input), runs, 'eager'));
    // No prepared host: each cold start spawns (and jails) a host and prepares it on the path.
    const startMs = await withPlatform(jail, 0, async (p) => {
      const { manifest: m, artefact } = readManifestFile(manifest);
      await p.deployFunction(m, artefact);
      const samples: number[] = [];
      for (let i = 0; i < runs; i++) {
        const r = await p.invoke({ function: name, mode: 'cold', input: Buffer.from(ex.input), keep: false });
        samples.push(r.timings.acquireMs);
      }
      return samples;
    });
    rows.push({
      function: name, jail: jail === 'off' ? 'off' : 'on',
      'host start + prepare': median(startMs).toFixed(1),
      'cold total': median(pooled.cold.totalMs).toFixed(2),
      'restore + invoke total': median(pooled.snapshot.totalMs).toFixed(2),
      'restore (in host)': median(pooled.snapshot.restoreMs).toFixed(2),
      'warm total': median(pooled.warm.totalMs).toFixed(3),
    });
  }
}
process.stdout.write('\nmedians, ms (pooled = a prepared host was waiting):\n');
printTable(rows);

async function withPlatform<T>(jail: JailMode, preparedPerFunction: number, body: (p: Platform) => Promise<T>): Promise<T> {
  const dataDir = mkdtempSync(join(tmpdir(), 'thaw-bench-jail-'));
  const p = new Platform({ ...parseDaemonConfig({ dataDir, spareHosts: 1, preparedPerFunction, jail }), logger: pino({ level: 'warn' }) });
  try {
    return await body(p);
  } finally {
    await p.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
