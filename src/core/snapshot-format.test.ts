import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ThawError } from './errors.js';
import { crc32 } from 'node:zlib';
import { PAGE_BYTES, ZERO_PAGE_CRC, chunkChecksums, pageChecksums, decodeState, encodeState, findPageRuns, type SnapshotState } from './snapshot-format.js';

const meta = {
  id: 'snap-1', kind: 'full' as const, baseId: null, functionName: 'f', runtime: 'wasi', moduleDigest: 'ab'.repeat(32),
  memoryBytes: 16 * PAGE_BYTES, guestState: { globals: { g0: '5' } }, createdAt: '2026-01-01T00:00:00Z', sourceSandboxId: 'sb-1',
};

function sample(): SnapshotState {
  const mem = new Uint8Array(16 * PAGE_BYTES);
  mem[3 * PAGE_BYTES] = 1;
  mem[4 * PAGE_BYTES + 9] = 2;
  mem[10 * PAGE_BYTES] = 3;
  return { meta, runs: findPageRuns(mem), chunkCrcs: chunkChecksums(mem), pageCrcs: pageChecksums(mem) };
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ThawError);
    return err.code;
  }
  assert.fail('expected a ThawError');
}

test('findPageRuns() merges adjacent non-zero pages and skips zero pages', () => {
  assert.deepEqual(sample().runs, [{ firstPage: 3, pageCount: 2 }, { firstPage: 10, pageCount: 1 }]);
});

test('findPageRuns() with a base lists only pages that differ from it', () => {
  const base = new Uint8Array(8 * PAGE_BYTES).fill(7);
  const now = new Uint8Array(10 * PAGE_BYTES).fill(7);
  now[2 * PAGE_BYTES] = 0; // changed to zero: must be listed
  now[8 * PAGE_BYTES + 5] = 0; // beyond the base and partly non-zero
  now.fill(0, 9 * PAGE_BYTES); // beyond the base and all zero: not listed
  assert.deepEqual(findPageRuns(now, base), [{ firstPage: 2, pageCount: 1 }, { firstPage: 8, pageCount: 1 }]);
});

test('encodeState() and decodeState() round-trip', () => {
  const s = sample();
  const back = decodeState('snap-1', encodeState(s));
  assert.deepEqual(back.meta, s.meta);
  assert.deepEqual(back.runs, s.runs);
  assert.deepEqual([...back.chunkCrcs], [...s.chunkCrcs]);
});

test('decodeState() rejects a flipped bit anywhere with THAW_SNAPSHOT_CORRUPT', () => {
  const buf = encodeState(sample());
  for (const at of [0, 13, 30, buf.length - 9, buf.length - 1]) {
    const bad = Buffer.from(buf);
    bad[at]! ^= 0x10;
    assert.equal(codeOf(() => decodeState('snap-1', bad)), 'THAW_SNAPSHOT_CORRUPT', `flip at ${at}`);
  }
});

test('decodeState() rejects truncated files and foreign files', () => {
  const buf = encodeState(sample());
  assert.equal(codeOf(() => decodeState('snap-1', buf.subarray(0, buf.length - 3))), 'THAW_SNAPSHOT_CORRUPT');
  assert.equal(codeOf(() => decodeState('snap-1', buf.subarray(0, 10))), 'THAW_SNAPSHOT_CORRUPT');
  assert.equal(codeOf(() => decodeState('snap-1', Buffer.from('{"not":"a snapshot"}'.padEnd(64)))), 'THAW_SNAPSHOT_CORRUPT');
});

test('decodeState() rejects a newer major format version with THAW_SNAPSHOT_VERSION', () => {
  const buf = encodeState(sample());
  buf.writeUInt16LE(99, 8);
  assert.equal(codeOf(() => decodeState('snap-1', buf)), 'THAW_SNAPSHOT_VERSION');
});

test('decodeState() refuses a format 1 state file (chunk checksums only) with THAW_SNAPSHOT_VERSION naming the format', () => {
  // Format 1 is format 2 without the page count field and the page checksums.
  const s = sample();
  const v2 = encodeState(s);
  const metaLen = v2.readUInt32LE(12);
  const body = v2.subarray(28, 28 + metaLen + s.runs.length * 8 + s.chunkCrcs.length * 4);
  const v1 = Buffer.concat([v2.subarray(0, 24), body, Buffer.alloc(4)]);
  v1.writeUInt16LE(1, 8);
  v1.writeUInt32LE(crc32(v1.subarray(0, v1.length - 4)), v1.length - 4);
  assert.throws(() => decodeState('snap-1', v1), (err: unknown) =>
    err instanceof ThawError && err.code === 'THAW_SNAPSHOT_VERSION' && /format 1\.0 \(chunk checksums only\)/.test(err.message) && /take it again/.test(err.message));
});

test('pageChecksums() gives every page its CRC-32 and every zero page the CRC-32 of zeros', () => {
  const s = sample();
  const mem = new Uint8Array(16 * PAGE_BYTES);
  mem[3 * PAGE_BYTES] = 1;
  assert.equal(s.pageCrcs.length, 16);
  assert.equal(s.pageCrcs[0], ZERO_PAGE_CRC);
  assert.equal(s.pageCrcs[0], crc32(new Uint8Array(PAGE_BYTES)));
  assert.equal(s.pageCrcs[3], crc32(mem.subarray(3 * PAGE_BYTES, 4 * PAGE_BYTES)));
  assert.notEqual(s.pageCrcs[4], ZERO_PAGE_CRC);
});

test('decodeState() refuses a page checksum table of the wrong length', () => {
  const s = sample();
  const buf = encodeState({ ...s, pageCrcs: s.pageCrcs.subarray(0, 15) });
  assert.equal(codeOf(() => decodeState('snap-1', buf)), 'THAW_SNAPSHOT_CORRUPT');
});
