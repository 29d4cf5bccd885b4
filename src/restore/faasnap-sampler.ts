// FaaSnap's recording: while a restored guest serves its first request, a sampler thread calls
// mincore() on the snapshot's memory file over and over and stamps every page that became
// resident with the current layer number; a new layer starts each time residency has grown by
// `layerPages` pages. The guest runs synchronously on the JS thread, so the sampler is a
// worker thread (this same file, run with workerData.kind === 'faasnap-sampler'), sharing the
// stamps through a SharedArrayBuffer.
//
// Control words (Int32Array over a SharedArrayBuffer):
//   [0] stop request (main -> worker)   [1] done (worker -> main, after its last scan)
//   [2] current layer                   [3] pages stamped so far
//   [4] scans done (worker -> main)

import { closeSync, openSync } from 'node:fs';
import { Worker, isMainThread, workerData } from 'node:worker_threads';
import { mincore } from '../native/index.js';
import { UNSEEN } from './faasnap-loading-set.js';

/** Pause between two scans. */
const SCAN_INTERVAL_MS = 2;
/** How long stop() waits for the worker's last scan before scanning itself. */
const STOP_WAIT_MS = 2000;

interface SamplerData {
  readonly kind: 'faasnap-sampler';
  readonly path: string;
  readonly lengthBytes: number;
  readonly layerPages: number;
  readonly stamps: SharedArrayBuffer;
  readonly control: SharedArrayBuffer;
}

/** One mincore scan: stamps newly resident pages, advances the layer. Returns pages stamped now. */
function scan(fd: number, lengthBytes: number, layerPages: number, stamps: Uint16Array, ctl: Int32Array, layerStart: { resident: number }): number {
  const vec = mincore(fd, lengthBytes);
  const layer = Math.min(Atomics.load(ctl, 2), UNSEEN - 1);
  let fresh = 0;
  for (let p = 0; p < vec.length && p < stamps.length; p++) {
    if ((vec[p]! & 1) !== 0 && stamps[p] === UNSEEN) {
      stamps[p] = layer;
      fresh++;
    }
  }
  const resident = Atomics.add(ctl, 3, fresh) + fresh;
  if (resident - layerStart.resident >= layerPages) {
    Atomics.store(ctl, 2, layer + 1);
    layerStart.resident = resident;
  }
  return fresh;
}

/** The sampler of one recording run. */
export class MincoreSampler {
  readonly #stamps: Uint16Array;
  readonly #ctl: Int32Array;
  #worker: Worker | undefined;
  readonly #path: string;
  readonly #lengthBytes: number;
  readonly #layerPages: number;

  /**
   * Starts sampling the page-cache residency of the file at `path` (its first `lengthBytes`).
   * The caller has dropped the file's cached pages first, so residency reflects the guest's
   * accesses (plus the kernel's readahead around them). Throws THAW_INTERNAL (worker spawn).
   */
  constructor(path: string, lengthBytes: number, layerPages: number) {
    this.#path = path;
    this.#lengthBytes = lengthBytes;
    this.#layerPages = layerPages;
    const stamps = new SharedArrayBuffer(Math.ceil(lengthBytes / 4096) * 2);
    const control = new SharedArrayBuffer(20);
    this.#stamps = new Uint16Array(stamps).fill(UNSEEN);
    this.#ctl = new Int32Array(control);
    const data: SamplerData = { kind: 'faasnap-sampler', path, lengthBytes, layerPages, stamps, control };
    this.#worker = new Worker(new URL(import.meta.url), { workerData: data });
    this.#worker.unref();
    this.#worker.on('error', () => undefined); // a failed sampler only costs layer precision: stop() scans itself
  }

  /**
   * Blocks until the worker has finished its first scan (or `timeoutMs` passed): called before
   * the guest runs, so the first layer holds what the guest touched first, not everything.
   * Returns whether the worker is scanning.
   */
  waitStarted(timeoutMs = STOP_WAIT_MS): boolean {
    Atomics.wait(this.#ctl, 4, 0, timeoutMs);
    return Atomics.load(this.#ctl, 4) > 0;
  }

  /**
   * Ends sampling: asks the worker for its last scan, waits for it (bounded), then scans once
   * more on this thread so no page resident by now is missed. Returns the layer of every page
   * (UNSEEN for pages never resident). Idempotent after the first call.
   */
  stop(): Uint16Array {
    const worker = this.#worker;
    if (worker !== undefined) {
      this.#worker = undefined;
      Atomics.store(this.#ctl, 0, 1);
      Atomics.notify(this.#ctl, 0);
      Atomics.wait(this.#ctl, 1, 0, STOP_WAIT_MS);
      void worker.terminate();
      const fd = openSync(this.#path, 'r');
      try {
        scan(fd, this.#lengthBytes, this.#layerPages, this.#stamps, this.#ctl, { resident: Number.MAX_SAFE_INTEGER });
      } finally {
        closeSync(fd);
      }
    }
    return this.#stamps;
  }

  /** Stops without a final scan (the recording is abandoned). */
  cancel(): void {
    const worker = this.#worker;
    this.#worker = undefined;
    if (worker !== undefined) {
      Atomics.store(this.#ctl, 0, 1);
      Atomics.notify(this.#ctl, 0);
      void worker.terminate();
    }
  }

  /** Number of layers stamped so far. */
  get layerCount(): number {
    return Atomics.load(this.#ctl, 2) + 1;
  }
}

function runWorker(d: SamplerData): void {
  const stamps = new Uint16Array(d.stamps);
  const ctl = new Int32Array(d.control);
  const fd = openSync(d.path, 'r');
  const layerStart = { resident: 0 };
  try {
    while (Atomics.load(ctl, 0) === 0) {
      scan(fd, d.lengthBytes, d.layerPages, stamps, ctl, layerStart);
      if (Atomics.add(ctl, 4, 1) === 0) Atomics.notify(ctl, 4);
      Atomics.wait(ctl, 0, 0, SCAN_INTERVAL_MS);
    }
    scan(fd, d.lengthBytes, d.layerPages, stamps, ctl, layerStart);
  } finally {
    closeSync(fd);
    Atomics.store(ctl, 1, 1);
    Atomics.notify(ctl, 1);
  }
}

if (!isMainThread && (workerData as SamplerData | undefined)?.kind === 'faasnap-sampler') runWorker(workerData as SamplerData);
