// The conformance suite every restore strategy passes: byte-identical restores of a synthetic
// memory (patterned, zero and random pages) and of a diff chain, memory beyond the snapshot left
// zero, corrupt images refused, reap's record/replay, and faulty fixtures proving failures show.

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { mkdtempSync, openSync, readdirSync, rmSync, writeSync, closeSync, existsSync } from 'node:fs';
import { fork } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { ThawError } from '../../core/errors.js';
import { PAGE_BYTES, runBytes, type SnapshotMeta } from '../../core/snapshot-format.js';
import { readChain, writeSnapshot, MEMORY_FILE } from '../../snapshot/snapshot-io.js';
import { discardArtefacts, getStrategy, listStrategies, registerStrategy } from '../index.js';
import { unregisterStrategy, type OpenedImage, type RestoreStrategy } from '../strategy.js';
import { dramDir } from './dram.js';
import { lossy, throwing, unavailable } from './testdata/faulty-strategies.js';
import { readWorkingSet } from '../working-set.js';
import { FLAT_FILE } from '../snapshot-image.js';

const MIB = 1 << 20;
const SIZE = 8 * MIB;
const PAGES = SIZE / PAGE_BYTES;
const root = mkdtempSync(join(tmpdir(), 'thaw-conformance-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** 8 MiB: a quarter zero pages, patterned and random pages, a long zero run and a long dense run. */
function syntheticMemory(seed: number): Uint8Array {
  const m = new Uint8Array(SIZE);
  const random = randomBytes(SIZE);
  for (let p = 0; p < PAGES; p++) {
    const page = m.subarray(p * PAGE_BYTES, (p + 1) * PAGE_BYTES);
    if (p >= 1024 && p < 1088) continue; // long zero run
    if (p >= 1536 && p < 1664) { page.set(random.subarray(p * PAGE_BYTES, (p + 1) * PAGE_BYTES)); continue; }
    switch (p % 4) {
      case 0: break; // zero page (hole)
      case 1: page.fill((p + seed) % 255 + 1); break;
      case 2: page.set(random.subarray(p * PAGE_BYTES, (p + 1) * PAGE_BYTES)); break;
      default: for (let i = 0; i < PAGE_BYTES; i += 4) new DataView(page.buffer, page.byteOffset).setUint32(i, p * 1_000_003 + i + seed, true);
    }
  }
  return m;
}

function meta(id: string, base: string | null = null): SnapshotMeta {
  return {
    id, kind: base ? 'diff' : 'full', baseId: base, functionName: 'synthetic', runtime: 'wasi', moduleDigest: 'test',
    memoryBytes: SIZE, guestState: null, createdAt: new Date(0).toISOString(), sourceSandboxId: 'test',
  };
}

const fullMemory = syntheticMemory(1);
writeSnapshot(root, meta('full'), fullMemory);
const diffMemory = fullMemory.slice();
for (let p = 0; p < PAGES; p += 97) diffMemory.fill(p & 0xff, p * PAGE_BYTES, p * PAGE_BYTES + 100);
diffMemory.fill(0, 3 * PAGE_BYTES, 4 * PAGE_BYTES - 0); // a present page becomes zero
writeSnapshot(root, meta('diff', 'full'), diffMemory, fullMemory);

/** Restores snapshot `id` with `strategy` into a fresh memory and returns it with its image. */
function restore(strategy: RestoreStrategy, id: string, initialPages = 1): { memory: WebAssembly.Memory; image: OpenedImage } {
  const image = strategy.open(root, readChain(root, id));
  const memory = new WebAssembly.Memory({ initial: initialPages, maximum: 512 });
  image.fill(memory);
  return { memory, image };
}

/** Compares restored memory with the expected bytes page by page (a clear message on the first difference). */
function assertSameMemory(actual: Uint8Array, expected: Uint8Array, what: string): void {
  assert.ok(actual.length >= expected.length, `${what}: memory is ${actual.length} bytes, expected at least ${expected.length}`);
  for (let p = 0; p < expected.length / PAGE_BYTES; p++) {
    const lo = p * PAGE_BYTES;
    if (Buffer.compare(actual.subarray(lo, lo + PAGE_BYTES), expected.subarray(lo, lo + PAGE_BYTES)) !== 0) assert.fail(`${what}: page ${p} differs`);
  }
}

const supported = listStrategies().filter((s) => s.support.ok).map((s) => getStrategy(s.id));

describe('conformance', () => {
  for (const strategy of supported) {
    test(`${strategy.id}: open() + fill() restores a synthetic memory byte for byte`, () => {
      const { memory, image } = restore(strategy, 'full');
      assertSameMemory(new Uint8Array(memory.buffer), fullMemory, strategy.id);
      assert.equal(memory.buffer.byteLength, SIZE);
      image.afterInvoke();
      const stats = image.release();
      assert.equal(stats.strategy, strategy.id);
      assert.ok(stats.fillMs > 0, `fillMs ${stats.fillMs}`);
      if (strategy.id === 'eager') assert.equal(stats.bytesRead, runBytes(readChain(root, 'full')[0]!.runs));
      image.release(); // idempotent
    });

    test(`${strategy.id}: a diff chain restores to the top snapshot's memory`, () => {
      const { memory, image } = restore(strategy, 'diff');
      assertSameMemory(new Uint8Array(memory.buffer), diffMemory, `${strategy.id} (diff)`);
      image.release();
    });

    test(`${strategy.id}: memory already larger than the snapshot reads zero beyond it`, () => {
      const image = strategy.open(root, readChain(root, 'full'));
      const memory = new WebAssembly.Memory({ initial: SIZE / 65536 + 16, maximum: 512 });
      new Uint8Array(memory.buffer).fill(0xee);
      image.fill(memory);
      const bytes = new Uint8Array(memory.buffer);
      assertSameMemory(bytes, fullMemory, strategy.id);
      assert.ok(bytes.subarray(SIZE).every((b) => b === 0), 'bytes past the snapshot are zero');
      image.release();
    });

    test(`${strategy.id}: memory.grow works after a restore`, () => {
      const { memory, image } = restore(strategy, 'full');
      memory.grow(2);
      const bytes = new Uint8Array(memory.buffer);
      assert.equal(bytes[SIZE + 5], 0);
      bytes[SIZE + 5] = 7;
      assert.equal(bytes[SIZE + 5], 7);
      assertSameMemory(bytes, fullMemory, strategy.id);
      image.release();
    });

    test(`${strategy.id}: prepare() is idempotent and refuses a rewritten image`, () => {
      const id = `corrupt-${strategy.id}`;
      writeSnapshot(root, meta(id), fullMemory);
      const chain = readChain(root, id);
      strategy.prepare(root, chain);
      assert.equal(strategy.prepare(root, chain).built, false, 'second prepare finds everything in place');
      // Flip one byte of a present page in the snapshot's own memory file: prepare reads every
      // byte of it (no trust in file metadata), so it refuses (eager: its load does). What each strategy's restore does
      // with such a file is integrity.test.ts's subject.
      const fd = openSync(join(root, id, MEMORY_FILE), 'r+');
      writeSync(fd, Buffer.from([0x5a ^ fullMemory[PAGE_BYTES + 9]!]), 0, 1, PAGE_BYTES + 9);
      closeSync(fd);
      assert.throws(() => {
        strategy.prepare(root, readChain(root, id)); // eager has nothing to prepare: its fill checks
        const image = strategy.open(root, readChain(root, id));
        try {
          image.fill(new WebAssembly.Memory({ initial: 1, maximum: 512 }));
        } finally {
          image.release();
        }
      }, (err: unknown) => err instanceof ThawError && err.code === 'THAW_SNAPSHOT_CORRUPT');
      discardArtefacts(root, id);
    });
  }

  test('reap: the first restore records the pages touched until afterInvoke(); the next replays them', { skip: supported.some((s) => s.id === 'reap') ? false : 'reap unsupported here (userfaultfd refused)' }, () => {
    const reap = getStrategy('reap');
    writeSnapshot(root, meta('reap-ws'), fullMemory);
    const first = restore(reap, 'reap-ws');
    assert.equal(first.image.stats.phase, 'record');
    const bytes = new Uint8Array(first.memory.buffer);
    let sum = 0;
    let expected = 0;
    for (let p = 100; p < 300; p++) { // the "invocation" touches pages 100..299
      sum += bytes[p * PAGE_BYTES + 1]!;
      expected += fullMemory[p * PAGE_BYTES + 1]!;
    }
    assert.equal(sum, expected);
    first.image.afterInvoke();
    assertSameMemory(new Uint8Array(first.memory.buffer), fullMemory, 'reap record (after the server stopped)');
    first.image.release();
    const ws = readWorkingSet(join(root, 'reap-ws'), 'reap-ws', PAGES);
    // A recording server installs (and logs) each checked page alone: the working set is the pages touched.
    assert.deepEqual(ws?.runs, [{ firstPage: 100, pageCount: 200 }]);

    const second = restore(reap, 'reap-ws');
    assert.equal(second.image.stats.phase, 'replay');
    assertSameMemory(new Uint8Array(second.memory.buffer), fullMemory, 'reap replay');
    const stats = second.image.release();
    // The server thread prefetches the working set's 200 pages, less those the guest (this
    // thread, reading memory) faulted on first: those come with their 64 KiB neighbourhood.
    assert.ok(stats.prefetchedPages > 0 && stats.prefetchedPages <= 200, `prefetched ${stats.prefetchedPages} pages`);
  });

  test('a strategy that loses a page is caught by the byte comparison', () => {
    const { memory } = restore(lossy, 'full');
    assert.throws(() => assertSameMemory(new Uint8Array(memory.buffer), fullMemory, 'lossy'), /page \d+ differs/);
  });

  test('a strategy whose fill() fails surfaces the error', () => {
    assert.throws(() => restore(throwing, 'full'), (err: unknown) => err instanceof ThawError && err.code === 'THAW_INTERNAL');
  });

  test('getStrategy() refuses an unsupported strategy with THAW_STRATEGY_UNAVAILABLE instead of falling back', () => {
    registerStrategy(unavailable);
    try {
      assert.throws(() => getStrategy(unavailable.id), (err: unknown) => err instanceof ThawError && err.code === 'THAW_STRATEGY_UNAVAILABLE' && /lacks the feature/.test(err.message));
    } finally {
      unregisterStrategy(unavailable.id);
    }
  });

  test('uffd-based strategies report why when userfaultfd is refused', () => {
    for (const s of listStrategies().filter((x) => x.id === 'uffd' || x.id === 'reap')) {
      if (!s.support.ok) assert.match(s.support.reason, /userfaultfd/);
    }
  });

  test('a host killed while preparing leaves no temporary files once the snapshot is prepared again', async () => {
    writeSnapshot(root, meta('killed-base'), fullMemory);
    writeSnapshot(root, meta('killed', 'killed-base'), diffMemory, fullMemory);
    const script = fileURLToPath(new URL('./testdata/prepare-child.js', import.meta.url));
    for (const strategyId of ['dram', 'vanilla']) {
      const child = fork(script, [root, 'killed', strategyId], { stdio: 'ignore' });
      await new Promise<void>((resolve) => child.once('message', () => resolve()));
      child.kill('SIGKILL');
      await new Promise<void>((resolve) => child.once('exit', () => resolve()));
    }
    const strategy = getStrategy('dram');
    strategy.prepare(root, readChain(root, 'killed'));
    const leftovers = [...readdirSync(join(root, 'killed')), ...readdirSync(dramDir(root))].filter((n) => n.includes('.tmp-'));
    assert.deepEqual(leftovers, []);
    assert.ok(existsSync(join(root, 'killed', FLAT_FILE)));
    const { memory, image } = restore(strategy, 'killed');
    assertSameMemory(new Uint8Array(memory.buffer), diffMemory, 'dram after a killed prepare');
    image.release();
    discardArtefacts(root, 'killed');
  });
});

after(() => {
  for (const id of ['full', 'diff']) discardArtefacts(root, id);
  rmSync(dramDir(root), { recursive: true, force: true });
});
