// Entry point of a sandbox host: an OS process apart from the daemon that compiles function
// modules ahead of use and runs guests (boot, restore, invoke, snapshot) on the daemon's
// requests. Forked by the host pool; talks over Node IPC (see protocol.ts).

import { spawnSync } from 'node:child_process';
import { fstatSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { hostname, networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { readChain, writeSnapshot } from '../snapshot/snapshot-io.js';
import { ThawError, toThawError } from '../core/errors.js';
import { adapterFor, type GuestInstance, type RuntimeAdapter } from '../runtimes/index.js';
import { getStrategy, listStrategies, type OpenedImage } from '../restore/index.js';
import { openSyncObjectStore } from '../store/open-store.js';
import type { SyncObjectStore } from '../store/object-store.js';
import type { GuestContext } from '../runtimes/runtime.js';
import type { SnapshotMeta } from '../core/snapshot-format.js';
import { eager } from '../restore/strategies/eager.js';
import { jailLockExec, uffdAvailability, uffdUseDevice } from '../native/index.js';
import { setLeaseOwnerPid } from '../restore/pass-pool.js';
import { setRecordingOutbox } from '../restore/recording-outbox.js';
import { expectArtefacts } from '../restore/artefact-seal.js';
import { RECORDING_OUTBOX } from './jail.js';
import { memoryStages, offload, offloadStats, trackBoot, trackInit, trackRequest, trackRestore, untrack } from '../memory/host-memory.js';
import { guestMemory, invokeScaled } from '../memory/scaling/host-hook.js';
import type {
  BootResult, HostEnvelope, JailLayer, HostFunction, HostMessage, HostRequest, InvokeResult, MemoryStagesResult, OffloadResult, PrepareResult, RestoreResult, SnapshotResult, StatsResult,
} from './protocol.js';

/** What the daemon passed on the command line (a host's environment is empty). */
const args = parseHostArgs(process.argv.slice(2));
if (args.uffdDeviceFd !== null) {
  // A jailed host: no execve from here on (the jailer needed it to start us), and page servers
  // take their userfaultfds from the device the jailer opened, if it could (else fd 4 is
  // whatever Node opened there, and userfaultfd falls back to user-mode faults only).
  jailLockExec();
  if (isCharacterDevice(args.uffdDeviceFd)) uffdUseDevice(args.uffdDeviceFd);
  // Snapshot directories are read-only to a jailed host: what a restore records goes to scratch.
  if (args.scratch) setRecordingOutbox(join(args.scratch, RECORDING_OUTBOX));
}

for (const [k, v] of args.env) process.env[k] = v;

function isCharacterDevice(fd: number): boolean {
  try {
    return fstatSync(fd).isCharacterDevice();
  } catch {
    return false;
  }
}

function parseHostArgs(argv: readonly string[]): { uffdDeviceFd: number | null; scratch: string | null; env: [string, string][] } {
  const out: { uffdDeviceFd: number | null; scratch: string | null; env: [string, string][] } = { uffdDeviceFd: null, scratch: null, env: [] };
  for (const a of argv) {
    const [key, ...rest] = a.split('=');
    const value = rest.join('=');
    if (key === '--uffd-device-fd') out.uffdDeviceFd = Number(value);
    else if (key === '--scratch') out.scratch = value;
    else if (key === '--env') {
      const eq = value.indexOf('=');
      out.env.push([value.slice(0, eq), value.slice(eq + 1)]);
    }
  }
  return out;
}

interface PreparedFunction {
  readonly fn: HostFunction;
  readonly adapter: RuntimeAdapter;
  readonly prepared: unknown;
}

interface LiveSandbox {
  readonly id: string;
  readonly fn: PreparedFunction;
  readonly guest: GuestInstance;
  /** The snapshot this sandbox was restored from (the default base of a diff snapshot). */
  readonly restoredFrom: { root: string; id: string } | null;
  /** The restored image: its page server (if any) lives as long as the sandbox. */
  readonly image: OpenedImage | null;
}

const prepared = new Map<string, PreparedFunction>();
const sandboxes = new Map<string, LiveSandbox>();
let objects: SyncObjectStore | undefined;

function send(msg: HostMessage): void {
  process.send?.(msg);
}

function since(t0: number): number {
  return Math.round((performance.now() - t0) * 1000) / 1000;
}

function contextFor(sandboxId: string, fn: HostFunction): GuestContext {
  if (!objects) throw new ThawError('THAW_INTERNAL', { detail: 'sandbox host used before configure' });
  return {
    objects,
    memoryLimitBytes: fn.params.memoryMiB * 1024 * 1024,
    tempDir: args.scratch ?? tmpdir(),
    log: (stream, text) => send({ kind: 'log', sandboxId, stream, text }),
  };
}

function preparedFor(deployment: string): PreparedFunction {
  const p = prepared.get(deployment);
  if (!p) throw new ThawError('THAW_INTERNAL', { detail: `deployment ${deployment.slice(0, 12)} is not prepared in this host` });
  return p;
}

function sandbox(id: string): LiveSandbox {
  const s = sandboxes.get(id);
  if (!s) throw new ThawError('THAW_SANDBOX_NOT_FOUND', { id });
  return s;
}

async function handle(req: HostRequest): Promise<unknown> {
  switch (req.op) {
    case 'configure': {
      objects?.close();
      objects = openSyncObjectStore(req.objectStore, { socketPath: req.redisSocket });
      setLeaseOwnerPid(req.ownerPid);
      return {};
    }
    case 'prepare': {
      const t0 = performance.now();
      if (!prepared.has(req.fn.deployment)) {
        const adapter = await adapterFor(req.fn.params.runtime);
        const p: PreparedFunction = { fn: req.fn, adapter, prepared: await adapter.prepare(req.fn.params, req.fn.artefactPath) };
        prepared.set(req.fn.deployment, p);
        if (p.fn.params.runtime === 'wasi') await warmUp(p);
      }
      preallocateForRestores(req.fn.params.memoryMiB * 1024 * 1024);
      return { timings: { prepareMs: since(t0) } } satisfies PrepareResult;
    }
    case 'boot': {
      const p = preparedFor(req.deployment);
      releasePreallocated(null);
      const t0 = performance.now();
      const guest = await p.adapter.boot(p.prepared, contextFor(req.sandboxId, p.fn));
      trackBoot(req.sandboxId, guest.memory, req.trackMemory === true);
      const bootMs = since(t0);
      const t1 = performance.now();
      if (req.init) await guest.init();
      trackInit(req.sandboxId);
      const s: LiveSandbox = { id: req.sandboxId, fn: p, guest, restoredFrom: null, image: null };
      sandboxes.set(req.sandboxId, s);
      const result: BootResult = { timings: { bootMs, initMs: since(t1) }, memoryBytes: guest.memory.buffer.byteLength, memory: guestMemory(guest, p.fn.params, false) };
      return result;
    }
    case 'restore': {
      const p = preparedFor(req.deployment);
      const t0 = performance.now();
      const strategy = getStrategy(req.strategy);
      releasePreallocated(strategy.id);
      // The state files must be the ones whose seals the daemon checked (stateSha256, by id).
      const chain = readChain(req.snapshotRoot, req.snapshotId, req.stateSha256);
      // So must the artefacts it reads beside the snapshot (restore/artefact-seal.ts).
      expectArtefacts(req.snapshotId, req.artefactSha256);
      const top = chain[chain.length - 1]!;
      if (top.meta.moduleDigest !== p.fn.digest) {
        throw new ThawError('THAW_SNAPSHOT_VERSION', { id: req.snapshotId, detail: `taken from module ${top.meta.moduleDigest.slice(0, 12)}, function '${p.fn.params.name}' is now ${p.fn.digest.slice(0, 12)}` });
      }
      const image = strategy.open(req.snapshotRoot, chain);
      let guest: GuestInstance;
      try {
        guest = await p.adapter.restore(p.prepared, { runtime: top.meta.guestState }, image, contextFor(req.sandboxId, p.fn));
      } catch (err) {
        image.release();
        throw err;
      }
      const s: LiveSandbox = { id: req.sandboxId, fn: p, guest, restoredFrom: { root: req.snapshotRoot, id: req.snapshotId }, image };
      sandboxes.set(req.sandboxId, s);
      trackRestore(req.sandboxId, guest.memory, req.snapshotRoot, chain, req.trackMemory === true);
      const stats = { ...image.stats };
      const result: RestoreResult = { timings: { restoreMs: since(t0) }, memoryBytes: guest.memory.buffer.byteLength, memory: guestMemory(guest, p.fn.params, true), bytesRead: stats.bytesRead, restore: stats };
      return result;
    }
    case 'invoke':
      return trackRequest(req.sandboxId, () => invoke(sandbox(req.sandboxId), req.input));
    case 'snapshot': {
      const s = sandbox(req.sandboxId);
      const t0 = performance.now();
      // State first: a WASI command replaces its used instance with a fresh one there.
      const state = s.guest.captureState();
      const memory = new Uint8Array(s.guest.memory.buffer);
      let base: Uint8Array | undefined;
      if (req.meta.kind === 'diff') {
        if (!req.meta.baseId) throw new ThawError('THAW_REQUEST_INVALID', { detail: 'a diff snapshot needs a base snapshot' });
        const chain = readChain(req.snapshotRoot, req.meta.baseId);
        const baseTop = chain[chain.length - 1]!;
        if (baseTop.meta.moduleDigest !== s.fn.fn.digest) {
          throw new ThawError('THAW_SNAPSHOT_VERSION', { id: req.meta.baseId, detail: 'the base snapshot was taken from another module version' });
        }
        base = eager.open(req.snapshotRoot, chain).toBytes();
      }
      const meta: SnapshotMeta = {
        ...req.meta,
        functionName: s.fn.fn.params.name,
        runtime: s.fn.fn.params.runtime,
        moduleDigest: s.fn.fn.digest,
        memoryBytes: memory.length,
        guestState: state.runtime,
      };
      const written = writeSnapshot(req.outDir, meta, memory, base);
      return { timings: { snapshotMs: since(t0) }, meta, storedBytes: written.storedBytes, pageRuns: written.state.runs.length } satisfies SnapshotResult;
    }
    case 'destroy': {
      const s = sandboxes.get(req.sandboxId);
      sandboxes.delete(req.sandboxId);
      untrack(req.sandboxId);
      // Stops the sandbox's page server, if any (unserved pages fenced, never left to read zeros).
      const restore = s?.image?.release();
      return restore ? { restore: { ...restore } } : {};
    }
    case 'memoryStages':
      return memoryStages(sandbox(req.sandboxId).id) satisfies MemoryStagesResult;
    case 'offload':
      return offload(sandbox(req.sandboxId).id, req.request, req.memorySocket) satisfies OffloadResult;
    case 'inspect':
      return inspectJail();
    case 'stats':
      return { rssBytes: process.memoryUsage.rss(), sandboxes: [...sandboxes.keys()], prepared: [...prepared.keys()], offload: offloadStats() } satisfies StatsResult;
  }
}

/**
 * The jail as this process sees it: every layer is checked by what it does (a refused call, a
 * kernel status field), not by what the daemon asked for.
 */
function inspectJail(): JailLayer[] {
  const status = readFileSync('/proc/self/status', 'utf8');
  const field = (name: string): string => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1]?.trim() ?? '?';
  const refused = (fn: () => unknown): string | null => {
    try {
      fn();
      return null;
    } catch (err: unknown) {
      return (err as NodeJS.ErrnoException).code ?? String(err);
    }
  };
  const uid = process.getuid?.() ?? -1;
  const gid = process.getgid?.() ?? -1;
  const spawned = spawnSync('/bin/true');
  const listRoot = refused(() => readdirSync('/'));
  const interfaces = Object.keys(networkInterfaces());
  const uffd = uffdAvailability();
  const seccomp = field('Seccomp');
  return [
    { layer: 'user', active: uid !== 0 && gid !== 0, detail: `uid ${uid}, gid ${gid}, groups ${process.getgroups?.().join(',')}` },
    { layer: 'capabilities', active: /^0+$/.test(field('CapEff')) && /^0+$/.test(field('CapBnd')), detail: `effective ${field('CapEff')}, bounding ${field('CapBnd')}` },
    { layer: 'no_new_privs', active: field('NoNewPrivs') === '1', detail: `NoNewPrivs ${field('NoNewPrivs')}` },
    { layer: 'seccomp', active: seccomp === '2', detail: `mode ${seccomp}, ${field('Seccomp_filters')} filters; spawning a process: ${spawned.error ? (spawned.error as NodeJS.ErrnoException).code : 'allowed'}` },
    { layer: 'landlock', active: listRoot !== null, detail: listRoot ? `listing / refused (${listRoot})` : 'listing / allowed' },
    { layer: 'pid namespace', active: process.pid === 1, detail: `pid ${process.pid} inside` },
    { layer: 'network namespace', active: interfaces.length === 0 || interfaces.every((n) => n === 'lo'), detail: `interfaces: ${interfaces.join(', ') || 'none up'}` },
    { layer: 'uts namespace', active: hostname() === 'thaw-sandbox', detail: `hostname ${hostname()}` },
    { layer: 'environment', active: Object.keys(process.env).length === 0, detail: `${Object.keys(process.env).length} variables` },
    { layer: 'userfaultfd', active: uffd.available, detail: uffd.available ? 'page servers available' : uffd.reason },
  ];
}

async function invoke(s: LiveSandbox, bytes: Uint8Array): Promise<InvokeResult> {
  // IPC may hand a Buffer over; guests get a plain Uint8Array view of the same bytes.
  const input = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // The function's memory scaling mechanism runs around the guest (src/memory/scaling/).
  let handlerMs = 0;
  const scaled = await invokeScaled(s.guest, s.fn.fn.params, s.image !== null, async () => {
    const th = performance.now();
    const out = await s.guest.invoke(input);
    handlerMs = since(th);
    return out;
  });
  const output = scaled.value;
  // Every runtime's output is bounded here, before it crosses to the daemon (wasi also stops
  // the guest at the write that passes the limit).
  const { name, maxOutputBytes } = s.fn.fn.params;
  if (output.byteLength > maxOutputBytes) throw new ThawError('THAW_OUTPUT_TOO_LARGE', { name, limitBytes: maxOutputBytes });
  // Lets the restore strategy react to the first invocation (reap ends its recording here).
  s.image?.afterInvoke();
  const result: InvokeResult = { timings: { ...scaled.timings, handlerMs }, output, memoryBytes: s.guest.memory.buffer.byteLength, memory: scaled.memory };
  // Restore stats as of now: page-server counts are complete only once a strategy stops its server.
  if (s.image) result.restore = { ...s.image.stats };
  return result;
}

/**
 * Lets every restore strategy that has a prepare-time warm-up run it now, before any request,
 * for a guest of up to `bytes` (the function's memory limit): thaw pre-faults the memory a later
 * restore moves under the guest. Costs prepare time and keeps that memory resident in this host
 * (thaw caps it) whichever strategy the next restore uses. Never throws (the hook is best effort).
 */
function preallocateForRestores(bytes: number): void {
  for (const s of listStrategies()) {
    if (s.support.ok) getStrategy(s.id).preallocate?.(bytes);
  }
}

/** Gives back every strategy's preallocation except `keep`'s (the strategy about to restore). */
function releasePreallocated(keep: string | null): void {
  for (const s of listStrategies()) {
    if (s.id !== keep && s.support.ok) getStrategy(s.id).releasePreallocated?.();
  }
}

/**
 * Runs the boot, snapshot and eager-restore paths once on a throwaway guest (no init, no
 * handler: nothing the function can observe), so that the first real request does not pay
 * for V8's first instantiation and for cold JS code: measured at 8.5 ms -> 2 ms for the first
 * restore of hello-c. The throwaway snapshot lives in a private temp directory, removed here.
 */
async function warmUp(p: PreparedFunction): Promise<void> {
  const dir = mkdtempSync(join(args.scratch ?? tmpdir(), 'thaw-warmup-'));
  try {
    const ctx = contextFor('warm-up', p.fn);
    const guest = await p.adapter.boot(p.prepared, ctx);
    const meta: SnapshotMeta = {
      id: 'warm-up', kind: 'full', baseId: null, functionName: p.fn.params.name, runtime: p.fn.params.runtime, moduleDigest: p.fn.digest,
      memoryBytes: guest.memory.buffer.byteLength, guestState: guest.captureState().runtime, createdAt: new Date().toISOString(), sourceSandboxId: 'warm-up',
    };
    writeSnapshot(dir, meta, new Uint8Array(guest.memory.buffer));
    const image = eager.open(dir, readChain(dir, 'warm-up'));
    await p.adapter.restore(p.prepared, { runtime: meta.guestState }, image, ctx);
    image.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// Requests run one at a time: a guest is single-threaded, and ordering keeps snapshots consistent.
let queue: Promise<void> = Promise.resolve();
process.on('message', (env: HostEnvelope) => {
  queue = queue.then(async () => {
    try {
      const result = await handle(env.req);
      send({ kind: 'reply', reqId: env.reqId, ok: true, result });
    } catch (err) {
      send({ kind: 'reply', reqId: env.reqId, ok: false, error: toThawError(err).toJSON() });
    }
  });
});
// Page servers stop with the host on a normal exit (a killed host is cleaned up by the kernel:
// the server thread, the userfaultfd and the mapped files all die with the process).
process.on('exit', () => {
  for (const s of sandboxes.values()) {
    untrack(s.id);
    s.image?.release();
  }
});
// An error nothing caught ends the host (its state cannot be trusted), but first tells the
// daemon what it was, so the sandbox's THAW_SANDBOX_DIED names the cause.
const fatal = (err: unknown): void => {
  const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  process.stderr.write(`thaw sandbox host ${process.pid}: fatal: ${err instanceof Error ? err.stack : message}\n`);
  process.send?.({ kind: 'fatal', message } satisfies HostMessage, () => process.exit(70));
  setTimeout(() => process.exit(70), 1000).unref();
};
process.on('uncaughtException', fatal);
process.on('unhandledRejection', fatal);
// The daemon going away ends the host: a host never outlives its owner.
process.on('disconnect', () => process.exit(0));
send({ kind: 'ready', pid: process.pid });
