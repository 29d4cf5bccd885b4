// vanilla and vanilla-cache: mmap the snapshot's memory file MAP_PRIVATE over the sandbox's
// memory; pages fault in from the file as the guest touches them (guest writes stay private).
// vanilla drops the file's page cache first (a cold, on-disk restore); vanilla-cache keeps it
// (and warms it at prepare): the "memory-cached" upper bound of the published comparisons.

import { closeSync } from 'node:fs';
import type { SnapshotState } from '../../core/snapshot-format.js';
import { fadvise, mapFile } from '../../native/index.js';
import { openLazy } from '../lazy-image.js';
import { resolveImage } from '../snapshot-image.js';
import type { OpenedImage, PrepareReport, RestoreStrategy } from '../strategy.js';

function mappingStrategy(id: string, description: string, cache: 'drop' | 'keep'): RestoreStrategy {
  return {
    id,
    description,
    verifies: 'unverified-mapped',
    verifiesHow: 'maps the image file straight over guest memory: pages the kernel reads in are not checked (prepare and `thaw snapshots verify` check the file)',
    supports: () => ({ ok: true }),
    prepare(root: string, chain: readonly SnapshotState[]): PrepareReport {
      const r = resolveImage(root, chain, 'verify');
      try {
        if (cache === 'keep') fadvise(r.fd, 0, 0, 'willneed');
      } finally {
        closeSync(r.fd);
      }
      return { built: r.built, elapsedMs: r.elapsedMs };
    },
    open(root: string, chain: readonly SnapshotState[]): OpenedImage {
      return openLazy(id, root, chain, (image) => ({
        fill({ buffer, fd }) {
          // Clean cached pages only: a file just written may keep dirty pages until writeback.
          if (cache === 'drop') fadvise(fd, 0, 0, 'dontneed');
          mapFile(buffer, 0, image.memoryBytes, fd, 0, { private: true });
        },
      }));
    },
  };
}

export const vanilla = mappingStrategy('vanilla', 'mmap the memory file MAP_PRIVATE after dropping its page cache; pages fault in from disk', 'drop');
export const vanillaCache = mappingStrategy('vanilla-cache', 'mmap the memory file MAP_PRIVATE with the file kept in the page cache', 'keep');
