import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { ThawError } from '../core/errors.js';
import { PAGE_BYTES, type SnapshotMeta } from '../core/snapshot-format.js';
import { STATE_FILE, writeSnapshot } from './snapshot-io.js';
import { MAC_FILE, ensureSnapshotKey, sealArtefacts, sealState, verifyChainSeals } from './snapshot-seal.js';
import { SealChecks } from './seal-cache.js';
import { WORKING_SET_FILE, writeWorkingSet } from '../restore/working-set.js';

const MiB = 1 << 20;

function meta(id: string): SnapshotMeta {
  return {
    id, kind: 'full', baseId: null, functionName: 'f', runtime: 'wasi', moduleDigest: 'd', memoryBytes: MiB,
    guestState: {}, createdAt: '2026-01-01T00:00:00.000Z', sourceSandboxId: 'sb',
  };
}

function sealed(): { dataDir: string; root: string; key: Buffer } {
  const dataDir = mkdtempSync(join(tmpdir(), 'thaw-seal-cache-'));
  const root = join(dataDir, 'snapshots');
  const memory = new Uint8Array(MiB);
  for (let p = 1; p < MiB / PAGE_BYTES - 1; p += 2) memory.fill(p, p * PAGE_BYTES, (p + 1) * PAGE_BYTES);
  writeSnapshot(root, meta('s'), memory);
  const key = ensureSnapshotKey(dataDir);
  const m = meta('s');
  sealState(root, key, { id: m.id, kind: m.kind, baseId: m.baseId, createdAt: m.createdAt, sourceSandboxId: m.sourceSandboxId, functionName: m.functionName, moduleDigest: m.moduleDigest });
  return { dataDir, root, key };
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

// A file's change time has the kernel's coarse clock granularity (a few ms): the rewrites below
// come later than that after the check they follow, as any real one does.
const LATER_MS = 25;

test('SealChecks.chain() reuses a check while the files are unchanged, and checks a rewritten state file or MAC again', async () => {
  const { dataDir, root, key } = sealed();
  const checks = new SealChecks(root, key);
  const first = checks.chain('s');
  assert.deepEqual(first, verifyChainSeals(root, key, 's'));
  assert.equal(checks.chain('s'), first, 'the same result, not a second check');
  await sleep(LATER_MS);
  // Page runs shifted by one page, the file CRC recomputed: it decodes, only the MAC tells.
  const path = join(root, 's', STATE_FILE);
  const good = readFileSync(path);
  const forged = Buffer.from(good);
  const runsAt = 24 + forged.readUInt32LE(12);
  forged.writeUInt32LE(forged.readUInt32LE(runsAt) + 1, runsAt);
  forged.writeUInt32LE(crc32(forged.subarray(0, forged.length - 4)), forged.length - 4);
  writeFileSync(path, forged);
  assert.equal(codeOf(() => checks.chain('s')), 'THAW_SNAPSHOT_CORRUPT', 'rewritten in place: checked again');
  writeFileSync(path, good);
  assert.deepEqual(checks.chain('s'), first, 'the sealed bytes back: accepted again');
  await sleep(LATER_MS);
  rmSync(join(root, 's', MAC_FILE));
  assert.equal(codeOf(() => checks.chain('s')), 'THAW_SNAPSHOT_UNSEALED', 'its MAC removed: checked again');
  checks.forget('s');
  rmSync(dataDir, { recursive: true, force: true });
});

test('SealChecks.artefactSeals() sees an artefact added, sealed or rewritten since its last check', async () => {
  const { dataDir, root, key } = sealed();
  const checks = new SealChecks(root, key);
  const dir = join(root, 's');
  assert.deepEqual(checks.artefactSeals('s'), { digests: {}, unsealed: [] });
  assert.deepEqual(checks.artefactSeals('s'), { digests: {}, unsealed: [] });
  writeWorkingSet(dir, { memoryPages: MiB / PAGE_BYTES, runs: [{ firstPage: 1, pageCount: 3 }] });
  assert.deepEqual(checks.artefactSeals('s').unsealed, [WORKING_SET_FILE], 'written behind the daemon\'s back');
  const digests = sealArtefacts(root, key, 's');
  assert.deepEqual(checks.artefactSeals('s'), { digests, unsealed: [] });
  assert.deepEqual(checks.artefactSeals('s'), { digests, unsealed: [] });
  await sleep(LATER_MS);
  writeWorkingSet(dir, { memoryPages: MiB / PAGE_BYTES, runs: [{ firstPage: 0, pageCount: 1 }] });
  assert.deepEqual(checks.artefactSeals('s'), { digests: {}, unsealed: [WORKING_SET_FILE] }, 'replaced with other pages');
  rmSync(dataDir, { recursive: true, force: true });
});
