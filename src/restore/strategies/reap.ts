// reap (REAP): the first restore of a snapshot records its working set: a userfaultfd server
// logs every page the guest faults on until its first invocation ends; the offsets are sorted,
// merged into runs and written beside the snapshot (ws.reap, atomically). Later restores read
// that file in one read and have the server install all its runs at once (UFFDIO_COPY with
// DONTWAKE, then one wake) while the guest starts; the rest is served on demand.
// Concurrent restores of one snapshot share the file through the page cache.

import { closeSync } from 'node:fs';
import { PAGE_BYTES, type SnapshotState } from '../../core/snapshot-format.js';
import { openLazy } from '../lazy-image.js';
import { resolveImage } from '../snapshot-image.js';
import type { OpenedImage, PrepareReport, RestoreStrategy } from '../strategy.js';
import { startSession, uffdSupport, type UffdSession } from '../uffd-session.js';
import { readWorkingSet } from '../working-set.js';

export const reap: RestoreStrategy = {
  id: 'reap',
  description: 'record the working set on the first restore (uffd), then prefetch it in one batch and serve the rest on demand',
  verifies: 'every-byte',
  verifiesHow: 'the page server checks each page it prefetches or serves (sequential faults read ahead, up to 1 MiB) against its own checksum and installs it from the checked buffer',
  supports: uffdSupport,
  /** Resolves and verifies the image; the working set itself needs a run of the guest, so the first open records it. */
  prepare(root: string, chain: readonly SnapshotState[]): PrepareReport {
    const r = resolveImage(root, chain, 'verify');
    closeSync(r.fd);
    return { built: r.built, elapsedMs: r.elapsedMs };
  },
  open(root: string, chain: readonly SnapshotState[]): OpenedImage {
    let session: UffdSession | undefined;
    return openLazy('reap', root, chain, (image) => {
      const memoryPages = image.memoryBytes / PAGE_BYTES;
      const ws = readWorkingSet(image.dir, image.id, memoryPages);
      return {
        fill({ buffer, fd, stats }) {
          stats.phase = ws === null ? 'record' : 'replay';
          session = startSession(buffer, image, fd, stats, ws === null ? { strategy: 'reap', record: true } : { strategy: 'reap', prefetch: ws.runs });
        },
        afterInvoke() {
          if (ws === null) session?.finishRecording(image.dir, memoryPages);
        },
        release() {
          session?.stop('fence');
        },
      };
    });
  },
};
