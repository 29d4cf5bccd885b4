// The sandbox host's jail, after Firecracker's jailer: what a host process may see and do, and
// the command line that puts it there (native/thaw_jailer.c does the work before exec; the host
// forbids itself execve right after start, see host-main.ts). Every function is treated as
// hostile: it may reach full Node.js inside its host, so these layers are what protect the
// machine, the daemon and the other functions.
//
// Ownership on disk (set by the daemon, checked by the kernel):
//   <data>/                       root 0711       hosts may traverse, not list
//   <data>/functions/<name>/      root:<fn gid> 0750, files 0640    only that function's hosts read
//   <data>/snapshots/<id>/        root:<fn gid> 0750, files 0640    only that function's hosts
//                                                                   read (what they record goes
//                                                                   to scratch; the daemon adopts it)
//   <data>/snapshots/.scratch/<host uid>/   <uid>:<fn gid> 0700     the host's own writable space
//                                 (on the snapshots' filesystem, so a snapshot written there is
//                                 moved into place by a rename, never copied)
//   <data>/objects/               root:<sandbox gid> 2770           the shared object store
//   <data>/run/redis.sock         root:<sandbox gid> 0660           the daemon's relay to a Redis store
//   everything else under <data>  root, no access for hosts (the snapshot key, the token)

import { chownSync, chmodSync, closeSync, constants, existsSync, fchmodSync, fchownSync, fstatSync, mkdirSync, openSync, readFileSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ThawError } from '../core/errors.js';
import type { ObjectStoreConfig } from '../store/object-store.js';
import { DRAM_ROOT } from '../restore/strategies/dram.js';
import { poolLocation } from '../restore/pass-pool.js';

/** Host uids are allocated from [HOST_UID_BASE, HOST_UID_BASE + HOST_UID_COUNT): one per live host. */
export const HOST_UID_BASE = 61000;
export const HOST_UID_COUNT = 1000;
/** Functions' gids start here, one per function name (see FunctionRegistry). */
export const FUNCTION_GID_BASE = 62000;
/** The group every host is in, for the shared embedded object store. */
export const SANDBOX_GID = 60999;
/** Exit status of thaw-jailer when the jail could not be set up (the host never ran). */
export const JAIL_FAILED_EXIT = 121;
/** The subdirectory of a host's scratch where it writes what restores record (recording-outbox.ts). */
export const RECORDING_OUTBOX = 'recorded';
/** Where a jailed host finds the /dev/userfaultfd the jailer opened for it. */
export const UFFD_DEVICE_FD = 4;
/** Where a host finds its end of the daemon's channel for sealed snapshot images (native/thaw_sealed.c). */
export const IMAGE_CHANNEL_FD = 5;

export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const JAILER = join(PROJECT_ROOT, 'native/build/Release/thaw-jailer');

/** Whether hosts can be jailed here, and if not, why (the daemon then says so loudly). */
export function jailAvailability(): { ok: true } | { ok: false; reason: string } {
  if (process.platform !== 'linux' || process.arch !== 'x64') return { ok: false, reason: `the jail needs Linux on x86_64 (this is ${process.platform}/${process.arch})` };
  if (process.getuid?.() !== 0) return { ok: false, reason: 'the daemon is not root: it cannot change a host\'s uid or create namespaces' };
  if (!existsSync(JAILER)) return { ok: false, reason: `${JAILER} is missing (run scripts/setup.sh)` };
  return { ok: true };
}

/**
 * Hands out uids so that no two live jailed processes share one (signals, ptrace and files stay
 * apart): `count` uids from `base`, the first at `base + offset % count` (so that separate
 * processes handing out the same range start apart), freed ones reused first.
 */
export class UidRange {
  private readonly free: number[] = [];
  private next = 0;

  constructor(private readonly base = HOST_UID_BASE, private readonly count = HOST_UID_COUNT, private readonly what = 'host', private readonly offset = 0) {}

  allocate(): number {
    const uid = this.free.pop() ?? (this.next < this.count ? this.base + ((this.offset + this.next++) % this.count) : undefined);
    if (uid === undefined) throw new ThawError('THAW_POOL_EXHAUSTED', { detail: `all ${this.count} ${this.what} uids are in use` });
    return uid;
  }

  release(uid: number): void {
    this.free.push(uid);
  }
}

/** What one host's jail is made of. */
export interface JailPlan {
  readonly uid: number;
  /** The function's gid: the host's primary group. */
  readonly gid: number;
  readonly dataDir: string;
  /** The function's own directory (its artefact), read-only. */
  readonly functionDir: string;
  /** The host's writable scratch directory (created by createScratch). */
  readonly scratchDir: string;
  readonly objectStore: ObjectStoreConfig;
  /** The host's memory cgroup's procs file: the jailer joins it before anything else runs. */
  readonly cgroupProcs: string | null;
}

/** Read-only system paths a Node host needs (the dynamic loader's cache, OpenSSL's config). */
export const SYSTEM_READ_ONLY = ['/usr', '/lib', '/lib64', '/bin', '/etc/ld.so.cache', '/etc/ssl/openssl.cnf', '/etc/localtime', '/proc', '/sys/devices/system/cpu', '/sys/fs/cgroup'];
export const DEVICES = ['/dev/null', '/dev/zero', '/dev/urandom', '/dev/random'];

