// Snapshot files on disk: atomic writes of a snapshot directory, reading and checking its
// state file, and the eager load of a (full or diff) snapshot chain into guest memory.

import { closeSync, fdatasyncSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, renameSync, rmSync, statSync, writeSync, fstatSync } from 'node:fs';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { ThawError } from '../core/errors.js';
import {
  CHUNK_BYTES, PAGE_BYTES, chunkChecksums, pageChecksums, decodeState, encodeState, findPageRuns, isZeroPage, runBytes,
  type PageRun, type SnapshotMeta, type SnapshotState,
} from '../core/snapshot-format.js';

export const STATE_FILE = 'state.thaw';
/** Most unsynced bytes writeSnapshot leaves in the page cache at once. */
const WRITEBACK_BYTES = 32 << 20;
export const MEMORY_FILE = 'memory.img';

/** What writeSnapshot produced. */
export interface WrittenSnapshot {
  readonly state: SnapshotState;
  /** Bytes of page data stored in memory.img (its allocated size, holes excluded). */
  readonly storedBytes: number;
}

/**
 * Writes snapshot `meta.id` under `root` atomically: everything goes to a temporary
 * directory, is fsynced, then renamed into place, so a crash leaves no half snapshot.
 * `base` is the restored memory of the base snapshot (diff snapshots only).
 */
export function writeSnapshot(root: string, meta: SnapshotMeta, memory: Uint8Array, base?: Uint8Array): WrittenSnapshot {
  const finalDir = join(root, meta.id);
  // Named after the writer's pid, so a sweep can tell a dead writer's leftovers from a live write.
  const tmpDir = join(root, `${TEMP_PREFIX}${meta.id}-${process.pid}-${randomBytes(4).toString('hex')}`);
  mkdirSync(tmpDir, { recursive: true });
  try {
    const runs = findPageRuns(memory, base);
    const fd = openSync(join(tmpDir, MEMORY_FILE), 'w');
    try {
      ftruncateSync(fd, memory.length);
      // Written in slices with a data sync every WRITEBACK_BYTES: dirty page cache is charged to
      // the writer's memory cgroup and cannot be reclaimed until written back, so one unsynced
      // write of a large image could get a sandbox host killed for memory it does not use.
      let unsynced = 0;
      for (const run of runs) {
        const end = (run.firstPage + run.pageCount) * PAGE_BYTES;
        for (let lo = run.firstPage * PAGE_BYTES; lo < end; lo += WRITEBACK_BYTES) {
          const hi = Math.min(end, lo + WRITEBACK_BYTES);
          writeAll(fd, memory.subarray(lo, hi), lo);
          unsynced += hi - lo;
          if (unsynced >= WRITEBACK_BYTES) {
            fdatasyncSync(fd);
            unsynced = 0;
          }
        }
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    const state: SnapshotState = { meta, runs, chunkCrcs: chunkChecksums(memory), pageCrcs: pageChecksums(memory) };
    writeFileDurable(join(tmpDir, STATE_FILE), encodeState(state));
    fsyncPath(tmpDir);
    renameSync(tmpDir, finalDir);
    fsyncPath(root);
    return { state, storedBytes: runBytes(runs) };
  } catch (err) {
    rmSync(tmpDir, { recursive: true, force: true });
    throw err;
  }
}

const TEMP_PREFIX = '.tmp-';
/** `.tmp-<id>-<pid>-<hex>`; older Thaw wrote `.tmp-<id>-<hex>` (no pid). */
const TEMP_PID = /-(\d+)-[0-9a-f]{8}$/;

/**
 * Removes snapshot directories left half-written under `root` by writers that died (a host killed
 * mid-snapshot, a crash): `.tmp-*` entries whose writer pid is not alive, and those of an older
 * Thaw that named no pid. Run when the platform starts. Returns the names removed.
 */
export function sweepSnapshotTemps(root: string): string[] {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(TEMP_PREFIX)) continue;
    const pid = TEMP_PID.exec(name);
    if (pid && processAlive(Number(pid[1]))) continue;
    rmSync(join(root, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

/** Whether process `pid` exists (EPERM: it does, owned by someone else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err: unknown) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Reads and checks a snapshot's state file. `expectSha256`: the digests of the state files the
 * daemon verified (snapshot-seal.ts), by id; given, a state file whose bytes differ, or that the
 * daemon did not verify, is refused. Throws THAW_SNAPSHOT_NOT_FOUND / _CORRUPT / _VERSION.
 */
export function readState(root: string, id: string, expectSha256?: Readonly<Record<string, string>>): SnapshotState {
  let buf: Buffer;
  try {
    buf = readFileSync(join(root, id, STATE_FILE));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ThawError('THAW_SNAPSHOT_NOT_FOUND', { id });
    throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id, detail: `cannot read state file: ${(err as Error).message}` }, { cause: err });
  }
  if (expectSha256 !== undefined && createHash('sha256').update(buf).digest('hex') !== expectSha256[id]) {
    throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id, detail: 'its state file is not the one the daemon verified (changed since, or outside the verified chain)' });
  }
  const state = decodeState(id, buf);
  if (state.meta.id !== id) throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id, detail: `state file names snapshot '${state.meta.id}'` });
  return state;
}

