import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { ThawError } from '../core/errors.js';
import { PAGE_BYTES, type PageRun, type SnapshotMeta } from '../core/snapshot-format.js';
import { MEMORY_FILE, STATE_FILE, readChain, writeSnapshot } from './snapshot-io.js';
import {
  ARTEFACTS_MAC_FILE, MAC_FILE, checkArtefactSeals, ensureSnapshotKey, sealArtefacts, sealState, verifyChainSeals, type ExpectedMeta,
} from './snapshot-seal.js';
import { expectArtefacts } from '../restore/artefact-seal.js';
import { WORKING_SET_FILE, readWorkingSet, writeWorkingSet } from '../restore/working-set.js';
import { LOADING_SET_FILE, openLoadingSet, writeLoadingSet } from '../restore/faasnap-loading-set.js';
import { PARTITION_BYTES, buildCompressedImage, openCompressedImage, sourceKey } from '../restore/sabre-image.js';
import { getStrategy } from '../restore/index.js';
import { SealChecks } from './seal-cache.js';

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

/** Error of `fn` (which must throw a ThawError). */
function errorOf(fn: () => unknown): ThawError {
  try {
    fn();
  } catch (err: unknown) {
    assert.ok(err instanceof ThawError, String(err));
    return err;
  }
  return assert.fail('expected a ThawError');
}

