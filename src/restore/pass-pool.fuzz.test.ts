// Property tests of the pass pool's index decoder (index.json beside pool.bin): whatever the
// index holds (mutated bytes of a real one, or random JSON), lookup(), entry(), store() and
// free() either throw a catalogue error or keep their contract: lookup() answers null, 'stale'
// or an entry whose slot tag matches, and a slot store() returns is current right after.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { PAGE_BYTES, type SnapshotMeta } from '../core/snapshot-format.js';
import { readChain, writeSnapshot } from '../snapshot/snapshot-io.js';
import { SLOT_ALIGN_BYTES, SnapshotPool, slotKey } from './pass-pool.js';
import { resolveImage } from './snapshot-image.js';
import { check, decodes, mutate, mutationPlanArb } from '../test/fuzz/_fuzz.js';
import { ThawError } from '../core/errors.js';

const PAGES = 16;
const CODES = ['THAW_SNAPSHOT_CORRUPT', 'THAW_INTERNAL', 'THAW_STRATEGY_UNAVAILABLE'] as const;
/** tmpfs where there is one, as the pool's default tier: fsyncs there cost nothing. */
const POOL_PARENT = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();

function meta(id: string): SnapshotMeta {
  return { id, kind: 'full', baseId: null, functionName: 'f', runtime: 'wasi', moduleDigest: 'd', memoryBytes: PAGES * PAGE_BYTES, guestState: null, createdAt: '', sourceSandboxId: '' };
}

/** Random JSON shaped roughly like an index, so the fuzzer reaches the entries' fields. */
const indexJsonArb = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.record({
    format: fc.oneof(fc.constant('thaw-pass-index-1'), fc.jsonValue({ maxDepth: 0 })),
    generation: fc.jsonValue({ maxDepth: 0 }),
    slots: fc.oneof(fc.jsonValue({ maxDepth: 1 }), fc.dictionary(fc.string({ maxLength: 4 }), fc.jsonValue({ maxDepth: 1 }))),
    retired: fc.oneof(fc.jsonValue({ maxDepth: 1 }), fc.array(fc.record({
      offsetBytes: fc.oneof(fc.nat(), fc.double(), fc.constant(SLOT_ALIGN_BYTES)), imageBytes: fc.jsonValue({ maxDepth: 0 }),
      slotBytes: fc.oneof(fc.nat(), fc.constant(SLOT_ALIGN_BYTES)), stateKey: fc.nat(), generation: fc.nat(),
    }, { requiredKeys: [] }), { maxLength: 3 })),
  }, { requiredKeys: [] }),
).map((v) => Buffer.from(JSON.stringify(v) ?? ''));

test('SnapshotPool keeps its contract whatever index.json holds', () => {
  const root = mkdtempSync(join(tmpdir(), 'thaw-fuzz-pass-'));
  const poolDir = mkdtempSync(join(POOL_PARENT, 'thaw-fuzz-pool-'));
  try {
    const ids = ['a', 'b', 'c'];
    for (const [i, id] of ids.entries()) writeSnapshot(root, meta(id), new Uint8Array(PAGES * PAGE_BYTES).fill(i + 1, 0, 5 * PAGE_BYTES));
    const resolved = ids.map((id) => resolveImage(root, readChain(root, id), 'verify'));
    const pool = new SnapshotPool({ dir: poolDir, tier: 'other', reason: 'fuzz' });
    const keys = ids.map((id) => slotKey(root, id));
    // Seed index: three slots stored, one freed (a retired entry).
    resolved.forEach((r, i) => pool.store(keys[i]!, r.image, r.fd));
    pool.free(keys[1]!);
    const seeds = [readFileSync(pool.indexPath)];
    const input = fc.oneof(mutationPlanArb.map((plan) => mutate(seeds, plan.mutations, plan.seed)), indexJsonArb);
    check('pass-index', 400, input, (index) => {
      writeFileSync(pool.indexPath, index);
      // The pool copies whole images in 8 MiB pieces and zeroes holes in 1 MiB ones.
      const limit = (8 << 20) + PAGES * PAGE_BYTES;
      for (const [i, key] of keys.entries()) {
        const state = resolved[i]!.image.state;
        const found = decodes(CODES, limit, () => pool.lookup(key, state));
        if (found.ok && found.value !== null && found.value !== 'stale') assert.equal(found.value.imageBytes, state.meta.memoryBytes);
        decodes(CODES, limit, () => pool.entry(key));
      }
      const stored = decodes(CODES, limit, () => pool.store(keys[0]!, resolved[0]!.image, resolved[0]!.fd));
      if (stored.ok) assert.deepEqual(pool.lookup(keys[0]!, resolved[0]!.image.state), stored.value, 'a slot just stored is current');
      decodes(CODES, limit, () => pool.free(keys[2]!));
    });
    for (const r of resolved) closeSync(r.fd);
  } finally {
    rmSync(root, { recursive: true, force: true });
    rmSync(poolDir, { recursive: true, force: true });
  }
});

test('SnapshotPool.store() refuses an index.json that lacks its generation rather than count it empty', () => {
  // Minimal counterexample found by the fuzzer: {"format":"thaw-pass-index-1","slots":{}} gave the
  // new slot generation NaN, written into its tag as NaN and into the index as null, so lookup()
  // called every slot stored from then on stale. Such an index is now refused (taken for an empty
  // pool, it let new slots overwrite slots live sandboxes map).
  const root = mkdtempSync(join(tmpdir(), 'thaw-fuzz-pass-'));
  const poolDir = mkdtempSync(join(POOL_PARENT, 'thaw-fuzz-pool-'));
  try {
    writeSnapshot(root, meta('a'), new Uint8Array(PAGES * PAGE_BYTES).fill(1));
    const r = resolveImage(root, readChain(root, 'a'), 'verify');
    const pool = new SnapshotPool({ dir: poolDir, tier: 'other', reason: 'fuzz' });
    writeFileSync(pool.indexPath, '{"format":"thaw-pass-index-1","slots":{}}');
    assert.throws(() => pool.store(slotKey(root, 'a'), r.image, r.fd), (err: unknown) => err instanceof ThawError && err.code === 'THAW_STRATEGY_UNAVAILABLE');
    rmSync(pool.indexPath);
    const entry = pool.store(slotKey(root, 'a'), r.image, r.fd);
    closeSync(r.fd);
    assert.deepEqual(pool.lookup(slotKey(root, 'a'), r.image.state), entry);
  } finally {
    rmSync(root, { recursive: true, force: true });
    rmSync(poolDir, { recursive: true, force: true });
  }
});
