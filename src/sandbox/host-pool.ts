// The pool of pre-spawned sandbox hosts, so that process start and module compilation are off
// the invocation's critical path. A host taken for a function is replaced in the background by
// one already prepared for that function (deployment). Unjailed, generic spares are also kept
// ready; a jailed host belongs to one function from its start (its uid, group and filesystem
// view are the function's), so jailed pools keep prepared hosts only. Prepared hosts are
// bounded: functions unused for `preparedIdleMs` and those beyond the `maxPreparedFunctions`
// most recently used keep none. A host is taken for one sandbox (horizontal) or for up to N
// instances of its function (vertical; the platform places instances and keeps the host).
//
// Host starts are a bounded resource: at most `maxHostStarts` hosts start at once (spawn to
// configured and, for a prepared host, its module compiled). A start beyond it waits in a queue
// (first come, first served; the wait is part of the acquiring request's acquireMs), so a storm of
// arrivals queues instead of forking dozens of Node processes onto a few cores at once. Background
// refills only start hosts while a slot is free and no request waits for one; they resume when a
// start ends. Time constants (preparedIdleMs) are divided by the time scale a trace replay sets.

import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ThawError } from '../core/errors.js';
import type { ObjectStoreConfig } from '../store/object-store.js';
import { HostProcess, type LogSink } from './host-process.js';
import type { HostFunction, JailLayer, PrepareResult } from './protocol.js';
import { HOST_UID_BASE, HOST_UID_COUNT, SANDBOX_GID, UidRange, createScratch, removeScratch } from './jail.js';

/** Validated pool settings. */
export interface HostPoolParams {
  /** Configured hosts kept ready for any function. */
  readonly spareHosts: number;
  /** Hosts kept prepared (module compiled) for each function that has been used. */
  readonly preparedPerFunction: number;
  /** Memory a host needs beside its guest memory (Node, compiled code), in MiB. */
  readonly hostOverheadMiB: number;
  readonly objectStore: ObjectStoreConfig;
  /** Parent memory cgroup path, or null where cgroups are unavailable. */
  readonly cgroupParent: string | null;
  readonly onLog: LogSink;
  /** Jail every host (see jail.ts) under this data directory, or null to run hosts unjailed. */
  readonly jail: { readonly dataDir: string; readonly env: Readonly<Record<string, string>>; readonly redisSocket: string | null } | null;
  /** A function unused for this long keeps no prepared host. */
  readonly preparedIdleMs: number;
  /** Prepared hosts are kept for at most this many functions (the most recently used). */
  readonly maxPreparedFunctions: number;
  /**
   * The sealed snapshot images ([key, fd]) a host prepared for `fn` gets with its prepare, to map
   * ahead of a restore (restore/strategies/sealed.ts); none when absent.
   */
  readonly sealedImagesFor?: (fn: HostFunction) => readonly (readonly [string, number])[];
  /** Host processes starting at once, at most (see the header). */
  readonly maxHostStarts: number;
}

interface PooledHost {
  readonly host: HostProcess;
  /** Resolves when the host is configured (and prepared, for `deployment`). */
  readonly ready: Promise<void>;
  /** The deployment the host was prepared for, or null for a generic spare. */
  readonly deployment: string | null;
  /** A jailed host's scratch directory (its only writable space). */
  readonly scratchDir: string | null;
  /** When it was spawned (performance.now()). */
  readonly startedAt: number;
}

export interface AcquiredHost {
  readonly host: HostProcess;
  /** Time spent waiting for the host, including any preparation done on the critical path. */
  readonly acquireMs: number;
  /** Whether the host came already prepared for the function. */
  readonly prepared: boolean;
  /** A jailed host's scratch directory (where it writes snapshots), else null. */
  readonly scratchDir: string | null;
  /**
   * Whether the host was running before this acquire (taken from the pool, not started for it):
   * such a host may have died a moment ago without the pool having seen its exit yet.
   */
  readonly pooled: boolean;
}

export class HostPool {
  private readonly spares: PooledHost[] = [];
  private readonly preparedHosts = new Map<string, PooledHost[]>();
  /** Known deployments and the instances each of their hosts carries (its memory cgroup holds them all). */
  private readonly functions = new Map<string, { fn: HostFunction; instances: number }>();
  /** When each deployment last took a host (ms since the epoch). */
  private readonly lastUsed = new Map<string, number>();
  private readonly all = new Set<HostProcess>();
  /** Hosts taken for several instances (vertical): they prepare their next instance between requests. */
  private readonly vertical = new Map<HostProcess, string>();
  // Started at an offset of this process's pid, so that two daemons on one machine hand out different uids first.
  private readonly uids = new UidRange(HOST_UID_BASE, HOST_UID_COUNT, 'host', process.pid);
  private closed = false;
  private retireTimer: NodeJS.Timeout | undefined;
  /** Hosts starting now (each holds a start slot), and the most at once since the pool started. */
  private starting = 0;
  private peakStarting = 0;
  /** Starts waiting for a slot, first come first served. */
  private readonly startQueue: (() => void)[] = [];
  /** A refill stopped for want of a start slot: it resumes when a start ends. */
  private refillDeferred = false;
  /** Trace replays divide the pool's time constants by this (see setTimeScale). */
  private timeScale = 1;

