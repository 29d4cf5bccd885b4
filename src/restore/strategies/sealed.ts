// sealed: the image checked once into a sealed memfd, copied from there on every restore.
//
//   prepare (the daemon's prepare worker, once per snapshot)
//     memfd (sparse: only present pages take memory) <- the image's page runs
//     seals F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL: from here on no process that
//     holds the fd (the daemon, a host) can change, shrink or grow it, or lift the seals
//     then every chunk and page checksum is checked on the sealed bytes (verifyImageFd): what was
//     checked is what every restore reads
//     kept in the process's table of sealed images (native/thaw_sealed.c; LRU within a budget)
//   restore (sandbox host)
//     the daemon passes the fd once per host over the host's image channel (SCM_RIGHTS; the
//     platform's sendSealedImage), the host keeps it in its own table; fill() checks the seals are
//     there, copies the present pages into guest memory from a read-only mapping of the memfd
//     (made once per host, MAP_POPULATE; into a pre-touched Pyodide shell: memcpy speed, no
//     faults) and zeroes only the hole pages that are not zero already. No checksum on the restore path: the bytes cannot have changed since the check.
//
// What it costs: the daemon's memory holds the present pages of each sealed image (within
// SEALED_BUDGET_BYTES, least recently used evicted; an evicted image is sealed again at the next
// restore that asks for it). Like the page cache, but immutable and checked.

import { closeSync, fstatSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ThawError } from '../../core/errors.js';
import { PAGE_BYTES, type PageRun, type SnapshotState } from '../../core/snapshot-format.js';
import { sealedCopy, sealedCreate, sealedDrop, sealedGet, sealedIsSealed, sealedPut, sealedRecv, sealedSeal, zeroDirtyPages } from '../../native/index.js';
import { clearBeyond, growTo, holeSpans, intersectSpans, measured, takeDirtySpans, type ByteSpan } from '../guest-memory.js';
import { chainRuns, copyRuns, resolveImage, verifyImageFd } from '../snapshot-image.js';
import { emptyStats, type OpenedImage, type PrepareReport, type RestoreStrategy } from '../strategy.js';

/** Threads a restore copies with: one per core (a memcpy has no waits to overlap). */
const COPY_THREADS = availableParallelism();
/** Most bytes of sealed images a process keeps (present pages); least recently used go first. */
export const SEALED_BUDGET_BYTES = 1 << 30;

/** The key of snapshot `id` under `root` in the tables of sealed images (the daemon's and each host's). */
export function sealedKey(root: string, id: string): string {
  return `${resolve(root)}:${id}`;
}

/** The sealed image of snapshot `id` under `root` held by this process (its fd, still the table's), or null. */
export function heldSealedImage(root: string, id: string): number | null {
  return sealedGet(sealedKey(root, id));
}

/** Closes this process's sealed image of snapshot `id` (the snapshot was deleted). */
export function discardSealedImage(root: string, id: string): void {
  sealedDrop(sealedKey(root, id));
}

/**
 * Takes the sealed images waiting on a sandbox host's image channel into its table (one it holds
 * already keeps its own copy: the same key is the same sealed bytes). An fd that is not a sealed
 * memfd is closed and not kept (open() then finds no image and says so).
 */
export function adoptSealedImages(channelFd: number): void {
  for (const [key, fd] of sealedRecv(channelFd)) {
    if (fd < 0) continue;
    if (sealedGet(key) !== null || !sealedIsSealed(fd)) {
      closeSync(fd);
      continue;
    }
    sealedPut(key, fd, fstatSync(fd).blocks * 512, SEALED_BUDGET_BYTES);
    // Mapped now (a copy of nothing maps it): populating the mapping of 33 MiB took 14 ms here,
    // which a host given the image with its prepare pays off the restore path.
    sealedCopy(fd, new ArrayBuffer(0), new Float64Array(0), 1);
  }
}

/** The top of a chain (THAW_INTERNAL for an empty one). */
function topOf(chain: readonly SnapshotState[]): SnapshotState {
  const top = chain[chain.length - 1];
  if (!top) throw new ThawError('THAW_INTERNAL', { detail: 'sealed: empty snapshot chain' });
  return top;
}

/** Builds, seals and checks the memfd of a chain's image; returns its fd. Throws THAW_SNAPSHOT_CORRUPT. */
function buildSealed(root: string, chain: readonly SnapshotState[]): { fd: number; presentBytes: number } {
  const r = resolveImage(root, chain, 'open');
  const fd = sealedCreate(r.image.memoryBytes);
  try {
    try {
      copyRuns(r.fd, fd, r.image.runs, r.image.path);
    } catch (err: unknown) {
      throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id: r.image.id, detail: (err as Error).message }, { cause: err });
    }
    // Sealed before it is checked: the bytes checked are the bytes every restore will read.
    sealedSeal(fd);
    verifyImageFd(fd, r.image.state, r.image.runs, 'sealed image');
  } catch (err: unknown) {
    closeSync(fd);
    throw err;
  } finally {
    closeSync(r.fd);
  }
  return { fd, presentBytes: r.image.runs.reduce((n, run) => n + run.pageCount * PAGE_BYTES, 0) };
}

