// The restore engine's public surface: the strategy registry with every built-in strategy
// registered, the default strategy, and clean-up of the artefacts strategies keep per snapshot.

import { dram, discardDramCopy } from './strategies/dram.js';
import { eager } from './strategies/eager.js';
import { faasnap } from './strategies/faasnap.js';
import { discardPassSlot, pass } from './strategies/pass.js';
import { reap } from './strategies/reap.js';
import { sabre, sabreReap, sabreZstd } from './strategies/sabre.js';
import { thaw } from './strategies/thaw.js';
import { uffd } from './strategies/uffd.js';
import { vanilla, vanillaCache } from './strategies/vanilla.js';
import { registerStrategy } from './strategy.js';

for (const s of [eager, vanilla, vanillaCache, dram, uffd, reap, thaw, faasnap, sabre, sabreZstd, sabreReap, pass]) registerStrategy(s);

export { getStrategy, listStrategies, registerStrategy, emptyStats } from './strategy.js';
export type { RestoreStrategy, OpenedImage, RestoreStats, Support, PrepareReport } from './strategy.js';

/** The strategy used when a request names none. */
export const DEFAULT_STRATEGY = 'eager';

/**
 * Removes what strategies keep outside a snapshot's directory (the tmpfs copy of dram, the pool
 * slot of pass) for snapshot `id` under `root`; artefacts beside the snapshot go with its directory.
 */
export function discardArtefacts(root: string, id: string): void {
  discardDramCopy(root, id);
  discardPassSlot(root, id);
}