  constructor(private readonly params: HostPoolParams) {
    if (!(Number.isInteger(params.maxHostStarts) && params.maxHostStarts >= 1)) {
      throw new ThawError('THAW_CONFIG_INVALID', { detail: `maxHostStarts must be a whole number of at least 1, got '${String(params.maxHostStarts)}'` });
    }
  }

  /** Spawns the initial spares. */
  start(): void {
    this.refill();
    this.restartRetireTimer();
  }

  /** A function unused this long (real ms, preparedIdleMs / the time scale) keeps no prepared host. */
  get preparedIdleMs(): number {
    return this.params.preparedIdleMs / this.timeScale;
  }

  /**
   * Divides the pool's time constants by `scale` (as the keep-alive scheduler's timeScale, which
   * the platform passes on): a replay at 720x keeps an idle function's prepared host for
   * preparedIdleMs of trace time, not of real time.
   */
  setTimeScale(scale: number): void {
    if (scale === this.timeScale) return;
    this.timeScale = scale;
    if (this.retireTimer !== undefined) this.restartRetireTimer();
  }

  private restartRetireTimer(): void {
    clearInterval(this.retireTimer);
    // An idle daemon still retires idle functions' prepared hosts.
    this.retireTimer = setInterval(() => this.refill(), Math.max(10, Math.min(this.preparedIdleMs, 60_000)));
    this.retireTimer.unref();
  }

  /** Takes a start slot, waiting in the queue when maxHostStarts hosts are starting. */
  private startSlot(): Promise<void> {
    if (this.startQueue.length === 0 && this.starting < this.params.maxHostStarts) {
      this.takeSlot();
      return Promise.resolve();
    }
    return new Promise((resolve) => this.startQueue.push(resolve));
  }

  private takeSlot(): void {
    this.starting++;
    this.peakStarting = Math.max(this.peakStarting, this.starting);
  }

  /** A start ended (ready or failed): its slot goes to the first waiter, else back to refills. */
  private endStart(): void {
    const next = this.startQueue.shift();
    if (next) {
      next();
      return;
    }
    this.starting--;
    if (this.refillDeferred) {
      this.refillDeferred = false;
      setImmediate(() => this.refill());
    }
  }

  /** Whether a background refill may start a host now (a free slot no request waits for); takes it if so. */
  private backgroundSlot(): boolean {
    if (this.startQueue.length > 0 || this.starting >= this.params.maxHostStarts) {
      this.refillDeferred = true;
      return false;
    }
    this.takeSlot();
    return true;
  }

  /**
   * Takes a host ready to run `fn` with up to `instances` instances (1: horizontal): prepared
   * if one is waiting, else a spare prepared now.
   */
  async acquire(fn: HostFunction, instances = 1): Promise<AcquiredHost> {
    if (this.closed) throw new ThawError('THAW_POOL_EXHAUSTED', { detail: 'the host pool is shut down' });
    const t0 = performance.now();
    this.want(fn, instances);
    const waiting = this.preparedHosts.get(fn.deployment) ?? [];
    let pooled = waiting.shift();
    let wasPrepared = true;
    if (!pooled) {
      wasPrepared = false;
      // A jailed host is born for its function: it is spawned and prepared now.
      pooled = this.params.jail ? undefined : this.spares.shift();
      pooled ??= await this.spawnNow(this.params.jail ? { fn, instances } : null);
    }
    let wasPooled = pooled.startedAt < t0;
    try {
      await this.readyFor(pooled, fn, instances, wasPrepared);
    } catch (err) {
      void pooled.host.kill('failed to start');
      // A host that died while it waited in the pool (a crash, the OOM killer) costs this request
      // a host started now, not a failure; a host started for this request that dies is reported.
      if (!(wasPooled && pooled.host.exit && !pooled.host.exit.killedBy)) throw err;
      pooled = await this.spawnNow(this.params.jail ? { fn, instances } : null);
      wasPrepared = false;
      wasPooled = false;
      try {
        await this.readyFor(pooled, fn, instances, false);
      } catch (again) {
        void pooled.host.kill('failed to start');
        throw again;
      }
    }
    if (instances > 1) this.vertical.set(pooled.host, fn.deployment);
    return { host: pooled.host, acquireMs: performance.now() - t0, prepared: wasPrepared, scratchDir: pooled.scratchDir, pooled: wasPooled };
  }

