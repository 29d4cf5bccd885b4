// faasnap (FaaSnap) on Thaw. FaaSnap records against a base snapshot of the booted sandbox, then
// takes a "warm" snapshot after the recording run and computes the loading set against it.
// A Thaw snapshot is already taken after init, before any request, and a Wasm guest has no guest
// kernel whose page cache a warm snapshot would capture, so one snapshot plays both roles: the
// loading set is recorded on, and computed against, the very image later restores map.
//
// record (first restore, no ls.faasnap yet): at open, the memory file's page cache is flushed and
//   dropped and a sampler thread (faasnap-sampler.ts) starts stamping pages with a layer as they
//   become resident, a new layer per `layerPages` pages of growth; fill() maps the file
//   MAP_PRIVATE over guest memory (as vanilla) and waits for the sampler's first scan. At the end of the first invocation the loading set (stamped,
//   non-zero pages, by layer then offset, FaaSnap's thresholds applied) is written to ls.faasnap
//   (faasnap-loading-set.ts). Residency over-approximates the guest's accesses by the kernel's
//   readahead, as it does in FaaSnap.
// replay: three layers of mappings, then concurrent paging:
//     1. anonymous zero memory over the whole guest range;
//     2. the memory file, MAP_PRIVATE, over its non-zero regions only (gaps < interval merged);
//     3. ls.faasnap, MAP_PRIVATE, over each loading-set region;
//   and posix_fadvise(WILLNEED) over the loading-set data, so the kernel streams it into the page
//   cache, in layer order, while the guest already runs. Both files' cached pages are dropped
//   first, so a replay starts cold, like vanilla.
// Thresholds: FaaSnap's layer size (1024 pages); the interval (32 pages) and size (4 pages)
// thresholds are Thaw's defaults, configurable through faasnapStrategy(). Dropped small regions
// stay correct: their pages are still served by layer 2.

import { closeSync, fdatasyncSync } from 'node:fs';
import { PAGE_BYTES, type SnapshotState } from '../../core/snapshot-format.js';
import { fadvise, mapAnonymous, mapFile } from '../../native/index.js';
import { MincoreSampler } from '../faasnap-sampler.js';
import {
  DEFAULT_THRESHOLDS, buildLoadingSet, nonZeroRegions, openLoadingSet, writeLoadingSet, type FaasnapThresholds, type OpenedLoadingSet,
} from '../faasnap-loading-set.js';
import { recordingDir } from '../recording-outbox.js';
import { openLazy } from '../lazy-image.js';
import { sourceKey } from '../sabre-image.js';
import { resolveImage } from '../snapshot-image.js';
import type { OpenedImage, PrepareReport, RestoreStats, RestoreStrategy } from '../strategy.js';

/** Restore stats of faasnap. */
export interface FaasnapStats extends RestoreStats {
  /** Pages in the loading set (recorded now, or mapped from ls.faasnap). */
  loadingSetPages: number;
  loadingSetRegions: number;
  layers: number;
  /** Memory-file mappings (non-zero regions) made by a replay. */
  nonZeroRegions: number;
  /** record: whether the sampler thread was scanning before the guest ran (else one layer only). */
  samplerStarted: boolean;
}

