// pass: the pool's slot index survives a restart (a fresh process finds the slot without
// copying), a stale slot is never mapped (rebuilt instead), freed space is reused with its old
// bytes cleared, and stats name the tier.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PAGE_BYTES, type SnapshotMeta } from '../../core/snapshot-format.js';
import { readChain, writeSnapshot } from '../../snapshot/snapshot-io.js';
import { SnapshotPool, poolLocation, slotKey, type SlotEntry } from '../pass-pool.js';
import { resolveImage } from '../snapshot-image.js';
import { discardPassSlot, pass } from './pass.js';

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
    import { SnapshotPool, poolLocation, slotKey } from ${JSON.stringify(new URL('../pass-pool.js', import.meta.url).href)};
    import { readChain } from ${JSON.stringify(new URL('../../snapshot/snapshot-io.js', import.meta.url).href)};
    const pool = new SnapshotPool(poolLocation());
    const chain = readChain(${JSON.stringify(root)}, 'a');
    process.stdout.write(JSON.stringify(pool.lookup(slotKey(${JSON.stringify(root)}, 'a'), chain[0])));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, THAW_PMEM_DIR: poolDir } });
  const found = JSON.parse(String(out)) as SlotEntry;
  const index = JSON.parse(readFileSync(join(poolDir, 'index.json'), 'utf8')) as { slots: Record<string, SlotEntry> };
  assert.deepEqual(found, index.slots[slotKey(root, 'a')]);
});

test('a stale slot (its tag overwritten) is refused by lookup() and rebuilt by open(), never mapped', () => {
  const pool = new SnapshotPool(poolLocation());
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
  const pool = new SnapshotPool(poolLocation());
  const other = readChain(root, 'a')[0]!;
  const forged = { ...other, chunkCrcs: other.chunkCrcs.map((c) => c ^ 1) };
  assert.equal(pool.lookup(slotKey(root, 'a'), forged), 'stale');
});

test('freed slots are reused and their old bytes never show through holes', () => {
  writeSnapshot(root, meta('b'), memory(2));
  pass.prepare(root, readChain(root, 'b'));
  const pool = new SnapshotPool(poolLocation());
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
  const pool = new SnapshotPool(poolLocation());
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
  const index = JSON.parse(readFileSync(join(poolDir, 'index.json'), 'utf8')) as { retired: SlotEntry[] };
  assert.ok(index.retired.some((x) => x.generation === held.generation), 'retired while leased');
  discardPassSlot(root, 'e'); // any later free or store reclaims what nobody maps any more
  const after = JSON.parse(readFileSync(join(poolDir, 'index.json'), 'utf8')) as { retired: SlotEntry[] };
  assert.deepEqual(after.retired, []);
});
