// A Firecracker driver for KVM hosts: starts `firecracker` on an API socket and drives it over
// HTTP on that Unix socket (Firecracker's REST API, v1.1 to v1.16; request bodies checked against
// src/firecracker/swagger/firecracker.yaml and docs/snapshotting/snapshot-support.md of
// firecracker-microvm/firecracker at 81b38b9, 1.17.0-dev, and the v1.1.0 / v1.7.0 swaggers):
// boot a microVM from a kernel and a rootfs, pause and resume it, take full and diff snapshots,
// and load a snapshot with the Uffd memory backend served by Thaw's page server (page-server.ts).
// Each firecracker runs in its own directory (its cwd): drives, the vsock socket and the snapshot
// files are named relative to it, so a snapshot restores in another directory ("host resources
// ... at the same relative paths", snapshot-support.md) on every version (vsock_override is 1.16+).
// Needs /dev/kvm and a firecracker binary ($THAW_FIRECRACKER, else `firecracker` on PATH).

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, existsSync, openSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { delimiter, join } from 'node:path';
import type { Readable } from 'node:stream';
import { ThawError } from '../core/errors.js';
import type { Support } from '../restore/strategy.js';
import { PageServer, type PageServerEvent } from './page-server.js';

/** The firecracker binary: $THAW_FIRECRACKER, else the first `firecracker` on PATH, else null. */
export function firecrackerBinary(env: NodeJS.ProcessEnv = process.env, name = 'firecracker'): string | null {
  const own = name === 'firecracker' ? env.THAW_FIRECRACKER : undefined;
  if (own) return existsSync(own) ? own : null;
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

/** Whether this host can run Firecracker microVMs, and if not, why. */
export function firecrackerSupport(env: NodeJS.ProcessEnv = process.env): Support {
  // The API test double (api-double.ts) runs no VM: it needs no KVM.
  if (env.THAW_FIRECRACKER_IS_TEST_DOUBLE === '1') return firecrackerBinary(env) ? { ok: true } : { ok: false, reason: 'THAW_FIRECRACKER does not name the test double' };
  try {
    closeSync(openSync('/dev/kvm', 'r+'));
  } catch (err: unknown) {
    return { ok: false, reason: `no usable /dev/kvm (${(err as NodeJS.ErrnoException).code ?? String(err)}): Firecracker needs KVM` };
  }
  if (!firecrackerBinary(env)) return { ok: false, reason: 'no firecracker binary: set THAW_FIRECRACKER or put firecracker on PATH (it ships in Firecracker release tarballs)' };
  return { ok: true };
}

function apiError(what: string, detail: string): ThawError {
  return new ThawError('THAW_INTERNAL', { detail: `firecracker API ${what}: ${detail}` });
}

/** One request to Firecracker's API socket. Throws THAW_INTERNAL with its fault_message on 4xx/5xx. */
export function apiRequest(socketPath: string, method: 'GET' | 'PUT' | 'PATCH', path: string, body?: unknown): Promise<unknown> {
  const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request({
      socketPath, method, path,
      headers: { Accept: 'application/json', ...(data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {}) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown = null;
        try {
          json = text ? JSON.parse(text) : null;
        } catch {
          json = text;
        }
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) resolve(json);
        else reject(apiError(`${method} ${path}`, `${status}: ${(json as { fault_message?: string } | null)?.fault_message ?? text}`));
      });
    });
    req.on('error', (err) => reject(apiError(`${method} ${path}`, err.message)));
    req.end(data);
  });
}

export interface BootOptions {
  readonly kernel: string;
  /** Relative to the VM's directory, so a snapshot of it restores elsewhere. */
  readonly rootfs: string;
  /** Default false; a function's rootfs is shared by its sandboxes, so read-only. */
  readonly rootfsReadOnly?: boolean;
  /** A vsock device (guest CID 3) whose host side listens on this socket, relative to the VM's directory. */
  readonly vsockSocket?: string;
  readonly memMib?: number;
  readonly vcpus?: number;
  readonly bootArgs?: string;
  /** Needed for diff snapshots. Default true. */
  readonly trackDirtyPages?: boolean;
}

