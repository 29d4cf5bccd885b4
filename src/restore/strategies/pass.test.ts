// pass: the pool's slot index survives a restart (a fresh process finds the slot without
// copying), a stale slot is never mapped (rebuilt instead), freed space is reused with its old
// bytes cleared, and stats name the tier.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { chmodSync, chownSync, closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { ThawError } from '../../core/errors.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PAGE_BYTES, type SnapshotMeta } from '../../core/snapshot-format.js';
import { readChain, writeSnapshot } from '../../snapshot/snapshot-io.js';
import { slotKey, type SlotEntry } from '../pass-pool.js';
import { resolveImage } from '../snapshot-image.js';
import { discardPassSlot, pass, passPoolOf } from './pass.js';

const root = mkdtempSync(join(tmpdir(), 'thaw-pass-'));
const poolDir = mkdtempSync('/dev/shm/thaw-pass-test-');
process.env.THAW_PMEM_DIR = poolDir; // read once, at the pool's first use (not at import)
after(() => {
  rmSync(root, { recursive: true, force: true });
  rmSync(poolDir, { recursive: true, force: true });
});

const PAGES = 1024;
function meta(id: string): SnapshotMeta {
  return { id, kind: 'full', baseId: null, functionName: 'synthetic', runtime: 'wasi', moduleDigest: 'test', memoryBytes: PAGES * PAGE_BYTES, guestState: null, createdAt: new Date(0).toISOString(), sourceSandboxId: 'test' };
}
function memory(seed: number): Uint8Array {
  const m = new Uint8Array(PAGES * PAGE_BYTES);
  for (let p = 0; p < PAGES; p++) if (p % 3 !== 0) m.fill((p + seed) % 250 + 1, p * PAGE_BYTES, (p + 1) * PAGE_BYTES);
  return m;
}
function restoreBytes(id: string): { bytes: Uint8Array; stats: Record<string, unknown> } {
  const image = pass.open(root, readChain(root, id));
  const m = new WebAssembly.Memory({ initial: 1, maximum: 512 });
  image.fill(m);
  const bytes = new Uint8Array(m.buffer, 0, PAGES * PAGE_BYTES).slice();
  return { bytes, stats: { ...image.release() } };
}

const a = memory(1);
writeSnapshot(root, meta('a'), a);

test('pass restores from its pool slot and says which tier served it', () => {
  assert.equal(pass.prepare(root, readChain(root, 'a')).built, true);
  assert.equal(pass.prepare(root, readChain(root, 'a')).built, false);
  const { bytes, stats } = restoreBytes('a');
  assert.equal(Buffer.compare(bytes, a), 0);
  assert.equal(stats.tier, 'tmpfs');
  assert.match(String(stats.tierReason), /THAW_PMEM_DIR/);
  assert.equal(stats.prepareMs, 0);
});

