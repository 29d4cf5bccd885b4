// The keep-alive scheduler (FaaSMem's setting): where an `auto` invocation starts, how long idle
// sandboxes live, and when the memory policy acts on them.
//
// An invocation goes to an idle warm sandbox of the function when there is one, else to an idle
// semi-warm one, else it restores from the function's newest snapshot, else it boots cold. A
// sandbox serves one invocation at a time (claimed synchronously, so two callers never get the
// same one); concurrent invocations of a function get separate sandboxes. Idle sandboxes expire
// after the keep-alive. The policy is called at a sandbox's events: afterInit (booted or
// restored, before its first request; a policy without one lets starts pipeline the request), afterRequest (after the reply, in the background) and
// onIdle on every tick while it is idle. A sandbox is never invoked while a policy call on it
// runs: the invocation that picks it first waits for that call (settled()), so a policy step
// neither delays other sandboxes nor makes the scheduler start a new one.
//
// Times: keepAliveS is in trace seconds; `timeScale` divides every time constant, so a replay
// that runs an hour of trace in a minute sets timeScale 60 and the keep-alive of 600 s lasts 10 s.
// The platform owns the sandboxes; this module sees them through SchedulerHost only. Policies come
// from the memory side's one registry (memory/policies/index.ts: createPolicy), built with the
// configured tier and time scale.

import type { Logger } from 'pino';
import { ThawError } from '../core/errors.js';
import type { MemoryPolicy } from '../memory/types.js';
import type { ReportingSandbox } from '../memory/policy-sandbox.js';
import { createPolicy } from '../memory/policies/index.js';
import { nonePolicy } from '../memory/policies/none.js';
import type { SandboxMemoryFigures, SchedulerReport, SchedulerSettings, StartKind } from './types.js';
import { START_KINDS } from './types.js';

/** What the scheduler needs of a sandbox (the platform's Sandbox has these fields). */
export interface ScheduledSandbox {
  readonly id: string;
  readonly fn: string;
  readonly deployment: string;
  busy: boolean;
  lastUsed: number;
}

/** The platform as the scheduler sees it. */
export interface SchedulerHost<S extends ScheduledSandbox> {
  sandboxes(): Iterable<S>;
  /** The function's current deployment: sandboxes of an older one are never picked. */
  deployment(fn: string): string;
  /** Whether the function has a current, restorable snapshot. */
  hasSnapshot(fn: string): boolean;
  stop(s: S, reason: string): Promise<void>;
  /** Marks the sandbox idle and wakes waiters. */
  release(s: S): void;
  /** The sandbox's page operations, for the policy, and its offload figures, for the report. */
  policySandbox(s: S): ReportingSandbox;
  readonly log: Logger;
}

/** Reuse intervals kept per function for the P99 (the most recent ones). */
const REUSE_SAMPLES = 1000;
export const DEFAULT_KEEP_ALIVE_S = 600;

/** Scheduler state of one live sandbox. */
interface Tracked {
  semiWarm: boolean;
  requests: number;
  /** The policy call running on it, if any: an invocation waits for it (settled()). */
  pending: Promise<void> | null;
}

interface FunctionStats {
  starts: Record<StartKind, number>;
  expired: number;
  /** Ring of idle times (ms, real) between a sandbox's requests, for the P99. */
  reuse: number[];
  reuseNext: number;
}

/** How an auto invocation starts: a claimed idle sandbox, or a new one from a snapshot or a cold boot. */
export type Placement<S> = { kind: 'warm' | 'semi-warm'; sandbox: S } | { kind: 'snapshot' } | { kind: 'cold' };

export class KeepAliveScheduler<S extends ScheduledSandbox> {
  private readonly tracked = new Map<string, Tracked>();
  private readonly stats = new Map<string, FunctionStats>();
  private settings: Required<SchedulerSettings>;
  private policy: MemoryPolicy;
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;

  constructor(private readonly host: SchedulerHost<S>, settings: SchedulerSettings = {}) {
    this.settings = { policy: 'none', tier: null, keepAliveS: DEFAULT_KEEP_ALIVE_S, timeScale: 1, remoteLatencyUs: 0 };
    this.policy = nonePolicy;
    this.configure(settings);
  }

