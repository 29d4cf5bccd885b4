// sabre: partition table round trip, incompressible partitions stored raw, a corrupt compressed
// partition refused with THAW_SNAPSHOT_CORRUPT, the compression ratio reported, other levels by id.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ThawError } from '../../core/errors.js';
import { PAGE_BYTES, type SnapshotMeta } from '../../core/snapshot-format.js';
import { readChain, writeSnapshot } from '../../snapshot/snapshot-io.js';
import { buildCompressedImage, verifyCompressedImage, splitRuns } from '../sabre-image.js';
import { resolveImage } from '../snapshot-image.js';
import { sabre, sabreStrategy, sabreZstd, type SabreStats } from './sabre.js';

const root = mkdtempSync(join(tmpdir(), 'thaw-sabre-'));
after(() => rmSync(root, { recursive: true, force: true }));

const PAGES = 1536; // 6 MiB
function meta(id: string): SnapshotMeta {
  return { id, kind: 'full', baseId: null, functionName: 'synthetic', runtime: 'wasi', moduleDigest: 'test', memoryBytes: PAGES * PAGE_BYTES, guestState: null, createdAt: new Date(0).toISOString(), sourceSandboxId: 'test' };
}

/** Text-like compressible pages, a hole every 7th page, and one 1 MiB run of random bytes (pages 1023..1278, holes around it). */
function memory(): Uint8Array {
  const m = new Uint8Array(PAGES * PAGE_BYTES);
  const words = Buffer.from('restore snapshot partition table compressed lz4 zstd page fault ');
  for (let p = 0; p < PAGES; p++) {
    if (p % 7 === 0) continue;
    for (let i = 0; i < PAGE_BYTES; i += words.length) m.set(words.subarray(0, Math.min(words.length, PAGE_BYTES - i)), p * PAGE_BYTES + i);
    m[p * PAGE_BYTES] = p & 0xff;
  }
  m.set(randomBytes(256 * PAGE_BYTES), 1023 * PAGE_BYTES); // page 1022 is a hole
  m.fill(0, 1279 * PAGE_BYTES, 1280 * PAGE_BYTES);
  return m;
}
const mem = memory();
writeSnapshot(root, meta('s'), mem);

test('splitRuns() cuts runs at the partition size', () => {
  assert.deepEqual(splitRuns([{ firstPage: 3, pageCount: 600 }], 256 * PAGE_BYTES), [
    { firstPage: 3, pageCount: 256 }, { firstPage: 259, pageCount: 256 }, { firstPage: 515, pageCount: 88 },
  ]);
});

test('buildCompressedImage() and verifyCompressedImage() round-trip the partition table; random data is stored raw', () => {
  const r = resolveImage(root, readChain(root, 's'), 'verify');
  try {
    const path = join(root, 'roundtrip.img');
    const built = buildCompressedImage(path, 's', r.fd, PAGES, 0x1234abcd, r.image.runs, { codec: 'zstd', level: 3, partitionBytes: 1 << 20 });
    const loaded = verifyCompressedImage(path, 's', PAGES);
    assert.ok(loaded);
    assert.deepEqual(loaded.partitions, built.partitions);
    assert.equal(loaded.sourceKey, 0x1234abcd);
    assert.equal(loaded.rawBytes, r.image.runs.reduce((n, x) => n + x.pageCount * PAGE_BYTES, 0));
    assert.ok(loaded.partitions.every((p) => p.pageCount * PAGE_BYTES <= 1 << 20));
    const random = loaded.partitions.find((p) => p.firstPage === 1023);
    assert.deepEqual([random?.pageCount, random?.codec], [256, 'raw'], 'the incompressible partition is stored raw');
    assert.ok(loaded.partitions.some((p) => p.codec === 'zstd'));
    assert.equal(verifyCompressedImage(join(root, 'missing.img'), 's', PAGES), null);
    assert.throws(() => verifyCompressedImage(path, 's', PAGES + 1), (err: unknown) => err instanceof ThawError && err.code === 'THAW_SNAPSHOT_CORRUPT');
  } finally {
    closeSync(r.fd);
  }
});

for (const strategy of [sabre, sabreZstd]) {
  test(`${strategy.id}: restores byte for byte and reports its compression ratio`, () => {
    const image = strategy.open(root, readChain(root, 's'));
    const m = new WebAssembly.Memory({ initial: 1, maximum: 512 });
    image.fill(m);
    assert.equal(Buffer.compare(new Uint8Array(m.buffer, 0, mem.length), mem), 0);
    const stats = image.release() as SabreStats;
    assert.ok(stats.compressionRatio > 1.5, `ratio ${stats.compressionRatio}`);
    assert.ok(stats.bytesRead > 0 && stats.bytesRead < stats.decompressedBytes);
    assert.equal(stats.codec, strategy === sabre ? 'lz4' : 'zstd');
  });
}

test('sabre refuses a snapshot whose compressed partition was damaged (THAW_SNAPSHOT_CORRUPT)', () => {
  writeSnapshot(root, meta('bad'), mem);
  sabre.prepare(root, readChain(root, 'bad'));
  const path = join(root, 'bad', 'sabre-lz4-1.img');
  const table = verifyCompressedImage(path, 'bad', PAGES)!;
  const victim = table.partitions.find((p) => p.codec === 'lz4')!;
  const bytes = readFileSync(path);
  bytes[victim.dataOffsetBytes + 5]! ^= 0x40;
  writeFileSync(path, bytes);
  const isCorrupt = (err: unknown): boolean => err instanceof ThawError && err.code === 'THAW_SNAPSHOT_CORRUPT' && /partition at pages/.test(err.message);
  // The table is intact, so open() succeeds; the partition's crc fails as fill() reads it.
  assert.throws(() => {
    const image = sabre.open(root, readChain(root, 'bad'));
    try {
      image.fill(new WebAssembly.Memory({ initial: 1, maximum: 512 }));
    } finally {
      image.release();
    }
  }, isCorrupt);
  assert.throws(() => sabre.prepare(root, readChain(root, 'bad')), isCorrupt, 'prepare checks every partition');
  // A truncated file is refused at open (its table points past the end).
  writeFileSync(path, bytes.subarray(0, bytes.length - 100));
  assert.throws(() => sabre.open(root, readChain(root, 'bad')), (err: unknown) => err instanceof ThawError && err.code === 'THAW_SNAPSHOT_CORRUPT');
});

test('sabreStrategy() names other levels in its id and keeps one artefact per codec and level', () => {
  const z3 = sabreStrategy({ codec: 'zstd', level: 3 });
  assert.equal(z3.id, 'sabre-zstd-3');
  assert.equal(sabreStrategy({ codec: 'lz4', level: 4 }).id, 'sabre-4');
  assert.equal(z3.prepare(root, readChain(root, 's')).built, true);
  assert.equal(z3.prepare(root, readChain(root, 's')).built, false);
  const fd = openSync(join(root, 's', 'sabre-zstd-3.img'), 'r');
  closeSync(fd);
});
