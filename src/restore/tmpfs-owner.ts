// Per-data-directory folders on tmpfs (the dram copies, the pass pools) hold RAM until removed.
// Each names the data directory it serves in an `owner` file, so that once that directory is gone
// (a deleted test or experiment data dir, a moved THAW_HOME) its folder can be swept. What lives
// there is a cache of snapshot images (rebuilt when missing), so a sweep loses nothing.

import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeAtomic } from './snapshot-image.js';

const OWNER_FILE = 'owner';
/** How long a folder without an owner file (made before owner files existed) is left alone. */
const UNOWNED_GRACE_MS = 3600_000;
const claimed = new Set<string>();

/**
 * Makes `dir` (mode `mode`) and records that it serves data directory `root` (owner file 0600:
 * hosts cannot read it). Once per process and folder.
 */
export function claimTmpfsDir(dir: string, root: string, mode: number): void {
  if (claimed.has(dir)) return;
  if (!existsSync(dir)) {
    mkdirSync(dir, { recursive: true, mode });
    if (process.getuid?.() === 0) chmodSync(dir, mode);
  }
  const owner = join(dir, OWNER_FILE);
  if (!existsSync(owner)) {
    writeAtomic(owner, Buffer.from(resolve(root)));
    chmodSync(owner, 0o600);
  }
  claimed.add(dir);
}

export interface SweepOptions {
  /** Whether a live process still uses the folder (then it is kept). */
  readonly inUse?: (dir: string) => boolean;
  /** Entries of `base` itself left by an older layout, removed when `inUse(base)` is false. */
  readonly legacy?: RegExp;
  readonly now?: number;
}

/**
 * Removes the folders under `base` (named by 16 hex digits, as the root hashes are) whose data
 * directory no longer exists, and those without an owner file untouched for an hour. Returns the
 * removed paths; never throws (what cannot be read or removed is left for the next sweep).
 */
export function sweepOrphanTmpfsDirs(base: string, options: SweepOptions = {}): string[] {
  const inUse = options.inUse ?? ((): boolean => false);
  const now = options.now ?? Date.now();
  const removed: string[] = [];
  let entries;
  try {
    entries = readdirSync(base, { withFileTypes: true });
  } catch {
    return removed;
  }
  const legacy = options.legacy === undefined ? [] : entries.filter((e) => options.legacy!.test(e.name));
  try {
    if (legacy.length > 0 && !inUse(base)) {
      for (const e of legacy) rmSync(join(base, e.name), { recursive: true, force: true });
      removed.push(...legacy.map((e) => join(base, e.name)));
    }
  } catch {
    // left for the next sweep
  }
  for (const e of entries) {
    if (!e.isDirectory() || !/^[0-9a-f]{16}$/.test(e.name)) continue;
    const dir = join(base, e.name);
    try {
      let orphan: boolean;
      try {
        orphan = !existsSync(readFileSync(join(dir, OWNER_FILE), 'utf8'));
      } catch {
        orphan = now - statSync(dir).mtimeMs > UNOWNED_GRACE_MS && !existsSync(join(dir, OWNER_FILE));
      }
      if (!orphan || inUse(dir)) continue;
      rmSync(dir, { recursive: true, force: true });
      claimed.delete(dir);
      removed.push(dir);
    } catch {
      // left for the next sweep
    }
  }
  return removed;
}
