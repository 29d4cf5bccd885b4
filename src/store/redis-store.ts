// The Redis object store: objects are Redis strings under their own key, read and written
// binary-safe through node-redis. Every call finishes or fails within a bounded time.

import { createClient, RESP_TYPES } from 'redis';
import { ThawError } from '../core/errors.js';
import type { ObjectStore } from './object-store.js';
import { exactBytes } from './exact-bytes.js';
import { validateObjectKey } from './object-key.js';
import { objectStoreError, reasonOf } from './store-error.js';

/** Tuning of a Redis store; every field has the default shown. */
export interface RedisStoreOptions {
  /** Time allowed for one TCP connect + handshake attempt. Default 2000. */
  readonly connectTimeoutMs?: number;
  /** Connect attempts after the first before giving up (initially and after a drop). Default 2. */
  readonly reconnectAttempts?: number;
  /** Time allowed for one operation once connected, reply included. Default 10000. */
  readonly commandTimeoutMs?: number;
  /**
   * Reach the server through this Unix socket instead of the URL's host and port (the URL still
   * names the database and the store in messages). A jailed sandbox host has no network: the
   * daemon relays its connections (see platform/redis-relay.ts). Default null.
   */
  readonly socketPath?: string | null;
}

/** Options with every default applied. */
export type RedisStoreParams = Required<RedisStoreOptions>;

/** The defaults of {@link RedisStoreOptions}. */
export const REDIS_STORE_DEFAULTS: RedisStoreParams = Object.freeze({
  connectTimeoutMs: 2000,
  reconnectAttempts: 2,
  commandTimeoutMs: 10_000,
  socketPath: null,
});

/** Longest pause between two connect attempts. */
const MAX_RETRY_DELAY_MS = 500;
/** Keys asked for per SCAN round trip by list(). */
const SCAN_COUNT = 1000;

/** Blob strings (values, keys, cursors) come back as Buffers, so values stay binary-safe. */
const BINARY_REPLIES = { [RESP_TYPES.BLOB_STRING]: Buffer } as const;

function newClient(url: string, params: RedisStoreParams) {
  return createClient({
    url,
    socket: {
      ...(params.socketPath !== null && { path: params.socketPath }),
      connectTimeout: params.connectTimeoutMs,
      // Bounded: a dead server fails the caller after a few attempts instead of retrying forever.
      // The next operation starts a fresh bounded connect (see RedisStore.#connected).
      reconnectStrategy: (retries: number) =>
        retries >= params.reconnectAttempts ? false : retryDelayMs(retries),
    },
    // While reconnecting, commands fail at once rather than queue for an unknown time.
    disableOfflineQueue: true,
    commandOptions: { typeMapping: BINARY_REPLIES },
  });
}

type Client = ReturnType<typeof newClient>;

/**
 * Async object store over one Redis database.
 *
 * Keys are used as Redis keys unchanged, so list() sees every key of the database: give Thaw
 * a database of its own. A connection lost mid-way is re-established by the next call, with
 * the same bounded attempts as the first connect.
 *
 * @example
 * const store = await RedisStore.open('redis://127.0.0.1:6379/0');
 * await store.put('inputs/a', bytes);
 */
export class RedisStore implements ObjectStore {
  readonly kind = 'redis' as const;
  /** The server, as `redis://host:port/db`; appears in every error. */
  readonly url: string;
  readonly #params: RedisStoreParams;
  #client: Client | undefined;
  #connecting: Promise<Client> | undefined;
  #closed = false;

  private constructor(url: string, params: RedisStoreParams) {
    this.url = url;
    this.#params = params;
  }

  /**
   * Connects to the Redis server at `url`.
   *
   * @param url `redis://host:port/db`, as produced by parseObjectStoreConfig()
   * @param options timeouts and retry bound; defaults in {@link REDIS_STORE_DEFAULTS}
   * @returns the connected store
   * @throws THAW_OBJECT_STORE "redis at <url> unreachable: <reason>" when no connection could
   *   be made within the connect timeout and retry bound
   */
  static async open(url: string, options: RedisStoreOptions = {}): Promise<RedisStore> {
    const store = new RedisStore(url, { ...REDIS_STORE_DEFAULTS, ...definedOnly(options) });
    await store.#connected();
    return store;
  }

