// A host's instance lifecycle: prepare a deployment (compile once, shared by every instance),
// boot or restore an instance, destroy one.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { readChain, writeSnapshot } from '../../snapshot/snapshot-io.js';
import { ThawError } from '../../core/errors.js';
import { adapterFor, type GuestInstance, type MemoryImage } from '../../runtimes/index.js';
import { getStrategy, listStrategies, type RestoreStrategy } from '../../restore/index.js';
import { eager } from '../../restore/strategies/eager.js';
import { adoptSealedImages } from '../../restore/strategies/sealed.js';
import { openSyncObjectStore } from '../../store/open-store.js';
import { setLeaseOwnerPid } from '../../restore/pass-pool.js';
import { expectArtefacts } from '../../restore/artefact-seal.js';
import { trackBoot, trackInit, trackRestore, untrack } from '../../memory/host-memory.js';
import { guestMemory } from '../../memory/scaling/host-hook.js';
import type { SnapshotMeta, SnapshotState } from '../../core/snapshot-format.js';
import type { BootResult, HostRequest, PrepareResult, RestoreResult } from '../protocol.js';
import { hostSpan, setSpanAttributes, tracing } from './spans.js';
import { checkCapacity, contextFor, hostSettings, instances, prepared, preparedFor, since, setObjects, type Instance, type PreparedFunction } from './state.js';

type Req<K extends HostRequest['op']> = Extract<HostRequest, { op: K }>;

export function configure(req: Req<'configure'>): Record<string, never> {
  setObjects(openSyncObjectStore(req.objectStore, { socketPath: req.redisSocket }));
  setLeaseOwnerPid(req.ownerPid);
  return {};
}

export async function prepare(req: Req<'prepare'>): Promise<PrepareResult> {
  const t0 = performance.now();
  // Sealed images of the function's snapshots, sent with the prepare: mapped now, not at restore.
  if (hostSettings.imageChannelFd !== null) adoptSealedImages(hostSettings.imageChannelFd);
  if (!prepared.has(req.fn.deployment)) {
    const adapter = await adapterFor(req.fn.params.runtime);
    const p: PreparedFunction = { fn: req.fn, adapter, prepared: await adapter.prepare(req.fn.params, req.fn.artefactPath), capacity: req.instances ?? 1 };
    prepared.set(req.fn.deployment, p);
    if (p.fn.params.runtime === 'wasi') await warmUp(p);
    // A shell waits for the first restore (Python's prepare started its own already).
    await p.adapter.readyNext?.(p.prepared);
  }
  preallocateForRestores(req.fn.params.memoryMiB * 1024 * 1024);
  return { timings: { prepareMs: since(t0) } };
}

export async function boot(req: Req<'boot'>): Promise<BootResult> {
  const p = preparedFor(req.deployment);
  checkCapacity(p, req.sandboxId);
  releasePreallocated(null);
  const t0 = performance.now();
  const guest = await hostSpan('instantiate', { 'thaw.sandbox': req.sandboxId }, () => p.adapter.boot(p.prepared, contextFor(req.sandboxId, p.fn)));
  trackBoot(req.sandboxId, guest.memory, req.trackMemory === true);
  const bootMs = since(t0);
  const t1 = performance.now();
  if (req.init) await hostSpan('init', {}, () => guest.init());
  trackInit(req.sandboxId);
  instances.set(req.sandboxId, { id: req.sandboxId, fn: p, guest, restoredFrom: null, image: null });
  return { timings: { bootMs, initMs: since(t1) }, memoryBytes: guest.memory.buffer.byteLength, memory: guestMemory(guest, p.fn.params, false) };
}

