// faasnap: loading-set construction (layer order, interval and size thresholds, non-zero
// regions), and a record -> replay cycle on a synthetic snapshot with a damaged loading set refused.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync, fstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ThawError } from '../../core/errors.js';
import { PAGE_BYTES, type SnapshotMeta } from '../../core/snapshot-format.js';
import { readChain, writeSnapshot } from '../../snapshot/snapshot-io.js';
import { UNSEEN, buildLoadingSet, loadingSetPath, nonZeroRegions, openLoadingSet } from '../faasnap-loading-set.js';
import { faasnap, faasnapStrategy, type FaasnapStats } from './faasnap.js';

const root = mkdtempSync(join(tmpdir(), 'thaw-faasnap-'));
after(() => rmSync(root, { recursive: true, force: true }));

const PAGES = 2048;

function layersOf(entries: [page: number, layer: number][]): Uint16Array {
  const l = new Uint16Array(PAGES).fill(UNSEEN);
  for (const [p, layer] of entries) l[p] = layer;
  return l;
}

test('buildLoadingSet() orders regions by layer, then page, and keeps only non-zero pages', () => {
  const layers = layersOf([[500, 0], [501, 0], [10, 1], [11, 1], [900, 0], [20, 2], [30, 1]]);
  const regions = buildLoadingSet(layers, [{ firstPage: 0, pageCount: 1000 }], { layerPages: 1024, intervalThresholdPages: 1, sizeThresholdPages: 1 });
  assert.deepEqual(regions, [
    { firstPage: 500, pageCount: 2, layer: 0 },
    { firstPage: 900, pageCount: 1, layer: 0 },
    { firstPage: 10, pageCount: 2, layer: 1 },
    { firstPage: 30, pageCount: 1, layer: 1 },
    { firstPage: 20, pageCount: 1, layer: 2 },
  ]);
  // Page 900 is a hole in this image: it leaves the loading set.
  const holes = buildLoadingSet(layers, [{ firstPage: 0, pageCount: 600 }], { layerPages: 1024, intervalThresholdPages: 1, sizeThresholdPages: 1 });
  assert.ok(!holes.some((r) => r.firstPage === 900));
});

test('buildLoadingSet() merges gaps below the interval threshold within a layer, never across another layer, and drops small regions', () => {
  const layers = layersOf([[100, 0], [104, 0], [110, 0], [111, 0], [112, 0], [200, 0], [202, 1], [204, 0]]);
  const present = [{ firstPage: 0, pageCount: PAGES }];
  const merged = buildLoadingSet(layers, present, { layerPages: 1024, intervalThresholdPages: 8, sizeThresholdPages: 1 });
  assert.deepEqual(merged, [
    { firstPage: 100, pageCount: 13, layer: 0 }, // 100, 104, 110..112: gaps of 3 and 5 < 8
    { firstPage: 200, pageCount: 1, layer: 0 }, // page 202 (layer 1) blocks the merge with 204
    { firstPage: 204, pageCount: 1, layer: 0 },
    { firstPage: 202, pageCount: 1, layer: 1 },
  ]);
  const sized = buildLoadingSet(layers, present, { layerPages: 1024, intervalThresholdPages: 8, sizeThresholdPages: 2 });
  assert.deepEqual(sized, [{ firstPage: 100, pageCount: 13, layer: 0 }]);
});

test('nonZeroRegions() merges present runs across gaps below the interval threshold', () => {
  const runs = [{ firstPage: 0, pageCount: 4 }, { firstPage: 6, pageCount: 2 }, { firstPage: 40, pageCount: 1 }];
  assert.deepEqual(nonZeroRegions(runs, 4), [{ firstPage: 0, pageCount: 8 }, { firstPage: 40, pageCount: 1 }]);
  assert.deepEqual(nonZeroRegions(runs, 0), runs);
});

function meta(id: string): SnapshotMeta {
  return { id, kind: 'full', baseId: null, functionName: 'synthetic', runtime: 'wasi', moduleDigest: 'test', memoryBytes: PAGES * PAGE_BYTES, guestState: null, createdAt: new Date(0).toISOString(), sourceSandboxId: 'test' };
}

