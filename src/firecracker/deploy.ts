// Deploy side of Firecracker functions: the artefact is the guest's root filesystem (ext4), stored
// as the function's `rootfs.ext4` so its sha256 versions the function's snapshots; the kernel is
// read where the manifest names it (checked here: an ELF file, as Firecracker's x86 loader needs).

import { closeSync, openSync, readSync } from 'node:fs';
import { ThawError } from '../core/errors.js';
import type { FunctionParams } from '../core/function-spec.js';
import type { DeployedArtefact, RuntimeDeployer } from '../runtimes/runtime.js';

/** Where ext4's superblock magic 0xEF53 sits (superblock at 1024, s_magic at +56). */
const EXT4_MAGIC_OFFSET = 1024 + 56;
export const ROOTFS_FILE = 'rootfs.ext4';

function invalid(detail: string): ThawError {
  return new ThawError('THAW_CONFIG_INVALID', { detail });
}

function readHead(path: string, bytes: number): Buffer {
  const buf = Buffer.alloc(bytes);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err: unknown) {
    throw invalid(`cannot read the Firecracker kernel '${path}': ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  try {
    readSync(fd, buf, 0, bytes, 0);
  } finally {
    closeSync(fd);
  }
  return buf;
}

export const firecrackerDeployer: RuntimeDeployer = {
  id: 'firecracker',
  async deploy(fn: FunctionParams, rootfs: Uint8Array): Promise<DeployedArtefact> {
    const fc = fn.firecracker;
    if (!fc) throw invalid("runtime 'firecracker' needs its 'firecracker' settings");
    if (rootfs.length < EXT4_MAGIC_OFFSET + 2 || Buffer.from(rootfs.buffer, rootfs.byteOffset, rootfs.length).readUInt16LE(EXT4_MAGIC_OFFSET) !== 0xef53) {
      throw invalid(`'rootfs' is not an ext2/3/4 image (no superblock magic 0xEF53 at byte ${EXT4_MAGIC_OFFSET})`);
    }
    if (readHead(fc.kernelPath, 4).toString('latin1') !== '\x7fELF') throw invalid(`'firecracker.kernel' ${fc.kernelPath} is not an uncompressed ELF kernel (vmlinux)`);
    return {
      fileName: ROOTFS_FILE,
      bytes: rootfs,
      facts: { kernel: fc.kernelPath, rootfsBytes: rootfs.length, vsockPort: fc.vsockPort, invokePath: fc.invokePath, vcpus: fc.vcpus },
    };
  },
};
