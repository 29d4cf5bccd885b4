// Integrity on every restore path, for every strategy: a forged state file (page runs shifted by
// one page, file CRC recomputed), a byte flipped in memory.img with its mtime put back, and a
// byte flipped in each artefact the strategy keeps (files beside the snapshot, the tmpfs copy,
// the pool slot). A strategy that checks every byte must refuse (THAW_SNAPSHOT_CORRUPT, or its
// page server aborts the process naming it) or still restore the right bytes (the damaged file
// is one it does not read); one that maps files unverified may serve the flip, and then
// scrubSnapshot() (`thaw snapshots verify`) must report the file corrupt. Wrong bytes are never
// served by a strategy that claims 'every-byte'. Restores run in a child process, since a page
// server that finds a bad chunk aborts its process.

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crc32 } from 'node:zlib';
import { ThawError } from '../../core/errors.js';
import { PAGE_BYTES, type SnapshotMeta } from '../../core/snapshot-format.js';
import { MEMORY_FILE, STATE_FILE, readChain, writeSnapshot } from '../../snapshot/snapshot-io.js';
import { discardArtefacts, getStrategy, listArtefacts, listStrategies, scrubSnapshot } from '../index.js';
import { slotKey } from '../pass-pool.js';
import { dramDir } from './dram.js';
import { passPoolOf } from './pass.js';
import { heldSealedImage } from './sealed.js';

const SIZE = 8 << 20;
const root = mkdtempSync(join(tmpdir(), 'thaw-integrity-'));
after(() => rmSync(root, { recursive: true, force: true }));
const child = fileURLToPath(new URL('./testdata/restore-child.js', import.meta.url));

/** Random pages, every fifth page zero, and a zero tail (so page runs can shift by one). */
const memory = randomBytes(SIZE);
for (let p = 0; p < SIZE / PAGE_BYTES; p++) if (p % 5 === 0 || p >= SIZE / PAGE_BYTES - 16) memory.fill(0, p * PAGE_BYTES, (p + 1) * PAGE_BYTES);
const expectedPath = join(root, 'expected.bin');
writeFileSync(expectedPath, memory);

function snapshot(id: string): void {
  const meta: SnapshotMeta = {
    id, kind: 'full', baseId: null, functionName: 'synthetic', runtime: 'wasi', moduleDigest: 'test',
    memoryBytes: SIZE, guestState: null, createdAt: new Date(0).toISOString(), sourceSandboxId: 'test',
  };
  writeSnapshot(root, meta, memory);
}

type Outcome = { outcome: 'identical' | 'differs' | 'refused' | 'aborted'; code?: string; detail?: string };

/** Restores `id` with `strategy` `rounds` times in a child process; one outcome per round run. */
function restoreInChild(strategy: string, id: string, rounds: number): Outcome[] {
  const r = spawnSync(process.execPath, [child, root, id, strategy, String(rounds), expectedPath], { encoding: 'utf8', timeout: 60_000 });
  const out: Outcome[] = r.stdout.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Outcome);
  if (r.signal === 'SIGABRT') {
    const code = /THAW_[A-Z_]+/.exec(r.stderr)?.[0];
    out.push({ outcome: 'aborted', ...(code !== undefined && { code }), detail: r.stderr.trim().split('\n').pop() ?? '' });
  } else if (r.status !== 0) {
    assert.fail(`child for ${strategy}/${id} exited ${r.status ?? r.signal}: ${r.stderr}`);
  }
  return out;
}

/** Flips one byte of `path` at `offset`, then puts its access and modification times back. */
function flipByte(path: string, offset: number): void {
  const st = statSync(path);
  const fd = openSync(path, 'r+');
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, offset);
  writeSync(fd, Buffer.from([b[0]! ^ 0x5a]), 0, 1, offset);
  closeSync(fd);
  utimesSync(path, st.atime, st.mtime);
  // utimes() takes times to the microsecond: the old metadata-keyed sidecar could not tell.
  assert.ok(Math.abs(statSync(path).mtimeMs - st.mtimeMs) < 1 && statSync(path).size === st.size);
}

