// dram: the snapshot's memory file kept in tmpfs (DRAM). Prepare copies the image's page runs once
// to /dev/shm/thaw/<root hash>/<id>.img (sparse, atomically) and verifies the copy in its new
// place (so bytes and page runs are checked: the copy holds only the runs); restores mmap that
// copy MAP_PRIVATE over the sandbox's memory. Mapped pages are not checked as the kernel reads
// them (strategy.ts `verifies`); `thaw snapshots verify` checks the copy.

import { closeSync, openSync, rmSync, ftruncateSync, renameSync, existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { SnapshotState } from '../../core/snapshot-format.js';
import { mapFile } from '../../native/index.js';
import { openLazy } from '../lazy-image.js';
import { copyRuns, openImageFile, resolveImage, sweepStaleTemps, tempName, verifyImageFd, type SnapshotImage } from '../snapshot-image.js';
import type { OpenedImage, PrepareReport, RestoreStrategy } from '../strategy.js';
import { claimTmpfsDir, sweepOrphanTmpfsDirs } from '../tmpfs-owner.js';

/** Where tmpfs copies live; one directory per snapshot root. */
export const DRAM_ROOT = '/dev/shm/thaw';

/** Directory of the tmpfs copies of snapshots under `root`. */
export function dramDir(root: string): string {
  return join(DRAM_ROOT, createHash('sha256').update(resolve(root)).digest('hex').slice(0, 16));
}

/** Removes the tmpfs copies of data directories that no longer exist (tmpfs-owner.ts); returns their paths. */
export function sweepOrphanDramCopies(base: string = DRAM_ROOT, now = Date.now()): string[] {
  return sweepOrphanTmpfsDirs(base, { now });
}

/** Removes the tmpfs copy of snapshot `id` under `root` (when the snapshot is deleted). */
export function discardDramCopy(root: string, id: string): void {
  for (const suffix of ['.img']) rmSync(join(dramDir(root), id + suffix), { force: true });
}

function copySparse(fromFd: number, image: SnapshotImage, to: string): void {
  const tmp = tempName(to);
  const out = openSync(tmp, 'w');
  try {
    ftruncateSync(out, image.memoryBytes);
    copyRuns(fromFd, out, image.runs, image.path);
  } catch (err: unknown) {
    closeSync(out);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(out);
  renameSync(tmp, to);
}

/** Makes sure the tmpfs copy exists (verified when made); returns its open fd. */
function ensureCopy(root: string, image: SnapshotImage, sourceFd: number): { fd: number; built: boolean } {
  const dir = dramDir(root);
  claimTmpfsDir(dir, root, 0o755);
  sweepStaleTemps(dir);
  const path = join(dir, `${image.id}.img`);
  let built = false;
  if (!existsSync(path)) {
    copySparse(sourceFd, image, path);
    built = true;
  }
  const fd = openImageFile(path, image.state);
  try {
    if (built) verifyImageFd(fd, image.state, image.runs, path);
  } catch (err: unknown) {
    closeSync(fd);
    rmSync(path, { force: true });
    throw err;
  }
  return { fd, built };
}

export const dram: RestoreStrategy = {
  id: 'dram',
  description: 'keep the memory file in tmpfs (/dev/shm) and mmap it MAP_PRIVATE',
  verifies: 'unverified-mapped',
  verifiesHow: 'the tmpfs copy is checked against the state file when it is made; pages mapped from it are not checked',
  supports: () => (existsSync('/dev/shm') ? { ok: true } : { ok: false, reason: '/dev/shm (tmpfs) is missing' }),
  prepare(root: string, chain: readonly SnapshotState[]): PrepareReport {
    const t0 = performance.now();
    const r = resolveImage(root, chain, 'verify');
    try {
      const copy = ensureCopy(root, r.image, r.fd);
      closeSync(copy.fd);
      return { built: r.built || copy.built, elapsedMs: performance.now() - t0 };
    } finally {
      closeSync(r.fd);
    }
  },
  open(root: string, chain: readonly SnapshotState[]): OpenedImage {
    return openLazy('dram', root, chain, (image, sourceFd, stats) => {
      const t0 = performance.now();
      const copy = ensureCopy(root, image, sourceFd);
      if (copy.built) stats.prepareMs += performance.now() - t0;
      let copyFd: number | undefined = copy.fd;
      const closeCopy = (): void => {
        if (copyFd !== undefined) closeSync(copyFd);
        copyFd = undefined;
      };
      return {
        fill({ buffer }) {
          try {
            mapFile(buffer, 0, image.memoryBytes, copy.fd, 0, { private: true });
          } finally {
            closeCopy();
          }
        },
        release: closeCopy,
      };
    });
  },
};
