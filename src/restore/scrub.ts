// Scrubbing a snapshot on demand (`thaw snapshots verify`, POST /v1/snapshots/:id/verify): read
// every byte of its files and of every artefact strategies keep for it, and check every
// checksum. This is what catches a byte flipped under a strategy that maps files straight into
// the guest (strategy.ts `verifies`), where no restore reads the bytes before the guest does.

import { closeSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ThawError } from '../core/errors.js';
import { PAGE_BYTES, type SnapshotState } from '../core/snapshot-format.js';
import { MEMORY_FILE, STATE_FILE, loadChainInto, readChain } from '../snapshot/snapshot-io.js';
import { LOADING_SET_FILE, openLoadingSet } from './faasnap-loading-set.js';
import { verifyCompressedImage } from './sabre-image.js';
import { FLAT_FILE, openImageFile, verifyImageFd } from './snapshot-image.js';
import { dramDir } from './strategies/dram.js';
import { verifyPassSlot } from './strategies/pass.js';
import { readWorkingSet, WORKING_SET_FILE } from './working-set.js';

/** The outcome for one file of a scrub. */
export interface FileCheck {
  /** Path relative to the snapshot directory, or where it lives (tmpfs copy, pool slot). */
  readonly file: string;
  readonly status: 'ok' | 'corrupt';
  /** What is wrong (corrupt only). */
  readonly detail?: string;
}

/** What a scrub found. */
export interface ScrubReport {
  readonly snapshotId: string;
  /** True when every file checked is ok. */
  readonly ok: boolean;
  readonly files: FileCheck[];
  readonly elapsedMs: number;
}

const COMPRESSED = /^(sabre(-reap)?|thaw-sparse)-[a-z0-9]+-\d+\.img$/;

/**
 * Reads and checks every file of snapshot `id` under `root` and of its base chain: each state
 * file, each memory image (the chain loaded and checked chunk by chunk, and a full snapshot's
 * file as it is mapped, holes included), the flattened image, the working set, the loading set,
 * the compressed images, the tmpfs copy and the pool slot. A corrupt file is reported, not
 * thrown. Throws THAW_SNAPSHOT_NOT_FOUND.
 */
export function scrubSnapshot(root: string, id: string): ScrubReport {
  const dir = (x: string): string => join(root, x);
  const t0 = performance.now();
  const files: FileCheck[] = [];
  const check = (file: string, body: () => boolean | void): void => {
    try {
      if (body() !== false) files.push({ file, status: 'ok' });
    } catch (err: unknown) {
      if (!(err instanceof ThawError && err.code === 'THAW_SNAPSHOT_CORRUPT')) throw err;
      files.push({ file, status: 'corrupt', detail: String((err.params as { detail?: unknown }).detail ?? err.message) });
    }
  };
  let chain: SnapshotState[] | undefined;
  check(STATE_FILE, () => {
    chain = readChain(root, id);
  });
  const top = chain?.[chain.length - 1];
  if (chain !== undefined && top !== undefined) {
    const memoryBytes = top.meta.memoryBytes;
    check(chain.length === 1 ? MEMORY_FILE : `${MEMORY_FILE} (chain of ${chain.length})`, () => {
      loadChainInto(root, chain!, new Uint8Array(memoryBytes));
    });
    // A full snapshot's file is also mapped as it is (vanilla): bytes outside its page runs count.
    if (chain.length === 1) check(`${MEMORY_FILE} (as mapped)`, () => verifyFile(join(dir(id), MEMORY_FILE), top));
    checkArtefacts(root, id, dir(id), top, check);
  }
  return { snapshotId: id, ok: files.every((f) => f.status === 'ok'), files, elapsedMs: performance.now() - t0 };
}

function checkArtefacts(root: string, id: string, snapDir: string, top: SnapshotState, check: (file: string, body: () => boolean | void) => void): void {
  const pages = top.meta.memoryBytes / PAGE_BYTES;
  if (existsSync(join(snapDir, FLAT_FILE))) check(FLAT_FILE, () => verifyFile(join(snapDir, FLAT_FILE), top));
  if (existsSync(join(snapDir, WORKING_SET_FILE))) check(WORKING_SET_FILE, () => void readWorkingSet(snapDir, id, pages));
  if (existsSync(join(snapDir, LOADING_SET_FILE))) {
    check(LOADING_SET_FILE, () => {
      const ls = openLoadingSet(snapDir, id, pages);
      if (ls) closeSync(ls.fd);
    });
  }
  for (const name of listCompressed(snapDir)) check(name, () => void verifyCompressedImage(join(snapDir, name), id, pages));
  const copy = join(dramDir(root), `${id}.img`);
  if (existsSync(copy)) check(copy, () => verifyFile(copy, top));
  check('pool slot (pass)', () => verifyPassSlot(root, top));
}

function listCompressed(snapDir: string): string[] {
  try {
    return readdirSync(snapDir).filter((n) => COMPRESSED.test(n)).sort();
  } catch {
    return [];
  }
}

/** Checks a whole image file as mapped (every byte, holes included) against `state`. */
function verifyFile(path: string, state: SnapshotState): void {
  const fd = openImageFile(path, state);
  try {
    verifyImageFd(fd, state, [{ firstPage: 0, pageCount: state.meta.memoryBytes / PAGE_BYTES }], path);
  } finally {
    closeSync(fd);
  }
}
