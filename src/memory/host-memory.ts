// The memory side of a sandbox host (FaaSMem, issue 11): each live guest's page life stages and
// its offloaded pages. host-main.ts calls in at the guest's life events (boot, init, restore,
// each request, destroy) and for the two host operations, memoryStages and offload.
//
// Stages, by how the guest's memory was made:
//   write-protect    (boot, and restores that leave plain memory: eager, vanilla, dram, pass,
//                    thaw, and reap/faasnap/sabre once their page server has stopped)
//                    one userfaultfd in write-protect async mode over the memory; PAGEMAP_SCAN
//                    at each boundary lists the pages written since the last one and re-arms them:
//                    runtime = present when the guest was booted, init = written by init, request =
//                    written by requests (or faulted back from a tier while one ran)
//   snapshot-layers  (restores whose page server still owns the memory: uffd, reap, faasnap,
//                    sabre*: a range has one userfaultfd) the snapshot's own layers: the base
//                    layer's pages are runtime, the later layers' init (a single full snapshot
//                    cannot tell them apart: all its pages count as init), resident pages beyond
//                    them request. Such a sandbox cannot offload (THAW_OFFLOAD_UNAVAILABLE).

import { closeSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { ThawError, toThawError } from '../core/errors.js';
import { PAGE_BYTES, type SnapshotState } from '../core/snapshot-format.js';
import { GuestOffloader, residentBytes, swappedBytes } from '../native/index.js';
import { resolveImage } from '../restore/snapshot-image.js';
import { getTier } from './tiers/index.js';
import type { MemoryStages, OffloadReport, OffloadRequest, OffloadStats, OffloadTierId, PrefetchReport, SandboxOffloadFigures } from './types.js';

type Stage = 'runtime' | 'init' | 'request';
const STAGE_CODE: Readonly<Record<Stage, number>> = { runtime: 1, init: 2, request: 3 };

/** How a sandbox's stages are known ('untracked': a booted sandbox whose tracking is off). */
export type StageMethod = 'write-protect' | 'snapshot-layers' | 'untracked';

class TrackedMemory {
  /** Per page: the stage that last wrote it before requests began (1 runtime, 2 init), or 3 if first written by a request. */
  owner: Uint8Array;
  /** Per page: written by a request ever / since the last offload. */
  everByRequest: Uint8Array;
  recent: Uint8Array;
  /** Per page: given back by a semi-warm step (shrink) since the last prefetch. */
  shrunk: Uint8Array;
  phase: Stage = 'runtime';
  readonly attached = new Set<OffloadTierId>();

  constructor(
    readonly id: string,
    readonly memory: WebAssembly.Memory,
    public offloader: GuestOffloader | null,
    /** Track stages from the start (else the offloader starts at the first offload). */
    readonly tracking: boolean,
    /** The snapshot image's path (resolved on the file tier's first use), or null after a boot. */
    readonly imagePath: (() => string) | null,
    snapshotPages: Uint8Array | null,
  ) {
    const pages = memory.buffer.byteLength / PAGE_BYTES;
    this.owner = snapshotPages ?? new Uint8Array(pages);
    this.everByRequest = new Uint8Array(pages);
    this.recent = new Uint8Array(pages);
    this.shrunk = new Uint8Array(pages);
  }

  get method(): StageMethod {
    return this.offloader ? 'write-protect' : this.imagePath ? 'snapshot-layers' : 'untracked';
  }

  /** Grows the per-page tables (and the offloader's registration) to the memory's size now. */
  private grow(): void {
    const pages = this.memory.buffer.byteLength / PAGE_BYTES;
    if (pages <= this.owner.length) return;
    const widen = (a: Uint8Array): Uint8Array => {
      const b = new Uint8Array(pages);
      b.set(a);
      return b;
    };
    const from = this.owner.length;
    this.owner = widen(this.owner);
    this.everByRequest = widen(this.everByRequest);
    this.recent = widen(this.recent);
    this.shrunk = widen(this.shrunk);
    if (this.offloader) {
      // Pages the guest wrote in the grown part before it was registered: the current stage's.
      this.offloader.extend(this.memory.buffer);
      const present = this.offloader.present();
      for (let p = from; p < pages; p++) if (present[p]) this.assign(p);
    }
  }

  private assign(p: number): void {
    const code = STAGE_CODE[this.phase];
    if (this.phase === 'request') {
      if (this.owner[p] === 0) this.owner[p] = code;
      this.everByRequest[p] = 1;
      this.recent[p] = 1;
    } else {
      this.owner[p] = code;
    }
  }

  /** Ends the current window: pages written since the last boundary go to the current stage. */
  boundary(next: Stage): void {
    // reap and faasnap stop their page servers after the first request: write-protect can start.
    if (!this.offloader && this.tracking && this.imagePath) this.offloader = startOffloader(this.memory);
    this.grow();
    if (this.offloader) {
      const written = this.offloader.scan(true);
      for (let p = 0; p < written.length; p++) if (written[p]) this.assign(p);
    }
    this.phase = next;
  }

  stages(): MemoryStages {
    this.boundary(this.phase);
    let runtime = 0;
    let init = 0;
    let request = 0;
    for (let p = 0; p < this.owner.length; p++) {
      if (this.everByRequest[p] || this.owner[p] === 3) request++;
      else if (this.owner[p] === 1) runtime++;
      else if (this.owner[p] === 2) init++;
    }
    const resident = this.resident();
    // Without write-protect, request pages are what is resident beyond the snapshot's pages (and
    // an untracked booted sandbox's resident pages all count as init).
    if (!this.offloader && this.imagePath) request = Math.max(0, resident / PAGE_BYTES - runtime - init);
    if (!this.offloader && !this.imagePath) init = resident / PAGE_BYTES;
    return { runtimeBytes: runtime * PAGE_BYTES, initBytes: init * PAGE_BYTES, requestBytes: request * PAGE_BYTES, residentBytes: resident };
  }

  resident(): number {
    return residentBytes(this.memory.buffer, 0, this.memory.buffer.byteLength);
  }

  offload(req: OffloadRequest, memorySocket: string | null): OffloadReport {
    const t0 = performance.now();
    const offloader = this.usable(req.tier);
    if (!this.attached.has(req.tier)) {
      getTier(req.tier).attach({ sandboxId: this.id, offloader, imagePath: this.imagePath?.() ?? null, memorySocket });
      this.attached.add(req.tier);
    }
    this.boundary(this.phase);
    const candidates = 'stages' in req.scope ? this.stagePages(req.scope.stages) : this.shrinkPages(offloader, req.scope.shrinkToBytes);
    let moved: number;
    try {
      moved = offloader.offload(req.tier, candidates);
    } catch (err: unknown) {
      if ((err as { cause?: { code?: unknown } }).cause?.code === 'EOPNOTSUPP') {
        throw new ThawError('THAW_OFFLOAD_UNAVAILABLE', { id: this.id, tier: req.tier, reason: 'the restore strategy mapped a file over this memory: only the file tier can drop its pages' });
      }
      throw this.lost() ?? err;
    }
    if ('shrinkToBytes' in req.scope) for (const p of candidates) this.shrunk[p] = 1;
    this.recent.fill(0);
    return { offloadedBytes: moved * PAGE_BYTES, residentBytes: this.resident(), elapsedMs: performance.now() - t0 };
  }

  /**
   * Brings back in bulk the held pages the sandbox's next request will most likely touch: what
   * requests have touched (written, or faulted back while one ran) and what semi-warm steps took
   * from its resident working set. Pages offloaded by stage and never touched by a request stay.
   */
  prefetch(): PrefetchReport {
    const t0 = performance.now();
    if (!this.offloader?.running) return { prefetchedBytes: 0, residentBytes: this.resident(), elapsedMs: 0 };
    const lost = this.lost();
    if (lost) throw lost;
    this.grow();
    const want: number[] = [];
    for (let p = 0; p < this.owner.length; p++) if (this.everByRequest[p] || this.shrunk[p]) want.push(p);
    let moved: number;
    try {
      moved = this.offloader.prefetch(Uint32Array.from(want));
    } catch (err: unknown) {
      throw this.lost() ?? err;
    }
    this.shrunk.fill(0);
    return { prefetchedBytes: moved * PAGE_BYTES, residentBytes: this.resident(), elapsedMs: performance.now() - t0 };
  }

  /** Pages of `stages` no request touched since the last offload (candidates; the offloader keeps the resident ones). */
  private stagePages(stages: readonly Stage[]): Uint32Array {
    const want = new Set(stages.map((s) => STAGE_CODE[s]));
    const out: number[] = [];
    for (let p = 0; p < this.owner.length; p++) {
      const cls = this.everByRequest[p] ? 3 : this.owner[p]!;
      if (want.has(cls) && !this.recent[p]) out.push(p);
    }
    return Uint32Array.from(out);
  }

  /** Resident pages to give back to come down to `target` bytes: coldest stage first, recently touched last. */
  private shrinkPages(offloader: GuestOffloader, target: number): Uint32Array {
    const present = offloader.present();
    const need = Math.ceil(Math.max(0, this.resident() - target) / PAGE_BYTES);
    const rank = (p: number): number => (this.recent[p] ? 8 : 0) + (this.everByRequest[p] ? 3 : this.owner[p] || 4);
    const pages: number[] = [];
    for (let p = 0; p < present.length; p++) if (present[p]) pages.push(p);
    pages.sort((a, b) => rank(a) - rank(b) || a - b);
    return Uint32Array.from(pages.slice(0, need).sort((a, b) => a - b));
  }

  private usable(tier: OffloadTierId): GuestOffloader {
    const lost = this.lost();
    if (lost) throw lost;
    if (!this.offloader) {
      // Untracked until now: what a booted sandbox holds counts as init (a restored one has its layers).
      this.offloader = startOffloader(this.memory);
      if (this.offloader && !this.imagePath) {
        const present = this.offloader.present();
        for (let p = 0; p < present.length && p < this.owner.length; p++) if (present[p] && !this.owner[p]) this.owner[p] = STAGE_CODE.init;
      }
    }
    if (!this.offloader) {
      const reason = unavailableReason || "the restore strategy's page server owns this memory (a range has one userfaultfd); restore with a strategy that leaves plain memory, e.g. eager";
      throw new ThawError('THAW_OFFLOAD_UNAVAILABLE', { id: this.id, tier, reason });
    }
    return this.offloader;
  }

  /** THAW_MEMORY_SERVER_LOST once a page could not be fetched back (the memory is fenced), else null. */
  lost(): ThawError | null {
    const why = this.offloader?.running ? this.offloader.stats().failure : '';
    return why ? new ThawError('THAW_MEMORY_SERVER_LOST', { id: this.id, detail: why }) : null;
  }

  stats(): OffloadStats {
    if (!this.offloader?.running) return { offloadedBytes: 0, faultedBackBytes: 0, prefetchedBytes: 0, faultBacks: 0, faultBackMeanUs: 0 };
    const s = this.offloader.stats();
    return {
      offloadedBytes: s.offloadedPages * PAGE_BYTES,
      faultedBackBytes: (s.faultedPages + s.prefetchedPages) * PAGE_BYTES,
      prefetchedBytes: s.prefetchedPages * PAGE_BYTES,
      faultBacks: s.faultedPages,
      faultBackMeanUs: s.faultedPages ? s.faultNs / s.faultedPages / 1000 : 0,
    };
  }

  heldBytes(): number {
    return this.offloader?.running ? this.offloader.stats().heldPages * PAGE_BYTES : 0;
  }

  /** Bytes the compressed tier holds in this host's memory now. */
  storedBytes(): number {
    return this.offloader?.running ? this.offloader.stats().storedBytes : 0;
  }

  release(): void {
    if (this.offloader?.running) this.offloader.stop('fence');
  }
}

const tracked = new Map<string, TrackedMemory>();

/** Why offloading is off in this host ('' while it works). */
let unavailableReason = '';

/** An offloader over `memory`, or null when a page server owns it or userfaultfd is refused here. */
function startOffloader(memory: WebAssembly.Memory): GuestOffloader | null {
  try {
    return GuestOffloader.start(memory.buffer);
  } catch (err: unknown) {
    // Stages and offloading are extras: a guest runs the same without them.
    unavailableReason = toThawError(err).message;
    return null;
  }
}

function get(id: string): TrackedMemory {
  const t = tracked.get(id);
  if (!t) throw new ThawError('THAW_SANDBOX_NOT_FOUND', { id });
  return t;
}

/**
 * A booted guest, before its init runs: what is resident now is the runtime's. Without `tracking`
 * nothing is registered until the first offload (write-protect costs every request a fault per
 * page it first writes, and a scan).
 */
export function trackBoot(id: string, memory: WebAssembly.Memory, tracking: boolean): void {
  const offloader = tracking ? startOffloader(memory) : null;
  const t = new TrackedMemory(id, memory, offloader, tracking, null, null);
  if (offloader) {
    const present = offloader.present();
    for (let p = 0; p < present.length; p++) if (present[p]) t.owner[p] = STAGE_CODE.runtime;
  }
  t.phase = 'init';
  tracked.set(id, t);
}

/** The guest's init has run: what it wrote is the init stage; requests come next. */
export function trackInit(id: string): void {
  get(id).boundary('request');
}

/**
 * A restored guest (`chain`: its snapshot chain under `root`, base first): its snapshot's pages
 * are runtime (base layer) and init (later layers); requests come next.
 */
export function trackRestore(id: string, memory: WebAssembly.Memory, root: string, chain: readonly SnapshotState[], tracking: boolean): void {
  const imagePath = (): string => {
    const resolved = resolveImage(root, chain, 'open');
    closeSync(resolved.fd);
    return resolved.image.path;
  };
  const pages = new Uint8Array(memory.buffer.byteLength / PAGE_BYTES);
  chain.forEach((layer, i) => {
    for (const r of layer.runs) pages.fill(chain.length > 1 && i === 0 ? STAGE_CODE.runtime : STAGE_CODE.init, r.firstPage, r.firstPage + r.pageCount);
  });
  const t = new TrackedMemory(id, memory, tracking ? startOffloader(memory) : null, tracking, imagePath, pages);
  t.phase = 'request';
  tracked.set(id, t);
}

/**
 * Runs one request of sandbox `id`: refused when its memory was lost; a failure while the memory
 * was being lost becomes THAW_MEMORY_SERVER_LOST; afterwards the pages it wrote are its stage's.
 */
export async function trackRequest<T>(id: string, run: () => Promise<T>): Promise<T> {
  const t = tracked.get(id);
  const before = t?.lost();
  if (before) throw before;
  let result: T;
  try {
    result = await run();
  } catch (err: unknown) {
    throw t?.lost() ?? err;
  }
  const after = t?.lost();
  if (after) throw after;
  t?.boundary('request');
  return result;
}

/** The host operation `memoryStages`. */
export function memoryStages(id: string): MemoryStages & { method: StageMethod } {
  const t = get(id);
  return { ...t.stages(), method: t.method };
}

/** The host operation `offload`. Throws THAW_OFFLOAD_UNAVAILABLE, THAW_MEMORY_SERVER_LOST. */
export function offload(id: string, req: OffloadRequest, memorySocket: string | null): OffloadReport {
  return get(id).offload(req, memorySocket);
}

/** The host operation `prefetch` (a semi-warm sandbox picked for a request). Throws THAW_MEMORY_SERVER_LOST. */
export function prefetch(id: string): PrefetchReport {
  return get(id).prefetch();
}

/** Offload figures and resident memory of every tracked sandbox, by id. */
export function offloadStats(): Record<string, SandboxOffloadFigures> {
  const out: Record<string, SandboxOffloadFigures> = {};
  for (const [id, t] of tracked) out[id] = { ...t.stats(), heldBytes: t.heldBytes(), residentBytes: t.resident(), storedBytes: t.storedBytes(), swappedBytes: t.memory.buffer.byteLength ? swappedBytes(t.memory.buffer) : 0 };
  return out;
}

/** The sandbox is gone: its offloader stops (pages still offloaded are fenced, never zeros). */
export function untrack(id: string): void {
  tracked.get(id)?.release();
  tracked.delete(id);
}