export async function restore(req: Req<'restore'>): Promise<RestoreResult> {
  const p = preparedFor(req.deployment);
  checkCapacity(p, req.sandboxId);
  // A shell being made for this restore in the background: waiting for it is queueing.
  const queueMs = await awaitPreparation();
  const t0 = performance.now();
  const strategy = getStrategy(req.strategy);
  releasePreallocated(strategy.id);
  // Sealed images the daemon passed for this restore (strategies/sealed.ts).
  if (hostSettings.imageChannelFd !== null) adoptSealedImages(hostSettings.imageChannelFd);
  setSpanAttributes({ 'thaw.sandbox': req.sandboxId, 'thaw.snapshot': req.snapshotId, 'thaw.strategy': strategy.id });
  const { chain, image } = hostSpan('open snapshot', {}, () => {
    // The state files must be the ones whose seals the daemon checked (stateSha256, by id).
    const chain = readVerifiedChain(req.snapshotRoot, req.snapshotId, req.stateSha256);
    // So must the artefacts it reads beside the snapshot (restore/artefact-seal.ts).
    expectArtefacts(req.snapshotId, req.artefactSha256);
    const top = chain[chain.length - 1]!;
    if (top.meta.moduleDigest !== p.fn.digest) {
      throw new ThawError('THAW_SNAPSHOT_VERSION', { id: req.snapshotId, detail: `taken from module ${top.meta.moduleDigest.slice(0, 12)}, function '${p.fn.params.name}' is now ${p.fn.digest.slice(0, 12)}` });
    }
    return { chain, image: strategy.open(req.snapshotRoot, chain) };
  });
  const top = chain[chain.length - 1]!;
  let guest: GuestInstance;
  try {
    // The runtime's restore calls the strategy's fill() (map or prefetch) inside it.
    guest = await hostSpan('resume', { 'thaw.runtime': p.fn.params.runtime }, () =>
      p.adapter.restore(p.prepared, { runtime: top.meta.guestState }, tracing() ? tracedFill(image) : image, contextFor(req.sandboxId, p.fn)));
  } catch (err) {
    image.release();
    throw err;
  }
  instances.set(req.sandboxId, { id: req.sandboxId, fn: p, guest, restoredFrom: { root: req.snapshotRoot, id: req.snapshotId }, image });
  trackRestore(req.sandboxId, guest.memory, req.snapshotRoot, chain, req.trackMemory === true);
  const stats = { ...image.stats };
  setSpanAttributes({ 'thaw.restore.bytes_read': stats.bytesRead, 'thaw.restore.fill_ms': stats.fillMs, 'thaw.restore.uffd_faults': stats.uffdFaults, 'thaw.restore.prefetched_pages': stats.prefetchedPages });
  return { timings: { queueMs, restoreMs: since(t0) }, memoryBytes: guest.memory.buffer.byteLength, memory: guestMemory(guest, p.fn.params, true), bytesRead: stats.bytesRead, restore: stats };
}

/** The last chain readVerifiedChain() read, under the key it was read with. */
let lastChain: { key: string; chain: SnapshotState[] } | null = null;

/**
 * readChain(), reusing the previous restore's parse when the request names the same snapshot
 * with the same expected state sha256s (a vertical host restores one snapshot again and again):
 * those bytes were checked against these very hashes already, so reading and hashing them again
 * proves nothing new. Without expected hashes nothing is reused.
 */
function readVerifiedChain(root: string, id: string, stateSha256: Readonly<Record<string, string>> | undefined): SnapshotState[] {
  if (stateSha256 === undefined) return readChain(root, id, stateSha256);
  const key = JSON.stringify([root, id, Object.entries(stateSha256).sort()]);
  if (lastChain?.key !== key) lastChain = { key, chain: readChain(root, id, stateSha256) };
  return lastChain.chain;
}

/** The image with its fill() (the strategy's map or prefetch) recorded as a span. */
function tracedFill(image: MemoryImage): MemoryImage {
  return {
    byteLength: image.byteLength,
    fill: (memory) => hostSpan('map or prefetch (fill)', { 'thaw.bytes': image.byteLength }, () => image.fill(memory)),
    toBytes: () => hostSpan('read image', { 'thaw.bytes': image.byteLength }, () => image.toBytes()),
  };
}

