// Every offload tier over a real Wasm memory in this process: pages of random bytes, a repeated
// pattern, zeros and never-touched pages are offloaded, dropped and faulted back by the native
// thread on first touch; the whole memory is compared with a copy taken before. Also: write-
// protect stage tracking sees exactly the pages written, including in memory grown later.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomFillSync } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { GuestOffloader, residentBytes } from '../../native/index.js';
import { startMemoryServer, type MemoryServer } from '../remote-server.js';
import { PAGE_BYTES } from '../../core/snapshot-format.js';
import { TIER_IDS } from './index.js';

const dir = mkdtempSync(join(tmpdir(), 'thaw-tiers-'));
let server: MemoryServer;
let relayed: MemoryServer; // never in a network namespace: its clients go through the byte relay
before(async () => {
  server = await startMemoryServer({ socketPath: join(dir, 'memory.sock'), gid: process.getgid?.() ?? 0, latencyUs: 0 });
  relayed = await startMemoryServer({ socketPath: join(dir, 'relayed.sock'), gid: process.getgid?.() ?? 0, latencyUs: 20, isolate: false });
});
after(async () => {
  await server.kill();
  await relayed.kill();
  rmSync(dir, { recursive: true, force: true });
});

const PAGES = 512; // 2 MiB (32 Wasm pages)

/** A memory whose pages are random, patterned, zero-written or never touched, in a fixed mix. */
function guest(): { memory: WebAssembly.Memory; bytes: Uint8Array } {
  const memory = new WebAssembly.Memory({ initial: (PAGES * PAGE_BYTES) / 65536 });
  const bytes = new Uint8Array(memory.buffer);
  for (let p = 0; p < PAGES; p++) {
    const page = bytes.subarray(p * PAGE_BYTES, (p + 1) * PAGE_BYTES);
    if (p % 4 === 0) randomFillSync(page);
    else if (p % 4 === 1) page.fill(p & 255);
    else if (p % 4 === 2) page[0] = 0; // written, still zero
  }
  return { memory, bytes };
}

const allPages = Uint32Array.from({ length: PAGES }, (_, i) => i);

const cases = [...TIER_IDS.map((tier) => ({ tier, label: tier, relay: false })), { tier: 'remote' as const, label: 'remote (relayed, 20 us)', relay: true }];
type Case = (typeof cases)[number];

/** An offloader over `memory` ready to use the case's tier (`image`: the file tier's snapshot image). */
function offloaderFor(memory: WebAssembly.Memory, c: Case, image: string): GuestOffloader {
  const o = GuestOffloader.start(memory.buffer)!;
  if (c.tier === 'file') {
    const fd = openSync(image, 'r');
    o.setImage(fd);
    closeSync(fd);
  }
  if (c.tier === 'remote') o.connect((c.relay ? relayed : server).socketPath, 5000);
  return o;
}

for (const c of cases) {
  const { tier, label } = c;
  test(`${label}: offloaded pages fault back byte-exact, twice`, () => {
    const { memory, bytes } = guest();
    const image = join(dir, `image-${tier}.img`);
    writeFileSync(image, bytes);
    // Pages written after the "snapshot": the file tier must keep them, the others take them.
    for (let p = 3; p < PAGES; p += 16) bytes[p * PAGE_BYTES + 7] = bytes[p * PAGE_BYTES + 7]! ^ 0xff;
    const expected = Uint8Array.from(bytes);
    const o = offloaderFor(memory, c, image);
    try {
      for (let round = 0; round < 2; round++) {
        const before = residentBytes(memory.buffer, 0, memory.buffer.byteLength);
        const moved = o.offload(tier, allPages);
        const dirty = Math.ceil((PAGES - 3) / 16);
        if (tier === 'file') assert.ok(moved > 0 && moved <= PAGES - dirty, `moved ${moved}`);
        else assert.ok(moved >= PAGES - PAGES / 4, `moved ${moved}`);
        assert.equal(residentBytes(memory.buffer, 0, memory.buffer.byteLength), before - moved * PAGE_BYTES);
        assert.equal(o.stats().heldPages, moved);
        assert.ok(Buffer.from(bytes).equals(Buffer.from(expected)), 'every byte comes back');
        assert.equal(o.stats().heldPages, 0);
      }
      const st = o.stats();
      assert.equal(st.faultedPages, st.offloadedPages);
      assert.equal(st.failure, '');
    } finally {
      o.stop('fence');
    }
  });
}

for (const c of cases) {
  const { tier, label } = c;
  test(`${label}: a memory read in order comes back byte-exact in runs that grow past 32 pages`, () => {
    const memory = new WebAssembly.Memory({ initial: (PAGES * PAGE_BYTES) / 65536 });
    const bytes = new Uint8Array(memory.buffer);
    randomFillSync(bytes);
    const image = join(dir, `image-seq-${tier}.img`);
    writeFileSync(image, bytes);
    const expected = Uint8Array.from(bytes);
    const o = offloaderFor(memory, c, image);
    try {
      assert.equal(o.offload(tier, allPages), PAGES);
      assert.ok(Buffer.from(bytes).equals(Buffer.from(expected)), 'every byte comes back');
      const st = o.stats();
      assert.equal(st.faultedPages, PAGES);
      // 32, 64, 128, 256 pages, then the rest: fewer faults than 32 pages each would take.
      assert.ok(st.faults < PAGES / 32, `${st.faults} faults for ${PAGES} pages`);
      assert.equal(st.failure, '');
    } finally {
      o.stop('fence');
    }
  });
}

test('the memory server outlives clients that leave before its greeting and ones that speak garbage', async () => {
  for (const socketPath of [server.socketPath, relayed.socketPath]) {
    for (let i = 0; i < 20; i++) connect(socketPath).on('error', () => undefined).destroy();
    const rude = connect(socketPath);
    rude.on('error', () => undefined);
    rude.resume(); // read (and drop) whatever the server says, up to its close
    rude.write(Buffer.alloc(64, 0x58)); // 'X' * 64: no such op
    await new Promise<void>((resolve) => rude.on('close', () => resolve()));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const { memory, bytes } = guest();
    const expected = Uint8Array.from(bytes);
    const o = GuestOffloader.start(memory.buffer)!;
    try {
      o.connect(socketPath, 5000);
      assert.ok(o.offload('remote', allPages) > 0);
      assert.ok(Buffer.from(bytes).equals(Buffer.from(expected)), 'every byte comes back');
    } finally {
      o.stop('fence');
    }
  }
});

test('write-protect stages: a scan lists exactly the pages written since the last one, grown memory too', () => {
  const { memory } = guest();
  const o = GuestOffloader.start(memory.buffer)!;
  try {
    assert.equal(o.scan(true).reduce((a, b) => a + b, 0), 0);
    const bytes = new Uint8Array(memory.buffer);
    for (const p of [1, 2, 100, 511]) bytes[p * PAGE_BYTES + 5] = 1;
    void bytes[300 * PAGE_BYTES]; // a read is not a write
    const written = o.scan(true);
    assert.deepEqual([...written.keys()].filter((p) => written[p]), [1, 2, 100, 511]);
    assert.equal(o.scan(true).reduce((a, b) => a + b, 0), 0, 'the scan re-armed them');
    memory.grow(1);
    o.extend(memory.buffer);
    new Uint8Array(memory.buffer)[PAGES * PAGE_BYTES + 3 * PAGE_BYTES] = 9;
    const grown = o.scan(true);
    assert.equal(grown.length, PAGES + 16);
    assert.deepEqual([...grown.keys()].filter((p) => grown[p]), [PAGES + 3]);
  } finally {
    o.stop('fence');
  }
});