test('the slot index survives a restart: a new process finds the slot without copying it', () => {
  const script = `
    import { slotKey } from ${JSON.stringify(new URL('../pass-pool.js', import.meta.url).href)};
    import { passPoolOf } from ${JSON.stringify(new URL('./pass.js', import.meta.url).href)};
    import { readChain } from ${JSON.stringify(new URL('../../snapshot/snapshot-io.js', import.meta.url).href)};
    const pool = passPoolOf(${JSON.stringify(root)}, 'a');
    const chain = readChain(${JSON.stringify(root)}, 'a');
    process.stdout.write(JSON.stringify(pool.lookup(slotKey(${JSON.stringify(root)}, 'a'), chain[0])));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, THAW_PMEM_DIR: poolDir } });
  const found = JSON.parse(String(out)) as SlotEntry;
  const index = JSON.parse(readFileSync(passPoolOf(root, 'a').indexPath, 'utf8')) as { slots: Record<string, SlotEntry> };
  assert.deepEqual(found, index.slots[slotKey(root, 'a')]);
});

test('a stale slot (its tag overwritten) is refused by lookup() and rebuilt by open(), never mapped', () => {
  const pool = passPoolOf(root, 'a');
  const key = slotKey(root, 'a');
  const state = readChain(root, 'a')[0]!;
  const entry = pool.lookup(key, state);
  assert.ok(entry !== null && entry !== 'stale');
  // Another writer's bytes over the slot (tag included): what a lost index update would leave.
  const fd = openSync(pool.poolPath, 'r+');
  writeSync(fd, Buffer.alloc(2 * PAGE_BYTES, 0x77), 0, 2 * PAGE_BYTES, entry.offsetBytes + entry.imageBytes - PAGE_BYTES);
  closeSync(fd);
  assert.equal(pool.lookup(key, state), 'stale');
  const { bytes, stats } = restoreBytes('a');
  assert.equal(Buffer.compare(bytes, a), 0, 'restored from a fresh slot, not the stale one');
  assert.ok((stats.prepareMs as number) > 0, 'the slot was rebuilt');
  const again = pool.lookup(key, state);
  assert.ok(again !== null && again !== 'stale' && again.generation > entry.generation);
});

test('a slot indexed for another snapshot state is stale', () => {
  const pool = passPoolOf(root, 'a');
  const other = readChain(root, 'a')[0]!;
  const forged = { ...other, chunkCrcs: other.chunkCrcs.map((c) => c ^ 1) };
  assert.equal(pool.lookup(slotKey(root, 'a'), forged), 'stale');
});

test('freed slots are reused and their old bytes never show through holes', () => {
  writeSnapshot(root, meta('b'), memory(2));
  pass.prepare(root, readChain(root, 'b'));
  const pool = passPoolOf(root, 'a');
  const b = pool.lookup(slotKey(root, 'b'), readChain(root, 'b')[0]!) as SlotEntry;
  discardPassSlot(root, 'b');
  assert.equal(pool.lookup(slotKey(root, 'b'), readChain(root, 'b')[0]!), null);
  // c has more holes than b: b's bytes must not leak through them.
  const c = new Uint8Array(PAGES * PAGE_BYTES);
  c.fill(9, 10 * PAGE_BYTES, 11 * PAGE_BYTES);
  writeSnapshot(root, meta('c'), c);
  const r = resolveImage(root, readChain(root, 'c'), 'verify');
  const entry = pool.store(slotKey(root, 'c'), r.image, r.fd);
  closeSync(r.fd);
  assert.equal(entry.offsetBytes, b.offsetBytes, 'first fit reuses the freed slot');
  assert.equal(Buffer.compare(restoreBytes('c').bytes, c), 0);
});

test('a freed slot still mapped by a restore is not reused until that restore is released', () => {
  const d = memory(4);
  writeSnapshot(root, meta('d'), d);
  const image = pass.open(root, readChain(root, 'd'));
  const m = new WebAssembly.Memory({ initial: 1, maximum: 512 });
  image.fill(m);
  const pool = passPoolOf(root, 'a');
  const held = pool.lookup(slotKey(root, 'd'), readChain(root, 'd')[0]!) as SlotEntry;
  discardPassSlot(root, 'd'); // the snapshot is deleted while a sandbox still runs from it
  const e = memory(5);
  writeSnapshot(root, meta('e'), e);
  const r = resolveImage(root, readChain(root, 'e'), 'verify');
  const placed = pool.store(slotKey(root, 'e'), r.image, r.fd);
  closeSync(r.fd);
  assert.ok(placed.offsetBytes >= held.offsetBytes + held.slotBytes || placed.offsetBytes + placed.slotBytes <= held.offsetBytes, 'not placed over the mapped slot');
  assert.equal(Buffer.compare(new Uint8Array(m.buffer, 0, d.length), d), 0, 'the running sandbox still reads its own snapshot');
  image.release();
  const index = JSON.parse(readFileSync(pool.indexPath, 'utf8')) as { retired: SlotEntry[] };
  assert.ok(index.retired.some((x) => x.generation === held.generation), 'retired while leased');
  discardPassSlot(root, 'e'); // any later free or store reclaims what nobody maps any more
  const after = JSON.parse(readFileSync(pool.indexPath, 'utf8')) as { retired: SlotEntry[] };
  assert.deepEqual(after.retired, []);
});

test('a malformed pool index is refused with a clear error, and the live slots are left as they are', () => {
  const f = memory(6);
  writeSnapshot(root, meta('f'), f);
  pass.prepare(root, readChain(root, 'f'));
  const pool = passPoolOf(root, 'f');
  const index = readFileSync(pool.indexPath);
  const slots = readFileSync(pool.poolPath);
  for (const bad of ['{"format":"thaw-pass-index-1","slots":{}}', '{"format":"thaw-pass-index-1","generation":3,"slots":{"k":{"offsetBytes":1}}}', 'not json', '']) {
    writeFileSync(pool.indexPath, bad);
    for (const attempt of [() => pass.open(root, readChain(root, 'f')), () => pass.prepare(root, readChain(root, 'f'))]) {
      assert.throws(attempt, (err: unknown) => err instanceof ThawError && err.code === 'THAW_STRATEGY_UNAVAILABLE' &&
        err.message.includes(pool.indexPath) && /refusing to use the pool/.test(err.message), `index ${JSON.stringify(bad)}`);
    }
    assert.equal(Buffer.compare(readFileSync(pool.poolPath), slots), 0, 'no slot was placed over the live ones');
  }
  writeFileSync(pool.indexPath, index);
  assert.equal(Buffer.compare(restoreBytes('f').bytes, f), 0, 'the pool serves again once its index is whole');
});

test('each function has a pool of its own: root:<gid> 2770, files 0640, unreadable by another function\'s hosts', { skip: process.getuid?.() === 0 ? false : 'needs root (chown, and a child with another uid)' }, () => {
  // Snapshots granted to two functions' groups, as the daemon grants them (jail.ts gids are 62000+).
  const groups = { g1: 62901, g2: 62902 };
  const bytes: Record<string, Uint8Array> = {};
  for (const [id, gid] of Object.entries(groups)) {
    bytes[id] = memory(gid % 7);
    writeSnapshot(root, meta(id), bytes[id]!);
    chownSync(join(root, id), 0, gid);
    pass.prepare(root, readChain(root, id));
    assert.equal(Buffer.compare(restoreBytes(id).bytes, bytes[id]!), 0);
  }
  const [p1, p2] = [passPoolOf(root, 'g1'), passPoolOf(root, 'g2')];
  assert.notEqual(p1.poolPath, p2.poolPath);
  for (const [p, gid] of [[p1, groups.g1], [p2, groups.g2]] as const) {
    const dir = statSync(p.location.dir);
    assert.deepEqual([dir.uid, dir.gid, dir.mode & 0o7777], [0, gid, 0o2770]);
    const file = statSync(p.poolPath);
    assert.deepEqual([file.uid, file.gid, file.mode & 0o777], [0, gid, 0o640]);
    assert.ok(p.entry(slotKey(root, gid === groups.g1 ? 'g1' : 'g2')), 'the slot is in its function\'s pool');
  }
  // A host of function 2 (its own uid, function 2's gid only) reads its pool, not function 1's.
  chmodSync(poolDir, 0o711); // as grantTmpfsCopy leaves the pool location: traversable, not listable
  const read = (path: string): string => spawnSync(process.execPath, ['-e', `try { require('fs').readFileSync(${JSON.stringify(path)}); console.log('read') } catch (e) { console.log(e.code) }`],
    { uid: 61902, gid: groups.g2, encoding: 'utf8', cwd: '/' }).stdout.trim();
  assert.equal(read(p2.poolPath), 'read');
  assert.equal(read(p1.poolPath), 'EACCES');
  assert.equal(read(p1.indexPath), 'EACCES');
});

test('two data directories never share a pool, even for snapshots of the same group', () => {
  const other = mkdtempSync(join(tmpdir(), 'thaw-pass-other-'));
  try {
    writeSnapshot(other, meta('a'), memory(1));
    chownSync(join(other, 'a'), 0, statSync(join(root, 'a')).gid);
    const mine = passPoolOf(root, 'a');
    const theirs = passPoolOf(other, 'a');
    assert.notEqual(theirs.indexPath, mine.indexPath);
    assert.notEqual(slotKey(other, 'a'), slotKey(root, 'a'));
  } finally {
    rmSync(other, { recursive: true, force: true });
  }
});
