// The memory policies by id: the one registry the keep-alive scheduler and `thaw replay` build
// them from (the six below, and any a test or an experiment registers).

import { ThawError } from '../../core/errors.js';
import type { MemoryPolicy } from '../types.js';
import { faasmemPolicy } from './faasmem.js';
import { nonePolicy } from './none.js';
import { DEFAULT_TIMING, scaleTiming, type PolicyTiming } from './timing.js';
import { tmoPolicy } from './tmo.js';

export { DEFAULT_TIMING, scaleTiming, type PolicyTiming } from './timing.js';

export const POLICY_IDS = ['none', 'tmo', 'faasmem', 'faasmem-no-stages', 'faasmem-no-semiwarm', 'faasmem-prefetch'] as const;
export type PolicyId = (typeof POLICY_IDS)[number];

/** Builds a policy from its scaled timing (the tier is timing.tier) and its clock. */
export type PolicyFactory = (timing: PolicyTiming, now: () => number) => MemoryPolicy;

const POLICIES = new Map<string, PolicyFactory>([
  ['none', () => nonePolicy],
  ['tmo', (timing, now) => tmoPolicy(timing, now)],
  ['faasmem', (timing, now) => faasmemPolicy({ stages: true, semiWarm: true, timing, now })],
  ['faasmem-no-stages', (timing, now) => faasmemPolicy({ stages: false, semiWarm: true, timing, now })],
  ['faasmem-no-semiwarm', (timing, now) => faasmemPolicy({ stages: true, semiWarm: false, timing, now })],
  ['faasmem-prefetch', (timing, now) => faasmemPolicy({ stages: true, semiWarm: true, prefetch: true, timing, now })],
]);

/** Adds a policy under its id (a test's or an experiment's); the built-in ids cannot be replaced. */
export function registerPolicy(id: string, factory: PolicyFactory): void {
  if ((POLICY_IDS as readonly string[]).includes(id)) throw new ThawError('THAW_CONFIG_INVALID', { detail: `memory policy '${id}' is built in and cannot be replaced` });
  POLICIES.set(id, factory);
}

/** Every policy id known now, built-in ones first. */
export function policyIds(): string[] {
  return [...POLICIES.keys()];
}

/**
 * A new policy instance (its per-sandbox state is its own). `timing` defaults to FaaSMem's and
 * TMO's constants (timing.tier: where it offloads); `scale` divides every duration (60: an hour
 * of trace in a minute). Throws THAW_CONFIG_INVALID for an unknown id or a bad scale.
 */
export function createPolicy(id: string, opts: { timing?: Partial<PolicyTiming>; scale?: number; now?: () => number } = {}): MemoryPolicy {
  const factory = POLICIES.get(id);
  if (!factory) throw new ThawError('THAW_CONFIG_INVALID', { detail: `unknown memory policy '${id}' (known: ${policyIds().join(', ')})` });
  const timing = scaleTiming({ ...DEFAULT_TIMING, ...opts.timing }, opts.scale ?? 1);
  return factory(timing, opts.now ?? Date.now);
}
