// The byte-addressable snapshot pool of the pass strategy (PASS): a pool file holding snapshot
// images in slots, and an index mapping snapshots to slots, in a directory on the fastest
// byte-addressable tier the host has (one such pool per function: see pass.ts passPoolOf):
//   THAW_PMEM_DIR                     when set (its tier is read from the mount: dax, tmpfs or other)
//   <mount>/thaw-pmem                 the first writable mount with the "dax" option (fsdax)
//   /dev/shm/thaw-pmem                otherwise (tmpfs: DRAM standing in for persistent memory)
// devdax character devices (/dev/dax*) are detected and reported but not used: they need a
// namespace reconfigured to fsdax (or a devdax allocator) that this pool does not implement.
//
//   <dir>/pool.bin    slots, each 2 MiB aligned: [image bytes, page-aligned][4 KiB slot tag]
//   <dir>/index.json  {format, generation, slots: {<key>: {offsetBytes, imageBytes, slotBytes, stateKey, generation}}}
//   <dir>/pool.lock   held (O_EXCL, holder's pid inside) while allocating or freeing
//   <dir>/lease-<generation>-<pid>-<n>   one per restore mapping a slot, removed at release
// The slot tag repeats the snapshot key, state key and generation: a slot whose tag does not match
// its index entry (reused, overwritten, pool truncated) is stale and is never mapped.
// Written atomically: slot bytes first (fsync), then the index (temporary name, rename).
// Freeing: a freed slot may still be mapped by a live sandbox (MAP_PRIVATE reads the pool until
// each page is written), so it is only retired; its space is reclaimed (tag zeroed first, then
// reusable, or truncated away at the pool's tail) once no live process holds a lease on it.
// A restore takes its lease before checking the tag, so reclaim either sees the lease or has
// already zeroed the tag and the restore refuses the slot.
// A missing index is an empty pool; a malformed one is refused (THAW_STRATEGY_UNAVAILABLE), never
// taken for an empty pool, whose new slots could overwrite slots live sandboxes map.

