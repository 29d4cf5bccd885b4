// FaaSnap's loading set: which pages of a snapshot a recording run touched, in the order they
// became resident (layers stamped by mincore sampling), restricted to non-zero pages, grouped
// into regions with FaaSnap's two thresholds, and stored as one compact file beside the snapshot
// whose page data can be mapped straight over guest memory.
//
//   <dir>/ls.faasnap
//   +0   magic "THAWLSET"                                      8 bytes
//   +8   version u32 (1)                                       4
//   +12  guest memory pages u32                                4
//   +16  region count u32                                      4
//   +20  source key u32 (crc32 of the state's chunk crcs)      4
//   +24  data crc32 u32 (all page data)                        4
//   +28  regions: count x (u32 first page, u32 page count, u32 layer), ordered by layer, then page
//   then u32 crc32 of every byte before it
//   zero padding to the next PAGE_BYTES boundary: data start
//   data: every region's pages, in table order (a region's file offset is data start + the pages
//         of the regions before it)
// Little-endian. Regions are disjoint; pages are PAGE_BYTES (4 KiB).
// Verification: the data crc is checked when the file is built and on every open (all of it is
// read): no trust in file metadata, which a bit flipped below the filesystem does not change.

import { closeSync, fstatSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { ThawError } from '../core/errors.js';
import { PAGE_BYTES, type PageRun } from '../core/snapshot-format.js';
import { readAt, writeAt, writeFileOnce } from './snapshot-image.js';
import { checkArtefact, sealedForThisRestore } from './artefact-seal.js';

export const LOADING_SET_FILE = 'ls.faasnap';
const MAGIC = 'THAWLSET';
const VERSION = 1;
const HEADER_BYTES = 28;
const ENTRY_BYTES = 12;

/** Layer value of a page the recording never saw resident. */
export const UNSEEN = 0xffff;

/** FaaSnap's knobs, in pages. */
export interface FaasnapThresholds {
  /** A new layer starts each time residency grows by this many pages (FaaSnap: 1024). */
  readonly layerPages: number;
  /** Gaps shorter than this are merged into the region around them (memory-file and loading-set regions). */
  readonly intervalThresholdPages: number;
  /** Loading-set regions shorter than this are dropped (left to the memory-file layer, still correct). */
  readonly sizeThresholdPages: number;
}

/** Thaw's defaults (layerPages is FaaSnap's; the thresholds are Thaw's choice, see faasnap.ts). */
export const DEFAULT_THRESHOLDS: FaasnapThresholds = Object.freeze({ layerPages: 1024, intervalThresholdPages: 32, sizeThresholdPages: 4 });

/** One region of the loading set. */
export interface LoadingRegion extends PageRun {
  readonly layer: number;
}

/** A decoded loading set. */
export interface LoadingSet {
  readonly memoryPages: number;
  readonly sourceKey: number;
  readonly regions: readonly LoadingRegion[];
  /** File offset of the first region's data. */
  readonly dataStartBytes: number;
  /** Number of distinct layers. */
  readonly layerCount: number;
}

/** Present (non-zero) runs with gaps shorter than `intervalThresholdPages` merged: where the memory file is mapped. */
export function nonZeroRegions(present: readonly PageRun[], intervalThresholdPages: number): PageRun[] {
  const out: PageRun[] = [];
  for (const r of present) {
    const last = out[out.length - 1];
    if (last && r.firstPage - (last.firstPage + last.pageCount) < intervalThresholdPages) {
      out[out.length - 1] = { firstPage: last.firstPage, pageCount: r.firstPage + r.pageCount - last.firstPage };
    } else {
      out.push({ firstPage: r.firstPage, pageCount: r.pageCount });
    }
  }
  return out;
}

/**
 * The loading set of a recording: pages stamped with a layer (`layers[p] !== UNSEEN`) that are
 * present in the image, as regions per layer (runs of one layer merged across gaps shorter than
 * intervalThresholdPages made only of unstamped pages, so regions of different layers never
 * overlap), regions shorter than sizeThresholdPages dropped, ordered by layer, then page.
 */
export function buildLoadingSet(layers: Uint16Array, present: readonly PageRun[], t: FaasnapThresholds): LoadingRegion[] {
  const isPresent = new Uint8Array(layers.length);
  for (const r of present) isPresent.fill(1, r.firstPage, Math.min(layers.length, r.firstPage + r.pageCount));
  const byLayer = new Map<number, number[]>();
  for (let p = 0; p < layers.length; p++) {
    const l = layers[p]!;
    if (l === UNSEEN || !isPresent[p]) continue;
    let pages = byLayer.get(l);
    if (!pages) byLayer.set(l, (pages = []));
    pages.push(p);
  }
  const out: LoadingRegion[] = [];
  for (const layer of [...byLayer.keys()].sort((a, b) => a - b)) {
    const regions: LoadingRegion[] = [];
    for (const p of byLayer.get(layer)!) {
      const last = regions[regions.length - 1];
      const end = last ? last.firstPage + last.pageCount : -1;
      let mergeable = last !== undefined && p - end < t.intervalThresholdPages;
      for (let g = end; mergeable && g < p; g++) if (layers[g] !== UNSEEN && layers[g] !== layer) mergeable = false;
      if (last && (p === end || mergeable)) regions[regions.length - 1] = { firstPage: last.firstPage, pageCount: p + 1 - last.firstPage, layer };
      else regions.push({ firstPage: p, pageCount: 1, layer });
    }
    out.push(...regions.filter((r) => r.pageCount >= t.sizeThresholdPages));
  }
  return out;
}


/** Path of the loading set of the snapshot in `dir`. */
export function loadingSetPath(dir: string): string {
  return join(dir, LOADING_SET_FILE);
}

/**
 * Writes the loading set of `regions`, copying their pages from the verified image `imageFd`,
 * atomically (temporary name, fsync, link) unless one is there (concurrent recorders: the first
 * wins), then verifies what is there.
 * Throws THAW_SNAPSHOT_CORRUPT (image shorter than a region).
 */
export function writeLoadingSet(dir: string, id: string, imageFd: number, memoryPages: number, key: number, regions: readonly LoadingRegion[]): void {
  const path = loadingSetPath(dir);
  const tableEnd = HEADER_BYTES + regions.length * ENTRY_BYTES + 4;
  const dataStart = Math.ceil(tableEnd / PAGE_BYTES) * PAGE_BYTES;
  writeFileOnce(path, (out) => {
    let at = dataStart;
    let dataCrc = 0;
    const buf = Buffer.allocUnsafe(1 << 20);
    for (const r of regions) {
      for (let p = r.firstPage; p < r.firstPage + r.pageCount;) {
        const n = Math.min(buf.length / PAGE_BYTES, r.firstPage + r.pageCount - p);
        const chunk = buf.subarray(0, n * PAGE_BYTES);
        if (readAt(imageFd, chunk, p * PAGE_BYTES) !== chunk.length) {
          throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id, detail: `image ends inside loading-set region at page ${p}` });
        }
        dataCrc = crc32(chunk, dataCrc);
        writeAt(out, chunk, at);
        at += chunk.length;
        p += n;
      }
    }
    const header = Buffer.alloc(dataStart);
    header.write(MAGIC, 0, 'latin1');
    header.writeUInt32LE(VERSION, 8);
    header.writeUInt32LE(memoryPages, 12);
    header.writeUInt32LE(regions.length, 16);
    header.writeUInt32LE(key >>> 0, 20);
    header.writeUInt32LE(dataCrc >>> 0, 24);
    regions.forEach((r, i) => {
      const o = HEADER_BYTES + i * ENTRY_BYTES;
      header.writeUInt32LE(r.firstPage, o);
      header.writeUInt32LE(r.pageCount, o + 4);
      header.writeUInt32LE(r.layer, o + 8);
    });
    header.writeUInt32LE(crc32(header.subarray(0, tableEnd - 4)), tableEnd - 4);
    writeAt(out, header, 0);
  });
  // Its own bytes, just written: checked as any open checks them, except against a seal (the
  // daemon seals it once it adopts it).
  const opened = openLoadingSet(dir, id, memoryPages, false);
  if (opened) closeSync(opened.fd);
}

