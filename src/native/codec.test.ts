// Tests of the lz4/zstd codecs: round trips and decoding straight into a Wasm memory range.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ThawError } from '../core/errors.js';
import { patternBytes } from './_test-helpers.js';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { compress, decompressInto, fillFromFile, type Codec, type FillJob } from './index.js';

/** A heap-like image: zero pages, repeated text and random bytes. */
function heapLike(): Uint8Array {
  const out = new Uint8Array(256 * 1024);
  const text = new TextEncoder().encode('def handler(event, context): return {"status": 200}\n'.repeat(400));
  out.set(text.subarray(0, 64 * 1024), 64 * 1024);
  out.set(patternBytes(32 * 1024, 3), 160 * 1024);
  return out;
}

for (const codec of ['lz4', 'zstd'] as const satisfies readonly Codec[]) {
  test(`compress('${codec}') round trips through decompressInto() into a Wasm memory at an offset`, () => {
    const source = heapLike();
    const packed = compress(codec, source, codec === 'zstd' ? 3 : 1);
    assert.ok(packed.length < source.length / 2, `${codec} compresses a heap-like image`);
    const memory = new WebAssembly.Memory({ initial: 8 });
    decompressInto(codec, packed, memory.buffer, 65536, source.length);
    assert.deepEqual(new Uint8Array(memory.buffer, 65536, source.length), source);
    assert.equal(new Uint8Array(memory.buffer)[65535], 0);
  });

  test(`decompressInto('${codec}') rejects corrupt input and a wrong length with THAW_INTERNAL`, () => {
    const source = heapLike();
    const packed = compress(codec, source);
    const target = new ArrayBuffer(source.length * 2);
    const corrupt = packed.slice(0, packed.length >> 1);
    const internal = (err: unknown) => err instanceof ThawError && err.code === 'THAW_INTERNAL' &&
      ['EBADMSG', 'ENOSPC'].includes(String((err.cause as { code?: string }).code));
    assert.throws(() => decompressInto(codec, corrupt, target, 0, source.length), internal);
    assert.throws(() => decompressInto(codec, packed, target, 0, source.length + 4096), internal);
    assert.throws(() => decompressInto(codec, packed, target, 0, source.length - 4096), internal);
  });
}

test('compress() handles empty input', () => {
  for (const codec of ['lz4', 'zstd'] as const) {
    const packed = compress(codec, new Uint8Array(0));
    decompressInto(codec, packed, new ArrayBuffer(0), 0, 0);
  }
});

/** A file of stored pieces (raw, lz4, zstd, in turn) of a heap-like image, and the jobs that rebuild it. */
function piecesFile(pieces: number): { path: string; dir: string; image: Uint8Array; jobs: FillJob[] } {
  const piece = heapLike();
  const image = new Uint8Array(piece.length * pieces);
  const stored: Uint8Array[] = [];
  const jobs: FillJob[] = [];
  let at = 64;
  for (let i = 0; i < pieces; i++) {
    const raw = piece.map((b, k) => (k % 4096 === 0 ? i : b));
    image.set(raw, i * piece.length);
    const codec = (['raw', 'lz4', 'zstd'] as const)[i % 3]!;
    const bytes = codec === 'raw' ? raw : compress(codec, raw);
    jobs.push({ targetOffsetBytes: i * piece.length, lengthBytes: piece.length, fileOffsetBytes: at, storedBytes: bytes.length, codec, crc: crc32(bytes) });
    stored.push(bytes);
    at += bytes.length;
  }
  const dir = mkdtempSync(join(tmpdir(), 'thaw-fill-'));
  const path = join(dir, 'pieces');
  writeFileSync(path, Buffer.concat([Buffer.alloc(64), ...stored]));
  return { path, dir, image, jobs };
}

for (const threads of [1, 2, 4]) {
  test(`fillFromFile() on ${threads} thread(s) puts raw, lz4 and zstd pieces in place, checking each crc32`, () => {
    const f = piecesFile(12);
    const fd = openSync(f.path, 'r');
    try {
      const memory = new WebAssembly.Memory({ initial: f.image.length / 65536 + 1 });
      // Jobs in any order fill the same bytes.
      const r = fillFromFile(fd, memory.buffer, [...f.jobs].reverse(), threads);
      assert.equal(r.ok, true);
      assert.ok(r.ok && r.threads >= 1 && r.threads <= threads);
      assert.ok(r.ok && r.bytesRead === f.jobs.reduce((n, j) => n + j.storedBytes, 0));
      assert.deepEqual(new Uint8Array(memory.buffer, 0, f.image.length), f.image);
      assert.equal(new Uint8Array(memory.buffer)[f.image.length], 0, 'nothing written past the last piece');
    } finally {
      closeSync(fd);
      rmSync(f.dir, { recursive: true });
    }
  });
}

test('fillFromFile() names the first failing job: checksum, short file, undecodable piece', () => {
  const f = piecesFile(6);
  const fd = openSync(f.path, 'r');
  try {
    const target = new ArrayBuffer(f.image.length);
    const bad = (i: number, change: Partial<FillJob>) => f.jobs.map((j, k) => (k === i ? { ...j, ...change } : j));
    assert.deepEqual(fillFromFile(fd, target, bad(4, { crc: (f.jobs[4]!.crc! + 1) >>> 0 }), 2), { ok: false, job: 4, reason: 'crc' });
    assert.deepEqual(fillFromFile(fd, target, bad(2, { fileOffsetBytes: 1 << 30 }), 2), { ok: false, job: 2, reason: 'short' });
    // Unchecked and shifted by one byte: the decoder sees garbage.
    assert.deepEqual(fillFromFile(fd, target, bad(1, { crc: undefined, fileOffsetBytes: f.jobs[1]!.fileOffsetBytes + 1 }), 1),
      { ok: false, job: 1, reason: 'decode' });
    // A target range outside the buffer is a programming error.
    assert.throws(() => fillFromFile(fd, target, bad(0, { targetOffsetBytes: f.image.length }), 1),
      (err: unknown) => err instanceof ThawError && err.code === 'THAW_INTERNAL' && /outside the buffer/.test(err.message));
  } finally {
    closeSync(fd);
    rmSync(f.dir, { recursive: true });
  }
});