export interface SnapshotFiles {
  /** The VM state file (snapshot_path). */
  readonly state: string;
  /** The guest memory file (mem_file_path): flat guest memory; a diff's holds only dirty pages. */
  readonly memory: string;
}

/** The guest's vsock context id (3: the first one not reserved). */
export const GUEST_CID = 3;

/** One firecracker process and its API socket. */
export class FirecrackerVm {
  readonly apiSocket: string;
  /** The VM's directory (firecracker's cwd): relative paths in API requests are resolved here. */
  readonly dir: string;
  readonly #child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Firecracker's version as GET /version reports it ("1.7.0"), read once the API answers. */
  version = '0.0.0';

  private constructor(dir: string, apiSocket: string, child: ChildProcess) {
    this.dir = dir;
    this.apiSocket = apiSocket;
    this.#child = child;
    this.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  }

  get alive(): boolean {
    return this.#child.exitCode === null && this.#child.signalCode === null;
  }

  get pid(): number {
    return this.#child.pid ?? 0;
  }

  /** firecracker's stdout and stderr (the guest's serial console) when started with stdio 'pipe'. */
  get output(): { stdout: Readable | null; stderr: Readable | null } {
    return { stdout: this.#child.stdout, stderr: this.#child.stderr };
  }

  /**
   * Starts `firecracker --api-sock <dir>/api.sock` in `dir` and waits for its API; `stdio` takes
   * its console (default: inherited). Throws THAW_STRATEGY_UNAVAILABLE, THAW_INTERNAL.
   */
  static async start(dir: string, id = 'thaw', stdio: 'inherit' | 'pipe' = 'inherit'): Promise<FirecrackerVm> {
    const support = firecrackerSupport();
    if (!support.ok) throw new ThawError('THAW_STRATEGY_UNAVAILABLE', { strategy: 'firecracker', reason: support.reason });
    const apiSocket = join(dir, 'api.sock');
    rmSync(apiSocket, { force: true });
    const child = spawn(firecrackerBinary()!, ['--api-sock', apiSocket, '--id', id], { cwd: dir, stdio: ['ignore', stdio, stdio] });
    const vm = new FirecrackerVm(dir, apiSocket, child);
    for (let i = 0; i < 200; i++) {
      if (existsSync(apiSocket)) {
        try {
          await vm.api('GET', '/');
          vm.version = String((await vm.api('GET', '/version') as { firecracker_version?: string } | null)?.firecracker_version ?? '0.0.0');
          return vm;
        } catch {
          // not listening yet
        }
      }
      if (child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    await vm.kill();
    throw apiError('start', `firecracker did not answer on ${apiSocket} within 5 s`);
  }

  api(method: 'GET' | 'PUT' | 'PATCH', path: string, body?: unknown): Promise<unknown> {
    return apiRequest(this.apiSocket, method, path, body);
  }

  /** Configures and starts a fresh microVM. */
  async boot(o: BootOptions): Promise<void> {
    await this.api('PUT', '/boot-source', { kernel_image_path: o.kernel, boot_args: o.bootArgs ?? 'console=ttyS0 reboot=k panic=1 pci=off' });
    await this.api('PUT', '/drives/rootfs', { drive_id: 'rootfs', path_on_host: o.rootfs, is_root_device: true, is_read_only: o.rootfsReadOnly ?? false });
    await this.api('PUT', '/machine-config', { vcpu_count: o.vcpus ?? 1, mem_size_mib: o.memMib ?? 128, track_dirty_pages: o.trackDirtyPages ?? true });
    if (o.vsockSocket !== undefined) await this.api('PUT', '/vsock', { guest_cid: GUEST_CID, uds_path: o.vsockSocket });
    await this.api('PUT', '/actions', { action_type: 'InstanceStart' });
  }

  /**
   * The /snapshot/load field that keeps dirty-page tracking on after a load (it is not saved in
   * the snapshot): `track_dirty_pages` from 1.13, `enable_diff_snapshots` before (deprecated in 1.13).
   */
  #trackDirtyField(): string {
    const [major = 0, minor = 0] = this.version.split('.').map(Number);
    return major > 1 || (major === 1 && minor >= 13) ? 'track_dirty_pages' : 'enable_diff_snapshots';
  }

  pause(): Promise<unknown> {
    return this.api('PATCH', '/vm', { state: 'Paused' });
  }

  resume(): Promise<unknown> {
    return this.api('PATCH', '/vm', { state: 'Resumed' });
  }

  /** The VM's state as Firecracker reports it ('Running', 'Paused', 'Not started'). */
  async state(): Promise<string> {
    return String((await this.api('GET', '/') as { state?: string }).state);
  }

  /** Snapshots the (paused) VM: 'Full' writes all of guest memory, 'Diff' only pages dirtied since the last snapshot. */
  async snapshot(type: 'Full' | 'Diff', files: SnapshotFiles): Promise<SnapshotFiles> {
    await this.api('PUT', '/snapshot/create', { snapshot_type: type, snapshot_path: files.state, mem_file_path: files.memory });
    return files;
  }

  /** Loads a snapshot into this fresh firecracker with its memory served by the page server on `uffdSocket`. */
  async loadFromPageServer(state: string, uffdSocket: string, resume = true): Promise<void> {
    await this.api('PUT', '/snapshot/load', {
      snapshot_path: state, mem_backend: { backend_type: 'Uffd', backend_path: uffdSocket }, [this.#trackDirtyField()]: true, resume_vm: resume,
    });
  }

  /** Loads a snapshot with its memory file mapped by Firecracker itself (the baseline). */
  async loadFromFile(state: string, memory: string, resume = true): Promise<void> {
    await this.api('PUT', '/snapshot/load', {
      snapshot_path: state, mem_backend: { backend_type: 'File', backend_path: memory }, [this.#trackDirtyField()]: true, resume_vm: resume,
    });
  }

  /** Kills firecracker and waits for it to exit. Idempotent. */
  async kill(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL');
    await this.exited;
    rmSync(this.apiSocket, { force: true });
  }
}

/** A microVM restored from a snapshot through Thaw's page server. */
export interface RestoredVm {
  readonly vm: FirecrackerVm;
  readonly pageServer: PageServer;
  readonly events: PageServerEvent[];
  /** Kills the VM, then stops the page server (which reports the session's statistics). */
  stop(): Promise<void>;
}

/**
 * Restores snapshot `state` in a new firecracker under `dir`, its memory (a Firecracker memory
 * file or a Thaw snapshot directory) served by a page server with `strategy`. If the page server
 * fails it kills the VM (as Firecracker's own handlers do), so a guest never runs on zero pages.
 */
export async function restoreWithPageServer(dir: string, state: string, memory: string, strategy: string): Promise<RestoredVm> {
  const events: PageServerEvent[] = [];
  const socket = join(dir, 'uffd.sock');
  const pageServer = await PageServer.listen({ socket, snapshot: memory, strategy, onEvent: (e) => events.push(e) });
  let vm: FirecrackerVm | undefined;
  try {
    vm = await FirecrackerVm.start(dir);
    await vm.loadFromPageServer(state, socket);
  } catch (err: unknown) {
    await vm?.kill();
    await pageServer.close();
    throw err;
  }
  const started = vm;
  return { vm: started, pageServer, events, stop: async () => { await started.kill(); await pageServer.close(); } };
}

/**
 * Applies a diff snapshot's memory file onto its base's (in place) with Firecracker's
 * snapshot-editor (`edit-memory rebase`), which copies the diff's data extents only: a diff
 * memory file is sparse, and its holes are pages that did not change.
 * Throws THAW_STRATEGY_UNAVAILABLE (no snapshot-editor), THAW_INTERNAL (it failed).
 */
export function rebaseDiff(baseMemory: string, diffMemory: string): void {
  const editor = firecrackerBinary(process.env, 'snapshot-editor');
  if (!editor) throw new ThawError('THAW_STRATEGY_UNAVAILABLE', { strategy: 'firecracker-diff', reason: "no snapshot-editor on PATH (it ships in Firecracker's release tarballs)" });
  const r = spawnSync(editor, ['edit-memory', 'rebase', '--memory-path', baseMemory, '--diff-path', diffMemory], { encoding: 'utf8' });
  if (r.status !== 0) throw new ThawError('THAW_INTERNAL', { detail: `snapshot-editor rebase failed (${r.status}): ${r.stderr || r.error?.message}` });
}
