// Worker thread of the daemon that builds and verifies restore-strategy artefacts (page-cache
// warm-ups, tmpfs copies, flattened diff chains, compressed images, checksums) before a
// snapshot's first restore. It runs here rather than in the sandbox host so that the files it
// writes are not charged to the host's memory cgroup, and off the daemon's event loop because
// strategies do this work synchronously.

import { parentPort } from 'node:worker_threads';
import { getStrategy } from '../restore/index.js';
import { readChain } from '../snapshot/snapshot-io.js';
import { toThawError } from '../core/errors.js';

export interface PrepareRequest { reqId: number; strategy: string; root: string; snapshotId: string }
export type PrepareReply =
  | { reqId: number; ok: true; built: boolean; elapsedMs: number }
  | { reqId: number; ok: false; error: { code: string; message: string; params?: Record<string, string | number> } };

parentPort?.on('message', (req: PrepareRequest) => {
  let reply: PrepareReply;
  try {
    const report = getStrategy(req.strategy).prepare(req.root, readChain(req.root, req.snapshotId));
    reply = { reqId: req.reqId, ok: true, built: report.built, elapsedMs: report.elapsedMs };
  } catch (err) {
    reply = { reqId: req.reqId, ok: false, error: toThawError(err).toJSON() };
  }
  parentPort?.postMessage(reply);
});
