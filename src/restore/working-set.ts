// Working-set files (REAP): the pages a restored guest touched while serving its recording
// input, as sorted, merged page runs, stored beside the snapshot and read in one read.
//
//   <root>/<id>/ws.reap
//   +0   magic "THAWWSET"                                 8 bytes
//   +8   version u32 (1)                                  4 bytes
//   +12  guest memory pages u32 (must match the snapshot) 4 bytes
//   +16  run count u32                                    4 bytes
//   +20  runs: count x (u32 first page, u32 page count), ascending, disjoint, non-adjacent
//   end  CRC-32 of every byte before it                   4 bytes
// Little-endian; pages are PAGE_BYTES (4 KiB).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { ThawError } from '../core/errors.js';
import { PAGE_BYTES, type PageRun } from '../core/snapshot-format.js';
import { writeAt, writeFileOnce } from './snapshot-image.js';
import { checkArtefact, sealedForThisRestore } from './artefact-seal.js';

export const WORKING_SET_FILE = 'ws.reap';
const MAGIC = 'THAWWSET';
const VERSION = 1;
const HEADER_BYTES = 20;

/** The working set of one snapshot. */
export interface WorkingSet {
  /** Guest memory size in pages the set was recorded against. */
  readonly memoryPages: number;
  /** Sorted, merged runs of touched pages. */
  readonly runs: readonly PageRun[];
}

/** Path of the working-set file of the snapshot whose directory is `dir`. */
export function workingSetPath(dir: string): string {
  return join(dir, WORKING_SET_FILE);
}

/** Total pages in `runs`. */
export function pagesIn(runs: readonly PageRun[]): number {
  return runs.reduce((n, r) => n + r.pageCount, 0);
}

/**
 * Turns recorded fault offsets (bytes from the start of guest memory, any order, duplicates
 * allowed) into sorted runs where adjacent pages are merged.
 */
export function runsFromOffsets(offsets: ArrayLike<bigint | number>): PageRun[] {
  const pages = Array.from(offsets, (o) => Number(o) / PAGE_BYTES).sort((a, b) => a - b);
  const runs: PageRun[] = [];
  let first = -1;
  let count = 0;
  for (const p of pages) {
    if (first >= 0 && p < first + count) continue;
    if (first >= 0 && p === first + count) {
      count++;
      continue;
    }
    if (first >= 0) runs.push({ firstPage: first, pageCount: count });
    first = p;
    count = 1;
  }
  if (first >= 0) runs.push({ firstPage: first, pageCount: count });
  return runs;
}

/** Merges two sorted run lists (union of their pages). */
export function unionRuns(a: readonly PageRun[], b: readonly PageRun[]): PageRun[] {
  const all = [...a, ...b].sort((x, y) => x.firstPage - y.firstPage);
  const out: PageRun[] = [];
  for (const r of all) {
    const last = out[out.length - 1];
    if (last && r.firstPage <= last.firstPage + last.pageCount) {
      const end = Math.max(last.firstPage + last.pageCount, r.firstPage + r.pageCount);
      out[out.length - 1] = { firstPage: last.firstPage, pageCount: end - last.firstPage };
    } else {
      out.push(r);
    }
  }
  return out;
}

/** Encodes a working set. */
export function encodeWorkingSet(ws: WorkingSet): Buffer {
  const buf = Buffer.alloc(HEADER_BYTES + ws.runs.length * 8 + 4);
  buf.write(MAGIC, 0, 'latin1');
  buf.writeUInt32LE(VERSION, 8);
  buf.writeUInt32LE(ws.memoryPages, 12);
  buf.writeUInt32LE(ws.runs.length, 16);
  ws.runs.forEach((r, i) => {
    buf.writeUInt32LE(r.firstPage, HEADER_BYTES + i * 8);
    buf.writeUInt32LE(r.pageCount, HEADER_BYTES + i * 8 + 4);
  });
  buf.writeUInt32LE(crc32(buf.subarray(0, buf.length - 4)), buf.length - 4);
  return buf;
}

/** Decodes and checks a working set against a memory of `memoryPages` pages. Throws THAW_SNAPSHOT_CORRUPT. */
export function decodeWorkingSet(id: string, buf: Buffer, memoryPages: number): WorkingSet {
  const bad = (detail: string): never => {
    throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id, detail: `working set: ${detail}` });
  };
  if (buf.length < HEADER_BYTES + 4 || buf.toString('latin1', 0, 8) !== MAGIC) bad('bad magic or truncated');
  if (buf.readUInt32LE(8) !== VERSION) bad(`version ${buf.readUInt32LE(8)}, expected ${VERSION}`);
  const count = buf.readUInt32LE(16);
  if (buf.length !== HEADER_BYTES + count * 8 + 4) bad('length does not match its run count');
  if (crc32(buf.subarray(0, buf.length - 4)) !== buf.readUInt32LE(buf.length - 4)) bad('checksum mismatch');
  if (buf.readUInt32LE(12) !== memoryPages) bad(`recorded for ${buf.readUInt32LE(12)} pages, the snapshot has ${memoryPages}`);
  const runs: PageRun[] = [];
  let prevEnd = -1;
  for (let i = 0; i < count; i++) {
    const firstPage = buf.readUInt32LE(HEADER_BYTES + i * 8);
    const pageCount = buf.readUInt32LE(HEADER_BYTES + i * 8 + 4);
    if (pageCount === 0 || firstPage <= prevEnd || firstPage + pageCount > memoryPages) bad(`run ${i} out of order or range`);
    runs.push({ firstPage, pageCount });
    prevEnd = firstPage + pageCount;
  }
  return { memoryPages, runs };
}

/**
 * Reads the working set of the snapshot in `dir` in one read; null when none was recorded yet (or
 * none when the daemon prepared this restore: sealedForThisRestore).
 * Throws THAW_SNAPSHOT_CORRUPT when the file is present but damaged, or not the one the daemon
 * sealed (artefact-seal.ts).
 */
export function readWorkingSet(dir: string, id: string, memoryPages: number): WorkingSet | null {
  if (!sealedForThisRestore(id, WORKING_SET_FILE)) return null;
  let buf: Buffer;
  try {
    buf = readFileSync(workingSetPath(dir));
  } catch (err: unknown) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id, detail: `cannot read working set: ${(err as Error).message}` }, { cause: err });
  }
  checkArtefact(id, WORKING_SET_FILE, buf);
  return decodeWorkingSet(id, buf, memoryPages);
}

/**
 * Writes the working set of the snapshot in `dir` atomically unless one is there (concurrent
 * recorders: the first wins, so a restore already reading it is not given other bytes).
 */
export function writeWorkingSet(dir: string, ws: WorkingSet): void {
  const bytes = encodeWorkingSet(ws);
  writeFileOnce(workingSetPath(dir), (fd) => writeAt(fd, bytes, 0));
}
