// The on-disk snapshot format: a state file (header, metadata, page index, chunk checksums)
// beside a memory image that a restore engine can mmap directly. Pure encode/decode, no I/O.
//
// A snapshot is a directory:
//
//   <id>/state.thaw    the state file below
//   <id>/memory.img    guest memory, byte i of the file = byte i of linear memory;
//                      page aligned; zero pages are holes (sparse), so its size on disk is
//                      the non-zero part. A diff snapshot holds only its changed pages.
//
// state.thaw:
//
//   +0   magic "THAWSNAP"                         8 bytes
//   +8   format major u16 (2) | minor u16 (0)     4 bytes
//   +12  metadata length (bytes) u32              4 bytes
//   +16  run count u32                            4 bytes
//   +20  chunk count u32                          4 bytes
//   +24  page count u32                           4 bytes
//   +28  metadata: UTF-8 JSON (SnapshotMeta)      metadata length
//   ...  page runs: run count x (u32 first page, u32 page count), ascending, disjoint
//   ...  chunk checksums: chunk count x u32 CRC-32 of each CHUNK_BYTES of the guest memory
//        as restored (base + diff for a diff snapshot); the last chunk may be short
//   ...  page checksums: page count x u32 CRC-32 of each PAGE_BYTES page of the guest memory
//        as restored (a zero page: the CRC-32 of 4096 zero bytes)
//   end  CRC-32 of every byte before it           4 bytes
//
// All integers little-endian. Page runs list the pages present in memory.img: for a full
// snapshot the non-zero pages; for a diff snapshot the pages that differ from its base.
// Two granularities of checksum for the same bytes: whole-memory readers (eager, dram, pass,
// sabre, scrubs) check 1 MiB chunks; page servers and sparse loaders (uffd, reap, thaw) check
// only the pages they serve. Format 1 (2026-11, chunk checksums only) is refused with
// THAW_SNAPSHOT_VERSION naming it: a lazy restore of it would have to check whole chunks again.

import { crc32 } from 'node:zlib';
import { ThawError } from './errors.js';

export const SNAPSHOT_MAGIC = 'THAWSNAP';
export const FORMAT_MAJOR = 2;
export const FORMAT_MINOR = 0;
/** Host page size used for the page index; Wasm pages (64 KiB) are a multiple of it. */
export const PAGE_BYTES = 4096;
/** Granularity of the memory image checksums. */
export const CHUNK_BYTES = 1 << 20;
/** A state file larger than this is refused before parsing (defends against garbage files). */
export const MAX_STATE_FILE_BYTES = 256 << 20;
const FIXED_HEADER_BYTES = 28;

/** A run of consecutive pages: [firstPage, firstPage + pageCount). */
export interface PageRun {
  readonly firstPage: number;
  readonly pageCount: number;
}

/** Metadata stored in a snapshot's state file. */
export interface SnapshotMeta {
  readonly id: string;
  readonly kind: 'full' | 'diff';
  /** For diff snapshots: the id of the snapshot this one applies on top of. */
  readonly baseId: string | null;
  readonly functionName: string;
  readonly runtime: string;
  /** sha256 of the deployed artefact the snapshot was taken from (module version check). */
  readonly moduleDigest: string;
  /** Size of guest memory in bytes at capture (a multiple of 64 KiB). */
  readonly memoryBytes: number;
  /** Runtime-specific non-memory state (GuestState.runtime). */
  readonly guestState: unknown;
  readonly createdAt: string;
  /** Id of the sandbox it was taken from. */
  readonly sourceSandboxId: string;
}

/** A decoded state file. */
export interface SnapshotState {
  readonly meta: SnapshotMeta;
  readonly runs: readonly PageRun[];
  readonly chunkCrcs: Uint32Array;
  /** CRC-32 of each PAGE_BYTES page of the restored memory (memoryBytes / PAGE_BYTES of them). */
  readonly pageCrcs: Uint32Array;
}

