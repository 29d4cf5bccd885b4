// Property tests of the compressed image decoder (sabre, sabre-reap, and thaw's sparse loading set,
// which uses the same file format): openCompressedImage() on mutated files (table checksum
// recomputed or not) either refuses with THAW_SNAPSHOT_CORRUPT or returns a table whose every
// partition lies inside guest memory and the file; fillPartitions() and verifyCompressedImage()
// then refuse damaged partition data with THAW_SNAPSHOT_CORRUPT.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { PAGE_BYTES } from '../core/snapshot-format.js';
import { ThawError } from '../core/errors.js';
import { buildCompressedImage, fillPartitions, openCompressedImage, verifyCompressedImage, type CompressedImage } from './sabre-image.js';
import { runsArb } from '../test/fuzz/_arbitraries.js';
import { check, decodes, mutate, mutationPlanArb } from '../test/fuzz/_fuzz.js';

const HEADER_BYTES = 24;
const ENTRY_BYTES = 28;
const MEMORY_PAGES = 64;

/**
 * Recomputes every partition's checksum and the table checksum where the (possibly mutated)
 * header says they are, so mutated partition data reaches the native lz4/zstd decoders.
 */
function fixChecksums(buf: Buffer): void {
  if (buf.length < HEADER_BYTES) return;
  const count = buf.readUInt32LE(16);
  const end = HEADER_BYTES + count * ENTRY_BYTES + 4;
  if (end > buf.length) return;
  for (let i = 0; i < count; i++) {
    const o = HEADER_BYTES + i * ENTRY_BYTES;
    const at = buf.readDoubleLE(o + 8);
    const stored = buf.readUInt32LE(o + 16);
    if (Number.isSafeInteger(at) && at >= 0 && at + stored <= buf.length) buf.writeUInt32LE(crc32(buf.subarray(at, at + stored)), o + 24);
  }
  buf.writeUInt32LE(crc32(buf.subarray(0, end - 4)), end - 4);
}

/** What fillPartitions (native reads and decodes at these offsets) relies on. */
function assertUsable(img: CompressedImage, fileBytes: number): void {
  let prevEnd = 0;
  for (const p of img.partitions) {
    assert.ok(p.pageCount > 0 && p.firstPage >= prevEnd && p.firstPage + p.pageCount <= img.memoryPages, 'partitions ascending, inside memory');
    assert.ok(Number.isSafeInteger(p.dataOffsetBytes) && p.dataOffsetBytes >= 0, `data offset ${p.dataOffsetBytes} is a byte offset`);
    assert.ok(p.dataOffsetBytes + p.storedBytes <= fileBytes, 'data inside the file');
    prevEnd = p.firstPage + p.pageCount;
  }
}

/** Builds a few valid images (lz4, zstd, with raw partitions from random pages) to mutate. */
function buildSeeds(dir: string): Buffer[] {
  const memory = Buffer.alloc(MEMORY_PAGES * PAGE_BYTES);
  const pattern = fc.sample(fc.uint8Array({ minLength: MEMORY_PAGES, maxLength: MEMORY_PAGES }), { seed: 5, numRuns: 1 })[0]!;
  for (let p = 0; p < MEMORY_PAGES; p++) {
    // Even pages compress (one repeated byte), odd pages are noise (stored raw).
    const page = memory.subarray(p * PAGE_BYTES, (p + 1) * PAGE_BYTES);
    if (p % 2 === 0) page.fill(pattern[p]!);
    else for (let i = 0; i < PAGE_BYTES; i++) page[i] = (crc32(Buffer.of(p, i & 0xff, i >> 8)) & 0xff);
  }
  const imagePath = join(dir, 'memory.img');
  writeFileSync(imagePath, memory);
  const fd = openSync(imagePath, 'r');
  try {
    return fc.sample(fc.tuple(runsArb(MEMORY_PAGES), fc.constantFrom('lz4' as const, 'zstd' as const), fc.integer({ min: 1, max: 4 })), { seed: 9, numRuns: 12 })
      .map(([runs, codec, partPages], i) => {
        const path = join(dir, `seed-${i}.img`);
        buildCompressedImage(path, 'x', fd, MEMORY_PAGES, 42, runs, { codec, level: 1, partitionBytes: partPages * PAGE_BYTES });
        return readFileSync(path);
      });
  } finally {
    closeSync(fd);
  }
}

