// Compressed snapshot images for the sabre strategies (Sabre): page runs of an image split into
// partitions of at most `partitionBytes`, each compressed with lz4 or zstd (or kept raw when
// compression does not shrink it), behind a partition table; built once, atomically, and read
// back with every partition's checksum checked before anything is decompressed.
//
//   <dir>/sabre-<codec>-<level>.img       the whole image's present runs (sabre, sabre-zstd)
//   <dir>/sabre-reap-<codec>-<level>.img  the working set only (sabre-reap)
//   +0   magic "THAWSABR"                                         8 bytes
//   +8   version u32 (1)                                          4
//   +12  guest memory pages u32                                   4
//   +16  partition count u32                                      4
//   +20  source key u32 (crc32 of what it was built from)         4
//   +24  partition table: count x 28 bytes
//          u32 first page, u32 page count, f64 data offset (bytes from file start),
//          u32 stored bytes, u8 codec (0 raw, 1 lz4, 2 zstd), 3 zero bytes, u32 crc32 of stored bytes
//   then u32 crc32 of every byte before it (header + table)
//   then partition data, in table order, contiguous
// Little-endian. Partitions are ascending and disjoint; pages are PAGE_BYTES (4 KiB).

import { closeSync, fstatSync, openSync } from 'node:fs';
import { basename } from 'node:path';
import { crc32 } from 'node:zlib';
import { ThawError } from '../core/errors.js';
import { PAGE_BYTES, type PageRun, type SnapshotState } from '../core/snapshot-format.js';
import { compress, FILL_THREADS, fillFromFile, type Codec } from '../native/index.js';
import { readAt, verifyImage, writeAt, writeFileVia, type SnapshotImage } from './snapshot-image.js';
import { checkArtefact } from './artefact-seal.js';

const MAGIC = 'THAWSABR';
const VERSION = 1;
const HEADER_BYTES = 24;
const ENTRY_BYTES = 28;
const CODEC_IDS = { raw: 0, lz4: 1, zstd: 2 } as const;
const CODEC_NAMES = ['raw', 'lz4', 'zstd'] as const;

/** How a partition is stored. */
export type StoredCodec = Codec | 'raw';

/** One row of the partition table. */
export interface Partition {
  readonly firstPage: number;
  readonly pageCount: number;
  /** Offset of the stored bytes from the start of the file. */
  readonly dataOffsetBytes: number;
  readonly storedBytes: number;
  readonly codec: StoredCodec;
  /** crc32 of the stored (compressed) bytes. */
  readonly crc: number;
}

/** A decoded compressed image: its table and where its data starts. */
export interface CompressedImage {
  readonly memoryPages: number;
  /** What the file was built from (see sourceKey()); a different source makes the file stale. */
  readonly sourceKey: number;
  readonly partitions: readonly Partition[];
  /** Sum of the partitions' uncompressed bytes. */
  readonly rawBytes: number;
  /** Sum of their stored bytes. */
  readonly storedBytes: number;
}

/** Options of buildCompressedImage. */
export interface CompressOptions {
  readonly codec: Codec;
  /** lz4 acceleration or zstd level. */
  readonly level: number;
  /** Largest partition (a multiple of PAGE_BYTES). */
  readonly partitionBytes: number;
}

/** crc32 over a state's chunk checksums, optionally mixed with more bytes (a working set's). */
export function sourceKey(state: SnapshotState, extra?: Uint8Array): number {
  const k = crc32(new Uint8Array(state.chunkCrcs.buffer, state.chunkCrcs.byteOffset, state.chunkCrcs.byteLength));
  return extra ? crc32(extra, k) : k;
}

/** Splits runs into partitions of at most `partitionBytes` (a page multiple). */
export function splitRuns(runs: readonly PageRun[], partitionBytes: number): PageRun[] {
  const maxPages = Math.max(1, Math.floor(partitionBytes / PAGE_BYTES));
  const out: PageRun[] = [];
  for (const r of runs) {
    for (let p = r.firstPage; p < r.firstPage + r.pageCount; p += maxPages) {
      out.push({ firstPage: p, pageCount: Math.min(maxPages, r.firstPage + r.pageCount - p) });
    }
  }
  return out;
}


