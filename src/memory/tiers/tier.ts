// The offload-tier interface: where a sandbox's cold pages go. Every tier stores pages through the
// same native offloader (native/thaw_offload.c: one userfaultfd per guest memory, a thread that
// puts a page back on its first touch); a tier module only makes the offloader able to use it.

import { ThawError } from '../../core/errors.js';
import type { GuestOffloader } from '../../native/index.js';
import type { OffloadTierId } from '../types.js';

/** What a tier needs to attach to one sandbox's memory. */
export interface TierContext {
  readonly sandboxId: string;
  readonly offloader: GuestOffloader;
  /** The snapshot image the sandbox was restored from (byte i = guest byte i), or null after a boot. */
  readonly imagePath: string | null;
  /** The daemon's Unix socket to the memory server, or null when it runs none. */
  readonly memorySocket: string | null;
}

export interface OffloadTier {
  readonly id: OffloadTierId;
  readonly description: string;
  /** Makes ctx.offloader able to store pages here (called once per sandbox). Throws THAW_OFFLOAD_UNAVAILABLE. */
  attach(ctx: TierContext): void;
}

/** The error a tier raises when it cannot serve this sandbox. */
export function unavailable(ctx: TierContext, tier: OffloadTierId, reason: string): ThawError {
  return new ThawError('THAW_OFFLOAD_UNAVAILABLE', { id: ctx.sandboxId, tier, reason });
}
