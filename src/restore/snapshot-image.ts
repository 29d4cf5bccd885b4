// The mappable image of a snapshot chain, shared by every lazy strategy: which file to map or
// serve from, which pages it holds, and the one check that its bytes agree with the state file.
//
// Checksum policy (no trust in file metadata: a bit flipped below the filesystem changes neither
// size nor times, so nothing here is cached in a sidecar):
//   - verifyImage() reads the whole image as the restored memory would be: pages in the state's
//     page runs from the file, every other page as zero, and checks each 1 MiB chunk CRC and
//     each page CRC of the state file. That is what proves the page runs agree with the chunk checksums (a forged or
//     buggy run list that drops a data page or adds a garbage page fails it). prepare() runs it,
//     and every artefact builder runs it on the bytes it builds from.
//   - open only checks the size; each strategy then checks what it reads as it reads it
//     (page servers each page they serve, fills per stored piece, eager and pass the whole memory), or says it maps bytes unverified (strategy.ts `verifies`).
// Diff chains: mapping needs one file, so a chain is flattened once into `flat.img` beside the
// top snapshot (built from an eager load, which verifies the chain). Its pages are the union of
// the chain's page runs: every other page is zero in every snapshot of the chain.
//
//   <root>/<id>/memory.img            full snapshot image (written by snapshot-io)
//   <root>/<id>/flat.img              diff chains only: base + diffs, zero pages as holes

import { closeSync, existsSync, fstatSync, ftruncateSync, fsyncSync, linkSync, openSync, readSync, readdirSync, renameSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { crc32 } from 'node:zlib';
import { ThawError, invariant } from '../core/errors.js';
import { CHUNK_BYTES, PAGE_BYTES, findPageRuns, type PageRun, type SnapshotState } from '../core/snapshot-format.js';
import { MEMORY_FILE, loadChainInto, processAlive } from '../snapshot/snapshot-io.js';

/** Name of the flattened image of a diff chain, beside the top snapshot's state file. */
export const FLAT_FILE = 'flat.img';

/** A snapshot chain resolved to one image file. */
export interface SnapshotImage {
  /** Id of the top snapshot of the chain. */
  readonly id: string;
  /** Directory of the top snapshot: strategy artefacts go beside its state file. */
  readonly dir: string;
  /** The file whose byte i is guest byte i (memory.img, or flat.img for a chain). */
  readonly path: string;
  /** Guest memory size in bytes (a multiple of 64 KiB). */
  readonly memoryBytes: number;
  /** Pages present in `path` (the rest are holes, reading as zero), ascending. */
  readonly runs: readonly PageRun[];
  /** The top snapshot's state (its chunk checksums describe the restored memory). */
  readonly state: SnapshotState;
}

/** A file name for a temporary artefact that a later sweep can attribute to its (maybe dead) writer. */
export function tempName(path: string): string {
  return `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
}

const TEMP_PATTERN = /\.tmp-(\d+)-[0-9a-f]+$/;

/**
 * Removes temporary artefacts in `dir` left by processes that died mid-write (a sandbox host
 * killed while preparing). Returns how many it removed.
 */
export function sweepStaleTemps(dir: string): number {
  let removed = 0;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const name of names) {
    const m = TEMP_PATTERN.exec(name);
    if (m && !processAlive(Number(m[1]))) {
      rmSync(join(dir, name), { force: true, recursive: true });
      removed++;
    }
  }
  return removed;
}

/**
 * Checks that the image in `fd`, read as restored memory (pages of `runs` from the file, every
 * other page zero), matches every chunk CRC of `state`; reads the whole file once. This is the
 * check that a state file's page runs agree with its chunk checksums.
 * Throws THAW_SNAPSHOT_CORRUPT naming the first bad chunk.
 */
export function verifyImageFd(fd: number, state: SnapshotState, runs: readonly PageRun[], what: string): void {
  const memoryBytes = state.meta.memoryBytes;
  const buf = Buffer.allocUnsafe(CHUNK_BYTES);
  let r = 0;
  for (let chunk = 0; chunk * CHUNK_BYTES < memoryBytes; chunk++) {
    const lo = chunk * CHUNK_BYTES;
    const len = Math.min(CHUNK_BYTES, memoryBytes - lo);
    buf.fill(0, 0, len);
    while (r < runs.length && endOf(runs[r]!) <= lo) r++;
    for (let i = r; i < runs.length && runs[i]!.firstPage * PAGE_BYTES < lo + len; i++) {
      const from = Math.max(lo, runs[i]!.firstPage * PAGE_BYTES);
      const to = Math.min(lo + len, endOf(runs[i]!));
      if (readAt(fd, buf.subarray(from - lo, to - lo), from) !== to - from) {
        throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id: state.meta.id, detail: `${what} ends early (page run ${i} reaches byte ${to})` });
      }
    }
    if (crc32(buf.subarray(0, len)) !== state.chunkCrcs[chunk]) {
      throw new ThawError('THAW_SNAPSHOT_CORRUPT', {
        id: state.meta.id,
        detail: `${what}: checksum mismatch in chunk ${chunk} (bytes ${lo}..${lo + len}; the image bytes or the state file's page runs are wrong)`,
      });
    }
    // The page checksums too: page servers trust them alone (a state file whose two tables
    // disagree is refused here, not by a sandbox host aborting mid-restore).
    for (let at = 0; at < len; at += PAGE_BYTES) {
      const page = (lo + at) / PAGE_BYTES;
      if (crc32(buf.subarray(at, at + PAGE_BYTES)) !== state.pageCrcs[page]) {
        throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id: state.meta.id, detail: `${what}: checksum mismatch in page ${page} (the chunk checks, its page checksum does not)` });
      }
    }
  }
}

