// Opening object stores from configuration: the one parser from the wire shape to a validated
// ObjectStoreConfig, and the two factories (async for the daemon, sync for sandbox hosts).

import * as path from 'node:path';
import { ThawError } from '../core/errors.js';
import { EmbeddedStore, EmbeddedSyncStore } from './embedded-store.js';
import type { ObjectStore, ObjectStoreConfig, SyncObjectStore } from './object-store.js';
import { RedisStore, type RedisStoreOptions } from './redis-store.js';
import { LazySyncStore } from './lazy-sync-store.js';
import { RedisSyncStore, type RedisSyncStoreOptions } from './redis-sync.js';

/** Redis's port when the URL names none. */
const DEFAULT_REDIS_PORT = 6379;

/** Why a configuration was rejected; the text after "invalid configuration: objectStore". */
export const OBJECT_STORE_CONFIG_ERRORS = {
  notObject: 'must be an object',
  unknownKind: "kind must be 'embedded' or 'redis'",
  unknownField: 'has unknown field',
  dirInvalid: 'dir must be a non-empty path without NUL',
  urlInvalid: "url must look like 'redis://host:port/db'",
  urlScheme: "url scheme must be 'redis:'",
  urlCredentials: 'url must not carry a user name or password',
  urlExtras: 'url must not carry a query or fragment',
  urlDatabase: 'url database must be a non-negative integer',
} as const;

/** The fields each kind accepts; anything else is rejected, never ignored. */
const FIELDS: Record<ObjectStoreConfig['kind'], readonly string[]> = {
  embedded: ['kind', 'dir'],
  redis: ['kind', 'url'],
};

/**
 * Validates a store configuration as received (JSON, CLI flags, the sandbox-host channel) and
 * returns its canonical, frozen form.
 *
 * @param raw `{ kind: 'embedded', dir }` or `{ kind: 'redis', url }`; no other fields
 * @returns for embedded, `dir` made absolute; for redis, `url` normalised to
 *   `redis://host:port/db` (port defaults to 6379, db to 0)
 * @throws THAW_CONFIG_INVALID naming the field at fault (see {@link OBJECT_STORE_CONFIG_ERRORS})
 * @example
 * parseObjectStoreConfig({ kind: 'redis', url: 'redis://localhost' });
 * // => { kind: 'redis', url: 'redis://localhost:6379/0' }
 */
export function parseObjectStoreConfig(raw: unknown): ObjectStoreConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalid(OBJECT_STORE_CONFIG_ERRORS.notObject);
  const fields = raw as Record<string, unknown>;
  const kind = fields['kind'];
  if (kind !== 'embedded' && kind !== 'redis') throw invalid(OBJECT_STORE_CONFIG_ERRORS.unknownKind);
  for (const name of Object.keys(fields)) {
    if (!FIELDS[kind].includes(name)) throw invalid(`${OBJECT_STORE_CONFIG_ERRORS.unknownField} '${name}'`);
  }
  if (kind === 'embedded') return Object.freeze({ kind, dir: parseDir(fields['dir']) });
  return Object.freeze({ kind, url: parseRedisUrl(fields['url']) });
}

/**
 * Opens the async store `config` describes, for the daemon, CLI and harness.
 *
 * @param config a store configuration; validated again here, so wire input is safe to pass
 * @param redisOptions timeouts for a Redis store (ignored for embedded)
 * @returns the open store; the caller must close() it
 * @throws THAW_CONFIG_INVALID for a bad configuration; THAW_OBJECT_STORE when the store cannot
 *   be opened (directory not creatable, "redis at <url> unreachable: <reason>")
 */
export async function openObjectStore(config: ObjectStoreConfig, redisOptions: RedisStoreOptions = {}): Promise<ObjectStore> {
  const valid = parseObjectStoreConfig(config);
  switch (valid.kind) {
    case 'embedded':
      return EmbeddedStore.open(valid.dir);
    case 'redis':
      return RedisStore.open(valid.url, redisOptions);
  }
}

/**
 * Opens the synchronous store `config` describes, for Wasm host calls in a sandbox host. For
 * Redis the connection (a bridge worker thread) is made on the first get() or put(), not here:
 * a Redis outage then fails only the invocations that use objects (see LazySyncStore).
 *
 * @param config a store configuration; validated again here, so wire input is safe to pass
 * @param redisOptions timeouts for a Redis store, including the bridge's wait bound
 * @returns the store; the caller must close() it (for Redis, that stops the worker)
 * @throws THAW_CONFIG_INVALID for a bad configuration; for Redis, get() and put() throw
 *   THAW_OBJECT_STORE while the store cannot be reached
 */
export function openSyncObjectStore(config: ObjectStoreConfig, redisOptions: RedisSyncStoreOptions = {}): SyncObjectStore {
  const valid = parseObjectStoreConfig(config);
  switch (valid.kind) {
    case 'embedded':
      return new EmbeddedSyncStore(valid.dir);
    case 'redis':
      return new LazySyncStore('redis', () => RedisSyncStore.open(valid.url, redisOptions));
  }
}

function parseDir(dir: unknown): string {
  if (typeof dir !== 'string' || dir === '' || dir.includes('\0')) throw invalid(OBJECT_STORE_CONFIG_ERRORS.dirInvalid);
  return path.resolve(dir);
}

function parseRedisUrl(raw: unknown): string {
  if (typeof raw !== 'string') throw invalid(OBJECT_STORE_CONFIG_ERRORS.urlInvalid);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalid(`${OBJECT_STORE_CONFIG_ERRORS.urlInvalid}, got ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== 'redis:') throw invalid(`${OBJECT_STORE_CONFIG_ERRORS.urlScheme}, got '${url.protocol}'`);
  // Credentials would end up in every error message and log line that names the store.
  if (url.username !== '' || url.password !== '') throw invalid(OBJECT_STORE_CONFIG_ERRORS.urlCredentials);
  if (url.search !== '' || url.hash !== '') throw invalid(OBJECT_STORE_CONFIG_ERRORS.urlExtras);
  if (url.hostname === '') throw invalid(`${OBJECT_STORE_CONFIG_ERRORS.urlInvalid}, got ${JSON.stringify(raw)}`);
  const port = url.port === '' ? DEFAULT_REDIS_PORT : Number(url.port);
  const dbText = url.pathname.replace(/^\//, '');
  if (dbText !== '' && !/^(0|[1-9][0-9]{0,8})$/.test(dbText)) {
    throw invalid(`${OBJECT_STORE_CONFIG_ERRORS.urlDatabase}, got '${dbText}'`);
  }
  const db = dbText === '' ? 0 : Number(dbText);
  return `redis://${url.hostname}:${port}/${db}`;
}

function invalid(what: string): ThawError {
  return new ThawError('THAW_CONFIG_INVALID', { detail: `objectStore ${what}` });
}
