// Tests of the userfaultfd page server on real userfaultfd: serving, holes, recording, prefetch,
// clean stop, fencing, and loud failure. Skipped, with the reason, where userfaultfd is refused.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';

import { ThawError } from '../core/errors.js';
import { patternBytes, probe, processCounts, tempFile } from './_test-helpers.js';
import { hostPageSizeBytes, translateNativeError, uffdAvailability, uffdCreate } from './index.js';

const WASM_PAGE = 65536;
const availability = uffdAvailability();
const skip = availability.available ? false : `userfaultfd unavailable: ${availability.reason}`;
const PAGE = hostPageSizeBytes();

/** Image of `pages` pages where every third page (i % 3 === 1) is a hole. */
function holeyImage(pages: number): { image: Uint8Array; pageMap: Int32Array; expected: Uint8Array } {
  const image = patternBytes(pages * PAGE, 5);
  const pageMap = new Int32Array(pages).map((_, i) => (i % 3 === 1 ? -1 : i));
  const expected = image.slice();
  pageMap.forEach((s, i) => { if (s < 0) expected.fill(0, i * PAGE, (i + 1) * PAGE); });
  return { image, pageMap, expected };
}

test('uffdCreate() serves every page from the file on the server thread, holes as zero pages, recording fault order', { skip }, () => {
  const pages = 64;
  const { image, pageMap, expected } = holeyImage(pages);
  const file = tempFile(image);
  const memory = new WebAssembly.Memory({ initial: 8 });
  const guest = probe(memory);
  const base = WASM_PAGE;
  const before = processCounts();
  const fd = openSync(file.path, 'r');
  const server = uffdCreate(memory.buffer, base, pages * PAGE, { fd, pageMap }, { record: true });
  closeSync(fd);
  const during = processCounts();
  assert.equal(during.threads, before.threads + 1, 'one server thread');

  const order = Array.from({ length: pages }, (_, i) => (i * 37) % pages);
  const view = new DataView(memory.buffer);
  for (const [n, page] of order.entries()) {
    const at = base + page * PAGE + 16;
    const got = n % 2 === 0 ? guest.load(at) >>> 0 : view.getUint32(at, true);
    assert.equal(got, new DataView(expected.buffer).getUint32(page * PAGE + 16, true), `page ${page}`);
  }
  assert.deepEqual(new Uint8Array(memory.buffer, base, pages * PAGE), expected);
  const stats = server.stop();

  const holes = pageMap.filter((s) => s < 0).length;
  assert.equal(stats.faults, pages);
  assert.equal(stats.zeroPages, holes);
  assert.equal(stats.copiedPages, pages - holes);
  assert.equal(stats.prefetchedPages, 0);
  assert.deepEqual([...stats.recorded], order.map((p) => BigInt(p * PAGE)));
  assert.deepEqual(processCounts(), before, 'stop() leaves no thread and no fd behind');
  assert.equal(server.running, false);
  file.remove();
});

test('uffdCreate() installs prefetch runs before they fault and stop({remaining: "fill"}) keeps the rest readable', { skip }, () => {
  const pages = 64;
  const { image, pageMap, expected } = holeyImage(pages);
  const file = tempFile(image);
  const fd = openSync(file.path, 'r');
  const memory = new WebAssembly.Memory({ initial: 4 });
  const server = uffdCreate(memory.buffer, 0, pages * PAGE, { fd, pageMap }, {
    record: true,
    prefetch: [{ offsetBytes: 0, lengthBytes: 16 * PAGE }, { offsetBytes: 32 * PAGE, lengthBytes: 8 * PAGE }],
    chunkBytes: 4 * PAGE,
  });
  closeSync(fd);
  server.waitPrefetch();
  const bytes = new Uint8Array(memory.buffer);
  const touched = [...Array(48).keys()];
  for (const page of touched) assert.equal(bytes[page * PAGE + 3], expected[page * PAGE + 3]);
  const stats = server.stop({ remaining: 'fill' });

  const prefetched = (p: number) => p < 16 || (p >= 32 && p < 40);
  assert.equal(stats.prefetchedPages, 24);
  assert.equal(stats.faults, touched.filter((p) => !prefetched(p)).length);
  assert.deepEqual([...stats.recorded], touched.filter((p) => !prefetched(p)).map((p) => BigInt(p * PAGE)));
  assert.ok(stats.prefetchNs > 0);
  assert.deepEqual(bytes.subarray(0, pages * PAGE), expected, 'pages never touched were filled before the uffd closed');
  file.remove();
});

test('uffdCreate() serves a packed image straight from a mapping of the file, from a file offset', { skip }, () => {
  const pages = 16;
  const packed = patternBytes(9 * PAGE, 9); // page 0: header; then 8 data pages
  const file = tempFile(packed);
  const fd = openSync(file.path, 'r');
  const pageMap = new Int32Array(pages).map((_, i) => (i % 2 === 0 ? 7 - i / 2 : -1));
  const memory = new WebAssembly.Memory({ initial: 1 });
  const server = uffdCreate(memory.buffer, 0, pages * PAGE, { fd, fileOffsetBytes: PAGE, pageMap, read: 'mmap' });
  closeSync(fd);
  const bytes = new Uint8Array(memory.buffer);
  for (let g = 0; g < pages; g++) {
    const s = pageMap[g]!;
    const want = s < 0 ? new Uint8Array(PAGE) : packed.subarray((s + 1) * PAGE, (s + 2) * PAGE);
    assert.deepEqual(bytes.subarray(g * PAGE, (g + 1) * PAGE), want, `guest page ${g}`);
  }
  const stats = server.stop();
  assert.equal(stats.copiedPages, 8);
  assert.equal(stats.zeroPages, 8);
  file.remove();
});

