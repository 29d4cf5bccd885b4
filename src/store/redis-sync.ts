// The synchronous Redis store for sandbox hosts, whose Wasm host calls cannot await: a worker
// thread owns an async node-redis client, and the calling thread blocks until it answers.
//
//   caller thread                               bridge worker (redis-sync-worker.ts)
//   ─────────────                               ────────────────────────────────────
//   port.postMessage({id, op, key, value}) ───► RedisStore.get/put/...   (async)
//   Atomics.wait(control[ANSWERED], ...)        port.postMessage({id, ok, value}, [value.buffer])
//                                         ◄──── Atomics.store(control[ANSWERED], id); notify
//   receiveMessageOnPort(port) → answer id
//
// Values cross the thread boundary by transfer, never by structured clone of a view: cloning
// a view copies (or, for a SharedArrayBuffer, shares) its whole backing buffer, which for a
// guest's Wasm memory is the entire heap. The caller copies exactly the value's bytes once.

import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { invariant, ThawError } from '../core/errors.js';
import type { SyncObjectStore } from './object-store.js';
import { validateObjectKey } from './object-key.js';
import { connectBudgetMs, REDIS_STORE_DEFAULTS, type RedisStoreOptions, type RedisStoreParams } from './redis-store.js';
import { CONTROL_BYTES, Slot, type BridgeAnswer, type BridgeRequest, type BridgeWorkerData } from './redis-sync-protocol.js';
import { objectStoreError } from './store-error.js';

/** Tuning of the synchronous bridge, on top of the Redis store's own timeouts. */
export interface RedisSyncStoreOptions extends RedisStoreOptions {
  /**
   * Longest time one call may block its thread. Default: enough for a full bounded reconnect
   * plus one command timeout plus one second, so the worker normally answers (with its own
   * error) before the caller gives up.
   */
  readonly waitTimeoutMs?: number;
  /** Extra time allowed for the worker thread to start, on the first (connect) call only. Default 5000. */
  readonly startTimeoutMs?: number;
}

/** Where the worker lives once compiled: next to this module in dist/store/. */
const WORKER_URL = new URL('./redis-sync-worker.js', import.meta.url);
const DEFAULT_START_TIMEOUT_MS = 5000;

/**
 * Synchronous object store over one Redis database, for Wasm host calls.
 *
 * Each call blocks the calling thread (never the bridge worker) for at most `waitTimeoutMs`.
 * One instance serves one thread; calls from a thread that does not own it are not supported.
 *
 * @example
 * const store = RedisSyncStore.open('redis://127.0.0.1:6379/0');
 * store.put('outputs/x', bytes);
 * const back = store.get('outputs/x');
 * store.close();
 */
export class RedisSyncStore implements SyncObjectStore {
  readonly kind = 'redis' as const;
  /** The server, as `redis://host:port/db`; appears in every error. */
  readonly url: string;
  readonly #worker: Worker;
  readonly #port: MessagePort;
  readonly #control: Int32Array;
  readonly #waitTimeoutMs: number;
  #lastId = 0;
  #closed = false;

  private constructor(url: string, worker: Worker, port: MessagePort, control: Int32Array, waitTimeoutMs: number) {
    this.url = url;
    this.#worker = worker;
    this.#port = port;
    this.#control = control;
    this.#waitTimeoutMs = waitTimeoutMs;
  }

  /**
   * Starts the bridge worker and blocks until it has connected to Redis.
   *
   * @param url `redis://host:port/db`, as produced by parseObjectStoreConfig()
   * @param options timeouts; see {@link RedisSyncStoreOptions} and RedisStoreOptions
   * @returns the connected store; call close() to stop its worker
   * @throws THAW_OBJECT_STORE "redis at <url> unreachable: <reason>" when Redis cannot be
   *   reached, or when the worker does not start or answer in time
   */
  static open(url: string, options: RedisSyncStoreOptions = {}): RedisSyncStore {
    const { waitTimeoutMs, startTimeoutMs, ...storeOptions } = options;
    const params: RedisStoreParams = { ...REDIS_STORE_DEFAULTS, ...definedOnly(storeOptions) };
    const control = new SharedArrayBuffer(CONTROL_BYTES);
    const { port1, port2 } = new MessageChannel();
    const data: BridgeWorkerData = { url, options: params, control, port: port2 };
    let worker: Worker;
    try {
      worker = new Worker(WORKER_URL, { workerData: data, transferList: [port2] });
    } catch (err: unknown) {
      throw objectStoreError('redis', `redis at ${url}: cannot start the bridge worker: ${String(err)}`, err);
    }
    // Neither end may keep the host process alive: callers block on the store, they never wait
    // on its events, and a store that was not closed must not stop the process from exiting.
    worker.unref();
    port1.unref();
    const store = new RedisSyncStore(url, worker, port1, new Int32Array(control), waitTimeoutMs ?? worstCaseMs(params) + 1000);
    try {
      store.#call({ op: 'connect' }, 'connect', (startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS) + store.#waitTimeoutMs);
    } catch (err: unknown) {
      store.close();
      throw err;
    }
    return store;
  }

