// The restore-strategy interface: how a snapshot's memory becomes the memory of a fresh
// sandbox. One module per strategy under strategies/, looked up by stable id. The restore
// engine (native page server, REAP, FaaSnap, Sabre, PASS, ...) adds strategies here.

import { ThawError } from '../core/errors.js';
import type { SnapshotState } from '../core/snapshot-format.js';
import type { MemoryImage } from '../runtimes/runtime.js';

/** What a strategy reports about one restore. */
export interface RestoreStats {
  /** Bytes read from snapshot files. */
  bytesRead: number;
}

/** A snapshot chain opened for one restore. */
export interface OpenedImage extends MemoryImage {
  readonly stats: RestoreStats;
}

/** Whether a strategy can run on this host, and if not, why. */
export type Support = { readonly ok: true } | { readonly ok: false; readonly reason: string };

export interface RestoreStrategy {
  /** Stable kebab-case id used in config, CLI flags, HTTP bodies, logs and results. */
  readonly id: string;
  readonly description: string;
  supports(): Support;
  /** Opens snapshot `chain` (base first) stored under `root` for one restore. */
  open(root: string, chain: readonly SnapshotState[]): OpenedImage;
}

const registry = new Map<string, RestoreStrategy>();

/** Adds a strategy to the registry (each strategy module registers itself once). */
export function registerStrategy(strategy: RestoreStrategy): void {
  registry.set(strategy.id, strategy);
}

/** Looks a strategy up by id. Throws THAW_STRATEGY_UNKNOWN or THAW_STRATEGY_UNAVAILABLE. */
export function getStrategy(id: string): RestoreStrategy {
  const strategy = registry.get(id);
  if (!strategy) throw new ThawError('THAW_STRATEGY_UNKNOWN', { strategy: id, known: [...registry.keys()].join(', ') });
  const support = strategy.supports();
  if (!support.ok) throw new ThawError('THAW_STRATEGY_UNAVAILABLE', { strategy: id, reason: support.reason });
  return strategy;
}

/** All registered strategies with their support on this host. */
export function listStrategies(): { id: string; description: string; support: Support }[] {
  return [...registry.values()].map((s) => ({ id: s.id, description: s.description, support: s.supports() }));
}
