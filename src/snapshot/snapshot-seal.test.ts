import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { ThawError } from '../core/errors.js';
import { PAGE_BYTES, type SnapshotMeta } from '../core/snapshot-format.js';
import { STATE_FILE, readChain, writeSnapshot } from './snapshot-io.js';
import { MAC_FILE, ensureSnapshotKey, sealState, verifyChainSeals, type ExpectedMeta } from './snapshot-seal.js';

const MiB = 1 << 20;

function meta(id: string, baseId: string | null = null): SnapshotMeta {
  return {
    id, kind: baseId ? 'diff' : 'full', baseId, functionName: 'f', runtime: 'wasi', moduleDigest: 'd', memoryBytes: MiB,
    guestState: {}, createdAt: '2026-01-01T00:00:00.000Z', sourceSandboxId: 'sb',
  };
}

function asked(m: SnapshotMeta): ExpectedMeta {
  return { id: m.id, kind: m.kind, baseId: m.baseId, createdAt: m.createdAt, sourceSandboxId: m.sourceSandboxId, functionName: m.functionName, moduleDigest: m.moduleDigest };
}

function setup(): { dataDir: string; root: string; key: Buffer; memory: Uint8Array } {
  const dataDir = mkdtempSync(join(tmpdir(), 'thaw-seal-'));
  const root = join(dataDir, 'snapshots');
  const memory = new Uint8Array(MiB);
  for (let p = 1; p < MiB / PAGE_BYTES - 1; p += 2) memory.fill(p, p * PAGE_BYTES, (p + 1) * PAGE_BYTES);
  return { dataDir, root, key: ensureSnapshotKey(dataDir), memory };
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err: unknown) {
    assert.ok(err instanceof ThawError, String(err));
    return err.code;
  }
  return 'no error';
}

test('ensureSnapshotKey() creates a 32-byte key readable by its owner only, once', () => {
  const { dataDir, key } = setup();
  const path = join(dataDir, 'keys', 'snapshot.key');
  assert.equal(key.length, 32);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.equal(statSync(join(dataDir, 'keys')).mode & 0o077, 0);
  assert.deepEqual(ensureSnapshotKey(dataDir), key, 'a second start reads the same key');
  const other = ensureSnapshotKey(mkdtempSync(join(tmpdir(), 'thaw-seal-')));
  assert.notDeepEqual(other, key, 'keys are random');
  rmSync(dataDir, { recursive: true, force: true });
});

test('sealState() then verifyChainSeals() accepts a chain and returns the digests a host checks its state files against', () => {
  const { dataDir, root, key, memory } = setup();
  writeSnapshot(root, meta('a'), memory);
  const changed = memory.slice();
  changed[5 * PAGE_BYTES] = 42;
  writeSnapshot(root, meta('b', 'a'), changed, memory);
  const da = sealState(root, key, asked(meta('a')));
  const db = sealState(root, key, asked(meta('b', 'a')));
  const digests = verifyChainSeals(root, key, 'b');
  assert.deepEqual(digests, { a: da, b: db });
  assert.equal(readChain(root, 'b', digests).length, 2);
  // The host refuses a state file that changed after the daemon verified it.
  writeSnapshot(root, meta('c'), memory);
  sealState(root, key, asked(meta('c')));
  const forC = verifyChainSeals(root, key, 'c');
  const path = join(root, 'c', STATE_FILE);
  const bytes = readFileSync(path);
  bytes[30] = bytes[30]! ^ 1; // inside the metadata; the file CRC is recomputed so it still decodes
  bytes.writeUInt32LE(crc32(bytes.subarray(0, bytes.length - 4)), bytes.length - 4);
  writeFileSync(path, bytes);
  assert.equal(codeOf(() => readChain(root, 'c', forC)), 'THAW_SNAPSHOT_CORRUPT');
  assert.equal(codeOf(() => readChain(root, 'a', { b: db })), 'THAW_SNAPSHOT_CORRUPT', 'a state file outside the verified chain');
  rmSync(dataDir, { recursive: true, force: true });
});

test('verifyChainSeals() refuses a forged state file (page runs shifted, CRC recomputed), a forged MAC, a missing MAC and another key', () => {
  const { dataDir, root, key, memory } = setup();
  writeSnapshot(root, meta('s'), memory);
  sealState(root, key, asked(meta('s')));
  const path = join(root, 's', STATE_FILE);
  const good = readFileSync(path);
  const forged = Buffer.from(good);
  const metaLen = forged.readUInt32LE(12);
  for (let i = 0; i < forged.readUInt32LE(16); i++) {
    const at = 24 + metaLen + i * 8;
    forged.writeUInt32LE(forged.readUInt32LE(at) + 1, at);
  }
  forged.writeUInt32LE(crc32(forged.subarray(0, forged.length - 4)), forged.length - 4);
  writeFileSync(path, forged);
  assert.equal(readChain(root, 's').length, 1, 'the forgery decodes: only the MAC tells');
  assert.equal(codeOf(() => verifyChainSeals(root, key, 's')), 'THAW_SNAPSHOT_CORRUPT');
  writeFileSync(path, good);
  assert.deepEqual(Object.keys(verifyChainSeals(root, key, 's')), ['s']);
  const seal = JSON.parse(readFileSync(join(root, 's', MAC_FILE), 'utf8')) as { mac: string };
  writeFileSync(join(root, 's', MAC_FILE), JSON.stringify({ ...seal, mac: 'ab'.repeat(32) }));
  assert.equal(codeOf(() => verifyChainSeals(root, key, 's')), 'THAW_SNAPSHOT_CORRUPT');
  writeFileSync(join(root, 's', MAC_FILE), JSON.stringify(seal));
  assert.equal(codeOf(() => verifyChainSeals(root, Buffer.alloc(32, 7), 's')), 'THAW_SNAPSHOT_CORRUPT', 'a MAC made with another key');
  rmSync(join(root, 's', MAC_FILE));
  const err = (() => {
    try {
      verifyChainSeals(root, key, 's');
    } catch (e: unknown) {
      return e as ThawError;
    }
    return undefined;
  })();
  assert.equal(err?.code, 'THAW_SNAPSHOT_UNSEALED');
  assert.match(err?.message ?? '', /snapshots create|--snapshot-after/, 'says how to re-create it');
  rmSync(dataDir, { recursive: true, force: true });
});

test('sealState() refuses a state file whose metadata is not what the daemon asked the host to write', () => {
  const { dataDir, root, key, memory } = setup();
  writeSnapshot(root, meta('m'), memory);
  assert.equal(codeOf(() => sealState(root, key, { ...asked(meta('m')), sourceSandboxId: 'another' })), 'THAW_SNAPSHOT_CORRUPT');
  assert.equal(codeOf(() => verifyChainSeals(root, key, 'm')), 'THAW_SNAPSHOT_UNSEALED', 'nothing was sealed');
  rmSync(dataDir, { recursive: true, force: true });
});
