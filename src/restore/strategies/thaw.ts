// thaw: Thaw's own strategy, designed from measurement on this host (2 vCPUs, nested
// virtualisation; DESIGN.md section 1). What costs here is the page-fault trap itself: a first
// touch of a fresh 4 KiB page costs 12-25 us, a CoW write to a private file mapping ~110 us, a
// userfaultfd round trip ~40 us, while the same work done by the kernel without a trap is cheap
// (MADV_POPULATE_WRITE of 819 scattered pages of a private file mapping: 4-12 ms, against 91-121
// ms of CoW faults for the same pages) and memcpy into resident memory runs at 12-17 GB/s. So
// thaw has the kernel (or a memcpy) put the guest's working set in place before the guest runs:
//
//   prepare time (sandbox host, before any request: preallocate)
//     a pool of anonymous memory, 2 MiB aligned, MADV_HUGEPAGE, MADV_POPULATE_WRITE: resident, zero
//   restore (fill) of an image with at most 64 MiB present (LOAD_ALL_BYTES; Python heaps, most functions)
//     every 2 MiB block holding a present page: pool memory moved under it, its present pages
//     read into it by parallel native reads; blocks without one: anonymous zero memory. No
//     working set is needed, so the first restore records nothing and a new input finds every
//     page in place.
//   restore (fill) of a larger image, from the working set (ws.reap, recorded as reap records it)
//     guest memory    [ file MAP_PRIVATE ... | pool block | anon run | file ... | pool block ... ]
//     dense blocks    2 MiB blocks with >= 1/4 of their pages, or >= 48 runs, in the working
//                     set: pool memory moved under them (mremap, whole huge pages), present
//                     pages read into it by parallel native reads
//     sparse runs     working-set runs elsewhere (runs < 8 pages apart merged): their pages are
//                     kept lz4-compressed, contiguous, in a loading-set file beside the snapshot
//                     (thaw-sparse-lz4-1.img, built once per working set, sabre-image format
//                     with a crc32 per partition); at restore each run gets anonymous memory and
//                     the file is decoded into place, one sequential read, on parallel threads
//     everything else stays mapped from the file and faults in on demand, as vanilla
//
// Pool memory moves in whole huge pages for almost nothing (64 MiB: 0.4 ms, no faults after) but
// costs more than a fault in 4 KiB pieces (THP splits: ~50 us per mremap), hence whole blocks.
// Where the pool is short (no preallocate, or a bigger guest) a dense block gets fresh
// huge-page-advised memory instead (64 MiB: ~5-17 ms of faults). The first restore of a snapshot
// without a working set records one with userfaultfd (as reap does; the file is shared with
// reap); where userfaultfd is refused, every block is dense. After fill() no page server runs.

import { closeSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ThawError } from '../../core/errors.js';
import { PAGE_BYTES, type PageRun, type SnapshotState } from '../../core/snapshot-format.js';
import {
  FILL_THREADS, fillFromFile, madviseHugepage, mapAnonymous, mapFile, poolMoveRuns, poolRelease, poolReserve,
  type FillJob, type PageRun as ByteRun,
} from '../../native/index.js';
import { holeSpans, verifyRestored } from '../guest-memory.js';
import { openLazy } from '../lazy-image.js';
import { resolveImage, type SnapshotImage } from '../snapshot-image.js';
import type { OpenedImage, PrepareReport, RestoreStats, RestoreStrategy } from '../strategy.js';
import { startSession, uffdSupport, type UffdSession } from '../uffd-session.js';
import { encodeWorkingSet, readWorkingSet, type WorkingSet } from '../working-set.js';
import { ensureCompressed, fillPartitions, sourceKey, type OpenedCompressedImage } from '../sabre-image.js';

/** Granularity of eager loading into pooled memory: one transparent huge page. */
const BLOCK_BYTES = 2 << 20;
const BLOCK_PAGES = BLOCK_BYTES / PAGE_BYTES;
/**
 * A block is loaded whole when at least this share of its pages (128 of 512) is in the working
 * set. Below it, reading the block costs more than its pages: a whole 2 MiB block reads cold in
 * ~1.1-1.4 ms here (1.8 GB/s), a sparse page from the compressed loading set in a few us (its
 * share of one sequential read, the decode, a fresh 4 KiB fault at ~2.6 us on a quiet host).
 */
