// The platform's public operations and their result shapes, shared by the in-process
// platform, the HTTP API and the HTTP client, so the CLI runs the same way against both.

import type { HostLayout, RuntimeId } from '../core/function-spec.js';
import type { ArtefactInfo } from '../restore/index.js';
import type { SandboxMemory } from '../memory/types.js';
import type { ZramFigures } from '../memory/zram-swap.js';
import type { LogEntry } from './function-logs.js';
export type { LogEntry } from './function-logs.js';

/** auto: the keep-alive scheduler picks (warm, else semi-warm, else snapshot, else cold; see scheduler.ts). */
export type InvokeMode = 'auto' | 'cold' | 'warm' | 'snapshot';
export const INVOKE_MODES: readonly InvokeMode[] = ['auto', 'cold', 'warm', 'snapshot'];

/** How an invocation's sandbox started: booted cold, restored, or reused idle (warm or semi-warm). */
export type StartKind = 'cold' | 'snapshot' | 'warm' | 'semi-warm';
export const START_KINDS: readonly StartKind[] = ['cold', 'snapshot', 'warm', 'semi-warm'];

/** The keep-alive scheduler's settings (a daemon option; `thaw replay` sets them per experiment setting). */
export interface SchedulerSettings {
  /** Memory policy id: none, or one registered by memory/policies (tmo, faasmem, ...). */
  policy?: string;
  /** Offload tier the policy uses (null: the policy's default). */
  tier?: 'file' | 'compressed' | 'remote' | null;
  /** Idle sandboxes expire after this many (trace) seconds. */
  keepAliveS?: number;
  /** Time constants (keep-alive, the policy's) are divided by this: 60 replays an hour in a minute. */
  timeScale?: number;
  /** Remote tier: latency the memory server adds to each fetch round trip (one run of pages), in microseconds (default 0). */
  remoteLatencyUs?: number;
}

/** A scheduler setting change, as an experiment makes it between two settings. */
export type SchedulerChange = SchedulerSettings & {
  /** Set every function's start counts to zero. */
  resetCounts?: boolean;
  /**
   * Forget every function's reuse intervals (faasmem's semi-warm threshold is their P99), as a
   * fresh daemon would: a replay setting must not inherit the intervals an earlier setting of the
   * same trace measured, or its threshold is the very gap it is about to see.
   */
  resetHistory?: boolean;
  /**
   * Prepare pooled hosts for every deployed function now and answer once they are ready, as
   * after a first invocation: each setting of a replay then starts from the same pool, not only
   * the first (the pool's idle times follow the time scale, so a setting would otherwise find
   * the hosts the one before it left retired).
   */
  preparePool?: boolean;
};

/** One live sandbox's memory as its host measures it (the scheduler report's `memory`). */
export interface SandboxMemoryFigures {
  id: string;
  function: string;
  semiWarm: boolean;
  /** Guest memory resident now (mincore). */
  residentBytes: number;
  /** Offloaded and not faulted back now. */
  heldBytes: number;
  /** Local memory the compressed tier's store takes now (outside the guest memory). */
  storedBytes: number;
  /** Guest memory on swap now (tmo:compressed's zram; pagemap). */
  swappedBytes: number;
  /** Cumulative: bytes offloaded, bytes faulted back, and the mean time a fault-back took. */
  offloadedBytes: number;
  faultedBackBytes: number;
  faultBackMeanUs: number;
}

/** The scheduler's settings, live sandboxes and per-function start counts. */
export interface SchedulerReport {
  policy: string;
  tier: 'file' | 'compressed' | 'remote' | null;
  keepAliveS: number;
  timeScale: number;
  remoteLatencyUs: number;
  /** The keep-alive in real milliseconds (keepAliveS * 1000 / timeScale). */
  keepAliveMs: number;
  tickMs: number;
  sandboxes: { live: number; idle: number; semiWarm: number };
  /** The zram swap device behind tmo:compressed, while configured (its bytes are local memory too). */
  zram?: ZramFigures;
  functions: Record<string, { starts: Record<StartKind, number>; expired: number; reuseP99Ms: number; reuseSamples: number }>;
  /** Each live sandbox's memory (GET /v1/scheduler; absent from a PUT's reply). */
  memory?: SandboxMemoryFigures[];
}

