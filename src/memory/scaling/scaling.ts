/**
 * Memory scaling per invocation: one interface, one module per mechanism (none.ts, balloon.ts,
 * faascale.ts). The sandbox host runs a sandbox's mechanism around each invocation: `grant`
 * before the guest runs, `release` after it returned (src/memory/scaling/host-hook.ts).
 *
 * What "memory" means on a Wasm guest: the guest's linear memory is its guest-physical memory. It
 * can grow (memory.grow, up to the declared limit) but never shrink, so giving memory back means
 * making pages stop being resident: the guest's allocator reports its free ranges
 * (`FreeRangeReport`, from the `thaw_free_ranges` export of a WASI module or from Pyodide's
 * dlmalloc), and the host discards them. A discarded range reads as zero afterwards.
 */

import { ThawError } from '../../core/errors.js';

export const SCALING_IDS = ['none', 'balloon', 'faascale'] as const;
export type ScalingId = (typeof SCALING_IDS)[number];

/** How faascale pre-populates a grant: one madvise(MADV_POPULATE_WRITE) per block, or pre-faulted pool pages moved under it. */
export const POPULATE_METHODS = ['populate-write', 'pool'] as const;
export type PopulateMethod = (typeof POPULATE_METHODS)[number];

/** A function's scaling settings (manifest field `scaling`, validated in core/function-spec.ts). */
export interface ScalingSpec {
  readonly mechanism: ScalingId;
  /** faascale: the grant's block size in MiB (4..512, a power of two; default 64). */
  readonly blockMiB: number;
  /** Memory granted per invocation in MiB (default: the function's memoryMiB). */
  readonly grantMiB: number | null;
  /** faascale: how a grant is pre-populated (default populate-write). */
  readonly populate: PopulateMethod;
  /** balloon: what the balloon leaves the guest between invocations, in MiB (default 32). */
  readonly baseMiB: number;
}

export const DEFAULT_SCALING: ScalingSpec = Object.freeze({ mechanism: 'none', blockMiB: 64, grantMiB: null, populate: 'populate-write', baseMiB: 32 });

/** A page-aligned byte range of guest memory. */
export interface ByteRange {
  readonly offset: number;
  readonly length: number;
}

/** What a guest's allocator reports as free: ranges it will not read before writing them again. */
export interface FreeRangeReport {
  /** Page-aligned (rounded inward), sorted, disjoint, inside the linear memory. */
  readonly ranges: readonly ByteRange[];
  /** How the runtime found them (for the record). */
  readonly source: string;
}

/** The guest as a scaling mechanism sees it. */
export interface ScalingGuest {
  /** The function's name (for errors). */
  readonly name: string;
  readonly memory: WebAssembly.Memory;
  readonly declaredBytes: number;
  /**
   * True when parts of the memory may be a private file mapping (a restored sandbox):
   * MADV_DONTNEED there brings the file's bytes back, so a release maps anonymous memory instead.
   */
  readonly fileBacked: boolean;
  /** The allocator's free ranges now, or null when this guest cannot report them. */
  freeRanges(): FreeRangeReport | null;
}

/** Costs of one step, in milliseconds (InvokeTimings' grantMs, populateMs, releaseMs). */
export interface ScalingTimings {
  grantMs?: number;
  populateMs?: number;
  releaseMs?: number;
}

/** One sandbox's mechanism state. */
export interface ScalingSession {
  /** Grants the invocation's memory before the guest runs. */
  grant(): Promise<ScalingTimings>;
  /** Gives memory back after the invocation. */
  release(): Promise<ScalingTimings & { releasedBytes: number }>;
  /** What the sandbox may use now. */
  grantedBytes(): number;
}

export interface ScalingMechanism {
  readonly id: ScalingId;
  readonly description: string;
  session(guest: ScalingGuest, spec: ScalingSpec): ScalingSession;
}

/** The grant of one invocation: the spec's grantMiB, else the declared size, at most the declared size. */
export function grantBytesOf(guest: ScalingGuest, spec: ScalingSpec): number {
  return Math.min(guest.declaredBytes, spec.grantMiB === null ? guest.declaredBytes : spec.grantMiB * 1024 * 1024);
}

/** Bytes covered by a list of ranges. */
export function rangeBytes(ranges: readonly ByteRange[]): number {
  let n = 0;
  for (const r of ranges) n += r.length;
  return n;
}

/**
 * Checks what a guest reported before the host discards anything: page aligned, inside the
 * memory, sorted and disjoint. A report that breaks any rule is the guest's error (it would make
 * the host discard memory the guest may still hold), reported as THAW_GUEST_ERROR.
 */
export function checkFreeRanges(name: string, report: FreeRangeReport, memoryBytes: number, pageBytes: number): void {
  let end = 0;
  for (const r of report.ranges) {
    const bad = (why: string): never => {
      throw new ThawError('THAW_GUEST_ERROR', { name, detail: `${report.source} reported free range [${r.offset}, +${r.length}): ${why}; nothing was released` });
    };
    if (!Number.isSafeInteger(r.offset) || !Number.isSafeInteger(r.length) || r.length <= 0) bad('not a positive integer range');
    if (r.offset % pageBytes !== 0 || r.length % pageBytes !== 0) bad(`not aligned to ${pageBytes}-byte pages`);
    if (r.offset + r.length > memoryBytes) bad(`past the end of linear memory (${memoryBytes} bytes)`);
    if (r.offset < end) bad('overlaps or precedes the previous range (ranges must be sorted and disjoint)');
    end = r.offset + r.length;
  }
}
