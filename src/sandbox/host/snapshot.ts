// A host's snapshot op: writes one instance's memory and state.

import { performance } from 'node:perf_hooks';
import { readChain, writeSnapshot } from '../../snapshot/snapshot-io.js';
import { ThawError } from '../../core/errors.js';
import { eager } from '../../restore/strategies/eager.js';
import type { SnapshotMeta } from '../../core/snapshot-format.js';
import type { HostRequest, SnapshotResult } from '../protocol.js';
import { instance, since } from './state.js';

export function snapshot(req: Extract<HostRequest, { op: 'snapshot' }>): SnapshotResult {
  const s = instance(req.sandboxId);
  const t0 = performance.now();
  // State first: a WASI command replaces its used instance with a fresh one there.
  const state = s.guest.captureState();
  const memory = new Uint8Array(s.guest.memory.buffer);
  let base: Uint8Array | undefined;
  if (req.meta.kind === 'diff') {
    if (!req.meta.baseId) throw new ThawError('THAW_REQUEST_INVALID', { detail: 'a diff snapshot needs a base snapshot' });
    const chain = readChain(req.snapshotRoot, req.meta.baseId);
    const baseTop = chain[chain.length - 1]!;
    if (baseTop.meta.moduleDigest !== s.fn.fn.digest) {
      throw new ThawError('THAW_SNAPSHOT_VERSION', { id: req.meta.baseId, detail: 'the base snapshot was taken from another module version' });
    }
    base = eager.open(req.snapshotRoot, chain).toBytes();
  }
  const meta: SnapshotMeta = {
    ...req.meta,
    functionName: s.fn.fn.params.name,
    runtime: s.fn.fn.params.runtime,
    moduleDigest: s.fn.fn.digest,
    memoryBytes: memory.length,
    guestState: state.runtime,
  };
  const written = writeSnapshot(req.outDir, meta, memory, base);
  return { timings: { snapshotMs: since(t0) }, meta, storedBytes: written.storedBytes, pageRuns: written.state.runs.length };
}
