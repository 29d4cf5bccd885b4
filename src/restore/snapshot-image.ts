// The verified, mappable image of a snapshot chain, shared by every lazy strategy: which file
// to map or serve from, which pages it holds, and when its checksums were checked.
//
// Checksum policy (eager verifies every chunk after each load; lazy strategies cannot, since
// they never read most pages before the guest runs):
//   - prepare reads the whole image file once, checks every 1 MiB chunk CRC of the state file,
//     and records the verification in a sidecar `<image>.verified` keyed by the file's device,
//     inode, size, mtime and ctime (nanoseconds) and by the state's checksums;
//   - every open fstat()s the very fd it will map or serve from and compares with the sidecar;
//     any difference (rewritten, truncated, replaced, touched) re-verifies before use, and a
//     failed verification throws THAW_SNAPSHOT_CORRUPT. A corrupt file is never used silently.
//   - Not covered: a bit flip on the medium that changes neither the inode's times nor its size
//     (silent disk corruption) after verification; eager still catches it, lazy strategies do not.
// Diff chains: mapping needs one file, so a chain is flattened once into `flat.img` beside the
// top snapshot (built from an eager load, which verifies the chain), the simplest correct choice.
//
//   <root>/<id>/memory.img            full snapshot image (written by snapshot-io)
//   <root>/<id>/memory.img.verified   sidecar: {format, key, stat, runs?}
//   <root>/<id>/flat.img              diff chains only: base + diffs, zero pages as holes
//   <root>/<id>/flat.img.verified

import { closeSync, existsSync, fstatSync, ftruncateSync, fsyncSync, openSync, readFileSync, readSync, readdirSync, renameSync, rmSync, unlinkSync, writeSync, type BigIntStats } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { crc32 } from 'node:zlib';
import { ThawError, invariant } from '../core/errors.js';
import { CHUNK_BYTES, PAGE_BYTES, findPageRuns, type PageRun, type SnapshotState } from '../core/snapshot-format.js';
import { MEMORY_FILE, loadChainInto } from '../snapshot/snapshot-io.js';

/** Name of the flattened image of a diff chain, beside the top snapshot's state file. */
export const FLAT_FILE = 'flat.img';
const SIDECAR_SUFFIX = '.verified';
const SIDECAR_FORMAT = 'thaw-verified-1';

/** A snapshot chain resolved to one verified image file. */
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

/** The stat fields a verification is keyed by. */
interface StatKey {
  dev: string;
  ino: string;
  size: string;
  mtimeNs: string;
  ctimeNs: string;
}

interface Sidecar {
  format: typeof SIDECAR_FORMAT;
  /** crc32 of the state's chunk checksums: a different snapshot under the same path never matches. */
  key: number;
  stat: StatKey;
  /** Present pages as [firstPage, pageCount] pairs (flat images only; memory.img uses the state's runs). */
  runs?: [number, number][];
}

function statKey(st: BigIntStats): StatKey {
  return { dev: String(st.dev), ino: String(st.ino), size: String(st.size), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs) };
}

function stateKey(state: SnapshotState): number {
  return crc32(new Uint8Array(state.chunkCrcs.buffer, state.chunkCrcs.byteOffset, state.chunkCrcs.byteLength));
}

function sameKey(a: StatKey, b: StatKey): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;
}

/**
 * Reads the sidecar of `path`; null when missing or malformed. Its runs become the image's page
 * index (walked page by page), so they must be whole pages of a `memoryPages`-page memory,
 * ascending and disjoint: a sidecar that parses but says otherwise is no sidecar.
 */
function readSidecar(path: string, memoryPages: number): Sidecar | null {
  try {
    const s = JSON.parse(readFileSync(path + SIDECAR_SUFFIX, 'utf8')) as unknown;
    return isSidecar(s, memoryPages) ? s : null;
  } catch {
    return null;
  }
}

