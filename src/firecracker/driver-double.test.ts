// The driver's HTTP conversation with Firecracker's API, checked against a TEST DOUBLE of
// Firecracker's API server (api-double.ts: bodies validated against the swagger's required fields,
// types and enums; every request recorded), not against Firecracker. Its snapshot/load with the
// Uffd backend does what Firecracker does at the page server's socket, with the test VMM's real
// userfaultfd and handshake JSON. Runs wherever the test VMM runs (root or /dev/userfaultfd).

import { mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { tempDataDir, rejectsWith } from '../test/helpers.js';
import { apiRequest, FirecrackerVm, restoreWithPageServer } from './driver.js';
import { fakeGuestFiles, useApiDouble } from './api-double-fixture.js';
import { testVmmUnavailable } from './test-vmm.js';

const skip = testVmmUnavailable();

/** A directory for one firecracker, with the rootfs at the relative path the VM names. */
function vmDir(root: string, name: string, rootfs: string): string {
  const dir = join(root, name);
  mkdirSync(dir);
  symlinkSync(rootfs, join(dir, 'rootfs.ext4'));
  return dir;
}

async function bootAndSnapshot(root: string, files: { kernel: string; rootfs: string }): Promise<{ full: { state: string; memory: string }; diff: { state: string; memory: string } }> {
  const vm = await FirecrackerVm.start(vmDir(root, 'boot', files.rootfs), 'boot', 'pipe');
  try {
    await vm.boot({ kernel: files.kernel, rootfs: 'rootfs.ext4', rootfsReadOnly: true, vsockSocket: 'v.sock', memMib: 16 });
    await vm.pause();
    const full = await vm.snapshot('Full', { state: join(root, 'full.state'), memory: join(root, 'full.mem') });
    await vm.resume();
    await vm.pause();
    const diff = await vm.snapshot('Diff', { state: join(root, 'diff.state'), memory: join(root, 'diff.mem') });
    return { full, diff };
  } finally {
    await vm.kill();
  }
}

describe('Firecracker driver against the API test double (not Firecracker)', { skip }, () => {
  it('boots with the requests and bodies of Firecracker\'s API, in order', async () => {
    const root = tempDataDir();
    const double = useApiDouble(root);
    const files = fakeGuestFiles(root);
    await bootAndSnapshot(root, files);
    const seq = double.log().filter((r) => r.id === 'boot');
    assert.deepEqual(seq.map((r) => `${r.method} ${r.path} ${r.status}`), [
      'GET / 200', 'GET /version 200', 'PUT /boot-source 204', 'PUT /drives/rootfs 204', 'PUT /machine-config 204', 'PUT /vsock 204', 'PUT /actions 204',
      'PATCH /vm 204', 'PUT /snapshot/create 204', 'PATCH /vm 204', 'PATCH /vm 204', 'PUT /snapshot/create 204',
    ]);
    assert.deepEqual(seq[3]!.body, { drive_id: 'rootfs', path_on_host: 'rootfs.ext4', is_root_device: true, is_read_only: true });
    assert.deepEqual(seq[4]!.body, { vcpu_count: 1, mem_size_mib: 16, track_dirty_pages: true });
    assert.deepEqual(seq[5]!.body, { guest_cid: 3, uds_path: 'v.sock' });
    assert.deepEqual(seq[6]!.body, { action_type: 'InstanceStart' });
    assert.deepEqual(seq.slice(7).map((r) => r.body), [
      { state: 'Paused' }, { snapshot_type: 'Full', snapshot_path: join(root, 'full.state'), mem_file_path: join(root, 'full.mem') },
      { state: 'Resumed' }, { state: 'Paused' }, { snapshot_type: 'Diff', snapshot_path: join(root, 'diff.state'), mem_file_path: join(root, 'diff.mem') },
    ]);
    // A diff memory file holds only the pages written since the full snapshot: sparse.
    assert.equal(statSync(join(root, 'diff.mem')).size, 16 << 20);
    assert.ok(statSync(join(root, 'diff.mem')).blocks * 512 < (1 << 20), 'the diff memory file is mostly holes');
  });

  it('restores through the page server: snapshot/load with the Uffd backend, every byte served (uffd, eager, reap record then replay)', async () => {
    const root = tempDataDir();
    const double = useApiDouble(root);
    const files = fakeGuestFiles(root);
    const { full } = await bootAndSnapshot(root, files);
    for (const [i, strategy] of ['uffd', 'eager', 'reap', 'reap'].entries()) {
      const r = await restoreWithPageServer(vmDir(root, `run-${i}`, files.rootfs), full.state, full.memory, strategy);
      try {
        assert.equal(await r.vm.state(), 'Running');
      } finally {
        await r.stop();
      }
      const load = double.log().filter((q) => q.path === '/snapshot/load').pop()!;
      assert.equal(load.status, 204, load.fault);
      assert.deepEqual(load.body, { snapshot_path: full.state, mem_backend: { backend_type: 'Uffd', backend_path: join(root, `run-${i}`, 'uffd.sock') }, track_dirty_pages: true, resume_vm: true });
      const session = r.events.find((e) => e.event === 'session');
      const end = r.events.find((e) => e.event === 'session-end');
      assert.ok(session && session.event === 'session' && end && end.event === 'session-end' && !end.error, JSON.stringify(r.events));
      assert.equal(session.guestBytes, 16 << 20);
      if (i === 2) assert.equal(session.phase, 'record');
      if (i === 3) assert.ok(session.phase === 'replay' && session.prefetchPages > 0, JSON.stringify(session));
      assert.ok(end.stats.copiedPages + end.stats.prefetchedPages > 0, JSON.stringify(end.stats));
    }
  });

  it('speaks enable_diff_snapshots to a firecracker before 1.13 (track_dirty_pages from 1.13)', async () => {
    const root = tempDataDir();
    const double = useApiDouble(root, '1.7.0');
    const files = fakeGuestFiles(root);
    const { full } = await bootAndSnapshot(root, files);
    const r = await restoreWithPageServer(vmDir(root, 'run', files.rootfs), full.state, full.memory, 'uffd');
    await r.stop();
    const load = double.log().filter((q) => q.path === '/snapshot/load').pop()!;
    assert.equal(load.status, 204, load.fault);
    assert.equal(load.body?.enable_diff_snapshots, true);
    assert.equal('track_dirty_pages' in (load.body ?? {}), false);
  });

  it('reports Firecracker\'s fault_message when a request is refused', async () => {
    const root = tempDataDir();
    useApiDouble(root);
    const vm = await FirecrackerVm.start(vmDir(root, 'bad', fakeGuestFiles(root).rootfs), 'bad', 'pipe');
    try {
      const e = await rejectsWith(apiRequest(vm.apiSocket, 'PUT', '/machine-config', { vcpu_count: 0, mem_size_mib: 16 }), 'THAW_INTERNAL');
      assert.match(e.message, /PUT \/machine-config: 400: MachineConfiguration: `vcpu_count` must be at least 1/);
      await rejectsWith(vm.pause(), 'THAW_INTERNAL');
      await rejectsWith(apiRequest(vm.apiSocket, 'PUT', '/snapshot/create', { snapshot_path: 's' }), 'THAW_INTERNAL');
    } finally {
      await vm.kill();
    }
  });

  it('fails the load when the page server refuses the handshake (a memory file smaller than the guest)', async () => {
    const root = tempDataDir();
    useApiDouble(root);
    const files = fakeGuestFiles(root);
    const { full } = await bootAndSnapshot(root, files);
    const short = join(root, 'short.mem');
    writeFileSync(short, readFileSync(full.memory).subarray(0, 8 << 20));
    const e = await rejectsWith(restoreWithPageServer(vmDir(root, 'run', files.rootfs), full.state, short, 'uffd'), 'THAW_INTERNAL');
    assert.match(e.message, /snapshot\/load: 400: Load snapshot error: the uffd handler did not serve guest memory/);
  });
});
