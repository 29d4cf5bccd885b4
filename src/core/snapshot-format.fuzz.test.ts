// Property tests of the state-file decoder: encode/decode round-trips, and decodeState() on
// mutated encodings (checksum recomputed or not) either refuses with a catalogue code or returns
// a state whose every field has the type and range the restore path relies on.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { CHUNK_BYTES, PAGE_BYTES, decodeState, encodeState, type SnapshotMeta, type SnapshotState } from './snapshot-format.js';
import { stateArb } from '../test/fuzz/_arbitraries.js';
import { ThawError } from './errors.js';
import { readState } from '../snapshot/snapshot-io.js';
import { check, decodes, fixTrailingCrc, mutate, mutationPlanArb } from '../test/fuzz/_fuzz.js';

const CODES = ['THAW_SNAPSHOT_CORRUPT', 'THAW_SNAPSHOT_VERSION'] as const;

/** What the restore path takes for granted about a decoded state (readChain, loadChainInto, resolveImage). */
function assertUsable(s: SnapshotState): void {
  const m = s.meta as unknown as Record<string, unknown>;
  assert.ok(typeof m === 'object' && m !== null && !Array.isArray(m), 'meta is an object');
  for (const f of ['id', 'functionName', 'runtime', 'moduleDigest', 'createdAt', 'sourceSandboxId']) assert.equal(typeof m[f], 'string', `meta.${f} is a string`);
  assert.ok(m.kind === 'full' || m.kind === 'diff', 'meta.kind is full or diff');
  // readChain follows baseId of a diff snapshot: it must name a snapshot.
  if (m.kind === 'diff') assert.equal(typeof m.baseId, 'string', 'a diff names its base');
  assert.ok(Number.isSafeInteger(m.memoryBytes) && (m.memoryBytes as number) >= 0 && (m.memoryBytes as number) % PAGE_BYTES === 0, 'memoryBytes is a page multiple');
  const pages = (m.memoryBytes as number) / PAGE_BYTES;
  let prevEnd = 0;
  for (const r of s.runs) {
    assert.ok(r.pageCount > 0 && r.firstPage >= prevEnd && r.firstPage + r.pageCount <= pages, 'runs ascending, disjoint, inside memory');
    prevEnd = r.firstPage + r.pageCount;
  }
  assert.equal(s.chunkCrcs.length, Math.ceil((m.memoryBytes as number) / CHUNK_BYTES), 'one checksum per chunk');
  assert.equal(s.pageCrcs.length, pages, 'one checksum per page');
  // guestState is the runtime's business: the wasi adapter's parseState() checks its shape before a restore.
}

test('decodeState() inverts encodeState()', () => {
  check('state-roundtrip', 300, stateArb, (s) => {
    const back = decodeState(s.meta.id, encodeState(s));
    // Metadata is JSON: compare it as JSON (fast-check builds null-prototype records).
    assert.deepEqual(back.meta, JSON.parse(JSON.stringify(s.meta)));
    assert.deepEqual(back.runs, s.runs);
    assert.deepEqual([...back.chunkCrcs], [...s.chunkCrcs]);
    assert.deepEqual([...back.pageCrcs], [...s.pageCrcs]);
  });
});

test('decodeState() refuses mutated state files with a catalogue code or returns a usable state', () => {
  const seeds = fc.sample(stateArb, { seed: 7, numRuns: 24 }).map(encodeState);
  check('state-mutate', 3000, mutationPlanArb, (plan) => {
    const buf = mutate(seeds, plan.mutations, plan.seed);
    if (plan.fixChecksums) fixTrailingCrc(buf);
    // The decoder may hold the file and its parsed index: a few times the input, never what a length field claims.
    const r = decodes(CODES, 2 * buf.length + 4096, () => decodeState('fuzz', buf));
    if (r.ok) assertUsable(r.value);
  });
});

test('decodeState() refuses metadata of the wrong shape behind a valid checksum', () => {
  // Random JSON as metadata: the checksum is right, so only the decoder's own checks stand between it and readChain.
  const metaJson = fc.oneof(
    fc.jsonValue({ maxDepth: 3 }),
    fc.record({ id: fc.jsonValue({ maxDepth: 1 }), kind: fc.jsonValue({ maxDepth: 1 }), baseId: fc.jsonValue({ maxDepth: 1 }), memoryBytes: fc.oneof(fc.double(), fc.integer(), fc.constant(PAGE_BYTES)) }, { requiredKeys: [] }),
  );
  check('state-meta-shape', 1000, metaJson, (meta) => {
    const s = { meta: meta as unknown as SnapshotMeta, runs: [], chunkCrcs: new Uint32Array(0), pageCrcs: new Uint32Array(0) };
    const r = decodes(CODES, 1 << 20, () => decodeState('fuzz', encodeState(s)));
    if (r.ok) assertUsable(r.value);
  });
});

test('decodeState() refuses a state file whose metadata is JSON null', () => {
  // Minimal counterexample found by the fuzzer: JSON.parse('null') made `meta.memoryBytes` a TypeError.
  const buf = encodeState({ meta: null as unknown as SnapshotMeta, runs: [], chunkCrcs: new Uint32Array(0), pageCrcs: new Uint32Array(0) });
  assert.throws(() => decodeState('x', buf), (err: unknown) => err instanceof ThawError && err.code === 'THAW_SNAPSHOT_CORRUPT');
});

test('decodeState() refuses a diff snapshot whose baseId is not a string', () => {
  // Minimal counterexample found by the fuzzer: readChain passed baseId 0 to readState, whose path join threw a TypeError.
  const meta = { id: 'x', kind: 'diff', baseId: 0, functionName: 'f', runtime: 'wasi', moduleDigest: '', memoryBytes: 0, guestState: null, createdAt: '', sourceSandboxId: '' };
  const buf = encodeState({ meta: meta as unknown as SnapshotMeta, runs: [], chunkCrcs: new Uint32Array(0), pageCrcs: new Uint32Array(0) });
  assert.throws(() => decodeState('x', buf), (err: unknown) => err instanceof ThawError && err.code === 'THAW_SNAPSHOT_CORRUPT');
});

test('readState() refuses mutated state files on disk with a catalogue code', () => {
  const root = mkdtempSync(join(tmpdir(), 'thaw-fuzz-state-'));
  try {
    const seeds = fc.sample(stateArb, { seed: 11, numRuns: 8 }).map((s) => encodeState({ ...s, meta: { ...s.meta, id: 'snap' } }));
    mkdirSync(join(root, 'snap'));
    check('readstate-mutate', 300, mutationPlanArb, (plan) => {
      const buf = mutate(seeds, plan.mutations, plan.seed);
      if (plan.fixChecksums) fixTrailingCrc(buf);
      writeFileSync(join(root, 'snap', 'state.thaw'), buf);
      const r = decodes(CODES, 2 * buf.length + 65536, () => readState(root, 'snap'));
      if (r.ok) {
        assertUsable(r.value);
        assert.equal(r.value.meta.id, 'snap', 'readState checks the state names its snapshot');
      }
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
