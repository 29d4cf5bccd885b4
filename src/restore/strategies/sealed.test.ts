// sealed: the image the daemon checked cannot be changed by anyone holding its fd afterwards, a
// host takes images only sealed and over its channel, and restores from a passed image are exact.

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { closeSync, ftruncateSync, mkdtempSync, rmSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PAGE_BYTES, type SnapshotMeta } from '../../core/snapshot-format.js';
import { readChain, writeSnapshot } from '../../snapshot/snapshot-io.js';
import { sealedChannel, sealedCreate, sealedSend } from '../../native/index.js';
import { markDirtySpans } from '../guest-memory.js';
import { adoptSealedImages, discardSealedImage, heldSealedImage, sealed, sealedKey } from './sealed.js';

const SIZE = 4 << 20;
const root = mkdtempSync(join(tmpdir(), 'thaw-sealed-'));
const memory = randomBytes(SIZE);
for (let p = 0; p < SIZE / PAGE_BYTES; p += 3) memory.fill(0, p * PAGE_BYTES, (p + 1) * PAGE_BYTES);
const meta: SnapshotMeta = {
  id: 's1', kind: 'full', baseId: null, functionName: 'synthetic', runtime: 'wasi', moduleDigest: 'test',
  memoryBytes: SIZE, guestState: null, createdAt: new Date(0).toISOString(), sourceSandboxId: 'test',
};
writeSnapshot(root, meta, memory);
after(() => {
  discardSealedImage(root, 's1');
  rmSync(root, { recursive: true, force: true });
});

function restored(): Uint8Array {
  const image = sealed.open(root, readChain(root, 's1'));
  const mem = new WebAssembly.Memory({ initial: SIZE / 65536 });
  new Uint8Array(mem.buffer).fill(0xa5); // a used shell: hole pages must come back zero
  image.fill(mem);
  image.release();
  return new Uint8Array(mem.buffer);
}

describe('sealed', () => {
  test('the prepared image refuses writes, truncation and growth from anyone holding its fd', () => {
    assert.equal(sealed.prepare(root, readChain(root, 's1')).built, true);
    const fd = heldSealedImage(root, 's1');
    assert.ok(fd !== null);
    assert.throws(() => writeSync(fd, Buffer.from([1]), 0, 1, PAGE_BYTES + 5), { code: 'EPERM' });
    assert.throws(() => ftruncateSync(fd, 0), { code: 'EPERM' });
    assert.throws(() => ftruncateSync(fd, SIZE * 2), { code: 'EPERM' });
    assert.ok(Buffer.compare(restored(), memory) === 0, 'restores byte for byte');
  });

  test('a host takes an image passed over its channel, and a restore from it is exact', () => {
    sealed.prepare(root, readChain(root, 's1'));
    const fd = heldSealedImage(root, 's1')!;
    const [daemonEnd, hostEnd] = sealedChannel();
    try {
      sealedSend(daemonEnd, sealedKey(root, 's1'), fd);
      discardSealedImage(root, 's1'); // the "host" below holds only what arrives on the channel
      adoptSealedImages(hostEnd);
      assert.ok(heldSealedImage(root, 's1') !== null, 'adopted');
      assert.ok(Buffer.compare(restored(), memory) === 0);
    } finally {
      closeSync(daemonEnd);
      closeSync(hostEnd);
    }
  });

  test('a memory whose non-zero pages were recorded (a shell) gets exactly those of them that are holes cleared', () => {
    const image = sealed.open(root, readChain(root, 's1'));
    const mem = new WebAssembly.Memory({ initial: SIZE / 65536 + 4 });
    const bytes = new Uint8Array(mem.buffer);
    // Pages 0-9 (holes at 0, 3, 6, 9) and two pages past the snapshot are dirty, and recorded so.
    bytes.fill(0xa5, 0, 10 * PAGE_BYTES);
    bytes.fill(0xa5, SIZE + PAGE_BYTES, SIZE + 3 * PAGE_BYTES);
    markDirtySpans(mem, new Float64Array([0, 10 * PAGE_BYTES, SIZE + PAGE_BYTES, 2 * PAGE_BYTES]));
    image.fill(mem);
    image.release();
    const after = new Uint8Array(mem.buffer);
    assert.ok(Buffer.compare(after.subarray(0, SIZE), memory) === 0, 'restores byte for byte');
    assert.ok(after.subarray(SIZE).every((b) => b === 0), 'zero past the snapshot');
  });

  test('an fd that is not sealed is not adopted', () => {
    const [daemonEnd, hostEnd] = sealedChannel();
    const unsealed = sealedCreate(SIZE);
    try {
      sealedSend(daemonEnd, sealedKey(root, 'forged'), unsealed);
      adoptSealedImages(hostEnd);
      assert.equal(heldSealedImage(root, 'forged'), null);
    } finally {
      for (const fd of [daemonEnd, hostEnd, unsealed]) closeSync(fd);
    }
  });
});
