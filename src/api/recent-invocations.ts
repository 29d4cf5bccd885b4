// The newest invocations through the API, for the dashboard (GET /v1/invocations): what ran,
// how it started, how long each part took, or which error it got. In memory, bounded.

import { toThawError } from '../core/errors.js';
import type { InvokeRequest, InvokeResult } from '../platform/types.js';

export interface InvocationRecord {
  seq: number;
  time: string;
  function: string;
  mode: string;
  /** How the sandbox started: cold, snapshot, warm, semi-warm. */
  start?: string;
  strategy?: string;
  strategyReason?: string;
  sandboxId?: string;
  snapshotId?: string;
  /** "ok" or the THAW_* code it failed with. */
  outcome: string;
  message?: string;
  timings?: Record<string, number>;
  outputBytes?: number;
  /** The trace it was recorded in, when traced. */
  traceId?: string;
}

export const RECENT_INVOCATIONS = 200;

export class RecentInvocations {
  private readonly records: InvocationRecord[] = [];
  private seq = 0;

  constructor(private readonly keep = RECENT_INVOCATIONS) {}

  invocationOk(r: InvokeResult): void {
    this.push({
      function: r.function, mode: r.mode, start: r.start, outcome: 'ok', sandboxId: r.sandboxId, timings: { ...r.timings }, outputBytes: r.output.length,
      ...(r.strategy !== undefined && { strategy: r.strategy }), ...(r.strategyReason !== undefined && { strategyReason: r.strategyReason }),
      ...(r.snapshotId !== undefined && { snapshotId: r.snapshotId }), ...(r.traceId !== undefined && { traceId: r.traceId }),
    });
  }

  invocationFailed(req: InvokeRequest, err: unknown): void {
    const e = toThawError(err);
    this.push({
      function: req.function, mode: req.mode ?? 'auto', outcome: e.code, message: e.message,
      ...(req.strategy !== undefined && { strategy: req.strategy }), ...(e.traceId !== undefined && { traceId: e.traceId }),
    });
  }

  /** Newest first, at most `limit`. */
  list(limit = this.keep): InvocationRecord[] {
    return this.records.slice(-limit).reverse();
  }

  private push(r: Omit<InvocationRecord, 'seq' | 'time'>): void {
    this.records.push({ seq: ++this.seq, time: new Date().toISOString(), ...r });
    if (this.records.length > this.keep) this.records.shift();
  }
}
