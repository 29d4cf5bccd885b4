// A page server in a jail of its own, as sandbox hosts are jailed (sandbox/jail.ts,
// native/thaw_jailer.c): its own unprivileged uid (60000+, one per live page server, so no two
// can reach each other's sockets or signal each other) and the snapshot's group; PID, mount, IPC,
// UTS and network namespaces (no network); no capabilities, no_new_privs; the seccomp allowlist,
// with ioctl limited to userfaultfd's and a few terminal/socket ones (--ioctls uffd); Landlock:
// read-only the system, Node, the project and the snapshot (and its recorded working set), read-write
// only its own socket directory; execve refused once it runs. The supervisor (this module, in
// the daemon or `thaw page-server --jail`) builds what the strategy needs beside the snapshot
// first (a diff chain's flat image, Sabre's partitions), since the jailed server may not write
// there, and copies a recorded working set from the socket directory beside the snapshot after.
// The jailed server cannot signal Firecracker (another uid, another PID namespace): on a fatal
// error it reports it and the supervisor's owner kills the VM (FirecrackerHost does).

import { fork, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, realpathSync, rmSync, statSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ThawError } from '../core/errors.js';
import { DEVICES, JAILER, PROJECT_ROOT, SYSTEM_READ_ONLY, UidRange, jailAvailability, readPlainFile } from '../sandbox/jail.js';
import { writeAtomic } from '../restore/snapshot-image.js';
import { checkStrategy, type PageServerEvent } from './page-server.js';
import { openMemorySource, openPartitions } from './memory-source.js';
import type { PageServerChildMessage } from './page-server-main.js';

const MAIN = fileURLToPath(new URL('./page-server-main.js', import.meta.url));
export const PAGE_SERVER_UID_BASE = 60000;
const PAGE_SERVER_UID_COUNT = 900;
// Offset by pid: page servers started by separate processes (one per `thaw page-server`) start apart.
const uids = new UidRange(PAGE_SERVER_UID_BASE, PAGE_SERVER_UID_COUNT, 'page server', process.pid);

export interface JailedPageServerOptions {
  /** The socket to listen on: its directory must be the page server's own (created here if missing). */
  readonly socket: string;
  readonly snapshot: string;
  readonly strategy: string;
  /** The group the jailed server runs in: one that may read the snapshot (a function's gid in the daemon). */
  readonly gid: number;
  readonly expectSha256?: Readonly<Record<string, string>>;
  readonly onEvent?: (event: PageServerEvent) => void;
}

/** The deepest directory holding both paths, or null when only `/` does. */
function commonAncestor(a: string, b: string): string | null {
  const x = a.split(sep);
  const y = b.split(sep);
  let n = 0;
  while (n < x.length && n < y.length && x[n] === y[n]) n++;
  const common = x.slice(0, n).join(sep);
  return common === '' ? null : common;
}

export class JailedPageServer {
  readonly uid: number;
  readonly #child: ChildProcess;
  readonly #dir: string;
  readonly #recordTo: string;
  readonly #workingSet: string;
  readonly exited: Promise<number | null>;

  private constructor(uid: number, child: ChildProcess, dir: string, workingSet: string, recordTo: string) {
    this.uid = uid;
    this.#child = child;
    this.#dir = dir;
    this.#workingSet = workingSet;
    this.#recordTo = recordTo;
    this.exited = new Promise((resolve) => child.on('exit', (code) => {
      uids.release(uid);
      resolve(code);
    }));
  }

  get pid(): number {
    return this.#child.pid ?? -1;
  }

