// Prometheus metrics of the daemon (`GET /metrics`, text format, same auth as the API), with
// prom-client. Invocations are counted where they pass through the API (a wrapper around
// ThawApi.invoke), errors where the error reply is written, and the state gauges (sandboxes,
// memory, snapshots, pool) are read from the platform when Prometheus scrapes.
//
// Labels are bounded: `function` takes the names of deployed functions, `mode` and `phase` fixed
// sets, `strategy` the registered strategy ids, `code` the THAW_* error catalogue, `tier` three
// values. docs/metrics.md lists every name.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { toThawError } from '../core/errors.js';
import { TIMING_PARTS, type InvokeRequest, type InvokeResult, type ThawApi } from '../platform/types.js';

/** Seconds: from a 0.1 ms restore to a 30 s handler. */
const BUCKETS_S = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** The timing parts of an invocation that get a histogram: every part of the breakdown, and the total. */
const PHASES = [...TIMING_PARTS.map((p) => p.key), 'totalMs'] as const;

export interface MetricsSources {
  /** Pool counts (HostPool.describe()), when the daemon has a pool. */
  pool?: () => { spares: number; prepared: Record<string, number>; live: number };
}

export class DaemonMetrics {
  readonly registry = new Registry();
  private readonly invocations: Counter<'function' | 'mode' | 'start' | 'strategy' | 'outcome'>;
  private readonly phaseSeconds: Histogram<'start' | 'phase'>;
  private readonly totalSeconds: Histogram<'function' | 'start'>;
  private readonly errors: Counter<'code'>;
  private readonly restoreFaults: Counter<'strategy' | 'kind'>;
  private readonly restoreBytesRead: Counter<'strategy'>;
  private readonly sandboxes: Gauge<'function' | 'state'>;
  private readonly memory: Gauge<'function' | 'kind'>;
  private readonly snapshotBytes: Gauge<'tier'>;
  private readonly snapshots: Gauge<'function'>;
  private readonly pool: Gauge<'state'>;