  /** Reads an object. Returns undefined when the key does not exist. Throws THAW_REQUEST_INVALID for a bad key, THAW_OBJECT_STORE when Redis fails. */
  async get(key: string): Promise<Uint8Array | undefined> {
    validateObjectKey(key);
    const reply = await this.#run(`get ${JSON.stringify(key)}`, (c) => c.get(key));
    if (reply === null) return undefined;
    if (!Buffer.isBuffer(reply)) throw objectStoreError('redis', `get ${JSON.stringify(key)} at ${this.url}: unexpected reply type ${typeof reply}`);
    return exactBytes(reply);
  }

  /** Writes an object (one SET, atomic in Redis). Throws THAW_REQUEST_INVALID for a bad key, THAW_OBJECT_STORE when Redis fails. */
  async put(key: string, value: Uint8Array): Promise<void> {
    validateObjectKey(key);
    const bytes = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    await this.#run(`put ${JSON.stringify(key)}`, (c) => c.set(key, bytes));
  }

  /** Deletes an object. Returns false when it did not exist. Throws THAW_REQUEST_INVALID for a bad key, THAW_OBJECT_STORE when Redis fails. */
  async delete(key: string): Promise<boolean> {
    validateObjectKey(key);
    const removed = await this.#run(`delete ${JSON.stringify(key)}`, (c) => c.del(key));
    return removed > 0;
  }

  /** Lists keys starting with `prefix` (all keys when omitted), sorted, via SCAN. Throws THAW_OBJECT_STORE when Redis fails. */
  async list(prefix = ''): Promise<string[]> {
    const match = escapeGlob(prefix) + '*';
    const keys = new Set<string>();
    let cursor: string | Buffer = '0';
    do {
      const page: { cursor: string | Buffer; keys: (string | Buffer)[] } = await this.#run('list', (c) =>
        c.scan(cursor, { MATCH: match, COUNT: SCAN_COUNT }),
      );
      cursor = page.cursor;
      // SCAN may repeat keys across pages; the set removes the repeats.
      for (const k of page.keys) keys.add(k.toString());
    } while (cursor.toString() !== '0');
    return [...keys].sort();
  }

  /** Closes the connection. Later calls throw THAW_OBJECT_STORE. Never fails. */
  async close(): Promise<void> {
    this.#closed = true;
    const client = this.#client ?? (await this.#connecting?.catch(() => undefined));
    this.#client = undefined;
    if (client?.isOpen) {
      await client.close().catch(() => destroyQuietly(client));
    }
  }

  /** Runs one command on a connected client, bounded by the command timeout. */
  async #run<T>(what: string, command: (client: Client) => Promise<T>): Promise<T> {
    const client = await this.#connected();
    try {
      return await withDeadline(command(client), this.#params.commandTimeoutMs, () => {
        // node-redis times out only queued commands, not a reply that never comes; a silent
        // server means a dead link, so drop it and let the next call reconnect.
        if (this.#client === client) this.#client = undefined;
        destroyQuietly(client);
        return objectStoreError('redis', `${what} at ${this.url}: no reply within ${this.#params.commandTimeoutMs} ms`);
      });
    } catch (err: unknown) {
      if (err instanceof ThawError) throw err;
      if (isConnectionError(err)) {
        throw objectStoreError('redis', `redis at ${this.url} unreachable: ${what}: ${reasonOf(err)}`, err);
      }
      throw objectStoreError('redis', `${what} at ${this.url}: ${reasonOf(err)}`, err);
    }
  }

  /** The open client, connecting (bounded) when there is none or the last one was lost. */
  async #connected(): Promise<Client> {
    if (this.#closed) throw objectStoreError('redis', `redis at ${this.url}: the store is closed`);
    if (this.#client?.isOpen) return this.#client;
    this.#client = undefined;
    this.#connecting ??= this.#connect().finally(() => {
      this.#connecting = undefined;
    });
    return this.#connecting;
  }

  async #connect(): Promise<Client> {
    const client = newClient(this.url, this.#params);
    let lastError: unknown;
    // node-redis emits 'error' on every failed attempt and dropped socket; without a listener
    // the process would crash. Failures reach callers through rejected commands instead.
    client.on('error', (err: unknown) => {
      lastError = err;
    });
    // connectTimeout bounds only the TCP connect; the handshake (CLIENT SETINFO, SELECT) after
    // it would wait forever on a server that accepts and never answers, so bound it all.
    const budgetMs = connectBudgetMs(this.#params);
    try {
      await withDeadline(client.connect(), budgetMs, () => new Error(`no handshake reply within ${budgetMs} ms`));
    } catch (err: unknown) {
      destroyQuietly(client);
      throw objectStoreError('redis', `redis at ${this.url} unreachable: ${reasonOf(err ?? lastError)}`, err);
    }
    if (this.#closed) {
      destroyQuietly(client);
      throw objectStoreError('redis', `redis at ${this.url}: the store is closed`);
    }
    this.#client = client;
    return client;
  }
}