  /**
   * Prepares the snapshot's artefacts, then starts the jailed server and waits for it to listen.
   * Throws THAW_CONFIG_INVALID (no jail here, a socket directory not its own, a snapshot its group
   * cannot read), THAW_STRATEGY_*, THAW_SNAPSHOT_*, and what the jailed server reports.
   */
  static async start(o: JailedPageServerOptions): Promise<JailedPageServer> {
    const can = jailAvailability();
    if (!can.ok) throw new ThawError('THAW_CONFIG_INVALID', { detail: `cannot jail the page server: ${can.reason}` });
    checkStrategy(o.strategy);
    // Built here, beside the snapshot, where the jailed server may only read.
    const source = openMemorySource(o.snapshot, o.expectSha256);
    try {
      if (o.strategy === 'sabre') openPartitions(source).close();
    } finally {
      source.close();
    }
    const st = statSync(o.snapshot);
    if (st.gid !== o.gid || (st.mode & 0o040) === 0) {
      throw new ThawError('THAW_CONFIG_INVALID', { detail: `the jailed page server reads ${o.snapshot} as group ${o.gid}: it must be that group's and group-readable (chgrp ${o.gid}, chmod g+r)` });
    }
    const dir = dirname(o.socket);
    const uid = uids.allocate();
    try {
      if (existsSync(dir) && statSync(dir).uid !== uid) {
        throw new ThawError('THAW_CONFIG_INVALID', { detail: `a jailed page server's socket goes in a directory of its own (created by Thaw): ${dir} exists` });
      }
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      chownSync(dir, uid, o.gid);
      chmodSync(dir, 0o711); // Firecracker (root) connects; nobody else lists it
    } catch (err: unknown) {
      uids.release(uid);
      throw err;
    }
    const thaw = source.kind === 'thaw-snapshot';
    const workingSet = thaw ? join(o.snapshot, 'fc-ws.reap') : `${o.snapshot}.ws.reap`;
    const recordTo = join(dir, 'recorded.ws.reap');
    const ro = [...SYSTEM_READ_ONLY, dirname(realpathSync(process.execPath)), PROJECT_ROOT, o.snapshot, ...(thaw ? [] : [workingSet])];
    // A Thaw snapshot of a chain reads its bases' state files too: the snapshot root.
    if (thaw) ro.push(dirname(o.snapshot));
    const args = ['--uid', String(uid), '--gid', String(o.gid), '--ioctls', 'uffd'];
    for (const p of ro) args.push('--ro', p);
    for (const p of [...DEVICES, dir]) args.push('--rw', p);
    const snapDir = realpathSync(thaw ? dirname(o.snapshot) : dirname(o.snapshot));
    const common = commonAncestor(snapDir, realpathSync(dir));
    for (const p of common ? [common] : [snapDir, realpathSync(dir)]) args.push('--expose', p);
    args.push('--expose', realpathSync(PROJECT_ROOT), '--net', 'none');
    const program = [process.execPath, MAIN, '--socket', o.socket, '--snapshot', o.snapshot, '--strategy', o.strategy, '--working-set', workingSet, '--record-to', recordTo];
    if (o.expectSha256) program.push('--sha256', JSON.stringify(o.expectSha256));
    // fork() with execPath = the jailer: the IPC channel (fd 3) passes through the jail.
    const child = fork(program[1]!, program.slice(2), { execPath: JAILER, execArgv: [...args, '--', process.execPath], stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'json', env: {} });
    const ps = new JailedPageServer(uid, child, dir, workingSet, recordTo);
    await new Promise<void>((resolve, reject) => {
      child.on('message', (m: PageServerChildMessage) => {
        if (m.kind === 'event') {
          o.onEvent?.(m.event);
          if (m.event.event === 'listening') resolve();
        } else if (m.kind === 'failed') {
          reject(ThawError.fromJSON(m.error));
        }
      });
      void ps.exited.then((code) => reject(new ThawError('THAW_INTERNAL', { detail: `the jailed page server exited (${code}) before it listened${code === 121 ? ': its jail could not be set up (thaw-jailer said why on stderr)' : ''}` })));
    }).catch(async (err: unknown) => {
      await ps.close();
      throw err;
    });
    return ps;
  }

  /** Stops the server (its sessions end and report), copies a recorded working set beside the snapshot, removes its directory. */
  async close(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      if (this.#child.connected) this.#child.send({ kind: 'stop' });
      const timer = setTimeout(() => this.#child.kill('SIGKILL'), 5000);
      await this.exited;
      clearTimeout(timer);
    }
    const recorded = existsSync(this.#recordTo) ? readPlainFile(this.#recordTo) : null;
    if (recorded) writeAtomic(this.#workingSet, recorded);
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

