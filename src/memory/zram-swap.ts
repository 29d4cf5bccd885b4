// A zram swap device that Thaw sets up for a run and removes after: the compressed tier of the
// tmo policy (issue 11: "zram swap that Thaw sets up and removes"). With swap on, lowering a
// host's memory cgroup limit reclaims its anonymous memory (the guest's heap) into compressed
// RAM instead of only page cache. The device is a new one (zram-control hot_add, lz4), swapped
// on at a high priority, and on remove() swapped off (pages still on it come back to RAM),
// reset and hot-removed. Needs root and a kernel with zram (/sys/class/zram-control).
// Swap is machine-wide: under global memory pressure the kernel may put any process's pages on
// it, not only Thaw's hosts' (the cgroup limits tmo lowers are what normally drive it).

import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { ThawError } from '../core/errors.js';

const run = promisify(execFile);
const CONTROL = '/sys/class/zram-control';

/** What the device holds now (its mm_stat). */
export interface ZramFigures {
  device: string;
  /** Bytes swapped out to it (uncompressed). */
  origBytes: number;
  /** Their compressed size. */
  comprBytes: number;
  /** RAM the device takes now (compressed data + allocator overhead): local memory. */
  memUsedBytes: number;
}

export interface ZramSwap {
  readonly device: string;
  figures(): ZramFigures;
  /** Swaps off (bringing back what it holds), resets and removes the device. Throws when swapoff fails (retry later). */
  remove(): Promise<void>;
}

function unavailable(reason: string): ThawError {
  return new ThawError('THAW_OFFLOAD_UNAVAILABLE', { id: '-', tier: 'compressed', reason: `zram swap for tmo: ${reason}` });
}

/** Sets up a zram swap device of `sizeBytes` (uncompressed capacity). Throws THAW_OFFLOAD_UNAVAILABLE. */
export async function setUpZramSwap(sizeBytes: number): Promise<ZramSwap> {
  if (process.getuid?.() !== 0) throw unavailable('needs root (swapon, /sys/class/zram-control)');
  if (!existsSync(CONTROL)) throw unavailable(`${CONTROL} is absent (no zram in this kernel; modprobe zram)`);
  const n = readFileSync(`${CONTROL}/hot_add`, 'utf8').trim();
  const sys = `/sys/block/zram${n}`;
  const device = `/dev/zram${n}`;
  let on = false;
  const remove = async (): Promise<void> => {
    // swapoff brings every page back, charged to its cgroup: it fails (ENOMEM) while a host whose
    // pages are there sits at a lowered limit. Then the device stays: the caller retries later.
    if (on) await run('swapoff', [device]);
    on = false;
    writeFileSync(`${sys}/reset`, '1');
    writeFileSync(`${CONTROL}/hot_remove`, n);
  };
  try {
    writeFileSync(`${sys}/comp_algorithm`, 'lz4');
    writeFileSync(`${sys}/disksize`, String(sizeBytes));
    await run('mkswap', [device]);
    await run('swapon', ['-p', '32000', device]);
    on = true;
  } catch (err: unknown) {
    await remove().catch(() => undefined);
    throw unavailable(`setting up ${device} failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  return {
    device,
    figures() {
      // mm_stat: orig_data_size compr_data_size mem_used_total mem_limit mem_used_max ...
      const [orig = 0, compr = 0, used = 0] = readFileSync(`${sys}/mm_stat`, 'utf8').trim().split(/\s+/).map(Number);
      return { device, origBytes: orig, comprBytes: compr, memUsedBytes: used };
    },
    remove,
  };
}
