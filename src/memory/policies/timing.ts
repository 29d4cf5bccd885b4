// The time constants of the memory policies, in one place: FaaSMem's and TMO's defaults, all
// scaled by one factor so that an hour of trace can replay in minutes (scale 60: 10 s become
// 167 ms). Sizes are not scaled.

import { ThawError } from '../../core/errors.js';
import type { OffloadTierId } from '../types.js';

const MiB = 1024 * 1024;

export interface PolicyTiming {
  /** faasmem: init pages are re-offloaded at most this often... */
  readonly reoffloadIntervalMs: number;
  /** ...and only after at least this many requests since the last time. */
  readonly reoffloadEveryRequests: number;
  /** semi-warm: a sandbox idle past max(P99 of its function's reuse interval, this) starts shrinking. */
  readonly semiWarmMinIdleMs: number;
  /** semi-warm: one step of giving memory back every this long. */
  readonly semiWarmStepMs: number;
  /** semi-warm: each step gives back half of what is above the floor, at least this much. */
  readonly semiWarmMinStepBytes: number;
  /** semi-warm: never below this. */
  readonly semiWarmFloorBytes: number;
  /** tmo: one limit adjustment every this long. */
  readonly tmoStepMs: number;
  /** tmo: the limit goes down by this much per step while refaults stay under the threshold. */
  readonly tmoStepBytes: number;
  /** tmo: refaulted pages per step above which the limit goes back up one step. */
  readonly tmoRefaultThreshold: number;
  /** tmo: headroom kept above the cgroup's anonymous memory (no swap here: it cannot be reclaimed). */
  readonly tmoAnonHeadroomBytes: number;
  /**
   * tmo: a swap device is behind it (the zram swap Thaw sets up for `tmo:compressed`), so reclaim
   * can take anonymous memory too: the limit may go down to tmoSwapFloorBytes.
   */
  readonly tmoSwap: boolean;
  readonly tmoSwapFloorBytes: number;
  /** Where faasmem offloads. */
  readonly tier: OffloadTierId;
}

export const DEFAULT_TIMING: PolicyTiming = {
  reoffloadIntervalMs: 10_000,
  reoffloadEveryRequests: 8,
  semiWarmMinIdleMs: 60_000,
  semiWarmStepMs: 10_000,
  semiWarmMinStepBytes: 4 * MiB,
  semiWarmFloorBytes: 8 * MiB,
  tmoStepMs: 10_000,
  tmoStepBytes: 4 * MiB,
  tmoRefaultThreshold: 64,
  tmoAnonHeadroomBytes: 8 * MiB,
  tmoSwap: false,
  tmoSwapFloorBytes: 16 * MiB,
  tier: 'compressed',
};

/** `timing` with every duration divided by `scale` (> 0; 60 replays an hour in a minute). */
export function scaleTiming(timing: PolicyTiming, scale: number): PolicyTiming {
  if (!(scale > 0) || !Number.isFinite(scale)) throw new ThawError('THAW_CONFIG_INVALID', { detail: `time scale must be a positive number, got ${scale}` });
  return {
    ...timing,
    reoffloadIntervalMs: timing.reoffloadIntervalMs / scale,
    semiWarmMinIdleMs: timing.semiWarmMinIdleMs / scale,
    semiWarmStepMs: timing.semiWarmStepMs / scale,
    tmoStepMs: timing.tmoStepMs / scale,
  };
}