/**
 * Builds the compressed image of `runs` of the image in `imageFd` (verified by the caller) at
 * `path`, atomically (temporary name, fsync, rename). Returns what it wrote.
 * Throws THAW_SNAPSHOT_CORRUPT (image shorter than its runs), THAW_INTERNAL (codec).
 */
export function buildCompressedImage(path: string, id: string, imageFd: number, memoryPages: number, key: number,
  runs: readonly PageRun[], options: CompressOptions): CompressedImage {
  const parts = splitRuns(runs, options.partitionBytes);
  const tableEnd = HEADER_BYTES + parts.length * ENTRY_BYTES + 4;
  const header = Buffer.alloc(tableEnd);
  const partitions: Partition[] = [];
  let at = tableEnd;
  let rawBytes = 0;
  writeFileVia(path, (out) => {
    const buf = Buffer.allocUnsafe(options.partitionBytes);
    for (const part of parts) {
      const len = part.pageCount * PAGE_BYTES;
      const raw = buf.subarray(0, len);
      if (readAt(imageFd, raw, part.firstPage * PAGE_BYTES) !== len) {
        throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id, detail: `image ends inside page run at page ${part.firstPage}` });
      }
      const packed = compress(options.codec, raw, options.level);
      // Incompressible data (random pages) is stored as it is: decoding it would only cost time.
      const [stored, codec]: [Uint8Array, StoredCodec] = packed.length < len ? [packed, options.codec] : [raw, 'raw'];
      writeAt(out, stored, at);
      partitions.push({ firstPage: part.firstPage, pageCount: part.pageCount, dataOffsetBytes: at, storedBytes: stored.length, codec, crc: crc32(stored) });
      at += stored.length;
      rawBytes += len;
    }
    header.write(MAGIC, 0, 'latin1');
    header.writeUInt32LE(VERSION, 8);
    header.writeUInt32LE(memoryPages, 12);
    header.writeUInt32LE(partitions.length, 16);
    header.writeUInt32LE(key >>> 0, 20);
    partitions.forEach((p, i) => {
      const o = HEADER_BYTES + i * ENTRY_BYTES;
      header.writeUInt32LE(p.firstPage, o);
      header.writeUInt32LE(p.pageCount, o + 4);
      header.writeDoubleLE(p.dataOffsetBytes, o + 8);
      header.writeUInt32LE(p.storedBytes, o + 16);
      header.writeUInt8(CODEC_IDS[p.codec], o + 20);
      header.writeUInt32LE(p.crc >>> 0, o + 24);
    });
    header.writeUInt32LE(crc32(header.subarray(0, tableEnd - 4)), tableEnd - 4);
    writeAt(out, header, 0);
  });
  return { memoryPages, sourceKey: key >>> 0, partitions, rawBytes, storedBytes: at - tableEnd };
}

/** A compressed image opened for a restore: its table (checked) and the open file. */
export interface OpenedCompressedImage extends CompressedImage {
  /** Read-only fd of the file; the caller closes it. */
  readonly fd: number;
}

/**
 * Opens the compressed image at `path` and reads and checks its header and partition table only
 * (partition data is checked as it is read: fillPartitions, verifyCompressedImage), and the table
 * against the daemon's seal (artefact-seal.ts). Returns null when the file is missing. Throws THAW_SNAPSHOT_CORRUPT (bad magic, version or table crc, a
 * partition outside guest memory, overlapping its neighbour or past the end of the file, or a file
 * built for another memory size).
 */
