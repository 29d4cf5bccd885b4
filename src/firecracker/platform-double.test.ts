// Firecracker functions through the platform (deploy, cold boot, invoke over vsock, full and diff
// snapshots sealed as Thaw snapshots, restores served by the page server with each strategy),
// with a TEST DOUBLE of Firecracker's API server in firecracker's place (api-double.ts): no VM
// runs, but every request is Firecracker's, and each restore's guest memory comes through a real
// userfaultfd handshake from the test VMM and is checked against the snapshot's bytes.

import { existsSync, openSync, readFileSync, closeSync, writeSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { newPlatform, rejectsWith, tempDataDir, text } from '../test/helpers.js';
import type { Platform } from '../platform/platform.js';
import { fakeGuestFiles, useApiDouble } from './api-double-fixture.js';
import { testVmmUnavailable } from './test-vmm.js';

const skip = testVmmUnavailable();

interface GuestOutput { invocations: number; path: string; echo: string }
const out = (b: Uint8Array): GuestOutput => JSON.parse(text(b)) as GuestOutput;

describe('Firecracker functions on the platform, with the API test double (not Firecracker)', { skip }, () => {
  let p: Platform;
  let files: { kernel: string; rootfs: string };
  let double: ReturnType<typeof useApiDouble>;
  let data: string;
  const manifest = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    name: 'vm', runtime: 'firecracker', rootfs: files.rootfs, memoryMiB: 16, firecracker: { kernel: files.kernel, vsockPort: 5000, invokePath: '/run' }, ...extra,
  });

  before(async () => {
    const dir = tempDataDir();
    double = useApiDouble(dir);
    files = fakeGuestFiles(dir);
    data = tempDataDir();
    p = newPlatform({ dataDir: data, spareHosts: 0 });
    await p.deployFunction(manifest(), readFileSync(files.rootfs));
  });
  after(async () => {
    await p.close();
  });

  it('boots cold, invokes over vsock, keeps the microVM warm', async () => {
    const cold = await p.invoke({ function: 'vm', mode: 'cold', input: Buffer.from('hello') });
    assert.equal(cold.start, 'cold');
    assert.deepEqual(out(cold.output), { invocations: 1, path: '/run', echo: 'hello' });
    const warm = await p.invoke({ function: 'vm', mode: 'warm', input: Buffer.from('again'), sandboxId: cold.sandboxId });
    assert.deepEqual(out(warm.output), { invocations: 2, path: '/run', echo: 'again' });
    const boot = double.log().filter((r) => r.method === 'PUT' && r.path === '/boot-source').pop()!;
    assert.deepEqual(boot.body, { kernel_image_path: files.kernel, boot_args: 'console=ttyS0 reboot=k panic=1 pci=off' });
    await p.deleteSandbox(cold.sandboxId);
  });

  it('snapshots (full, then diff of a restored microVM) and restores through the page server with every strategy that applies', async () => {
    const cold = await p.invoke({ function: 'vm', mode: 'cold', input: Buffer.from('a') });
    await p.invoke({ function: 'vm', mode: 'warm', input: Buffer.from('b'), sandboxId: cold.sandboxId });
    const full = await p.createSnapshot({ sandboxId: cold.sandboxId });
    assert.equal(full.runtime, 'firecracker');
    assert.equal(full.memoryBytes, 16 << 20);
    // The guest state (2 invocations) is in the snapshot: every restore continues from it.
    for (const strategy of ['uffd', 'eager', 'reap', 'reap', 'sabre']) {
      const r = await p.invoke({ function: 'vm', mode: 'snapshot', snapshotId: full.id, strategy, input: Buffer.from(strategy), keep: false });
      assert.equal(r.start, 'snapshot');
      assert.deepEqual(out(r.output), { invocations: 3, path: '/run', echo: strategy }, strategy);
    }
    assert.ok(existsSync(join(data, 'snapshots', full.id, 'fc-ws.reap')), 'reap recorded its working set beside the snapshot');
    await rejectsWith(p.invoke({ function: 'vm', mode: 'snapshot', snapshotId: full.id, strategy: 'faasnap', input: Buffer.from('x') }), 'THAW_STRATEGY_UNAVAILABLE');
    await rejectsWith(p.invoke({ function: 'vm', mode: 'snapshot', snapshotId: full.id, strategy: 'vanilla', input: Buffer.from('x') }), 'THAW_STRATEGY_UNAVAILABLE');

    const auto = await p.invoke({ function: 'vm', mode: 'snapshot', snapshotId: full.id, input: Buffer.from('c') });
    assert.equal(auto.strategy, 'reap');
    assert.match(auto.strategyReason ?? '', /Firecracker/);
    assert.equal(out(auto.output).invocations, 3);
    const diff = await p.createSnapshot({ sandboxId: auto.sandboxId, kind: 'diff' });
    assert.equal(diff.baseId, full.id);
    assert.ok(diff.diskBytes < full.diskBytes / 4, `diff ${diff.diskBytes} bytes vs full ${full.diskBytes}`);
    for (const strategy of ['uffd', 'eager']) {
      const r = await p.invoke({ function: 'vm', mode: 'snapshot', snapshotId: diff.id, strategy, input: Buffer.from('d'), keep: false });
      assert.deepEqual(out(r.output), { invocations: 4, path: '/run', echo: 'd' });
    }
    // A diff holds what was written since the VM's last snapshot or restore: no other base applies.
    const other = await p.invoke({ function: 'vm', mode: 'cold', input: Buffer.from('e') });
    await rejectsWith(p.createSnapshot({ sandboxId: other.sandboxId, kind: 'diff', baseId: full.id }), 'THAW_REQUEST_INVALID');
    // Each restore's page server said how it ran in the function's log: jailed when hosts are.
    const started = (await p.functionLogs('vm')).filter((l) => l.text.startsWith('thaw page server: {"event":"listening"'));
    assert.ok(started.length >= 8);
    if (p.jail.jailed) for (const l of started) assert.match(l.text, /"layer":"landlock","active":true/);
    const loads = double.log().filter((r) => r.path === '/snapshot/load');
    assert.ok(loads.every((r) => (r.body?.mem_backend as { backend_type?: string }).backend_type === 'Uffd'));
    // Every restore but faasnap's (no loading set: the page server refused the handshake) loaded.
    assert.deepEqual(loads.filter((r) => r.status !== 204).length, 1);
    assert.ok(loads.filter((r) => r.status === 204).length >= 8);
  });

  it('refuses a restore from a snapshot whose memory was changed on disk, and keeps serving', async () => {
    const cold = await p.invoke({ function: 'vm', mode: 'cold', input: Buffer.from('x') });
    const snap = await p.createSnapshot({ sandboxId: cold.sandboxId });
    const img = join(data, 'snapshots', snap.id, 'memory.img');
    const fd = openSync(img, 'r+');
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, 4096 + 7);
    b[0]! ^= 0x40;
    writeSync(fd, b, 0, 1, 4096 + 7);
    closeSync(fd);
    const e = await rejectsWith(p.invoke({ function: 'vm', mode: 'snapshot', snapshotId: snap.id, strategy: 'uffd', input: Buffer.from('y') }), 'THAW_SNAPSHOT_CORRUPT');
    assert.match(e.message, /CRC|checksum/i);
    const ok = await p.invoke({ function: 'vm', mode: 'warm', sandboxId: cold.sandboxId, input: Buffer.from('z') });
    assert.equal(out(ok.output).invocations, 2);
  });

  it('reports a failing guest as the function\'s error and stops its microVM', async () => {
    const e = await rejectsWith(p.invoke({ function: 'vm', mode: 'cold', input: Buffer.from('fail') }), 'THAW_GUEST_TRAP');
    assert.match(e.message, /answered 500/);
  });

  it('refuses manifests that do not describe a microVM', async () => {
    await rejectsWith(p.deployFunction({ name: 'vm2', runtime: 'firecracker', rootfs: files.rootfs }, readFileSync(files.rootfs)), 'THAW_CONFIG_INVALID');
    await rejectsWith(p.deployFunction(manifest({ name: 'vm2', module: 'x.wasm' }), readFileSync(files.rootfs)), 'THAW_CONFIG_INVALID');
    await rejectsWith(p.deployFunction(manifest({ name: 'vm2', firecracker: { kernel: files.kernel, port: 1 } }), readFileSync(files.rootfs)), 'THAW_CONFIG_INVALID');
    await rejectsWith(p.deployFunction(manifest({ name: 'vm2' }), Buffer.from('not an ext4 image')), 'THAW_CONFIG_INVALID');
    await rejectsWith(p.deployFunction(manifest({ name: 'vm2', firecracker: { kernel: files.rootfs } }), readFileSync(files.rootfs)), 'THAW_CONFIG_INVALID');
    await rejectsWith(p.deployFunction({ name: 'w', runtime: 'wasi', module: 'x.wasm', firecracker: {} }, Buffer.alloc(8)), 'THAW_CONFIG_INVALID');
  });
});