export interface FunctionInfo {
  name: string;
  runtime: RuntimeId;
  memoryMiB: number;
  handler: string;
  timeoutMs: number;
  initTimeoutMs: number;
  maxInputBytes: number;
  maxOutputBytes: number;
  description: string;
  /** sha256 of the stored artefact; snapshots must match it. */
  digest: string;
  deployedAt: string;
  /** Facts found at deploy (exports, rewritten globals, ...). */
  facts: Record<string, string | number | boolean>;
}

export interface SandboxInfo {
  id: string;
  function: string;
  state: 'idle' | 'busy';
  origin: { kind: 'cold' } | { kind: 'snapshot'; snapshotId: string; strategy: string };
  createdAt: string;
  invocations: number;
  memoryBytes: number;
  /** Declared, granted and resident memory (as of the sandbox's last boot, restore or invocation). */
  memory: SandboxMemory;
  /** The host process carrying this sandbox: a sandbox is (host, instance). */
  hostPid: number;
  /** horizontal: one instance per host; vertical: several instances per host sharing the compiled module. */
  layout: HostLayout;
  /** This sandbox's instance slot in its host (0-based). */
  instance: number;
  /** Instances its host may carry (1 when horizontal). */
  instancesPerHost: number;
  /** Instances its host carries now, this one included. */
  instancesInHost: number;
}

export interface SnapshotInfo {
  id: string;
  kind: 'full' | 'diff';
  baseId: string | null;
  function: string;
  runtime: string;
  moduleDigest: string;
  memoryBytes: number;
  /** Bytes on disk (state file + allocated blocks of the sparse memory image). */
  diskBytes: number;
  createdAt: string;
  sourceSandboxId: string;
  /** False when the function has been redeployed since: restoring it fails with THAW_SNAPSHOT_VERSION. */
  current: boolean;
  /** What restore strategies keep for it (working set, loading sets, compressed images, tmpfs copy, pool slot). */
  artefacts: ArtefactInfo[];
  /** GET of one current snapshot: what the auto strategy would pick for a restore now, and why. */
  auto?: { strategy: string; reason: string };
}

/**
 * The parts of an invocation's time, in the order they happen: the one list the sum check, the
 * API schema, the CLI, bench:core and the harness traces read. Every part is measured (0 when
 * the path has no such step) and together they sum to totalMs (to the microsecond rounding);
 * `platformMs` is whatever the daemon spent outside the other parts. Adding a part is one line
 * here (and measuring it where it happens). `optional` parts are printed only when not zero.
 */
export const TIMING_PARTS = [
  { key: 'checkMs', label: 'check', what: 'before a restore: the daemon checks the snapshot\'s seals and asks the prepare worker whether the strategy\'s artefacts are ready' },
  { key: 'prepareMs', label: 'prepare', what: 'building and verifying the restore strategy\'s artefacts (the first restore of a snapshot with a strategy)' },
  { key: 'acquireMs', label: 'acquire', what: 'taking a host from the pool (spawned and prepared now when none was waiting)' },
  { key: 'queueMs', label: 'queue', what: 'waiting for a sandbox: a busy warm sandbox, or other instances\' requests ahead in a vertical host' },
  { key: 'ipcOutMs', label: 'ipc out', what: 'daemon to host: serialising the request, the channel, the host\'s decoding (and any time the host\'s JS thread was busy before it could read it)' },
  { key: 'bootMs', label: 'boot', what: 'instantiating a fresh guest (cold)' },
  { key: 'restoreMs', label: 'restore', what: 'restoring the guest from its snapshot (strategy fill and runtime resume)' },
  { key: 'initMs', label: 'init', what: 'the function\'s init (cold)' },
  { key: 'grantMs', label: 'grant', what: 'memory scaling: granting the invocation\'s memory', optional: true },
  { key: 'populateMs', label: 'populate', what: 'memory scaling: populating the granted memory', optional: true },
  { key: 'handlerMs', label: 'handler', what: 'the function\'s handler' },
  { key: 'releaseMs', label: 'release', what: 'memory scaling: giving memory back after the handler', optional: true },
  { key: 'hostMs', label: 'host other', what: 'inside the host outside the steps above: dispatch, output checks, statistics, encoding the reply' },
  { key: 'ipcBackMs', label: 'ipc back', what: 'host to daemon: the reply\'s channel and decoding' },
  { key: 'platformMs', label: 'platform', what: 'the daemon\'s bookkeeping: checks, sandbox registry, scheduling between the parts above' },
] as const satisfies readonly { key: `${string}Ms`; label: string; what: string; optional?: true }[];