export function destroy(req: Req<'destroy'>): { restore?: RestoreResult['restore'] } {
  const s = instances.get(req.sandboxId);
  instances.delete(req.sandboxId);
  untrack(req.sandboxId);
  // Stops the instance's page server, if any (unserved pages fenced, never left to read zeros).
  const restored = s?.image?.release();
  return restored ? { restore: { ...restored } } : {};
}

/**
 * Lets the runtime get ready for the next instance in a host with room for more (a vertical
 * one): a shell, as prepare made for the first. Runs in the background, outside the request
 * queue, once the queue is empty (after a reply, never before one): requests that arrive
 * meanwhile run between its steps (a sibling's warm invoke, a destroy, a cold boot), and only a
 * restore, which needs the shell, waits for it (restore() reports that wait as queueMs). One
 * preparation at a time; errors are logged (a restore that finds nothing ready starts its own
 * shell).
 */
export function readyNextInBackground(): Promise<void> {
  preparing ??= readyNextInstance()
    .catch((err: unknown) => void process.stderr.write(`thaw sandbox host ${process.pid}: cannot get ready for the next instance: ${String(err)}\n`))
    .finally(() => {
      preparing = null;
    });
  return preparing;
}

/** The preparation readyNextInBackground() is running, if any. */
let preparing: Promise<void> | null = null;

async function readyNextInstance(): Promise<void> {
  for (const p of prepared.values()) {
    const live = [...instances.values()].filter((i: Instance) => i.fn === p).length;
    if (live < p.capacity) await p.adapter.readyNext?.(p.prepared);
  }
}

/** Waits for a background preparation in flight (the shell a restore will take); returns the ms waited. */
async function awaitPreparation(): Promise<number> {
  if (!preparing) return 0;
  const t0 = performance.now();
  await preparing;
  return since(t0);
}

/** Stops every instance's page server (the host is exiting). */
export function releaseAll(): void {
  for (const s of instances.values()) {
    untrack(s.id);
    s.image?.release();
  }
}

/**
 * Lets every restore strategy that has a prepare-time warm-up run it now, before any request,
 * for a guest of up to `bytes` (the function's memory limit): thaw pre-faults the memory a later
 * restore moves under the guest. Costs prepare time and keeps that memory resident in this host
 * (thaw caps it) whichever strategy the next restore uses. Never throws (the hook is best effort).
 */
function preallocateForRestores(bytes: number): void {
  for (const s of preallocating()) s.preallocate?.(bytes);
}

/** Gives back every strategy's preallocation except `keep`'s (the strategy about to restore). */
function releasePreallocated(keep: string | null): void {
  for (const s of preallocating()) if (s.id !== keep) s.releasePreallocated?.();
}

/**
 * The strategies this host can run that have a prepare-time warm-up, looked up once: every
 * restore releases the others' (listing all strategies checked each one's support, a stat of
 * /dev/shm among them, on every restore).
 */
function preallocating(): readonly RestoreStrategy[] {
  preallocators ??= listStrategies().filter((s) => s.support.ok).map((s) => getStrategy(s.id)).filter((s) => s.preallocate !== undefined || s.releasePreallocated !== undefined);
  return preallocators;
}
let preallocators: readonly RestoreStrategy[] | undefined;

/**
 * Runs the boot, snapshot and eager-restore paths once on a throwaway guest (no init, no
 * handler: nothing the function can observe), so that the first real request does not pay
 * for V8's first instantiation and for cold JS code: measured at 8.5 ms -> 2 ms for the first
 * restore of hello-c. The throwaway snapshot lives in a private temp directory, removed here.
 */
async function warmUp(p: PreparedFunction): Promise<void> {
  const dir = mkdtempSync(join(hostSettings.scratch ?? tmpdir(), 'thaw-warmup-'));
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
