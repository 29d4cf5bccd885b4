// The restore engine's public surface: the strategy registry with every built-in strategy
// registered, the default strategy, and clean-up of the artefacts strategies keep per snapshot.

import { chmodSync, chownSync, existsSync, fstatSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { dram, dramDir, discardDramCopy, sweepOrphanDramCopies } from './strategies/dram.js';
import { eager } from './strategies/eager.js';
import { faasnap } from './strategies/faasnap.js';
import { discardPassSlot, pass, passSlotBytes, sweepOrphanPassPools } from './strategies/pass.js';
import { poolLocation } from './pass-pool.js';
import { reap } from './strategies/reap.js';
import { sabre, sabreReap, sabreZstd } from './strategies/sabre.js';
import { discardSealedImage, heldSealedImage, sealed } from './strategies/sealed.js';
import { thaw } from './strategies/thaw.js';
import { uffd } from './strategies/uffd.js';
import { vanilla, vanillaCache } from './strategies/vanilla.js';
import { registerStrategy } from './strategy.js';

for (const s of [eager, vanilla, vanillaCache, dram, uffd, reap, thaw, faasnap, sabre, sabreZstd, sabreReap, pass, sealed]) registerStrategy(s);

export { getStrategy, listStrategies, registerStrategy, emptyStats } from './strategy.js';
export type { RestoreStrategy, OpenedImage, RestoreStats, Support, PrepareReport, Verification } from './strategy.js';
export { scrubSnapshot, type ScrubReport, type FileCheck } from './scrub.js';

/** Not a strategy of its own: the platform picks one per restore (restore/auto-strategy.ts). */
export const AUTO_STRATEGY = 'auto';

/**
 * Removes the dram copies and pass pools (tmpfs: RAM) of data directories that no longer exist.
 * Returns the removed paths; never throws.
 */
export function sweepOrphanTmpfs(): string[] {
  let pools: string[] = [];
  try {
    pools = sweepOrphanPassPools();
  } catch {
    // no pool location on this host: nothing to sweep there
  }
  return [...sweepOrphanDramCopies(), ...pools];
}

/** The strategy used when a request names none. */
export const DEFAULT_STRATEGY = AUTO_STRATEGY;

/**
 * Removes what strategies keep outside a snapshot's directory (the tmpfs copy of dram, the pool
 * slot of pass) for snapshot `id` under `root`; artefacts beside the snapshot go with its directory.
 */
export function discardArtefacts(root: string, id: string): void {
  discardDramCopy(root, id);
  discardPassSlot(root, id);
  discardSealedImage(root, id);
}

/** One artefact a strategy keeps for a snapshot (built by prepare or by a first restore). */
export interface ArtefactInfo {
  /** File name (beside the snapshot or in the tmpfs copy directory), "pool slot" or "sealed.memfd" (held in the daemon's memory). */
  readonly name: string;
  /** What it is and which strategies use it. */
  readonly kind: string;
  readonly bytes: number;
  readonly tier: 'disk' | 'tmpfs' | 'pool' | 'memory';
}

/** Artefact files beside a snapshot, by name. Anything else there (state, memory, temporaries) is not listed. */
const ARTEFACT_FILES: readonly (readonly [RegExp, string])[] = [
  [/^flat\.img$/, 'flattened diff chain (every lazy strategy)'],
  [/^ws\.reap$/, 'working set (reap, thaw, sabre-reap)'],
  [/^ls\.faasnap$/, 'loading set (faasnap)'],
  [/^sabre-reap-[a-z0-9]+-\d+\.img$/, 'compressed working set (sabre-reap)'],
  [/^sabre-[a-z0-9]+-\d+\.img$/, 'compressed image (sabre, sabre-zstd)'],
  [/^thaw-sparse-[a-z0-9]+-\d+\.img$/, 'sparse loading set (thaw)'],
];

/** What strategies keep for snapshot `id` under `root`: files beside it, its tmpfs copy, its pool slot. */
/**
 * Jail: the tmpfs copy of snapshot `id` (dram) readable by group `gid` only (0 = root only), in a
 * directory hosts may traverse but not list. The pass pool location is traversable only: each
 * function's pool is a directory of its own group inside it (pass.ts passPoolOf), so
 * `_sandboxGid` (the group of all hosts) is no longer given anything there.
 */
export function grantTmpfsCopy(root: string, id: string, gid: number, _sandboxGid: number): void {
  const pool = poolLocation().dir;
  chownSync(pool, 0, 0);
  chmodSync(pool, 0o711);
  const copy = join(dramDir(root), `${id}.img`);
  if (!existsSync(copy)) return;
  for (const dir of [dirname(dramDir(root)), dramDir(root)]) chmodSync(dir, 0o711);
  chownSync(copy, 0, gid);
  chmodSync(copy, gid ? 0o640 : 0o600);
}

export function listArtefacts(root: string, id: string): ArtefactInfo[] {
  const out: ArtefactInfo[] = [];
  const sizeOf = (path: string): number | null => {
    try {
      return statSync(path).size;
    } catch {
      return null;
    }
  };
  let names: string[] = [];
  try {
    names = readdirSync(join(root, id)).sort();
  } catch {
    return out;
  }
  for (const name of names) {
    const known = ARTEFACT_FILES.find(([re]) => re.test(name));
    const bytes = known ? sizeOf(join(root, id, name)) : null;
    if (known && bytes !== null) out.push({ name, kind: known[1], bytes, tier: 'disk' });
  }
  const copy = sizeOf(join(dramDir(root), `${id}.img`));
  if (copy !== null) out.push({ name: `${id}.img`, kind: 'image copy in memory (dram)', bytes: copy, tier: 'tmpfs' });
  const slot = passSlotBytes(root, id);
  if (slot !== null) out.push({ name: 'pool slot', kind: 'byte-addressable pool slot (pass)', bytes: slot, tier: 'pool' });
  // Held by this process only (the daemon): its memory, counted as the pages the memfd holds.
  const held = heldSealedImage(root, id);
  if (held !== null) out.push({ name: 'sealed.memfd', kind: 'sealed memfd of the checked image, held by the daemon (sealed)', bytes: fstatSync(held).blocks * 512, tier: 'memory' });
  return out;
}
