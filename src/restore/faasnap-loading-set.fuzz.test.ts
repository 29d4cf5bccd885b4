// Property tests of FaaSnap's loading-set decoder (ls.faasnap): openLoadingSet() on mutated files
// (checksums recomputed or not) either refuses with THAW_SNAPSHOT_CORRUPT or returns regions the
// faasnap strategy can map: disjoint, inside guest memory, their data exactly filling the file.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { PAGE_BYTES } from '../core/snapshot-format.js';
import { loadingSetPath, openLoadingSet, writeLoadingSet, type LoadingRegion, type LoadingSet } from './faasnap-loading-set.js';
import { runsArb } from '../test/fuzz/_arbitraries.js';
import { check, decodes, mutate, mutationPlanArb } from '../test/fuzz/_fuzz.js';

const HEADER_BYTES = 28;
const ENTRY_BYTES = 12;
const MEMORY_PAGES = 128;

/** Disjoint regions, each stamped with a layer, ordered by layer then page (as buildLoadingSet orders them). */
const regionsArb: fc.Arbitrary<LoadingRegion[]> = runsArb(MEMORY_PAGES).chain((runs) =>
  fc.array(fc.nat(5), { minLength: runs.length, maxLength: runs.length }).map((layers) =>
    runs.map((r, i) => ({ ...r, layer: layers[i]! })).sort((a, b) => a.layer - b.layer || a.firstPage - b.firstPage)));

/** Recomputes the table and data checksums where the (possibly mutated) header puts them. */
function fixChecksums(buf: Buffer): void {
  if (buf.length < HEADER_BYTES) return;
  const tableEnd = HEADER_BYTES + buf.readUInt32LE(16) * ENTRY_BYTES + 4;
  const dataStart = Math.ceil(tableEnd / PAGE_BYTES) * PAGE_BYTES;
  if (dataStart <= buf.length) buf.writeUInt32LE(crc32(buf.subarray(dataStart)), 24);
  if (tableEnd <= buf.length) buf.writeUInt32LE(crc32(buf.subarray(0, tableEnd - 4)), tableEnd - 4);
}

function assertUsable(set: LoadingSet, fileBytes: number): void {
  const seen = new Uint8Array(MEMORY_PAGES);
  let pages = 0;
  for (const r of set.regions) {
    assert.ok(r.pageCount > 0 && r.firstPage + r.pageCount <= MEMORY_PAGES, 'regions inside memory');
    for (let p = r.firstPage; p < r.firstPage + r.pageCount; p++) {
      assert.equal(seen[p], 0, 'regions disjoint');
      seen[p] = 1;
    }
    pages += r.pageCount;
  }
  assert.equal(set.dataStartBytes % PAGE_BYTES, 0, 'data page aligned (it is mapped)');
  assert.equal(set.dataStartBytes + pages * PAGE_BYTES, fileBytes, 'data fills the file');
}

test('openLoadingSet() refuses mutated loading sets with THAW_SNAPSHOT_CORRUPT or returns mappable regions', () => {
  const dir = mkdtempSync(join(tmpdir(), 'thaw-fuzz-faasnap-'));
  try {
    const memory = Buffer.alloc(MEMORY_PAGES * PAGE_BYTES);
    for (let i = 0; i < memory.length; i += 97) memory[i] = i & 0xff;
    writeFileSync(join(dir, 'memory.img'), memory);
    const imageFd = openSync(join(dir, 'memory.img'), 'r');
    let seeds: Buffer[];
    try {
      seeds = fc.sample(regionsArb, { seed: 4, numRuns: 10 }).map((regions) => {
        rmSync(loadingSetPath(dir), { force: true }); // a recording never replaces one that is there
        writeLoadingSet(dir, 'x', imageFd, MEMORY_PAGES, 7, regions);
        return readFileSync(loadingSetPath(dir));
      });
    } finally {
      closeSync(imageFd);
    }
    check('faasnap-mutate', 800, mutationPlanArb, (plan) => {
      const buf = mutate(seeds, plan.mutations, plan.seed);
      if (plan.fixChecksums) fixChecksums(buf);
      writeFileSync(loadingSetPath(dir), buf);
      const r = decodes(['THAW_SNAPSHOT_CORRUPT'], 2 * buf.length + (1 << 20), () => openLoadingSet(dir, 'x', MEMORY_PAGES));
      if (r.ok && r.value !== null) {
        closeSync(r.value.fd);
        assertUsable(r.value.set, buf.length);
      }
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
