// sabre (Sabre): the snapshot's present page runs, split into partitions of at most 1 MiB, are
// compressed once at prepare (sabre-image.ts: partition table of offset, size, stored size, codec,
// crc32) into a file beside the snapshot. Opening checks the table; fill() reads each partition
// into a warm staging buffer, checks its crc32 and decompresses it straight into fresh
// huge-page-advised anonymous guest memory (as thaw does: no per-4K faults; holes stay untouched
// zero pages; incompressible partitions are stored raw and read straight into place), before the
// guest resumes. A damaged partition fails the restore with THAW_SNAPSHOT_CORRUPT.
//
// Ids (stable; one artefact file per codec and level):
//   sabre       lz4 block format, acceleration 1   -> sabre-lz4-1.img
//   sabre-zstd  zstd level 1                        -> sabre-zstd-1.img
//   sabre-reap  REAP + compression: the working set recorded as reap records it (uffd, ws.reap,
//               shared with reap), compressed with lz4 (sabre-reap-lz4-1.img). Replay maps the
//               memory file MAP_PRIVATE for on-demand pages and decompresses the working set into
//               anonymous memory over its runs, so no page server runs after the first restore.
// Other levels: sabreStrategy({ codec, level }) builds e.g. 'sabre-zstd-3' (id: sabre[-zstd][-level],
// the level only when it is not 1); only the three above are registered.
// Partitions are read, checked and decompressed by several native threads at once (Sabre's
// parallel decompression; the addon's fill, FILL_THREADS = cores + 1), so one thread's disk wait
// overlaps another's decoding and the first touches of fresh guest pages are spread over cores.

import { closeSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { PAGE_BYTES, type SnapshotState } from '../../core/snapshot-format.js';
import { madviseHugepage, mapAnonymous, mapFile, type Codec } from '../../native/index.js';
import { openLazy } from '../lazy-image.js';
import { ensureCompressed, fillPartitions, sourceKey, type OpenedCompressedImage } from '../sabre-image.js';
import { resolveImage } from '../snapshot-image.js';
import type { OpenedImage, PrepareReport, RestoreStats, RestoreStrategy } from '../strategy.js';
import { startSession, uffdSupport, type UffdSession } from '../uffd-session.js';
import { encodeWorkingSet, readWorkingSet } from '../working-set.js';


/** Restore stats of the sabre strategies. */
export interface SabreStats extends RestoreStats {
  codec: Codec;
  level: number;
  /** Uncompressed bytes / stored bytes of the partitions this restore decompressed (0 when none). */
  compressionRatio: number;
  /** Bytes of partition data decompressed into guest memory. */
  decompressedBytes: number;
  /** Threads that read and decompressed partitions (0 when none ran). */
  fillThreads: number;
}

/** Options of a sabre strategy. */
export interface SabreOptions {
  readonly codec: Codec;
  /** lz4 acceleration or zstd level. Default 1. */
  readonly level?: number;
}

function sabreId(base: string, codec: Codec, level: number): string {
  return `${base}${codec === 'zstd' ? '-zstd' : ''}${level === 1 ? '' : `-${level}`}`;
}

function sabreStats(stats: RestoreStats, codec: Codec, level: number): SabreStats {
  return Object.assign(stats, { codec, level, compressionRatio: 0, decompressedBytes: 0, fillThreads: 0 });
}

function fillFrom(stats: SabreStats, opened: OpenedCompressedImage, id: string, buffer: ArrayBuffer): void {
  try {
    const r = fillPartitions(id, opened, buffer);
    stats.bytesRead += r.bytesRead;
    stats.fillThreads = r.threads;
  } finally {
    closeSync(opened.fd);
  }
  stats.decompressedBytes += opened.rawBytes;
  stats.compressionRatio = opened.storedBytes > 0 ? opened.rawBytes / opened.storedBytes : 0;
}

function hugepageHint(buffer: ArrayBuffer, offsetBytes: number, lengthBytes: number): void {
  try {
    madviseHugepage(buffer, offsetBytes, lengthBytes);
  } catch {
    // A hint only (no THP): decompression is still correct, it pays 4 KiB faults.
  }
}

/** A whole-image sabre strategy for one codec and level. */
export function sabreStrategy(options: SabreOptions): RestoreStrategy {
  const { codec } = options;
  const level = options.level ?? 1;
  const id = sabreId('sabre', codec, level);
  const file = `sabre-${codec}-${level}.img`;
  return {
    id,
    description: `present pages compressed (${codec}${codec === 'zstd' ? ` level ${level}` : ''}) in 1 MiB partitions, decompressed into place before resuming`,
    verifies: 'every-byte',
    verifiesHow: 'each stored partition\'s crc32 is checked as it is read (the file was built from a checked image); pages without data are fresh zero memory',
    supports: () => ({ ok: true }),
    prepare(root: string, chain: readonly SnapshotState[]): PrepareReport {
      const t0 = performance.now();
      const r = resolveImage(root, chain, 'verify');
      try {
        const c = ensureCompressed(join(r.image.dir, file), r.image, r.fd, sourceKey(r.image.state), r.image.runs, codec, level, 'all');
        closeSync(c.opened.fd);
        return { built: r.built || c.built, elapsedMs: performance.now() - t0 };
      } finally {
        closeSync(r.fd);
      }
    },
    open(root: string, chain: readonly SnapshotState[]): OpenedImage {
      return openLazy(id, root, chain, (image, fd, plain) => {
        const stats = sabreStats(plain, codec, level);
        const t0 = performance.now();
        const c = ensureCompressed(join(image.dir, file), image, fd, sourceKey(image.state), image.runs, codec, level, 'table');
        if (c.built) stats.prepareMs += performance.now() - t0;
        let opened: OpenedCompressedImage | undefined = c.opened;
        return {
          fill({ buffer }) {
            const o = opened!;
            opened = undefined;
            mapAnonymous(buffer, 0, image.memoryBytes);
            hugepageHint(buffer, 0, image.memoryBytes);
            fillFrom(stats, o, image.id, buffer);
          },
          release() {
            if (opened !== undefined) closeSync(opened.fd);
            opened = undefined;
          },
        };
      });
    },
  };
}

/** sabre-reap: REAP's working set, compressed (lz4) and decompressed into place on replay. */
export function sabreReapStrategy(options: SabreOptions = { codec: 'lz4' }): RestoreStrategy {
  const { codec } = options;
  const level = options.level ?? 1;
  const id = sabreId('sabre-reap', codec, level);
  const file = `sabre-reap-${codec}-${level}.img`;
  return {
    id,
    description: `REAP working set compressed (${codec}) and decompressed into place; the rest faults in from the mapped image`,
    verifies: 'partly-mapped',
    verifiesHow: 'recording: checked pages via uffd; replay: working-set partitions crc-checked as read, the rest mapped from the image unchecked',
    supports: uffdSupport,
    /** Resolves and verifies the image; the working set needs a run of the guest, so the first open records it. */
    prepare(root: string, chain: readonly SnapshotState[]): PrepareReport {
      const t0 = performance.now();
      const r = resolveImage(root, chain, 'verify');
      try {
        const pages = r.image.memoryBytes / PAGE_BYTES;
        const ws = readWorkingSet(r.image.dir, r.image.id, pages);
        if (ws === null) return { built: r.built, elapsedMs: r.elapsedMs };
        const key = sourceKey(r.image.state, encodeWorkingSet(ws));
        const c = ensureCompressed(join(r.image.dir, file), r.image, r.fd, key, ws.runs, codec, level, 'all');
        closeSync(c.opened.fd);
        return { built: r.built || c.built, elapsedMs: performance.now() - t0 };
      } finally {
        closeSync(r.fd);
      }
    },
    open(root: string, chain: readonly SnapshotState[]): OpenedImage {
      let session: UffdSession | undefined;
      return openLazy(id, root, chain, (image, fd, plain) => {
        const stats = sabreStats(plain, codec, level);
        const memoryPages = image.memoryBytes / PAGE_BYTES;
        const ws = readWorkingSet(image.dir, image.id, memoryPages);
        let opened: OpenedCompressedImage | undefined;
        if (ws !== null) {
          const t0 = performance.now();
          const c = ensureCompressed(join(image.dir, file), image, fd, sourceKey(image.state, encodeWorkingSet(ws)), ws.runs, codec, level, 'table');
          if (c.built) stats.prepareMs += performance.now() - t0;
          opened = c.opened;
        }
        return {
          fill({ buffer, fd: imageFd }) {
            if (ws === null || opened === undefined) {
              stats.phase = 'record';
              session = startSession(buffer, image, imageFd, stats, { strategy: id, record: true });
              return;
            }
            stats.phase = 'replay';
            const o = opened;
            opened = undefined;
            mapFile(buffer, 0, image.memoryBytes, imageFd, 0, { private: true });
            for (const run of ws.runs) {
              mapAnonymous(buffer, run.firstPage * PAGE_BYTES, run.pageCount * PAGE_BYTES);
              hugepageHint(buffer, run.firstPage * PAGE_BYTES, run.pageCount * PAGE_BYTES);
            }
            fillFrom(stats, o, image.id, buffer);
            stats.prefetchedPages += o.rawBytes / PAGE_BYTES;
          },
          afterInvoke() {
            // As reap (the compressed copy is built by the next prepare or open).
            session?.finishRecording(image.dir, memoryPages);
          },
          release() {
            session?.stop('fence');
            if (opened !== undefined) closeSync(opened.fd);
            opened = undefined;
          },
        };
      });
    },
  };
}

export const sabre = sabreStrategy({ codec: 'lz4' });
export const sabreZstd = sabreStrategy({ codec: 'zstd' });
export const sabreReap = sabreReapStrategy({ codec: 'lz4' });
