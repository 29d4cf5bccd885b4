// pass (PASS): snapshot images live in a byte-addressable memory pool (pass-pool.ts: one pool
// file with 2 MiB-aligned slots and an index, on fsdax when the host has it, tmpfs otherwise).
// Prepare copies the verified image into a slot once; a restore maps the slot MAP_PRIVATE
// straight over guest memory and populates its page tables for reading in one call
// (MADV_POPULATE_READ: the pool's pages are mapped in place, nothing is copied), so the guest reads
// the pool directly with no file read, no page server and no per-page fault; its writes stay
// private (copy on write). Measured on this host (mem64-c, 64 MiB on tmpfs): leaving the pages to
// fault in one by one made the first invocation several times slower than the populate call.
// Then every chunk of the mapped slot is checked against the state's checksums (crc32, about
// 2 GB/s here), so a byte flipped in the pool since the slot was written is refused, never
// served. Stats say which tier served the restore
// (`tier`: fsdax or tmpfs) and why it was chosen (`tierReason`): on a host without DAX, pass is
// measured on DRAM, which is what the published comparison calls "DRAM", not PMem.

import { createHash } from 'node:crypto';
import { chmodSync, chownSync, closeSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ThawError } from '../../core/errors.js';
import type { SnapshotState } from '../../core/snapshot-format.js';
import { madvisePopulateRead, mapFile } from '../../native/index.js';
import { verifyRestored } from '../guest-memory.js';
import { openLazy } from '../lazy-image.js';
import { leasedInDir, poolLocation, slotKey, SnapshotPool, type PoolLocation, type PoolTier, type SlotEntry } from '../pass-pool.js';
import { resolveImage, type SnapshotImage } from '../snapshot-image.js';
import { claimTmpfsDir, sweepOrphanTmpfsDirs } from '../tmpfs-owner.js';
import type { OpenedImage, PrepareReport, RestoreStats, RestoreStrategy } from '../strategy.js';

/** Restore stats of pass. */
export interface PassStats extends RestoreStats {
  tier: PoolTier;
  tierReason: string;
  /** Offset of the slot in the pool file. */
  slotOffsetBytes: number;
  /** Whether the page tables were populated at fill (false: kernel without MADV_POPULATE_READ, or disabled). */
  populated: boolean;
}

/** Options of passStrategy. */
export interface PassOptions {
  /** Populate the mapping's page tables at fill (default true). */
  readonly populate?: boolean;
}

let location: PoolLocation | undefined;
const pools = new Map<string, SnapshotPool>();

/** Where this process's pools live (THAW_PMEM_DIR is read once). Throws THAW_INTERNAL (no pool directory). */
function passLocation(): PoolLocation {
  location ??= poolLocation();
  return location;
}

/**
 * The pool of group `gid`: its own directory `g<gid>` under the pool location, holding its own
 * pool file, index and leases. Run as root (the daemon), it makes the directory root:<gid> 2770
 * (its files 0640): hosts of that group, one function's (jail.ts), may read its slots and take
 * leases in it; hosts of other functions cannot even enter it.
 */
function groupPool(root: string, gid: number): SnapshotPool {
  const dir = join(daemonPoolDir(root), `g${gid}`);
  let p = pools.get(dir);
  if (p === undefined) {
    const base = passLocation();
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (process.getuid?.() === 0) {
      chownSync(dir, 0, gid);
      chmodSync(dir, gid === 0 ? 0o700 : 0o2770);
    }
    p = new SnapshotPool({ ...base, dir });
    pools.set(dir, p);
  }
  return p;
}

/**
 * The pools of one data directory (its snapshot root): a directory of their own under the pool
 * location, named by a digest of the root's path, so that two daemons, whose function gids both
 * start at the same number, never share a group pool. Traversable by hosts, listable by root only.
 */
function daemonPoolDir(root: string): string {
  const dir = join(passLocation().dir, createHash('sha256').update(resolve(root)).digest('hex').slice(0, 16));
  claimTmpfsDir(dir, root, 0o711);
  return dir;
}

/**
 * Removes the pools of data directories that no longer exist (tmpfs-owner.ts) and the single
 * shared pool of the layout before pools were per data directory; a pool a live process leases
 * is kept. Returns the removed paths.
 */
export function sweepOrphanPassPools(base: string = passLocation().dir, now = Date.now()): string[] {
  return sweepOrphanTmpfsDirs(base, { inUse: leasedInDir, legacy: /^(pool\.bin|pool\.lock|index\.json|g\d+|lease-.*)$/, now });
}

/**
 * The pool of snapshot `id` under `root`: that of its directory's group, which is its function's
 * group when hosts are jailed (the daemon grants each snapshot to its function's gid), so a
 * function's slots are readable by its own hosts only. Throws THAW_SNAPSHOT_NOT_FOUND, THAW_INTERNAL.
 */
export function passPoolOf(root: string, id: string): SnapshotPool {
  let gid: number;
  try {
    gid = statSync(join(root, id)).gid;
  } catch (err: unknown) {
    throw new ThawError('THAW_SNAPSHOT_NOT_FOUND', { id }, { cause: err });
  }
  return groupPool(root, gid);
}

/** Every group pool of the data directory whose snapshot root is `root`. */
function groupPools(root: string): SnapshotPool[] {
  try {
    return readdirSync(daemonPoolDir(root)).map((n) => /^g(\d+)$/.exec(n)).filter((m) => m !== null).map((m) => groupPool(root, Number(m[1])));
  } catch {
    return [];
  }
}

