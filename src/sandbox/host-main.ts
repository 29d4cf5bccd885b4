// Entry point of a sandbox host: an OS process apart from the daemon that compiles a function's
// module ahead of use and runs its instances (boot, restore, invoke, snapshot) on the daemon's
// requests. Forked by the host pool; talks over Node IPC (see protocol.ts). Each op is one case
// below calling into its module under host/.

import { fstatSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { toThawError } from '../core/errors.js';
import { jailLockExec, uffdUseDevice } from '../native/index.js';
import { setRecordingOutbox } from '../restore/recording-outbox.js';
import { adoptSealedImages } from '../restore/strategies/sealed.js';
import { RECORDING_OUTBOX } from './jail.js';
import type { HostEnvelope, HostEnvelopes, HostMessage, HostRequest, HostStamps, MemoryStagesResult, OffloadResult, PrefetchResult, StatsResult } from './protocol.js';
import { memoryStages, offload, offloadStats, prefetch, trackRequest } from '../memory/host-memory.js';
import { hostSettings, instance, instances, prepared, send } from './host/state.js';
import { boot, configure, destroy, prepare, readyNextInBackground, releaseAll, restore } from './host/lifecycle.js';
import { invoke } from './host/invoke.js';
import { snapshot } from './host/snapshot.js';
import { inspectJail } from './host/inspect.js';
import { beginRecording, endRecording, hostSpan, warmUpRecording } from './host/spans.js';

/** What the daemon passed on the command line (a host's environment is empty). */
const args = parseHostArgs(process.argv.slice(2));
hostSettings.scratch = args.scratch;
hostSettings.imageChannelFd = args.imageChannelFd;
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

type HostArgs = { uffdDeviceFd: number | null; scratch: string | null; imageChannelFd: number | null; env: [string, string][] };

function parseHostArgs(argv: readonly string[]): HostArgs {
  const out: HostArgs = { uffdDeviceFd: null, scratch: null, imageChannelFd: null, env: [] };
  for (const a of argv) {
    const [key, ...rest] = a.split('=');
    const value = rest.join('=');
    if (key === '--uffd-device-fd') out.uffdDeviceFd = Number(value);
    else if (key === '--scratch') out.scratch = value;
    else if (key === '--image-channel-fd') out.imageChannelFd = Number(value);
    else if (key === '--env') {
      const eq = value.indexOf('=');
      out.env.push([value.slice(0, eq), value.slice(eq + 1)]);
    }
  }
  return out;
}

async function handle(req: HostRequest): Promise<unknown> {
  switch (req.op) {
    case 'configure':
      return configure(req);
    case 'prepare':
      return prepare(req);
    case 'boot':
      return boot(req);
    case 'restore':
      return restore(req);
    case 'invoke':
      return trackRequest(req.sandboxId, () => invoke(req));
    case 'snapshot':
      return snapshot(req);
    case 'destroy':
      return destroy(req);
    case 'memoryStages':
      return memoryStages(instance(req.sandboxId).id) satisfies MemoryStagesResult;
    case 'offload':
      return offload(instance(req.sandboxId).id, req.request, req.memorySocket) satisfies OffloadResult;
    case 'prefetch':
      return prefetch(instance(req.sandboxId).id) satisfies PrefetchResult;
    case 'inspect':
      return inspectJail();
    case 'clock':
      return { now: performance.now() };
    case 'settle':
      // Sealed images the daemon offered this host between requests (HostPool.offerSealedImage).
      if (hostSettings.imageChannelFd !== null) adoptSealedImages(hostSettings.imageChannelFd);
      await readyNextInBackground();
      return {};
    case 'stats':
      return { rssBytes: process.memoryUsage.rss(), sandboxes: [...instances.keys()], prepared: [...prepared.keys()], offload: offloadStats() } satisfies StatsResult;
  }
}

// Requests run one at a time: a guest is single-threaded, instances share this process's one JS
// thread, and ordering keeps snapshots consistent. Each reply says when its request arrived,
// started and was answered (the daemon's timing breakdown). Once the queue has been empty for
// IDLE_BEFORE_PREPARE_MS, the host gets ready for its next instance in the background
// (lifecycle.ts: readyNextInBackground): a burst of requests to its instances passes first, since
// part of that work (Pyodide's module set-up) holds the JS thread for 100 ms or more at a time.
const IDLE_BEFORE_PREPARE_MS = 50;
let queue: Promise<void> = Promise.resolve();
let queued = 0;
let idleTimer: NodeJS.Timeout | undefined;
process.on('message', (msg: HostEnvelopes) => {
  const recv = performance.now();
  clearTimeout(idleTimer);
  for (const env of Array.isArray(msg) ? msg : [msg]) enqueue(env, recv);
});

function enqueue(env: HostEnvelope, recv: number): void {
  queued++;
  queue = queue.then(async () => {
    const start = performance.now();
    // A traced request's steps are recorded as spans under the op's own (host/spans.ts).
    beginRecording(env.traceparent);
    try {
      const result = await hostSpan(env.req.op, {}, () => handle(env.req));
      const spans = endRecording();
      send({ kind: 'reply', reqId: env.reqId, ok: true, result, at: stamps(recv, start), ...(spans && { spans }) });
    } catch (err) {
      const spans = endRecording();
      send({ kind: 'reply', reqId: env.reqId, ok: false, error: toThawError(err).toJSON(), at: stamps(recv, start), ...(spans && { spans }) });
    }
    if (--queued === 0) idleTimer = setTimeout(() => void readyNextInBackground(), IDLE_BEFORE_PREPARE_MS);
  });
}

function stamps(recv: number, start: number): HostStamps {
  return { recv, start, reply: performance.now() };
}

// Page servers stop with the host on a normal exit (a killed host is cleaned up by the kernel:
// the server thread, the userfaultfd and the mapped files all die with the process).
process.on('exit', releaseAll);
// An error nothing caught ends the host (its state cannot be trusted), but first tells the
// daemon what it was, so the sandbox's THAW_SANDBOX_DIED names the cause.
function fatal(err: unknown): void {
  const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  process.stderr.write(`thaw sandbox host ${process.pid}: fatal: ${err instanceof Error ? err.stack : message}\n`);
  process.send?.({ kind: 'fatal', message } satisfies HostMessage, () => process.exit(70));
  setTimeout(() => process.exit(70), 1000).unref();
}
process.on('uncaughtException', fatal);
process.on('unhandledRejection', fatal);
// The daemon going away ends the host: a host never outlives its owner.
process.on('disconnect', () => process.exit(0));
warmUpRecording();
send({ kind: 'ready', pid: process.pid });