test('openCompressedImage() refuses mutated images with THAW_SNAPSHOT_CORRUPT or returns a table fillPartitions() can use', () => {
  const dir = mkdtempSync(join(tmpdir(), 'thaw-fuzz-sabre-'));
  try {
    const seeds = buildSeeds(dir);
    const path = join(dir, 'fuzzed.img');
    const target = new ArrayBuffer(MEMORY_PAGES * PAGE_BYTES);
    check('sabre-mutate', 1500, mutationPlanArb, (plan) => {
      const buf = mutate(seeds, plan.mutations, plan.seed);
      if (plan.fixChecksums) fixChecksums(buf);
      writeFileSync(path, buf);
      // Staging and scratch memory are bounded by the file (a partition's stored bytes lie inside it).
      const limit = 4 * buf.length + (1 << 16);
      const r = decodes(['THAW_SNAPSHOT_CORRUPT'], limit, () => openCompressedImage(path, 'x', MEMORY_PAGES));
      if (!r.ok || r.value === null) return;
      const opened = r.value;
      try {
        assertUsable(opened, buf.length);
        decodes(['THAW_SNAPSHOT_CORRUPT'], limit, () => fillPartitions('x', opened, target, 2));
      } finally {
        closeSync(opened.fd);
      }
      decodes(['THAW_SNAPSHOT_CORRUPT'], limit, () => verifyCompressedImage(path, 'x', MEMORY_PAGES));
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('openCompressedImage() refuses a partition table with a huge partition count without allocating it', () => {
  // Minimal counterexample found by the fuzzer: count 0xffffffff made the table buffer ~120 GB (RangeError).
  const dir = mkdtempSync(join(tmpdir(), 'thaw-fuzz-sabre-'));
  try {
    const buf = Buffer.alloc(HEADER_BYTES + 4);
    buf.write('THAWSABR', 0, 'latin1');
    buf.writeUInt32LE(1, 8);
    buf.writeUInt32LE(MEMORY_PAGES, 12);
    buf.writeUInt32LE(0xffff_ffff, 16);
    writeFileSync(join(dir, 'x.img'), buf);
    assert.throws(() => openCompressedImage(join(dir, 'x.img'), 'x', MEMORY_PAGES), (err: unknown) => err instanceof ThawError && err.code === 'THAW_SNAPSHOT_CORRUPT');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('openCompressedImage() refuses a partition whose data offset is not a whole byte offset', () => {
  // Minimal counterexample found by the fuzzer: a NaN f64 offset passed both range comparisons
  // and reached the native reads; a fractional one too.
  const dir = mkdtempSync(join(tmpdir(), 'thaw-fuzz-sabre-'));
  try {
    for (const offset of [NaN, 52.5]) {
      const tableEnd = HEADER_BYTES + ENTRY_BYTES + 4;
      const buf = Buffer.alloc(tableEnd + PAGE_BYTES);
      buf.write('THAWSABR', 0, 'latin1');
      buf.writeUInt32LE(1, 8);
      buf.writeUInt32LE(MEMORY_PAGES, 12);
      buf.writeUInt32LE(1, 16);
      buf.writeUInt32LE(0, HEADER_BYTES); // first page
      buf.writeUInt32LE(1, HEADER_BYTES + 4); // page count
      buf.writeDoubleLE(offset, HEADER_BYTES + 8);
      buf.writeUInt32LE(PAGE_BYTES, HEADER_BYTES + 16); // stored bytes (raw)
      buf.writeUInt32LE(crc32(buf.subarray(0, tableEnd - 4)), tableEnd - 4);
      writeFileSync(join(dir, 'x.img'), buf);
      assert.throws(() => openCompressedImage(join(dir, 'x.img'), 'x', MEMORY_PAGES), (err: unknown) => err instanceof ThawError && err.code === 'THAW_SNAPSHOT_CORRUPT', `offset ${offset}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