import { closeSync, existsSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { crc32 } from 'node:zlib';
import { ThawError } from '../core/errors.js';
import { CHUNK_BYTES, PAGE_BYTES, type SnapshotState } from '../core/snapshot-format.js';
import { writeAtomic, type SnapshotImage } from './snapshot-image.js';
import { sourceKey } from './sabre-image.js';

/** Slot alignment: 2 MiB, so a DAX mapping can use huge pages. */
export const SLOT_ALIGN_BYTES = 2 << 20;
const TAG_BYTES = PAGE_BYTES;
const TAG_MAGIC = 'THAWSLOT';
const INDEX_FORMAT = 'thaw-pass-index-1';
const TMPFS_MAGIC = 0x01021994;

/** Which memory tier the pool lives on. */
export type PoolTier = 'fsdax' | 'tmpfs' | 'other';

/** Where the pool is and what backs it. */
export interface PoolLocation {
  readonly dir: string;
  readonly tier: PoolTier;
  /** Why this directory was chosen (said openly in stats and logs). */
  readonly reason: string;
}

/** One slot of the index. */
export interface SlotEntry {
  readonly offsetBytes: number;
  readonly imageBytes: number;
  /** imageBytes + the tag, rounded up to SLOT_ALIGN_BYTES. */
  readonly slotBytes: number;
  readonly stateKey: number;
  readonly generation: number;
}

interface PoolIndex {
  format: typeof INDEX_FORMAT;
  generation: number;
  slots: Record<string, SlotEntry>;
  /** Freed slots that may still be mapped (see the header). */
  retired: SlotEntry[];
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** An index entry as the pool writes it: whole, aligned slots big enough for image and tag. */
function isSlotEntry(v: unknown): v is SlotEntry {
  if (typeof v !== 'object' || v === null) return false;
  const e = v as Record<string, unknown>;
  return isCount(e.offsetBytes) && isCount(e.imageBytes) && isCount(e.slotBytes) && isCount(e.generation) && isCount(e.stateKey)
    && e.stateKey <= 0xffff_ffff && e.offsetBytes % SLOT_ALIGN_BYTES === 0 && e.slotBytes % SLOT_ALIGN_BYTES === 0
    && e.slotBytes >= e.imageBytes + TAG_BYTES && isCount(e.offsetBytes + e.slotBytes);
}

/** index.json as the pool writes it (retired may be absent in indexes written before it existed). */
function isPoolIndex(v: unknown): v is Omit<PoolIndex, 'retired'> & { retired?: SlotEntry[] } {
  if (typeof v !== 'object' || v === null) return false;
  const idx = v as Record<string, unknown>;
  const slots = idx.slots;
  return idx.format === INDEX_FORMAT && isCount(idx.generation)
    && typeof slots === 'object' && slots !== null && !Array.isArray(slots) && Object.values(slots).every(isSlotEntry)
    && (idx.retired === undefined || (Array.isArray(idx.retired) && idx.retired.every(isSlotEntry)));
}

function daxMounts(): string[] {
  try {
    return readFileSync('/proc/mounts', 'utf8').split('\n')
      .map((l) => l.split(' '))
      .filter((f) => f.length > 3 && f[3]!.split(',').some((o) => o === 'dax' || o.startsWith('dax=')) && !f[3]!.split(',').includes('dax=never'))
      .map((f) => f[1]!);
  } catch {
    return [];
  }
}

function devdaxDevices(): string[] {
  try {
    return readdirSync('/dev').filter((n) => /^dax\d+\.\d+$/.test(n)).map((n) => `/dev/${n}`);
  } catch {
    return [];
  }
}

function tierOf(dir: string): PoolTier {
  const real = resolve(dir);
  if (daxMounts().some((m) => real === m || real.startsWith(m.endsWith('/') ? m : `${m}/`))) return 'fsdax';
  try {
    return statfsSync(dir).type === TMPFS_MAGIC ? 'tmpfs' : 'other';
  } catch {
    return 'other';
  }
}

/** Chooses the pool directory (see the header) and creates it. Throws THAW_INTERNAL (cannot create it). */
export function poolLocation(env: NodeJS.ProcessEnv = process.env): PoolLocation {
  let dir: string;
  let reason: string;
  const devdax = devdaxDevices();
  const note = devdax.length > 0 ? `; devdax ${devdax.join(', ')} present but not used (needs fsdax)` : '';
  if (env.THAW_PMEM_DIR) {
    dir = env.THAW_PMEM_DIR;
    reason = `THAW_PMEM_DIR=${dir}`;
  } else {
    const mount = daxMounts()[0];
    if (mount !== undefined) {
      dir = join(mount, 'thaw-pmem');
      reason = `fsdax mount ${mount}`;
    } else {
      dir = '/dev/shm/thaw-pmem';
      reason = 'no DAX device or fsdax mount on this host: tmpfs (DRAM) stands in for persistent memory';
    }
  }
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err: unknown) {
    throw new ThawError('THAW_INTERNAL', { detail: `pass: cannot create pool directory ${dir}: ${(err as Error).message}` }, { cause: err });
  }
  return { dir, tier: tierOf(dir), reason: reason + note };
}

/** The index key of snapshot `id` under snapshot root `root`. */
export function slotKey(root: string, id: string): string {
  return `${createHash('sha256').update(resolve(root)).digest('hex').slice(0, 16)}/${id}`;
}

let leaseCounter = 0;
/**
 * The pid that leases are taken in the name of: this process's, unless it runs in a PID namespace
 * of its own (a jailed sandbox host is PID 1 there), where the daemon names the outer pid of its
 * jailer, which lives exactly as long as the host. A random tag keeps names apart regardless.
 */
let leaseOwnerPid = process.pid;
const leaseTag = randomBytes(4).toString('hex');

/** Sets the pid leases are taken in the name of (see leaseOwnerPid). */
export function setLeaseOwnerPid(pid: number): void {
  leaseOwnerPid = pid;
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err: unknown) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether a live process holds a lease in pool folder `dir` or in the group folders under it. */
export function leasedInDir(dir: string): boolean {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const m = /^lease-\d+-(\d+)-/.exec(e.name);
    if (m && pidAlive(Number(m[1]))) return true;
    if (e.isDirectory() && /^g\d+$/.test(e.name) && leasedInDir(join(dir, e.name))) return true;
  }
  return false;
}