/** Byte spans, cut at `end`, as [offset, length] pairs. */
function flatSpans(spans: readonly ByteSpan[], end: number): Float64Array {
  return new Float64Array(spans.flatMap((h) => [h.offsetBytes, Math.min(h.lengthBytes, end - h.offsetBytes)]));
}

/** Page runs as [offset, length] byte pairs. */
function spansOf(runs: readonly PageRun[]): Float64Array {
  return new Float64Array(runs.flatMap((r) => [r.firstPage * PAGE_BYTES, r.pageCount * PAGE_BYTES]));
}

export const sealed: RestoreStrategy = {
  id: 'sealed',
  description: 'the image checked once into a sealed memfd held by the daemon and passed to hosts; restores copy its present pages into guest memory',
  verifies: 'every-byte',
  verifiesHow: 'every chunk and page checksum is checked once, on the memfd after it is sealed against writes, shrinking and growing (F_SEAL_WRITE/SHRINK/GROW/SEAL); restores copy from that memfd, which no process can change since, and check its seals',
  supports: () => ({ ok: true }),
  /** Seals and checks the image into a memfd kept by this process (the daemon), unless it holds one already. */
  prepare(root: string, chain: readonly SnapshotState[]): PrepareReport {
    const t0 = performance.now();
    const key = sealedKey(root, topOf(chain).meta.id);
    if (sealedGet(key) !== null) {
      // Held already: restores read the sealed bytes, but a prepare still refuses a snapshot
      // whose files no longer hold what they held (as every strategy's prepare does).
      closeSync(resolveImage(root, chain, 'verify').fd);
      return { built: false, elapsedMs: performance.now() - t0 };
    }
    const { fd, presentBytes } = buildSealed(root, chain);
    sealedPut(key, fd, presentBytes, SEALED_BUDGET_BYTES);
    return { built: true, elapsedMs: performance.now() - t0 };
  },
  open(root: string, chain: readonly SnapshotState[]): OpenedImage {
    const top = topOf(chain);
    const byteLength = top.meta.memoryBytes;
    const key = sealedKey(root, top.meta.id);
    const stats = emptyStats('sealed');
    // A sandbox host has the daemon's image (passed with the restore); a process without one
    // (a test, a one-shot CLI) seals and checks its own first.
    if (sealedGet(key) === null) stats.prepareMs = sealed.prepare(root, chain).elapsedMs;
    const fd = sealedGet(key);
    if (fd === null) throw new ThawError('THAW_STRATEGY_UNAVAILABLE', { strategy: 'sealed', reason: `no sealed image of snapshot ${top.meta.id} could be kept (budget ${SEALED_BUDGET_BYTES >> 20} MiB)` });
    // The fd came from the daemon: it must still be sealed (a memfd whose seals are set cannot lose them).
    if (!sealedIsSealed(fd) || fstatSync(fd).size !== byteLength) {
      throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id: top.meta.id, detail: 'the sealed image passed to this host is not sealed or has the wrong size' });
    }
    const runs = chainRuns(chain);
    const presentBytes = runs.reduce((n, r) => n + r.pageCount * PAGE_BYTES, 0);
    const spans = spansOf(runs);
    const holes = holeSpans(runs, byteLength);
    return {
      byteLength,
      stats,
      fill(memory: WebAssembly.Memory): void {
        measured(stats, () => {
          // Hole pages must read zero. Where the memory's owner recorded its non-zero pages (a
          // Pyodide shell), only those of them that are holes are cleared, nothing else is read;
          // otherwise every hole page below the memory's old size (grown pages are fresh zero) is
          // read and cleared if not zero.
          const dirty = takeDirtySpans(memory);
          const had = memory.buffer.byteLength;
          const buffer = growTo(memory, byteLength, top.meta.functionName);
          const dirtyEnd = dirty === null ? had : dirty.length === 0 ? 0 : dirty[dirty.length - 2]! + dirty[dirty.length - 1]!;
          if (dirtyEnd > byteLength) clearBeyond(buffer, byteLength);
          sealedCopy(fd, buffer, spans, COPY_THREADS);
          stats.bytesRead += presentBytes;
          const holesBelow = holes.filter((h) => h.offsetBytes < Math.min(had, byteLength));
          zeroDirtyPages(buffer, dirty === null ? flatSpans(holesBelow, Math.min(had, byteLength)) : intersectSpans(dirty, holes));
        });
      },
      toBytes(): Uint8Array {
        const bytes = new Uint8Array(byteLength);
        sealedCopy(fd, bytes.buffer, spans, COPY_THREADS);
        stats.bytesRead += presentBytes;
        return bytes;
      },
      afterInvoke: () => undefined,
      release: () => stats,
    };
  },
};