/** Encodes a state file. */
export function encodeState(state: SnapshotState): Buffer {
  const metaBytes = Buffer.from(JSON.stringify(state.meta), 'utf8');
  const total = FIXED_HEADER_BYTES + metaBytes.length + state.runs.length * 8 + (state.chunkCrcs.length + state.pageCrcs.length) * 4 + 4;
  const buf = Buffer.alloc(total);
  buf.write(SNAPSHOT_MAGIC, 0, 'latin1');
  buf.writeUInt16LE(FORMAT_MAJOR, 8);
  buf.writeUInt16LE(FORMAT_MINOR, 10);
  buf.writeUInt32LE(metaBytes.length, 12);
  buf.writeUInt32LE(state.runs.length, 16);
  buf.writeUInt32LE(state.chunkCrcs.length, 20);
  buf.writeUInt32LE(state.pageCrcs.length, 24);
  let at = FIXED_HEADER_BYTES;
  metaBytes.copy(buf, at);
  at += metaBytes.length;
  for (const run of state.runs) {
    buf.writeUInt32LE(run.firstPage, at);
    buf.writeUInt32LE(run.pageCount, at + 4);
    at += 8;
  }
  for (const crcs of [state.chunkCrcs, state.pageCrcs]) {
    for (const c of crcs) {
      buf.writeUInt32LE(c, at);
      at += 4;
    }
  }
  buf.writeUInt32LE(crc32(buf.subarray(0, at)), at);
  return buf;
}

/**
 * Decodes and checks a state file. Throws THAW_SNAPSHOT_CORRUPT (bad magic, truncation,
 * checksum mismatch, malformed index or metadata) or THAW_SNAPSHOT_VERSION (unsupported format version).
 */
export function decodeState(id: string, buf: Buffer): SnapshotState {
  const corrupt = (detail: string): never => {
    throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id, detail });
  };
  if (buf.length > MAX_STATE_FILE_BYTES) corrupt(`state file is ${buf.length} bytes, over the ${MAX_STATE_FILE_BYTES} byte cap`);
  if (buf.length < FIXED_HEADER_BYTES + 4) corrupt(`state file truncated (${buf.length} bytes)`);
  if (buf.toString('latin1', 0, 8) !== SNAPSHOT_MAGIC) corrupt('bad magic: not a Thaw snapshot state file');
  const major = buf.readUInt16LE(8);
  const minor = buf.readUInt16LE(10);
  if (major === 1) {
    throw new ThawError('THAW_SNAPSHOT_VERSION', {
      id, detail: `format ${major}.${minor} (chunk checksums only), this Thaw reads format ${FORMAT_MAJOR}, which adds a checksum per page: delete the snapshot and take it again`,
    });
  }
  if (major !== FORMAT_MAJOR || minor > FORMAT_MINOR) {
    throw new ThawError('THAW_SNAPSHOT_VERSION', { id, detail: `format ${major}.${minor}, this Thaw reads ${FORMAT_MAJOR}.0-${FORMAT_MAJOR}.${FORMAT_MINOR}` });
  }
  const metaLen = buf.readUInt32LE(12);
  const runCount = buf.readUInt32LE(16);
  const chunkCount = buf.readUInt32LE(20);
  const pageCrcCount = buf.readUInt32LE(24);
  const expected = FIXED_HEADER_BYTES + metaLen + runCount * 8 + (chunkCount + pageCrcCount) * 4 + 4;
  if (buf.length !== expected) corrupt(`state file is ${buf.length} bytes, header says ${expected} (truncated or padded)`);
  const stored = buf.readUInt32LE(buf.length - 4);
  if (crc32(buf.subarray(0, buf.length - 4)) !== stored) corrupt('state file checksum mismatch');

  let meta: SnapshotMeta;
  try {
    meta = JSON.parse(buf.toString('utf8', FIXED_HEADER_BYTES, FIXED_HEADER_BYTES + metaLen)) as SnapshotMeta;
  } catch (err) {
    return corrupt(`metadata is not JSON: ${(err as Error).message}`);
  }
  const shape = metaShapeError(meta);
  if (shape !== null) corrupt(`metadata ${shape}`);
  const totalPages = meta.memoryBytes / PAGE_BYTES;
  const runs: PageRun[] = [];
  let at = FIXED_HEADER_BYTES + metaLen;
  let prevEnd = 0;
  for (let i = 0; i < runCount; i++, at += 8) {
    const firstPage = buf.readUInt32LE(at);
    const pageCount = buf.readUInt32LE(at + 4);
    if (pageCount === 0 || firstPage < prevEnd || firstPage + pageCount > totalPages) corrupt(`page run ${i} is out of order or out of range`);
    runs.push({ firstPage, pageCount });
    prevEnd = firstPage + pageCount;
  }
  if (chunkCount !== Math.ceil(meta.memoryBytes / CHUNK_BYTES)) corrupt(`chunk count ${chunkCount} does not match memory size`);
  if (pageCrcCount !== totalPages) corrupt(`page checksum count ${pageCrcCount} does not match memory size`);
  const chunkCrcs = new Uint32Array(chunkCount);
  for (let i = 0; i < chunkCount; i++, at += 4) chunkCrcs[i] = buf.readUInt32LE(at);
  const pageCrcs = new Uint32Array(pageCrcCount);
  for (let i = 0; i < pageCrcCount; i++, at += 4) pageCrcs[i] = buf.readUInt32LE(at);
  return { meta, runs, chunkCrcs, pageCrcs };
}

