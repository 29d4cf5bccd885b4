// What a page server serves from: a Firecracker snapshot memory file (flat guest memory, no
// checksums) or a Thaw snapshot directory (its memory image, flattened for a diff chain, with
// the state file's checksums). What the page server needs of Thaw's snapshot format is in
// thawChecksums(): format 2's per-page CRC-32s, so a fault checks only the page it serves.

import { closeSync, existsSync, fstatSync, openSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { PAGE_BYTES, type SnapshotState } from '../core/snapshot-format.js';
import { ThawError } from '../core/errors.js';
import type { FillJob } from '../native/index.js';
import { ensureCompressed, sourceKey } from '../restore/sabre-image.js';
import { resolveImage, type SnapshotImage } from '../restore/snapshot-image.js';
import { readChain, STATE_FILE } from '../snapshot/snapshot-io.js';

/** Checksums over the memory file: crcs[i] is the CRC-32 of bytes [i*pieceBytes, (i+1)*pieceBytes). */
export interface PieceChecksums {
  readonly crcs: Uint32Array;
  readonly pieceBytes: number;
}

export interface MemorySource {
  readonly kind: 'firecracker-memory-file' | 'thaw-snapshot';
  /** The file served from (memory.img, flat.img or the Firecracker memory file). */
  readonly path: string;
  /** Open read-only fd of path; close() closes it. */
  readonly fd: number;
  readonly bytes: number;
  /** null: the bytes served are unchecked (Firecracker's memory files carry no checksums). */
  readonly checksums: PieceChecksums | null;
  /** The snapshot directory (Thaw) or the memory file (Firecracker): working sets are kept beside it. */
  readonly home: string;
  /** Thaw snapshots: the image (for the artefacts strategies build from it). */
  readonly image: SnapshotImage | null;
  close(): void;
}

/** A Sabre compressed image of a Thaw snapshot: stored partitions to decode on faults. */
export interface Partitions {
  readonly fd: number;
  readonly memoryBytes: number;
  readonly jobs: readonly FillJob[];
  close(): void;
}

/**
 * The lz4 compressed image the sabre strategy uses (sabre-lz4-1.img beside the snapshot), built
 * once if missing (from the verified image), its table checked; partitions are checked as they
 * are served. Throws THAW_STRATEGY_UNAVAILABLE for a Firecracker memory file, THAW_SNAPSHOT_CORRUPT.
 */
export function openPartitions(source: MemorySource): Partitions {
  const image = source.image;
  if (!image) throw new ThawError('THAW_STRATEGY_UNAVAILABLE', { strategy: 'sabre', reason: 'compressed partitions are built from a Thaw snapshot: a Firecracker memory file has none' });
  const { opened } = ensureCompressed(join(image.dir, 'sabre-lz4-1.img'), image, source.fd, sourceKey(image.state), image.runs, 'lz4', 1, 'table');
  const jobs = opened.partitions.map((p): FillJob => ({
    targetOffsetBytes: p.firstPage * PAGE_BYTES, lengthBytes: p.pageCount * PAGE_BYTES,
    fileOffsetBytes: p.dataOffsetBytes, storedBytes: p.storedBytes, codec: p.codec, crc: p.crc,
  }));
  return { fd: opened.fd, memoryBytes: image.memoryBytes, jobs, close: () => closeSync(opened.fd) };
}

/** The checksums of a Thaw snapshot as restored memory (the one place that reads the format). */
export function thawChecksums(state: SnapshotState): PieceChecksums {
  return { crcs: state.pageCrcs, pieceBytes: PAGE_BYTES };
}

/**
 * Opens `path`: a directory holding a Thaw snapshot (state.thaw), else a Firecracker memory file.
 * `expectSha256`: the sha256 of each state file of the chain by id, as the daemon's seals
 * verified them (a Thaw snapshot's state files must be those very bytes).
 * Throws THAW_SNAPSHOT_NOT_FOUND, THAW_SNAPSHOT_CORRUPT.
 */
export function openMemorySource(path: string, expectSha256?: Readonly<Record<string, string>>): MemorySource {
  if (!existsSync(path)) throw new ThawError('THAW_SNAPSHOT_NOT_FOUND', { id: path });
  if (statSync(path).isDirectory()) {
    if (!existsSync(join(path, STATE_FILE))) throw new ThawError('THAW_SNAPSHOT_NOT_FOUND', { id: `${path} (no ${STATE_FILE}: not a Thaw snapshot)` });
    const root = dirname(path);
    const chain = readChain(root, basename(path), expectSha256);
    const { image, fd } = resolveImage(root, chain, 'open');
    return { kind: 'thaw-snapshot', path: image.path, fd, bytes: image.memoryBytes, checksums: thawChecksums(image.state), home: path, image, close: () => closeSync(fd) };
  }
  const fd = openSync(path, 'r');
  return { kind: 'firecracker-memory-file', path, fd, bytes: fstatSync(fd).size, checksums: null, home: path, image: null, close: () => closeSync(fd) };
}
