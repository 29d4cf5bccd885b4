// A sandbox host's state: the functions it has prepared and the instances it carries, with the
// helpers every op module shares. One host serves one function's deployment (it is jailed for
// that function); it carries one instance (horizontal) or several (vertical, sharing the
// compiled module), each with its own memory and runtime state.

import { tmpdir } from 'node:os';
import { performance } from 'node:perf_hooks';
import { ThawError } from '../../core/errors.js';
import type { GuestContext, GuestInstance, RuntimeAdapter } from '../../runtimes/index.js';
import type { OpenedImage } from '../../restore/index.js';
import type { SyncObjectStore } from '../../store/object-store.js';
import type { HostFunction, HostMessage } from '../protocol.js';
import { hostSpan } from './spans.js';

export interface PreparedFunction {
  readonly fn: HostFunction;
  readonly adapter: RuntimeAdapter;
  readonly prepared: unknown;
  /** Instances this host may carry at once (1: horizontal). */
  readonly capacity: number;
}

/** One instance of a function in this host: a guest with its own memory and runtime state. */
export interface Instance {
  readonly id: string;
  readonly fn: PreparedFunction;
  readonly guest: GuestInstance;
  /** The snapshot this instance was restored from (the default base of a diff snapshot). */
  readonly restoredFrom: { root: string; id: string } | null;
  /** The restored image: its page server (if any) lives as long as the instance. */
  readonly image: OpenedImage | null;
}

/** Settings from the host's command line (its environment is empty). */
export const hostSettings: { scratch: string | null; imageChannelFd: number | null } = { scratch: null, imageChannelFd: null };

export const prepared = new Map<string, PreparedFunction>();
export const instances = new Map<string, Instance>();
let objects: SyncObjectStore | undefined;

export function setObjects(store: SyncObjectStore): void {
  objects?.close();
  objects = store;
}

export function send(msg: HostMessage): void {
  process.send?.(msg);
}

/** Milliseconds since `t0`, rounded to the microsecond. */
export function since(t0: number): number {
  return Math.round((performance.now() - t0) * 1000) / 1000;
}

export function contextFor(instanceId: string, fn: HostFunction): GuestContext {
  if (!objects) throw new ThawError('THAW_INTERNAL', { detail: 'sandbox host used before configure' });
  const store = objects;
  return {
    // The guest's object reads and writes, recorded as spans when the request is traced.
    objects: {
      kind: store.kind,
      get: (key) => hostSpan('object get', { 'thaw.object.key': key }, () => store.get(key)),
      put: (key, value) => hostSpan('object put', { 'thaw.object.key': key, 'thaw.object.bytes': value.byteLength }, () => store.put(key, value)),
      close: () => store.close(),
    },
    memoryLimitBytes: fn.params.memoryMiB * 1024 * 1024,
    // A command's per-invocation scratch directories go under the host's own scratch dir.
    tempDir: hostSettings.scratch ?? tmpdir(),
    log: (stream, text) => send({ kind: 'log', sandboxId: instanceId, stream, text }),
  };
}

export function preparedFor(deployment: string): PreparedFunction {
  const p = prepared.get(deployment);
  if (!p) throw new ThawError('THAW_INTERNAL', { detail: `deployment ${deployment.slice(0, 12)} is not prepared in this host` });
  return p;
}

export function instance(id: string): Instance {
  const s = instances.get(id);
  if (!s) throw new ThawError('THAW_SANDBOX_NOT_FOUND', { id });
  return s;
}

/** Refuses a new instance beyond what the host was prepared to carry (the daemon never asks; a check, not a policy). */
export function checkCapacity(p: PreparedFunction, id: string): void {
  if (instances.has(id)) throw new ThawError('THAW_INTERNAL', { detail: `instance ${id} already exists in this host` });
  const live = [...instances.values()].filter((i) => i.fn === p).length;
  if (live >= p.capacity) throw new ThawError('THAW_INTERNAL', { detail: `this host carries ${live} instances of '${p.fn.params.name}', its capacity` });
}
