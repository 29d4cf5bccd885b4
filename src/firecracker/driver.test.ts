// The Firecracker driver on a KVM host: boot, full and diff snapshots, and restores served by
// the page server with each strategy. Needs /dev/kvm, a firecracker binary ($THAW_FIRECRACKER
// or PATH), a guest kernel ($THAW_FC_KERNEL, an uncompressed vmlinux) and a rootfs
// ($THAW_FC_ROOTFS, ext4); diff restores also need snapshot-editor on PATH. Skips, saying which
// is missing, anywhere else (see README "Firecracker microVMs").

import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { tempDataDir } from '../test/helpers.js';
import { firecrackerBinary, firecrackerSupport, FirecrackerVm, rebaseDiff, restoreWithPageServer } from './driver.js';

function skipReason(): string | false {
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
