// thaw: Thaw's own strategy, designed from measurement on this host (2 vCPUs, nested
// virtualisation; see DESIGN.md section 1 and the numbers below). Every fresh 4 KiB page fault
// costs 12-17 us here, so a 64 MiB image costs ~270 ms in faults alone whatever fills it
// (eager copy, UFFDIO_COPY, or CoW writes to a private file mapping, which are worse: ~80 us).
// Reads of a private file mapping are cheap (large page-cache folios: ~40 faults for 64 MiB),
// but the first guest write to each page then pays a CoW fault.
// So thaw removes the faults instead of moving them: the guest range gets fresh anonymous memory
// advised MADV_HUGEPAGE (one fault per 2 MiB), and the image's present runs are read straight
// into it with large pread()s (page cache or disk, sequential readahead) at copy speed. Holes
// cost nothing (fresh memory is zero). Afterwards reads and writes run at full speed, with no
// page server, no mapping and nothing to stop.
// Measured (64 MiB, this host): 4 KiB faults + copy ~290 ms, huge pages + pread ~25-45 ms.
// Without THP ("never"), the advice fails and thaw degrades to an eager copy into fresh memory.

import { closeSync, readSync } from 'node:fs';
import { PAGE_BYTES, type SnapshotState } from '../../core/snapshot-format.js';
import { fadvise, madviseHugepage, mapAnonymous } from '../../native/index.js';
import { ThawError } from '../../core/errors.js';
import { openLazy } from '../lazy-image.js';
import { resolveImage } from '../snapshot-image.js';
import type { OpenedImage, PrepareReport, RestoreStrategy } from '../strategy.js';

/** Largest single read into guest memory. */
const READ_BYTES = 16 << 20;

export const thaw: RestoreStrategy = {
  id: 'thaw',
  description: 'fresh huge-page memory with the image read straight into it (no per-4K faults, no server)',
  supports: () => ({ ok: true }),
  prepare(root: string, chain: readonly SnapshotState[]): PrepareReport {
    const r = resolveImage(root, chain);
    closeSync(r.fd);
    return { built: r.built, elapsedMs: r.elapsedMs };
  },
  open(root: string, chain: readonly SnapshotState[]): OpenedImage {
    return openLazy('thaw', root, chain, (image) => ({
      fill({ buffer, fd, stats }) {
        mapAnonymous(buffer, 0, image.memoryBytes);
        try {
          madviseHugepage(buffer, 0, image.memoryBytes);
        } catch {
          // A hint: without THP the copy below is still correct, only slower (see header).
        }
        fadvise(fd, 0, 0, 'sequential');
        for (const run of image.runs) {
          const end = (run.firstPage + run.pageCount) * PAGE_BYTES;
          for (let at = run.firstPage * PAGE_BYTES; at < end;) {
            const n = readSync(fd, new Uint8Array(buffer, at, Math.min(READ_BYTES, end - at)), 0, Math.min(READ_BYTES, end - at), at);
            if (n === 0) throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id: image.id, detail: `${image.path} ends early at byte ${at}` });
            at += n;
            stats.bytesRead += n;
          }
        }
      },
    }));
  },
};
