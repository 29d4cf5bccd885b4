// The pool of pre-spawned sandbox hosts, so that process start and module compilation are off
// the invocation's critical path. Generic spares are spawned and configured ahead; a host taken
// for a function is replaced in the background by one already prepared for that function.
// A host carries one sandbox and is never reused after it (one process per "microVM").

import { performance } from 'node:perf_hooks';
import { ThawError } from '../core/errors.js';
import type { ObjectStoreConfig } from '../store/object-store.js';
import { HostProcess, type LogSink } from './host-process.js';
import type { HostFunction, PrepareResult } from './protocol.js';

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
}

interface PooledHost {
  readonly host: HostProcess;
  /** Resolves when the host is configured (and prepared, for `digest`). */
  readonly ready: Promise<void>;
  readonly digest: string | null;
}

export interface AcquiredHost {
  readonly host: HostProcess;
  /** Time spent waiting for the host, including any preparation done on the critical path. */
  readonly acquireMs: number;
  /** Whether the host came already prepared for the function. */
  readonly prepared: boolean;
}

export class HostPool {
  private readonly spares: PooledHost[] = [];
  private readonly preparedHosts = new Map<string, PooledHost[]>();
  private readonly functions = new Map<string, HostFunction>();
  private readonly all = new Set<HostProcess>();
  private closed = false;

  constructor(private readonly params: HostPoolParams) {}

  /** Spawns the initial spares. */
  start(): void {
    this.refill();
  }

  /** Takes a host ready to run `fn`: prepared if one is waiting, else a spare prepared now. */
  async acquire(fn: HostFunction): Promise<AcquiredHost> {
    if (this.closed) throw new ThawError('THAW_POOL_EXHAUSTED', { detail: 'the host pool is shut down' });
    const t0 = performance.now();
    this.functions.set(fn.digest, fn);
    const waiting = this.preparedHosts.get(fn.digest) ?? [];
    let pooled = waiting.shift();
    let wasPrepared = true;
    if (!pooled) {
      wasPrepared = false;
      pooled = this.spares.shift() ?? this.spawn(null);
    }
    try {
      await pooled.ready;
      if (!pooled.host.alive) throw new ThawError('THAW_SANDBOX_DIED', { id: `host-${pooled.host.pid}`, detail: 'host died while pooled' });
      if (!wasPrepared) await this.prepare(pooled.host, fn);
    } catch (err) {
      void pooled.host.kill('failed to start');
      throw err;
    }
    return { host: pooled.host, acquireMs: performance.now() - t0, prepared: wasPrepared };
  }

  /** Forgets a function (deleted or redeployed): its prepared hosts are killed. */
  forget(digest: string): void {
    this.functions.delete(digest);
    for (const p of this.preparedHosts.get(digest) ?? []) void p.host.kill('function removed');
    this.preparedHosts.delete(digest);
  }

  /** Kills every host, pooled or in use. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.all].map((h) => h.kill('shutdown')));
  }

  /** Refills the pool and resolves when every pooled host has started (used between measured runs). */
  async settled(): Promise<void> {
    this.refill();
    const pooled = [...this.spares, ...[...this.preparedHosts.values()].flat()];
    await Promise.allSettled(pooled.map((p) => p.ready));
  }

  /** Counts for the API and tests. */
  describe(): { spares: number; prepared: Record<string, number>; live: number } {
    const prepared: Record<string, number> = {};
    for (const [digest, hosts] of this.preparedHosts) prepared[this.functions.get(digest)?.params.name ?? digest] = hosts.length;
    return { spares: this.spares.length, prepared, live: this.all.size };
  }

  private spawn(fn: HostFunction | null): PooledHost {
    const host = new HostProcess(this.params.onLog, this.params.cgroupParent);
    this.all.add(host);
    void host.exited.then(() => {
      this.all.delete(host);
      this.dropPooled(host);
    });
    const ready = (async () => {
      await host.ready;
      await host.request({ op: 'configure', objectStore: this.params.objectStore });
      if (fn) await this.prepare(host, fn);
    })();
    ready.catch(() => void host.kill('failed to start'));
    return { host, ready, digest: fn?.digest ?? null };
  }

  private async prepare(host: HostProcess, fn: HostFunction): Promise<PrepareResult> {
    host.cgroup?.setLimit((fn.params.memoryMiB + this.params.hostOverheadMiB) * 1024 * 1024);
    return host.request<PrepareResult>({ op: 'prepare', fn });
  }

  /**
   * Tops up the spares and each known function's prepared hosts, in the background. Forking
   * blocks the daemon's event loop for milliseconds, so callers run this after an invocation
   * has replied, never between acquire and reply.
   */
  refill(): void {
    if (this.closed) return;
    while (this.spares.length < this.params.spareHosts) this.spares.push(this.spawn(null));
    for (const [digest, fn] of this.functions) {
      const list = this.preparedHosts.get(digest) ?? [];
      this.preparedHosts.set(digest, list);
      while (list.length < this.params.preparedPerFunction) list.push(this.spawn(fn));
    }
  }

  private dropPooled(host: HostProcess): void {
    const drop = (list: PooledHost[]): void => {
      const i = list.findIndex((p) => p.host === host);
      if (i >= 0) list.splice(i, 1);
    };
    drop(this.spares);
    for (const list of this.preparedHosts.values()) drop(list);
  }
}
