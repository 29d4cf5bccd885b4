// Worker thread of the daemon that builds and verifies restore-strategy artefacts (page-cache
// warm-ups, tmpfs copies, flattened diff chains, compressed images, checksums) before a
// snapshot's first restore, and scrubs snapshots (reads every byte, checks every checksum). It runs here rather than in the sandbox host so that the files it
// writes are not charged to the host's memory cgroup, and off the daemon's event loop because
// strategies do this work synchronously.

import { parentPort } from 'node:worker_threads';
import { getStrategy, scrubSnapshot, type ScrubReport } from '../restore/index.js';
import { readChain } from '../snapshot/snapshot-io.js';
import { toThawError } from '../core/errors.js';

/** Prepare `strategy`'s artefacts for a snapshot, or (strategy null) scrub the snapshot. */
export interface PrepareRequest { reqId: number; strategy: string | null; root: string; snapshotId: string }
export type PrepareReply =
  | { reqId: number; ok: true; built: boolean; elapsedMs: number; scrub?: ScrubReport }
  | { reqId: number; ok: false; error: { code: string; message: string; params?: Record<string, string | number> } };

parentPort?.on('message', (req: PrepareRequest) => {
  let reply: PrepareReply;
  try {
    if (req.strategy === null) {
      const scrub = scrubSnapshot(req.root, req.snapshotId);
      reply = { reqId: req.reqId, ok: true, built: false, elapsedMs: scrub.elapsedMs, scrub };
    } else {
      const report = getStrategy(req.strategy).prepare(req.root, readChain(req.root, req.snapshotId));
      reply = { reqId: req.reqId, ok: true, built: report.built, elapsedMs: report.elapsedMs };
    }
  } catch (err) {
    reply = { reqId: req.reqId, ok: false, error: toThawError(err).toJSON() };
  }
  parentPort?.postMessage(reply);
});
