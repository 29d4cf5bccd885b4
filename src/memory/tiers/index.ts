// The offload tiers by id.

import { ThawError } from '../../core/errors.js';
import type { OffloadTierId } from '../types.js';
import { compressedTier } from './compressed.js';
import { fileTier } from './file.js';
import { remoteTier } from './remote.js';
import type { OffloadTier } from './tier.js';

export type { OffloadTier, TierContext } from './tier.js';

const TIERS: Readonly<Record<OffloadTierId, OffloadTier>> = { file: fileTier, compressed: compressedTier, remote: remoteTier };

export const TIER_IDS = Object.keys(TIERS) as OffloadTierId[];

/** Looks a tier up. Throws THAW_REQUEST_INVALID for an unknown id. */
export function getTier(id: string): OffloadTier {
  const t = TIERS[id as OffloadTierId];
  if (!t) throw new ThawError('THAW_REQUEST_INVALID', { detail: `unknown offload tier '${id}' (known: ${TIER_IDS.join(', ')})` });
  return t;
}
