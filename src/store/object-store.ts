// Object stores: functions read inputs and write outputs by key. The daemon and harness use
// the async interface; guests inside a sandbox host need a synchronous one (Wasm calls into
// the host cannot await), which every store kind must also provide.

/** Where objects live, as configured. */
export type ObjectStoreConfig =
  | { readonly kind: 'embedded'; readonly dir: string }
  | { readonly kind: 'redis'; readonly url: string };

/** Async object store, for the daemon, CLI and harness. */
export interface ObjectStore {
  readonly kind: ObjectStoreConfig['kind'];
  get(key: string): Promise<Uint8Array | undefined>;
  put(key: string, value: Uint8Array): Promise<void>;
  delete(key: string): Promise<boolean>;
  list(prefix?: string): Promise<string[]>;
  close(): Promise<void>;
}

/** Synchronous object store, for guests running inside a sandbox host. */
export interface SyncObjectStore {
  readonly kind: ObjectStoreConfig['kind'];
  /** Returns undefined when the key does not exist. Throws THAW_OBJECT_STORE when the store fails. */
  get(key: string): Uint8Array | undefined;
  put(key: string, value: Uint8Array): void;
  close(): void;
}
