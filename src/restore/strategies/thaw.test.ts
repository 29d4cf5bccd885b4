// thaw: load blocks from a working set, and replay byte identity with the pool, without it, and
// with a working set that leaves most blocks mapped from the file.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { ThawError } from '../../core/errors.js';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PAGE_BYTES, type SnapshotMeta } from '../../core/snapshot-format.js';
import { readChain, writeSnapshot } from '../../snapshot/snapshot-io.js';
import { pageFaultCounts, poolAvailable, poolRelease } from '../../native/index.js';
import { writeWorkingSet } from '../working-set.js';
import { loadPlan, presentBlocks, thaw as wholeThaw, thawStrategy } from './thaw.js';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

// These images are small: with the default limit they would be loaded whole; the working-set
// path is tested with the limit at 0 and the whole-image path with `wholeThaw`.
const thaw = thawStrategy({ loadAllBytes: 0 });

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

function restoreAndCompare(id: string, expected: Uint8Array, strategy = thaw): ReturnType<ReturnType<typeof thaw.open>['release']> {
  const image = strategy.open(root, readChain(root, id));
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

test('loadPlan() loads blocks with 1/4 of their pages or 48 runs in the working set whole, and merges the other runs', () => {
  assert.deepEqual(loadPlan(SIZE, null), { dense: [{ offsetBytes: 0, lengthBytes: SIZE }], sparse: [] });
  const plan = loadPlan(SIZE, {
    memoryPages: PAGES,
    runs: [
      { firstPage: 1, pageCount: 1 }, { firstPage: 5, pageCount: 2 }, { firstPage: 40, pageCount: 1 }, // sparse, block 0
      { firstPage: 600, pageCount: 128 }, // 1/4 of block 1: dense
      { firstPage: 1100, pageCount: 8 }, { firstPage: 1530, pageCount: 10 }, // 8 + 6 pages of block 2, 4 of block 3
      ...Array.from({ length: 48 }, (_, i) => ({ firstPage: 2560 + 10 * i, pageCount: 1 })), // 48 runs in block 5: dense
      { firstPage: PAGES - 4, pageCount: 4 }, // 1/4 of the last, partial block (16 pages): dense
    ],
  });
  assert.deepEqual(plan.dense, [
    { offsetBytes: 2 * MiB, lengthBytes: 2 * MiB },
    { offsetBytes: 10 * MiB, lengthBytes: 2 * MiB },
    { offsetBytes: 16 * MiB, lengthBytes: 64 * 1024 },
  ]);
  assert.deepEqual(plan.sparse, [
    { offsetBytes: 1 * PAGE_BYTES, lengthBytes: 6 * PAGE_BYTES }, // pages 1 and 5-6 merged (gap < 8)
    { offsetBytes: 40 * PAGE_BYTES, lengthBytes: PAGE_BYTES },
    { offsetBytes: 1100 * PAGE_BYTES, lengthBytes: 8 * PAGE_BYTES },
    { offsetBytes: 1530 * PAGE_BYTES, lengthBytes: 10 * PAGE_BYTES }, // across the block 2/3 boundary
  ]);
});

test('thaw replays a working set byte-identically from pooled memory and the file mapping, with no faults on loaded blocks', () => {
  const bytes = memory();
  snapshot('ws', bytes);
  writeWorkingSet(join(root, 'ws'), { memoryPages: PAGES, runs: [{ firstPage: 10, pageCount: 300 }, { firstPage: 2048, pageCount: 12 }] });
  thaw.preallocate?.(SIZE);
  const pool = poolAvailable();
  assert.ok(pool >= SIZE);
  const image = thaw.open(root, readChain(root, 'ws'));
  const mem = new WebAssembly.Memory({ initial: 1, maximum: 1024 });
  image.fill(mem);
  assert.equal(image.stats.phase, 'replay');
  // The dense block took pool memory; the rest of the pool is given back (it would only weigh on
  // the host's memory limit while the guest grows).
  assert.equal(poolAvailable(), 0, 'the unused pool is released after fill()');
  const view = new Uint8Array(mem.buffer);
  // Fault counts are the process's: collect the garbage of the snapshot writes first, so that the
  // collector's own first touches of heap pages are not counted as the guest's.
  collectGarbage();
  const f0 = pageFaultCounts();
  for (let at = 0; at < 2 * MiB; at += PAGE_BYTES) view[at + 1] = view[at]! ^ bytes[at]!; // writes zeros where equal
  const f1 = pageFaultCounts();
  assert.ok(f1.minor - f0.minor < 32, `a loaded block faulted ${f1.minor - f0.minor} times`);
  const f2 = pageFaultCounts();
  for (let at = 2048 * PAGE_BYTES; at < 2060 * PAGE_BYTES; at += PAGE_BYTES) view[at + 1] = view[at + 1]!;
  assert.ok(pageFaultCounts().minor - f2.minor < 10, 'populated sparse pages do not fault on write');
  for (let at = 0; at < 2 * MiB; at += PAGE_BYTES) view[at + 1] = bytes[at + 1]!;
  assert.equal(Buffer.compare(view.subarray(0, SIZE), bytes), 0);
  assert.ok(image.stats.bytesRead < SIZE / 4, 'blocks outside the working set are not read eagerly');
  image.release();
  // The sparse run came from the compressed loading set; a damaged one is refused, not rebuilt.
  const sparseFile = join(root, 'ws', 'thaw-sparse-lz4-1.img');
  assert.ok(existsSync(sparseFile));
  const bytesOnDisk = readFileSync(sparseFile);
  bytesOnDisk[bytesOnDisk.length - 1]! ^= 0xff;
  writeFileSync(sparseFile, bytesOnDisk);
  const damaged = thaw.open(root, readChain(root, 'ws'));
  assert.throws(() => damaged.fill(new WebAssembly.Memory({ initial: 1, maximum: 1024 })), (err: unknown) => err instanceof ThawError && err.code === 'THAW_SNAPSHOT_CORRUPT');
  damaged.release();
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

test('presentBlocks() covers every 2 MiB block holding a present page, merged, clamped to the memory', () => {
  const pages = (mib: number): number => (mib * MiB) / PAGE_BYTES;
  assert.deepEqual(presentBlocks(SIZE, [{ firstPage: 1, pageCount: 1 }, { firstPage: pages(2) + 5, pageCount: 3 }, { firstPage: pages(16), pageCount: 16 }]), [
    { offsetBytes: 0, lengthBytes: 4 * MiB },
    { offsetBytes: 16 * MiB, lengthBytes: SIZE - 16 * MiB },
  ]);
});

test('an image under the whole-image limit is loaded whole at its first restore: no recording, holes zero, the pool given back', () => {
  const bytes = memory();
  bytes.fill(0, 4 * MiB, 8 * MiB); // two blocks of holes: anonymous zero memory
  snapshot('whole', bytes);
  wholeThaw.preallocate?.(SIZE);
  const stats = restoreAndCompare('whole', bytes, wholeThaw);
  assert.equal(stats.phase, null, 'nothing recorded');
  assert.equal(stats.uffdFaults, 0);
  assert.ok(stats.bytesRead >= (SIZE * 2) / 3 - 4 * MiB, `read ${stats.bytesRead} bytes: every present page`);
  assert.equal(poolAvailable(), 0);
});
