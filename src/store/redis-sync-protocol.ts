// The messages and shared control words between RedisSyncStore (redis-sync.ts) and its worker
// (redis-sync-worker.ts). Kept apart so the caller never loads the worker's entry module.

import type { MessagePort } from 'node:worker_threads';
import type { ThawError } from '../core/errors.js';
import type { RedisStoreParams } from './redis-store.js';

/** What the caller hands the worker at start. */
export interface BridgeWorkerData {
  readonly url: string;
  readonly options: RedisStoreParams;
  /** Int32Array slots, see {@link Slot}. */
  readonly control: SharedArrayBuffer;
  /** The worker's end of the request channel (transferred). */
  readonly port: MessagePort;
}

/**
 * Slots of the control Int32Array, written only by the worker.
 *
 *   [0] ANSWERED  id of the newest answered request; the caller Atomics.waits on it
 *   [1] DEAD      1 once the worker is exiting, so a caller stops waiting at once
 */
export const Slot = { ANSWERED: 0, DEAD: 1 } as const;
export const CONTROL_BYTES = 2 * Int32Array.BYTES_PER_ELEMENT;

/** Requests; ids start at 1 and grow by one per request. */
export type BridgeRequest =
  | { readonly id: number; readonly op: 'connect' }
  | { readonly id: number; readonly op: 'get'; readonly key: string }
  | { readonly id: number; readonly op: 'put'; readonly key: string; readonly value: Uint8Array }
  | { readonly id: number; readonly op: 'delete'; readonly key: string }
  | { readonly id: number; readonly op: 'list'; readonly prefix: string };

/** Answers, posted before ANSWERED is raised so the caller finds them with receiveMessageOnPort. */
export type BridgeAnswer =
  | { readonly id: number; readonly ok: true; readonly value?: Uint8Array; readonly removed?: boolean; readonly keys?: string[] }
  | { readonly id: number; readonly ok: false; readonly error: ReturnType<ThawError['toJSON']> };

/** True for the workerData RedisSyncStore passes, so the worker entry runs only in its own worker. */
export function isBridgeWorkerData(data: unknown): data is BridgeWorkerData {
  const d = data as Partial<BridgeWorkerData> | null | undefined;
  return typeof d?.url === 'string' && d.control instanceof SharedArrayBuffer && d.port !== undefined;
}
