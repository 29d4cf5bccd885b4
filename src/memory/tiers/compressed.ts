// compressed: pages lz4-compressed into the sandbox host's own memory (one block per 4 KiB page)
// and decompressed back by the offloader's fault thread. Thaw's own store rather than zram: it
// needs no root, no swap device and no set-up or removal, and it is charged to the host's cgroup.

import type { OffloadTier } from './tier.js';

export const compressedTier: OffloadTier = {
  id: 'compressed',
  description: "lz4-compress pages into the host's memory; the fault thread decompresses them back",
  attach(): void {
    /* the store lives in the native offloader itself */
  },
};
