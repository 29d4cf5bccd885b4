// The platform core: deploys functions, runs sandboxes in host processes from the pool,
// takes and restores snapshots, and serves cold, warm and snapshot invocations with a timing
// breakdown. The daemon and the in-process CLI both drive this class through ThawApi.

import { createHash, randomUUID } from 'node:crypto';
import { closeSync, existsSync, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { ThawError, toThawError, type ErrorCode } from '../core/errors.js';
import { MEMORY_FILE, readState, diskUsageBytes, sweepSnapshotTemps, writeFileDurable } from '../snapshot/snapshot-io.js';
import { ensureSnapshotKey, sealArtefacts, sealState } from '../snapshot/snapshot-seal.js';
import { SealChecks } from '../snapshot/seal-cache.js';
import { PAGE_BYTES, type PageRun, type SnapshotMeta } from '../core/snapshot-format.js';
import { pagesIn } from '../restore/working-set.js';
import { HostPool } from '../sandbox/host-pool.js';
import { HostProcess, spansOfFailure, type RequestOptions, type Timed } from '../sandbox/host-process.js';
import { removeCgroupParent, setUpCgroupParent } from '../sandbox/cgroup.js';
import { RECORDING_OUTBOX, SANDBOX_GID, grantToFunction, jailAvailability, readPlainFile, secureDataDir } from '../sandbox/jail.js';
import { RECORDED_FILES } from '../restore/recording-outbox.js';
import type { JailMode } from '../core/config.js';
import type { SandboxMemory } from '../memory/types.js';
import { declaredOnly } from '../memory/accounting.js';
import type { BootResult, HostRequest, InvokeResult as HostInvokeResult, RestoreResult, SnapshotResult } from '../sandbox/protocol.js';
import type { FunctionParams, HostLayout } from '../core/function-spec.js';
import { FirecrackerHost } from '../firecracker/host.js';
import { FIRECRACKER_DEFAULT_STRATEGY, checkStrategy as checkPageServerStrategy } from '../firecracker/page-server.js';
import { getStrategy, listStrategies, listArtefacts, discardArtefacts, grantTmpfsCopy, sweepOrphanTmpfs, AUTO_STRATEGY, DEFAULT_STRATEGY } from '../restore/index.js';
import { SEALED_BUDGET_BYTES, heldSealedImage, sealed, sealedKey } from '../restore/strategies/sealed.js';
import { AutoStrategy, imageFacts, sealAheadWanted, type AutoChoice, type SnapshotFacts } from '../restore/auto-strategy.js';
import { StrategyPreparer, type PrepareOutcome } from './strategy-preparer.js';
import { FunctionLogs, LogRateLimiter, type LogEntry } from './function-logs.js';
import { Breakdown } from './breakdown.js';
import { startRedisRelay, type RedisRelay } from './redis-relay.js';
import { policySandboxOf, type ReportingSandbox } from '../memory/policy-sandbox.js';
import { startMemoryServer, type MemoryServer } from '../memory/remote-server.js';
import { setUpZramSwap, type ZramSwap } from '../memory/zram-swap.js';

import type { ObjectStore, ObjectStoreConfig } from '../store/object-store.js';
import { openObjectStore } from '../store/open-store.js';
import { FunctionRegistry, type StoredFunction } from './function-registry.js';
import type {
  DoctorReport, FunctionInfo, InvokeRequest, InvokeResult, InvokeTimings, SandboxInfo, SnapshotInfo, SnapshotRequest, StrategyInfo, ThawApi, SnapshotVerifyReport,
} from './types.js';
import { INVOKE_MODES } from './types.js';
import type { SchedulerReport, SchedulerChange, StartKind } from './types.js';
import { KeepAliveScheduler } from './scheduler.js';
import { endSpan, type InvocationTrace, type PlatformTracing } from './tracing.js';

/** Validated platform settings. */
export interface PlatformParams {
  readonly dataDir: string;
  readonly objectStore: ObjectStoreConfig;
  readonly spareHosts: number;
  readonly preparedPerFunction: number;
  readonly hostOverheadMiB: number;
  /** Idle sandboxes kept for warm invocations; the least recently used beyond this are stopped. */
  readonly maxIdleSandboxes: number;
  /** Live sandboxes at most (each is a host process); past it idle ones are evicted, else 503. */
  readonly maxSandboxes: number;
  /** Put each host in a memory cgroup where the machine has one. */
  readonly useCgroups: boolean;
  /** Scrub every snapshot this often (0: only on demand, `thaw snapshots verify`). */
  readonly scrubIntervalMs: number;
  /** Jail sandbox hosts: where possible ("auto"), always ("required": refuse to start otherwise), never. */
  readonly jail: JailMode;
  readonly preparedIdleMs: number;
  readonly maxPreparedFunctions: number;
  /** Host processes starting at once, at most; more starts queue (see HostPool). */
  readonly maxHostStarts: number;
  /** Placement of sandboxes in hosts for functions whose manifest does not choose (see FunctionConfig.layout). */
  readonly layout: HostLayout;
  /** Instances per vertical host for functions whose manifest does not choose. */
  readonly instancesPerHost: number;
  /** Idle sandboxes expire after this many seconds (see scheduler.ts). */
  readonly keepAliveS: number;
  /** The memory policy the keep-alive scheduler calls (see scheduler.ts). */
  readonly memoryPolicy: string;
  readonly logger: Logger;
}

/**
 * A host process of one function deployment and the instances it carries: one (horizontal) or
 * up to `capacity` (vertical, sharing the compiled module). A vertical host outlives its
 * instances, so the next instance starts in a process whose code V8 has already optimised.
 */
/** Capacity (uncompressed) of the zram swap device tmo:compressed sets up. */
const ZRAM_SWAP_BYTES = 2 * 1024 ** 3;

/** What carries a sandbox: a host process from the pool, or a Firecracker microVM (firecracker/host.ts). */
type SandboxCarrier = HostProcess | FirecrackerHost;

interface SandboxHost {
  readonly host: SandboxCarrier;
  readonly fn: string;
  readonly deployment: string;
  readonly layout: HostLayout;
  readonly capacity: number;
  /** The jailed host's scratch directory (where it writes snapshots), or null unjailed. */
  readonly scratchDir: string | null;
  readonly instances: Set<Sandbox>;
  /** Slots promised to starts that waited for this host while the pool handed it over. */
  reserved: number;
  /** The instances it carried when it died (their errors name each other). */
  lost: readonly string[];
  /** When its last instance went (ms since the epoch), for retiring idle empty hosts. */
  emptySince: number;
  /**
   * Taken from the pool running (not started for the start that took it; HostPool's
   * AcquiredHost.pooled) and no start answered in it yet: it may have died unseen before its first.
   */
  pooled: boolean;
  /** Instances being destroyed in it now: an empty host is not retired under them. */
  destroying: number;
  /** Being killed (it stays alive until it exits): no new instance is placed in it. */
  retiring: boolean;
}

/** A vertical host being taken from the pool, and the starts that will take its other slots. */
interface IncomingHost {
  readonly home: Promise<SandboxHost>;
  readonly capacity: number;
  reserved: number;
}

/** Whether hosts are jailed, and if not, why (what `thaw doctor` reports first). */
export type JailState = { readonly jailed: true } | { readonly jailed: false; readonly reason: string };

interface Sandbox {
  readonly id: string;
  readonly fn: string;
  /** The function deployment the sandbox runs (see FunctionRegistry): never another's. */
  readonly deployment: string;
  readonly host: SandboxCarrier;
  /** The host and its instances: a sandbox is (host, instance). */
  readonly home: SandboxHost;
  /** This sandbox's instance slot in its host (0 .. capacity - 1). */
  readonly instance: number;
  /** The jailed host's scratch directory (where it writes snapshots), or null unjailed. */
  readonly scratchDir: string | null;
  readonly origin: SandboxInfo['origin'];
  readonly createdAt: string;
  busy: boolean;
  invocations: number;
  memoryBytes: number;
  /** Declared, granted and resident memory as the host measured it after the last boot, restore or invocation. */
  memory: SandboxMemory;
  lastUsed: number;
}

/**
 * How long a warm invocation waits for one of its function's busy sandboxes to become idle
 * before it is refused with 429 (THAW_FUNCTION_BUSY). Short: a client that can wait longer
 * retries after Retry-After, and a request never queues behind a slow handler for long.
 */
const WARM_WAIT_MS = 1000;

/** How long a vertical host may take to destroy one instance before it is stopped whole. */
const DESTROY_TIMEOUT_MS = 10_000;

/**
 * Errors after which the host process cannot be trusted or is gone: every instance in it goes.
 * Other failures stop one instance; in a vertical host its siblings keep serving (separate Wasm
 * memories and runtime state).
 */
const FATAL_TO_HOST = new Set<ErrorCode>(['THAW_TIMEOUT', 'THAW_SANDBOX_DIED', 'THAW_INTERNAL']);

/** Errors after which a sandbox's state cannot be trusted: it is stopped and replaced. */
const FATAL_TO_SANDBOX = new Set<ErrorCode>([
  'THAW_GUEST_TRAP', 'THAW_GUEST_OOM', 'THAW_TIMEOUT', 'THAW_SANDBOX_DIED', 'THAW_INTERNAL',
  // A WASI guest is stopped mid-handler at the write past the limit: its stack is not unwound.
  'THAW_OUTPUT_TOO_LARGE',
  // Offloaded pages could not be fetched back: its memory is fenced (memory/host-memory.ts).
  'THAW_MEMORY_SERVER_LOST',
]);

/** Whether this process has swept orphaned tmpfs copies and pools (once, at the first platform). */
let tmpfsSwept = false;

export class Platform implements ThawApi {
  readonly functions: FunctionRegistry;
  private readonly snapshotRoot: string;
  private readonly pool: HostPool;
  private readonly sandboxes = new Map<string, Sandbox>();
  /** Every host carrying (or, vertical, kept for) a function's instances. */
  private readonly hosts = new Set<SandboxHost>();
  /** Vertical hosts being taken from the pool, by deployment: concurrent starts share one. */
  private readonly incoming = new Map<string, IncomingHost>();
  /** Sandboxes being booted or restored, not yet in `sandboxes`: they count against the cap. */
  private starting = 0;
  /** Start failures whose host came from the pool and died on its own (diedInPool): retried once in a new host. */
  private readonly pooledDeaths = new WeakSet<ThawError>();
  private readonly log: Logger;
  private readonly preparer: StrategyPreparer;
  /** prepareSealed calls running per snapshot (from the first prepare until its artefacts are sealed). */
  private readonly preparing = new Map<string, number>();
  /** Sealed images being made for new snapshots (sealAhead); poolSettled waits for them. */
  private readonly sealingAhead = new Set<Promise<void>>();
  /** The key snapshots are sealed with (snapshot-seal.ts); only the daemon reads it. */
  private readonly snapshotKey: Buffer;
  /** What the seal checks proved, kept while the files checked are unchanged (seal-cache.ts). */
  private readonly seals: SealChecks;
  private objects: Promise<ObjectStore> | undefined;
  /** Warm invocations waiting for a sandbox to become idle or go away (see takeWarm). */
  private readonly idleWaiters = new Set<() => void>();
  /**
   * Snapshot metadata by id. Snapshots are immutable once written, so the daemon reads a state
   * file once; the sandbox host re-reads and verifies the files on every restore regardless.
   */
  private readonly snapshotMeta = new Map<string, { meta: SnapshotMeta; diskBytes: number; runs: readonly PageRun[] }>();
  private readonly autoStrategy = new AutoStrategy();
  private readonly logs = new FunctionLogs();
  private readonly logRate = new LogRateLimiter();
  readonly jail: JailState;
  private readonly cgroupState: string;
  private cgroupParent: string | null = null;
  private redisRelay: RedisRelay | null = null;
  private memoryTracking = false;
  /** Invocation tracing (see tracing.ts), or null: nothing traced. */
  private tracing: PlatformTracing | null = null;
  /** The remote tier's memory server in use, and every one started (by latency): earlier ones keep serving their sandboxes until close. */
  private memoryServer: MemoryServer | null = null;
  /** The zram swap device of tmo:compressed, while that setting is configured. */
  private zramSwap: ZramSwap | null = null;
  private readonly memoryServers = new Map<number, MemoryServer>();
  /** Snapshots the last scrub found corrupt, with what it found: refused until scrubbed whole. */
  private readonly scrubFailures = new Map<string, string>();
  private scrubbing = false;
  private scrubTimer: NodeJS.Timeout | undefined;
  private idleHostTimer: NodeJS.Timeout | undefined;
  /** The time scale last passed to the pool (the scheduler's). */
  private poolTimeScale = 1;
  /** Where auto invocations start, keep-alive expiry and the memory policy's calls. */
  private readonly keepAlive: KeepAliveScheduler<Sandbox>;

  constructor(private readonly params: PlatformParams) {
    this.log = params.logger;
    if (!tmpfsSwept) {
      // The dram copies and pass pools of deleted data directories would hold RAM for good.
      tmpfsSwept = true;
      const removed = sweepOrphanTmpfs();
      if (removed.length > 0) this.log.info({ removed: removed.length }, 'removed the tmpfs copies and pools of data directories that no longer exist');
    }
    this.keepAlive = new KeepAliveScheduler<Sandbox>({
      sandboxes: () => this.sandboxes.values(),
      deployment: (fn) => this.functions.get(fn).deployment,
      hasSnapshot: (fn) => this.readableSnapshots().some((s) => s.function === fn && s.current && !this.scrubFailures.has(s.id)),
      stop: (s, reason) => this.stop(s, reason),
      release: (s) => this.release(s),
      policySandbox: (s) => policySandboxOf(s.host, s.id, s.fn, this.memoryServer?.socketPath ?? null),
      log: params.logger,
    }, { keepAliveS: params.keepAliveS, policy: params.memoryPolicy });
    this.memoryTracking = this.keepAlive.needsStages;
    mkdirSync(params.dataDir, { recursive: true });
    this.functions = new FunctionRegistry(params.dataDir);
    this.snapshotRoot = join(params.dataDir, 'snapshots');
    mkdirSync(this.snapshotRoot, { recursive: true });
    sweepSnapshotTemps(this.snapshotRoot); // half-written snapshots of writers that died
    this.snapshotKey = ensureSnapshotKey(params.dataDir);
    this.seals = new SealChecks(this.snapshotRoot, this.snapshotKey);
    this.jail = resolveJail(params.jail);
    if (!this.jail.jailed) {
      if (params.jail === 'required') throw new ThawError('THAW_CONFIG_INVALID', { detail: `jail is required but unavailable: ${this.jail.reason}` });
      if (params.jail === 'auto') this.log.warn({ reason: this.jail.reason }, 'sandbox hosts run UNJAILED: a function can do whatever the daemon\'s user can');
    } else {
      secureDataDir(params.dataDir, params.objectStore);
      // Jailed hosts have no network: they reach a Redis object store through the daemon.
      if (params.objectStore.kind === 'redis') {
        this.redisRelay = startRedisRelay(join(params.dataDir, 'run', 'redis.sock'), params.objectStore.url, SANDBOX_GID);
        this.redisRelay.ready.catch((err: unknown) => this.log.error({ err: toThawError(err).message }, 'the Redis relay for sandbox hosts cannot listen: guests will get object-store errors'));
      }
      for (const fn of this.functions.list()) this.grantFunction(fn.name);
      for (const id of readdirSync(this.snapshotRoot)) if (!id.startsWith('.')) this.grantSnapshot(id);
    }
    this.preparer = new StrategyPreparer(this.snapshotRoot);
    let cgroupParent: string | null = null;
    this.cgroupState = 'off (--no-cgroups)';
    if (params.useCgroups) {
      // One parent per data directory: daemons with different data directories stay apart.
      const cg = setUpCgroupParent(`thaw-${createHash('sha256').update(params.dataDir).digest('hex').slice(0, 12)}`);
      if ('path' in cg) cgroupParent = cg.path;
      else this.log.warn({ reason: cg.unavailable }, 'memory cgroups unavailable: sandbox memory is bounded by the Wasm memory limit only');
      this.cgroupParent = cgroupParent;
      this.cgroupState = 'path' in cg ? `one per host under ${cg.path}` : `unavailable: ${cg.unavailable}`;
    }
    this.pool = new HostPool({
      spareHosts: params.spareHosts,
      preparedPerFunction: params.preparedPerFunction,
      hostOverheadMiB: params.hostOverheadMiB,
      objectStore: params.objectStore,
      cgroupParent,
      onLog: (sandboxId, stream, text) => this.hostLog(sandboxId, stream, text),
      jail: this.jail.jailed ? { dataDir: params.dataDir, env: hostEnv(), redisSocket: this.redisRelay?.socketPath ?? null } : null,
      preparedIdleMs: params.preparedIdleMs,
      sealedImagesFor: (fn) => this.sealedImagesOf(fn.params.name),
      maxPreparedFunctions: params.maxPreparedFunctions,
      maxHostStarts: params.maxHostStarts,
    });
    this.pool.start();
    if (params.scrubIntervalMs > 0) {
      this.scrubTimer = setInterval(() => void this.scrubAll(), params.scrubIntervalMs);
      this.scrubTimer.unref();
    }
    this.restartIdleHostTimer();
  }

  /** Empty vertical hosts of functions unused for preparedIdleMs (scaled as the pool's) retire, as prepared hosts do. */
  private restartIdleHostTimer(): void {
    clearInterval(this.idleHostTimer);
    this.idleHostTimer = setInterval(() => this.retireEmptyHosts(), Math.max(10, Math.min(this.pool.preparedIdleMs, 60_000)));
    this.idleHostTimer.unref();
  }

  // ---- functions -------------------------------------------------------------------------

  async deployFunction(manifest: unknown, artefact: Uint8Array): Promise<FunctionInfo> {
    const { info, replaced } = await this.functions.deploy(manifest, artefact);
    if (this.jail.jailed) this.grantFunction(info.name);
    const deployment = this.functions.get(info.name).deployment;
    if (replaced && replaced.deployment !== deployment) {
      // The old deployment's hosts and idle sandboxes go now; busy ones when their call ends.
      this.pool.forget(replaced.deployment, 'function redeployed');
      await Promise.all([...this.sandboxes.values()].filter((s) => s.fn === info.name && !s.busy).map((s) => this.stop(s, 'function redeployed')));
      this.retireEmptyHosts();
    }
    this.log.info({ function: info.name, digest: info.digest.slice(0, 12), replaced: replaced !== undefined }, 'function deployed');
    return info;
  }

  async listFunctions(): Promise<FunctionInfo[]> {
    return this.functions.list();
  }

  async getFunction(name: string): Promise<FunctionInfo> {
    return this.functions.info(name);
  }

  async deleteFunction(name: string): Promise<void> {
    const fn = this.functions.delete(name);
    this.pool.forget(fn.deployment);
    await Promise.all([...this.sandboxes.values()].filter((s) => s.fn === name).map((s) => this.stop(s, 'function deleted')));
    this.retireEmptyHosts();
    this.logs.forget(name);
    this.log.info({ function: name }, 'function deleted');
  }

  async functionLogs(name: string, opts: { afterSeq?: number; limit?: number } = {}): Promise<LogEntry[]> {
    this.functions.get(name);
    return this.logs.read(name, opts.afterSeq, opts.limit);
  }

  async followLogs(name: string, afterSeq: number | undefined, onEntry: (e: LogEntry) => void, signal: AbortSignal): Promise<void> {
    this.functions.get(name);
    if (afterSeq !== undefined) for (const e of this.logs.read(name, afterSeq)) onEntry(e);
    this.logs.follow(name, onEntry, signal);
    if (!signal.aborted) await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
  }

  // ---- sandboxes -------------------------------------------------------------------------

  async bootSandbox(fnName: string): Promise<SandboxInfo & { timings: InvokeTimings }> {
    const bd = new Breakdown();
    const { sandbox, begun } = await this.startOnce(() => this.bootCold(fnName, bd)).finally(() => setImmediate(() => this.pool.refill()));
    bd.addHostExchange([begun]);
    this.release(sandbox);
    return { ...this.sandboxInfo(sandbox), timings: bd.finish() };
  }

  /**
   * Whether sandboxes booted or restored from now on track their page life stages (issue 11:
   * write-protect tracking costs every request a fault per page it first writes, and a scan;
   * off by default, on when a memory policy uses stages). Offloading works either way.
   */
  setMemoryTracking(on: boolean): void {
    this.memoryTracking = on;
  }

  /**
   * Traces invocations from now on (see tracing.ts: the daemon's steps and the spans sandbox hosts
   * record, exported or handed to a sink), or stops with null. The caller closes it.
   */
  setTracing(tracing: PlatformTracing | null): void {
    this.tracing = tracing;
  }

  /**
   * Starts the remote tier's memory server (memory/remote-server.ts: its own process and network
   * namespace, TCP behind a Unix socket in <data>/run that jailed hosts may connect to), adding
   * `latencyUs` to each page fetched back, and makes it the one sandboxes attach to from now on.
   * A server started earlier with another latency keeps serving the sandboxes whose pages it
   * holds (switching never loses a page); all are stopped by close().
   */
  async startMemoryServer(latencyUs: number): Promise<MemoryServer> {
    let server = this.memoryServers.get(latencyUs);
    if (!server) {
      mkdirSync(join(this.params.dataDir, 'run'), { recursive: true });
      server = await startMemoryServer({ socketPath: join(this.params.dataDir, 'run', `memory-${latencyUs}us.sock`), gid: SANDBOX_GID, latencyUs });
      this.memoryServers.set(latencyUs, server);
      this.log.info({ latencyUs, pid: server.pid, isolation: server.isolation }, 'memory server started for the remote offload tier');
    }
    this.memoryServer = server;
    return server;
  }

  /**
   * What the configured memory policy needs of the platform (issue 11): page life-stage tracking
   * for sandboxes started from now on, and the memory server when its tier is remote.
   */
  private async applyMemorySettings(): Promise<void> {
    if (this.keepAlive.needsStages !== this.memoryTracking) {
      this.setMemoryTracking(this.keepAlive.needsStages);
      this.log.info({ policy: this.keepAlive.report().policy, tracking: this.memoryTracking }, `page life-stage tracking ${this.memoryTracking ? 'on' : 'off'} for sandboxes started from now on`);
    }
    const latencyUs = this.keepAlive.remoteLatencyUs;
    if (latencyUs !== null) await this.startMemoryServer(latencyUs);
    if (this.keepAlive.wantsZramSwap && !this.zramSwap) {
      this.zramSwap = await setUpZramSwap(ZRAM_SWAP_BYTES);
      this.log.info({ device: this.zramSwap.device, bytes: ZRAM_SWAP_BYTES }, 'zram swap set up for tmo:compressed');
    } else if (!this.keepAlive.wantsZramSwap && this.zramSwap) {
      await this.removeZramSwap();
    }
  }

  /** Removes tmo:compressed's zram swap; when swapoff fails (a host at a lowered limit holds pages there) it stays, and the next configure or close() tries again. */
  private async removeZramSwap(): Promise<void> {
    const z = this.zramSwap;
    if (!z) return;
    try {
      await z.remove();
      this.zramSwap = null;
      this.log.info({ device: z.device }, 'zram swap removed');
    } catch (err: unknown) {
      this.log.warn({ device: z.device, err: err instanceof Error ? err.message : String(err) }, 'zram swap could not be removed yet (tried again at the next setting and at close)');
    }
  }

  /**
   * Sandbox `id` as a memory policy acts on it (issue 11: memory/policy-sandbox.ts); memorySocket:
   * the memory server's Unix socket for the remote tier (default: the one startMemoryServer started).
   */
  policySandbox(id: string, memorySocket: string | null = this.memoryServer?.socketPath ?? null): ReportingSandbox {
    const s = this.sandbox(id);
    return policySandboxOf(s.host, s.id, s.fn, memorySocket);
  }

  async listSandboxes(): Promise<SandboxInfo[]> {
    return [...this.sandboxes.values()].map((s) => this.sandboxInfo(s));
  }

  async deleteSandbox(id: string): Promise<void> {
    await this.stop(this.sandbox(id), 'deleted');
  }

  // ---- snapshots -------------------------------------------------------------------------

  async createSnapshot(req: SnapshotRequest): Promise<SnapshotInfo> {
    const sandbox = this.sandbox(req.sandboxId);
    if (sandbox.busy) throw new ThawError('THAW_SANDBOX_BUSY', { id: sandbox.id });
    const kind = req.kind ?? 'full';
    let baseId: string | null = null;
    if (kind === 'diff') {
      baseId = req.baseId ?? (sandbox.origin.kind === 'snapshot' ? sandbox.origin.snapshotId : null);
      if (!baseId) throw new ThawError('THAW_REQUEST_INVALID', { detail: `sandbox '${sandbox.id}' was booted cold: a diff snapshot needs baseId` });
      this.snapshotInfo(baseId);
    } else if (req.baseId !== undefined) {
      throw new ThawError('THAW_REQUEST_INVALID', { detail: 'baseId applies to diff snapshots only' });
    }
    const id = newId('snap');
    sandbox.busy = true;
    try {
      await this.keepAlive.settled(sandbox);
      const fn = this.functions.get(sandbox.fn);
      // A jailed host writes only into its scratch directory; the daemon moves the snapshot into place.
      const outDir = sandbox.scratchDir ?? this.snapshotRoot;
      const asked = { id, kind, baseId, createdAt: new Date().toISOString(), sourceSandboxId: sandbox.id };
      const res = await sandbox.host.request<SnapshotResult>(
        { op: 'snapshot', sandboxId: sandbox.id, snapshotRoot: this.snapshotRoot, outDir, meta: asked },
        { timeoutMs: fn.params.initTimeoutMs, onTimeout: () => initTimeout(fn.params, 'snapshot') },
      );
      if (outDir !== this.snapshotRoot) this.adoptSnapshot(join(outDir, id), id);
      // The host wrote it; the daemon checks it wrote what was asked and seals it with its key.
      try {
        sealState(this.snapshotRoot, this.snapshotKey, { ...asked, functionName: sandbox.fn, moduleDigest: fn.digest });
      } catch (err: unknown) {
        rmSync(join(this.snapshotRoot, id), { recursive: true, force: true });
        throw err;
      }
      if (this.jail.jailed) this.grantSnapshot(id);
      this.log.info({ snapshot: id, kind, sandboxId: sandbox.id, storedBytes: res.storedBytes, ms: res.timings.snapshotMs }, 'snapshot taken');
      this.sealAhead(id, fn);
      return this.snapshotInfo(id);
    } catch (err) {
      throw await this.afterFailure(sandbox, err);
    } finally {
      this.release(sandbox);
    }
  }

  async listSnapshots(fnName?: string): Promise<SnapshotInfo[]> {
    return this.readableSnapshots().filter((s) => !fnName || s.function === fnName);
  }

  async getSnapshot(id: string): Promise<SnapshotInfo> {
    const info = this.snapshotInfo(id);
    if (!info.current) return info;
    const choice = this.autoStrategy.choose(id, this.snapshotFacts(id));
    return { ...info, auto: { strategy: choice.strategy, reason: choice.reason } };
  }



  async deleteSnapshot(id: string): Promise<void> {
    this.snapshotInfo(id);
    const children = (await this.listSnapshots()).filter((s) => s.baseId === id).map((s) => s.id);
    if (children.length > 0) throw new ThawError('THAW_SNAPSHOT_IN_USE', { id, children: children.join(', ') });
    this.snapshotMeta.delete(id);
    this.seals.forget(id);
    this.preparer.forget(id);
    discardArtefacts(this.snapshotRoot, id);
    rmSync(join(this.snapshotRoot, id), { recursive: true, force: true });
  }

  async prepareSnapshot(id: string, strategyId: string): Promise<{ snapshotId: string; strategy: string; built: boolean; elapsedMs: number }> {
    this.snapshotInfo(id);
    getStrategy(strategyId);
    const report = await this.preparer.prepare(strategyId, id);
    return { snapshotId: id, strategy: strategyId, built: report.built, elapsedMs: report.elapsedMs };
  }

  async listStrategies(): Promise<StrategyInfo[]> {
    return listStrategies().map((s) => ({ id: s.id, description: s.description, available: s.support.ok, ...(!s.support.ok && { reason: s.support.reason }), verifies: s.verifies, verifiesHow: s.verifiesHow }));
  }

  async verifySnapshot(id: string): Promise<SnapshotVerifyReport> {
    this.snapshotInfo(id);
    const report = await this.preparer.scrub(id);
    // A snapshot a scrub found corrupt is not restored until a later scrub finds it whole.
    const bad = report.files.filter((f) => f.status === 'corrupt');
    if (bad.length > 0) {
      this.scrubFailures.set(id, bad.map((f) => `${f.file}: ${f.detail ?? 'corrupt'}`).join('; '));
      this.log.error({ snapshot: id, files: bad }, 'scrub found a corrupt snapshot: it will not be restored');
    } else {
      this.scrubFailures.delete(id);
    }
    return report;
  }

  /** Scrubs every snapshot, one after another (the periodic scrub; never two at once). */
  private async scrubAll(): Promise<void> {
    if (this.scrubbing) return;
    this.scrubbing = true;
    try {
      for (const snap of this.readableSnapshots()) {
        try {
          await this.verifySnapshot(snap.id);
        } catch (err: unknown) {
          this.log.warn({ snapshot: snap.id, err: toThawError(err).message }, 'scrub skipped a snapshot');
        }
      }
    } finally {
      this.scrubbing = false;
    }
  }

  async doctor(): Promise<DoctorReport> {
    const layers = await this.pool.probe();
    return {
      jailed: this.jail.jailed,
      ...(!this.jail.jailed && { reason: this.jail.reason }),
      layers,
      memoryCgroups: this.cgroupState,
    };
  }

  // ---- invocations -----------------------------------------------------------------------

  async invoke(req: InvokeRequest): Promise<InvokeResult> {
    const tr = this.tracing?.begin(`invoke ${req.function}`, { 'thaw.function': req.function, 'thaw.mode': req.mode }, req.traceparent) ?? null;
    try {
      const res = await this.invokeOnce(req, tr);
      tr?.end({
        'thaw.start': res.start, 'thaw.sandbox': res.sandboxId, 'thaw.total_ms': res.timings.totalMs,
        ...(res.snapshotId !== undefined && { 'thaw.snapshot': res.snapshotId }), ...(res.strategy !== undefined && { 'thaw.strategy': res.strategy }),
      });
      return tr ? { ...res, traceId: tr.traceId } : res;
    } catch (err: unknown) {
      tr?.end({ 'thaw.error': toThawError(err).code }, err);
      if (tr && err instanceof ThawError) err.traceId = tr.traceId;
      throw err;
    } finally {
      // Replace the hosts this invocation took once it has replied (see HostPool.refill).
      setImmediate(() => this.pool.refill());
    }
  }

  private async invokeOnce(req: InvokeRequest, trace: InvocationTrace | null): Promise<InvokeResult> {
    const bd = new Breakdown();
    bd.trace = trace;
    if (!INVOKE_MODES.includes(req.mode)) throw new ThawError('THAW_REQUEST_INVALID', { detail: `mode must be one of ${INVOKE_MODES.join(', ')}` });
    const fn = this.functions.get(req.function);
    if (req.input.length > fn.params.maxInputBytes) {
      throw new ThawError('THAW_INPUT_TOO_LARGE', { sizeBytes: req.input.length, limitBytes: fn.params.maxInputBytes, name: fn.params.name });
    }
    let sandbox: Sandbox;
    let strategy: string | undefined;
    let snapshotId: string | undefined;
    let restoreStats: RestoreResult['restore'] | undefined;
    let strategyReason: string | undefined;
    let facts: SnapshotFacts | undefined;
    // Cold and snapshot starts send the invocation right behind the boot or restore (see invokeIn),
    // unless the memory policy must see the sandbox between its init and its first request.
    // A failed boot or restore has stopped its sandbox already (bootCold, restore).
    let begun: Timed<BootResult | RestoreResult> | undefined;
    let invoking: Promise<Timed<HostInvokeResult>> | undefined;
    const pipeline = this.keepAlive.pipelinesStarts;
    const placed = req.mode === 'auto' && req.sandboxId === undefined && req.snapshotId === undefined ? this.keepAlive.place(fn.params.name) : undefined;
    const path: StartKind = placed?.kind ?? (req.mode === 'auto' ? (req.snapshotId !== undefined ? 'snapshot' : 'warm') : req.mode);
    let start: StartKind = path;
    switch (path) {
      case 'cold':
        ({ sandbox, begun, invoking } = await this.startOnce(() => this.bootCold(fn.params.name, bd, pipeline ? req.input : undefined)));
        break;
      case 'warm':
      case 'semi-warm': {
        const t = performance.now();
        if (placed && 'sandbox' in placed) {
          sandbox = placed.sandbox;
        } else {
          sandbox = await this.takeWarm(fn.params.name, req.sandboxId);
          this.keepAlive.claimedExplicitly(sandbox);
        }
        // Waits for a memory policy step still running on it (see scheduler.ts).
        start = await this.keepAlive.reuse(sandbox);
        bd.since('queueMs', t);
        break;
      }
      case 'snapshot': {
        snapshotId = req.snapshotId ?? this.newestSnapshot(fn.params.name);
        facts = this.snapshotFacts(snapshotId);
        strategy = req.strategy ?? DEFAULT_STRATEGY;
        if (strategy === AUTO_STRATEGY && fn.params.runtime === 'firecracker') {
          strategy = FIRECRACKER_DEFAULT_STRATEGY;
          strategyReason = 'a Firecracker microVM: its memory is served by the page server (auto picks among Wasm strategies only)';
        } else if (strategy === AUTO_STRATEGY) {
          ({ strategy, reason: strategyReason } = this.chooseStrategy(snapshotId, facts));
        }
        const [id, chosen] = [snapshotId, strategy];
        ({ sandbox, begun, invoking } = await this.startOnce(() => this.restore(fn.params.name, id, chosen, bd, pipeline ? req.input : undefined)));
        break;
      }
    }
    if (begun && 'restore' in begun.result) restoreStats = begun.result.restore;
    this.keepAlive.started(fn.params.name, start);
    try {
      if (start === 'cold' || start === 'snapshot') await this.keepAlive.afterInit(sandbox);
      let last: Timed<HostInvokeResult>;
      if (begun && invoking) {
        last = await invoking;
        bd.addHostExchange([begun, last]);
      } else {
        // Not pipelined (the memory policy saw the sandbox in between): two exchanges.
        if (begun) bd.addHostExchange([begun]);
        last = await this.invokeIn(sandbox, fn.params, req.input, undefined, trace);
        bd.addHostExchange([last]);
      }
      const res = last.result;
      sandbox.invocations++;
      sandbox.memoryBytes = res.memoryBytes;
      sandbox.memory = res.memory;
      sandbox.lastUsed = Date.now();
      // A sandbox of a deployment retired while it ran is not kept for the next call.
      const keep = (req.keep ?? true) && sandbox.deployment === this.functions.get(fn.params.name).deployment;
      if (keep) {
        // Releases it; the memory policy's afterRequest runs after the reply (see scheduler.ts).
        this.keepAlive.afterRequest(sandbox);
        this.evictIdle();
      }
      const timings = bd.finish();
      // Stopping a sandbox not kept is after this invocation, not part of its time (a vertical
      // host's destroy is sent now all the same, so that it reaches the host before any later
      // request to that host: a restore must not find the host full).
      if (!keep) void this.stop(sandbox, 'not kept');
      const result: InvokeResult = {
        function: fn.params.name,
        mode: req.mode,
        start,
        sandboxId: sandbox.id,
        hostPid: sandbox.host.pid,
        kept: keep,
        output: res.output,
        timings,
        memoryBytes: res.memoryBytes,
        memory: res.memory,
      };
      if (snapshotId !== undefined) result.snapshotId = snapshotId;
      if (strategy !== undefined) result.strategy = strategy;
      if (strategyReason !== undefined) result.strategyReason = strategyReason;
      // What auto learns from: every restore's time to first response, by cache state.
      if (snapshotId !== undefined && strategy !== undefined && facts !== undefined && result.timings.prepareMs === 0) {
        this.autoStrategy.record(snapshotId, strategy, facts.cachedFraction, result.timings.restoreMs + result.timings.handlerMs);
      }
      // The host's stats after the invocation are the complete ones (page servers report on stop).
      const stats = start === 'snapshot' ? (res.restore ?? restoreStats) : undefined;
      if (stats !== undefined) result.restore = stats;
      // A working set was just recorded: artefacts built from it (thaw's and sabre-reap's loading
      // sets) are then built by the next prepare, in the daemon's worker, not in a sandbox host.
      if (stats?.phase === 'record' && snapshotId !== undefined && strategy !== undefined) {
        if (sandbox.scratchDir) this.adoptRecorded(sandbox.scratchDir, snapshotId);
        this.sealRecorded(snapshotId);
        this.preparer.forget(snapshotId, strategy);
      }
      return result;
    } catch (err) {
      // keep=false asked for the sandbox to go after this invocation, whatever its outcome: a
      // guest error leaves the sandbox usable, but it must not stay behind for warm invocations.
      throw await this.afterFailure(sandbox, err, req.keep === false);
    }
  }

  async scheduler(): Promise<SchedulerReport> {
    const report = await this.keepAlive.reportWithMemory();
    return this.zramSwap ? { ...report, zram: this.zramSwap.figures() } : report;
  }

  async configureScheduler(req: SchedulerChange): Promise<SchedulerReport> {
    const { resetCounts, resetHistory, preparePool, ...settings } = req;
    const before = this.keepAlive.report();
    this.keepAlive.configure(settings);
    try {
      await this.applyMemorySettings();
    } catch (err: unknown) {
      // The memory server could not start: the previous setting stays.
      this.keepAlive.configure({ policy: before.policy, tier: before.tier, keepAliveS: before.keepAliveS, timeScale: before.timeScale, remoteLatencyUs: before.remoteLatencyUs });
      throw err;
    }
    if (resetCounts) this.keepAlive.resetCounts();
    if (resetHistory) this.keepAlive.resetHistory();
    // The pool's idle times follow the same time scale as the keep-alive (a replay at 720x); set
    // before preparing, or hosts prepared now would retire by the old scale's clock.
    const { timeScale } = this.keepAlive.report();
    if (timeScale !== this.poolTimeScale) {
      this.poolTimeScale = timeScale;
      this.pool.setTimeScale(timeScale);
      this.restartIdleHostTimer();
    }
    if (preparePool) {
      for (const info of this.functions.list()) {
        const fn = this.functions.get(info.name);
        if (fn.params.runtime !== 'firecracker') this.pool.want(this.functions.hostFunction(info.name), this.layoutOf(fn.params).capacity);
      }
      await this.pool.settled();
    }
    return this.keepAlive.report();
  }

  // ---- objects ---------------------------------------------------------------------------

  async putObject(key: string, value: Uint8Array): Promise<void> {
    await (await this.objectStore()).put(key, value);
  }

  async getObject(key: string): Promise<Uint8Array> {
    const store = await this.objectStore();
    const value = await store.get(key);
    if (value === undefined) throw new ThawError('THAW_OBJECT_NOT_FOUND', { key, store: store.kind });
    return value;
  }

  async deleteObject(key: string): Promise<void> {
    const store = await this.objectStore();
    if (!(await store.delete(key))) throw new ThawError('THAW_OBJECT_NOT_FOUND', { key, store: store.kind });
  }

  async listObjects(prefix?: string): Promise<string[]> {
    return (await this.objectStore()).list(prefix);
  }

  async close(): Promise<void> {
    clearInterval(this.scrubTimer);
    clearInterval(this.idleHostTimer);
    this.keepAlive.close();
    await this.preparer.close();
    await this.pool.close();
    // MicroVMs are not the pool's: each is a firecracker of its own (and its page server).
    await Promise.all([...this.hosts].filter((h) => h.host instanceof FirecrackerHost).map((h) => h.host.kill('platform closed')));
    await this.redisRelay?.close();
    await Promise.all([...this.memoryServers.values()].map((m) => m.kill()));
    this.sandboxes.clear();
    await this.removeZramSwap();
    if (this.cgroupParent) removeCgroupParent(this.cgroupParent);
    if (this.objects) await (await this.objects.catch(() => undefined))?.close();
  }

  /** The daemon's own connection to the object store, opened on first use. */
  private objectStore(): Promise<ObjectStore> {
    this.objects ??= openObjectStore(this.params.objectStore);
    this.objects.catch(() => (this.objects = undefined));
    return this.objects;
  }

  /**
   * Resolves when the host pool has refilled and the sealed images being made ahead of first
   * restores are made and offered (benchmarks wait for it between runs).
   */
  async poolSettled(): Promise<void> {
    await Promise.allSettled([...this.sealingAhead]);
    await this.pool.settled();
  }

  /** Pool counts, for the API's health endpoint. */
  poolState(): ReturnType<HostPool['describe']> {
    return this.pool.describe();
  }

  // ---- internals -------------------------------------------------------------------------

  /**
   * Boots a sandbox and runs its init, within the function's initTimeoutMs; with `input`, also
   * sends the invocation right behind (see invokeIn), whose result is `invoking`. `started`
   * fails when the boot does (the sandbox is stopped then); the caller awaits it first.
   */
  private async bootCold(fnName: string, bd: Breakdown, input?: Uint8Array): Promise<{ sandbox: Sandbox; started: Promise<Timed<BootResult>>; invoking?: Promise<Timed<HostInvokeResult>> }> {
    const fn = this.functions.get(fnName);
    const sandbox = await this.newSandbox(fnName, { kind: 'cold' }, bd);
    return this.startIn<BootResult>(sandbox, fn.params, { op: 'boot', sandboxId: sandbox.id, deployment: fn.deployment, init: true, trackMemory: this.memoryTracking }, 'boot and init', input, bd.trace);
  }

  /**
   * Sends a sandbox's boot or restore (within initTimeoutMs) and, with `input`, the invocation
   * right behind it (see invokeIn). A failed start stops the sandbox; `started` then fails.
   */
  private startIn<R extends BootResult | RestoreResult>(sandbox: Sandbox, fn: FunctionParams, req: HostRequest, phase: string, input: Uint8Array | undefined, trace: InvocationTrace | null): {
    sandbox: Sandbox; started: Promise<Timed<R>>; invoking?: Promise<Timed<HostInvokeResult>>;
  } {
    const starting = requestTraced<R>(sandbox, req, { timeoutMs: fn.initTimeoutMs, onTimeout: () => initTimeout(fn, phase) }, trace);
    const invoking = input && this.invokeIn(sandbox, fn, input, starting, trace);
    const started = starting.then((res) => {
      sandbox.memoryBytes = res.result.memoryBytes;
      sandbox.memory = res.result.memory;
      sandbox.home.pooled = false;
      return res;
    }, async (err: unknown) => {
      // Decided before afterFailure stops the host (Thaw's kill would then look like the cause).
      const pooledDeath = this.diedInPool(sandbox, err);
      const e = await this.afterFailure(sandbox, err, true);
      if (pooledDeath) this.pooledDeaths.add(e);
      throw e;
    });
    return invoking ? { sandbox, started, invoking } : { sandbox, started };
  }

  /** Restores a sandbox from a snapshot within initTimeoutMs; with `input`, also invokes it (as bootCold). */
  private async restore(fnName: string, snapshotId: string, strategyId: string, bd: Breakdown, input?: Uint8Array): Promise<{
    sandbox: Sandbox; started: Promise<Timed<RestoreResult>>; invoking?: Promise<Timed<HostInvokeResult>>;
  }> {
    const fn = this.functions.get(fnName);
    const microVm = fn.params.runtime === 'firecracker';
    if (microVm) checkPageServerStrategy(strategyId);
    else getStrategy(strategyId);
    // The state as read once (snapshotInfo would also list the artefacts: a readdir and stats).
    const snap = this.cachedSnapshot(snapshotId).meta;
    const scrubbed = this.scrubFailures.get(snapshotId);
    if (scrubbed !== undefined) {
      throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id: snapshotId, detail: `the last scrub found ${scrubbed} (thaw snapshots verify ${snapshotId} checks it again)` });
    }
    if (snap.functionName !== fnName) throw new ThawError('THAW_SNAPSHOT_VERSION', { id: snapshotId, detail: `it belongs to function '${snap.functionName}', not '${fnName}'` });
    if (snap.moduleDigest !== fn.digest) {
      throw new ThawError('THAW_SNAPSHOT_VERSION', { id: snapshotId, detail: `taken from module ${snap.moduleDigest.slice(0, 12)}, function '${fnName}' is now ${fn.digest.slice(0, 12)}` });
    }
    // Artefacts are built here, not in the sandbox host (see prepare-worker.ts); the first restore
    // of a snapshot with a strategy waits for it (prepareMs; when nothing was built, checkMs).
    // The seals of the whole chain, checked with the daemon's key (before anything is built from
    // it; again only when its files changed since); the host checks that the state files it
    // reads are these very bytes.
    const tCheck = performance.now();
    const stateSha256 = this.seals.chain(snapshotId);
    // A microVM's page server builds what its strategy needs itself (page-server.ts).
    const { prepared, artefactSha256 } = microVm ? { prepared: { built: false }, artefactSha256: {} } : await this.prepareSealed(strategyId, snapshotId);
    if (prepared.built && this.jail.jailed) this.grantSnapshot(snapshotId);
    const sealedImage = strategyId === sealed.id ? await this.sealedImageOf(snapshotId) : null;
    bd.since(prepared.built ? 'prepareMs' : 'checkMs', tCheck);
    const sandbox = await this.newSandbox(fnName, { kind: 'snapshot', snapshotId, strategy: strategyId }, bd);
    if (sealedImage !== null && sandbox.host instanceof HostProcess) sandbox.host.sendSealedImage(sealedKey(this.snapshotRoot, snapshotId), sealedImage);
    const req = { op: 'restore', sandboxId: sandbox.id, deployment: fn.deployment, snapshotRoot: this.snapshotRoot, snapshotId, strategy: strategyId, stateSha256, artefactSha256, trackMemory: this.memoryTracking } as const;
    return this.startIn<RestoreResult>(sandbox, fn.params, req, 'restore', input, bd.trace);
  }

  /**
   * Sends an invocation to the sandbox's host, which is killed when the handler runs past the
   * function's timeoutMs (THAW_TIMEOUT names that budget). With `after`, the boot or restore
   * request just sent to the same host, the invocation goes out at once, behind it: a fresh host
   * moves from one to the other without a round trip to the daemon (its first messages cost
   * milliseconds each), and the handler's deadline starts when `after` replies, so boot, init and
   * restore count against initTimeoutMs only. If `after` fails, the caller stops the host and
   * this invocation fails with it.
   */
  private invokeIn(sandbox: Sandbox, fn: FunctionParams, input: Uint8Array, after?: Promise<unknown>, trace: InvocationTrace | null = null): Promise<Timed<HostInvokeResult>> {
    const onTimeout = (): ThawError => new ThawError('THAW_TIMEOUT', { name: fn.name, timeoutMs: fn.timeoutMs });
    const invoking = requestTraced<HostInvokeResult>(sandbox, { op: 'invoke', sandboxId: sandbox.id, input }, { timeoutMs: fn.timeoutMs, onTimeout, ...(after && { timeoutAfter: after }) }, trace);
    // Awaited by the caller only when `after` succeeded; its failure is then the one reported.
    if (after) invoking.catch(() => {});
    return invoking;
  }

  /** Where sandboxes of `params` go: the manifest's layout, else the daemon's. */
  private layoutOf(params: FunctionParams): { layout: HostLayout; capacity: number } {
    // A manifest that names instancesPerHost asks for vertical hosts.
    const layout = params.layout ?? (params.instancesPerHost !== undefined ? 'vertical' : this.params.layout);
    return { layout, capacity: layout === 'horizontal' ? 1 : (params.instancesPerHost ?? this.params.instancesPerHost) };
  }

  /**
   * A new sandbox of `fnName`, within the live-sandbox cap (evicting idle ones first): an
   * instance slot in a vertical host of the deployment that has room, else a host from the pool
   * (acquireMs). The slot is taken before anything is awaited after the choice, so two starts
   * never share one.
   */
  private async newSandbox(fnName: string, origin: SandboxInfo['origin'], bd: Breakdown): Promise<Sandbox> {
    if (this.sandboxes.size + this.starting >= this.params.maxSandboxes) {
      const idle = [...this.sandboxes.values()].filter((s) => !s.busy).sort((a, b) => a.lastUsed - b.lastUsed)[0];
      if (!idle) {
        const { startsQueued } = this.pool.describe();
        throw new ThawError('THAW_POOL_EXHAUSTED', { detail: `${this.params.maxSandboxes} sandboxes are busy or starting (maxSandboxes; ${this.starting} of them waiting for a host, ${startsQueued} queued for a host start)` });
      }
      void this.stop(idle, 'evicted (sandbox cap)');
    }
    const fn = this.functions.get(fnName);
    if (fn.params.runtime === 'firecracker') return this.newMicroVm(fnName, origin, bd);
    const { layout, capacity } = this.layoutOf(fn.params);
    let home = this.roomyHost(fn.deployment);
    const incoming = home ? undefined : this.incoming.get(fn.deployment);
    if (!home && incoming && incoming.reserved < incoming.capacity) {
      // A host for this deployment is on its way: wait for it and take a slot promised there.
      incoming.reserved++;
      const t = performance.now();
      home = await incoming.home;
      bd.since('acquireMs', t);
    } else if (!home) {
      const t = performance.now();
      this.starting++;
      const taking = this.pool.acquire(this.functions.hostFunction(fnName), capacity).then((acquired) => {
        const h: SandboxHost = { host: acquired.host, fn: fnName, deployment: fn.deployment, layout, capacity, scratchDir: acquired.scratchDir, instances: new Set(), reserved: 0, lost: [], emptySince: Date.now(), pooled: acquired.pooled, destroying: 0, retiring: false };
        const waiting = this.incoming.get(fn.deployment);
        // The slots promised to starts waiting for it (this start's own included).
        if (waiting?.home === taking) h.reserved = waiting.reserved;
        else h.reserved = 1;
        this.adoptHost(h);
        return h;
      }).finally(() => {
        this.starting--;
        if (this.incoming.get(fn.deployment)?.home === taking) this.incoming.delete(fn.deployment);
      });
      if (capacity > 1) this.incoming.set(fn.deployment, { home: taking, capacity, reserved: 1 });
      home = await taking;
      bd.since('acquireMs', t);
    }
    if (home.reserved > 0) home.reserved--;
    return this.register(fnName, fn.deployment, home, origin);
  }

  /** A new sandbox of a Firecracker function: a fresh firecracker process of its own (acquireMs), never from the pool. */
  private async newMicroVm(fnName: string, origin: SandboxInfo['origin'], bd: Breakdown): Promise<Sandbox> {
    const fn = this.functions.get(fnName);
    const t = performance.now();
    this.starting++;
    let host: FirecrackerHost;
    try {
      host = await FirecrackerHost.start(this.functions.hostFunction(fnName), join(this.params.dataDir, 'run', 'fc'), newId('vm'), (id, stream, text) => this.hostLog(id, stream, text), this.jail.jailed);
    } finally {
      this.starting--;
    }
    bd.since('acquireMs', t);
    const home: SandboxHost = { host, fn: fnName, deployment: fn.deployment, layout: 'horizontal', capacity: 1, scratchDir: null, instances: new Set(), reserved: 0, lost: [], emptySince: Date.now(), pooled: false, destroying: 0, retiring: false };
    this.adoptHost(home);
    return this.register(fnName, fn.deployment, home, origin);
  }

  /** A line a host (or a microVM's console) wrote: to the daemon's log and the function's. */
  private hostLog(sandboxId: string, stream: 'stdout' | 'stderr', raw: string): void {
    const text = this.logRate.admit(sandboxId, raw);
    if (text === null) return;
    this.log.info({ sandboxId, stream }, text.trimEnd());
    const fn = this.sandboxes.get(sandboxId)?.fn;
    if (fn !== undefined) this.logs.append(fn, sandboxId, stream, text);
  }

  /** The deployment's live vertical host with a free slot and the most instances (hosts are filled before new ones start). */
  private roomyHost(deployment: string): SandboxHost | undefined {
    let best: SandboxHost | undefined;
    for (const h of this.hosts) {
      if (h.deployment !== deployment || h.capacity === 1 || !h.host.alive || h.retiring || h.instances.size + h.reserved >= h.capacity) continue;
      if (!best || h.instances.size > best.instances.size) best = h;
    }
    return best;
  }

  /** Tracks a host taken from the pool; a host that dies takes every instance in it with it. */
  private adoptHost(home: SandboxHost): void {
    this.hosts.add(home);
    void home.host.exited.then((exit) => {
      this.hosts.delete(home);
      const lost = [...home.instances];
      home.lost = [...new Set([...home.lost, ...lost.map((s) => s.id)])];
      home.instances.clear();
      for (const sandbox of lost) {
        if (this.sandboxes.get(sandbox.id) === sandbox) this.sandboxes.delete(sandbox.id);
        this.keepAlive.forget(sandbox.id);
      }
      this.wakeWaiters();
      if (!exit.killedBy && lost.length > 0) {
        this.log.warn({ hostPid: home.host.pid, sandboxes: lost.map((s) => s.id), function: lost[0]!.fn, exit }, 'sandbox host died with its instances');
      }
    });
  }

  private register(fn: string, deployment: string, home: SandboxHost, origin: SandboxInfo['origin']): Sandbox {
    const taken = new Set([...home.instances].map((s) => s.instance));
    let instance = 0;
    while (taken.has(instance)) instance++;
    const sandbox: Sandbox = {
      id: newId('sb'), fn, deployment, host: home.host, home, instance, scratchDir: home.scratchDir, origin,
      createdAt: new Date().toISOString(), busy: true, invocations: 0, memoryBytes: 0,
      memory: declaredOnly(this.functions.get(fn).params.memoryMiB * 1024 * 1024), lastUsed: Date.now(),
    };
    home.instances.add(sandbox);
    this.sandboxes.set(sandbox.id, sandbox);
    return sandbox;
  }

  /**
   * The sandbox for a warm invocation: the one named, else the most recently used idle one of
   * the function's current version. When all of them are busy, waits up to WARM_WAIT_MS for one
   * to become idle (THAW_FUNCTION_BUSY, 429, after that); THAW_NO_WARM_SANDBOX only when the
   * function has no sandbox at all.
   */
  private async takeWarm(fnName: string, sandboxId: string | undefined): Promise<Sandbox> {
    if (sandboxId !== undefined) {
      const sandbox = this.sandbox(sandboxId);
      if (sandbox.fn !== fnName) throw new ThawError('THAW_REQUEST_INVALID', { detail: `sandbox '${sandboxId}' runs function '${sandbox.fn}', not '${fnName}'` });
      if (sandbox.busy) throw new ThawError('THAW_SANDBOX_BUSY', { id: sandboxId });
      sandbox.busy = true;
      return sandbox;
    }
    const t0 = performance.now();
    for (;;) {
      const deployment = this.functions.get(fnName).deployment;
      const candidates = [...this.sandboxes.values()].filter((s) => s.fn === fnName && s.deployment === deployment);
      if (candidates.length === 0) throw new ThawError('THAW_NO_WARM_SANDBOX', { name: fnName });
      const idle = candidates.filter((s) => !s.busy).sort((a, b) => b.lastUsed - a.lastUsed)[0];
      if (idle) {
        idle.busy = true;
        return idle;
      }
      const leftMs = WARM_WAIT_MS - (performance.now() - t0);
      if (leftMs <= 0) throw new ThawError('THAW_FUNCTION_BUSY', { name: fnName, waitedMs: WARM_WAIT_MS });
      await this.sandboxChange(leftMs);
    }
  }

  /** Resolves when a sandbox becomes idle or is removed, or after `ms`. */
  private sandboxChange(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.idleWaiters.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.idleWaiters.add(wake);
    });
  }

  /** Marks a sandbox idle and wakes the warm invocations waiting for one. */
  private release(sandbox: Sandbox): void {
    sandbox.busy = false;
    this.wakeWaiters();
  }

  private wakeWaiters(): void {
    for (const wake of [...this.idleWaiters]) wake();
  }

  /** The newest snapshot of the function's current module version (unreadable ones are never picked). */
  private newestSnapshot(fnName: string): string {
    const newest = this.readableSnapshots().filter((s) => s.function === fnName && s.current).pop();
    if (!newest) throw new ThawError('THAW_SNAPSHOT_NOT_FOUND', { id: `(none for function ${fnName})` });
    return newest.id;
  }

  /** Every snapshot whose state file reads cleanly, oldest first; unreadable ones are logged. */
  private readableSnapshots(): SnapshotInfo[] {
    const out: SnapshotInfo[] = [];
    for (const id of readdirSync(this.snapshotRoot)) {
      if (id.startsWith('.')) continue;
      try {
        out.push(this.snapshotInfo(id));
      } catch (err) {
        this.log.warn({ snapshot: id, err: toThawError(err).message }, 'unreadable snapshot skipped');
      }
    }
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /**
   * What auto knows of snapshot `id` now (its image's present bytes and page-cache share, its
   * artefacts). Every restore records its time under the cache state (one mincore); which
   * strategies are prepared and supported is only looked up when auto chooses.
   */
  private snapshotFacts(id: string): SnapshotFacts {
    const { meta, runs } = this.cachedSnapshot(id);
    const fd = openSync(join(this.snapshotRoot, id, MEMORY_FILE), 'r');
    try {
      const image = imageFacts(fd, fstatSync(fd).size, runs);
      const preparer = this.preparer;
      const root = this.snapshotRoot;
      let strategies: ReturnType<typeof listStrategies> | undefined;
      let prepared: ReadonlySet<string> | undefined;
      let supported: ReadonlySet<string> | undefined;
      return {
        memoryBytes: meta.memoryBytes,
        ...image,
        // A sealed image counts while the daemon still holds it (its table evicts within a budget).
        get prepared() {
          strategies ??= listStrategies();
          prepared ??= new Set(strategies.map((s) => s.id).filter((s) => preparer.isPrepared(s, id) && (s !== sealed.id || heldSealedImage(root, id) !== null)));
          return prepared;
        },
        supported: (s) => {
          strategies ??= listStrategies();
          supported ??= new Set(strategies.filter((l) => l.support.ok).map((l) => l.id));
          return supported.has(s);
        },
      };
    } finally {
      closeSync(fd);
    }
  }

  /** The sealed images the daemon holds of function `name`'s snapshots (read since it started), as [key, fd]. */
  private sealedImagesOf(name: string): [string, number][] {
    const out: [string, number][] = [];
    for (const [id, { meta }] of this.snapshotMeta) {
      const fd = meta.functionName === name ? heldSealedImage(this.snapshotRoot, id) : null;
      if (fd !== null) out.push([sealedKey(this.snapshotRoot, id), fd]);
    }
    return out;
  }

  /**
   * The daemon's sealed image of snapshot `id` (strategies/sealed.ts): prepared in the worker,
   * kept in this process's table. One evicted since (the table's budget) is sealed again.
   * Throws THAW_STRATEGY_UNAVAILABLE when it cannot be had.
   */
  private async sealedImageOf(id: string): Promise<number> {
    let fd = heldSealedImage(this.snapshotRoot, id);
    if (fd === null) {
      this.preparer.forget(id, sealed.id);
      await this.preparer.prepare(sealed.id, id);
      fd = heldSealedImage(this.snapshotRoot, id);
    }
    if (fd === null) throw new ThawError('THAW_STRATEGY_UNAVAILABLE', { strategy: sealed.id, reason: `the daemon could not keep a sealed image of snapshot ${id} (its budget is ${SEALED_BUDGET_BYTES >> 20} MiB)` });
    return fd;
  }

  /**
   * Under auto (the default), a new snapshot small enough for a sealed image gets one now, in the
   * worker, and the function's pooled hosts map it as soon as it is sealed: the first restore is
   * already a sealed one, into a host that holds the image (not an eager restore while the image
   * is built, then a restore that maps it).
   */
  private sealAhead(id: string, fn: StoredFunction): void {
    if (DEFAULT_STRATEGY !== AUTO_STRATEGY || fn.params.runtime === 'firecracker') return;
    // Only the present bytes count here: the runs as read once, no open of the image and no mincore.
    const presentBytes = pagesIn(this.cachedSnapshot(id).runs) * PAGE_BYTES;
    if (!sealAheadWanted({ presentBytes, supported: (s) => getStrategy(s).supports().ok })) return;
    const deployment = this.functions.hostFunction(fn.params.name).deployment;
    const sealing = this.sealedImageOf(id).then(
      (fd) => this.pool.offerSealedImage(deployment, sealedKey(this.snapshotRoot, id), fd),
      (err: unknown) => this.log.warn({ snapshotId: id, err: String(err) }, 'sealing a new snapshot ahead of its first restore failed (its restores seal it then)'),
    );
    this.sealingAhead.add(sealing);
    void sealing.finally(() => this.sealingAhead.delete(sealing));
  }

  /** auto's choice for snapshot `id`; starts preparing what it would rather use next time. */
  private chooseStrategy(id: string, facts: SnapshotFacts): AutoChoice {
    const choice = this.autoStrategy.choose(id, facts);
    if (choice.prepareNext !== undefined) {
      const next = choice.prepareNext;
      void this.prepareSealed(next, id).then(
        ({ prepared }) => { if (prepared.built && this.jail.jailed) this.grantSnapshot(id); },
        (err: unknown) => this.log.warn({ snapshotId: id, strategy: next, err: String(err) }, 'auto: background prepare failed'),
      );
    }
    return choice;
  }

  /** Snapshot `id`'s state as read once (THAW_SNAPSHOT_NOT_FOUND for a malformed or unknown id). */
  private cachedSnapshot(id: string): { meta: SnapshotMeta; diskBytes: number; runs: readonly PageRun[] } {
    if (!/^[A-Za-z0-9_-]{1,100}$/.test(id)) throw new ThawError('THAW_SNAPSHOT_NOT_FOUND', { id });
    let cached = this.snapshotMeta.get(id);
    if (!cached) {
      const state = readState(this.snapshotRoot, id);
      cached = { meta: state.meta, diskBytes: diskUsageBytes(this.snapshotRoot, id), runs: state.runs };
      this.snapshotMeta.set(id, cached);
    }
    return cached;
  }

  private snapshotInfo(id: string): SnapshotInfo {
    const { meta, diskBytes } = this.cachedSnapshot(id);
    let current = false;
    try {
      current = this.functions.get(meta.functionName).digest === meta.moduleDigest;
    } catch {
      /* function deleted: not current */
    }
    return {
      id: meta.id,
      kind: meta.kind,
      baseId: meta.baseId,
      function: meta.functionName,
      runtime: meta.runtime,
      moduleDigest: meta.moduleDigest,
      memoryBytes: meta.memoryBytes,
      diskBytes,
      createdAt: meta.createdAt,
      sourceSandboxId: meta.sourceSandboxId,
      current,
      artefacts: listArtefacts(this.snapshotRoot, meta.id),
    };
  }

  private sandbox(id: string): Sandbox {
    const s = this.sandboxes.get(id);
    if (!s) throw new ThawError('THAW_SANDBOX_NOT_FOUND', { id });
    return s;
  }

  private sandboxInfo(s: Sandbox): SandboxInfo {
    return {
      id: s.id, function: s.fn, state: s.busy ? 'busy' : 'idle', origin: s.origin, createdAt: s.createdAt,
      invocations: s.invocations, memoryBytes: s.memoryBytes, memory: { ...s.memory }, hostPid: s.host.pid,
      layout: s.home.layout, instance: s.instance, instancesPerHost: s.home.capacity, instancesInHost: s.home.instances.size,
    };
  }

  /** Jail: the function's directory readable by its own hosts only. */
  private grantFunction(name: string): void {
    const fn = this.functions.get(name);
    grantToFunction(dirname(fn.params.artefactPath), fn.gid, 0o750, 0o640, 'grant');
  }

  /**
   * Jail: snapshot `id` (and its tmpfs copy) readable by its function's hosts only, writable by
   * none; a snapshot of a deleted function readable by no host.
   */
  private grantSnapshot(id: string): void {
    let gid = 0;
    try {
      gid = this.functions.get(this.snapshotInfo(id).function).gid;
    } catch {
      /* unreadable snapshot or deleted function: root only */
    }
    try {
      grantToFunction(join(this.snapshotRoot, id), gid, gid ? 0o750 : 0o700, gid ? 0o640 : 0o600);
      grantTmpfsCopy(this.snapshotRoot, id, gid, SANDBOX_GID);
    } catch (err: unknown) {
      this.log.warn({ snapshot: id, err: toThawError(err).message }, 'cannot set snapshot permissions');
    }
  }

  /**
   * Moves a snapshot a jailed host wrote into its scratch directory into the snapshot root. The
   * host owns what it wrote: nothing in it is followed, and each plain file becomes the daemon's
   * (root-only) before it is read; grantSnapshot opens it to the function's hosts once sealed.
   */
  private adoptSnapshot(written: string, id: string): void {
    if (!lstatSync(written).isDirectory()) throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id, detail: 'the sandbox host did not write a snapshot directory' });
    renameSync(written, join(this.snapshotRoot, id));
    // Every file the daemon's before anything reads it (sealState next).
    grantToFunction(join(this.snapshotRoot, id), 0, 0o700, 0o600);
  }

  /**
   * Jail: copies what a restore recorded in a host's outbox (recording-outbox.ts) beside snapshot
   * `id`, as the daemon's own files. Copied, not moved: the host may still hold the file open.
   * Only the known names, only plain files; the next prepare checks them like any artefact.
   */
  private adoptRecorded(scratchDir: string, id: string): void {
    const outbox = join(scratchDir, RECORDING_OUTBOX, id);
    if (!existsSync(outbox)) return;
    try {
      for (const name of RECORDED_FILES) {
        // Two first restores may both record: the first recording adopted stays. Replacing it
        // would change the bytes under a restore that was already given the sealed digest.
        if (existsSync(join(this.snapshotRoot, id, name))) continue;
        const bytes = readPlainFile(join(outbox, name));
        if (bytes) writeFileDurable(join(this.snapshotRoot, id, name), bytes);
      }
      this.grantSnapshot(id);
    } catch (err: unknown) {
      this.log.warn({ snapshot: id, err: toThawError(err).message }, 'cannot adopt a recorded artefact: the next restore records again');
    } finally {
      rmSync(outbox, { recursive: true, force: true });
    }
  }

  /**
   * Prepares `strategy`'s artefacts for snapshot `id` in the worker and returns the digests of the
   * sealed ones, which a host must find (snapshot-seal.ts): what the worker just built is sealed
   * at once (it runs to completion before any other restore's code); otherwise the seal is
   * checked, and artefacts it does not cover are removed and prepared again (or recorded again).
   * Throws THAW_SNAPSHOT_CORRUPT (a seal file that fails its MAC), and whatever prepare throws.
   */
  private async prepareSealed(strategy: string, id: string): Promise<{ prepared: PrepareOutcome; artefactSha256: Record<string, string> }> {
    this.preparing.set(id, (this.preparing.get(id) ?? 0) + 1);
    try {
      return await this.prepareAndCheckSeals(strategy, id);
    } finally {
      const left = this.preparing.get(id)! - 1;
      if (left === 0) this.preparing.delete(id);
      else this.preparing.set(id, left);
    }
  }

  private async prepareAndCheckSeals(strategy: string, id: string): Promise<{ prepared: PrepareOutcome; artefactSha256: Record<string, string> }> {
    const prepared = await this.preparer.prepare(strategy, id);
    if (prepared.built) return { prepared, artefactSha256: sealArtefacts(this.snapshotRoot, this.snapshotKey, id) };
    const { digests, unsealed } = this.seals.artefactSeals(id);
    // Another prepare running for this snapshot (auto's, in the background) may have built files it
    // has not sealed yet: they are not handed to this restore, and not removed as forged either.
    if (unsealed.length === 0 || (this.preparing.get(id) ?? 0) > 1) return { prepared, artefactSha256: digests };
    this.log.error({ snapshot: id, files: unsealed }, 'artefacts the daemon did not seal were removed (forged, or left by a crash): they are built or recorded again');
    for (const name of unsealed) rmSync(join(this.snapshotRoot, id, name), { force: true });
    this.preparer.forget(id);
    const again = await this.preparer.prepare(strategy, id);
    return { prepared: again, artefactSha256: again.built ? sealArtefacts(this.snapshotRoot, this.snapshotKey, id) : digests };
  }

  /** Seals what a restore just recorded beside snapshot `id` (adopted from a jailed host's outbox). */
  private sealRecorded(id: string): void {
    try {
      sealArtefacts(this.snapshotRoot, this.snapshotKey, id);
    } catch (err: unknown) {
      this.log.warn({ snapshot: id, err: toThawError(err).message }, 'cannot seal a recorded artefact: the next restore records again');
    }
  }

  /**
   * Makes a start (bootCold or restore) and awaits it; a start whose host came from the pool and
   * had died unseen (diedInPool) is made once more, in a new host, instead of failing the request.
   */
  private async startOnce<R extends BootResult | RestoreResult>(make: () => Promise<{ sandbox: Sandbox; started: Promise<Timed<R>>; invoking?: Promise<Timed<HostInvokeResult>> }>): Promise<{
    sandbox: Sandbox; begun: Timed<R>; invoking?: Promise<Timed<HostInvokeResult>>;
  }> {
    const first = await make();
    try {
      return { ...first, begun: await first.started };
    } catch (err: unknown) {
      if (!(err instanceof ThawError && this.pooledDeaths.has(err))) throw err;
      this.log.warn({ sandboxId: first.sandbox.id, function: first.sandbox.fn, hostPid: first.sandbox.host.pid, error: err.message }, 'a pooled host died before its start: starting again in a new host');
      const again = await make();
      return { ...again, begun: await again.started };
    }
  }

  /**
   * Whether a failed start is worth one more in a new host: its host came from the pool running
   * and died on its own (not killed by Thaw, not by the memory cgroup: THAW_GUEST_OOM is the
   * guest's) before it answered, e.g. killed after it reported ready but before the platform saw
   * its exit. A host started for the request that dies is reported, as the pool does.
   */
  private diedInPool(sandbox: Sandbox, err: unknown): boolean {
    const { host } = sandbox;
    return toThawError(err).code === 'THAW_SANDBOX_DIED' && sandbox.home.pooled && host instanceof HostProcess && host.killedBy === null && !host.exit?.oomKilled;
  }

  /** Stops a sandbox whose state can no longer be trusted; returns the error to rethrow. */
  private async afterFailure(sandbox: Sandbox, err: unknown, always = false): Promise<ThawError> {
    const e = this.hostDeath(sandbox, toThawError(err));
    if (always || FATAL_TO_SANDBOX.has(e.code) || !sandbox.host.alive) {
      this.log.warn({ sandboxId: sandbox.id, function: sandbox.fn, code: e.code, error: e.message }, 'sandbox stopped after failure');
      await this.stop(sandbox, `failure: ${e.code}`, FATAL_TO_HOST.has(e.code));
    } else {
      this.release(sandbox);
    }
    return e;
  }

  /**
   * A host's death as the sandbox's error: the host process rejects pending requests with
   * THAW_SANDBOX_DIED naming the process; the caller knows the sandbox, and a kill by the memory
   * cgroup is the guest running out of memory (its limit counts the host's own memory too).
   */
  private hostDeath(sandbox: Sandbox, e: ThawError): ThawError {
    if (e.code !== 'THAW_SANDBOX_DIED') return e;
    const detail = String(e.params.detail ?? e.message);
    if (sandbox.host.exit?.oomKilled) {
      let limitMiB: number | string = '?';
      try {
        limitMiB = this.functions.get(sandbox.fn).params.memoryMiB;
      } catch {
        /* the function was deleted meanwhile */
      }
      return new ThawError('THAW_GUEST_OOM', {
        name: sandbox.fn, limitMiB,
        detail: `sandbox '${sandbox.id}' (host pid ${sandbox.host.pid}) was killed by its memory cgroup, whose limit adds ${this.params.hostOverheadMiB} MiB for the host`,
      }, { cause: e });
    }
    const carried = new Set([...sandbox.home.lost, ...[...sandbox.home.instances].map((s) => s.id)]);
    const others = [...carried].filter((id) => id !== sandbox.id);
    const siblings = others.length > 0 ? `; its other instances ${others.join(', ')} went with it` : '';
    return new ThawError('THAW_SANDBOX_DIED', { id: sandbox.id, detail: `${detail} (host pid ${sandbox.host.pid}${siblings})` }, { cause: e });
  }

  /**
   * Stops a sandbox. A horizontal host goes with its one instance; in a vertical host only the
   * instance goes (its host stays for the next instance), unless `killHost` (the host's state
   * cannot be trusted) or the host cannot destroy it.
   */
  private async stop(sandbox: Sandbox, reason: string, killHost = false): Promise<void> {
    this.sandboxes.delete(sandbox.id);
    this.keepAlive.forget(sandbox.id);
    const home = sandbox.home;
    // Stopped because its host died: the others' errors still name it.
    if (!home.host.alive && home.instances.has(sandbox)) home.lost = [...home.lost, sandbox.id];
    home.instances.delete(sandbox);
    if (home.instances.size === 0) home.emptySince = Date.now();
    // A warm invocation waiting on this function's last busy sandbox must learn it is gone.
    this.wakeWaiters();
    if (home.capacity === 1 || killHost || !home.host.alive) {
      await this.killHost(home, reason);
      return;
    }
    // The host is not retired while it destroys the instance (retireEmptyHosts skips it).
    home.destroying++;
    try {
      await home.host.request({ op: 'destroy', sandboxId: sandbox.id }, { timeoutMs: DESTROY_TIMEOUT_MS, onTimeout: () => new ThawError('THAW_INTERNAL', { detail: 'the host did not destroy an instance in time' }) });
    } catch (err: unknown) {
      this.log.warn({ sandboxId: sandbox.id, hostPid: home.host.pid, err: toThawError(err).message }, 'cannot destroy an instance: its host is stopped');
      await this.killHost(home, `${reason} (destroy failed)`);
      return;
    } finally {
      home.destroying--;
    }
    this.retireEmptyHosts();
  }

  /**
   * Vertical hosts with no instance left: one per current deployment is kept (the next instance
   * starts there, on code V8 has optimised) until it has been empty for preparedIdleMs (divided by
   * the replay's time scale, as the pool's); others, and those of retired deployments, stop. A host
   * still destroying an instance, or promised to a start (reserved), is left for the next call.
   */
  private retireEmptyHosts(): void {
    const kept = new Set<string>();
    for (const h of this.hosts) {
      if (h.instances.size > 0 || h.reserved > 0 || h.destroying > 0 || h.retiring || !h.host.alive) continue;
      let current = false;
      try {
        current = this.functions.get(h.fn).deployment === h.deployment;
      } catch {
        /* function deleted */
      }
      const idle = Date.now() - h.emptySince > this.pool.preparedIdleMs;
      if (current && !idle && !kept.has(h.deployment)) kept.add(h.deployment);
      else void this.killHost(h, !current ? 'deployment retired' : idle ? 'idle vertical host' : 'idle vertical host (another is kept)');
    }
  }

  /** Kills a host; from now on no start picks it (it is alive until it exits). */
  private killHost(home: SandboxHost, reason: string): Promise<unknown> {
    home.retiring = true;
    return home.host.kill(reason);
  }

  /** Stops the least recently used idle sandboxes beyond the limit, without waiting for their exit. */
  private evictIdle(): void {
    const idle = [...this.sandboxes.values()].filter((s) => !s.busy).sort((a, b) => a.lastUsed - b.lastUsed);
    const excess = idle.length - this.params.maxIdleSandboxes;
    for (let i = 0; i < excess; i++) void this.stop(idle[i]!, 'evicted (idle limit)');
  }
}

