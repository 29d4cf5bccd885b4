// Tests of the mapping primitives over live WebAssembly memories: mapFile, mapAnonymous,
// madviseDontneed, touchPages, copyInto, and the page-cache helpers.

import assert from 'node:assert/strict';
import { closeSync, openSync } from 'node:fs';
import { test } from 'node:test';

import { ThawError } from '../core/errors.js';
import { patternBytes, probe, tempFile } from './_test-helpers.js';
import {
  copyInto, fadvise, hostPageSizeBytes, madviseDontneed, mapAnonymous, mapFile, mincore, pageFaultCounts,
  readDirect, residentBytes, touchPages,
} from './index.js';

const WASM_PAGE = 65536;

test('mapFile() maps a file over a Wasm memory that both Wasm and JS then read', () => {
  const image = patternBytes(4 * WASM_PAGE);
  const file = tempFile(image);
  const fd = openSync(file.path, 'r');
  try {
    const memory = new WebAssembly.Memory({ initial: 8 });
    const guest = probe(memory);
    mapFile(memory.buffer, WASM_PAGE, image.length, fd);
    const view = new DataView(memory.buffer);
    for (const at of [0, 4, 4096, 3 * WASM_PAGE + 100, image.length - 4]) {
      assert.equal(guest.load(WASM_PAGE + at) >>> 0, view.getUint32(WASM_PAGE + at, true));
      assert.equal(view.getUint32(WASM_PAGE + at, true), new DataView(image.buffer).getUint32(at, true));
    }
    assert.deepEqual(new Uint8Array(memory.buffer, WASM_PAGE, image.length), image);
    assert.equal(guest.load(0), 0);
  } finally {
    closeSync(fd);
    file.remove();
  }
});

test('mapFile() keeps private writes in memory and memory.grow still works afterwards', () => {
  const image = patternBytes(WASM_PAGE, 7);
  const file = tempFile(image);
  const fd = openSync(file.path, 'r');
  try {
    const memory = new WebAssembly.Memory({ initial: 2 });
    const guest = probe(memory);
    mapFile(memory.buffer, 0, WASM_PAGE, fd, 0, { private: true });
    new Uint8Array(memory.buffer)[0] = image[0]! ^ 0xff;
    assert.equal(guest.grow(3), 2);
    assert.equal(memory.buffer.byteLength, 5 * WASM_PAGE);
    const bytes = new Uint8Array(memory.buffer);
    assert.equal(bytes[0], image[0]! ^ 0xff);
    assert.deepEqual(bytes.subarray(1, WASM_PAGE), image.subarray(1));
    assert.equal(guest.load(4 * WASM_PAGE + 8), 0);
    bytes[4 * WASM_PAGE + 8] = 42;
    assert.equal(guest.load(4 * WASM_PAGE + 8), 42);
    const again = openSync(file.path, 'r');
    try {
      assert.equal(readByte(again), image[0], 'MAP_PRIVATE must not write through to the file');
    } finally {
      closeSync(again);
    }
  } finally {
    closeSync(fd);
    file.remove();
  }
});

function readByte(fd: number): number {
  const page = new WebAssembly.Memory({ initial: 1 });
  mapFile(page.buffer, 0, hostPageSizeBytes(), fd);
  return new Uint8Array(page.buffer)[0]!;
}

test('mapAnonymous() and madviseDontneed() put zero pages back', () => {
  const page = hostPageSizeBytes();
  const memory = new WebAssembly.Memory({ initial: 1 });
  const bytes = new Uint8Array(memory.buffer);
  bytes.fill(9);
  mapAnonymous(memory.buffer, 0, page);
  assert.equal(bytes[0], 0);
  assert.equal(bytes[page], 9);
  madviseDontneed(memory.buffer, page, page);
  assert.equal(bytes[page], 0);
  assert.equal(bytes[2 * page], 9);
});

test('residentBytes() counts the pages of a range that are resident, and falls after madviseDontneed()', () => {
  const page = hostPageSizeBytes();
  const memory = new WebAssembly.Memory({ initial: 16 }); // 1 MiB, reserved but never touched
  assert.equal(residentBytes(memory.buffer, 0, 16 * WASM_PAGE), 0);
  touchPages(memory.buffer, 0, 8 * WASM_PAGE);
  assert.equal(residentBytes(memory.buffer, 0, 16 * WASM_PAGE), 8 * WASM_PAGE);
  madviseDontneed(memory.buffer, 0, 4 * WASM_PAGE);
  assert.equal(residentBytes(memory.buffer, 0, 16 * WASM_PAGE), 4 * WASM_PAGE);
  assert.throws(() => residentBytes(memory.buffer, 1, page), /page/);
});

test('touchPages() makes pages resident without changing them and copyInto() copies at any offset', () => {
  const memory = new WebAssembly.Memory({ initial: 2 });
  const bytes = new Uint8Array(memory.buffer);
  bytes[5] = 77;
  const before = pageFaultCounts();
  touchPages(memory.buffer, 0, 2 * WASM_PAGE);
  assert.ok(pageFaultCounts().minor >= before.minor);
  assert.equal(bytes[5], 77);
  const source = patternBytes(1000, 3);
  assert.equal(copyInto(memory.buffer, 123, source), 1000);
  assert.deepEqual(bytes.subarray(123, 1123), source);
});

test('mapFile() rejects unaligned ranges and ranges outside the accessible memory', () => {
  const memory = new WebAssembly.Memory({ initial: 1 });
  const isInternal = (detail: RegExp) => (err: unknown) =>
    err instanceof ThawError && err.code === 'THAW_INTERNAL' && detail.test(err.message);
  assert.throws(() => mapFile(memory.buffer, 100, 4096, 0), isInternal(/multiples of the \d+-byte page/));
  assert.throws(() => mapFile(memory.buffer, 0, 2 * WASM_PAGE, 0), isInternal(/outside the buffer/));
  assert.throws(() => mapAnonymous(memory.buffer, WASM_PAGE, 4096), isInternal(/outside the buffer/));
  assert.throws(() => copyInto(memory.buffer, WASM_PAGE - 10, new Uint8Array(11)), isInternal(/outside the buffer/));
});

test('mapFile() reports a bad fd with its errno name as the cause code', () => {
  const memory = new WebAssembly.Memory({ initial: 1 });
  assert.throws(() => mapFile(memory.buffer, 0, 4096, 1_000_000), (err: unknown) => {
    assert.ok(err instanceof ThawError && err.code === 'THAW_INTERNAL');
    assert.match(err.message, /mmap\(MAP_FIXED\).*EBADF/);
    assert.equal((err.cause as { code?: string }).code, 'EBADF');
    return true;
  });
});

test('mincore(), fadvise() and readDirect() see a file through the page cache and around it', () => {
  const page = hostPageSizeBytes();
  const image = patternBytes(8 * page, 11);
  const file = tempFile(image);
  try {
    const residency = mincore(file.path);
    assert.equal(residency.length, 8);
    assert.ok(residency.every((r) => r === 0 || r === 1));
    fadvise(file.path, 0, 0, 'willneed');
    fadvise(file.path, 0, 0, 'dontneed');
    let direct: Uint8Array;
    try {
      direct = readDirect(file.path, page, 4 * page);
    } catch (err: unknown) {
      assert.match(String((err as Error).message), /open\(O_DIRECT\).*EINVAL/, 'only a filesystem without O_DIRECT may refuse');
      return;
    }
    assert.deepEqual(direct, image.subarray(page, 5 * page));
    assert.equal(readDirect(file.path, 6 * page, 4 * page).length, 2 * page, 'short at end of file');
  } finally {
    file.remove();
  }
});
