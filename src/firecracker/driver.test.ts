// The Firecracker driver on a KVM host, with a real firecracker: boot, full and diff snapshots,
// and restores served by the page server with each strategy; and a Firecracker function through
// the platform. Needs /dev/kvm, a firecracker binary ($THAW_FIRECRACKER or PATH), a guest kernel
// ($THAW_FC_KERNEL, an uncompressed vmlinux) and a rootfs ($THAW_FC_ROOTFS, ext4); the rebase
// test also needs snapshot-editor on PATH; the platform test needs a rootfs whose init serves
// HTTP on vsock port $THAW_FC_INVOKE_PORT (default 5000), POST $THAW_FC_INVOKE_PATH (default
// /invoke). Skips, saying which is missing, anywhere else (see README "Firecracker microVMs").
// driver-double.test.ts and platform-double.test.ts run the same conversations against a test
// double of Firecracker's API server where there is no firecracker.

import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { newPlatform, tempDataDir } from '../test/helpers.js';
import { readFileSync } from 'node:fs';
import { firecrackerBinary, firecrackerSupport, FirecrackerVm, rebaseDiff, restoreWithPageServer } from './driver.js';

function skipReason(): string | false {
  if (process.env.THAW_FIRECRACKER_IS_TEST_DOUBLE === '1') return 'THAW_FIRECRACKER names the API test double: these tests need a real firecracker';
  const support = firecrackerSupport();
  if (!support.ok) return support.reason;
  if (!process.env.THAW_FC_KERNEL || !process.env.THAW_FC_ROOTFS) return 'set THAW_FC_KERNEL (vmlinux) and THAW_FC_ROOTFS (ext4 image) to boot a guest';
  return false;
}

const skip = skipReason();

async function bootAndSnapshot(dir: string): Promise<{ full: { state: string; memory: string }; diff: { state: string; memory: string } }> {
  const rootfs = join(dir, 'rootfs.ext4');
  copyFileSync(process.env.THAW_FC_ROOTFS!, rootfs);
  const vm = await FirecrackerVm.start(dir, 'boot');
  try {
    await vm.boot({ kernel: process.env.THAW_FC_KERNEL!, rootfs, memMib: 128 });
    await new Promise((r) => setTimeout(r, 1500)); // let the guest boot a little
    await vm.pause();
    const full = await vm.snapshot('Full', { state: join(dir, 'full.state'), memory: join(dir, 'full.mem') });
    await vm.resume();
    await new Promise((r) => setTimeout(r, 500));
    await vm.pause();
    const diff = await vm.snapshot('Diff', { state: join(dir, 'diff.state'), memory: join(dir, 'diff.mem') });
    return { full, diff };
  } finally {
    await vm.kill();
  }
}

describe('Firecracker driver (KVM host)', { skip }, () => {
  it('boots, snapshots and restores through the page server with every strategy that applies', async () => {
    const dir = tempDataDir();
    const { full } = await bootAndSnapshot(dir);
    for (const strategy of ['uffd', 'eager', 'reap', 'reap']) {
      const run = join(dir, `run-${strategy}-${Math.random().toString(36).slice(2)}`);
      mkdirSync(run);
      const r = await restoreWithPageServer(run, full.state, full.memory, strategy);
      try {
        await new Promise((res) => setTimeout(res, 500));
        assert.equal(await r.vm.state(), 'Running');
      } finally {
        await r.stop();
      }
      const end = r.events.find((e) => e.event === 'session-end');
      assert.ok(end && end.event === 'session-end' && !end.error, JSON.stringify(r.events));
      assert.ok(end.stats.copiedPages > 0, 'the guest ran on pages the server installed');
    }
  });

  it('restores a diff snapshot rebased onto its base', { skip: firecrackerBinary(process.env, 'snapshot-editor') ? false : 'no snapshot-editor on PATH' }, async () => {
    const dir = tempDataDir();
    const { full, diff } = await bootAndSnapshot(dir);
    rebaseDiff(full.memory, diff.memory);
    const r = await restoreWithPageServer(dir, diff.state, full.memory, 'uffd');
    try {
      await new Promise((res) => setTimeout(res, 500));
      assert.equal(await r.vm.state(), 'Running');
    } finally {
      await r.stop();
    }
  });
});

describe('Firecracker function on the platform (KVM host)', { skip: skip || (!process.env.THAW_FC_INVOKE_PORT && 'set THAW_FC_INVOKE_PORT: the rootfs must serve HTTP invocations on that vsock port') }, () => {
  it('deploys, boots cold, snapshots full and diff, restores through the jailed page server and invokes', async () => {
    const p = newPlatform({ spareHosts: 0 });
    try {
      const manifest = {
        name: 'fc', runtime: 'firecracker', rootfs: process.env.THAW_FC_ROOTFS!, memoryMiB: 128,
        firecracker: { kernel: process.env.THAW_FC_KERNEL!, vsockPort: Number(process.env.THAW_FC_INVOKE_PORT), invokePath: process.env.THAW_FC_INVOKE_PATH ?? '/invoke' },
      };
      await p.deployFunction(manifest, readFileSync(process.env.THAW_FC_ROOTFS!));
      const cold = await p.invoke({ function: 'fc', mode: 'cold', input: Buffer.from('{}') });
      const full = await p.createSnapshot({ sandboxId: cold.sandboxId });
      for (const strategy of ['uffd', 'eager', 'reap', 'reap', 'sabre']) {
        const r = await p.invoke({ function: 'fc', mode: 'snapshot', snapshotId: full.id, strategy, input: Buffer.from('{}'), keep: strategy === 'sabre' });
        assert.equal(r.start, 'snapshot');
        if (strategy === 'sabre') {
          const diff = await p.createSnapshot({ sandboxId: r.sandboxId, kind: 'diff' });
          const d = await p.invoke({ function: 'fc', mode: 'snapshot', snapshotId: diff.id, strategy: 'uffd', input: Buffer.from('{}'), keep: false });
          assert.equal(d.start, 'snapshot');
        }
      }
    } finally {
      await p.close();
    }
  });
});
