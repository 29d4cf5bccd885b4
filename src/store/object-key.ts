// Object keys as every store accepts them: one validation shared by the embedded store, the
// Redis store and the synchronous Redis bridge, so a key valid in one store is valid in all.

import { ThawError } from '../core/errors.js';

/** Longest key accepted, in UTF-8 bytes. */
export const MAX_OBJECT_KEY_BYTES = 512;

/**
 * Checks that `key` is a usable object key: a non-empty string of at most
 * {@link MAX_OBJECT_KEY_BYTES} UTF-8 bytes with no NUL character and no lone surrogate (a
 * lone surrogate has no UTF-8 form, so two different keys would collide once encoded).
 *
 * @param key the key as given by the caller
 * @returns the key's UTF-8 bytes (callers that map keys to names reuse them)
 * @throws THAW_REQUEST_INVALID when the key is not acceptable; the caller sent a bad key, the
 *   store did not fail, so this is a 400 and not THAW_OBJECT_STORE.
 */
export function validateObjectKey(key: unknown): Buffer {
  if (typeof key !== 'string') throw invalidKey(`object key must be a string, got ${typeof key}`);
  if (key.length === 0) throw invalidKey('object key must not be empty');
  if (key.includes('\0')) throw invalidKey('object key must not contain NUL');
  if (LONE_SURROGATE.test(key)) throw invalidKey('object key must not contain lone UTF-16 surrogates');
  const bytes = Buffer.from(key, 'utf8');
  if (bytes.length > MAX_OBJECT_KEY_BYTES) {
    throw invalidKey(`object key is ${bytes.length} bytes, more than the limit of ${MAX_OBJECT_KEY_BYTES}`);
  }
  return bytes;
}

// With the u flag a paired surrogate is one code point, so only lone halves match.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

function invalidKey(detail: string): ThawError {
  return new ThawError('THAW_REQUEST_INVALID', { detail });
}