const DENSE_SHARE = 1 / 4;
/**
 * A block is also loaded whole when the working set splits it into this many runs or more (per
 * full block): each sparse run costs an mmap and a fresh first fault (~20 us), so 48 of them cost
 * about one cold block read (256 MiB, 25% of it scattered in single pages: 360 ms sparse against
 * 162 ms whole).
 */
const DENSE_RUNS = 48;
/** Sparse working-set runs closer than this many pages are loaded as one run (gap included). */
const SPARSE_GAP_PAGES = 8;
/**
 * An image with at most this many present bytes is loaded whole, with no working set: parallel
 * reads bring 64 MiB in at 1-3 GB/s even from a cold disk (20-60 ms), while each page a new input
 * touches outside a recorded working set costs a copy-on-write fault of ~110 us in the file
 * mapping (two-inputs: pyaes's handler took 370 ms under working-set thaw, 231 ms under eager).
 */
export const LOAD_ALL_BYTES = 64 << 20;
/** Most pre-faulted memory a sandbox host keeps for thaw (resident even when unused). */
const POOL_CAP_BYTES = 512 << 20;

type MutableRun = { offsetBytes: number; lengthBytes: number };

/** What thaw puts in place before the guest runs. Both lists are ascending, merged, page aligned. */
export interface LoadPlan {
  /** Whole blocks (ends clamped to the memory) loaded into resident memory. */
  readonly dense: readonly ByteRun[];
  /** Working-set runs outside dense blocks, loaded from the sparse loading-set file. */
  readonly sparse: readonly ByteRun[];
}

function pushMerged(out: MutableRun[], lo: number, hi: number, gapBytes: number): void {
  const last = out[out.length - 1];
  if (last && lo <= last.offsetBytes + last.lengthBytes + gapBytes) last.lengthBytes = Math.max(last.lengthBytes, hi - last.offsetBytes);
  else out.push({ offsetBytes: lo, lengthBytes: hi - lo });
}

/**
 * Splits working set `ws` of a memory of `memoryBytes` into dense 2 MiB blocks (at least 1/4 of
 * their pages in the set, or the set in 48 runs or more there) and sparse runs (the rest of the
 * set; runs less than 8 pages apart merged). Without a working set, the whole memory is one dense run.
 */
export function loadPlan(memoryBytes: number, ws: WorkingSet | null): LoadPlan {
  if (ws === null) return { dense: [{ offsetBytes: 0, lengthBytes: memoryBytes }], sparse: [] };
  const perBlock = new Uint32Array(Math.ceil(memoryBytes / BLOCK_BYTES));
  const runsPerBlock = new Uint32Array(perBlock.length);
  for (const run of ws.runs) {
    for (let p = run.firstPage; p < run.firstPage + run.pageCount;) {
      const block = Math.floor(p / BLOCK_PAGES);
      const next = Math.min(run.firstPage + run.pageCount, (block + 1) * BLOCK_PAGES);
      perBlock[block]! += next - p;
      runsPerBlock[block]!++;
      p = next;
    }
  }
  const isDense = (block: number): boolean => {
    const share = Math.min(BLOCK_PAGES, memoryBytes / PAGE_BYTES - block * BLOCK_PAGES) / BLOCK_PAGES;
    return perBlock[block]! >= DENSE_SHARE * share * BLOCK_PAGES || runsPerBlock[block]! >= DENSE_RUNS * share;
  };
  const dense: MutableRun[] = [];
  perBlock.forEach((_, block) => {
    if (isDense(block)) pushMerged(dense, block * BLOCK_BYTES, Math.min(memoryBytes, (block + 1) * BLOCK_BYTES), 0);
  });
  const sparse: MutableRun[] = [];
  for (const run of ws.runs) {
    for (let p = run.firstPage; p < run.firstPage + run.pageCount;) {
      const block = Math.floor(p / BLOCK_PAGES);
      const next = Math.min(run.firstPage + run.pageCount, (block + 1) * BLOCK_PAGES);
      if (!isDense(block)) pushMerged(sparse, p * PAGE_BYTES, next * PAGE_BYTES, SPARSE_GAP_PAGES * PAGE_BYTES);
      p = next;
    }
  }
  return { dense, sparse };
}

/** The 2 MiB blocks (ends clamped to the memory) that hold any of `runs`, merged. */
export function presentBlocks(memoryBytes: number, runs: readonly PageRun[]): ByteRun[] {
  const out: MutableRun[] = [];
  for (const r of runs) {
    const lo = Math.floor((r.firstPage * PAGE_BYTES) / BLOCK_BYTES) * BLOCK_BYTES;
    const hi = Math.min(memoryBytes, Math.ceil(endOf(r) / BLOCK_BYTES) * BLOCK_BYTES);
    pushMerged(out, lo, hi, 0);
  }
  return out;
}