  /** Reads an object, blocking. Returns undefined when the key does not exist. Throws THAW_REQUEST_INVALID for a bad key, THAW_OBJECT_STORE when Redis or the bridge fails. */
  get(key: string): Uint8Array | undefined {
    validateObjectKey(key);
    return this.#call({ op: 'get', key }, `get ${JSON.stringify(key)}`).value;
  }

  /** Writes an object, blocking. Throws THAW_REQUEST_INVALID for a bad key, THAW_OBJECT_STORE when Redis or the bridge fails. */
  put(key: string, value: Uint8Array): void {
    validateObjectKey(key);
    // Exactly the value's bytes, in a buffer we own and can transfer (see the file comment).
    const copy = new Uint8Array(value.byteLength);
    copy.set(value);
    this.#call({ op: 'put', key, value: copy }, `put ${JSON.stringify(key)}`, this.#waitTimeoutMs, [copy.buffer]);
  }

  /** Deletes an object, blocking. Returns false when it did not exist. Throws as put() does. */
  delete(key: string): boolean {
    validateObjectKey(key);
    return this.#call({ op: 'delete', key }, `delete ${JSON.stringify(key)}`).removed === true;
  }

  /** Lists keys starting with `prefix`, sorted, blocking. Throws THAW_OBJECT_STORE when Redis or the bridge fails. */
  list(prefix = ''): string[] {
    return this.#call({ op: 'list', prefix }, 'list').keys ?? [];
  }

  /** Stops the bridge worker, dropping its connection. Later calls throw THAW_OBJECT_STORE. Never fails. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#port.close();
    void this.#worker.terminate();
  }

  /**
   * Posts one request and blocks until the worker answers it, the worker dies, or the wait
   * times out. Answers to earlier, abandoned requests are read and dropped on the way.
   */
  #call(
    request: DistributiveOmit<BridgeRequest, 'id'>,
    what: string,
    timeoutMs = this.#waitTimeoutMs,
    transfer: ArrayBuffer[] = [],
  ): Extract<BridgeAnswer, { ok: true }> {
    if (this.#closed) throw objectStoreError('redis', `${what} at ${this.url}: the store is closed`);
    const id = ++this.#lastId;
    this.#port.postMessage({ ...request, id }, transfer);
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const answered = Atomics.load(this.#control, Slot.ANSWERED);
      if (answered >= id) break;
      if (Atomics.load(this.#control, Slot.DEAD) === 1) {
        throw objectStoreError('redis', `${what} at ${this.url}: the bridge worker exited`);
      }
      const leftMs = deadline - performance.now();
      if (leftMs <= 0) {
        throw objectStoreError('redis', `${what} at ${this.url}: no answer from the bridge worker within ${timeoutMs} ms`);
      }
      Atomics.wait(this.#control, Slot.ANSWERED, answered, leftMs);
    }
    for (;;) {
      const received = receiveMessageOnPort(this.#port);
      invariant(received !== undefined, `redis bridge: request ${id} marked answered but no answer on the port`);
      const answer = received.message as BridgeAnswer;
      if (answer.id !== id) continue;
      if (!answer.ok) throw ThawError.fromJSON(answer.error);
      return answer;
    }
  }
}

/** Upper bound of one bounded (re)connect plus one command, from the store's own timeouts. */
function worstCaseMs(params: RedisStoreParams): number {
  return connectBudgetMs(params) + params.commandTimeoutMs;
}

function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<T>;
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
