// Tests of the lz4/zstd codecs: round trips and decoding straight into a Wasm memory range.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ThawError } from '../core/errors.js';
import { patternBytes } from './_test-helpers.js';
import { compress, decompressInto, decompressIntoAsync, type Codec } from './index.js';

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

  test(`decompressIntoAsync('${codec}') decodes on the threadpool into place`, async () => {
    const source = heapLike();
    const target = new ArrayBuffer(source.length + 8192);
    await decompressIntoAsync(codec, compress(codec, source), target, 4096, source.length);
    assert.deepEqual(new Uint8Array(target, 4096, source.length), source);
  });

  test(`decompressInto('${codec}') rejects corrupt input and a wrong length with THAW_INTERNAL`, async () => {
    const source = heapLike();
    const packed = compress(codec, source);
    const target = new ArrayBuffer(source.length * 2);
    const corrupt = packed.slice(0, packed.length >> 1);
    const internal = (err: unknown) => err instanceof ThawError && err.code === 'THAW_INTERNAL' &&
      ['EBADMSG', 'ENOSPC'].includes(String((err.cause as { code?: string }).code));
    assert.throws(() => decompressInto(codec, corrupt, target, 0, source.length), internal);
    assert.throws(() => decompressInto(codec, packed, target, 0, source.length + 4096), internal);
    assert.throws(() => decompressInto(codec, packed, target, 0, source.length - 4096), internal);
    await assert.rejects(decompressIntoAsync(codec, corrupt, target, 0, source.length), internal);
  });
}

test('compress() handles empty input', () => {
  for (const codec of ['lz4', 'zstd'] as const) {
    const packed = compress(codec, new Uint8Array(0));
    decompressInto(codec, packed, new ArrayBuffer(0), 0, 0);
  }
});