function memoryWithHoles(): Uint8Array {
  const m = new Uint8Array(PAGES * PAGE_BYTES);
  for (let p = 0; p < PAGES; p++) if (p % 5 !== 0) m.fill((p % 251) + 1, p * PAGE_BYTES, p * PAGE_BYTES + 64);
  return m;
}

test('faasnap records a loading set on the first restore and replays it byte for byte', () => {
  const memory = memoryWithHoles();
  writeSnapshot(root, meta('rec'), memory);
  const first = faasnap.open(root, readChain(root, 'rec'));
  const m1 = new WebAssembly.Memory({ initial: 1, maximum: 512 });
  first.fill(m1);
  assert.equal(first.stats.phase, 'record');
  const bytes = new Uint8Array(m1.buffer);
  let sum = 0;
  for (let p = 300; p < 700; p++) sum += bytes[p * PAGE_BYTES]!; // the "invocation"
  assert.ok(sum > 0);
  first.afterInvoke();
  const recorded = first.release() as FaasnapStats;
  assert.ok(recorded.loadingSetPages > 0, 'some touched pages were recorded');
  const ls = openLoadingSet(join(root, 'rec'), 'rec', PAGES);
  assert.ok(ls);
  closeSync(ls.fd);
  const set = ls.set;
  // Every page touched by the "invocation" that is not a hole is in the loading set (readahead may add more).
  const covered = new Set<number>();
  for (const r of set.regions) for (let p = r.firstPage; p < r.firstPage + r.pageCount; p++) covered.add(p);
  for (let p = 300; p < 700; p++) if (p % 5 !== 0) assert.ok(covered.has(p), `page ${p} in the loading set`);
  for (let i = 1; i < set.regions.length; i++) {
    const a = set.regions[i - 1]!, b = set.regions[i]!;
    assert.ok(a.layer < b.layer || (a.layer === b.layer && a.firstPage < b.firstPage), 'ordered by layer, then page');
  }

  const second = faasnap.open(root, readChain(root, 'rec'));
  const m2 = new WebAssembly.Memory({ initial: 1, maximum: 512 });
  second.fill(m2);
  assert.equal(second.stats.phase, 'replay');
  assert.equal(Buffer.compare(new Uint8Array(m2.buffer, 0, memory.length), memory), 0);
  const replayed = second.release() as FaasnapStats;
  assert.equal(replayed.loadingSetPages, set.regions.reduce((n, r) => n + r.pageCount, 0));
  assert.ok(replayed.nonZeroRegions >= 1);
});

test('faasnap refuses a loading set whose page data was damaged (THAW_SNAPSHOT_CORRUPT)', () => {
  const path = loadingSetPath(join(root, 'rec'));
  const fd = openSync(path, 'r+');
  const size = fstatSync(fd).size;
  writeSync(fd, Buffer.from([0xa5]), 0, 1, size - 10);
  closeSync(fd);
  assert.throws(() => faasnap.open(root, readChain(root, 'rec')).release(),
    (err: unknown) => err instanceof ThawError && err.code === 'THAW_SNAPSHOT_CORRUPT' && /loading set/.test(err.message));
});

test('faasnapStrategy() thresholds shape the replayed mappings, and the memory stays identical', () => {
  const memory = memoryWithHoles();
  writeSnapshot(root, meta('thr'), memory);
  const strict = faasnapStrategy({ layerPages: 64, intervalThresholdPages: 0, sizeThresholdPages: 1 }, 'faasnap-strict');
  const rec = strict.open(root, readChain(root, 'thr'));
  const m1 = new WebAssembly.Memory({ initial: 1, maximum: 512 });
  rec.fill(m1);
  for (let p = 0; p < PAGES; p += 3) void new Uint8Array(m1.buffer)[p * PAGE_BYTES];
  rec.afterInvoke();
  rec.release();
  const rep = strict.open(root, readChain(root, 'thr'));
  const m2 = new WebAssembly.Memory({ initial: 1, maximum: 512 });
  rep.fill(m2);
  const stats = rep.release() as FaasnapStats;
  // Without gap merging every hole (every 5th page) splits the memory-file layer.
  assert.equal(stats.nonZeroRegions, Math.ceil(PAGES / 5));
  assert.equal(Buffer.compare(new Uint8Array(m2.buffer, 0, memory.length), memory), 0);
});