function endOf(run: PageRun): number {
  return (run.firstPage + run.pageCount) * PAGE_BYTES;
}

/** Checks the whole image of a resolved chain (see verifyImageFd). */
export function verifyImage(image: SnapshotImage, fd: number): void {
  verifyImageFd(fd, image.state, image.runs, image.path);
}

/**
 * Opens `path` read-only and checks its size against `state` (nothing else: the bytes are
 * checked by whoever reads them). Throws THAW_SNAPSHOT_CORRUPT (missing, wrong size).
 */
export function openImageFile(path: string, state: SnapshotState): number {
  const id = state.meta.id;
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err: unknown) {
    throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id, detail: `cannot open ${path}: ${(err as Error).message}` }, { cause: err });
  }
  const size = fstatSync(fd).size;
  if (size !== state.meta.memoryBytes) {
    closeSync(fd);
    throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id, detail: `${path} is ${size} bytes, expected ${state.meta.memoryBytes} (truncated?)` });
  }
  return fd;
}

/**
 * Creates `path` atomically: `body` writes a temporary file (a name a sweep can attribute to this
 * process) through its fd, which is then fsynced and renamed into place. On any error the
 * temporary file is removed and the error rethrown. Concurrent writers of the same content are
 * harmless: the last rename wins.
 */
export function writeFileVia<T>(path: string, body: (fd: number) => T): T {
  const tmp = tempName(path);
  const fd = openSync(tmp, 'w');
  let result: T;
  try {
    result = body(fd);
    fsyncSync(fd);
  } catch (err: unknown) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, path);
  return result;
}

/**
 * As writeFileVia, but never replaces: the file is linked under `path` only if nothing is there
 * (two recorders race: the first wins, so bytes a reader was already given stay). Returns false,
 * and discards what `body` wrote, when `path` already existed.
 */
export function writeFileOnce(path: string, body: (fd: number) => void): boolean {
  const tmp = tempName(path);
  const fd = openSync(tmp, 'wx');
  let open = true;
  try {
    body(fd);
    fsyncSync(fd);
    closeSync(fd);
    open = false;
    linkSync(tmp, path);
    return true;
  } catch (err: unknown) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    if (open) closeSync(fd);
    rmSync(tmp, { force: true });
  }
}

/** Writes all of `data` at `position` of `fd`. */
export function writeAt(fd: number, data: Uint8Array, position: number): void {
  let done = 0;
  while (done < data.length) done += writeSync(fd, data, done, data.length - done, position + done);
}

