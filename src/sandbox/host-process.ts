// The daemon's handle on one sandbox host process: fork, typed requests with timeouts,
// and loud failure when the process dies (every pending request is rejected).

import { fork, spawn, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { ThawError } from '../core/errors.js';
import type { HostEnvelope, HostEnvelopes, HostMessage, HostRequest, HostStamps, MemoryStagesResult, OffloadResult, PrefetchResult, StatsResult } from './protocol.js';
import type { OffloadRequest, SandboxOffloadFigures } from '../memory/types.js';
import { MemoryCgroup } from './cgroup.js';
import { IMAGE_CHANNEL_FD, JAIL_FAILED_EXIT, UFFD_DEVICE_FD, jailerCommand, type JailPlan } from './jail.js';
import { sealedChannel, sealedSend } from '../native/index.js';
import { closeSync } from 'node:fs';
import type { HostSpan } from './protocol.js';

const HOST_MAIN = fileURLToPath(new URL('./host-main.js', import.meta.url));

interface Pending {
  resolve(value: Timed<unknown>): void;
  reject(err: ThawError): void;
  timer: NodeJS.Timeout | undefined;
  onTimeout: (() => ThawError) | undefined;
  sentAt: number;
  /** Set when this request's own deadline killed the host (the others fail as killed with it). */
  timedOut: boolean;
}

/**
 * A reply with when it crossed: the daemon's clock when the request was sent and the reply
 * arrived (performance.now()), and the host's stamps converted to the daemon's clock.
 */
export interface Timed<T> {
  readonly result: T;
  readonly sentAt: number;
  readonly receivedAt: number;
  readonly host: HostStamps;
  /** The spans the host recorded (a traced request: RequestOptions.traceparent), else empty. */
  readonly spans: readonly HostSpan[];
}

export interface RequestOptions {
  /** Kill the host when the reply is later than this (a guest stuck in Wasm cannot be interrupted otherwise). */
  timeoutMs?: number;
  /** The error the request fails with when its deadline killed the host. */
  onTimeout?: () => ThawError;
  /** Start the deadline only when this settles successfully (a request pipelined behind another). */
  timeoutAfter?: Promise<unknown>;
  /** Trace the request: the host records its steps under this W3C trace context and returns them (Timed.spans). */
  traceparent?: string;
}

/** Why a host process ended. */
export interface HostExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the host was killed by Thaw itself (timeout, delete), not by a crash. */
  killedBy: string | null;
  /** Set when the cgroup recorded an out-of-memory kill. */
  oomKilled: boolean;
  /** What the host reported before exiting on an uncaught error. */
  fatal: string | null;
}

export type LogSink = (sandboxId: string, stream: 'stdout' | 'stderr', text: string) => void;

/** How to start a host: jailed (the normal case: root daemon) or as a plain child process. */
export interface HostLaunch {
  readonly onLog: LogSink;
  readonly cgroupParent: string | null;
  /** The jail to start the host in (see jail.ts), or null to run it unjailed (the daemon says why). */
  readonly jail: (Omit<JailPlan, 'cgroupProcs'> & { readonly env: Readonly<Record<string, string>> }) | null;
}

// The host gets a bounded JS heap; guest memory (Wasm) lives outside it and is bounded by the
// sandbox memory limit and, where the machine has one, a memory cgroup.
const HOST_EXEC_ARGV = ['--max-old-space-size=512', '--disable-warning=ExperimentalWarning', '--no-wasm-lazy-compilation'];

export class HostProcess {
  readonly child: ChildProcess;
  readonly ready: Promise<void>;
  readonly exited: Promise<HostExit>;
  readonly cgroup: MemoryCgroup | null;
  private readonly jailed: boolean;
  private nextReqId = 1;
  private readonly pending = new Map<number, Pending>();
  private killReason: string | null = null;
  private fatalMessage: string | null = null;
  private exitInfo: HostExit | null = null;
  /** Host clock minus daemon clock (ms), from calibrate(); 0 until then. */
  private clockOffset = 0;
  /** Half the round trip of the calibration's best exchange: the offset's error bound (ms). */
  clockErrorMs = Infinity;
  /** The daemon's end of the host's image channel (sealed snapshot images go over it), or -1 once closed. */
  private imageChannel: number;

