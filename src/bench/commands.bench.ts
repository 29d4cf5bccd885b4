// `node dist/bench/commands.bench.js [flite|wizer-c|cmd-c] [input text]`: a WASI command
// function's cold, snapshot-restore and warm times through the platform (medians of RUNS, 5 by
// default), beside the same program run directly under node:wasi (module compiled once, then
// instantiate + _start per run). Prints the load average with the figures.

import { loadavg, tmpdir } from 'node:os';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { WASI } from 'node:wasi';
import pino from 'pino';
import { readManifestFile } from '../cli/context.js';
import { parseDaemonConfig } from '../core/config.js';
import { median } from '../harness/measure-paths.js';
import { Platform } from '../platform/platform.js';
import { fileURLToPath } from 'node:url';

const runs = Number(process.env.RUNS ?? 5);
const name = process.argv[2] ?? 'flite';
const input = Buffer.from(process.argv[3] ?? 'Hello from Thaw. This sentence was spoken by a WebAssembly command restored from a snapshot.');
const manifestFile = fileURLToPath(new URL(`../../functions/${name}/function.json`, import.meta.url));

const fmt = (xs: number[]): string => `${median(xs).toFixed(1)} ms (min ${Math.min(...xs).toFixed(1)}, n=${xs.length})`;

async function nodeWasi(): Promise<number[]> {
  const { manifest } = readManifestFile(manifestFile);
  const cmd = (manifest.command ?? {}) as { args?: string[]; env?: Record<string, string>; scratch?: { path: string } };
  const module = await WebAssembly.compile(readFileSync(manifest.module as string));
  const times: number[] = [];
  // Output discarded, as Thaw's response is not printed either. No Wizer init here: the program as it is.
  const devNull = openSync('/dev/null', 'w');
  for (let i = 0; i < runs; i++) {
    const dir = mkdtempSync(join(tmpdir(), 'thaw-bench-cmd-'));
    const t0 = performance.now();
    const wasi = new WASI({ version: 'preview1', stdout: devNull, args: [name, ...(cmd.args ?? []).map((a) => (a === '-' ? '/in/input' : a))], env: cmd.env ?? {}, returnOnExit: true,
      preopens: cmd.scratch ? { [cmd.scratch.path]: dir, '/in': dir } : {} });
    // The input as a file (node:wasi's stdin is the process's own).
    writeFileSync(join(dir, 'input'), input);
    const instance = await WebAssembly.instantiate(module, wasi.getImportObject() as WebAssembly.Imports);
    wasi.start(instance);
    times.push(performance.now() - t0);
    rmSync(dir, { recursive: true, force: true });
  }
  return times;
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'thaw-bench-cmd-'));
  const p = new Platform({ ...parseDaemonConfig({ dataDir, spareHosts: 1, preparedPerFunction: 1 }), logger: pino({ level: 'silent' }) });
  try {
    const { manifest, artefact } = readManifestFile(manifestFile);
    await p.deployFunction(manifest, artefact);
    const cold: number[] = [];
    const coldHandler: number[] = [];
    let keepId = '';
    for (let i = 0; i < runs; i++) {
      await p.poolSettled();
      const r = await p.invoke({ function: name, mode: 'cold', input, keep: i === 0 });
      if (i === 0) keepId = r.sandboxId;
      cold.push(r.timings.totalMs);
      coldHandler.push(r.timings.handlerMs ?? NaN);
    }
    const snap = await p.createSnapshot({ sandboxId: keepId });
    const restored: number[] = [];
    const restoreOnly: number[] = [];
    let strategy = '';
    for (let i = 0; i < runs; i++) {
      await p.poolSettled();
      const r = await p.invoke({ function: name, mode: 'snapshot', snapshotId: snap.id, input, keep: false });
      restored.push(r.timings.totalMs);
      restoreOnly.push(r.timings.restoreMs ?? NaN);
      strategy = r.strategy ?? '';
    }
    const warm: number[] = [];
    for (let i = 0; i < runs; i++) warm.push((await p.invoke({ function: name, mode: 'warm', sandboxId: keepId, input })).timings.totalMs);
    const direct = await nodeWasi();
    const load = loadavg().map((x) => x.toFixed(2)).join(' ');
    process.stdout.write(`${name}: ${input.length}-byte input, snapshot ${(snap.memoryBytes / 2 ** 20).toFixed(1)} MiB memory; load average ${load}\n`);
    process.stdout.write(`  cold (boot + init + run)      ${fmt(cold)}; handler ${fmt(coldHandler)}\n`);
    process.stdout.write(`  snapshot (${strategy || 'auto'})${' '.repeat(Math.max(1, 18 - strategy.length))}${fmt(restored)}; restore ${fmt(restoreOnly)}\n`);
    process.stdout.write(`  warm (fresh instance per run) ${fmt(warm)}\n`);
    process.stdout.write(`  node:wasi direct              ${fmt(direct)} (compiled once; instantiate + _start)\n`);
    process.stdout.write(`  ratios: cold/warm ${(median(cold) / median(warm)).toFixed(2)}, snapshot/warm ${(median(restored) / median(warm)).toFixed(2)}, warm/node:wasi ${(median(warm) / median(direct)).toFixed(2)}\n`);
  } finally {
    await p.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
