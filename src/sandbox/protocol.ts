// The channel between the daemon and a sandbox host process: requests, replies and events.
// Node's IPC with `serialization: 'advanced'` carries these (structured clone: Uint8Array ok).
// A host carries one instance of its function (horizontal) or several (vertical): every request
// about an instance names it by `sandboxId` (the platform's sandbox is the host and this instance).
// Every reply carries the host's stamps (HostStamps) for the daemon's timing breakdown.

import type { FunctionParams } from '../core/function-spec.js';
import type { SnapshotMeta } from '../core/snapshot-format.js';
import type { ObjectStoreConfig } from '../store/object-store.js';
import type { RestoreStats } from '../restore/strategy.js';
import type { MemoryStages, OffloadReport, OffloadRequest, PrefetchReport, SandboxMemory, SandboxOffloadFigures } from '../memory/types.js';

/** A deployed function as a host needs it. */
export interface HostFunction {
  readonly params: FunctionParams;
  /** Absolute path of the stored artefact (rewritten module or handler source). */
  readonly artefactPath: string;
  /** sha256 of the stored artefact: the module version snapshots are checked against. */
  readonly digest: string;
  /**
   * This deployment of the function: its name, module and settings. Prepared hosts and warm
   * sandboxes belong to one deployment; two functions with the same code never share one, and a
   * redeploy retires the old deployment's.
   */
  readonly deployment: string;
  /** The function's own group: a jailed host of it may read only this function's files. */
  readonly gid: number;
}

export type HostRequest =
  /**
   * ownerPid: the host's pid as the daemon sees it (a jailed host is PID 1 in its own namespace);
   * redisSocket: where a jailed host (no network) reaches a Redis object store through the daemon.
   */
  | { op: 'configure'; objectStore: ObjectStoreConfig; ownerPid: number; redisSocket: string | null }
  /** instances: how many instances of the function the host may carry at once (1: horizontal; default 1). */
  | { op: 'prepare'; fn: HostFunction; instances?: number }
  /** trackMemory: track page life stages from the start (memory/host-memory.ts); default off. */
  | { op: 'boot'; sandboxId: string; deployment: string; init: boolean; trackMemory?: boolean }
  | { op: 'restore'; sandboxId: string; deployment: string; snapshotRoot: string; snapshotId: string; strategy: string; stateSha256?: Record<string, string>; artefactSha256?: Record<string, string>; trackMemory?: boolean }
  | { op: 'invoke'; sandboxId: string; input: Uint8Array }
  /** Written to `outDir` (the host's scratch when jailed, else the snapshot root); base chains read from `snapshotRoot`. */
  | { op: 'snapshot'; sandboxId: string; snapshotRoot: string; outDir: string; meta: Omit<SnapshotMeta, 'memoryBytes' | 'guestState' | 'runtime' | 'moduleDigest' | 'functionName'> }
  | { op: 'destroy'; sandboxId: string }
  /** The sandbox's pages by life stage (memory/host-memory.ts). */
  | { op: 'memoryStages'; sandboxId: string }
  /** Moves cold pages of the sandbox to a tier; memorySocket: the daemon's relay to the memory server (remote tier). */
  | { op: 'offload'; sandboxId: string; request: OffloadRequest; memorySocket: string | null }
  | { op: 'prefetch'; sandboxId: string }
  | { op: 'stats' }
  /** The host's monotonic clock now (the daemon relates it to its own: see HostProcess.calibrate). */
  | { op: 'clock' }
  /** What the host observes of its own confinement (for `thaw doctor`). */
  | { op: 'inspect' }
  /** Resolves once the host has nothing left to prepare in the background (the next instance's shell). */
  | { op: 'settle' };

/** Timings measured inside the host, in milliseconds. */
export interface HostTimings {
  /** Waiting inside the host for what a request needs that is still being made (a restore's shell). */
  queueMs?: number;
  bootMs?: number;
  restoreMs?: number;
  initMs?: number;
  handlerMs?: number;
  prepareMs?: number;
  snapshotMs?: number;
  /** Memory scaling around an invocation (src/memory/scaling/). */
  grantMs?: number;
  populateMs?: number;
  releaseMs?: number;
}