/** The chain of states from the full root snapshot to `id` (base first); `expectSha256` as readState's. */
export function readChain(root: string, id: string, expectSha256?: Readonly<Record<string, string>>): SnapshotState[] {
  const chain: SnapshotState[] = [];
  const seen = new Set<string>();
  let next: string | null = id;
  while (next !== null) {
    if (seen.has(next)) throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id, detail: `base chain loops at '${next}'` });
    seen.add(next);
    const state = readState(root, next, expectSha256);
    chain.unshift(state);
    next = state.meta.kind === 'diff' ? state.meta.baseId : null;
  }
  return chain;
}

/**
 * Eager restore: makes `target` (guest memory, at least meta.memoryBytes long) hold the
 * snapshot. Pages present in the image are read straight into place; other pages are zeroed
 * only where the target is not already zero (fresh Wasm memory is zero except its data
 * segments, and writing untouched pages would fault them in for nothing). Then every chunk
 * checksum is verified: a truncated or bit-flipped image throws THAW_SNAPSHOT_CORRUPT.
 */
export function loadChainInto(root: string, chain: readonly SnapshotState[], target: Uint8Array): { bytesRead: number } {
  const top = chain[chain.length - 1];
  if (!top) throw new ThawError('THAW_INTERNAL', { detail: 'empty snapshot chain' });
  const memoryBytes = top.meta.memoryBytes;
  if (target.length < memoryBytes) throw new ThawError('THAW_INTERNAL', { detail: `target memory ${target.length} < snapshot ${memoryBytes}` });
  let bytesRead = 0;
  chain.forEach((state, depth) => {
    const fd = openMemoryFile(root, state.meta.id);
    try {
      const imageBytes = fstatSync(fd).size;
      if (imageBytes !== state.meta.memoryBytes) {
        throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id: state.meta.id, detail: `memory image is ${imageBytes} bytes, expected ${state.meta.memoryBytes} (truncated?)` });
      }
      // The full root snapshot defines every page: clear what it does not hold.
      if (depth === 0) zeroGaps(target, state.runs, state.meta.memoryBytes);
      for (const run of state.runs) {
        const lo = run.firstPage * PAGE_BYTES;
        const len = run.pageCount * PAGE_BYTES;
        readAll(fd, target.subarray(lo, lo + len), lo, state.meta.id);
        bytesRead += len;
      }
    } finally {
      closeSync(fd);
    }
  });
  verifyChecksums(top, target.subarray(0, memoryBytes));
  return { bytesRead };
}

/** Checks restored memory against the snapshot's chunk checksums. */
export function verifyChecksums(state: SnapshotState, memory: Uint8Array): void {
  const actual = chunkChecksums(memory);
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== state.chunkCrcs[i]) {
      throw new ThawError('THAW_SNAPSHOT_CORRUPT', {
        id: state.meta.id,
        detail: `memory checksum mismatch in chunk ${i} (bytes ${i * CHUNK_BYTES}..${Math.min((i + 1) * CHUNK_BYTES, memory.length)})`,
      });
    }
  }
}

/** Bytes the snapshot directory takes on disk (allocated blocks, so holes do not count). */
export function diskUsageBytes(root: string, id: string): number {
  let total = 0;
  for (const f of [STATE_FILE, MEMORY_FILE]) {
    try {
      total += statSync(join(root, id, f)).blocks * 512;
    } catch {
      /* a missing file is reported by readState, not here */
    }
  }
  return total;
}

function zeroGaps(target: Uint8Array, runs: readonly PageRun[], memoryBytes: number): void {
  let page = 0;
  const pages = memoryBytes / PAGE_BYTES;
  const clear = (from: number, to: number): void => {
    for (let p = from; p < to; p++) {
      const view = target.subarray(p * PAGE_BYTES, (p + 1) * PAGE_BYTES);
      if (!isZeroPage(view)) view.fill(0);
    }
  };
  for (const run of runs) {
    clear(page, run.firstPage);
    page = run.firstPage + run.pageCount;
  }
  clear(page, pages);
  // Memory beyond the snapshot (a larger target) must be zero too.
  if (target.length > memoryBytes) clear(pages, Math.ceil(target.length / PAGE_BYTES));
}

function openMemoryFile(root: string, id: string): number {
  try {
    return openSync(join(root, id, MEMORY_FILE), 'r');
  } catch (err) {
    throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id, detail: `cannot open memory image: ${(err as Error).message}` }, { cause: err });
  }
}

function readAll(fd: number, into: Uint8Array, position: number, id: string): void {
  let done = 0;
  while (done < into.length) {
    const n = readSync(fd, into, done, into.length - done, position + done);
    if (n === 0) throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id, detail: `memory image ends early at byte ${position + done}` });
    done += n;
  }
}

function writeAll(fd: number, data: Uint8Array, position: number): void {
  let done = 0;
  while (done < data.length) done += writeSync(fd, data, done, data.length - done, position + done);
}

/** Writes a file durably and atomically: temp file, fsync, rename, fsync of the directory. */
export function writeFileDurable(path: string, data: Uint8Array): void {
  const tmp = `${path}.tmp-${randomBytes(4).toString('hex')}`;
  const fd = openSync(tmp, 'w');
  try {
    writeAll(fd, data, 0);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  fsyncPath(join(path, '..'));
}

function fsyncPath(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
