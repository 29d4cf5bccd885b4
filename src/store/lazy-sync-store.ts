// A synchronous store that opens its connection on first use, for sandbox hosts: a host is
// configured when it is spawned, long before any guest asks for an object, and most guests
// never do. Opening eagerly made a Redis outage fail every new sandbox of every function.

import type { ObjectStoreConfig, SyncObjectStore } from './object-store.js';
import { objectStoreError } from './store-error.js';

/**
 * Wraps the opening of a store: `open` runs on the first get() or put(), and again on the next
 * call after it failed, so a store that comes back is used without restarting the host.
 *
 * @example
 * const store = new LazySyncStore('redis', () => RedisSyncStore.open(url));
 * store.get('k'); // connects here; throws THAW_OBJECT_STORE if Redis is unreachable
 */
export class LazySyncStore implements SyncObjectStore {
  #store: SyncObjectStore | undefined;
  #closed = false;

  constructor(readonly kind: ObjectStoreConfig['kind'], private readonly open: () => SyncObjectStore) {}

  /** Throws what `open` throws (THAW_OBJECT_STORE) when the store cannot be opened. */
  get(key: string): Uint8Array | undefined {
    return this.opened().get(key);
  }

  /** Throws what `open` throws (THAW_OBJECT_STORE) when the store cannot be opened. */
  put(key: string, value: Uint8Array): void {
    this.opened().put(key, value);
  }

  /** Closes the store if it was opened; later calls throw THAW_OBJECT_STORE. Never fails. */
  close(): void {
    this.#closed = true;
    this.#store?.close();
    this.#store = undefined;
  }

  private opened(): SyncObjectStore {
    if (this.#closed) throw objectStoreError(this.kind, 'the store is closed');
    this.#store ??= this.open();
    return this.#store;
  }
}
