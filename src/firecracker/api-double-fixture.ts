// Puts the Firecracker API TEST DOUBLE (api-double.ts) in firecracker's place for a test file:
// an executable wrapper named by THAW_FIRECRACKER, and the double's request log.

import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const DOUBLE = fileURLToPath(new URL('./api-double.js', import.meta.url));

/** One request the test double received, as it logged it. */
export interface DoubleRequest {
  readonly id: string;
  readonly method: string;
  readonly path: string;
  readonly body: Record<string, unknown> | null;
  readonly status: number;
  readonly fault?: string;
}

/** Makes the test double this process's firecracker (env THAW_FIRECRACKER*); returns a reader of its log. */
export function useApiDouble(dir: string, version?: string): { log: () => DoubleRequest[] } {
  const wrapper = join(dir, 'firecracker');
  writeFileSync(wrapper, `#!/bin/sh\nexec "${process.execPath}" "${DOUBLE}" "$@"\n`);
  chmodSync(wrapper, 0o755);
  const logPath = join(dir, 'firecracker-double.log');
  process.env.THAW_FIRECRACKER = wrapper;
  process.env.THAW_FIRECRACKER_IS_TEST_DOUBLE = '1';
  process.env.THAW_FC_DOUBLE_LOG = logPath;
  if (version) process.env.THAW_FC_DOUBLE_VERSION = version;
  else delete process.env.THAW_FC_DOUBLE_VERSION;
  return {
    log: () => (existsSync(logPath) ? readFileSync(logPath, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as DoubleRequest) : []),
  };
}

/** A file that passes for a kernel (ELF magic) and one that passes for an ext4 rootfs (superblock magic). */
export function fakeGuestFiles(dir: string): { kernel: string; rootfs: string } {
  const kernel = join(dir, 'vmlinux');
  const elf = Buffer.alloc(8192, 0x5a);
  elf.write('\x7fELF', 0, 'latin1');
  writeFileSync(kernel, elf);
  const rootfs = join(dir, 'rootfs.ext4');
  const ext4 = Buffer.alloc(64 * 1024);
  ext4.writeUInt16LE(0xef53, 1024 + 56);
  writeFileSync(rootfs, ext4);
  return { kernel, rootfs };
}
