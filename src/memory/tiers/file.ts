// file: clean pages that came from a snapshot are dropped and fault back from the snapshot image
// (page cache or disk). Nothing is stored: a page goes only when it is byte-identical to the
// image's page at the same offset (compared at offload time), so a page written since the
// restore never does. A booted sandbox has no image: this tier refuses it.

import { closeSync, openSync } from 'node:fs';
import type { OffloadTier, TierContext } from './tier.js';
import { unavailable } from './tier.js';

export const fileTier: OffloadTier = {
  id: 'file',
  description: 'drop pages identical to the snapshot image; they fault back from the image file',
  attach(ctx: TierContext): void {
    if (ctx.imagePath === null) throw unavailable(ctx, 'file', 'the sandbox was booted, not restored: none of its pages came from a snapshot');
    const fd = openSync(ctx.imagePath, 'r');
    try {
      ctx.offloader.setImage(fd);
    } finally {
      closeSync(fd);
    }
  },
};