  /** Changes the policy, tier, keep-alive or time scale (validated first; counts are kept). */
  configure(s: SchedulerSettings): SchedulerReport {
    const next = { ...this.settings, ...Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined)) } as Required<SchedulerSettings>;
    if (!(Number.isFinite(next.keepAliveS) && next.keepAliveS >= 0 && next.keepAliveS <= 7 * 86400)) {
      throw new ThawError('THAW_CONFIG_INVALID', { detail: `keepAliveS must be a number of seconds in [0, 604800], got '${String(next.keepAliveS)}'` });
    }
    if (!(Number.isFinite(next.timeScale) && next.timeScale >= 1 && next.timeScale <= 10_000)) {
      throw new ThawError('THAW_CONFIG_INVALID', { detail: `timeScale must be a number in [1, 10000], got '${String(next.timeScale)}'` });
    }
    if (next.tier !== null && !['file', 'compressed', 'remote'].includes(next.tier)) {
      throw new ThawError('THAW_CONFIG_INVALID', { detail: `tier must be file, compressed or remote, got '${String(next.tier)}'` });
    }
    if (!(Number.isInteger(next.remoteLatencyUs) && next.remoteLatencyUs >= 0 && next.remoteLatencyUs <= 1_000_000)) {
      throw new ThawError('THAW_CONFIG_INVALID', { detail: `remoteLatencyUs must be a whole number of microseconds in [0, 1000000], got '${String(next.remoteLatencyUs)}'` });
    }
    // tmo's compressed tier is a zram swap device the platform sets up (wantsZramSwap).
    const policy = createPolicy(next.policy, { timing: next.tier === null ? {} : { tier: next.tier, tmoSwap: next.tier === 'compressed' }, scale: next.timeScale });
    this.settings = next;
    this.policy = policy;
    // A sandbox made semi-warm by the previous policy stays shrunk; it counts as semi-warm until used.
    this.restartTimer();
    return this.report();
  }

  /** The keep-alive in real milliseconds (trace seconds / timeScale). */
  get keepAliveMs(): number {
    return (this.settings.keepAliveS * 1000) / this.settings.timeScale;
  }

  /** Whether the configured policy needs page life stages tracked from a sandbox's start. */
  get needsStages(): boolean {
    return this.policy.needsStages === true;
  }

  /** The remote tier's per-page latency when the configured setting uses the remote tier, else null. */
  get remoteLatencyUs(): number | null {
    return this.settings.tier === 'remote' && this.policy.id !== 'none' ? this.settings.remoteLatencyUs : null;
  }

  /** Whether the configured setting is tmo on the compressed tier: reclaim into a zram swap device the platform sets up. */
  get wantsZramSwap(): boolean {
    return this.policy.id === 'tmo' && this.settings.tier === 'compressed';
  }

  /** Whether starts may pipeline the first request behind boot or restore (the policy has no afterInit to run between). */
  get pipelinesStarts(): boolean {
    return this.policy.afterInit === undefined;
  }

  /**
   * Where an auto invocation of `fn` starts. A warm or semi-warm pick is claimed (busy) before
   * this returns, with no await in between: two concurrent callers never get one sandbox.
   */
  place(fn: string): Placement<S> {
    const deployment = this.host.deployment(fn);
    let warm: S | undefined;
    let semi: S | undefined;
    for (const s of this.host.sandboxes()) {
      if (s.fn !== fn || s.deployment !== deployment || s.busy) continue;
      const t = this.track(s);
      if (t.semiWarm) {
        if (!semi || s.lastUsed > semi.lastUsed) semi = s;
      } else if (!warm || s.lastUsed > warm.lastUsed) {
        warm = s;
      }
    }
    const pick = warm ?? semi;
    if (pick) {
      pick.busy = true;
      this.recordReuse(fn, Date.now() - pick.lastUsed);
      return { kind: pick === warm ? 'warm' : 'semi-warm', sandbox: pick };
    }
    return this.host.hasSnapshot(fn) ? { kind: 'snapshot' } : { kind: 'cold' };
  }

  /** Counts a start of `fn` (every mode counts, explicit ones too). */
  started(fn: string, kind: StartKind): void {
    this.fnStats(fn).starts[kind]++;
  }

  /** An idle sandbox the platform claimed itself (explicit mode warm): its reuse interval counts. */
  claimedExplicitly(s: S): void {
    this.recordReuse(s.fn, Date.now() - s.lastUsed);
  }

  /**
   * Waits for the policy call running on a claimed idle sandbox, then says how it starts: semi-warm
   * when the policy last said so, else warm. It is warm from here on. The policy's beforeReuse
   * (faasmem: a semi-warm sandbox's prefetch) runs before this returns: the request waits for it.
   */
  async reuse(s: S): Promise<StartKind> {
    const t = this.track(s);
    await t.pending;
    const kind: StartKind = t.semiWarm ? 'semi-warm' : 'warm';
    t.semiWarm = false;
    const policy = this.policy;
    if (policy.beforeReuse) await this.callPolicy(s, 'beforeReuse', () => policy.beforeReuse!(this.host.policySandbox(s), kind === 'semi-warm'));
    return kind;
  }

  /** Resolves when no policy call runs on the sandbox (before a snapshot of it, say). */
  async settled(s: S): Promise<void> {
    await this.tracked.get(s.id)?.pending;
  }

  /** A new sandbox booted or restored, before its first request. */
  async afterInit(s: S): Promise<void> {
    this.track(s);
    const policy = this.policy;
    if (!policy.afterInit) return;
    await this.callPolicy(s, 'afterInit', () => policy.afterInit!(this.host.policySandbox(s)));
  }

  /**
   * A request finished on a kept sandbox: releases it and starts the policy's afterRequest, which
   * the next invocation of the sandbox waits for (reuse()). The reply does not wait for it.
   */
  afterRequest(s: S): void {
    const t = this.track(s);
    t.requests++;
    this.host.release(s);
    if (this.policy.id === 'none') return;
    const policy = this.policy;
    void this.callPolicy(s, 'afterRequest', () => policy.afterRequest(this.host.policySandbox(s), t.requests));
  }

  /** Forgets a sandbox that is gone (stopped, expired, dead), and so does the policy. */
  forget(id: string): void {
    this.tracked.delete(id);
    this.policy.forget?.(id);
  }

  /** Starts per function, the settings, and each function's reuse P99. */
  report(): SchedulerReport {
    const functions: SchedulerReport['functions'] = {};
    for (const [fn, st] of this.stats) {
      functions[fn] = { starts: { ...st.starts }, expired: st.expired, reuseP99Ms: round(this.reuseP99Ms(fn)), reuseSamples: st.reuse.length };
    }
    const live = [...this.host.sandboxes()];
    return {
      ...this.settings,
      keepAliveMs: round(this.keepAliveMs),
      tickMs: round(this.tickMs()),
      sandboxes: { live: live.length, idle: live.filter((s) => !s.busy).length, semiWarm: live.filter((s) => this.tracked.get(s.id)?.semiWarm).length },
      functions,
    };
  }

  /**
   * Each live sandbox's memory as its host measures it now (resident: mincore over the guest's
   * memory; held: offloaded and not faulted back), with the report. A sandbox whose host does not
   * answer (it died meanwhile) is left out.
   */
  async reportWithMemory(): Promise<SchedulerReport> {
    const report = this.report();
    const live = [...this.host.sandboxes()];
    const figures = await Promise.allSettled(live.map((s) => this.host.policySandbox(s).offloadStats()));
    const memory: SandboxMemoryFigures[] = [];
    figures.forEach((f, i) => {
      if (f.status !== 'fulfilled') return;
      const s = live[i]!;
      memory.push({
        id: s.id, function: s.fn, semiWarm: this.tracked.get(s.id)?.semiWarm ?? false, residentBytes: f.value.residentBytes,
        heldBytes: f.value.heldBytes, storedBytes: f.value.storedBytes, swappedBytes: f.value.swappedBytes, offloadedBytes: f.value.offloadedBytes, faultedBackBytes: f.value.faultedBackBytes, faultBackMeanUs: round(f.value.faultBackMeanUs),
      });
    });
    return { ...report, memory };
  }

  /** Forgets every function's reuse intervals (see SchedulerChange.resetHistory). */
  resetHistory(): void {
    for (const st of this.stats.values()) {
      st.reuse = [];
      st.reuseNext = 0;
    }
  }

  /** Sets every function's counts back to zero (the reuse history is kept: resetHistory). */
  resetCounts(): void {
    for (const st of this.stats.values()) {
      for (const k of START_KINDS) st.starts[k] = 0;
      st.expired = 0;
    }
  }

  /** The P99 of the function's reuse intervals in real ms; 0 when it has none yet (the policy applies its floor). */
  reuseP99Ms(fn: string): number {
    const xs = this.stats.get(fn)?.reuse;
    if (!xs || xs.length === 0) return 0;
    const sorted = [...xs].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.ceil(0.99 * sorted.length) - 1)]!;
  }

  /** One pass: expires sandboxes idle past the keep-alive, and asks the policy about the others. */
  async tick(now = Date.now()): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      const work: Promise<unknown>[] = [];
      for (const s of [...this.host.sandboxes()]) {
        if (s.busy) continue;
        const t = this.track(s);
        if (t.pending) continue;
        const idleMs = now - s.lastUsed;
        if (idleMs >= this.keepAliveMs) {
          this.fnStats(s.fn).expired++;
          this.forget(s.id);
          work.push(this.host.stop(s, 'keep-alive expired'));
          continue;
        }
        if (this.policy.id === 'none') continue;
        const reuseP99 = this.reuseP99Ms(s.fn);
        work.push(this.callPolicy(s, 'onIdle', async () => {
          t.semiWarm = (await this.policy.onIdle(this.host.policySandbox(s), idleMs, reuseP99)) === 'semi-warm';
        }));
      }
      await Promise.allSettled(work);
    } finally {
      this.ticking = false;
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Ticks often enough for the policy's 10 s steps at the time scale: 1 s of trace time, at least 50 ms real. */
  private tickMs(): number {
    return Math.max(50, 1000 / this.settings.timeScale);
  }

  private restartTimer(): void {
    clearInterval(this.timer);
    this.timer = setInterval(() => void this.tick(), this.tickMs());
    this.timer.unref();
  }

  /**
   * Runs a policy hook as the sandbox's pending call (after any call still running); a failing
   * policy is logged and leaves the sandbox as it was (it never fails a request).
   */
  private callPolicy(s: S, hook: string, body: () => Promise<void>): Promise<void> {
    const t = this.track(s);
    const policyId = this.policy.id;
    const run = (t.pending ?? Promise.resolve()).then(body).catch((err: unknown) => {
      this.host.log.warn({ sandboxId: s.id, function: s.fn, policy: policyId, hook, err: err instanceof Error ? err.message : String(err) }, 'memory policy failed');
    }).finally(() => {
      if (t.pending === run) t.pending = null;
    });
    t.pending = run;
    return run;
  }

  private track(s: S): Tracked {
    let t = this.tracked.get(s.id);
    if (!t) {
      t = { semiWarm: false, requests: 0, pending: null };
      this.tracked.set(s.id, t);
    }
    return t;
  }

  private fnStats(fn: string): FunctionStats {
    let st = this.stats.get(fn);
    if (!st) {
      st = { starts: { cold: 0, snapshot: 0, warm: 0, 'semi-warm': 0 }, expired: 0, reuse: [], reuseNext: 0 };
      this.stats.set(fn, st);
    }
    return st;
  }

  private recordReuse(fn: string, ms: number): void {
    const st = this.fnStats(fn);
    if (st.reuse.length < REUSE_SAMPLES) st.reuse.push(ms);
    else st.reuse[st.reuseNext] = ms;
    st.reuseNext = (st.reuseNext + 1) % REUSE_SAMPLES;
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
