// Property test of the verification sidecar decoder (`flat.img.verified`, JSON): the flattened
// image of a diff chain takes its page index from it. Whatever the sidecar holds, resolveImage()
// refuses with THAW_SNAPSHOT_CORRUPT or returns runs inside guest memory, ascending and disjoint
// (pageMapOf and every lazy strategy walk them page by page).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { PAGE_BYTES, type SnapshotMeta } from '../core/snapshot-format.js';
import { readChain, writeSnapshot } from '../snapshot/snapshot-io.js';
import { FLAT_FILE, resolveImage, type SnapshotImage } from './snapshot-image.js';
import { check, decodes, mutate, mutationPlanArb } from '../test/fuzz/_fuzz.js';

const PAGES = 32;
const PARENT = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();

function meta(id: string, baseId: string | null): SnapshotMeta {
  return { id, kind: baseId ? 'diff' : 'full', baseId, functionName: 'f', runtime: 'wasi', moduleDigest: 'd', memoryBytes: PAGES * PAGE_BYTES, guestState: null, createdAt: '', sourceSandboxId: '' };
}

function assertUsable(image: SnapshotImage): void {
  let prevEnd = 0;
  for (const r of image.runs) {
    assert.ok(Number.isSafeInteger(r.firstPage) && Number.isSafeInteger(r.pageCount), 'runs are integers');
    assert.ok(r.pageCount > 0 && r.firstPage >= prevEnd && r.firstPage + r.pageCount <= PAGES, 'runs ascending, disjoint, inside memory');
    prevEnd = r.firstPage + r.pageCount;
  }
}

/** A diff chain a <- b, its flat image built once; returns the root and the sidecar's bytes. */
function chainWithFlatImage(): { root: string; sidecar: string; seed: Buffer } {
  const root = mkdtempSync(join(PARENT, 'thaw-fuzz-flat-'));
  const base = new Uint8Array(PAGES * PAGE_BYTES).fill(1, 0, 8 * PAGE_BYTES);
  writeSnapshot(root, meta('a', null), base);
  const top = Uint8Array.from(base).fill(2, 20 * PAGE_BYTES, 22 * PAGE_BYTES);
  writeSnapshot(root, meta('b', 'a'), top, base);
  closeSync(resolveImage(root, readChain(root, 'b')).fd);
  const sidecar = join(root, 'b', `${FLAT_FILE}.verified`);
  return { root, sidecar, seed: readFileSync(sidecar) };
}

test('resolveImage() refuses a damaged flat-image sidecar with THAW_SNAPSHOT_CORRUPT or returns runs inside memory', () => {
  const { root, sidecar, seed } = chainWithFlatImage();
  try {
    const chain = readChain(root, 'b');
    const parsed = JSON.parse(seed.toString('utf8')) as Record<string, unknown>;
    const runsArb = fc.oneof(
      fc.jsonValue({ maxDepth: 2 }),
      fc.array(fc.tuple(fc.oneof(fc.integer({ min: -2, max: PAGES + 2 }), fc.double(), fc.constant(2 ** 40)), fc.oneof(fc.integer({ min: -2, max: PAGES + 2 }), fc.double(), fc.constant(2 ** 40))), { maxLength: 4 }),
    );
    const input = fc.oneof(
      mutationPlanArb.map((plan) => mutate([seed], plan.mutations, plan.seed)),
      // The stat key and state key kept, so the sidecar is trusted and only its runs are wrong.
      runsArb.map((runs) => Buffer.from(JSON.stringify({ ...parsed, runs }))),
    );
    check('flat-sidecar', 400, input, (bytes) => {
      writeFileSync(sidecar, bytes);
      // Writing the sidecar does not touch flat.img, so a sidecar naming its stat is trusted.
      const r = decodes(['THAW_SNAPSHOT_CORRUPT'], 2 * PAGES * PAGE_BYTES + (1 << 20), () => resolveImage(root, chain));
      if (r.ok) {
        closeSync(r.value.fd);
        assertUsable(r.value.image);
      }
      writeFileSync(sidecar, seed);
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("resolveImage() rebuilds the flat image when its sidecar's runs leave guest memory", () => {
  // Minimal counterexample found by the fuzzer: runs [[0, 0]] (and [[0, 2**40]]) in a sidecar
  // naming the file were returned as the image's page index (pageMapOf then loops 2**40 times).
  const { root, sidecar, seed } = chainWithFlatImage();
  try {
    const good = resolveImage(root, readChain(root, 'b'));
    closeSync(good.fd);
    for (const runs of [[[0, 0]], [[0, 2 ** 40]]]) {
      writeFileSync(sidecar, JSON.stringify({ ...(JSON.parse(seed.toString('utf8')) as object), runs }));
      const r = resolveImage(root, readChain(root, 'b'));
      closeSync(r.fd);
      assert.equal(r.built, true, 'rebuilt from the chain');
      assert.deepEqual(r.image.runs, good.image.runs);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
