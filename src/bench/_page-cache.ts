// Page-cache control for cold-cache benchmark runs: drop every snapshot file's cached pages
// (posix_fadvise DONTNEED, always) and the whole page cache (drop_caches, where permitted),
// the bytes this process read from storage, and the host's cold sequential disk-read limit.

import { closeSync, openSync, readdirSync, readSync, rmSync, writeFileSync, fsyncSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fadvise, readDirect } from '../native/index.js';

/** How caches are dropped before a cold run. */
export interface DropMode {
  /** Also `echo 1 > /proc/sys/vm/drop_caches` (affects the whole machine). */
  readonly dropCaches: boolean;
}

/** Whether this process may write /proc/sys/vm/drop_caches (tried once, for real). */
export function probeDropCaches(): boolean {
  try {
    writeFileSync('/proc/sys/vm/drop_caches', '1');
    return true;
  } catch {
    return false;
  }
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(path));
    else if (e.isFile()) out.push(path);
  }
  return out;
}

/** Drops the cached pages of every file under `root` (fadvise DONTNEED), then drop_caches if `mode` says so. */
export function dropCaches(root: string, mode: DropMode): void {
  for (const path of filesUnder(root)) fadvise(path, 0, 0, 'dontneed');
  if (mode.dropCaches) writeFileSync('/proc/sys/vm/drop_caches', '1');
}

/** Reads every file under `root` once, so its pages are in the page cache. */
export function warmCaches(root: string): void {
  const buf = Buffer.allocUnsafe(8 << 20);
  for (const path of filesUnder(root)) {
    const fd = openSync(path, 'r');
    try {
      while (readSync(fd, buf, 0, buf.length, null) > 0);
    } finally {
      closeSync(fd);
    }
  }
}

/** Bytes this process (all its threads) caused to be read from storage so far (/proc/self/io read_bytes). */
export function storageReadBytes(): number {
  try {
    const m = /read_bytes: (\d+)/.exec(readIo());
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

function readIo(): string {
  const fd = openSync('/proc/self/io', 'r');
  try {
    const buf = Buffer.alloc(4096);
    return buf.toString('utf8', 0, readSync(fd, buf, 0, buf.length, 0));
  } finally {
    closeSync(fd);
  }
}

/** Cold sequential read limits of the disk holding `dir`, GB/s: buffered 8 MiB reads and one O_DIRECT read. */
export interface DiskLimits {
  readonly bufferedGbps: number;
  readonly directGbps: number | string;
}

/** Measures DiskLimits with a `sizeBytes` file in `dir` (removed after); median of `runs`. */
export function measureDisk(dir: string, sizeBytes: number, runs: number, mode: DropMode): DiskLimits {
  const path = join(dir, 'disk-limit.bin');
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(8 << 20);
  for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((i * 2654435761) >>> 0, i);
  for (let at = 0; at < sizeBytes; at += chunk.length) writeSync(fd, chunk, 0, Math.min(chunk.length, sizeBytes - at), at);
  fsyncSync(fd);
  closeSync(fd);
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  const time = (work: () => void): number => {
    fadvise(path, 0, 0, 'dontneed');
    if (mode.dropCaches) writeFileSync('/proc/sys/vm/drop_caches', '1');
    const t0 = process.hrtime.bigint();
    work();
    return sizeBytes / Number(process.hrtime.bigint() - t0);
  };
  try {
    const buffered = median(Array.from({ length: runs }, () => time(() => {
      const f = openSync(path, 'r');
      try {
        while (readSync(f, chunk, 0, chunk.length, null) > 0);
      } finally {
        closeSync(f);
      }
    })));
    let direct: number | string;
    try {
      direct = median(Array.from({ length: runs }, () => time(() => void readDirect(path, 0, sizeBytes))));
    } catch (err: unknown) {
      direct = `O_DIRECT refused: ${(err as Error).message}`;
    }
    return { bufferedGbps: buffered, directGbps: direct };
  } finally {
    rmSync(path, { force: true });
  }
}
