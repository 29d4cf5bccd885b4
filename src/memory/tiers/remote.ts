// remote: pages sent to a memory server in another process (remote-server.ts), the stand-in for
// FaaSMem's Fastswap over RDMA. A jailed host has no network: it connects to the daemon's Unix
// socket, relayed to the server's TCP port; the server may add a per-page latency on fetches.
// If the server goes away, a page that must come back cannot: the sandbox's memory is fenced
// and its next request fails with THAW_MEMORY_SERVER_LOST (it never reads wrong bytes).

import { toThawError } from '../../core/errors.js';
import type { OffloadTier, TierContext } from './tier.js';
import { unavailable } from './tier.js';

/** How long the fault thread waits for the server before it gives the page up as lost. */
export const REMOTE_TIMEOUT_MS = 5000;

export const remoteTier: OffloadTier = {
  id: 'remote',
  description: 'send pages to a memory server process over TCP (through the daemon\'s Unix socket relay)',
  attach(ctx: TierContext): void {
    if (ctx.memorySocket === null) throw unavailable(ctx, 'remote', 'the daemon runs no memory server');
    try {
      ctx.offloader.connect(ctx.memorySocket, REMOTE_TIMEOUT_MS);
    } catch (err: unknown) {
      throw unavailable(ctx, 'remote', `cannot reach the memory server at ${ctx.memorySocket}: ${toThawError(err).message}`);
    }
  },
};