/**
 * Reads the image's present pages inside `load` (both ascending) into `buffer` at their offsets,
 * in pieces of at most one block, on FILL_THREADS native threads (cold reads overlap; warm ones
 * are memcpys from the page cache on every core). Unchecked: prepare() verified the image.
 */
function readPresent(fd: number, image: SnapshotImage, load: readonly ByteRun[], buffer: ArrayBuffer, stats: RestoreStats): void {
  const jobs: FillJob[] = [];
  let i = 0;
  for (const l of load) {
    const lEnd = l.offsetBytes + l.lengthBytes;
    while (i < image.runs.length && endOf(image.runs[i]!) <= l.offsetBytes) i++;
    for (let j = i; j < image.runs.length && image.runs[j]!.firstPage * PAGE_BYTES < lEnd; j++) {
      const run = image.runs[j]!;
      const end = Math.min(lEnd, endOf(run));
      for (let at = Math.max(l.offsetBytes, run.firstPage * PAGE_BYTES); at < end;) {
        const next = Math.min(end, (Math.floor(at / BLOCK_BYTES) + 1) * BLOCK_BYTES);
        jobs.push({ targetOffsetBytes: at, lengthBytes: next - at, fileOffsetBytes: at, storedBytes: next - at, codec: 'raw' });
        at = next;
      }
    }
  }
  const r = fillFromFile(fd, buffer, jobs, FILL_THREADS);
  if (!r.ok) throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id: image.id, detail: `${image.path} ends early at byte ${jobs[r.job]!.fileOffsetBytes}` });
  stats.bytesRead += r.bytesRead;
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

/** The sparse loading-set file beside a snapshot (one per working set; rebuilt when it changes). */
const SPARSE_FILE = 'thaw-sparse-lz4-1.img';
/** Mixed into the file's source key: a different plan rule makes an older file stale. */
const PLAN_TAG = new TextEncoder().encode(`thaw-sparse/dense=${DENSE_SHARE}/runs=${DENSE_RUNS}/gap=${SPARSE_GAP_PAGES}`);

function pageRunsOf(runs: readonly ByteRun[]): PageRun[] {
  return runs.map((r) => ({ firstPage: r.offsetBytes / PAGE_BYTES, pageCount: r.lengthBytes / PAGE_BYTES }));
}

/**
 * Makes sure the sparse loading-set file of `ws` exists and is current (building it from the
 * verified image `fd` otherwise); returns it opened, or null when the plan has no sparse run.
 * `check` as ensureCompressed. Throws THAW_SNAPSHOT_CORRUPT.
 */
function ensureSparse(image: SnapshotImage, fd: number, ws: WorkingSet, plan: LoadPlan, check: 'all' | 'table'): { opened: OpenedCompressedImage; built: boolean } | null {
  if (plan.sparse.length === 0) return null;
  const extra = Buffer.concat([encodeWorkingSet(ws), PLAN_TAG]);
  return ensureCompressed(join(image.dir, SPARSE_FILE), image, fd, sourceKey(image.state, extra), pageRunsOf(plan.sparse), 'lz4', 1, check);
}

/** Gives each sparse run anonymous memory and decodes the loading set into it (parallel threads). */
function loadSparse(buffer: ArrayBuffer, image: SnapshotImage, sparse: readonly ByteRun[], opened: OpenedCompressedImage, stats: RestoreStats): void {
  try {
    for (const r of sparse) mapAnonymous(buffer, r.offsetBytes, r.lengthBytes);
    stats.bytesRead += fillPartitions(image.id, opened, buffer).bytesRead;
  } finally {
    closeSync(opened.fd);
  }
}

/** Options of thawStrategy (tests set a smaller whole-image limit). */
export interface ThawOptions {
  /** Images with at most this many present bytes are loaded whole (default LOAD_ALL_BYTES). */
  readonly loadAllBytes?: number;
}

