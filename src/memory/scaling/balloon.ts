// `balloon`: Firecracker's balloon semantics, modelled on a Wasm guest.
//
// The sandbox is sized at its declared limit with a balloon holding all but `baseMiB`. What the
// balloon holds the guest may not use: guest-visible memory = declared - balloon. At invocation
// start the balloon deflates by the invocation's grant, 4 KiB page by page, and the platform polls
// the balloon's size until the guest-visible size reaches the target (as Faascale's baseline
// polls the balloon statistics); the pages come back lazily (they fault in when touched, nothing
// is populated). After the invocation the balloon inflates again, page by page: each page it
// takes from the guest's free memory is given back to the host with its own madvise(MADV_DONTNEED)
// (anonymous memory mapped over it on a restored sandbox, see discard.ts).
//
// What differs from a VM: a Wasm guest has no balloon driver, so the pages the balloon may take
// are the ones the guest's allocator reports free (the same report faascale uses), and the guest
// is kept off them by the same allocator contract (it does not read free memory before writing
// it; a discarded page reads as zero). Pages of the declared size the guest has not grown its
// linear memory to yet exist only as a count: there is nothing resident to give back. The device
// works in batches of 256 pages (a virtqueue's worth of page frame numbers) with an event-loop
// turn between batches, when the platform polls.

import { setImmediate as nextTurn } from 'node:timers/promises';
import { discardPages, hostPageSizeBytes } from '../../native/index.js';
import { checkFreeRanges, grantBytesOf, type ScalingGuest, type ScalingMechanism, type ScalingSession, type ScalingSpec } from './scaling.js';
import { since } from './time.js';

/** The balloon's page size (virtio-balloon's, whatever the host's). */
export const BALLOON_PAGE_BYTES = 4096;
/** Page frame numbers the device handles per batch (one virtqueue). */
export const BALLOON_BATCH_PAGES = 256;

export const balloon: ScalingMechanism = {
  id: 'balloon',
  description: 'a balloon holds all but a base size; deflated per invocation 4 KiB page by page with the platform polling, re-inflated after (pages given back one by one)',
  session(guest: ScalingGuest, spec: ScalingSpec): ScalingSession {
    return new BalloonSession(guest, spec);
  },
};

class BalloonSession implements ScalingSession {
  /** Page indices of guest memory the balloon holds (taken from free memory and discarded), as a stack. */
  private real = new Int32Array(1024);
  private realCount = 0;
  /** Whether each page of the guest's memory is in the balloon. */
  private held = new Uint8Array(0);
  /** Pages the balloon holds beyond what the guest's linear memory has grown to (a count only). */
  private virtualCount: number;
  /** The size the device is working towards, in pages. */
  private target = 0;
  private readonly restPages: number;
  private readonly grantPages: number;

  constructor(private readonly guest: ScalingGuest, spec: ScalingSpec) {
    const declaredPages = Math.floor(guest.declaredBytes / BALLOON_PAGE_BYTES);
    this.restPages = Math.max(0, declaredPages - Math.floor((spec.baseMiB * 1024 * 1024) / BALLOON_PAGE_BYTES));
    this.grantPages = Math.floor(grantBytesOf(guest, spec) / BALLOON_PAGE_BYTES);
    // The sandbox starts with its balloon inflated (as a VM boots with it): free pages are taken
    // now, synchronously, at boot or restore (the host measures the sandbox's memory right after).
    this.virtualCount = 0;
    this.target = this.restPages;
    const free = this.freePages();
    while (this.pages < this.target && this.inflateBatch(free));
  }

  /** Pages in the balloon. */
  get pages(): number {
    return this.realCount + this.virtualCount;
  }

  grantedBytes(): number {
    return this.guest.declaredBytes - this.pages * BALLOON_PAGE_BYTES;
  }

  async grant() {
    const t0 = performance.now();
    await this.resize(Math.max(0, this.pages - this.grantPages), () => this.deflateBatch());
    return { grantMs: since(t0), populateMs: 0 };
  }

