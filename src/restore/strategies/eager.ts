// eager: read the whole snapshot image into the sandbox's memory before the guest runs, then
// verify every chunk checksum. The baseline every other strategy is compared against.

import { ThawError } from '../../core/errors.js';
import type { SnapshotState } from '../../core/snapshot-format.js';
import { loadChainInto } from '../../snapshot/snapshot-io.js';
import { growTo, measured } from '../guest-memory.js';
import { emptyStats, type OpenedImage, type RestoreStrategy } from '../strategy.js';

export const eager: RestoreStrategy = {
  id: 'eager',
  description: 'read the whole image into guest memory before resuming',
  verifies: 'every-byte',
  verifiesHow: 'reads the whole chain and checks every 1 MiB chunk checksum before the guest runs',
  supports: () => ({ ok: true }),
  /** Nothing to build: eager reads the snapshot files as they are and checks them on each load. */
  prepare: () => ({ built: false, elapsedMs: 0 }),
  preparesNothing: true,
  open(root: string, chain: readonly SnapshotState[]): OpenedImage {
    const top = chain[chain.length - 1];
    if (!top) throw new ThawError('THAW_INTERNAL', { detail: 'eager.open: empty chain' });
    const byteLength = top.meta.memoryBytes;
    const stats = emptyStats('eager');
    return {
      byteLength,
      stats,
      fill(memory: WebAssembly.Memory): void {
        measured(stats, () => {
          const buffer = growTo(memory, byteLength, top.meta.functionName);
          stats.bytesRead += loadChainInto(root, chain, new Uint8Array(buffer)).bytesRead;
        });
      },
      toBytes(): Uint8Array {
        const bytes = new Uint8Array(byteLength);
        stats.bytesRead += loadChainInto(root, chain, bytes).bytesRead;
        return bytes;
      },
      afterInvoke: () => undefined,
      release: () => stats,
    };
  },
};
