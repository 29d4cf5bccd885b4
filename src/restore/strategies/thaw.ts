// thaw: Thaw's own strategy, designed from measurement on this host (2 vCPUs, nested
// virtualisation; DESIGN.md section 1). A first touch of a fresh 4 KiB page costs 12-25 us here
// (0.16-0.25 GB/s), a CoW write to a private file mapping more, a userfaultfd round trip ~40 us,
// while memcpy into memory that is already resident runs at 12-17 GB/s. So thaw makes sure the
// guest's working set lands in memory that is already faulted in, read with few large reads:
//
//   prepare time (sandbox host, before any request: preallocate)
//     a pool of anonymous memory, 2 MiB aligned, MADV_HUGEPAGE, MADV_POPULATE_WRITE: resident, zero
//   restore (fill)
//     load blocks = the 2 MiB blocks holding a working-set page (ws.reap, recorded as reap records
//                   it), or every block when there is no working set
//     guest memory   [ file MAP_PRIVATE | pool | pool | file MAP_PRIVATE | pool ... ]
//                     lazy, as vanilla    eager: pool memory moved under the block (mremap), then
//                                         the image's present pages pread() into it; holes stay zero
//
// Blocks are 2 MiB because moving pool memory costs almost nothing in whole huge pages (64 MiB:
// 0.4 ms, no faults afterwards) but more than a fault in 4 KiB pieces (THP splits: ~50 us per
// mremap here). Where the pool is short (no preallocate, or a bigger guest) the block gets fresh
// huge-page-advised memory instead (64 MiB: ~5-17 ms of faults). Pages outside the load blocks are
// read from the file on demand, as vanilla does, so a small sequential working set costs only its
// blocks; a working set scattered over every block costs one read of the whole image.
// The first restore of a snapshot without a working set records one with userfaultfd (as reap
// does; the file is shared with reap); where userfaultfd is refused, thaw loads every block.
// After fill() no page server runs and nothing needs stopping.

import { closeSync, readSync } from 'node:fs';
import { ThawError } from '../../core/errors.js';
import { PAGE_BYTES, type PageRun, type SnapshotState } from '../../core/snapshot-format.js';
import { fadvise, madviseHugepage, mapAnonymous, mapFile, poolMoveRuns, poolReserve, type PageRun as ByteRun } from '../../native/index.js';
import { openLazy } from '../lazy-image.js';
import { resolveImage, type SnapshotImage } from '../snapshot-image.js';
import type { OpenedImage, PrepareReport, RestoreStats, RestoreStrategy } from '../strategy.js';
import { startSession, uffdSupport, type UffdSession } from '../uffd-session.js';
import { readWorkingSet, runsFromOffsets, writeWorkingSet, type WorkingSet } from '../working-set.js';

/** Granularity of eager loading: one transparent huge page. */
const BLOCK_BYTES = 2 << 20;
/** Largest single read into guest memory. */
const READ_BYTES = 16 << 20;
/** Most pre-faulted memory a sandbox host keeps for thaw (resident even when unused). */
const POOL_CAP_BYTES = 512 << 20;

/**
 * Guest byte ranges thaw loads eagerly, ascending and merged: every 2 MiB block holding a page of
 * `ws`, or the whole memory when there is no working set. Ends are clamped to `memoryBytes`.
 */
export function loadRuns(memoryBytes: number, ws: WorkingSet | null): ByteRun[] {
  if (ws === null) return [{ offsetBytes: 0, lengthBytes: memoryBytes }];
  const out: { offsetBytes: number; lengthBytes: number }[] = [];
  for (const run of ws.runs) {
    const lo = Math.floor((run.firstPage * PAGE_BYTES) / BLOCK_BYTES) * BLOCK_BYTES;
    const hi = Math.min(memoryBytes, Math.ceil(((run.firstPage + run.pageCount) * PAGE_BYTES) / BLOCK_BYTES) * BLOCK_BYTES);
    const last = out[out.length - 1];
    if (last && lo <= last.offsetBytes + last.lengthBytes) {
      last.lengthBytes = Math.max(last.lengthBytes, hi - last.offsetBytes);
    } else {
      out.push({ offsetBytes: lo, lengthBytes: hi - lo });
    }
  }
  return out;
}

