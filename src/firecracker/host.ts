// A Firecracker microVM as a sandbox host: the platform drives it with the same requests as a
// Wasm sandbox host process (boot, restore, invoke, snapshot, destroy; sandbox/protocol.ts), and
// this class carries them out against one firecracker process (driver.ts) from the daemon:
//
//   boot      boot-source, the function's rootfs (read-only), machine-config with dirty-page
//             tracking, a vsock device; InstanceStart; then wait for the guest's invoke port
//   restore   the snapshot's vmstate (kept in its sealed state file) into a fresh firecracker,
//             its memory served by Thaw's page server (page-server.ts) with the chosen strategy
//             through the Uffd backend; resume; wait for the guest's invoke port
//   invoke    POST the input to the guest's invokePath over vsock; a 200 reply's body is the output
//   snapshot  pause, /snapshot/create (Full, or Diff of the pages dirtied since this VM's last
//             snapshot or restore), resume; then written as a Thaw snapshot (format 2, per-page
//             CRC-32s, diff = pages that differ from the base chain) with the vmstate in its
//             metadata, so the daemon seals both with its key
//
// Each VM has its own directory under <data>/run/fc/ (firecracker's cwd): the rootfs link, the
// vsock socket and the snapshot files are named relative to it (see driver.ts).

import { createHash } from 'node:crypto';
import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, readSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ThawError } from '../core/errors.js';
import { PAGE_BYTES, type SnapshotMeta } from '../core/snapshot-format.js';
import { declaredOnly } from '../memory/accounting.js';
import { fcDataExtents } from '../native/index.js';
import { loadChainInto, readChain, writeSnapshot } from '../snapshot/snapshot-io.js';
import type { HostExit, RequestOptions, Timed } from '../sandbox/host-process.js';
import type { BootResult, HostFunction, HostRequest, InvokeResult, RestoreResult, SnapshotResult } from '../sandbox/protocol.js';
import { FirecrackerVm } from './driver.js';
import { PageServer, type PageServerEvent } from './page-server.js';
import { JailedPageServer } from './page-server-jail.js';
import { guestFailed, vsockPost, vsockWaitReady } from './vsock.js';

/** Names inside a VM's directory. */
const ROOTFS_LINK = 'rootfs.ext4';
const VSOCK_SOCKET = 'v.sock';
const UFFD_SOCKET = 'uffd.sock';
/** A jailed page server's socket, in a directory of its own. */
const JAILED_UFFD_SOCKET = 'ps/uffd.sock';
const RESTORE_VMSTATE = 'restore.vmstate';
const SNAP_VMSTATE = 'snap.vmstate';
const SNAP_MEMORY = 'snap.mem';

/** What a Firecracker snapshot keeps in its Thaw state file's guestState. */
export interface FirecrackerGuestState {
  readonly firecracker: {
    /** Firecracker's microVM state file (vmstate), base64: sealed with the state file. */
    readonly vmstate: string;
    readonly vmstateSha256: string;
    /** The firecracker version that wrote it (a snapshot loads only into a compatible one). */
    readonly version: string;
  };
}

type LogSink = (sandboxId: string, stream: 'stdout' | 'stderr', text: string) => void;

export class FirecrackerHost {
  readonly cgroup = null;
  readonly exited: Promise<HostExit>;
  readonly #fn: HostFunction;
  readonly #vm: FirecrackerVm;
  #sandboxId = '';
  #pageServer: { close(): Promise<void> } | null = null;
  /** Run restores' page servers jailed (the platform's hosts are), in the function's group. */
  readonly #jailPageServer: boolean;
  /** The page server's sessions (restores): their end and any fatal error are kept for the exit report. */
  readonly pageServerEvents: PageServerEvent[] = [];
  /** The snapshot this VM's dirty-page log counts from (its last snapshot or restore): a diff's only valid base. */
  #lastSnapshot: string | null = null;
  /** The snapshot this VM was restored from (its page server's), or null when it booted. */
  #restoredFrom: string | null = null;
  #killReason: string | null = null;
  #exit: HostExit | null = null;
  /** Requests run one at a time, in order (as a host process runs them). */
  #queue: Promise<unknown> = Promise.resolve();