describe('artefact seals', () => {
  const PAGES = MiB / PAGE_BYTES;
  // Each artefact kind a restore reads beside a snapshot: how to write a well-formed one from a
  // list of page runs, and how a restore reads it. Two different run lists give two files of the
  // same kind, each with valid checksums: a forgery only the seal can tell from the original.
  // `recorded`: a restore records it (the others the daemon's worker builds); read() says whether it was found.
  const kinds: { name: string; recorded: boolean; write(dir: string, fd: number, runs: PageRun[]): void; read(dir: string): boolean }[] = [
    {
      name: WORKING_SET_FILE,
      recorded: true,
      write: (dir, _fd, runs) => writeWorkingSet(dir, { memoryPages: PAGES, runs }),
      read: (dir) => readWorkingSet(dir, 'a', PAGES) !== null,
    },
    {
      name: LOADING_SET_FILE,
      recorded: true,
      write: (dir, fd, runs) => writeLoadingSet(dir, 'a', fd, PAGES, 1, runs.map((r) => ({ ...r, layer: 0 }))),
      read: (dir) => {
        const opened = openLoadingSet(dir, 'a', PAGES);
        if (opened) closeSync(opened.fd);
        return opened !== null;
      },
    },
    ...['sabre-lz4-1.img', 'sabre-reap-lz4-1.img', 'thaw-sparse-lz4-1.img'].map((name) => ({
      name,
      recorded: false,
      write: (dir: string, fd: number, runs: PageRun[]) => void buildCompressedImage(join(dir, name), 'a', fd, PAGES, 1, runs, { codec: 'lz4', level: 1, partitionBytes: PARTITION_BYTES }),
      read: (dir: string) => {
        const opened = openCompressedImage(join(dir, name), 'a', PAGES);
        if (opened) closeSync(opened.fd);
        return opened !== null;
      },
    })),
  ];
  const original: PageRun[] = [{ firstPage: 1, pageCount: 4 }, { firstPage: 9, pageCount: 2 }];
  const forged: PageRun[] = [{ firstPage: 3, pageCount: 6 }];

  for (const kind of kinds) {
    test(`${kind.name}: a forged one (valid checksums, other content) is refused by a restore and reported by the daemon's check`, () => {
      const { dataDir, root, key, memory } = setup();
      writeSnapshot(root, meta('a'), memory);
      const dir = join(root, 'a');
      const fd = openSync(join(dir, MEMORY_FILE), 'r');
      try {
        kind.write(dir, fd, original);
        const digests = sealArtefacts(root, key, 'a');
        assert.deepEqual(Object.keys(digests), [kind.name]);
        assert.deepEqual(checkArtefactSeals(root, key, 'a'), { digests, unsealed: [] });
        expectArtefacts('a', digests);
        assert.equal(kind.read(dir), true, 'the sealed one is read');
        rmSync(join(dir, kind.name)); // what anyone who can write the directory could do
        kind.write(dir, fd, forged);
        kind.read(join(dir)); // still valid by its own checksums...
      } catch (err: unknown) {
        // ...which the seal refuses:
        assert.ok(err instanceof ThawError && err.code === 'THAW_SNAPSHOT_CORRUPT', String(err));
        assert.match(err.message, new RegExp(`artefact ${kind.name.replace(/\./g, '\\.')} does not match the daemon's seal`));
        assert.deepEqual(checkArtefactSeals(root, key, 'a').unsealed, [kind.name], 'the daemon finds it unsealed (and removes it)');
        expectArtefacts('a', undefined);
        assert.equal(kind.read(dir), true, 'without a seal to check (the daemon\'s own worker), its checksums are all there is');
        // An artefact that appeared after the seal is not the daemon's either: one a restore
        // records is absent for this restore (a concurrent first restore's recording: this one
        // records too); one the daemon builds is refused.
        expectArtefacts('a', {});
        if (kind.recorded) {
          assert.equal(kind.read(dir), false);
        } else {
          const unsealed = errorOf(() => kind.read(dir));
          assert.equal(unsealed.code, 'THAW_SNAPSHOT_CORRUPT');
          assert.match(unsealed.message, /is not sealed by this daemon/);
        }
        return;
      } finally {
        expectArtefacts('a', undefined);
        closeSync(fd);
        rmSync(dataDir, { recursive: true, force: true });
      }
      assert.fail(`a forged ${kind.name} was read`);
    });
  }

  test('artefacts.mac: a seal that fails its MAC (other digest, other key, another snapshot) is refused', () => {
    const { dataDir, root, key, memory } = setup();
    writeSnapshot(root, meta('a'), memory);
    writeSnapshot(root, meta('b'), memory);
    writeWorkingSet(join(root, 'a'), { memoryPages: PAGES, runs: original });
    writeWorkingSet(join(root, 'b'), { memoryPages: PAGES, runs: forged });
    sealArtefacts(root, key, 'a');
    sealArtefacts(root, key, 'b');
    const path = join(root, 'a', ARTEFACTS_MAC_FILE);
    const seal = JSON.parse(readFileSync(path, 'utf8')) as { artefacts: Record<string, string> };
    writeFileSync(path, JSON.stringify({ ...seal, artefacts: { [WORKING_SET_FILE]: 'ab'.repeat(32) } }));
    assert.match(errorOf(() => checkArtefactSeals(root, key, 'a')).message, /does not match its MAC/);
    writeFileSync(path, readFileSync(join(root, 'b', ARTEFACTS_MAC_FILE))); // b's seal (and working set) under a
    writeFileSync(join(root, 'a', WORKING_SET_FILE), readFileSync(join(root, 'b', WORKING_SET_FILE)));
    assert.equal(errorOf(() => checkArtefactSeals(root, key, 'a')).code, 'THAW_SNAPSHOT_CORRUPT');
    sealArtefacts(root, key, 'a');
    assert.equal(errorOf(() => checkArtefactSeals(root, Buffer.alloc(32, 7), 'a')).code, 'THAW_SNAPSHOT_CORRUPT', 'a MAC made with another key');
    writeFileSync(path, 'not json');
    assert.equal(errorOf(() => checkArtefactSeals(root, key, 'a')).code, 'THAW_SNAPSHOT_CORRUPT');
    rmSync(path);
    assert.deepEqual(checkArtefactSeals(root, key, 'a'), { digests: {}, unsealed: [WORKING_SET_FILE] }, 'no seal: nothing is the daemon\'s');
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('a restore with the daemon\'s digests refuses a forged compressed image (sabre) before it reads a page', () => {
    const { dataDir, root, key, memory } = setup();
    writeSnapshot(root, meta('a'), memory);
    const sabre = getStrategy('sabre');
    sabre.prepare(root, readChain(root, 'a'));
    expectArtefacts('a', sealArtefacts(root, key, 'a'));
    try {
      sabre.open(root, readChain(root, 'a')).release(); // the sealed image opens
      const fd = openSync(join(root, 'a', MEMORY_FILE), 'r');
      buildCompressedImage(join(root, 'a', 'sabre-lz4-1.img'), 'a', fd, PAGES, sourceKey(readChain(root, 'a')[0]!), forged, { codec: 'lz4', level: 1, partitionBytes: PARTITION_BYTES });
      closeSync(fd);
      const err = errorOf(() => sabre.open(root, readChain(root, 'a')).fill(new WebAssembly.Memory({ initial: 1, maximum: 64 })));
      assert.equal(err.code, 'THAW_SNAPSHOT_CORRUPT');
      assert.match(err.message, /sabre-lz4-1\.img does not match the daemon's seal/);
    } finally {
      expectArtefacts('a', undefined);
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

/** One full snapshot 's', sealed. */
function sealedOne(): { dataDir: string; root: string; key: Buffer } {
  const { dataDir, root, key, memory } = setup();
  writeSnapshot(root, meta('s'), memory);
  sealState(root, key, asked(meta('s')));
  return { dataDir, root, key };
}

// A file's change time has the kernel's coarse clock granularity (a few ms): the rewrites below
// come later than that after the check they follow, as any real one does.
const LATER_MS = 25;

test('SealChecks.chain() reuses a check while the files are unchanged, and checks a rewritten state file or MAC again', async () => {
  const { dataDir, root, key } = sealedOne();
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
  const { dataDir, root, key } = sealedOne();
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
  rmSync(join(dir, WORKING_SET_FILE)); // a recording never replaces one; anyone who can write the directory can
  writeWorkingSet(dir, { memoryPages: MiB / PAGE_BYTES, runs: [{ firstPage: 0, pageCount: 1 }] });
  assert.deepEqual(checks.artefactSeals('s'), { digests: {}, unsealed: [WORKING_SET_FILE] }, 'replaced with other pages');
  rmSync(dataDir, { recursive: true, force: true });
});