/** A faasnap strategy with the given thresholds (id 'faasnap' for the defaults). */
export function faasnapStrategy(thresholds: FaasnapThresholds = DEFAULT_THRESHOLDS, id = 'faasnap'): RestoreStrategy {
  return {
    id,
    description: 'record mincore layers on the first restore; then map zero base + non-zero memory file + loading-set file, prefetching the loading set',
    verifies: 'unverified-mapped',
    verifiesHow: 'the loading set checksum is checked on every open (all of it is read); pages mapped from the memory file and the loading set are not',
    supports: () => ({ ok: true }),
    /** Resolves and verifies the image, and the loading set when one was recorded (the recording needs a run of the guest). */
    prepare(root: string, chain: readonly SnapshotState[]): PrepareReport {
      const r = resolveImage(root, chain, 'verify');
      closeSync(r.fd);
      const ls = openLoadingSet(r.image.dir, r.image.id, r.image.memoryBytes / PAGE_BYTES);
      if (ls) closeSync(ls.fd);
      return { built: r.built, elapsedMs: r.elapsedMs };
    },
    open(root: string, chain: readonly SnapshotState[]): OpenedImage {
      return openLazy(id, root, chain, (image, imageFd, plain) => {
        const stats: FaasnapStats = Object.assign(plain, { loadingSetPages: 0, loadingSetRegions: 0, layers: 0, nonZeroRegions: 0, samplerStarted: false });
        const memoryPages = image.memoryBytes / PAGE_BYTES;
        const key = sourceKey(image.state) >>> 0;
        let ls: OpenedLoadingSet | null = openLoadingSet(image.dir, image.id, memoryPages);
        if (ls !== null && ls.set.sourceKey !== key) {
          // Recorded against another image under this id: record again rather than map it.
          closeSync(ls.fd);
          ls = null;
        }
        let sampler: MincoreSampler | undefined;
        let recorded = false;
        if (ls === null) {
          // Recording: dirty pages (a snapshot just written) cannot be dropped, so flush them
          // first; then residency starts empty. The sampler starts now, while the guest is
          // instantiated, so its thread is scanning before the guest touches memory.
          fdatasyncSync(imageFd);
          fadvise(imageFd, 0, 0, 'dontneed');
          sampler = new MincoreSampler(image.path, image.memoryBytes, thresholds.layerPages);
        }
        const closeLs = (): void => {
          if (ls !== null) closeSync(ls.fd);
          ls = null;
        };
        return {
          fill({ buffer, fd }) {
            if (ls === null) {
              stats.phase = 'record';
              mapFile(buffer, 0, image.memoryBytes, fd, 0, { private: true });
              stats.samplerStarted = sampler?.waitStarted() ?? false;
              return;
            }
            stats.phase = 'replay';
            const set = ls.set;
            try {
              fadvise(fd, 0, 0, 'dontneed');
              fadvise(ls.fd, 0, 0, 'dontneed');
              mapAnonymous(buffer, 0, image.memoryBytes);
              const regions = nonZeroRegions(image.runs, thresholds.intervalThresholdPages);
              for (const r of regions) mapFile(buffer, r.firstPage * PAGE_BYTES, r.pageCount * PAGE_BYTES, fd, r.firstPage * PAGE_BYTES, { private: true });
              let fileOffset = set.dataStartBytes;
              for (const r of set.regions) {
                mapFile(buffer, r.firstPage * PAGE_BYTES, r.pageCount * PAGE_BYTES, ls.fd, fileOffset, { private: true });
                fileOffset += r.pageCount * PAGE_BYTES;
              }
              // Concurrent paging: the kernel reads the loading set (layer order = file order)
              // into the page cache asynchronously while the guest starts running.
              fadvise(ls.fd, set.dataStartBytes, 0, 'willneed');
              stats.nonZeroRegions = regions.length;
              stats.loadingSetRegions = set.regions.length;
              stats.loadingSetPages = (fileOffset - set.dataStartBytes) / PAGE_BYTES;
              stats.prefetchedPages += stats.loadingSetPages;
              stats.layers = set.layerCount;
            } finally {
              closeLs();
            }
          },
          afterInvoke() {
            if (sampler === undefined || recorded) return;
            recorded = true;
            const layers = sampler.stop();
            sampler = undefined;
            const regions = buildLoadingSet(layers, image.runs, thresholds);
            const r = resolveImage(root, chain, 'verify');
            try {
              writeLoadingSet(recordingDir(image.dir), image.id, r.fd, memoryPages, key, regions);
            } finally {
              closeSync(r.fd);
            }
            stats.loadingSetRegions = regions.length;
            stats.loadingSetPages = regions.reduce((n, x) => n + x.pageCount, 0);
            stats.layers = new Set(regions.map((x) => x.layer)).size;
          },
          release() {
            sampler?.cancel();
            sampler = undefined;
            closeLs();
          },
        };
      });
    },
  };
}

export const faasnap = faasnapStrategy();