  /** Waits until a pooled host is ready for `fn` (a generic spare is prepared now). */
  private async readyFor(pooled: PooledHost, fn: HostFunction, instances: number, wasPrepared: boolean): Promise<void> {
    await pooled.ready;
    if (!pooled.host.alive) throw new ThawError('THAW_SANDBOX_DIED', { id: `host-${pooled.host.pid}`, detail: 'host died while pooled' });
    if (!wasPrepared && pooled.deployment === null) await this.prepare(pooled.host, fn, instances);
  }

  /**
   * Hands sealed image `fd` (under `key`) to the prepared and vertical hosts of `deployment`, which
   * map it now (a settle request takes it), so no restore into them pays the mapping. Hosts that
   * start later get it with their prepare (sealedImagesFor).
   */
  async offerSealedImage(deployment: string, key: string, fd: number): Promise<void> {
    const give = async (host: HostProcess): Promise<void> => {
      if (!host.alive) return;
      try {
        host.sendSealedImage(key, fd);
        await host.request({ op: 'settle' }, { timeoutMs: 60_000 });
      } catch {
        // A host whose channel is gone or full, or that died, gets the image with the restore that needs it.
      }
    };
    const offers = (this.preparedHosts.get(deployment) ?? []).map((p) => p.ready.then(() => give(p.host), () => undefined));
    for (const [host, d] of this.vertical) if (d === deployment) offers.push(give(host));
    await Promise.all(offers);
  }

  /** Counts `fn` (with `instances` per host) as used now: the next refill prepares hosts for it. */
  want(fn: HostFunction, instances = 1): void {
    this.functions.set(fn.deployment, { fn, instances });
    this.lastUsed.set(fn.deployment, Date.now());
  }

  /** Forgets a deployment (deleted, redeployed or idle): its prepared hosts are killed. */
  forget(deployment: string, reason = 'function removed'): void {
    this.functions.delete(deployment);
    this.lastUsed.delete(deployment);
    for (const p of this.preparedHosts.get(deployment) ?? []) void p.host.kill(reason);
    this.preparedHosts.delete(deployment);
  }

