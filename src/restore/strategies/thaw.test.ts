// thaw: load blocks from a working set, and replay byte identity with the pool, without it, and
// with a working set that leaves most blocks mapped from the file.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PAGE_BYTES, type SnapshotMeta } from '../../core/snapshot-format.js';
import { readChain, writeSnapshot } from '../../snapshot/snapshot-io.js';
import { pageFaultCounts, poolAvailable, poolRelease } from '../../native/index.js';
import { writeWorkingSet } from '../working-set.js';
import { loadRuns, thaw } from './thaw.js';

const MiB = 1 << 20;
const SIZE = 16 * MiB + 64 * 1024; // not a 2 MiB multiple: the last block is partial
const PAGES = SIZE / PAGE_BYTES;
const root = mkdtempSync(join(tmpdir(), 'thaw-thaw-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
  poolRelease();
});

function memory(): Uint8Array {
  const m = new Uint8Array(SIZE);
  const random = randomBytes(SIZE);
  for (let p = 0; p < PAGES; p++) if (p % 3 !== 0) m.set(random.subarray(p * PAGE_BYTES, (p + 1) * PAGE_BYTES), p * PAGE_BYTES);
  return m;
}

function snapshot(id: string, bytes: Uint8Array): void {
  const meta: SnapshotMeta = {
    id, kind: 'full', baseId: null, functionName: 'thaw-test', runtime: 'wasi', moduleDigest: 'test',
    memoryBytes: SIZE, guestState: null, createdAt: new Date(0).toISOString(), sourceSandboxId: 'test',
  };
  writeSnapshot(root, meta, bytes);
}

function restoreAndCompare(id: string, expected: Uint8Array): ReturnType<ReturnType<typeof thaw.open>['release']> {
  const image = thaw.open(root, readChain(root, id));
  const mem = new WebAssembly.Memory({ initial: 1, maximum: 1024 });
  image.fill(mem);
  const got = new Uint8Array(mem.buffer);
  assert.equal(got.length, SIZE);
  for (let p = 0; p < PAGES; p++) {
    if (Buffer.compare(got.subarray(p * PAGE_BYTES, (p + 1) * PAGE_BYTES), expected.subarray(p * PAGE_BYTES, (p + 1) * PAGE_BYTES)) !== 0) {
      assert.fail(`${id}: page ${p} differs`);
    }
  }
  image.afterInvoke();
  return image.release();
}

test('loadRuns() covers each working-set page with its 2 MiB block, merges neighbours and clamps to the memory', () => {
  assert.deepEqual(loadRuns(SIZE, null), [{ offsetBytes: 0, lengthBytes: SIZE }]);
  const runs = loadRuns(SIZE, { memoryPages: PAGES, runs: [{ firstPage: 1, pageCount: 1 }, { firstPage: 600, pageCount: 10 }, { firstPage: PAGES - 1, pageCount: 1 }] });
  assert.deepEqual(runs, [
    { offsetBytes: 0, lengthBytes: 4 * MiB }, // pages 1 and 600 lie in blocks 0 and 1
    { offsetBytes: 16 * MiB, lengthBytes: 64 * 1024 },
  ]);
});

test('thaw replays a working set byte-identically from pooled memory and the file mapping, with no faults on loaded blocks', () => {
  const bytes = memory();
  snapshot('ws', bytes);
  writeWorkingSet(join(root, 'ws'), { memoryPages: PAGES, runs: [{ firstPage: 10, pageCount: 5 }, { firstPage: 2048, pageCount: 100 }] });
  thaw.preallocate?.(SIZE);
  const pool = poolAvailable();
  assert.ok(pool >= SIZE);
  const image = thaw.open(root, readChain(root, 'ws'));
  const mem = new WebAssembly.Memory({ initial: 1, maximum: 1024 });
  image.fill(mem);
  assert.equal(image.stats.phase, 'replay');
  assert.ok(poolAvailable() <= pool - 4 * MiB, 'the two loaded blocks came from the pool');
  const view = new Uint8Array(mem.buffer);
  const f0 = pageFaultCounts();
  for (let at = 0; at < 2 * MiB; at += PAGE_BYTES) view[at + 1] = view[at]! ^ bytes[at]!; // writes zeros where equal
  const f1 = pageFaultCounts();
  assert.ok(f1.minor - f0.minor < 32, `a loaded block faulted ${f1.minor - f0.minor} times`);
  for (let at = 0; at < 2 * MiB; at += PAGE_BYTES) view[at + 1] = bytes[at + 1]!;
  assert.equal(Buffer.compare(view.subarray(0, SIZE), bytes), 0);
  assert.ok(image.stats.bytesRead < SIZE / 2, 'blocks outside the working set are not read eagerly');
  image.release();
});

test('thaw replays byte-identically without a pool, and loads everything when the working set is absent', () => {
  poolRelease();
  const bytes = memory();
  snapshot('nopool', bytes);
  writeWorkingSet(join(root, 'nopool'), { memoryPages: PAGES, runs: [{ firstPage: 0, pageCount: PAGES }] });
  assert.equal(restoreAndCompare('nopool', bytes).phase, 'replay');
  const second = memory();
  snapshot('record', second);
  const first = restoreAndCompare('record', second); // records where userfaultfd is allowed
  assert.ok(first.phase === 'record' || first.phase === null);
  assert.notEqual(restoreAndCompare('record', second).phase, 'record');
});
