// One userfaultfd page server serving a snapshot image into a live Wasm memory, with the
// lifecycle every uffd-based strategy shares: start over the grown memory, report its stats,
// finish (fill the rest and keep the memory usable) or stop (fence unserved pages).

import { ThawError } from '../core/errors.js';
import { PAGE_BYTES, type PageRun } from '../core/snapshot-format.js';
import { uffdAvailability, uffdCreate, type UffdServer, type UffdStats } from '../native/index.js';
import { pageMapOf, type SnapshotImage } from './snapshot-image.js';
import type { RestoreStats, Support } from './strategy.js';
import { runsFromOffsets, writeWorkingSet } from './working-set.js';
import { recordingDir } from './recording-outbox.js';

/** Support answer of every uffd-based strategy: the probe's reason when userfaultfd is refused. */
export function uffdSupport(): Support {
  const a = uffdAvailability();
  return a.available ? { ok: true } : { ok: false, reason: a.reason };
}

/** Options of startSession. */
export interface SessionOptions {
  /** Strategy id (named in THAW_STRATEGY_UNAVAILABLE). */
  readonly strategy: string;
  /** Log pages served on demand, in fault order. */
  readonly record?: boolean;
  /** Runs installed eagerly by the server thread (DONTWAKE copies, then one wake). */
  readonly prefetch?: readonly PageRun[];
  /** Readahead cap when not recording (default READAHEAD_BYTES; PAGE_BYTES: every fault installs its page alone). */
  readonly faultBytes?: number;
}

/**
 * The most a fault installs when the session does not record. The server reads ahead as the
 * kernel does for files: a fault right where the previous fault's window ended doubles the window
 * (1, 2, 4 ... pages, up to this), any other fault installs its own page, each page checked
 * against its own checksum. Scattered access is served page by page (reading and checking only
 * what the guest touches), sequential access in windows growing to 1 MiB, and the 16th fault in
 * one 1 MiB region installs the rest of it (dense scattered access: past that point its faults
 * would cost more than one read of the region). A recording session
 * installs the faulting page alone, so the working set it records holds only pages the guest touched.
 */
export const READAHEAD_BYTES = 1 << 20;

/** A running page server and the stats it feeds. */
export class UffdSession {
  #server: UffdServer | undefined;
  #final: UffdStats | undefined;

  /** @internal use startSession. */
  constructor(server: UffdServer, private readonly stats: RestoreStats, private readonly id: string) {
    this.#server = server;
  }

  get running(): boolean {
    return this.#server !== undefined;
  }

  /**
   * Stops the server. 'fill': installs every page not served yet first, so the memory stays
   * fully usable without a server (reap after recording). 'fence': unserved pages become
   * PROT_NONE, so a guest still running traps rather than reading zeros (sandbox destroyed).
   * Returns the server's stats (null when already stopped). Throws THAW_SNAPSHOT_CORRUPT (a piece
   * failed its checksum during the fill), THAW_INTERNAL (fill failed otherwise).
   */
  stop(remaining: 'fill' | 'fence'): UffdStats | null {
    const server = this.#server;
    if (server === undefined) return null;
    this.#server = undefined;
    let st: UffdStats;
    try {
      st = server.stop({ remaining });
    } catch (err: unknown) {
      // The fill found a piece whose bytes fail its checksum (the range is fenced).
      if (err instanceof ThawError && (err.cause as { code?: unknown } | undefined)?.code === 'EBADMSG') {
        throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id: this.id, detail: 'a page the page server read fails its checksum (found while filling the rest of memory)' }, { cause: err });
      }
      throw err;
    }
    this.#final = st;
    this.stats.uffdFaults += st.faults;
    this.stats.prefetchedPages += st.prefetchedPages;
    return st;
  }

  /**
   * Ends a recording session (reap, sabre-reap, thaw: recording ends with the first invocation):
   * installs every page not served yet, so the sandbox keeps running on plain memory, and
   * publishes the recorded working set beside the snapshot in `dir` (or in this process's
   * recording outbox, see recording-outbox.ts). No-op once stopped.
   */
  finishRecording(dir: string, memoryPages: number): void {
    const st = this.stop('fill');
    if (st !== null) writeWorkingSet(recordingDir(dir), { memoryPages, runs: runsFromOffsets(st.recorded) });
  }

  /** Stats of the stopped server (undefined while running). */
  get final(): UffdStats | undefined {
    return this.#final;
  }
}

/**
 * Maps fresh anonymous memory over guest bytes [0, image.memoryBytes) of `buffer` (already grown)
 * and starts a server for it reading `fd` (the image; the server dups it): present pages with
 * UFFDIO_COPY, holes with UFFDIO_ZEROPAGE, each page checked against its checksum before it is
 * installed (a page that fails it aborts the process from the server thread: see UffdSource.verify).
 * Throws THAW_STRATEGY_UNAVAILABLE, THAW_INTERNAL.
 */
export function startSession(buffer: ArrayBuffer, image: SnapshotImage, fd: number, stats: RestoreStats, options: SessionOptions): UffdSession {
  const prefetch = (options.prefetch ?? []).map((r) => ({ offsetBytes: r.firstPage * PAGE_BYTES, lengthBytes: r.pageCount * PAGE_BYTES }));
  if (buffer.byteLength < image.memoryBytes) {
    throw new ThawError('THAW_INTERNAL', { detail: `uffd session over ${buffer.byteLength} bytes, image needs ${image.memoryBytes}` });
  }
  // Verified serving: every page the guest sees was checked against the state file's checksum of
  // that page before it was installed (the image bytes and its page runs both: a hole is checked
  // as zeros).
  const faultBytes = options.record === true ? PAGE_BYTES : Math.min(options.faultBytes ?? READAHEAD_BYTES, image.memoryBytes);
  const verify = { chunkCrcs: image.state.pageCrcs, verifyBytes: PAGE_BYTES, faultBytes };
  const server = uffdCreate(buffer, 0, image.memoryBytes, { fd, pageMap: pageMapOf(image), verify }, {
    record: options.record === true,
    prefetch,
    strategy: options.strategy,
  });
  return new UffdSession(server, stats, image.id);
}