/** Shifts every page run of a state file up by one page and recomputes the file's CRC (a forgery). */
function forgeRuns(id: string): void {
  const path = join(root, id, STATE_FILE);
  const buf = readFileSync(path);
  const metaLen = buf.readUInt32LE(12);
  const runCount = buf.readUInt32LE(16);
  for (let i = 0; i < runCount; i++) {
    const at = 28 + metaLen + i * 8; // format 2: a 28-byte fixed header
    buf.writeUInt32LE(buf.readUInt32LE(at) + 1, at);
  }
  buf.writeUInt32LE(crc32(buf.subarray(0, buf.length - 4)), buf.length - 4);
  writeFileSync(path, buf);
  assert.equal(readChain(root, id)[0]!.runs[0]!.firstPage, 2, 'the forged state file still decodes');
}

/** Asserts that wrong bytes were never served, or only by a strategy that says it maps unverified and with the scrub catching `file`. */
function assertNeverSilentlyWrong(t: { diagnostic(message: string): void }, strategy: string, verifies: string, id: string, outcomes: Outcome[], file: string): void {
  assert.ok(outcomes.length > 0, 'the child reported something');
  t.diagnostic(`${file}: ${outcomes.map((o) => o.outcome).join(', ')}`);
  for (const o of outcomes) {
    if (o.outcome === 'refused' || o.outcome === 'aborted') assert.equal(o.code, 'THAW_SNAPSHOT_CORRUPT', `${strategy}: ${JSON.stringify(o)}`);
  }
  const differs = outcomes.some((o) => o.outcome === 'differs');
  if (differs) assert.notEqual(verifies, 'every-byte', `${strategy} claims every-byte but served wrong memory: ${JSON.stringify(outcomes)}`);
  const scrub = scrubSnapshot(root, id);
  assert.equal(scrub.ok, false, `scrub of ${id} finds the damage`);
  assert.ok(scrub.files.some((f) => f.status === 'corrupt' && f.file.includes(file)), `scrub names ${file}: ${JSON.stringify(scrub.files)}`);
}

const touchChild = fileURLToPath(new URL('./testdata/touch-child.js', import.meta.url));

describe('per-page checks (snapshot format 2)', () => {
  for (const id of ['uffd', 'reap']) {
    test(`${id}: a bad page is refused when it is served, and only then: pages of the same 1 MiB chunk before it restore right`, { skip: getStrategy(id).supports().ok ? false : 'userfaultfd refused here' }, () => {
      const snap = `page-${id}`;
      snapshot(snap);
      flipByte(join(root, snap, MEMORY_FILE), 3 * PAGE_BYTES + 77); // page 3 of chunk 0 (pages 0-255)
      // Scattered reads (no readahead past page 3): pages 200, 7 and 120 are served and right.
      const r = spawnSync(process.execPath, [touchChild, root, snap, id, expectedPath, '200,7,120,3,9'], { encoding: 'utf8', timeout: 60_000 });
      const lines = r.stdout.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as { page: number; same: boolean });
      assert.deepEqual(lines, [{ page: 200, same: true }, { page: 7, same: true }, { page: 120, same: true }], r.stderr);
      assert.equal(r.signal, 'SIGABRT', 'the page server aborted the process at page 3');
      assert.match(r.stderr, /THAW_SNAPSHOT_CORRUPT: userfaultfd page server: guest bytes 12288\.\.16384 do not match/);
      discardArtefacts(root, snap);
    });
  }
});