test('UffdServer.stop() fences unserved pages so the guest traps instead of reading zeros', { skip }, () => {
  const image = patternBytes(WASM_PAGE, 13);
  const file = tempFile(image);
  const fd = openSync(file.path, 'r');
  const memory = new WebAssembly.Memory({ initial: 2 });
  const guest = probe(memory);
  const server = uffdCreate(memory.buffer, 0, WASM_PAGE, { fd });
  closeSync(fd);
  assert.equal(guest.load(0) >>> 0, new DataView(image.buffer).getUint32(0, true));
  server.stop();
  assert.throws(() => guest.load(2 * PAGE), WebAssembly.RuntimeError);
  assert.equal(guest.load(WASM_PAGE), 0, 'memory outside the served range is untouched');
  assert.throws(() => server.stop(), (err: unknown) => err instanceof ThawError && err.code === 'THAW_INTERNAL');
  file.remove();
});

test('a page server that cannot read its source aborts the process rather than serve zeros', { skip }, () => {
  const file = tempFile(patternBytes(16 * PAGE, 17));
  const script = `
    import { openSync, truncateSync } from 'node:fs';
    import { uffdCreate } from ${JSON.stringify(new URL('./index.js', import.meta.url).href)};
    const memory = new WebAssembly.Memory({ initial: 1 });
    const server = uffdCreate(memory.buffer, 0, 65536, { fd: openSync(${JSON.stringify(file.path)}, 'r'), read: 'pread' });
    truncateSync(${JSON.stringify(file.path)}, 0);
    console.log('read', new Uint8Array(memory.buffer)[8 * ${PAGE}]);`;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  file.remove();
  assert.equal(child.signal, 'SIGABRT');
  assert.match(child.stderr, /userfaultfd page server failed in ioctl\(UFFDIO_COPY\)/);
  assert.doesNotMatch(child.stdout, /read/);
});

test('uffdCreate() rejects a page map of the wrong length or pointing past the file, and bad prefetch runs', { skip }, () => {
  const file = tempFile(patternBytes(2 * PAGE));
  const fd = openSync(file.path, 'r');
  const memory = new WebAssembly.Memory({ initial: 1 });
  const internal = (detail: RegExp) => (err: unknown) =>
    err instanceof ThawError && err.code === 'THAW_INTERNAL' && detail.test(err.message);
  try {
    assert.throws(() => uffdCreate(memory.buffer, 0, 4 * PAGE, { fd, pageMap: new Int32Array(3) }), internal(/one entry per page/));
    assert.throws(() => uffdCreate(memory.buffer, 0, 4 * PAGE, { fd, pageMap: new Int32Array([0, 1, 2, -1]) }), internal(/past the end/));
    assert.throws(() => uffdCreate(memory.buffer, 0, 4 * PAGE, { fd }, { prefetch: [{ offsetBytes: 0, lengthBytes: 8 * PAGE }] }),
      internal(/prefetch run/));
    assert.throws(() => uffdCreate(memory.buffer, 0, 4 * PAGE, { fd: 1_000_000 }), internal(/EBADF/));
  } finally {
    closeSync(fd);
    file.remove();
  }
});

test('translateNativeError() reports a refused userfaultfd as THAW_STRATEGY_UNAVAILABLE and keeps the cause', () => {
  const eperm = Object.assign(new Error('userfaultfd: Operation not permitted'), { code: 'EPERM', syscall: 'userfaultfd' });
  const err = translateNativeError('uffdCreate', eperm, 'reap');
  assert.equal(err.code, 'THAW_STRATEGY_UNAVAILABLE');
  assert.equal(err.status, 501);
  assert.match(err.message, /^strategy 'reap' unavailable: userfaultfd: EPERM/);
  assert.equal(err.cause, eperm);
  const other = translateNativeError('uffdCreate', Object.assign(new Error('mmap(source): No such device'), { code: 'ENODEV', syscall: 'mmap(source)' }));
  assert.equal(other.code, 'THAW_INTERNAL');
  assert.match(other.message, /native uffdCreate: mmap\(source\): No such device \(ENODEV\)/);
  if (!availability.available) assert.match(availability.reason, /userfaultfd/);
});

test('uffdCreate() serves a source file that ends inside the range as zero pages past its end', { skip }, () => {
  const image = patternBytes(PAGE + 100, 21);
  const file = tempFile(image);
  writeFileSync(file.path, image);
  const fd = openSync(file.path, 'r');
  const memory = new WebAssembly.Memory({ initial: 1 });
  const server = uffdCreate(memory.buffer, 0, 4 * PAGE, { fd });
  closeSync(fd);
  const bytes = new Uint8Array(memory.buffer);
  assert.deepEqual(bytes.subarray(0, PAGE + 100), image);
  assert.ok(bytes.subarray(PAGE + 100, 4 * PAGE).every((b) => b === 0));
  const stats = server.stop();
  assert.equal(stats.copiedPages, 2);
  assert.equal(stats.zeroPages, 2);
});