/** A snapshot pool in one directory. Methods are synchronous and safe across processes. */
export class SnapshotPool {
  readonly location: PoolLocation;
  readonly poolPath: string;
  readonly indexPath: string;
  readonly lockPath: string;

  constructor(location: PoolLocation) {
    this.location = location;
    this.poolPath = join(location.dir, 'pool.bin');
    this.indexPath = join(location.dir, 'index.json');
    this.lockPath = join(location.dir, 'pool.lock');
  }

  /**
   * The index; a missing one is an empty pool. Throws THAW_STRATEGY_UNAVAILABLE when it is present
   * but unreadable or malformed: counted as empty, it would let new slots be placed over slots
   * that live sandboxes still map (their leases are only found through the index's entries).
   */
  #readIndex(): PoolIndex {
    let text: string;
    try {
      text = readFileSync(this.indexPath, 'utf8');
    } catch (err: unknown) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { format: INDEX_FORMAT, generation: 0, slots: {}, retired: [] };
      throw this.#badIndex(`unreadable (${(err as Error).message})`, err);
    }
    let idx: unknown;
    try {
      idx = JSON.parse(text);
    } catch (err: unknown) {
      throw this.#badIndex('not JSON', err);
    }
    if (!isPoolIndex(idx)) throw this.#badIndex(`not a ${INDEX_FORMAT} index (a field is missing or out of range)`);
    return { ...idx, retired: idx.retired ?? [] };
  }

  #badIndex(what: string, cause?: unknown): ThawError {
    return new ThawError('THAW_STRATEGY_UNAVAILABLE', {
      strategy: 'pass',
      reason: `the pool index ${this.indexPath} is ${what}; refusing to use the pool rather than place slots over ones live sandboxes may map (remove ${this.location.dir} once no sandbox restored with pass runs)`,
    }, cause === undefined ? undefined : { cause });
  }

  /** Runs `fn` holding the pool lock; a lock whose holder died is broken. */
  #locked<T>(fn: () => T): T {
    for (let attempt = 0; ; attempt++) {
      try {
        const fd = openSync(this.lockPath, 'wx');
        writeSync(fd, String(process.pid));
        closeSync(fd);
        break;
      } catch (err: unknown) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        let holder = NaN;
        try {
          holder = Number(readFileSync(this.lockPath, 'utf8'));
        } catch {
          continue; // released meanwhile
        }
        if (Number.isInteger(holder) && holder > 0 && !pidAlive(holder)) {
          rmSync(this.lockPath, { force: true });
          continue;
        }
        if (attempt > 60_000) throw new ThawError('THAW_INTERNAL', { detail: `pass: pool lock ${this.lockPath} held by ${holder} for too long` });
        sleepMs(2);
      }
    }
    try {
      return fn();
    } finally {
      rmSync(this.lockPath, { force: true });
    }
  }

  #tag(key: string, entry: SlotEntry): Buffer {
    const tag = Buffer.alloc(TAG_BYTES);
    tag.write(TAG_MAGIC, 0, 'latin1');
    tag.writeUInt32LE(entry.stateKey >>> 0, 8);
    tag.writeDoubleLE(entry.generation, 12);
    tag.writeDoubleLE(entry.imageBytes, 20);
    const k = Buffer.from(key, 'utf8');
    tag.writeUInt16LE(k.length, 28);
    k.copy(tag, 30);
    tag.writeUInt32LE(crc32(tag.subarray(0, TAG_BYTES - 4)), TAG_BYTES - 4);
    return tag;
  }

  /**
   * The slot of snapshot `key` if it is current: indexed, for `state`, and its tag in the pool
   * matches the index (generation, key, state). Returns null when missing, 'stale' when the index
   * names a slot whose tag or state does not match (never map such a slot).
   */
  lookup(key: string, state: SnapshotState): SlotEntry | 'stale' | null {
    const entry = this.#readIndex().slots[key];
    if (entry === undefined) return null;
    if (entry.stateKey !== sourceKey(state) >>> 0 || entry.imageBytes !== state.meta.memoryBytes) return 'stale';
    let fd: number;
    try {
      fd = openSync(this.poolPath, 'r');
    } catch {
      return 'stale';
    }
    try {
      if (fstatSync(fd).size < entry.offsetBytes + entry.imageBytes + TAG_BYTES) return 'stale';
      const tag = Buffer.alloc(TAG_BYTES);
      readSync(fd, tag, 0, TAG_BYTES, entry.offsetBytes + entry.imageBytes);
      return tag.equals(this.#tag(key, entry)) ? entry : 'stale';
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Copies the verified image (`imageFd`, present runs only; holes written as zeros when a slot
   * reuses freed space) into a free slot, checks every chunk checksum of the copy, and indexes it,
   * replacing any previous slot of `key`. Returns the new entry.
   * Throws THAW_SNAPSHOT_CORRUPT (the copy does not match the state), THAW_INTERNAL.
   */
  store(key: string, image: SnapshotImage, imageFd: number): SlotEntry {
    return this.#locked(() => {
      const index = this.#readIndex();
      const old = index.slots[key];
      if (old !== undefined) index.retired.push(old);
      delete index.slots[key];
      const fd = openSync(this.poolPath, existsSync(this.poolPath) ? 'r+' : 'w+', 0o640);
      try {
        this.#reclaim(index, fd);
        return this.#storeLocked(key, image, imageFd, index, fd);
      } finally {
        closeSync(fd);
      }
    });
  }

  #storeLocked(key: string, image: SnapshotImage, imageFd: number, index: PoolIndex, fd: number): SlotEntry {
    const slotBytes = Math.ceil((image.memoryBytes + TAG_BYTES) / SLOT_ALIGN_BYTES) * SLOT_ALIGN_BYTES;
    // First fit among the gaps between occupied (live or retired) slots; else the end of the pool.
    const occupied = [...Object.values(index.slots), ...index.retired].sort((a, b) => a.offsetBytes - b.offsetBytes);
    let offsetBytes = 0;
    for (const s of occupied) {
      if (s.offsetBytes - offsetBytes >= slotBytes) break;
      offsetBytes = Math.max(offsetBytes, s.offsetBytes + s.slotBytes);
    }
    const size = fstatSync(fd).size;
    if (size < offsetBytes + slotBytes) ftruncateSync(fd, offsetBytes + slotBytes);
    // Space below the old size may hold a reclaimed slot's bytes: holes must be written as zeros.
    this.#copyImage(fd, offsetBytes, image, imageFd, offsetBytes < size);
    const entry: SlotEntry = { offsetBytes, imageBytes: image.memoryBytes, slotBytes, stateKey: sourceKey(image.state) >>> 0, generation: index.generation + 1 };
    writeSync(fd, this.#tag(key, entry), 0, TAG_BYTES, offsetBytes + image.memoryBytes);
    this.#verify(fd, offsetBytes, image.state);
    fsyncSync(fd);
    index.generation = entry.generation;
    index.slots[key] = entry;
    writeAtomic(this.indexPath, Buffer.from(JSON.stringify(index)));
    return entry;
  }

  /** Generations with a lease held by a live process. */
  #leased(): Set<number> {
    const held = new Set<number>();
    for (const name of readdirSync(this.location.dir)) {
      const m = /^lease-(\d+)-(\d+)-[0-9a-f]*\d+$/.exec(name);
      if (!m) continue;
      if (pidAlive(Number(m[2]))) held.add(Number(m[1]));
      else rmSync(join(this.location.dir, name), { force: true });
    }
    return held;
  }

  /** Under the lock: drops retired slots nobody maps any more (tag zeroed first), truncates the free tail. */
  #reclaim(index: PoolIndex, fd: number): void {
    const held = this.#leased();
    const size = fstatSync(fd).size;
    index.retired = index.retired.filter((r) => {
      if (held.has(r.generation)) return true;
      if (r.offsetBytes + r.imageBytes + TAG_BYTES <= size) writeSync(fd, Buffer.alloc(TAG_BYTES), 0, TAG_BYTES, r.offsetBytes + r.imageBytes);
      return false;
    });
    // Give the pool's tail back (on tmpfs it is RAM). Space between slots stays allocated until a
    // later slot reuses it: releasing it needs fallocate(PUNCH_HOLE), which the addon lacks.
    const end = [...Object.values(index.slots), ...index.retired].reduce((m, e) => Math.max(m, e.offsetBytes + e.slotBytes), 0);
    if (size > end) ftruncateSync(fd, end);
  }

  /**
   * Takes a lease on `entry` for this process (call before mapping, then check the slot with
   * lookup()). Returns the function that drops it; idempotent.
   */
  lease(entry: SlotEntry): () => void {
    const path = join(this.location.dir, `lease-${entry.generation}-${leaseOwnerPid}-${leaseTag}${leaseCounter++}`);
    closeSync(openSync(path, 'w'));
    let held = true;
    return () => {
      if (held) rmSync(path, { force: true });
      held = false;
    };
  }

  #copyImage(poolFd: number, base: number, image: SnapshotImage, imageFd: number, zeroHoles: boolean): void {
    const buf = Buffer.allocUnsafe(8 << 20);
    const zeros = Buffer.alloc(zeroHoles ? 1 << 20 : 0);
    let cursor = 0;
    const zeroTo = (end: number): void => {
      for (let at = cursor; zeroHoles && at < end;) at += writeSync(poolFd, zeros, 0, Math.min(zeros.length, end - at), base + at);
    };
    for (const run of image.runs) {
      const lo = run.firstPage * PAGE_BYTES;
      const hi = lo + run.pageCount * PAGE_BYTES;
      zeroTo(lo);
      for (let at = lo; at < hi;) {
        const n = readSync(imageFd, buf, 0, Math.min(buf.length, hi - at), at);
        if (n === 0) throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id: image.id, detail: `${image.path} ends early at byte ${at}` });
        let w = 0;
        while (w < n) w += writeSync(poolFd, buf, w, n - w, base + at + w);
        at += n;
      }
      cursor = hi;
    }
    zeroTo(image.memoryBytes);
  }

  #verify(poolFd: number, base: number, state: SnapshotState): void {
    const buf = Buffer.allocUnsafe(CHUNK_BYTES);
    for (let chunk = 0; chunk * CHUNK_BYTES < state.meta.memoryBytes; chunk++) {
      const len = Math.min(CHUNK_BYTES, state.meta.memoryBytes - chunk * CHUNK_BYTES);
      let done = 0;
      while (done < len) {
        const n = readSync(poolFd, buf, done, len - done, base + chunk * CHUNK_BYTES + done);
        if (n === 0) break;
        done += n;
      }
      if (done !== len || crc32(buf.subarray(0, len)) !== state.chunkCrcs[chunk]) {
        throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id: state.meta.id, detail: `pool slot copy differs from the snapshot in chunk ${chunk}` });
      }
    }
  }

  /**
   * Reads the current slot of `key` and checks every chunk checksum of `state` (a scrub).
   * Returns false when there is no current slot. Throws THAW_SNAPSHOT_CORRUPT.
   */
  verifySlot(key: string, state: SnapshotState): boolean {
    const entry = this.lookup(key, state);
    if (entry === null || entry === 'stale') return false;
    const fd = openSync(this.poolPath, 'r');
    try {
      this.#verify(fd, entry.offsetBytes, state);
    } finally {
      closeSync(fd);
    }
    return true;
  }

  /** The indexed slot of `key`, current or not (for listings; restores use lookup()). Throws THAW_STRATEGY_UNAVAILABLE (malformed index). */
  entry(key: string): SlotEntry | undefined {
    if (!existsSync(this.indexPath)) return undefined;
    return this.#readIndex().slots[key];
  }

  /** Frees the slot of `key`: retired, reclaimed once no live process maps it (see the header). Returns whether one was indexed. */
  free(key: string): boolean {
    if (!existsSync(this.indexPath)) return false;
    return this.#locked(() => {
      const index = this.#readIndex();
      if (index.slots[key] === undefined) return false;
      index.retired.push(index.slots[key]!);
      delete index.slots[key];
      const fd = openSync(this.poolPath, 'r+');
      try {
        this.#reclaim(index, fd);
      } finally {
        closeSync(fd);
      }
      writeAtomic(this.indexPath, Buffer.from(JSON.stringify(index)));
      return true;
    });
  }

  /** Opens the pool file read-only (the caller closes the fd; mappings outlive it). */
  openPool(): number {
    return openSync(this.poolPath, 'r');
  }
}