export function openCompressedImage(path: string, id: string, memoryPages: number): OpenedCompressedImage | null {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err: unknown) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id, detail: `cannot open ${path}: ${(err as Error).message}` }, { cause: err });
  }
  try {
    const bad = (detail: string): never => {
      throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id, detail: `compressed image: ${detail}` });
    };
    const fileBytes = fstatSync(fd).size;
    const head = Buffer.alloc(HEADER_BYTES);
    if (readAt(fd, head, 0) < HEADER_BYTES || head.toString('latin1', 0, 8) !== MAGIC) bad('bad magic or truncated');
    if (head.readUInt32LE(8) !== VERSION) bad(`version ${head.readUInt32LE(8)}, expected ${VERSION}`);
    if (head.readUInt32LE(12) !== memoryPages) bad(`built for ${head.readUInt32LE(12)} pages, the snapshot has ${memoryPages}`);
    const count = head.readUInt32LE(16);
    const tableEnd = HEADER_BYTES + count * ENTRY_BYTES + 4;
    // The count is untrusted until the table crc is checked: bound it by the file before allocating.
    if (tableEnd > fileBytes) bad(`partition table of ${count} entries is longer than the file (truncated?)`);
    const table = Buffer.alloc(tableEnd);
    if (readAt(fd, table, 0) < tableEnd) bad('partition table truncated');
    checkArtefact(id, basename(path), table);
    if (crc32(table.subarray(0, tableEnd - 4)) !== table.readUInt32LE(tableEnd - 4)) bad('partition table checksum mismatch');
    const partitions: Partition[] = [];
    let prevEnd = 0;
    let rawBytes = 0;
    let storedBytes = 0;
    for (let i = 0; i < count; i++) {
      const o = HEADER_BYTES + i * ENTRY_BYTES;
      const p: Partition = {
        firstPage: table.readUInt32LE(o),
        pageCount: table.readUInt32LE(o + 4),
        dataOffsetBytes: table.readDoubleLE(o + 8),
        storedBytes: table.readUInt32LE(o + 16),
        codec: CODEC_NAMES[table.readUInt8(o + 20)] ?? bad(`partition ${i}: unknown codec ${table.readUInt8(o + 20)}`),
        crc: table.readUInt32LE(o + 24),
      };
      if (p.pageCount === 0 || p.firstPage < prevEnd || p.firstPage + p.pageCount > memoryPages) bad(`partition ${i} out of order or range`);
      if (p.codec === 'raw' && p.storedBytes !== p.pageCount * PAGE_BYTES) bad(`partition ${i}: raw partition of the wrong size`);
      // An f64 offset may be NaN or fractional, which every range comparison lets through.
      if (!Number.isSafeInteger(p.dataOffsetBytes) || p.dataOffsetBytes < tableEnd || p.dataOffsetBytes + p.storedBytes > fileBytes) bad(`partition ${i}: data outside the file (truncated?)`);
      partitions.push(p);
      prevEnd = p.firstPage + p.pageCount;
      rawBytes += p.pageCount * PAGE_BYTES;
      storedBytes += p.storedBytes;
    }
    return { memoryPages, sourceKey: table.readUInt32LE(20), partitions, rawBytes, storedBytes, fd };
  } catch (err: unknown) {
    closeSync(fd);
    throw err;
  }
}

/**
 * Staging memory for verifyCompressedImage, kept for the life of the process so that its pages
 * are resident after the first use (a fresh page costs 12-17 us to fault on this kind of host).
 */
let staging = Buffer.alloc(0);
function stagingOf(bytes: number): Buffer {
  if (staging.length < bytes) staging = Buffer.alloc(bytes);
  return staging.subarray(0, bytes);
}

function corrupt(id: string, p: Partition, what: string, cause?: unknown): ThawError {
  return new ThawError('THAW_SNAPSHOT_CORRUPT', { id, detail: `compressed image: partition at pages ${p.firstPage}..${p.firstPage + p.pageCount}: ${what}` }, cause === undefined ? undefined : { cause });
}

const FILL_WHAT = { short: 'file ends early', crc: 'checksum mismatch', decode: 'does not decode to its size' } as const;

