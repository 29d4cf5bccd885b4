// `thaw demo`: deploys the example functions into a fresh data directory (embedded object
// store) and prints cold boot vs snapshot restore vs warm, with the outputs checked equal.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { ThawError } from '../../core/errors.js';
import { parseDaemonConfig } from '../../core/config.js';
import { Platform } from '../../platform/platform.js';
import { measurePaths, summaryRow } from '../../harness/measure-paths.js';
import { AUTO_STRATEGY } from '../../restore/index.js';
import { EXAMPLES } from '../../harness/examples.js';
import type { GlobalOptions } from '../context.js';
import { printTable } from './with-api.js';

export async function runDemo(_g: GlobalOptions, o: { runs: string; only?: string }): Promise<void> {
  const runs = Number(o.runs);
  if (!Number.isInteger(runs) || runs < 1 || runs > 1000) throw new ThawError('THAW_REQUEST_INVALID', { detail: '--runs must be an integer in [1, 1000]' });
  const wanted = o.only?.split(',').map((s) => s.trim());
  const examples = EXAMPLES.filter((e) => !wanted || wanted.includes(e.name));
  if (examples.length === 0) throw new ThawError('THAW_REQUEST_INVALID', { detail: `no example named ${o.only}; known: ${EXAMPLES.map((e) => e.name).join(', ')}` });

  const dataDir = mkdtempSync(join(tmpdir(), 'thaw-demo-'));
  const params = parseDaemonConfig({ dataDir, spareHosts: 1, preparedPerFunction: 1 });
  const platform = new Platform({ ...params, logger: pino({ level: process.env.THAW_LOG_LEVEL ?? 'warn' }, pino.destination(2)) });
  const functionsDir = fileURLToPath(new URL('../../../functions/', import.meta.url));
  process.stdout.write(`Thaw demo: ${examples.length} functions, ${runs} runs per path (medians), data in ${dataDir}\n`);
  const rows = [];
  try {
    for (const ex of examples) {
      process.stderr.write(`  ${ex.name} ...\n`);
      // Restores as a request that names no strategy gets them (auto).
      const f = await measurePaths(platform, join(functionsDir, ex.name, 'function.json'), Buffer.from(ex.input), runs, AUTO_STRATEGY);
      rows.push(summaryRow(f));
      if (!f.outputsIdentical) throw new ThawError('THAW_INTERNAL', { detail: `${ex.name}: the cold, snapshot and warm paths gave different outputs` });
    }
  } finally {
    await platform.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
  process.stdout.write('\n');
  printTable(rows);
  process.stdout.write('\ncold = pool acquire + boot + init + handler; restore+invoke = acquire + restore (auto, the default strategy: `thaw invoke` says which it picks and why) + handler; all times in ms, measured inside Thaw.\n');
}
