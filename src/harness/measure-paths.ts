// Measures one function on Thaw's three invocation paths, side by side in one run:
// cold (boot + init + handler), snapshot (restore + handler) and warm (handler in a live
// sandbox), and checks that the three paths give identical outputs.

import { readManifestFile } from '../cli/context.js';
import { TIMING_PARTS, type InvokeResult, type InvokeTimings } from '../platform/types.js';
import type { Platform } from '../platform/platform.js';

export interface PathFigures {
  function: string;
  runtime: string;
  memoryMiB: number;
  snapshotDiskBytes: number;
  snapshotMemoryBytes: number;
  runs: number;
  cold: Samples;
  snapshot: Samples;
  warm: Samples;
  outputsIdentical: boolean;
  output: string;
}

/** Per-path samples of the timing breakdown, in ms. */
export type Samples = { [K in keyof InvokeTimings]-?: number[] };

const emptySamples = (): Samples => Object.fromEntries([...TIMING_PARTS.map((p) => p.key), 'totalMs'].map((k) => [k, []])) as unknown as Samples;

function record(s: Samples, t: InvokeTimings): void {
  for (const k of Object.keys(s) as (keyof InvokeTimings)[]) s[k].push(t[k] ?? 0);
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * Deploys `manifestPath` and measures `runs` invocations per path. The pool refills between
 * runs so that each cold or snapshot run starts from a ready host, as on a steady daemon.
 * `strategy` picks the restore strategy of the snapshot path.
 */
export async function measurePaths(platform: Platform, manifestPath: string, input: Uint8Array, runs: number, strategy = 'eager'): Promise<PathFigures> {
  const { manifest, artefact } = readManifestFile(manifestPath);
  const fn = await platform.deployFunction(manifest, artefact);
  const cold = emptySamples();
  const snap = emptySamples();
  const warm = emptySamples();
  const outputs = new Set<string>();
  const note = (r: InvokeResult): void => void outputs.add(Buffer.from(r.output).toString('base64'));

  // Cold: one sandbox per run; the first one is kept, snapshotted and used for warm runs.
  await platform.poolSettled();
  const first = await platform.invoke({ function: fn.name, mode: 'cold', input, keep: true });
  record(cold, first.timings);
  note(first);
  for (let i = 1; i < runs; i++) {
    await platform.poolSettled();
    const r = await platform.invoke({ function: fn.name, mode: 'cold', input, keep: false });
    record(cold, r.timings);
    note(r);
  }
  const snapshot = await platform.createSnapshot({ sandboxId: first.sandboxId, kind: 'full' });
  for (let i = 0; i < runs; i++) {
    await platform.poolSettled();
    const r = await platform.invoke({ function: fn.name, mode: 'snapshot', snapshotId: snapshot.id, strategy, input, keep: false });
    record(snap, r.timings);
    note(r);
  }
  for (let i = 0; i < runs; i++) {
    const r = await platform.invoke({ function: fn.name, mode: 'warm', sandboxId: first.sandboxId, input, keep: true });
    record(warm, r.timings);
    note(r);
  }
  await platform.deleteSandbox(first.sandboxId);
  return {
    function: fn.name,
    runtime: fn.runtime,
    memoryMiB: fn.memoryMiB,
    snapshotDiskBytes: snapshot.diskBytes,
    snapshotMemoryBytes: snapshot.memoryBytes,
    runs,
    cold,
    snapshot: snap,
    warm,
    outputsIdentical: outputs.size === 1,
    output: Buffer.from(first.output).toString('utf8').slice(0, 60),
  };
}

/** One printable row of medians. */
export function summaryRow(f: PathFigures): Record<string, string | number> {
  const m = (s: number[]): string => median(s).toFixed(2);
  return {
    function: f.function,
    runtime: f.runtime,
    'mem MiB': (f.snapshotMemoryBytes / 2 ** 20).toFixed(1),
    'snap disk MiB': (f.snapshotDiskBytes / 2 ** 20).toFixed(2),
    'cold ms': m(f.cold.totalMs),
    '(boot+init)': `${m(f.cold.bootMs)}+${m(f.cold.initMs)}`,
    'restore+invoke ms': m(f.snapshot.totalMs),
    '(restore)': m(f.snapshot.restoreMs),
    'warm ms': m(f.warm.totalMs),
    'cold/restore': (median(f.cold.totalMs) / median(f.snapshot.totalMs)).toFixed(1) + 'x',
    'same output': f.outputsIdentical ? 'yes' : 'NO',
  };
}
