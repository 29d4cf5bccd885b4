// uffd: anonymous memory registered with userfaultfd; the native server thread serves each
// fault from the snapshot image (UFFDIO_COPY; UFFDIO_ZEROPAGE for holes), on demand only.

import { closeSync } from 'node:fs';
import type { SnapshotState } from '../../core/snapshot-format.js';
import { openLazy } from '../lazy-image.js';
import { resolveImage } from '../snapshot-image.js';
import type { OpenedImage, PrepareReport, RestoreStrategy } from '../strategy.js';
import { startSession, uffdSupport, type UffdSession } from '../uffd-session.js';

export const uffd: RestoreStrategy = {
  id: 'uffd',
  description: 'anonymous memory with a userfaultfd server copying each faulting page from the image',
  verifies: 'every-byte',
  verifiesHow: 'the page server checks each page it serves (sequential faults read ahead, up to 1 MiB) against its own checksum and installs it from the checked buffer',
  supports: uffdSupport,
  prepare(root: string, chain: readonly SnapshotState[]): PrepareReport {
    const r = resolveImage(root, chain, 'verify');
    closeSync(r.fd);
    return { built: r.built, elapsedMs: r.elapsedMs };
  },
  open(root: string, chain: readonly SnapshotState[]): OpenedImage {
    let session: UffdSession | undefined;
    return openLazy('uffd', root, chain, (image) => ({
      fill({ buffer, fd, stats }) {
        session = startSession(buffer, image, fd, stats, { strategy: 'uffd' });
      },
      release() {
        session?.stop('fence');
      },
    }));
  },
};
