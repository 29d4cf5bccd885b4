// `node dist/bench/vertical-memory.bench.js [fn] [n]`: what sharing one host process costs and
// saves, per runtime: n sandboxes of one function booted cold as n horizontal hosts and as one
// vertical host carrying n instances; prints the hosts' resident memory (node processes, from
// /proc) and the boot + init times side by side. Python: one Pyodide per instance.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { parseDaemonConfig } from '../core/config.js';
import { Platform } from '../platform/platform.js';
import { EXAMPLES } from '../harness/examples.js';
import { readManifestFile } from '../cli/context.js';
import { printTable } from '../cli/commands/with-api.js';
import { median } from '../harness/measure-paths.js';
import type { HostLayout } from '../core/function-spec.js';
import { hostRssBytes } from '../harness/host-rss.js';

const name = process.argv[2] ?? 'stdlib-py';
const n = Number(process.argv[3] ?? 3);
const root = fileURLToPath(new URL('../../', import.meta.url));
const ex = EXAMPLES.find((e) => e.name === name);
if (!ex) throw new Error(`unknown example ${name}`);

const rows: Record<string, string | number>[] = [];
for (const layout of ['horizontal', 'vertical'] as HostLayout[]) {
  const dataDir = mkdtempSync(join(tmpdir(), 'thaw-bench-vm-'));
  const platform = new Platform({ ...parseDaemonConfig({ dataDir, spareHosts: 0, preparedPerFunction: 0, layout, instancesPerHost: n }), logger: pino({ level: 'warn' }) });
  try {
    const { manifest, artefact } = readManifestFile(join(root, 'functions', name, 'function.json'));
    await platform.deployFunction(manifest, artefact);
    const starts: number[] = [];
    for (let i = 0; i < n; i++) {
      const r = await platform.invoke({ function: name, mode: 'cold', input: Buffer.from(ex.input) });
      starts.push(r.timings.acquireMs + r.timings.bootMs + r.timings.initMs);
    }
    const pids = [...new Set((await platform.listSandboxes()).map((s) => s.hostPid))];
    const rss = pids.reduce((a, p) => a + (hostRssBytes(p) ?? 0), 0);
    rows.push({
      function: name, layout, sandboxes: n, hosts: pids.length, 'host RSS MiB': (rss / 2 ** 20).toFixed(0), 'per sandbox MiB': (rss / n / 2 ** 20).toFixed(0),
      'first start ms': starts[0]!.toFixed(0), 'later starts ms (median)': median(starts.slice(1)).toFixed(0),
    });
  } finally {
    await platform.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
process.stdout.write(`vertical-memory  ${name} x ${n} (start = acquire + boot + init of each cold sandbox)\n`);
printTable(rows);