/** An opened, verified loading set. */
export interface OpenedLoadingSet {
  readonly set: LoadingSet;
  /** Read-only fd of the file; the caller closes it. */
  readonly fd: number;
}

/**
 * Opens the loading set of the snapshot in `dir`; null when none was recorded. Checks the header
 * and table against the daemon's seal (artefact-seal.ts; `checkSeal` false: the writer's own
 * check of what it just wrote), the table crc and the data crc (reading every byte).
 * Throws THAW_SNAPSHOT_CORRUPT.
 */
export function openLoadingSet(dir: string, id: string, memoryPages: number, checkSeal = true): OpenedLoadingSet | null {
  if (checkSeal && !sealedForThisRestore(id, LOADING_SET_FILE)) return null;
  const path = loadingSetPath(dir);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err: unknown) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id, detail: `cannot open ${path}: ${(err as Error).message}` }, { cause: err });
  }
  try {
    const bad = (detail: string): never => {
      throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id, detail: `loading set: ${detail}` });
    };
    const size = fstatSync(fd).size;
    const head = Buffer.alloc(Math.min(size, HEADER_BYTES));
    readAt(fd, head, 0);
    if (head.length < HEADER_BYTES || head.toString('latin1', 0, 8) !== MAGIC) bad('bad magic or truncated');
    if (head.readUInt32LE(8) !== VERSION) bad(`version ${head.readUInt32LE(8)}, expected ${VERSION}`);
    if (head.readUInt32LE(12) !== memoryPages) bad(`recorded for ${head.readUInt32LE(12)} pages, the snapshot has ${memoryPages}`);
    const count = head.readUInt32LE(16);
    const tableEnd = HEADER_BYTES + count * ENTRY_BYTES + 4;
    const dataStart = Math.ceil(tableEnd / PAGE_BYTES) * PAGE_BYTES;
    if (size < dataStart) bad('table truncated');
    const table = Buffer.alloc(tableEnd);
    readAt(fd, table, 0);
    if (checkSeal) checkArtefact(id, LOADING_SET_FILE, table);
    if (crc32(table.subarray(0, tableEnd - 4)) !== table.readUInt32LE(tableEnd - 4)) bad('table checksum mismatch');
    const regions: LoadingRegion[] = [];
    const seen = new Uint8Array(memoryPages);
    const layers = new Set<number>();
    let pages = 0;
    for (let i = 0; i < count; i++) {
      const o = HEADER_BYTES + i * ENTRY_BYTES;
      const r = { firstPage: table.readUInt32LE(o), pageCount: table.readUInt32LE(o + 4), layer: table.readUInt32LE(o + 8) };
      if (r.pageCount === 0 || r.firstPage + r.pageCount > memoryPages) bad(`region ${i} out of range`);
      for (let p = r.firstPage; p < r.firstPage + r.pageCount; p++) {
        if (seen[p]) bad(`region ${i} overlaps another`);
        seen[p] = 1;
      }
      regions.push(r);
      layers.add(r.layer);
      pages += r.pageCount;
    }
    if (size !== dataStart + pages * PAGE_BYTES) bad(`file is ${size} bytes, its table needs ${dataStart + pages * PAGE_BYTES}`);
    // The data crc is checked on every open, from the bytes (no trust in file metadata): the
    // read also brings the loading set into the page cache, which its mapping wants anyway.
    let crc = 0;
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let at = dataStart; at < size;) {
      const n = readAt(fd, buf.subarray(0, Math.min(buf.length, size - at)), at);
      if (n === 0) bad('data ends early');
      crc = crc32(buf.subarray(0, n), crc);
      at += n;
    }
    if ((crc >>> 0) !== table.readUInt32LE(24)) bad('page data checksum mismatch');
    const set: LoadingSet = { memoryPages, sourceKey: table.readUInt32LE(20), regions, dataStartBytes: dataStart, layerCount: layers.size };
    return { set, fd };
  } catch (err: unknown) {
    closeSync(fd);
    throw err;
  }
}