/**
 * Frees the pool slot of snapshot `id` under `root` (when the snapshot is deleted), in whichever
 * group pool holds it (its directory's group may have changed since, or the directory be gone).
 */
export function discardPassSlot(root: string, id: string): void {
  for (const p of groupPools(root)) {
    try {
      p.free(slotKey(root, id));
    } catch {
      // A pool whose index is malformed keeps its slots until it is removed (pass-pool.ts).
    }
  }
}

/** Bytes of the pool slot indexed for snapshot `id` under `root`, or null (no slot, no pool here, or a malformed index). */
export function passSlotBytes(root: string, id: string): number | null {
  try {
    return passPoolOf(root, id).entry(slotKey(root, id))?.slotBytes ?? null;
  } catch {
    return null;
  }
}

/**
 * Checks every byte of the current pool slot of snapshot `id` under `root` (a scrub). Returns
 * false when it has none (or there is no pool here). Throws THAW_SNAPSHOT_CORRUPT.
 */
export function verifyPassSlot(root: string, state: SnapshotState): boolean {
  try {
    return passPoolOf(root, state.meta.id).verifySlot(slotKey(root, state.meta.id), state);
  } catch (err: unknown) {
    if (err instanceof ThawError && err.code === 'THAW_SNAPSHOT_CORRUPT') throw err;
    return false; // no pool here, or its index is malformed: no slot of this snapshot to check
  }
}

/**
 * Returns the current slot of the image with a lease on it (so it is not reclaimed while mapped),
 * storing the image first when its slot is missing or stale (a stale slot is never mapped).
 * The lease is taken before the slot's tag is checked (see pass-pool.ts). Throws THAW_INTERNAL
 * when the slot keeps vanishing (another process freeing it as fast as it is stored).
 */
function ensureSlot(root: string, image: SnapshotImage, fd: number): { entry: SlotEntry; built: boolean; unlease: () => void } {
  const p = passPoolOf(root, image.id);
  const key = slotKey(root, image.id);
  let built = false;
  for (let attempt = 0; attempt < 3; attempt++) {
    const found = p.lookup(key, image.state);
    if (found === null || found === 'stale') {
      p.store(key, image, fd);
      built = true;
      continue;
    }
    const unlease = p.lease(found);
    const again = p.lookup(key, image.state);
    if (again !== null && again !== 'stale' && again.generation === found.generation) return { entry: found, built, unlease };
    unlease();
  }
  throw new ThawError('THAW_INTERNAL', { detail: `pass: the pool slot of '${image.id}' was freed while it was being stored` });
}

/** The pass strategy; `id` defaults to 'pass' (populate) and must differ for other options. */
export function passStrategy(options: PassOptions = {}, id = 'pass'): RestoreStrategy {
  const populate = options.populate ?? true;
  return {
    id,
    description: 'image kept in a byte-addressable pool slot (fsdax, else tmpfs) mapped MAP_PRIVATE over guest memory',
    verifies: 'every-byte',
    verifiesHow: 'the mapped slot is read and every chunk checksum checked on each restore, before the guest runs',
    supports() {
      try {
        passLocation();
        return { ok: true };
      } catch (err: unknown) {
        return { ok: false, reason: (err as Error).message };
      }
    },
    prepare(root: string, chain: readonly SnapshotState[]): PrepareReport {
      const t0 = performance.now();
      const r = resolveImage(root, chain, 'verify');
      try {
        const s = ensureSlot(root, r.image, r.fd);
        s.unlease();
        return { built: r.built || s.built, elapsedMs: performance.now() - t0 };
      } finally {
        closeSync(r.fd);
      }
    },
    open(root: string, chain: readonly SnapshotState[]): OpenedImage {
      return openLazy(id, root, chain, (image, fd, plain) => {
        const p = passPoolOf(root, image.id);
        const t0 = performance.now();
        const { entry, built, unlease } = ensureSlot(root, image, fd);
        if (built) plain.prepareMs += performance.now() - t0;
        const stats: PassStats = Object.assign(plain, { tier: p.location.tier, tierReason: p.location.reason, slotOffsetBytes: entry.offsetBytes, populated: false });
        let poolFd: number | undefined;
        try {
          poolFd = p.openPool();
        } catch (err: unknown) {
          unlease();
          throw err;
        }
        const closePool = (): void => {
          if (poolFd !== undefined) closeSync(poolFd);
          poolFd = undefined;
        };
        return {
          fill({ buffer }) {
            try {
              // The slot was checked against the index when looked up; the mapping now serves every
              // guest page from the pool (page cache of tmpfs, or the DAX medium directly).
              mapFile(buffer, 0, image.memoryBytes, poolFd!, stats.slotOffsetBytes, { private: true });
              if (populate) {
                try {
                  madvisePopulateRead(buffer, 0, image.memoryBytes);
                  stats.populated = true;
                } catch {
                  // Older kernel (EINVAL): still correct, pages fault in on first use (stats say so).
                }
              }
              // The slot is checked as mapped, every byte the guest will read, on every restore:
              // a digest kept from the write cannot see a bit flipped in the pool since then.
              verifyRestored(image.state, buffer);
            } finally {
              closePool();
            }
          },
          release() {
            // The mapping may outlive the fd, never the lease: only now may the slot be reclaimed.
            closePool();
            unlease();
          },
        };
      });
    },
  };
}

export const pass = passStrategy();