describe('integrity', () => {
  for (const s of listStrategies()) {
    const skip = s.support.ok ? false : `${s.id} cannot run on this host: ${s.support.reason}`;

    test(`${s.id}: a state file whose page runs were shifted (CRC recomputed) is refused or restores right, never wrong`, { skip }, (t) => {
      const id = `forged-${s.id}`;
      snapshot(id);
      forgeRuns(id);
      const strategy = getStrategy(s.id);
      if (s.id !== 'eager') {
        assert.throws(() => strategy.prepare(root, readChain(root, id)), (err: unknown) => err instanceof ThawError && err.code === 'THAW_SNAPSHOT_CORRUPT');
      }
      const outcomes = restoreInChild(s.id, id, 2);
      assert.ok(!outcomes.some((o) => o.outcome === 'differs'), `${s.id} served wrong memory: ${JSON.stringify(outcomes)}`);
      assertNeverSilentlyWrong(t, s.id, s.verifies, id, outcomes, MEMORY_FILE);
      discardArtefacts(root, id);
    });

    test(`${s.id}: a byte flipped in memory.img (mtime put back) is refused, not read, or documented and caught by the scrub`, { skip }, (t) => {
      const id = `flipped-${s.id}`;
      snapshot(id);
      const strategy = getStrategy(s.id);
      strategy.prepare(root, readChain(root, id));
      const first = restoreInChild(s.id, id, 2); // records what recording strategies record
      assert.deepEqual(first.map((o) => o.outcome), ['identical', 'identical'], JSON.stringify(first));
      strategy.prepare(root, readChain(root, id)); // builds what needs a recorded working set
      flipByte(join(root, id, MEMORY_FILE), 3 * PAGE_BYTES + 77);
      assertNeverSilentlyWrong(t, s.id, s.verifies, id, restoreInChild(s.id, id, 1), MEMORY_FILE);
      discardArtefacts(root, id);
    });

    test(`${s.id}: a byte flipped in each of its artefacts is refused, not read, or documented and caught by the scrub`, { skip }, (t) => {
      const base = `artefacts-${s.id}`;
      snapshot(base);
      const strategy = getStrategy(s.id);
      strategy.prepare(root, readChain(root, base));
      restoreInChild(s.id, base, 2);
      strategy.prepare(root, readChain(root, base));
      const artefacts = listArtefacts(root, base);
      discardArtefacts(root, base);
      for (const a of artefacts) {
        // A fresh snapshot per artefact, brought to the same state, so one flip is judged at a time.
        const id = `${base}-${artefacts.indexOf(a)}`;
        snapshot(id);
        strategy.prepare(root, readChain(root, id));
        restoreInChild(s.id, id, 2);
        strategy.prepare(root, readChain(root, id));
        let file: string;
        if (a.tier === 'memory') {
          // The daemon's sealed memfd: no process can flip a byte in it (F_SEAL_WRITE), so there is nothing to serve wrong.
          const fd = heldSealedImage(root, id);
          assert.ok(fd !== null, 'the sealed image is held');
          assert.throws(() => writeSync(fd, Buffer.from([0x5a]), 0, 1, 3 * PAGE_BYTES + 77), { code: 'EPERM' });
          discardArtefacts(root, id);
          continue;
        } else if (a.tier === 'pool') {
          const p = passPoolOf(root, id);
          const entry = p.entry(slotKey(root, id));
          assert.ok(entry, 'pool slot indexed');
          flipByte(p.poolPath, entry.offsetBytes + 3 * PAGE_BYTES + 77);
          file = 'pool slot';
        } else {
          const path = a.tier === 'tmpfs' ? join(dramDir(root), `${id}.img`) : join(root, id, a.name);
          // Into page data: past any header, inside a present page of an image copy.
          flipByte(path, a.tier === 'tmpfs' ? 3 * PAGE_BYTES + 77 : Math.floor(statSync(path).size * 3 / 4));
          file = a.tier === 'tmpfs' ? `${id}.img` : a.name;
        }
        assertNeverSilentlyWrong(t, s.id, s.verifies, id, restoreInChild(s.id, id, 1), file);
        discardArtefacts(root, id);
      }
    });
  }
});