  constructor(private readonly api: ThawApi, sources: MetricsSources = {}) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'thaw_daemon_' });
    this.invocations = new Counter({
      name: 'thaw_invocations_total', help: 'Invocations through the API, by function, mode asked, how the sandbox started, restore strategy and outcome (ok or a THAW_* code)',
      labelNames: ['function', 'mode', 'start', 'strategy', 'outcome'], registers,
    });
    this.phaseSeconds = new Histogram({
      name: 'thaw_invocation_phase_seconds', help: 'Time in each part of an invocation (acquire, boot, prepare, restore, init, grant, populate, handler, release, total)',
      labelNames: ['start', 'phase'], buckets: BUCKETS_S, registers,
    });
    this.totalSeconds = new Histogram({
      name: 'thaw_invocation_seconds', help: 'Whole invocation time measured inside Thaw, by function and how the sandbox started',
      labelNames: ['function', 'start'], buckets: BUCKETS_S, registers,
    });
    this.errors = new Counter({ name: 'thaw_errors_total', help: 'Error replies of the API by THAW_* code', labelNames: ['code'], registers });
    this.restoreFaults = new Counter({
      name: 'thaw_restore_page_faults_total', help: 'Page faults taken by restores (major, minor, served by a userfaultfd page server)',
      labelNames: ['strategy', 'kind'], registers,
    });
    this.restoreBytesRead = new Counter({ name: 'thaw_restore_read_bytes_total', help: 'Bytes read from snapshot files by restores', labelNames: ['strategy'], registers });

    // The gauges are read at scrape time, in one pass so that one scrape sees one state:
    // prom-client calls each gauge's collect(), and they share one refresh while it runs.
    let refreshing: Promise<void> | undefined;
    const collect = (): Promise<void> => (refreshing ??= this.refreshGauges(sources).finally(() => { refreshing = undefined; }));
    this.sandboxes = new Gauge({ name: 'thaw_sandboxes', help: 'Live sandboxes by function and state', labelNames: ['function', 'state'], registers, collect });
    this.memory = new Gauge({
      name: 'thaw_sandbox_memory_bytes', help: 'Guest memory of live sandboxes summed per function (declared: the limit; resident: in the host now)',
      labelNames: ['function', 'kind'], registers, collect,
    });
    this.snapshotBytes = new Gauge({ name: 'thaw_snapshot_bytes', help: 'Bytes of snapshots and their artefacts by tier (disk, tmpfs, pool, memory: sealed images the daemon holds)', labelNames: ['tier'], registers, collect });
    this.snapshots = new Gauge({ name: 'thaw_snapshots', help: 'Snapshots by function', labelNames: ['function'], registers, collect });
    this.pool = new Gauge({ name: 'thaw_pool_hosts', help: 'Sandbox hosts: spare (unassigned), prepared (for a function, idle), live (all)', labelNames: ['state'], registers, collect });
  }

  private async refreshGauges(sources: MetricsSources): Promise<void> {
    const [sbs, snaps] = await Promise.all([this.api.listSandboxes(), this.api.listSnapshots()]);
    this.sandboxes.reset();
    this.memory.reset();
    for (const s of sbs) {
      this.sandboxes.inc({ function: s.function, state: s.state });
      const m = (s as { memory?: { declaredBytes: number; residentBytes: number } }).memory;
      this.memory.inc({ function: s.function, kind: 'declared' }, m?.declaredBytes ?? s.memoryBytes);
      if (m) this.memory.inc({ function: s.function, kind: 'resident' }, m.residentBytes);
    }
    this.snapshotBytes.reset();
    this.snapshots.reset();
    for (const tier of ['disk', 'tmpfs', 'pool', 'memory']) this.snapshotBytes.set({ tier }, 0);
    for (const snap of snaps) {
      this.snapshots.inc({ function: snap.function });
      this.snapshotBytes.inc({ tier: 'disk' }, snap.diskBytes);
      for (const a of snap.artefacts) this.snapshotBytes.inc({ tier: a.tier }, a.bytes);
    }
    const p = sources.pool?.();
    if (p) {
      this.pool.set({ state: 'spare' }, p.spares);
      this.pool.set({ state: 'prepared' }, Object.values(p.prepared).reduce((a, b) => a + b, 0));
      this.pool.set({ state: 'live' }, p.live);
    }
  }

  /** Counts and times a finished invocation. */
  invocationOk(r: InvokeResult): void {
    this.recordInvocation(r);
  }

  /** Counts an invocation that failed with `err`. */
  invocationFailed(req: InvokeRequest, err: unknown): void {
    this.invocations.inc({ function: req.function, mode: req.mode ?? 'auto', start: '', strategy: req.strategy ?? '', outcome: toThawError(err).code });
  }

  /** Counts an error reply (called by the API's error handler). */
  recordError(code: string): void {
    this.errors.inc({ code });
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  private recordInvocation(r: InvokeResult): void {
    const strategy = r.strategy ?? '';
    this.invocations.inc({ function: r.function, mode: r.mode, start: r.start, strategy, outcome: 'ok' });
    const t = r.timings as unknown as Record<string, number | undefined>;
    for (const phase of PHASES) {
      const ms = t[phase];
      // A part the path did not have (boot on a warm start) is 0 in the breakdown: not an observation.
      if (ms !== undefined && ms > 0) this.phaseSeconds.observe({ start: r.start, phase: phase.replace(/Ms$/, '') }, ms / 1000);
    }
    this.totalSeconds.observe({ function: r.function, start: r.start }, r.timings.totalMs / 1000);
    if (r.restore) {
      this.restoreFaults.inc({ strategy, kind: 'major' }, r.restore.majorFaults);
      this.restoreFaults.inc({ strategy, kind: 'minor' }, r.restore.minorFaults);
      this.restoreFaults.inc({ strategy, kind: 'uffd' }, r.restore.uffdFaults);
      this.restoreBytesRead.inc({ strategy }, r.restore.bytesRead);
    }
  }
}