export interface PrepareResult { timings: HostTimings }
export interface BootResult { timings: HostTimings; memoryBytes: number; memory: SandboxMemory }
export interface RestoreResult {
  timings: HostTimings;
  memoryBytes: number;
  memory: SandboxMemory;
  bytesRead: number;
  /** What the restore strategy did (bytes read, faults, prepare and fill time, phase). */
  restore?: RestoreStats;
}
export interface InvokeResult { timings: HostTimings; output: Uint8Array; memoryBytes: number; memory: SandboxMemory; restore?: RestoreResult['restore'] }
export interface SnapshotResult { timings: HostTimings; meta: SnapshotMeta; storedBytes: number; pageRuns: number }
/** One layer of the jail as a host observes it from inside. */
export interface JailLayer {
  readonly layer: string;
  readonly active: boolean;
  readonly detail: string;
}

export interface StatsResult {
  rssBytes: number;
  sandboxes: string[];
  prepared: string[];
  /** Offload figures per sandbox (heldBytes: offloaded and not faulted back). */
  offload: Record<string, SandboxOffloadFigures>;
}
/** How a sandbox's stages were found: write-protect tracking, or its snapshot's layers. */
export type MemoryStagesResult = MemoryStages & { method: 'write-protect' | 'snapshot-layers' | 'untracked' };
export type OffloadResult = OffloadReport;
export type PrefetchResult = PrefetchReport;

/** Wire shape of an error crossing the channel (ThawError.toJSON()). */
export interface WireError { code: string; message: string; params?: Record<string, string | number> }

/**
 * When the host handled a request, on its own monotonic clock (performance.now(), ms): the
 * message arrived, its handling started (after the requests ahead of it), the reply was sent.
 */
export interface HostStamps { recv: number; start: number; reply: number }

/**
 * A span the host recorded while it handled a traced request (see host/spans.ts): W3C ids (hex),
 * times in ms since the epoch (performance.timeOrigin + performance.now(), the clock the daemon's
 * spans use too). The request's own traceparent names the trace and the first span's parent.
 */
export interface HostSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly name: string;
  readonly startMs: number;
  readonly endMs: number;
  readonly attributes: Readonly<Record<string, string | number | boolean>>;
  /** Set when the step threw: its message. */
  readonly error?: string;
}

/** A W3C Trace Context (traceparent, version 00), parsed. */
export interface TraceParent {
  readonly traceId: string;
  readonly parentSpanId: string;
  readonly sampled: boolean;
}

/** Parses a W3C traceparent (`00-<32 hex>-<16 hex>-<2 hex>`); null when malformed or its ids are all zeros. */
export function parseTraceparent(value: string): TraceParent | null {
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(value.trim());
  if (!m || /^0+$/.test(m[1]!) || /^0+$/.test(m[2]!)) return null;
  return { traceId: m[1]!, parentSpanId: m[2]!, sampled: (parseInt(m[3]!, 16) & 1) === 1 };
}

/** The traceparent naming span `spanId` of trace `traceId` as the parent, sampled. */
export function formatTraceparent(traceId: string, spanId: string): string {
  return `00-${traceId}-${spanId}-01`;
}

/** `spans`: what the host recorded for a traced request (absent when the request was not traced). */
export type HostMessage =
  | { kind: 'reply'; reqId: number; ok: true; result: unknown; at: HostStamps; spans?: HostSpan[] }
  | { kind: 'reply'; reqId: number; ok: false; error: WireError; at: HostStamps; spans?: HostSpan[] }
  | { kind: 'log'; sandboxId: string; stream: 'stdout' | 'stderr'; text: string }
  | { kind: 'ready'; pid: number }
  /** Sent once, just before a host exits on an error nothing caught (the daemon reports it). */
  | { kind: 'fatal'; message: string };

/**
 * One request as sent. `traceparent` (W3C Trace Context, `00-<trace id>-<parent span id>-<flags>`)
 * is set when the daemon traces the request: the host then records its steps as spans under
 * that parent and returns them with the reply. Absent: the host records nothing.
 */
export interface HostEnvelope { reqId: number; req: HostRequest; traceparent?: string }

/**
 * What the daemon writes to a host: one envelope, or the envelopes of requests made in one run
 * of its code (a restore and the invoke pipelined behind it), in order, in one write.
 */
export type HostEnvelopes = HostEnvelope | HostEnvelope[];
