// Runs strategy prepare steps in the daemon's prepare worker (see prepare-worker.ts), one at a
// time, and remembers which (strategy, snapshot) pairs are done so later restores skip the trip.

import { Worker } from 'node:worker_threads';
import { ThawError } from '../core/errors.js';
import type { PrepareReply, PrepareRequest } from './prepare-worker.js';
import { getStrategy, type ScrubReport } from '../restore/index.js';

export interface PrepareOutcome {
  built: boolean;
  elapsedMs: number;
  scrub?: ScrubReport;
}

export class StrategyPreparer {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(r: PrepareOutcome): void; reject(e: ThawError): void }>();
  private readonly done = new Set<string>();
  private readonly inFlight = new Map<string, Promise<PrepareOutcome>>();

  constructor(private readonly root: string) {}

  /**
   * Prepares `strategy` for `snapshotId`; resolves at once when already done in this daemon, or
   * when the strategy has nothing to prepare (no trip to the worker).
   */
  async prepare(strategy: string, snapshotId: string): Promise<PrepareOutcome> {
    const key = `${strategy}\0${snapshotId}`;
    if (this.done.has(key)) return { built: false, elapsedMs: 0 };
    if (getStrategy(strategy).preparesNothing) {
      this.done.add(key);
      return { built: false, elapsedMs: 0 };
    }
    // One trip per pair at a time: a background prepare and a restore asking for the same one share it.
    const running = this.inFlight.get(key);
    if (running) return running.then((o) => ({ ...o, built: false }));
    const trip = this.send(strategy, snapshotId).then((outcome) => {
      this.done.add(key);
      return outcome;
    });
    this.inFlight.set(key, trip);
    try {
      return await trip;
    } finally {
      this.inFlight.delete(key);
    }
  }

  /** Whether `strategy`'s artefacts for `snapshotId` were prepared by this daemon (a restore then skips the trip). */
  isPrepared(strategy: string, snapshotId: string): boolean {
    return this.done.has(`${strategy}\0${snapshotId}`);
  }

  /** Scrubs `snapshotId` in the worker (reading every byte stays off the daemon's event loop). */
  async scrub(snapshotId: string): Promise<ScrubReport> {
    const outcome = await this.send(null, snapshotId);
    if (!outcome.scrub) throw new ThawError('THAW_INTERNAL', { detail: 'the prepare worker answered a scrub without a report' });
    return outcome.scrub;
  }

  private send(strategy: string | null, snapshotId: string): Promise<PrepareOutcome> {
    return new Promise<PrepareOutcome>((resolve, reject) => {
      const reqId = this.nextId++;
      this.pending.set(reqId, { resolve, reject });
      const req: PrepareRequest = { reqId, strategy, root: this.root, snapshotId };
      this.ensureWorker().postMessage(req);
    });
  }

  /**
   * Forgets a deleted snapshot, or one strategy's preparation of it (after a restore recorded a
   * working set, the next prepare builds what depends on it here rather than in a sandbox host).
   */
  forget(snapshotId: string, strategy?: string): void {
    if (strategy !== undefined) this.done.delete(`${strategy}\0${snapshotId}`);
    else for (const key of this.done) if (key.endsWith(`\0${snapshotId}`)) this.done.delete(key);
  }

  async close(): Promise<void> {
    await this.worker?.terminate();
    this.worker = undefined;
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(new URL('./prepare-worker.js', import.meta.url));
    worker.unref();
    worker.on('message', (reply: PrepareReply) => {
      const p = this.pending.get(reply.reqId);
      if (!p) return;
      this.pending.delete(reply.reqId);
      if (reply.ok) p.resolve({ built: reply.built, elapsedMs: reply.elapsedMs, ...(reply.scrub && { scrub: reply.scrub }) });
      else p.reject(ThawError.fromJSON(reply.error));
    });
    // A worker that dies fails what it had in hand; the next request starts a new one.
    const fail = (err: unknown): void => {
      if (this.worker === worker) this.worker = undefined;
      for (const [id, p] of this.pending) {
        this.pending.delete(id);
        p.reject(new ThawError('THAW_INTERNAL', { detail: `strategy prepare worker failed: ${err instanceof Error ? err.message : String(err)}` }));
      }
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`exited with code ${code}`)));
    this.worker = worker;
    return worker;
  }
}