/** The argv of `thaw-jailer` for `plan`, running `program` (the node binary and its arguments). */
export function jailerCommand(plan: JailPlan, program: readonly string[]): { file: string; args: string[] } {
  const args = ['--uid', String(plan.uid), '--gid', String(plan.gid), '--groups', String(SANDBOX_GID)];
  if (plan.cgroupProcs) args.push('--cgroup-procs', plan.cgroupProcs);
  const nodeDir = dirname(realpathSync(process.execPath));
  const readOnly = [...SYSTEM_READ_ONLY, nodeDir, PROJECT_ROOT, plan.functionDir, DRAM_ROOT];
  // The pass pool's directory is written by hosts too: they take leases on the slots they map.
  readOnly.push(join(plan.dataDir, 'snapshots'));
  const readWrite = [...DEVICES, plan.scratchDir, poolLocation().dir];
  if (plan.objectStore.kind === 'embedded') readWrite.push(plan.objectStore.dir);
  for (const p of readOnly) args.push('--ro', p);
  for (const p of readWrite) args.push('--rw', p);
  // The project and the data directory at their own paths, even under a private ancestor.
  for (const p of [PROJECT_ROOT, plan.dataDir]) args.push('--expose', realpathSync(p));
  // No network at all: a Redis object store is reached through the daemon's relay socket.
  args.push('--net', 'none');
  return { file: JAILER, args: [...args, '--', ...program] };
}

/** Where hosts' scratch directories live: beside the snapshots, on their filesystem. */
function scratchRoot(dataDir: string): string {
  return join(dataDir, 'snapshots', '.scratch');
}

/** Creates the host's scratch directory, owned by the host's uid, readable by nobody else. */
export function createScratch(dataDir: string, uid: number, gid: number): string {
  const dir = join(scratchRoot(dataDir), String(uid));
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chownSync(dir, uid, gid);
  chmodSync(dir, 0o700);
  return dir;
}

/** Removes a host's scratch directory once the host has exited. */
export function removeScratch(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Sets the ownership of the data directory's top levels for jailed hosts (see the file comment).
 * Idempotent; run at platform start.
 */
export function secureDataDir(dataDir: string, objectStore: ObjectStoreConfig): void {
  chmodSync(dataDir, 0o711);
  for (const dir of [join(dataDir, 'functions'), join(dataDir, 'snapshots'), scratchRoot(dataDir), join(dataDir, 'run')]) {
    mkdirSync(dir, { recursive: true });
    chownSync(dir, 0, 0);
    chmodSync(dir, 0o711);
  }
  if (objectStore.kind === 'embedded') {
    mkdirSync(objectStore.dir, { recursive: true });
    chownSync(objectStore.dir, 0, SANDBOX_GID);
    chmodSync(objectStore.dir, 0o2770);
  }
  // Scratch directories of hosts from an earlier daemon run.
  for (const name of readdirSync(scratchRoot(dataDir))) rmSync(join(scratchRoot(dataDir), name), { recursive: true, force: true });
}

/**
 * Gives function group `gid` access to `path` (a function's or a snapshot's directory): the
 * directory root:gid with `dirMode`, each plain file in it root:gid with `fileMode`. A host may
 * have written into a snapshot directory, so nothing is followed: entries are opened with
 * O_NOFOLLOW and changed through their fd; links, subdirectories and special files are removed,
 * except with `subdirs` 'grant' (a function's directory, which no host writes: a WASI command's
 * bundle directories), where subdirectories are granted the same way, recursively.
 */
export function grantToFunction(path: string, gid: number, dirMode: number, fileMode: number, subdirs: 'remove' | 'grant' = 'remove'): void {
  withOwnedFd(path, constants.O_DIRECTORY, (fd) => {
    fchownSync(fd, 0, gid);
    fchmodSync(fd, dirMode);
  });
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    const file = join(path, entry.name);
    if (subdirs === 'grant' && entry.isDirectory()) {
      grantToFunction(file, gid, dirMode, fileMode, subdirs);
      continue;
    }
    if (!entry.isFile()) {
      rmSync(file, { recursive: true, force: true });
      continue;
    }
    const kept = withOwnedFd(file, 0, (fd) => {
      const st = fstatSync(fd);
      if (!st.isFile() || st.nlink !== 1) return false;
      fchownSync(fd, 0, gid);
      fchmodSync(fd, fileMode);
      return true;
    });
    if (!kept) rmSync(file, { force: true });
  }
}

/** The bytes of `path` if it is a plain file with one link (never following a link), else null. */
export function readPlainFile(path: string): Buffer | null {
  const bytes = withOwnedFd(path, 0, (fd) => {
    const st = fstatSync(fd);
    return st.isFile() && st.nlink === 1 ? readFileSync(fd) : null;
  });
  return bytes === false ? null : bytes;
}

function withOwnedFd<T>(path: string, flags: number, body: (fd: number) => T): T | false {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | flags);
  } catch (err: unknown) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'ENOENT') return false;
    throw err;
  }
  try {
    return body(fd);
  } finally {
    closeSync(fd);
  }
}
