// Tests of the pre-faulted memory pool: poolReserve, poolMoveRuns, poolAvailable, poolRelease.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ThawError } from '../core/errors.js';
import { probe } from './_test-helpers.js';
import { pageFaultCounts, poolAvailable, poolMoveRuns, poolRelease, poolReserve } from './index.js';

const MiB = 1 << 20;

test('poolReserve() holds at least the bytes asked for and keeps a pool that is large enough', () => {
  poolRelease();
  assert.equal(poolAvailable(), 0);
  const got = poolReserve(4 * MiB);
  assert.ok(got >= 4 * MiB);
  assert.equal(poolReserve(MiB), got, 'a smaller request keeps the pool');
  poolRelease();
  assert.equal(poolAvailable(), 0);
});

test('poolMoveRuns() puts zero, writable memory under the runs with no page faults, and the guest sees it', () => {
  poolRelease();
  poolReserve(8 * MiB);
  const memory = new WebAssembly.Memory({ initial: (8 * MiB) / 65536 });
  const guest = probe(memory);
  new Uint8Array(memory.buffer).fill(0xab);
  const before = poolAvailable();
  const runs = [{ offsetBytes: 0, lengthBytes: 2 * MiB }, { offsetBytes: 4 * MiB, lengthBytes: 64 * 1024 }];
  assert.equal(poolMoveRuns(memory.buffer, runs), 2);
  assert.ok(poolAvailable() <= before - 2 * MiB - 64 * 1024);
  const f0 = pageFaultCounts();
  const view = new Uint8Array(memory.buffer);
  for (let at = 0; at < 2 * MiB; at += 4096) view[at] = 1;
  const f1 = pageFaultCounts();
  assert.ok(f1.minor - f0.minor < 64, `moved memory faulted ${f1.minor - f0.minor} times`);
  assert.equal(guest.load(4096 + 8), 0);
  assert.equal(guest.load(4 * MiB + 8), 0);
  assert.equal(view[2 * MiB + 8], 0xab, 'bytes outside the runs are untouched');
  assert.equal(view[4 * MiB + 64 * 1024], 0xab);
  memory.grow(1);
  assert.equal(new Uint8Array(memory.buffer)[0], 1);
  poolRelease();
});

test('poolMoveRuns() stops at the first run the pool cannot cover and leaves it as it was', () => {
  poolRelease();
  poolReserve(64 * 1024);
  const memory = new WebAssembly.Memory({ initial: 128 });
  new Uint8Array(memory.buffer).fill(7);
  const moved = poolMoveRuns(memory.buffer, [{ offsetBytes: 0, lengthBytes: 64 * 1024 }, { offsetBytes: 65536, lengthBytes: 8 * MiB - 65536 }]);
  assert.ok(moved >= 1 && moved <= 2);
  if (moved === 1) assert.equal(new Uint8Array(memory.buffer)[65536], 7);
  assert.equal(new Uint8Array(memory.buffer)[0], 0);
  poolRelease();
  assert.equal(poolMoveRuns(memory.buffer, [{ offsetBytes: 0, lengthBytes: 4096 }]), 0, 'an empty pool moves nothing');
});

test('poolMoveRuns() refuses unaligned or out-of-range runs', () => {
  poolReserve(MiB);
  const memory = new WebAssembly.Memory({ initial: 2 });
  assert.throws(() => poolMoveRuns(memory.buffer, [{ offsetBytes: 100, lengthBytes: 4096 }]), (err: unknown) => err instanceof ThawError && err.code === 'THAW_INTERNAL');
  assert.throws(() => poolMoveRuns(memory.buffer, [{ offsetBytes: 0, lengthBytes: 4 * 65536 }]), (err: unknown) => err instanceof ThawError && err.code === 'THAW_INTERNAL');
  poolRelease();
});