  readonly #onLog: LogSink;

  private constructor(fn: HostFunction, vm: FirecrackerVm, jailPageServer: boolean, onLog: LogSink) {
    this.#fn = fn;
    this.#onLog = onLog;
    this.#vm = vm;
    this.#jailPageServer = jailPageServer;
    this.exited = vm.exited.then(async ({ code, signal }) => {
      const failed = this.pageServerEvents.find((e) => e.event === 'session-end' && e.error);
      this.#exit = { code, signal, killedBy: this.#killReason, oomKilled: false, fatal: failed && failed.event === 'session-end' ? `the page server stopped the VM: ${failed.error}` : null };
      await this.#pageServer?.close().catch(() => {});
      rmSync(vm.dir, { recursive: true, force: true });
      return this.#exit;
    });
  }

  /** Starts a firecracker for `fn` in a new directory under `runRoot`. Throws THAW_STRATEGY_UNAVAILABLE, THAW_INTERNAL. */
  static async start(fn: HostFunction, runRoot: string, id: string, onLog: LogSink, jailPageServer: boolean): Promise<FirecrackerHost> {
    const dir = join(runRoot, id);
    mkdirSync(dir, { recursive: true });
    chmodSync(dir, 0o711); // a jailed page server's socket directory is inside
    try {
      symlinkSync(fn.artefactPath, join(dir, ROOTFS_LINK));
      const vm = await FirecrackerVm.start(dir, id, 'pipe');
      const host = new FirecrackerHost(fn, vm, jailPageServer, onLog);
      vm.output?.stdout?.setEncoding('utf8').on('data', (t: string) => onLog(host.#sandboxId, 'stdout', t));
      vm.output?.stderr?.setEncoding('utf8').on('data', (t: string) => onLog(host.#sandboxId, 'stderr', t));
      return host;
    } catch (err: unknown) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  get pid(): number {
    return this.#vm.pid;
  }

  get alive(): boolean {
    return this.#exit === null && this.#vm.alive;
  }

  get exit(): HostExit | null {
    return this.#exit;
  }

  /**
   * What the page server reported when it refused this VM's handshake or stopped serving it (and
   * killed it), as the error to report; null when it did neither.
   */
  #pageServerFailure(snapshotId: string): ThawError | null {
    for (const e of this.pageServerEvents) {
      if (e.event === 'refused') return ThawError.fromJSON(e);
      if (e.event === 'session-end' && e.error) {
        return e.error.startsWith('THAW_SNAPSHOT_CORRUPT')
          ? new ThawError('THAW_SNAPSHOT_CORRUPT', { id: snapshotId, detail: `the page server found ${e.error.replace(/^THAW_SNAPSHOT_CORRUPT: /, '')} and stopped the microVM` })
          : new ThawError('THAW_SANDBOX_DIED', { id: `firecracker-${this.pid}`, detail: `the page server stopped the microVM: ${e.error}` });
      }
    }
    return null;
  }

  #died(): ThawError {
    if (this.#restoredFrom !== null) {
      const served = this.#pageServerFailure(this.#restoredFrom);
      if (served) return served;
    }
    const e = this.#exit;
    const detail = e?.killedBy ? `killed by Thaw (${e.killedBy})` : e?.fatal ?? `firecracker exited (${e?.signal ?? `code ${e?.code ?? '?'}`})`;
    return new ThawError('THAW_SANDBOX_DIED', { id: `firecracker-${this.pid}`, detail });
  }

  async request<T>(req: HostRequest, opts: RequestOptions = {}): Promise<T> {
    return (await this.requestTimed<T>(req, opts)).result;
  }

  /** Carries out one request (after those before it); with timeoutMs the VM is killed when it is late. */
  requestTimed<T>(req: HostRequest, opts: RequestOptions = {}): Promise<Timed<T>> {
    if (!this.alive) return Promise.reject(this.#died());
    const sentAt = performance.now();
    const run = this.#queue.then(async () => {
      const start = performance.now();
      const result = await Promise.race([this.#handle(req), this.exited.then(() => { throw this.#died(); })]);
      const reply = performance.now();
      return { result: result as T, sentAt, receivedAt: reply, host: { recv: sentAt, start, reply }, spans: [] };
    });
    this.#queue = run.catch(() => {});
    if (opts.timeoutMs === undefined) return run;
    const timeoutMs = opts.timeoutMs;
    return new Promise<Timed<T>>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const arm = (): void => {
        timer = setTimeout(() => {
          void this.kill('timeout');
          reject(opts.onTimeout?.() ?? this.#died());
        }, timeoutMs);
      };
      if (opts.timeoutAfter) opts.timeoutAfter.then(arm, () => {});
      else arm();
      run.then((v) => { clearTimeout(timer); resolve(v); }, (err: unknown) => { clearTimeout(timer); reject(err); });
    });
  }

  async #handle(req: HostRequest): Promise<unknown> {
    switch (req.op) {
      case 'boot':
        this.#sandboxId = req.sandboxId;
        return this.#boot();
      case 'restore':
        this.#sandboxId = req.sandboxId;
        return this.#restore(req);
      case 'invoke':
        return this.#invoke(req.input);
      case 'snapshot':
        return this.#snapshot(req);
      case 'destroy':
        await this.kill('destroyed');
        return {};
      default:
        throw new ThawError('THAW_REQUEST_INVALID', { detail: `'${req.op}' does not apply to a Firecracker microVM sandbox` });
    }
  }

  get #memoryBytes(): number {
    return this.#fn.params.memoryMiB * 1024 * 1024;
  }

  get #fc(): NonNullable<HostFunction['params']['firecracker']> {
    const fc = this.#fn.params.firecracker;
    if (!fc) throw new ThawError('THAW_INTERNAL', { detail: `function '${this.#fn.params.name}' has no firecracker settings` });
    return fc;
  }

