// The memory policies by id, for the keep-alive scheduler and `thaw replay`.

import { ThawError } from '../../core/errors.js';
import type { MemoryPolicy } from '../types.js';
import { faasmemPolicy } from './faasmem.js';
import { nonePolicy } from './none.js';
import { DEFAULT_TIMING, scaleTiming, type PolicyTiming } from './timing.js';
import { tmoPolicy } from './tmo.js';

export { DEFAULT_TIMING, scaleTiming, type PolicyTiming } from './timing.js';

export const POLICY_IDS = ['none', 'tmo', 'faasmem', 'faasmem-no-stages', 'faasmem-no-semiwarm'] as const;
export type PolicyId = (typeof POLICY_IDS)[number];

/**
 * A new policy instance (its per-sandbox state is its own). `timing` defaults to FaaSMem's and
 * TMO's constants; `scale` divides every duration (60: an hour of trace in a minute).
 * Throws THAW_CONFIG_INVALID for an unknown id or a bad scale.
 */
export function createPolicy(id: string, opts: { timing?: Partial<PolicyTiming>; scale?: number; now?: () => number } = {}): MemoryPolicy {
  const timing = scaleTiming({ ...DEFAULT_TIMING, ...opts.timing }, opts.scale ?? 1);
  const now = opts.now ?? Date.now;
  switch (id as PolicyId) {
    case 'none':
      return nonePolicy;
    case 'tmo':
      return tmoPolicy(timing, now);
    case 'faasmem':
      return faasmemPolicy({ stages: true, semiWarm: true, timing, now });
    case 'faasmem-no-stages':
      return faasmemPolicy({ stages: false, semiWarm: true, timing, now });
    case 'faasmem-no-semiwarm':
      return faasmemPolicy({ stages: true, semiWarm: false, timing, now });
  }
  throw new ThawError('THAW_CONFIG_INVALID', { detail: `unknown memory policy '${id}' (known: ${POLICY_IDS.join(', ')})` });
}
