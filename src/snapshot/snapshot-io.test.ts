import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readdirSync, openSync, writeSync, closeSync, truncateSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ThawError } from '../core/errors.js';
import { PAGE_BYTES, type SnapshotMeta } from '../core/snapshot-format.js';
import { MEMORY_FILE, diskUsageBytes, loadChainInto, readChain, sweepSnapshotTemps, writeSnapshot } from './snapshot-io.js';

const MiB = 1 << 20;

function meta(id: string, memoryBytes: number, baseId: string | null = null): SnapshotMeta {
  return {
    id, kind: baseId ? 'diff' : 'full', baseId, functionName: 'f', runtime: 'wasi', moduleDigest: 'd', memoryBytes,
    guestState: {}, createdAt: new Date().toISOString(), sourceSandboxId: 'sb',
  };
}

function patterned(bytes: number): Uint8Array {
  const m = new Uint8Array(bytes);
  for (let p = 0; p < bytes / PAGE_BYTES; p += 3) m.fill((p % 251) + 1, p * PAGE_BYTES, p * PAGE_BYTES + 100);
  return m;
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ThawError, String(err));
    return err.code;
  }
  assert.fail('expected a ThawError');
}

test('writeSnapshot() stores only non-zero pages and loadChainInto() restores every byte', () => {
  const root = mkdtempSync(join(tmpdir(), 'thaw-snap-'));
  const mem = patterned(4 * MiB);
  const w = writeSnapshot(root, meta('a', mem.length), mem);
  assert.equal(w.storedBytes, Math.ceil(mem.length / PAGE_BYTES / 3) * PAGE_BYTES);
  assert.ok(diskUsageBytes(root, 'a') < mem.length, 'zero pages are holes on disk');
  // The target starts dirty everywhere: gaps must be cleared, present pages overwritten.
  const target = new Uint8Array(mem.length).fill(0xee);
  loadChainInto(root, readChain(root, 'a'), target);
  assert.deepEqual(target, mem);
  assert.deepEqual(readdirSync(root), ['a'], 'no temporary files are left behind');
});

test('diff snapshots hold changed pages only; base + diff restores the newer memory', () => {
  const root = mkdtempSync(join(tmpdir(), 'thaw-snap-'));
  const base = patterned(2 * MiB);
  writeSnapshot(root, meta('base', base.length), base);
  const now = new Uint8Array(3 * MiB);
  now.set(base);
  now[5 * PAGE_BYTES] = 0x42; // change one page
  now.fill(0, 0, PAGE_BYTES); // zero a page that was non-zero
  now[2 * MiB + 7] = 9; // grown memory
  const w = writeSnapshot(root, meta('d1', now.length, 'base'), now, base);
  assert.equal(w.state.runs.length, 3);
  assert.equal(w.storedBytes, 3 * PAGE_BYTES);
  const target = new Uint8Array(now.length);
  loadChainInto(root, readChain(root, 'd1'), target);
  assert.deepEqual(target, now);
});

test('loadChainInto() detects a bit flip in the memory image', () => {
  const root = mkdtempSync(join(tmpdir(), 'thaw-snap-'));
  const mem = patterned(2 * MiB);
  writeSnapshot(root, meta('a', mem.length), mem);
  const fd = openSync(join(root, 'a', MEMORY_FILE), 'r+');
  writeSync(fd, Buffer.from([0x99]), 0, 1, 3 * PAGE_BYTES + 1);
  closeSync(fd);
  assert.equal(codeOf(() => loadChainInto(root, readChain(root, 'a'), new Uint8Array(mem.length))), 'THAW_SNAPSHOT_CORRUPT');
});

test('loadChainInto() detects a truncated memory image', () => {
  const root = mkdtempSync(join(tmpdir(), 'thaw-snap-'));
  const mem = patterned(2 * MiB);
  writeSnapshot(root, meta('a', mem.length), mem);
  const file = join(root, 'a', MEMORY_FILE);
  truncateSync(file, statSync(file).size - PAGE_BYTES * 2);
  assert.equal(codeOf(() => loadChainInto(root, readChain(root, 'a'), new Uint8Array(mem.length))), 'THAW_SNAPSHOT_CORRUPT');
});

test('readChain() reports a missing snapshot and a missing base', () => {
  const root = mkdtempSync(join(tmpdir(), 'thaw-snap-'));
  assert.equal(codeOf(() => readChain(root, 'nope')), 'THAW_SNAPSHOT_NOT_FOUND');
  const mem = patterned(MiB);
  writeSnapshot(root, meta('orphan', mem.length, 'gone'), mem, new Uint8Array(MiB));
  assert.equal(codeOf(() => readChain(root, 'orphan')), 'THAW_SNAPSHOT_NOT_FOUND');
});

test('sweepSnapshotTemps() removes half-written snapshot directories of dead writers and keeps live ones and snapshots', () => {
  const root = mkdtempSync(join(tmpdir(), 'thaw-sweep-'));
  writeSnapshot(root, meta('kept', MiB), patterned(MiB));
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!; // a pid that has exited
  const leftovers = [`.tmp-a-${dead}-0123abcd`, '.tmp-b-89abcdef' /* an older Thaw: no pid */];
  const live = `.tmp-c-${process.pid}-fedcba98`;
  for (const name of [...leftovers, live]) {
    mkdirSync(join(root, name));
    writeFileSync(join(root, name, MEMORY_FILE), 'half');
  }
  assert.deepEqual(sweepSnapshotTemps(root).sort(), leftovers.sort());
  assert.deepEqual(readdirSync(root).sort(), [live, 'kept'].sort());
  assert.equal(readChain(root, 'kept').length, 1);
});