function isSidecar(v: unknown, memoryPages: number): v is Sidecar {
  if (typeof v !== 'object' || v === null) return false;
  const s = v as Record<string, unknown>;
  const stat = s.stat as Record<string, unknown> | null;
  if (s.format !== SIDECAR_FORMAT || typeof s.key !== 'number' || typeof stat !== 'object' || stat === null) return false;
  if (!['dev', 'ino', 'size', 'mtimeNs', 'ctimeNs'].every((k) => typeof stat[k] === 'string')) return false;
  if (s.runs === undefined) return true;
  if (!Array.isArray(s.runs)) return false;
  let prevEnd = 0;
  for (const r of s.runs as unknown[]) {
    if (!Array.isArray(r) || r.length !== 2 || !Number.isSafeInteger(r[0]) || !Number.isSafeInteger(r[1])) return false;
    const [firstPage, pageCount] = r as [number, number];
    if (pageCount <= 0 || firstPage < prevEnd || firstPage + pageCount > memoryPages) return false;
    prevEnd = firstPage + pageCount;
  }
  return true;
}

/** A file name for a temporary artefact that a later sweep can attribute to its (maybe dead) writer. */
export function tempName(path: string): string {
  return `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
}

const TEMP_PATTERN = /\.tmp-(\d+)-[0-9a-f]+$/;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err: unknown) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

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
    if (m && !alive(Number(m[1]))) {
      rmSync(join(dir, name), { force: true, recursive: true });
      removed++;
    }
  }
  return removed;
}

/**
 * Checks every chunk CRC of the image in `fd` against `state` (reading the whole file once).
 * Throws THAW_SNAPSHOT_CORRUPT naming the first bad chunk.
 */
function verifyFd(fd: number, state: SnapshotState, what: string): void {
  const memoryBytes = state.meta.memoryBytes;
  const buf = Buffer.allocUnsafe(CHUNK_BYTES);
  for (let chunk = 0; chunk * CHUNK_BYTES < memoryBytes; chunk++) {
    const lo = chunk * CHUNK_BYTES;
    const len = Math.min(CHUNK_BYTES, memoryBytes - lo);
    let done = 0;
    while (done < len) {
      const n = readSync(fd, buf, done, len - done, lo + done);
      if (n === 0) throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id: state.meta.id, detail: `${what} ends early at byte ${lo + done}` });
      done += n;
    }
    if (crc32(buf.subarray(0, len)) !== state.chunkCrcs[chunk]) {
      throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id: state.meta.id, detail: `${what}: checksum mismatch in chunk ${chunk} (bytes ${lo}..${lo + len})` });
    }
  }
}

/** An image file opened for use, verified against its state (now or by a still-valid sidecar). */
export interface VerifiedFd {
  /** Open read-only fd; the caller closes it. */
  readonly fd: number;
  /** True when this call had to read and check the whole file. */
  readonly verifiedNow: boolean;
  readonly sidecar: Sidecar;
}

/**
 * Opens `path` and makes sure its bytes match `state`'s checksums, trusting a sidecar only when
 * it names this very file (same stat key, taken from the opened fd). Writes a fresh sidecar after
 * verifying. `runs`: the present pages to record in a new sidecar (flat images).
 * Throws THAW_SNAPSHOT_CORRUPT (missing, wrong size, bad checksum).
 */
export function openVerified(path: string, state: SnapshotState, runs?: readonly PageRun[]): VerifiedFd {
  const id = state.meta.id;
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err: unknown) {
    throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id, detail: `cannot open ${path}: ${(err as Error).message}` }, { cause: err });
  }
  try {
    const st = fstatSync(fd, { bigint: true });
    if (st.size !== BigInt(state.meta.memoryBytes)) {
      throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id, detail: `${path} is ${st.size} bytes, expected ${state.meta.memoryBytes} (truncated?)` });
    }
    const key = statKey(st);
    const existing = readSidecar(path, state.meta.memoryBytes / PAGE_BYTES);
    if (existing && existing.key === stateKey(state) && sameKey(existing.stat, key)) return { fd, verifiedNow: false, sidecar: existing };
    verifyFd(fd, state, path);
    const sidecar: Sidecar = { format: SIDECAR_FORMAT, key: stateKey(state), stat: key };
    const recorded = runs ?? existing?.runs?.map(([firstPage, pageCount]) => ({ firstPage, pageCount }));
    if (recorded) sidecar.runs = recorded.map((r) => [r.firstPage, r.pageCount]);
    writeAtomic(path + SIDECAR_SUFFIX, Buffer.from(JSON.stringify(sidecar)));
    return { fd, verifiedNow: true, sidecar };
  } catch (err: unknown) {
    closeSync(fd);
    throw err;
  }
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

/** Builds <top>/flat.img from a chain (eager load: verifies every chunk) unless present. */
function flatten(root: string, chain: readonly SnapshotState[], top: SnapshotState, path: string): readonly PageRun[] {
  const memory = new Uint8Array(top.meta.memoryBytes);
  loadChainInto(root, chain, memory);
  const runs = findPageRuns(memory);
  writeSparseImage(path, memory, runs);
  return runs;
}

/** Result of resolveImage(): the image and what resolving it cost. */
export interface ResolvedImage {
  readonly image: SnapshotImage;
  /** Open, verified fd of image.path; the caller closes it (or passes it on and closes it). */
  readonly fd: number;
  /** True when a flat image was built or a file verified now. */
  readonly built: boolean;
  readonly elapsedMs: number;
}

/**
 * Resolves a chain (base first) to its single verified image: memory.img of a full snapshot,
 * or the flat.img of a diff chain (built once). Also sweeps temporaries of dead writers.
 * Throws THAW_SNAPSHOT_CORRUPT, THAW_INTERNAL (empty chain).
 */
export function resolveImage(root: string, chain: readonly SnapshotState[]): ResolvedImage {
  const t0 = performance.now();
  const top = chain[chain.length - 1];
  invariant(top !== undefined, 'resolveImage: empty snapshot chain');
  const dir = join(root, top.meta.id);
  sweepStaleTemps(dir);
  let built = false;
  let path: string;
  let runs: readonly PageRun[];
  let opened: VerifiedFd;
  if (chain.length === 1) {
    path = join(dir, MEMORY_FILE);
    runs = top.runs;
    opened = openVerified(path, top);
  } else {
    path = join(dir, FLAT_FILE);
    let fresh: readonly PageRun[] | undefined;
    if (!existsSync(path)) {
      fresh = flatten(root, chain, top, path);
      built = true;
    }
    try {
      opened = openVerified(path, top, fresh);
      // Its page index lives only in the sidecar: a sidecar lost or malformed leaves none.
      if (opened.sidecar.runs === undefined && fresh === undefined) {
        closeSync(opened.fd);
        throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id: top.meta.id, detail: `${path}${SIDECAR_SUFFIX} lacks the page index` });
      }
    } catch (err: unknown) {
      // A flat image is derived data: if it does not verify, rebuild it once from the chain
      // (which eager-verifies every chunk) rather than fail a snapshot whose own files are fine.
      if (!(err instanceof ThawError && err.code === 'THAW_SNAPSHOT_CORRUPT')) throw err;
      unlinkSync(path);
      fresh = flatten(root, chain, top, path);
      built = true;
      opened = openVerified(path, top, fresh);
    }
    const recorded = opened.sidecar.runs;
    if (recorded === undefined) {
      closeSync(opened.fd);
      throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id: top.meta.id, detail: `${path}${SIDECAR_SUFFIX} lacks the page index` });
    }
    runs = recorded.map(([firstPage, pageCount]) => ({ firstPage, pageCount }));
  }
  const image: SnapshotImage = { id: top.meta.id, dir, path, memoryBytes: top.meta.memoryBytes, runs, state: top };
  return { image, fd: opened.fd, built: built || opened.verifiedNow, elapsedMs: performance.now() - t0 };
}

/** Guest page -> image page map for a userfaultfd server: -1 for holes, identity elsewhere. */
export function pageMapOf(image: SnapshotImage): Int32Array {
  const map = new Int32Array(image.memoryBytes / PAGE_BYTES).fill(-1);
  for (const run of image.runs) {
    for (let p = run.firstPage; p < run.firstPage + run.pageCount; p++) map[p] = p;
  }
  return map;
}