const META_STRINGS = ['id', 'functionName', 'runtime', 'moduleDigest', 'createdAt', 'sourceSandboxId'] as const;

/**
 * Why parsed metadata is not a SnapshotMeta, or null when it is. The checksum only proves the
 * bytes are the ones written; the rest of Thaw takes the fields' types for granted (readChain
 * joins baseId into a path), so the decoder checks them. guestState is left to the runtime
 * adapter, which checks its own state before a restore.
 */
function metaShapeError(meta: unknown): string | null {
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) return 'is not a JSON object';
  const m = meta as Record<string, unknown>;
  for (const field of META_STRINGS) if (typeof m[field] !== 'string') return `${field} is not a string`;
  if (m.kind !== 'full' && m.kind !== 'diff') return 'kind is neither full nor diff';
  if (m.baseId !== null && typeof m.baseId !== 'string') return 'baseId is neither a string nor null';
  if (m.kind === 'diff' && m.baseId === null) return 'a diff snapshot names no base';
  const bytes = m.memoryBytes;
  if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes < 0 || bytes % PAGE_BYTES !== 0) return 'memoryBytes is not a page-aligned size';
  return null;
}

/**
 * Finds the page runs of `memory` to store: the non-zero pages, or, given a base image,
 * the pages that differ from it (pages beyond the base's end count as changed when non-zero).
 */
export function findPageRuns(memory: Uint8Array, base?: Uint8Array): PageRun[] {
  const pages = Math.ceil(memory.length / PAGE_BYTES);
  const runs: PageRun[] = [];
  let runStart = -1;
  for (let p = 0; p < pages; p++) {
    const lo = p * PAGE_BYTES;
    const page = memory.subarray(lo, lo + PAGE_BYTES);
    const keep = base && lo < base.length ? !pageEquals(page, base.subarray(lo, lo + PAGE_BYTES)) : !isZeroPage(page);
    if (keep && runStart < 0) runStart = p;
    if (!keep && runStart >= 0) {
      runs.push({ firstPage: runStart, pageCount: p - runStart });
      runStart = -1;
    }
  }
  if (runStart >= 0) runs.push({ firstPage: runStart, pageCount: pages - runStart });
  return runs;
}

const ZERO_PAGE = new Uint8Array(PAGE_BYTES);

/** True when every byte of the page is zero. */
export function isZeroPage(page: Uint8Array): boolean {
  return Buffer.compare(page, ZERO_PAGE.subarray(0, page.length)) === 0;
}

function pageEquals(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** CRC-32 of each CHUNK_BYTES slice of `memory` (the restored guest memory). */
export function chunkChecksums(memory: Uint8Array): Uint32Array {
  const count = Math.ceil(memory.length / CHUNK_BYTES);
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) out[i] = crc32(memory.subarray(i * CHUNK_BYTES, (i + 1) * CHUNK_BYTES));
  return out;
}

/** CRC-32 of 4096 zero bytes: the checksum of every zero page. */
export const ZERO_PAGE_CRC = crc32(ZERO_PAGE);

/** CRC-32 of each PAGE_BYTES page of `memory` (the restored guest memory; a page multiple). */
export function pageChecksums(memory: Uint8Array): Uint32Array {
  const count = memory.length / PAGE_BYTES;
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    const page = memory.subarray(i * PAGE_BYTES, (i + 1) * PAGE_BYTES);
    out[i] = isZeroPage(page) ? ZERO_PAGE_CRC : crc32(page);
  }
  return out;
}

/** Total bytes covered by page runs. */
export function runBytes(runs: readonly PageRun[]): number {
  return runs.reduce((n, r) => n + r.pageCount * PAGE_BYTES, 0);
}