/** Whether the platform can jail hosts in `mode`. */
function resolveJail(mode: JailMode): JailState {
  if (mode === 'off') return { jailed: false, reason: 'jail is off (--jail off)' };
  const support = jailAvailability();
  return support.ok ? { jailed: true } : { jailed: false, reason: support.reason };
}

/** Thaw's own settings a host needs from the daemon's environment (its own is empty). */
function hostEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  if (process.env.THAW_PMEM_DIR) env.THAW_PMEM_DIR = process.env.THAW_PMEM_DIR;
  return env;
}

/**
 * Sends `req` to the sandbox's host; with `trace`, as a step of the invocation's trace whose
 * context the host records its own steps under (sandbox/host/spans.ts), joined in on the reply.
 */
function requestTraced<T>(sandbox: Sandbox, req: HostRequest, opts: RequestOptions, trace: InvocationTrace | null): Promise<Timed<T>> {
  if (trace === null) return sandbox.host.requestTimed<T>(req, opts);
  const host = { 'thaw.sandbox': sandbox.id, 'thaw.host.pid': sandbox.host.pid };
  const span = trace.step(`host ${req.op}`, host);
  const sent = sandbox.host.requestTimed<T>(req, { ...opts, traceparent: trace.traceparentOf(span) });
  sent.then((timed) => {
    trace.adopt(timed.spans, host);
    endSpan(span);
  }, (err: unknown) => {
    trace.adopt(spansOfFailure(err), host);
    endSpan(span, err);
  });
  return sent;
}

/** THAW_INIT_TIMEOUT for `phase` of a sandbox of `fn` (boot and init, restore, snapshot). */
function initTimeout(fn: FunctionParams, phase: string): ThawError {
  return new ThawError('THAW_INIT_TIMEOUT', { name: fn.name, phase, initTimeoutMs: fn.initTimeoutMs });
}

/** `<prefix>-` and 12 random hex digits (the last group of a v4 UUID is all random bits; randomUUID draws from a pre-filled pool, a fifth of randomBytes' cost per call). */
function newId(prefix: string): string {
  return `${prefix}-${randomUUID().slice(24)}`;
}