export type TimingPart = (typeof TIMING_PARTS)[number]['key'];

/** Timing breakdown of one invocation, measured inside Thaw, in milliseconds: the parts sum to totalMs. */
export type InvokeTimings = Record<TimingPart, number> & { totalMs: number };

/** The sum of an invocation's parts (equals totalMs up to the microsecond rounding of each part). */
export function sumOfParts(t: InvokeTimings): number {
  let sum = 0;
  for (const p of TIMING_PARTS) sum += t[p.key];
  return sum;
}

/** `partMs=ms` for every part that is not an optional zero, in the list's order, then the total (the CLI's line). */
export function formatTimings(t: InvokeTimings): string {
  const parts = TIMING_PARTS.filter((p) => !('optional' in p) || t[p.key] !== 0).map((p) => `${p.key}=${t[p.key]}`);
  return `${parts.join(' ')} totalMs=${t.totalMs}`;
}

export interface InvokeRequest {
  function: string;
  mode: InvokeMode;
  input: Uint8Array;
  /** warm: the sandbox to use (default: the most recently used idle one). */
  sandboxId?: string;
  /** snapshot: the snapshot to restore (default: the newest current one of the function). */
  snapshotId?: string;
  /** snapshot: the restore strategy id (default "auto": the platform picks one and says why). */
  strategy?: string;
  /** Keep the sandbox afterwards for warm invocations (default true). */
  keep?: boolean;
  /** The caller's W3C trace context: a sampled one traces the invocation under it (see platform/tracing.ts). */
  traceparent?: string;
}

export interface InvokeResult {
  function: string;
  mode: InvokeMode;
  /** How the sandbox started (for auto, what the scheduler picked). */
  start: StartKind;
  sandboxId: string;
  /** The host process that carried the sandbox (a vertical host carries several; absent from older daemons). */
  hostPid?: number;
  /** Whether the sandbox was kept for warm invocations. */
  kept: boolean;
  snapshotId?: string;
  strategy?: string;
  /** snapshot with strategy auto (the default): why it picked `strategy`. */
  strategyReason?: string;
  output: Uint8Array;
  timings: InvokeTimings;
  /** Size of the guest's linear memory after the invocation (kept for existing clients; `memory` has more). */
  memoryBytes: number;
  /** Declared, granted and resident memory after the invocation (after the scaling mechanism's release). */
  memory: SandboxMemory;
  /** snapshot: what the restore strategy did (bytes read, page faults, prepare/fill time, reap phase). */
  restore?: RestoreStatsInfo;
  /** The trace this invocation was recorded in, when it was traced (docs/tracing.md). */
  traceId?: string;
}

/** Per-restore statistics reported by the restore engine (restore/strategy.ts RestoreStats). */
export interface RestoreStatsInfo {
  strategy: string;
  bytesRead: number;
  majorFaults: number;
  minorFaults: number;
  uffdFaults: number;
  prefetchedPages: number;
  prepareMs: number;
  fillMs: number;
  phase: 'record' | 'replay' | null;
}

export interface SnapshotRequest {
  sandboxId: string;
  kind?: 'full' | 'diff';
  /** diff: the base snapshot (default: the snapshot the sandbox was restored from). */
  baseId?: string;
}