/** Thaw's own strategy (see the top of this file). */
export function thawStrategy(options: ThawOptions = {}): RestoreStrategy {
  const loadAllBytes = options.loadAllBytes ?? LOAD_ALL_BYTES;
  return {
    id: 'thaw',
    description: 'images up to 64 MiB present: loaded whole into pre-faulted pooled memory (moved in by mremap) by parallel reads; larger ones: dense working-set blocks loaded so, sparse working-set runs decoded from an lz4 loading-set file into anonymous memory, the rest mapped from the file',
    verifies: 'partly-mapped',
    verifiesHow: 'images loaded whole: every chunk checked after the load; larger ones: loaded blocks and loading-set pieces checked, the rest mapped from the file unchecked (recording: checked pages via uffd)',
    supports: () => ({ ok: true }),
    /** Resolves and verifies the image; once a working set exists, builds its sparse loading set. */
    prepare(root: string, chain: readonly SnapshotState[]): PrepareReport {
      const t0 = performance.now();
      const r = resolveImage(root, chain, 'verify');
      try {
        const { image } = r;
        const present = image.runs.reduce((n, run) => n + run.pageCount * PAGE_BYTES, 0);
        const ws = present <= loadAllBytes ? null : readWorkingSet(image.dir, image.id, image.memoryBytes / PAGE_BYTES);
        const sparse = ws === null ? null : ensureSparse(image, r.fd, ws, loadPlan(image.memoryBytes, ws), 'all');
        if (sparse) closeSync(sparse.opened.fd);
        return { built: r.built || (sparse?.built ?? false), elapsedMs: performance.now() - t0 };
      } finally {
        closeSync(r.fd);
      }
    },
    preallocate(bytes: number): void {
      try {
        poolReserve(Math.min(bytes, POOL_CAP_BYTES));
      } catch {
        // Best effort: without a pool, fill() uses fresh huge-page memory (slower, still correct).
      }
    },
    releasePreallocated(): void {
      poolRelease();
    },
    open(root: string, chain: readonly SnapshotState[]): OpenedImage {
      let session: UffdSession | undefined;
      return openLazy('thaw', root, chain, (image, imageFd, openStats) => {
        const memoryPages = image.memoryBytes / PAGE_BYTES;
        const presentBytes = image.runs.reduce((n, r) => n + r.pageCount * PAGE_BYTES, 0);
        const whole = presentBytes <= loadAllBytes;
        const ws = whole ? null : readWorkingSet(image.dir, image.id, memoryPages);
        const record = !whole && ws === null && uffdSupport().ok;
        // Whole: every block with a present page is loaded; the others hold only zeros, so
        // anonymous memory serves them (a zero-fill fault, cheaper than a file-backed one).
        const plan = whole ? { dense: presentBlocks(image.memoryBytes, image.runs), sparse: [] } : loadPlan(image.memoryBytes, ws);
        const t0 = performance.now();
        const sparse = record || ws === null ? null : ensureSparse(image, imageFd, ws, plan, 'table');
        if (sparse?.built) openStats.prepareMs += performance.now() - t0;
        let sparseImage = sparse?.opened;
        return {
          fill({ buffer, fd, stats }) {
            if (record) {
              poolRelease(); // recording serves every page through userfaultfd: no use for the pool
              stats.phase = 'record';
              session = startSession(buffer, image, fd, stats, { strategy: 'thaw', record: true });
              return;
            }
            stats.phase = ws === null ? null : 'replay';
            const denseBytes = plan.dense.reduce((n, r) => n + r.lengthBytes, 0);
            if (whole) mapAnonymous(buffer, 0, image.memoryBytes);
            else if (denseBytes < image.memoryBytes) mapFile(buffer, 0, image.memoryBytes, fd, 0, { private: true });
            residentMemory(buffer, plan.dense);
            // What the guest did not take of the pool is only resident weight now: the guest may
            // grow into that memory (a 640 MiB function was OOM-killed with 512 MiB of pool kept).
            poolRelease();
            readPresent(fd, image, plan.dense, buffer, stats);
            // Every chunk the load wrote is checked from guest memory (a chunk with no present
            // page is fresh zero memory: checked against the checksum of zeros, not read). Whole
            // images are then checked byte for byte; the mapped rest of a large one is not.
            verifyRestored(image.state, buffer, { zeroSpans: holeSpans(image.runs, image.memoryBytes), ...(whole ? {} : { only: plan.dense }) });
            if (sparseImage !== undefined) {
              const o = sparseImage;
              sparseImage = undefined;
              loadSparse(buffer, image, plan.sparse, o, stats);
            }
          },
          afterInvoke() {
            if (record) session?.finishRecording(image.dir, memoryPages);
          },
          release() {
            session?.stop('fence');
            if (sparseImage !== undefined) closeSync(sparseImage.fd);
            sparseImage = undefined;
          },
        };
      });
    },
  };
}

export const thaw = thawStrategy();