  constructor(launch: HostLaunch) {
    const { onLog, cgroupParent, jail } = launch;
    this.jailed = jail !== null;
    // Settings a host needs from the daemon travel as arguments: its environment is empty.
    const hostArgs = jail ? [`--uffd-device-fd=${UFFD_DEVICE_FD}`, `--scratch=${jail.scratchDir}`] : [];
    for (const [k, v] of Object.entries(jail?.env ?? {})) hostArgs.push(`--env=${k}=${v}`);
    // A socketpair for sealed snapshot images (SCM_RIGHTS; Node's IPC passes only sockets): the
    // host's end at IMAGE_CHANNEL_FD, which the jailer leaves open.
    const [daemonEnd, hostEnd] = sealedChannel();
    this.imageChannel = daemonEnd;
    hostArgs.push(`--image-channel-fd=${IMAGE_CHANNEL_FD}`);
    const stdio = ['ignore', 'inherit', 'inherit', 'ipc', 'ignore', hostEnd] as const;
    try {
      if (jail) {
        // The cgroup exists before the host does: the jailer joins it before anything else runs.
        this.cgroup = cgroupParent ? MemoryCgroup.create(cgroupParent, `host-${jail.uid}-${Date.now().toString(36)}`, null) : null;
        const cmd = jailerCommand({ ...jail, cgroupProcs: this.cgroup?.procsFile ?? null }, [process.execPath, ...HOST_EXEC_ARGV, HOST_MAIN, ...hostArgs]);
        this.child = spawn(cmd.file, cmd.args, { serialization: 'advanced', stdio: [...stdio], env: {} });
      } else {
        this.child = fork(HOST_MAIN, hostArgs, { serialization: 'advanced', stdio: [...stdio], execArgv: HOST_EXEC_ARGV, env: {} });
        this.cgroup = cgroupParent && this.child.pid ? MemoryCgroup.create(cgroupParent, `host-${this.child.pid}`, this.child.pid) : null;
      }
    } finally {
      closeSync(hostEnd);
    }
    let markReady: () => void = () => {};
    let failReady: (e: ThawError) => void = () => {};
    this.ready = new Promise<void>((res, rej) => {
      markReady = res;
      failReady = rej;
    });
    this.ready.catch(() => {});
    this.child.on('message', (msg: HostMessage) => {
      if (msg.kind === 'ready') markReady();
      else if (msg.kind === 'log') onLog(msg.sandboxId, msg.stream, msg.text);
      else if (msg.kind === 'fatal') this.fatalMessage = msg.message;
      else this.settle(msg);
    });
    this.exited = new Promise<HostExit>((resolve) => {
      this.child.on('exit', (code, signal) => {
        const info: HostExit = { code, signal, killedBy: this.killReason, oomKilled: this.cgroup?.oomKilled() ?? false, fatal: this.fatalMessage };
        this.exitInfo = info;
        this.cgroup?.remove();
        if (this.imageChannel >= 0) closeSync(this.imageChannel);
        this.imageChannel = -1;
        const err = new ThawError('THAW_SANDBOX_DIED', { id: `host-${this.child.pid}`, detail: describeExit(info) });
        failReady(err);
        for (const [id, p] of this.pending) {
          this.pending.delete(id);
          if (p.timer) clearTimeout(p.timer);
          // Only the request whose deadline passed failed by timeout; others die with the host.
          p.reject(p.timedOut && p.onTimeout ? p.onTimeout() : this.killReason === 'timeout' ? new ThawError('THAW_SANDBOX_DIED', { id: `host-${this.child.pid}`, detail: 'killed by Thaw (another request to the same host ran past its timeout)' }) : err);
        }
        resolve(info);
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get alive(): boolean {
    return this.exitInfo === null;
  }

  get exit(): HostExit | null {
    return this.exitInfo;
  }

  /** Why Thaw killed (or is killing) the host, or null while Thaw has not: then a death is the host's own. */
  get killedBy(): string | null {
    return this.killReason;
  }

  /** Sends one request and resolves with its result (see requestTimed). */
  async request<T>(req: HostRequest, opts: RequestOptions = {}): Promise<T> {
    return (await this.requestTimed<T>(req, opts)).result;
  }

  /**
   * Sends one request; resolves with its result and when it crossed each way. With `timeoutMs`,
   * the host is killed when the reply is late and the request fails with `onTimeout()`.
   */
  requestTimed<T>(req: HostRequest, opts: RequestOptions = {}): Promise<Timed<T>> {
    if (!this.alive) return Promise.reject(new ThawError('THAW_SANDBOX_DIED', { id: `host-${this.pid}`, detail: describeExit(this.exitInfo!) }));
    const reqId = this.nextReqId++;
    return new Promise<Timed<T>>((resolve, reject) => {
      const p: Pending = { resolve: resolve as (v: Timed<unknown>) => void, reject, timer: undefined, onTimeout: opts.onTimeout, sentAt: performance.now(), timedOut: false };
      this.pending.set(reqId, p);
      const { timeoutMs } = opts;
      if (timeoutMs !== undefined) {
        const arm = (): void => {
          if (!this.pending.has(reqId)) return;
          p.timer = setTimeout(() => {
            // Already being killed (another request's deadline): this one dies with the host.
            if (this.killReason !== null) return;
            p.timedOut = true;
            void this.kill('timeout');
          }, timeoutMs);
        };
        if (opts.timeoutAfter) opts.timeoutAfter.then(arm, () => {});
        else arm();
      }
      const env: HostEnvelope = opts.traceparent === undefined ? { reqId, req } : { reqId, req, traceparent: opts.traceparent };
      if (this.outbox.length === 0) queueMicrotask(() => this.flushOutbox());
      this.outbox.push(env);
    });
  }

  /** Requests made since the last microtask checkpoint, not written yet (see flushOutbox). */
  private outbox: HostEnvelope[] = [];

  /**
   * Writes the requests made in one run of code as one message (a restore and the invoke pipelined
   * behind it: one write, one wake-up of the host, instead of two). A failed write fails them all.
   */
  private flushOutbox(): void {
    const batch = this.outbox;
    this.outbox = [];
    const msg: HostEnvelopes = batch.length === 1 ? batch[0]! : batch;
    this.child.send(msg, (err) => {
      if (!err) return;
      for (const { reqId } of batch) {
        const p = this.pending.get(reqId);
        if (!p || !this.pending.delete(reqId)) continue;
        if (p.timer) clearTimeout(p.timer);
        p.reject(new ThawError('THAW_SANDBOX_DIED', { id: `host-${this.pid}`, detail: `cannot send request: ${err.message}` }));
      }
    });
  }

  /**
   * Relates the host's monotonic clock to the daemon's by a few exchanges (the one with the
   * shortest round trip wins, as NTP does): host times are then converted by this difference,
   * never compared raw. Run once, off the invocation path, when the host starts.
   */
  async calibrate(exchanges = 3): Promise<void> {
    for (let i = 0; i < exchanges; i++) {
      const t0 = performance.now();
      const { now } = await this.request<{ now: number }>({ op: 'clock' });
      const t1 = performance.now();
      const err = (t1 - t0) / 2;
      if (err < this.clockErrorMs) {
        this.clockErrorMs = err;
        this.clockOffset = now - (t0 + t1) / 2;
      }
    }
  }

  /** A host clock reading as the daemon's clock. */
  toDaemonClock(hostMs: number): number {
    return hostMs - this.clockOffset;
  }

  /** Sandbox `sandboxId`'s pages by life stage (see memory/host-memory.ts). */
  memoryStages(sandboxId: string): Promise<MemoryStagesResult> {
    return this.request<MemoryStagesResult>({ op: 'memoryStages', sandboxId }, { timeoutMs: 30_000 });
  }

  /**
   * Moves cold pages of sandbox `sandboxId` to a tier (memorySocket: the daemon's relay to the
   * memory server, for the remote tier). Throws THAW_OFFLOAD_UNAVAILABLE, THAW_MEMORY_SERVER_LOST.
   */
  offload(sandboxId: string, request: OffloadRequest, memorySocket: string | null = null): Promise<OffloadResult> {
    return this.request<OffloadResult>({ op: 'offload', sandboxId, request, memorySocket }, { timeoutMs: 60_000 });
  }

  /** Brings back in bulk the offloaded pages sandbox `sandboxId`'s requests use. Throws THAW_MEMORY_SERVER_LOST. */
  prefetch(sandboxId: string): Promise<PrefetchResult> {
    return this.request<PrefetchResult>({ op: 'prefetch', sandboxId }, { timeoutMs: 60_000 });
  }

  /** Cumulative offload figures of sandbox `sandboxId` (zeros when it never offloaded) and its resident memory. */
  async offloadStats(sandboxId: string): Promise<SandboxOffloadFigures> {
    const st = await this.request<StatsResult>({ op: 'stats' }, { timeoutMs: 30_000 });
    const figures = st.offload[sandboxId];
    if (!figures) throw new ThawError('THAW_SANDBOX_NOT_FOUND', { id: sandboxId });
    return figures;
  }

  /**
   * Gives the host sealed snapshot image `fd` under `key` (sandbox/host/lifecycle.ts takes it
   * before its next request; a host that holds `key` already keeps its own and closes this one,
   * so sending on every restore costs a message, and a host that evicted an image gets it back).
   * Call it right before the request that uses the image: the channel's message is queued before
   * the request is. Throws THAW_INTERNAL when the channel is gone or full.
   */
  sendSealedImage(key: string, fd: number): void {
    if (this.imageChannel < 0) throw new ThawError('THAW_INTERNAL', { detail: `host ${this.pid} has no image channel (it has exited)` });
    sealedSend(this.imageChannel, key, fd);
  }

  /** Kills the host process; pending requests fail. Resolves when it has exited. */
  kill(reason: string): Promise<HostExit> {
    if (this.alive) {
      this.killReason ??= reason;
      // A jailer kills its host on SIGTERM and reaps it before exiting (SIGKILL would leave the
      // host to its parent-death signal and to init); SIGKILL follows if it has not exited soon.
      if (this.jailed) {
        this.child.kill('SIGTERM');
        setTimeout(() => this.alive && this.child.kill('SIGKILL'), 2000).unref();
      } else {
        this.child.kill('SIGKILL');
      }
    }
    return this.exited;
  }

  private settle(msg: Extract<HostMessage, { kind: 'reply' }>): void {
    const p = this.pending.get(msg.reqId);
    if (!p) return;
    this.pending.delete(msg.reqId);
    if (p.timer) clearTimeout(p.timer);
    if (msg.ok) {
      const at = msg.at;
      const host = { recv: this.toDaemonClock(at.recv), start: this.toDaemonClock(at.start), reply: this.toDaemonClock(at.reply) };
      p.resolve({ result: msg.result, sentAt: p.sentAt, receivedAt: performance.now(), host, spans: msg.spans ?? [] });
    } else {
      const err = ThawError.fromJSON(msg.error);
      if (msg.spans) spansOfFailures.set(err, msg.spans);
      p.reject(err);
    }
  }
}

/** What hosts recorded for traced requests that failed (the error reply's spans), by error. */
const spansOfFailures = new WeakMap<ThawError, readonly HostSpan[]>();

/** The spans the host recorded for a traced request that failed with `err` (none for other errors). */
export function spansOfFailure(err: unknown): readonly HostSpan[] {
  return err instanceof ThawError ? (spansOfFailures.get(err) ?? []) : [];
}

function describeExit(info: HostExit): string {
  if (info.oomKilled) return 'killed by the memory cgroup (out of memory)';
  if (info.code === JAIL_FAILED_EXIT && !info.killedBy) return 'the host\'s jail could not be set up (thaw-jailer said why on the daemon\'s stderr)';
  if (info.killedBy) return `killed by Thaw (${info.killedBy})`;
  if (info.fatal) return `the host failed: ${info.fatal}`;
  if (info.signal) return `host process killed by ${info.signal}`;
  return `host process exited with code ${info.code}`;
}