/**
 * Longest a bounded connect can take: every attempt's timeout plus the pauses between them.
 *
 * @param params the store's options with defaults applied
 * @returns the budget in milliseconds
 */
export function connectBudgetMs(params: RedisStoreParams): number {
  let pausesMs = 0;
  for (let retry = 0; retry < params.reconnectAttempts; retry++) pausesMs += retryDelayMs(retry);
  return (params.reconnectAttempts + 1) * params.connectTimeoutMs + pausesMs;
}

function retryDelayMs(retries: number): number {
  return Math.min(50 * 2 ** retries, MAX_RETRY_DELAY_MS);
}

/** Settles like `work`, or rejects with `onTimeout()` when `ms` pass first. */
/**
 * Settles like `work`, or rejects with onTimeout() when `work` has not settled within `ms`.
 * A deadline timer that fires late (the event loop was busy, e.g. with the CPU-heavy output
 * checks of 16 concurrent invocations) first lets pending I/O run, and when it was late by more
 * than 100 ms grants one more window as long as the lateness (at most `ms`): the reply may have
 * been sitting unread in the socket while the loop was blocked. Seen in the parallel experiment:
 * 11.5 MB GETs "timed out" at 16x parallelism, and the dropped connection failed every other
 * command in flight on it.
 */
async function withDeadline<T>(work: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timeout: NodeJS.Timeout | undefined;
  let immediate: NodeJS.Immediate | undefined;
  let settled = false;
  const watched = work.finally(() => {
    settled = true;
  });
  const deadline = new Promise<never>((_, reject) => {
    const arm = (wait: number, regrace: boolean): void => {
      const due = performance.now() + wait;
      timeout = setTimeout(() => {
        const late = performance.now() - due;
        // setImmediate runs after the poll phase: a reply that arrived meanwhile is read first.
        immediate = setImmediate(() => {
          if (settled) return;
          if (regrace && late > 100) arm(Math.min(late, ms), false);
          else reject(onTimeout());
        });
      }, wait);
    };
    arm(ms, true);
  });
  try {
    return await Promise.race([watched, deadline]);
  } finally {
    clearTimeout(timeout);
    clearImmediate(immediate);
  }
}

/** Drops the connection at once; a client that already gave up throws here, which is fine. */
function destroyQuietly(client: Client): void {
  try {
    client.destroy();
  } catch {
    // already closed
  }
}

/** Escapes Redis glob metacharacters so `prefix` matches only itself. */
function escapeGlob(prefix: string): string {
  return prefix.replace(/[*?[\]\\^-]/g, (c) => '\\' + c);
}

/** node-redis and socket errors that mean "no connection", as opposed to a Redis error reply. */
function isConnectionError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const connectionErrors = ['ClientClosedError', 'ClientOfflineError', 'SocketClosedUnexpectedlyError', 'ConnectionTimeoutError', 'SocketTimeoutError'];
  return connectionErrors.includes(err.constructor.name) || typeof (err as NodeJS.ErrnoException).syscall === 'string';
}

function definedOnly(options: RedisStoreOptions): RedisStoreOptions {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
}