/** Reads the image's present pages inside `load` (both ascending) into `buffer` at their offsets. */
function readPresent(fd: number, image: SnapshotImage, load: readonly ByteRun[], buffer: ArrayBuffer, stats: RestoreStats): void {
  let i = 0;
  for (const l of load) {
    const lEnd = l.offsetBytes + l.lengthBytes;
    while (i < image.runs.length && endOf(image.runs[i]!) <= l.offsetBytes) i++;
    for (let j = i; j < image.runs.length && image.runs[j]!.firstPage * PAGE_BYTES < lEnd; j++) {
      const run = image.runs[j]!;
      const end = Math.min(lEnd, endOf(run));
      for (let at = Math.max(l.offsetBytes, run.firstPage * PAGE_BYTES); at < end;) {
        const want = Math.min(READ_BYTES, end - at);
        const n = readSync(fd, new Uint8Array(buffer, at, want), 0, want, at);
        if (n === 0) throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id: image.id, detail: `${image.path} ends early at byte ${at}` });
        at += n;
        stats.bytesRead += n;
      }
    }
  }
}

function endOf(run: PageRun): number {
  return (run.firstPage + run.pageCount) * PAGE_BYTES;
}

/** Puts resident memory under every load run: pool memory while it lasts, then fresh huge-page-advised memory. */
function residentMemory(buffer: ArrayBuffer, load: readonly ByteRun[]): void {
  const moved = poolMoveRuns(buffer, load);
  for (const r of load.slice(moved)) {
    mapAnonymous(buffer, r.offsetBytes, r.lengthBytes);
    try {
      madviseHugepage(buffer, r.offsetBytes, r.lengthBytes);
    } catch {
      // A hint: without THP the reads below are still correct, they only pay 4 KiB faults.
    }
  }
}

export const thaw: RestoreStrategy = {
  id: 'thaw',
  description: 'working-set blocks read into pre-faulted pooled memory (2 MiB pages moved in by mremap), the rest mapped from the file',
  supports: () => ({ ok: true }),
  prepare(root: string, chain: readonly SnapshotState[]): PrepareReport {
    const r = resolveImage(root, chain);
    closeSync(r.fd);
    return { built: r.built, elapsedMs: r.elapsedMs };
  },
  preallocate(bytes: number): void {
    try {
      poolReserve(Math.min(bytes, POOL_CAP_BYTES));
    } catch {
      // Best effort: without a pool, fill() uses fresh huge-page memory (slower, still correct).
    }
  },
  open(root: string, chain: readonly SnapshotState[]): OpenedImage {
    let session: UffdSession | undefined;
    return openLazy('thaw', root, chain, (image) => {
      const memoryPages = image.memoryBytes / PAGE_BYTES;
      const ws = readWorkingSet(image.dir, image.id, memoryPages);
      const record = ws === null && uffdSupport().ok;
      return {
        fill({ buffer, fd, stats }) {
          if (record) {
            stats.phase = 'record';
            session = startSession(buffer, image, fd, stats, { strategy: 'thaw', record: true });
            return;
          }
          stats.phase = ws === null ? null : 'replay';
          const load = loadRuns(image.memoryBytes, ws);
          const loadedBytes = load.reduce((n, r) => n + r.lengthBytes, 0);
          if (loadedBytes < image.memoryBytes) mapFile(buffer, 0, image.memoryBytes, fd, 0, { private: true });
          residentMemory(buffer, load);
          fadvise(fd, 0, 0, 'sequential');
          readPresent(fd, image, load, buffer, stats);
        },
        afterInvoke() {
          if (!record || session === undefined || !session.running) return;
          // As reap: recording ends with the first invocation; install what was never touched
          // so the sandbox keeps running on plain memory, and publish the working set.
          const st = session.stop('fill');
          if (st !== null) writeWorkingSet(image.dir, { memoryPages, runs: runsFromOffsets(st.recorded) });
        },
        release() {
          session?.stop('fence');
        },
      };
    });
  },
};