/** Reads into all of `buf` from `position` of `fd`, stopping early only at the end of the file; returns the count. */
export function readAt(fd: number, buf: Uint8Array, position: number): number {
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, buf.length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/**
 * Copies the bytes of page runs `runs` from `fromFd` to the same offsets of `toFd` (a sparse copy
 * of an image: holes stay holes). Throws when `from` (named `what`) ends before a run does.
 */
export function copyRuns(fromFd: number, toFd: number, runs: readonly PageRun[], what: string): void {
  const buf = Buffer.allocUnsafe(8 << 20);
  for (const run of runs) {
    const end = endOf(run);
    for (let at = run.firstPage * PAGE_BYTES; at < end;) {
      const n = readSync(fromFd, buf, 0, Math.min(buf.length, end - at), at);
      if (n === 0) throw new Error(`${what} ends early at ${at}`);
      writeAt(toFd, buf.subarray(0, n), at);
      at += n;
    }
  }
}

/** Writes a small file atomically and durably (see writeFileVia). */
export function writeAtomic(path: string, data: Uint8Array): void {
  writeFileVia(path, (fd) => writeAt(fd, data, 0));
}

/** Writes the present runs of `memory` to a new sparse file at `path` atomically. */
export function writeSparseImage(path: string, memory: Uint8Array, runs: readonly PageRun[]): void {
  writeFileVia(path, (fd) => {
    ftruncateSync(fd, memory.length);
    for (const run of runs) {
      const lo = run.firstPage * PAGE_BYTES;
      writeAt(fd, memory.subarray(lo, lo + run.pageCount * PAGE_BYTES), lo);
    }
  });
}

/** Builds <top>/flat.img from a chain (eager load: verifies every chunk). */
function flatten(root: string, chain: readonly SnapshotState[], top: SnapshotState, path: string): void {
  const memory = new Uint8Array(top.meta.memoryBytes);
  loadChainInto(root, chain, memory);
  writeSparseImage(path, memory, findPageRuns(memory));
}

/** Pages any snapshot of `chain` holds: every other page is zero in the chain's memory. */
export function chainRuns(chain: readonly SnapshotState[]): readonly PageRun[] {
  if (chain.length === 1) return chain[0]!.runs;
  const all = chain.flatMap((s) => s.runs).sort((a, b) => a.firstPage - b.firstPage);
  const out: PageRun[] = [];
  for (const r of all) {
    const last = out[out.length - 1];
    if (last && r.firstPage <= endOf(last)) out[out.length - 1] = { firstPage: last.firstPage, pageCount: Math.max(endOf(last), endOf(r)) / PAGE_BYTES - last.firstPage };
    else out.push(r);
  }
  return out;
}

/** Result of resolveImage(): the image and what resolving it cost. */
export interface ResolvedImage {
  readonly image: SnapshotImage;
  /** Open fd of image.path; the caller closes it (or passes it on and closes it). */
  readonly fd: number;
  /** True when a flat image was built now. */
  readonly built: boolean;
  readonly elapsedMs: number;
}

/**
 * Resolves a chain (base first) to its single image: memory.img of a full snapshot, or the
 * flat.img of a diff chain (built once). 'verify' (prepare, artefact builders) also reads the
 * whole image and checks it with verifyImage(), rebuilding a flat image that fails once; 'open'
 * checks only its size. Also sweeps temporaries of dead writers.
 * Throws THAW_SNAPSHOT_CORRUPT, THAW_INTERNAL (empty chain).
 */
export function resolveImage(root: string, chain: readonly SnapshotState[], check: 'verify' | 'open'): ResolvedImage {
  const t0 = performance.now();
  const top = chain[chain.length - 1];
  invariant(top !== undefined, 'resolveImage: empty snapshot chain');
  const dir = join(root, top.meta.id);
  sweepStaleTemps(dir);
  const flat = chain.length > 1;
  const path = join(dir, flat ? FLAT_FILE : MEMORY_FILE);
  const image: SnapshotImage = { id: top.meta.id, dir, path, memoryBytes: top.meta.memoryBytes, runs: chainRuns(chain), state: top };
  let built = false;
  if (flat && !existsSync(path)) {
    flatten(root, chain, top, path);
    built = true;
  }
  let fd = openImageFile(path, top);
  if (check === 'verify') {
    try {
      verifyImage(image, fd);
    } catch (err: unknown) {
      closeSync(fd);
      // A flat image is derived data: if it does not verify, rebuild it once from the chain
      // (which eager-verifies every chunk) rather than fail a snapshot whose own files are fine.
      if (!flat || !(err instanceof ThawError && err.code === 'THAW_SNAPSHOT_CORRUPT')) throw err;
      unlinkSync(path);
      flatten(root, chain, top, path);
      built = true;
      fd = openImageFile(path, top);
    }
  }
  return { image, fd, built, elapsedMs: performance.now() - t0 };
}
/** Guest page -> image page map for a userfaultfd server: -1 for holes, identity elsewhere. */
export function pageMapOf(image: SnapshotImage): Int32Array {
  const map = new Int32Array(image.memoryBytes / PAGE_BYTES).fill(-1);
  for (const run of image.runs) {
    for (let p = run.firstPage; p < run.firstPage + run.pageCount; p++) map[p] = p;
  }
  return map;
}
