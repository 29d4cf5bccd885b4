// The one way store code reports a failing store: THAW_OBJECT_STORE naming the store kind and,
// in the detail, the operation, the key and the step that failed.

import { isStorageFull, ThawError } from '../core/errors.js';
import type { ObjectStoreConfig } from './object-store.js';

/**
 * Builds a THAW_OBJECT_STORE error.
 *
 * @param store which kind of store failed (`embedded` or `redis`)
 * @param detail what failed, e.g. `put 'a/b' in /var/thaw: fsync: EIO: i/o error`
 * @param cause the underlying error, kept for logs and never matched on
 * @returns the error, for the caller to throw: THAW_STORAGE_FULL when `cause` is ENOSPC or
 *   EDQUOT, else THAW_OBJECT_STORE
 */
export function objectStoreError(store: ObjectStoreConfig['kind'], detail: string, cause?: unknown): ThawError {
  // A full disk is not a broken store: the caller gets the storage-full code (507), not 503.
  if (isStorageFull(cause)) return new ThawError('THAW_STORAGE_FULL', { what: `an object in the ${store} store`, detail }, { cause });
  return new ThawError('THAW_OBJECT_STORE', { store, detail }, cause === undefined ? {} : { cause });
}

/** The message of anything thrown, for embedding in a detail string. */
export function reasonOf(err: unknown): string {
  // Node reports a failed connect to a name with several addresses (localhost: ::1 and
  // 127.0.0.1) as an AggregateError with an empty message; its parts say what happened.
  if (err instanceof AggregateError && err.message === '') {
    return err.errors.map(reasonOf).join('; ') || err.name;
  }
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}
