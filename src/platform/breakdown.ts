// An invocation's timing breakdown as it is measured: parts are added where they happen (the
// daemon's own steps, and each exchange with a host split into the channel each way, queueing
// in the host, the host's named steps and the rest of its time); finish() names the daemon's
// remainder, so the parts always sum to the total.

import { performance } from 'node:perf_hooks';
import type { Timed } from '../sandbox/host-process.js';
import type { HostTimings } from '../sandbox/protocol.js';
import { TIMING_PARTS, type InvokeTimings, type TimingPart } from './types.js';
import { endSpan, type InvocationTrace } from './tracing.js';

const PART_KEYS = new Set<string>(TIMING_PARTS.map((p) => p.key));
const PART_LABELS = new Map<string, string>(TIMING_PARTS.map((p) => [p.key, p.label]));

export class Breakdown {
  private readonly parts = new Map<TimingPart, number>();
  /** The invocation's trace, when traced: each daemon step measured by since() is a span of it too. */
  trace: InvocationTrace | null = null;

  constructor(private readonly t0 = performance.now()) {}

  add(part: TimingPart, ms: number): void {
    this.parts.set(part, (this.parts.get(part) ?? 0) + ms);
  }

  /** Adds the time since `t0` (daemon clock) to `part`; returns now. */
  since(part: TimingPart, t0: number): number {
    const now = performance.now();
    this.add(part, now - t0);
    if (this.trace) endSpan(this.trace.step(PART_LABELS.get(part) ?? part, {}, performance.timeOrigin + t0), undefined, performance.timeOrigin + now);
    return now;
  }

  /**
   * One or more requests to the same host sent back to back (a boot or restore and the invoke
   * pipelined behind it), in order. From the first send to the last reply: the channel out (to
   * the host's receipt of the first) and back (from its last reply), the host's queueing (behind
   * other requests before the first started, and between one reply and the next start), every
   * part the host measured in its replies' `timings`, and the rest of the host's time (hostMs).
   * Host stamps are on the daemon's clock already (HostProcess converts them by the calibrated
   * difference); the host's own durations are exact, only the split of the channel between out
   * and back carries the calibration's error.
   */
  addHostExchange(requests: readonly Timed<{ timings?: HostTimings }>[]): void {
    const first = requests[0];
    const last = requests[requests.length - 1];
    if (!first || !last) return;
    const roundTrip = last.receivedAt - first.sentAt;
    const inHost = last.host.reply - first.host.recv;
    const channel = Math.max(0, roundTrip - inHost);
    const out = Math.min(channel, Math.max(0, first.host.recv - first.sentAt));
    this.add('ipcOutMs', out);
    this.add('ipcBackMs', channel - out);
    let queued = first.host.start - first.host.recv;
    for (let i = 1; i < requests.length; i++) queued += Math.max(0, requests[i]!.host.start - requests[i - 1]!.host.reply);
    this.add('queueMs', queued);
    let named = 0;
    for (const r of requests) {
      for (const [key, ms] of Object.entries(r.result.timings ?? {})) {
        if (ms === undefined || !PART_KEYS.has(key)) continue;
        this.add(key as TimingPart, ms);
        named += ms;
      }
    }
    this.add('hostMs', inHost - queued - named);
  }

  /** Every part rounded to the microsecond; platformMs is the total's remainder. */
  finish(): InvokeTimings {
    const totalMs = round(performance.now() - this.t0);
    const t = { totalMs } as InvokeTimings;
    let sum = 0;
    for (const p of TIMING_PARTS) {
      if (p.key === 'platformMs') continue;
      t[p.key] = round(this.parts.get(p.key) ?? 0);
      sum += t[p.key];
    }
    t.platformMs = round(totalMs - sum);
    return t;
  }
}

export function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
