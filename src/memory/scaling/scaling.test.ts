// Memory scaling on real memory: a WebAssembly.Memory mapped by V8, grants populated and releases
// discarded by the native addon, resident memory measured with mincore. The guest here is a
// memory and a free-range report the test controls (the allocator's side); the platform test
// (src/test/scaling-platform.test.ts) runs the same mechanisms under a real C guest.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { hostPageSizeBytes, residentBytes } from '../../native/index.js';
import { ThawError } from '../../core/errors.js';
import { parseFunctionConfig } from '../../core/function-spec.js';
import { getScaling, listScaling, type ByteRange, type FreeRangeReport, type ScalingGuest, type ScalingSpec, DEFAULT_SCALING } from './index.js';
import { carveBlocks } from './faascale.js';
import { pagesInside, wasiFreeRanges } from './free-ranges.js';

const MiB = 1024 * 1024;
const PAGE = hostPageSizeBytes();

/** A guest of `memoryMiB` whose first `keptMiB` hold a pattern it keeps; the rest its allocator holds free. */
function guestOf(memoryMiB: number, keptMiB: number, fileBacked = false): ScalingGuest & { free: ByteRange[]; bytes: Uint8Array } {
  const memory = new WebAssembly.Memory({ initial: (memoryMiB * MiB) / 65536, maximum: (memoryMiB * MiB) / 65536 });
  const bytes = new Uint8Array(memory.buffer);
  for (let i = 0; i < keptMiB * MiB; i += 7) bytes[i] = (i * 13) & 0xff;
  const g = {
    name: 'test-fn', memory, declaredBytes: memoryMiB * MiB, fileBacked, bytes,
    free: [{ offset: keptMiB * MiB, length: (memoryMiB - keptMiB) * MiB }] as ByteRange[],
    freeRanges(): FreeRangeReport { return { ranges: g.free, source: 'test' }; },
  };
  return g;
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const spec = (over: Partial<ScalingSpec>): ScalingSpec => ({ ...DEFAULT_SCALING, ...over });

for (const mechanism of ['faascale', 'balloon'] as const) {
  for (const populate of mechanism === 'faascale' ? (['populate-write', 'pool'] as const) : (['populate-write'] as const)) {
    test(`${mechanism}${mechanism === 'faascale' ? ` (${populate})` : ''}: grant, use, release keeps the guest's bytes exactly, discards the rest, resident memory falls`, async () => {
      const g = guestOf(256, 16);
      const keptBefore = sha(g.bytes.subarray(0, 16 * MiB));
      const s = getScaling(mechanism).session(g, spec({ mechanism, blockMiB: 16, grantMiB: 128, populate, baseMiB: 16 }));
      const granted = await s.grant();
      assert.ok(s.grantedBytes() >= 128 * MiB, `granted ${s.grantedBytes()}`);
      if (mechanism === 'faascale') {
        assert.ok((granted.populateMs ?? -1) >= 0);
        // The grant is pre-populated: its 128 MiB are resident before the guest touches them.
        assert.ok(residentBytes(g.memory.buffer, 16 * MiB, 128 * MiB) === 128 * MiB, 'grant not populated');
      }
      // The guest uses 128 MiB of its free memory, then frees it again (the report stays the same).
      g.bytes.fill(0x5a, 16 * MiB, 144 * MiB);
      const residentUsed = residentBytes(g.memory.buffer, 0, g.memory.buffer.byteLength);
      const released = await s.release();
      const residentAfter = residentBytes(g.memory.buffer, 0, g.memory.buffer.byteLength);
      assert.equal(sha(g.bytes.subarray(0, 16 * MiB)), keptBefore, 'kept bytes changed');
      assert.ok(residentUsed >= 144 * MiB - PAGE);
      // Everything the guest had free is gone but for a page's tolerance; what it keeps stays.
      assert.ok(residentAfter <= 16 * MiB + 2 * PAGE, `resident ${residentAfter} after release`);
      assert.ok(released.releasedBytes >= 128 * MiB, `released ${released.releasedBytes}`);
      // A released range reads as zero (documented: discarded pages are fresh zero pages).
      assert.ok(g.bytes.subarray(16 * MiB, 144 * MiB).every((b) => b === 0), 'released memory does not read as zero');
      if (mechanism === 'balloon') assert.equal(s.grantedBytes(), 16 * MiB, 'the re-inflated balloon leaves the base size');
      else assert.equal(s.grantedBytes(), 16 * MiB, 'after a release faascale grants what the guest holds');
    });
  }
}

test('faascale on a restored (file-backed) guest discards by mapping anonymous memory: released pages read as zero, kept bytes stay', async () => {
  const g = guestOf(64, 8, true);
  const before = sha(g.bytes.subarray(0, 8 * MiB));
  const s = getScaling('faascale').session(g, spec({ mechanism: 'faascale', blockMiB: 4 }));
  await s.grant();
  g.bytes.fill(1, 8 * MiB);
  await s.release();
  // Measured before anything reads the released pages (a read maps the zero page, which mincore counts).
  assert.ok(residentBytes(g.memory.buffer, 0, 64 * MiB) <= 8 * MiB + 2 * PAGE);
  assert.equal(sha(g.bytes.subarray(0, 8 * MiB)), before);
  assert.ok(g.bytes.subarray(8 * MiB).every((b) => b === 0));
});

test('none grants the declared size and gives nothing back', async () => {
  const g = guestOf(32, 4);
  g.bytes.fill(3, 4 * MiB);
  const s = getScaling('none').session(g, DEFAULT_SCALING);
  await s.grant();
  const r = await s.release();
  assert.equal(r.releasedBytes, 0);
  assert.equal(s.grantedBytes(), 32 * MiB);
  assert.equal(g.bytes[20 * MiB], 3);
});

test('a free-range report that would discard live memory is refused with THAW_GUEST_ERROR and nothing is released', async () => {
  for (const bad of [
    [{ offset: 1000, length: PAGE }],
    [{ offset: 0, length: 64 * MiB }],
    [{ offset: 8 * MiB, length: 4 * MiB }, { offset: 10 * MiB, length: 4 * MiB }],
  ]) {
    const g = guestOf(32, 4);
    g.bytes.fill(9, 4 * MiB);
    g.free = bad;
    const s = getScaling('faascale').session(g, spec({ mechanism: 'faascale' }));
    await assert.rejects(s.release(), (e: unknown) => e instanceof ThawError && e.code === 'THAW_GUEST_ERROR' && /nothing was released/.test(e.message));
    assert.equal(g.bytes[20 * MiB], 9, 'memory was discarded despite the bad report');
  }
});

test('the wasi thaw_free_ranges export: read, rounded inward to pages; out-of-bounds lists and ranges over the list are refused', () => {
  const memory = new WebAssembly.Memory({ initial: 64 });
  const view = new DataView(memory.buffer);
  const list = (ptr: number, ranges: [number, number][]): void => {
    view.setUint32(ptr, ranges.length, true);
    ranges.forEach(([o, l], i) => { view.setUint32(ptr + 4 + i * 8, o, true); view.setUint32(ptr + 8 + i * 8, l, true); });
  };
  list(1024, [[PAGE + 100, 3 * PAGE], [10 * PAGE, 100]]);
  const report = wasiFreeRanges('f', { thaw_free_ranges: () => 1024 }, memory);
  assert.deepEqual(report?.ranges, [{ offset: 2 * PAGE, length: 2 * PAGE }]);
  assert.equal(wasiFreeRanges('f', {}, memory), null);
  assert.throws(() => wasiFreeRanges('f', { thaw_free_ranges: () => 64 * 65536 }, memory), /outside linear memory/);
  list(2048, [[0, 8 * PAGE]]);
  assert.throws(() => wasiFreeRanges('f', { thaw_free_ranges: () => 2048 }, memory), /covers the list itself/);
  view.setUint32(4096, 100000, true);
  assert.throws(() => wasiFreeRanges('f', { thaw_free_ranges: () => 4096 }, memory), /at most 128/);
  assert.deepEqual(pagesInside([{ offset: 1, length: PAGE }]), []);
});

test('faascale carves its grant in blocks from the lowest free addresses', () => {
  const blocks = carveBlocks([{ offset: 0, length: 10 * MiB }, { offset: 20 * MiB, length: 100 * MiB }], 50 * MiB, 16 * MiB);
  assert.deepEqual(blocks.map((b) => [b.offset / MiB, b.length / MiB]), [[0, 10], [20, 16], [36, 16], [52, 8]]);
});

test('the manifest field: names, objects, defaults; unknown mechanisms and bad settings are THAW_CONFIG_INVALID naming them', () => {
  const base = { name: 'f', runtime: 'wasi', module: 'm.wasm', memoryMiB: 512 };
  const parse = (scaling: unknown) => parseFunctionConfig({ ...base, scaling }, (p) => `/x/${p}`);
  assert.equal(parseFunctionConfig(base, (p) => p).scaling?.mechanism, 'none');
  assert.equal(parse('faascale').scaling?.mechanism, 'faascale');
  assert.deepEqual(parse({ mechanism: 'balloon', baseMiB: 64, grantMiB: 256 }).scaling, { mechanism: 'balloon', blockMiB: 64, grantMiB: 256, populate: 'populate-write', baseMiB: 64 });
  const invalid = (scaling: unknown, re: RegExp) => assert.throws(() => parse(scaling), (e: unknown) => e instanceof ThawError && e.code === 'THAW_CONFIG_INVALID' && re.test(e.message));
  invalid('virtio-mem', /unknown scaling mechanism 'virtio-mem' \(expected one of none, balloon, faascale\)/);
  invalid({ mechanism: 'faascale', blockMiB: 1024 }, /blockMiB/);
  invalid({ mechanism: 'faascale', blockMiB: 48 }, /power of two/);
  invalid({ mechanism: 'faascale', grantMiB: 4096 }, /grantMiB/);
  invalid({ mechanism: 'faascale', populate: 'uffd' }, /populate/);
  invalid({ mechanism: 'faascale', extra: 1 }, /unknown field 'extra'/);
  invalid(7, /mechanism name or an object/);
  assert.deepEqual(listScaling().map((m) => m.id), ['none', 'balloon', 'faascale']);
  assert.throws(() => getScaling('nope'), /unknown scaling mechanism 'nope'/);
});