  /** Kills every host, pooled or in use. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.retireTimer);
    // Starts still queued are let go: each sees the pool closed and gives its slot back.
    const queued = this.startQueue.splice(0);
    this.starting += queued.length;
    for (const go of queued) go();
    await Promise.all([...this.all].map((h) => h.kill('shutdown')));
  }

  /**
   * Refills the pool and resolves when every pooled host has started and every vertical host in
   * use has made what it prepares between requests (its next instance's shell): the steady
   * state between measured runs.
   */
  async settled(): Promise<void> {
    for (;;) {
      this.refill();
      // A refill held back by the start cap goes on as the starts it waits for end.
      const complete = !this.refillDeferred;
      const pooled = [...this.spares, ...[...this.preparedHosts.values()].flat()];
      await Promise.allSettled([...pooled.map((p) => p.ready), ...[...this.vertical.keys()].map((h) => h.request({ op: 'settle' }, { timeoutMs: 60_000 }))]);
      if (complete || this.closed) return;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /**
   * Counts for the API and tests: hosts starting now, starts waiting for a slot, and the most
   * hosts ever starting at once (never above maxHostStarts).
   */
  describe(): { spares: number; prepared: Record<string, number>; live: number; starting: number; startsQueued: number; peakStarting: number; maxHostStarts: number } {
    const prepared: Record<string, number> = {};
    for (const [deployment, hosts] of this.preparedHosts) prepared[this.functions.get(deployment)?.fn.params.name ?? deployment] = hosts.length;
    return { spares: this.spares.length, prepared, live: this.all.size, starting: this.starting, startsQueued: this.startQueue.length, peakStarting: this.peakStarting, maxHostStarts: this.params.maxHostStarts };
  }

  /**
   * Starts a throwaway host (jailed as a function's would be, with no function's files) and
   * returns what it observes of its own confinement.
   */
  async probe(): Promise<JailLayer[]> {
    const jail = this.params.jail;
    await this.startSlot();
    const pooled = this.spawn(null, jail ? { gid: SANDBOX_GID, functionDir: join(jail.dataDir, 'functions') } : undefined);
    try {
      await pooled.ready;
      return await pooled.host.request<JailLayer[]>({ op: 'inspect' }, { timeoutMs: 30_000, onTimeout: () => new ThawError('THAW_INTERNAL', { detail: 'the probe host did not answer' }) });
    } finally {
      void pooled.host.kill('probe done');
    }
  }

  /** Spawns a host for a request: waits for a start slot first (see the header). */
  private async spawnNow(want: { fn: HostFunction; instances: number } | null): Promise<PooledHost> {
    await this.startSlot();
    if (this.closed) {
      this.endStart();
      throw new ThawError('THAW_POOL_EXHAUSTED', { detail: 'the host pool is shut down' });
    }
    return this.spawn(want);
  }

  /** Spawns a host; the caller holds a start slot, which this start gives back when it ends. */
  private spawn(want: { fn: HostFunction; instances: number } | null, identity = want ? { gid: want.fn.gid, functionDir: dirname(want.fn.artefactPath) } : undefined): PooledHost {
    const { jail } = this.params;
    let uid: number | null = null;
    let scratchDir: string | null = null;
    let host: HostProcess;
    try {
      if (jail) {
        if (!identity) throw new ThawError('THAW_INTERNAL', { detail: 'a jailed host is spawned for a function' });
        uid = this.uids.allocate();
        scratchDir = createScratch(jail.dataDir, uid, identity.gid);
        host = new HostProcess({
          onLog: this.params.onLog,
          cgroupParent: this.params.cgroupParent,
          jail: { uid, gid: identity.gid, dataDir: jail.dataDir, functionDir: identity.functionDir, scratchDir, objectStore: this.params.objectStore, env: jail.env },
        });
      } else {
        host = new HostProcess({ onLog: this.params.onLog, cgroupParent: this.params.cgroupParent, jail: null });
      }
    } catch (err) {
      this.endStart();
      throw err;
    }
    this.all.add(host);
    void host.exited.then((exit) => {
      this.all.delete(host);
      this.vertical.delete(host);
      // A pooled host that died on its own (not retired or killed by Thaw) is replaced at once.
      if (this.dropPooled(host) && !exit.killedBy) setImmediate(() => this.refill());
      if (scratchDir) removeScratch(scratchDir);
      if (uid !== null) this.uids.release(uid);
    });
    const ready = (async () => {
      await host.ready;
      await host.request({ op: 'configure', objectStore: this.params.objectStore, ownerPid: host.pid, redisSocket: this.params.jail?.redisSocket ?? null });
      // The breakdown's channel times need the host's clock related to the daemon's.
      await host.calibrate();
      if (want) await this.prepare(host, want.fn, want.instances);
    })();
    ready.catch(() => void host.kill('failed to start')).finally(() => this.endStart());
    return { host, ready, deployment: want?.fn.deployment ?? null, scratchDir, startedAt: performance.now() };
  }

  private async prepare(host: HostProcess, fn: HostFunction, instances: number): Promise<PrepareResult> {
    host.cgroup?.setLimit((fn.params.memoryMiB * instances + this.params.hostOverheadMiB) * 1024 * 1024);
    for (const [key, fd] of this.params.sealedImagesFor?.(fn) ?? []) host.sendSealedImage(key, fd);
    return host.request<PrepareResult>({ op: 'prepare', fn, instances });
  }

  /**
   * Tops up the spares and each known function's prepared hosts, in the background. Forking
   * blocks the daemon's event loop for milliseconds, so callers run this after an invocation
   * has replied, never between acquire and reply.
   */
  refill(): void {
    if (this.closed) return;
    const now = Date.now();
    const byRecency = [...this.functions.keys()].sort((a, b) => (this.lastUsed.get(b) ?? 0) - (this.lastUsed.get(a) ?? 0));
    // Retiring first: it needs no start slot.
    const kept: string[] = [];
    for (const [rank, deployment] of byRecency.entries()) {
      if (rank >= this.params.maxPreparedFunctions || now - (this.lastUsed.get(deployment) ?? 0) > this.preparedIdleMs) {
        this.forget(deployment, 'retired (idle function)');
      } else {
        kept.push(deployment);
      }
    }
    // Then the most recently used functions' prepared hosts, then spares, while start slots are free.
    for (const deployment of kept) {
      const want = this.functions.get(deployment)!;
      const list = this.preparedHosts.get(deployment) ?? [];
      this.preparedHosts.set(deployment, list);
      while (list.length < this.params.preparedPerFunction) {
        if (!this.backgroundSlot()) return;
        list.push(this.spawn(want));
      }
    }
    if (!this.params.jail) {
      while (this.spares.length < this.params.spareHosts) {
        if (!this.backgroundSlot()) return;
        this.spares.push(this.spawn(null));
      }
    }
  }

  /** Removes a host from the pool's lists; returns whether it was there (pooled, not in use). */
  private dropPooled(host: HostProcess): boolean {
    const drop = (list: PooledHost[]): boolean => {
      const i = list.findIndex((p) => p.host === host);
      if (i >= 0) list.splice(i, 1);
      return i >= 0;
    };
    let found = drop(this.spares);
    for (const list of this.preparedHosts.values()) found = drop(list) || found;
    return found;
  }
}