  /** Waits for the guest's invoke port, within the function's init budget (the platform's deadline kills the VM first). */
  async #guestReady(): Promise<void> {
    try {
      await vsockWaitReady(join(this.#vm.dir, VSOCK_SOCKET), this.#fc.vsockPort, this.#fn.params.initTimeoutMs);
    } catch (err: unknown) {
      if (!this.alive) throw this.#died();
      throw guestFailed(this.#fn.params.name, (err as Error).message);
    }
  }

  async #boot(): Promise<BootResult> {
    const fc = this.#fc;
    const t0 = performance.now();
    await this.#vm.boot({
      kernel: fc.kernelPath, rootfs: ROOTFS_LINK, rootfsReadOnly: true, vsockSocket: VSOCK_SOCKET,
      memMib: this.#fn.params.memoryMiB, vcpus: fc.vcpus, bootArgs: fc.bootArgs, trackDirtyPages: true,
    });
    const t1 = performance.now();
    await this.#guestReady();
    this.#lastSnapshot = null;
    return { timings: { bootMs: t1 - t0, initMs: performance.now() - t1 }, memoryBytes: this.#memoryBytes, memory: declaredOnly(this.#memoryBytes) };
  }

  async #restore(req: Extract<HostRequest, { op: 'restore' }>): Promise<RestoreResult> {
    const t0 = performance.now();
    // The state files must be the very bytes the daemon's seals cover.
    const chain = readChain(req.snapshotRoot, req.snapshotId, req.stateSha256);
    const top = chain[chain.length - 1]!;
    if (top.meta.runtime !== 'firecracker' || top.meta.memoryBytes !== this.#memoryBytes) {
      throw new ThawError('THAW_SNAPSHOT_VERSION', { id: req.snapshotId, detail: `a ${top.meta.runtime} snapshot of ${top.meta.memoryBytes} bytes, not a ${this.#fn.params.memoryMiB} MiB Firecracker microVM's` });
    }
    const vmstate = vmstateOf(req.snapshotId, top.meta.guestState);
    writeFileSync(join(this.#vm.dir, RESTORE_VMSTATE), vmstate, { mode: 0o600 });
    const onEvent = (e: PageServerEvent): void => {
      this.pageServerEvents.push(e);
      // Its startup line (strategy, checks, the jail layers it observes) and its end go to the function's log.
      if (e.event !== 'session') this.#onLog(this.#sandboxId, 'stderr', `thaw page server: ${JSON.stringify(e)}\n`);
      // A jailed page server cannot signal firecracker (another uid and PID namespace): its owner does.
      if (e.event === 'session-end' && e.error) void this.kill(`the page server stopped serving: ${e.error}`);
    };
    const snapshot = join(req.snapshotRoot, req.snapshotId);
    const sha = req.stateSha256 && { expectSha256: req.stateSha256 };
    const socket = this.#jailPageServer ? JAILED_UFFD_SOCKET : UFFD_SOCKET;
    this.#pageServer = this.#jailPageServer
      ? await JailedPageServer.start({ socket: join(this.#vm.dir, socket), snapshot, strategy: req.strategy, gid: this.#fn.gid, ...sha, onEvent })
      : await PageServer.listen({ socket: join(this.#vm.dir, socket), snapshot, strategy: req.strategy, ...sha, onEvent });
    this.#restoredFrom = req.snapshotId;
    try {
      await this.#vm.loadFromPageServer(RESTORE_VMSTATE, socket, true);
    } catch (err: unknown) {
      // The page server's own report says more than Firecracker's (its events may trail the reply).
      for (let i = 0; i < 20 && !this.#pageServerFailure(req.snapshotId); i++) await new Promise((r) => setTimeout(r, 10));
      throw this.#pageServerFailure(req.snapshotId) ?? err;
    }
    const t1 = performance.now();
    await this.#guestReady();
    this.#lastSnapshot = req.snapshotId;
    return { timings: { restoreMs: t1 - t0, initMs: performance.now() - t1 }, memoryBytes: this.#memoryBytes, memory: declaredOnly(this.#memoryBytes), bytesRead: 0 };
  }

  async #invoke(input: Uint8Array): Promise<InvokeResult> {
    const p = this.#fn.params;
    const t0 = performance.now();
    let reply;
    try {
      reply = await vsockPost(join(this.#vm.dir, VSOCK_SOCKET), this.#fc.vsockPort, this.#fc.invokePath, input, p.maxOutputBytes);
    } catch (err: unknown) {
      if (!this.alive) throw this.#died();
      throw guestFailed(p.name, `invocation over vsock port ${this.#fc.vsockPort}: ${(err as Error).message}`);
    }
    if (reply.truncated) throw new ThawError('THAW_OUTPUT_TOO_LARGE', { name: p.name, limitBytes: p.maxOutputBytes });
    if (reply.status !== 200) throw guestFailed(p.name, `the guest answered ${reply.status} to POST ${this.#fc.invokePath}: ${reply.body.subarray(0, 200).toString('utf8')}`);
    return { timings: { handlerMs: performance.now() - t0 }, output: new Uint8Array(reply.body), memoryBytes: this.#memoryBytes, memory: declaredOnly(this.#memoryBytes) };
  }

  async #snapshot(req: Extract<HostRequest, { op: 'snapshot' }>): Promise<SnapshotResult> {
    const t0 = performance.now();
    const { kind, baseId } = req.meta;
    if (kind === 'diff' && baseId !== this.#lastSnapshot) {
      // Firecracker's diff holds the pages dirtied since this VM's last snapshot or restore: any other base would be wrong.
      throw new ThawError('THAW_REQUEST_INVALID', {
        detail: `a Firecracker diff snapshot holds the pages written since ${this.#lastSnapshot ? `snapshot '${this.#lastSnapshot}'` : 'boot (take a full snapshot first)'}: baseId '${baseId}' does not apply`,
      });
    }
    const dir = this.#vm.dir;
    await this.#vm.pause();
    try {
      await this.#vm.snapshot(kind === 'diff' ? 'Diff' : 'Full', { state: SNAP_VMSTATE, memory: SNAP_MEMORY });
    } finally {
      await this.#vm.resume();
    }
    try {
      const vmstate = readFileSync(join(dir, SNAP_VMSTATE));
      const { memory, base } = this.#snapshotMemory(req, join(dir, SNAP_MEMORY));
      const guestState: FirecrackerGuestState = { firecracker: { vmstate: vmstate.toString('base64'), vmstateSha256: sha256(vmstate), version: this.#vm.version } };
      const meta: SnapshotMeta = {
        ...req.meta, functionName: this.#fn.params.name, runtime: 'firecracker', moduleDigest: this.#fn.digest, memoryBytes: this.#memoryBytes, guestState,
      };
      const written = writeSnapshot(req.outDir, meta, memory, base);
      this.#lastSnapshot = req.meta.id;
      return { timings: { snapshotMs: performance.now() - t0 }, meta, storedBytes: written.storedBytes, pageRuns: written.state.runs.length };
    } finally {
      rmSync(join(dir, SNAP_VMSTATE), { force: true });
      rmSync(join(dir, SNAP_MEMORY), { force: true });
    }
  }

  /**
   * Guest memory at the snapshot: a full memory file as is; a diff's data extents (the pages it
   * holds, zero pages included) over its base chain's memory, which is returned as `base`.
   */
  #snapshotMemory(req: Extract<HostRequest, { op: 'snapshot' }>, path: string): { memory: Buffer; base?: Buffer } {
    const bytes = this.#memoryBytes;
    const fd = openSync(path, 'r');
    try {
      if (req.meta.kind === 'full') {
        const memory = Buffer.alloc(bytes);
        readFully(fd, memory, 0, bytes);
        return { memory };
      }
      const base = Buffer.alloc(bytes);
      loadChainInto(req.snapshotRoot, readChain(req.snapshotRoot, req.meta.baseId!), base);
      const memory = Buffer.from(base);
      for (const { offset, length } of fcDataExtents(fd)) {
        if (offset % PAGE_BYTES || offset + length > bytes) throw new ThawError('THAW_INTERNAL', { detail: `firecracker's diff memory file has data at ${offset}+${length}, outside the ${bytes}-byte guest or not page-aligned` });
        readFully(fd, memory, offset, length);
      }
      return { memory, base };
    } finally {
      closeSync(fd);
    }
  }

  offload(): Promise<never> {
    return Promise.reject(new ThawError('THAW_OFFLOAD_UNAVAILABLE', { id: this.#sandboxId, tier: 'any', reason: 'a Firecracker microVM\'s memory is its own process\'s: offloading is for Wasm sandboxes' }));
  }

  offloadStats(): Promise<never> {
    return this.offload();
  }

  memoryStages(): Promise<never> {
    return this.offload();
  }

  prefetch(): Promise<never> {
    return this.offload();
  }

  /** Kills firecracker (and the page server with it). Resolves when it has exited. */
  kill(reason: string): Promise<HostExit> {
    if (this.alive) this.#killReason ??= reason;
    void this.#vm.kill();
    return this.exited;
  }
}

/** The vmstate a Firecracker snapshot's metadata holds, checked against its sha256. Throws THAW_SNAPSHOT_CORRUPT. */
export function vmstateOf(id: string, guestState: unknown): Buffer {
  const fc = (guestState as Partial<FirecrackerGuestState> | null)?.firecracker;
  if (!fc || typeof fc.vmstate !== 'string' || typeof fc.vmstateSha256 !== 'string') {
    throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id, detail: 'no Firecracker vmstate in its metadata (not a Firecracker microVM snapshot)' });
  }
  const bytes = Buffer.from(fc.vmstate, 'base64');
  if (sha256(bytes) !== fc.vmstateSha256) throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id, detail: 'its Firecracker vmstate does not match its sha256' });
  return bytes;
}

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

function readFully(fd: number, into: Buffer, offset: number, length: number): void {
  for (let done = 0; done < length;) {
    const n = readSync(fd, into, offset + done, length - done, offset + done);
    if (n <= 0) throw new ThawError('THAW_INTERNAL', { detail: `firecracker's memory file ends at ${offset + done}, before ${offset + length}` });
    done += n;
  }
}