  async release() {
    const t0 = performance.now();
    const before = this.realCount;
    const free = this.freePages();
    await this.resize(this.restPages, () => this.inflateBatch(free));
    return { releaseMs: since(t0), releasedBytes: (this.realCount - before) * BALLOON_PAGE_BYTES };
  }

  /** Lets the device work a batch at a time while the platform polls the size until it is `target`. */
  private async resize(target: number, batch: () => boolean): Promise<void> {
    this.target = target;
    while (this.pages !== target) {
      if (!batch()) break; // nothing left the device can take: the target cannot be reached
      await nextTurn();
    }
  }

  /** Gives up to one batch of pages back to the guest (the most recently taken first). */
  private deflateBatch(): boolean {
    for (let i = 0; i < BALLOON_BATCH_PAGES && this.pages > this.target; i++) {
      if (this.realCount > 0) this.held[this.real[--this.realCount]!] = 0;
      else this.virtualCount--;
    }
    return true;
  }

  /**
   * Takes up to one batch of free guest pages and gives them back to the host with one system call
   * per page (native discardPages); pages past the memory's end count without work. False when
   * nothing more can be taken.
   */
  private inflateBatch(free: { next(): number | null }): boolean {
    const batch = new Float64Array(BALLOON_BATCH_PAGES);
    let n = 0;
    let more = true;
    while (n < BALLOON_BATCH_PAGES && this.pages < this.target) {
      const page = free.next();
      if (page === null) {
        const memoryPages = this.guest.memory.buffer.byteLength / BALLOON_PAGE_BYTES;
        const declaredPages = Math.floor(this.guest.declaredBytes / BALLOON_PAGE_BYTES);
        // Only the part of the declared size the memory has not grown to can be held as a count.
        if (this.virtualCount >= declaredPages - memoryPages) {
          more = false;
          break;
        }
        this.virtualCount++;
        continue;
      }
      batch[n++] = page * BALLOON_PAGE_BYTES;
      this.held[page] = 1;
      if (this.realCount === this.real.length) {
        const grown = new Int32Array(this.real.length * 2);
        grown.set(this.real);
        this.real = grown;
      }
      this.real[this.realCount++] = page;
    }
    if (n > 0) discardPages(this.guest.memory.buffer, batch.subarray(0, n), this.guest.fileBacked);
    return more;
  }

  /**
   * The guest's free pages not yet in the balloon, highest address first: the balloon's stack
   * then gives the lowest pages back first on deflation, which is where a guest allocator (dlmalloc's
   * top chunk) hands memory out next. A Wasm guest's allocator cannot be told which pages the
   * balloon holds, so this order is what keeps a deflated grant where the guest will write.
   */
  private freePages(): { next(): number | null } {
    const memoryPages = this.guest.memory.buffer.byteLength / BALLOON_PAGE_BYTES;
    if (this.held.length < memoryPages) {
      const grown = new Uint8Array(memoryPages);
      grown.set(this.held);
      this.held = grown;
    }
    const report = this.guest.freeRanges();
    if (report !== null) checkFreeRanges(this.guest.name, report, this.guest.memory.buffer.byteLength, hostPageSizeBytes());
    const ranges = report?.ranges ?? [];
    let ri = ranges.length - 1;
    let page = ri >= 0 ? (ranges[ri]!.offset + ranges[ri]!.length) / BALLOON_PAGE_BYTES : 0;
    return {
      next: () => {
        while (ri >= 0) {
          const r = ranges[ri]!;
          page--;
          if (page < r.offset / BALLOON_PAGE_BYTES) {
            ri--;
            if (ri >= 0) page = (ranges[ri]!.offset + ranges[ri]!.length) / BALLOON_PAGE_BYTES;
            continue;
          }
          if (this.held[page] === 0) return page;
        }
        return null;
      },
    };
  }
}
