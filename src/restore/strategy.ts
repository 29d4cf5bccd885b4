// The restore-strategy interface: how a snapshot's memory becomes the memory of a fresh
// sandbox. One module per strategy under strategies/, looked up by stable id; the mechanics
// strategies share (image preparation, page server sessions, working sets) live once here.
//
// Lifecycle of one restore, driven by the sandbox host (sandbox/host-main.ts):
//
//   prepare(root, chain)   once per snapshot, idempotent, cached on disk beside the snapshot
//        |                 (verified/flattened image, tmpfs copy, ...); open() runs it if needed
//   open(root, chain)  ->  OpenedImage            (nothing touches guest memory yet)
//   image.fill(memory)     memory grown to the snapshot size, then copied / mapped / served
//   image.afterInvoke()    after each invocation (reap finishes its recording on the first)
//   image.release()        sandbox destroyed or host exiting: page servers stopped; idempotent

import { ThawError } from '../core/errors.js';
import type { SnapshotState } from '../core/snapshot-format.js';
import type { MemoryImage } from '../runtimes/runtime.js';

/** What a strategy reports about one restore. Counters only grow; all start at 0. */
export interface RestoreStats {
  /** Id of the strategy that restored. */
  readonly strategy: string;
  /** Bytes read from snapshot files by fill() (mapped pages read later by the guest are not counted). */
  bytesRead: number;
  /** Major / minor page faults of the host process during fill() (getrusage deltas). */
  majorFaults: number;
  minorFaults: number;
  /** Faults served by a userfaultfd page server so far (updated at afterInvoke()/release()). */
  uffdFaults: number;
  /** Pages installed ahead of use by a page server's prefetch (working-set replay). */
  prefetchedPages: number;
  /** Time spent building or checking snapshot artefacts during this restore (0 when cached). */
  prepareMs: number;
  /** Time spent in fill(). */
  fillMs: number;
  /** reap: 'record' (first restore, working set being logged) or 'replay'; null otherwise. */
  phase: 'record' | 'replay' | null;
}

/** A fresh stats record for `strategy`. */
export function emptyStats(strategy: string): RestoreStats {
  return { strategy, bytesRead: 0, majorFaults: 0, minorFaults: 0, uffdFaults: 0, prefetchedPages: 0, prepareMs: 0, fillMs: 0, phase: null };
}

/** A snapshot chain opened for one restore: the image, its stats and its lifecycle. */
export interface OpenedImage extends MemoryImage {
  readonly stats: RestoreStats;
  /** Called by the host after each invocation of the restored guest. Throws like fill(). */
  afterInvoke(): void;
  /**
   * Ends the restore: stops any page server (its unserved pages are fenced, so a guest still
   * using the memory traps instead of reading zeros) and returns the final stats. Idempotent.
   */
  release(): RestoreStats;
}

/**
 * What a strategy checks of the bytes it gives the guest (this kernel has no fs-verity, so pages
 * the kernel reads into a file mapping cannot be checked as they arrive):
 *   'every-byte'         every byte the guest can read was checked against a checksum first
 *   'partly-mapped'      what it loads is checked; the rest is mapped from a file unchecked
 *   'unverified-mapped'  it maps files into the guest; mapped pages are not checked
 * Unchecked mapped bytes are caught by a scrub: `thaw snapshots verify <id>`.
 */
export type Verification = 'every-byte' | 'partly-mapped' | 'unverified-mapped';

/** Whether a strategy can run on this host, and if not, why. */
export type Support = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** What prepare() did. */
export interface PrepareReport {
  /** False when every artefact was already in place and verified. */
  readonly built: boolean;
  readonly elapsedMs: number;
}

export interface RestoreStrategy {
  /** Stable kebab-case id used in config, CLI flags, HTTP bodies, logs and results. */
  readonly id: string;
  readonly description: string;
  /** What it checks of the bytes the guest reads (see Verification). */
  readonly verifies: Verification;
  /** One line: how it checks them, and what it leaves unchecked. */
  readonly verifiesHow: string;
  /** Whether this host can run the strategy. Cheap after the first call. */
  supports(): Support;
  /**
   * Builds and checks the artefacts this strategy needs for snapshot `chain` (base first) under
   * `root`, once: later calls find them and return quickly. Safe to run concurrently from several
   * processes (artefacts are written to temporary names and renamed into place).
   * Throws THAW_SNAPSHOT_CORRUPT when the snapshot's files fail their checksums.
   */
  prepare(root: string, chain: readonly SnapshotState[]): PrepareReport;
  /** True when prepare() never builds or checks anything: the daemon then skips its prepare worker's round trip. */
  readonly preparesNothing?: true;
  /**
   * Opens snapshot `chain` stored under `root` for one restore (preparing it first if needed).
   * Throws THAW_SNAPSHOT_CORRUPT, THAW_STRATEGY_UNAVAILABLE.
   */
  open(root: string, chain: readonly SnapshotState[]): OpenedImage;
  /**
   * Optional warm-up a sandbox host runs at prepare time, before any request, for a guest of up
   * to `bytes` bytes (e.g. thaw pre-faults memory that a later fill() moves under the guest).
   * Best effort: never throws; a later restore works (maybe slower) when it did nothing.
   */
  preallocate?(bytes: number): void;
  /**
   * Gives back what preallocate() holds, when this host's sandbox will not be restored with this
   * strategy (a cold boot, another strategy): the memory counts against the host's limit.
   */
  releasePreallocated?(): void;
}

const registry = new Map<string, RestoreStrategy>();

/** Adds a strategy to the registry (restore/index.ts registers the built-in ones once). */
export function registerStrategy(strategy: RestoreStrategy): void {
  registry.set(strategy.id, strategy);
}

/** Removes a strategy (test fixtures only). */
export function unregisterStrategy(id: string): void {
  registry.delete(id);
}

/** Looks a strategy up by id. Throws THAW_STRATEGY_UNKNOWN or THAW_STRATEGY_UNAVAILABLE (never falls back). */
export function getStrategy(id: string): RestoreStrategy {
  const strategy = registry.get(id);
  if (!strategy) throw new ThawError('THAW_STRATEGY_UNKNOWN', { strategy: id, known: [...registry.keys()].join(', ') });
  const support = strategy.supports();
  if (!support.ok) throw new ThawError('THAW_STRATEGY_UNAVAILABLE', { strategy: id, reason: support.reason });
  return strategy;
}

/** All registered strategies with their support on this host. */
export function listStrategies(): { id: string; description: string; verifies: Verification; verifiesHow: string; support: Support }[] {
  return [...registry.values()].map((s) => ({ id: s.id, description: s.description, verifies: s.verifies, verifiesHow: s.verifiesHow, support: s.supports() }));
}