/** A restore strategy and whether this host can run it. */
export interface StrategyInfo {
  id: string;
  description: string;
  available: boolean;
  /** Why it is unavailable here (e.g. userfaultfd not permitted). */
  reason?: string;
  /** What it checks of the bytes the guest reads: every-byte, partly-mapped or unverified-mapped. */
  verifies: string;
  /** One line: how it checks them and what it leaves unchecked. */
  verifiesHow: string;
}

/** What `snapshots verify` found: each file of the snapshot and of its artefacts, read and checked. */
export interface SnapshotVerifyReport {
  snapshotId: string;
  ok: boolean;
  files: { file: string; status: 'ok' | 'corrupt'; detail?: string }[];
  elapsedMs: number;
}

/** What `thaw doctor` reports. */
export interface DoctorReport {
  /** Whether hosts are jailed; when not, why. */
  readonly jailed: boolean;
  readonly reason?: string;
  /** Each layer as a probe host observed it from inside. */
  readonly layers: readonly { readonly layer: string; readonly active: boolean; readonly detail: string }[];
  /** Where each host's memory is bounded. */
  readonly memoryCgroups: string;
}

/** Everything the CLI and the HTTP API can ask of Thaw. */
export interface ThawApi {
  deployFunction(manifest: unknown, artefact: Uint8Array): Promise<FunctionInfo>;
  listFunctions(): Promise<FunctionInfo[]>;
  getFunction(name: string): Promise<FunctionInfo>;
  deleteFunction(name: string): Promise<void>;
  /** What the function's sandboxes wrote to stdout and stderr (kept lines after `afterSeq`, the newest `limit`). */
  functionLogs(name: string, opts?: { afterSeq?: number; limit?: number }): Promise<LogEntry[]>;
  /**
   * Calls `onEntry` for each kept line after `afterSeq` (none when it is absent), then for each
   * line the function's sandboxes write from now on; resolves when `signal` aborts.
   */
  followLogs(name: string, afterSeq: number | undefined, onEntry: (e: LogEntry) => void, signal: AbortSignal): Promise<void>;

  bootSandbox(fn: string): Promise<SandboxInfo & { timings: InvokeTimings }>;
  listSandboxes(): Promise<SandboxInfo[]>;
  deleteSandbox(id: string): Promise<void>;

  createSnapshot(req: SnapshotRequest): Promise<SnapshotInfo>;
  listSnapshots(fn?: string): Promise<SnapshotInfo[]>;
  getSnapshot(id: string): Promise<SnapshotInfo>;
  deleteSnapshot(id: string): Promise<void>;
  /** Builds and verifies what `strategy` needs for snapshot `id` ahead of its first restore. */
  prepareSnapshot(id: string, strategy: string): Promise<{ snapshotId: string; strategy: string; built: boolean; elapsedMs: number }>;
  /** Reads every byte of a snapshot, its base chain and its artefacts and checks every checksum. */
  verifySnapshot(id: string): Promise<SnapshotVerifyReport>;
  listStrategies(): Promise<StrategyInfo[]>;
  /** How sandbox hosts are confined here, layer by layer, as a freshly started host observes it. */
  doctor(): Promise<DoctorReport>;

  invoke(req: InvokeRequest): Promise<InvokeResult>;

  /** The keep-alive scheduler: settings, live sandboxes and start counts per function. */
  scheduler(): Promise<SchedulerReport>;
  /** Changes the scheduler's policy, tier, keep-alive or time scale (see SchedulerChange for the resets). */
  configureScheduler(s: SchedulerChange): Promise<SchedulerReport>;

  /** Objects: the inputs and outputs functions read and write by key (embedded store or Redis). */
  putObject(key: string, value: Uint8Array): Promise<void>;
  getObject(key: string): Promise<Uint8Array>;
  deleteObject(key: string): Promise<void>;
  listObjects(prefix?: string): Promise<string[]>;

  close(): Promise<void>;
}