/**
 * Reads every partition of `image` and puts it in its place in `target` (guest memory, mapped
 * and writable over every partition), on `threads` threads at once (Sabre's parallel
 * decompression): raw partitions are read straight into place, compressed ones into per-thread
 * scratch memory and decompressed into place; each partition's crc32 is checked before it is
 * decompressed (raw ones right after the read). Returns the bytes read and the threads used.
 * Throws THAW_SNAPSHOT_CORRUPT (crc mismatch, short read, or a partition that does not decode to
 * its exact size, naming the first such partition); guest memory is then partly filled and must
 * not run.
 */
export function fillPartitions(id: string, image: OpenedCompressedImage, target: ArrayBuffer, threads = FILL_THREADS): { bytesRead: number; threads: number } {
  const r = fillFromFile(image.fd, target, image.partitions.map((p) => ({
    targetOffsetBytes: p.firstPage * PAGE_BYTES,
    lengthBytes: p.pageCount * PAGE_BYTES,
    fileOffsetBytes: p.dataOffsetBytes,
    storedBytes: p.storedBytes,
    codec: p.codec,
    crc: p.crc,
  })), threads);
  if (!r.ok) throw corrupt(id, image.partitions[r.job]!, r.reason === 'decode' ? `does not decode (${image.partitions[r.job]!.codec})` : FILL_WHAT[r.reason]);
  return { bytesRead: r.bytesRead, threads: r.threads };
}

/**
 * Opens the compressed image at `path` and checks every partition's crc32 (streamed through the
 * staging buffer). Returns its table, null when the file is missing. Throws THAW_SNAPSHOT_CORRUPT.
 */
export function verifyCompressedImage(path: string, id: string, memoryPages: number): CompressedImage | null {
  const opened = openCompressedImage(path, id, memoryPages);
  if (opened === null) return null;
  try {
    for (const p of opened.partitions) {
      const buf = stagingOf(p.storedBytes);
      if (readAt(opened.fd, buf, p.dataOffsetBytes) !== p.storedBytes) throw corrupt(id, p, 'file ends early');
      if (crc32(buf) !== p.crc) throw corrupt(id, p, 'checksum mismatch');
    }
    const { fd: _fd, ...table } = opened;
    return table;
  } finally {
    closeSync(opened.fd);
  }
}

/** Largest partition: Sabre's partitions are MiB-sized; 1 MiB keeps each decode in L2-ish range. */
export const PARTITION_BYTES = 1 << 20;

/**
 * Makes sure the compressed image at `path` exists and was built from `key`, building it from the
 * verified image otherwise. `check`: 'all' reads and checks every partition (prepare), 'table'
 * only the table (open: partitions are checked as fill() reads them). Returns the file opened
 * (table checked) and whether it was built. Throws THAW_SNAPSHOT_CORRUPT when the file is present,
 * current and damaged (never rebuilt silently: a corrupt artefact is reported).
 */
export function ensureCompressed(path: string, image: SnapshotImage, fd: number, key: number, runs: readonly PageRun[],
  codec: Codec, level: number, check: 'all' | 'table'): { opened: OpenedCompressedImage; built: boolean } {
  const memoryPages = image.memoryBytes / PAGE_BYTES;
  let built = false;
  // 'all': a damaged file throws here; a missing one is null.
  const current = check === 'all' ? verifyCompressedImage(path, image.id, memoryPages) : undefined;
  let opened = openCompressedImage(path, image.id, memoryPages);
  if (opened !== null && opened.sourceKey !== key >>> 0) {
    closeSync(opened.fd);
    opened = null;
  }
  if (opened === null || current === null) {
    if (opened !== null) closeSync(opened.fd);
    // The copy is checked only piece by piece from now on, so its source must be right first:
    // the image's bytes and the state's page runs, against the chunk checksums.
    verifyImage(image, fd);
    buildCompressedImage(path, image.id, fd, memoryPages, key, runs, { codec, level, partitionBytes: PARTITION_BYTES });
    built = true;
    opened = openCompressedImage(path, image.id, memoryPages);
  }
  if (opened === null) throw new ThawError('THAW_INTERNAL', { detail: `${path} vanished after it was built` });
  return { opened, built };
}
