// Byte buffers handed across store boundaries: a plain Uint8Array that owns all of its
// ArrayBuffer, so it can be transferred to another thread and never exposes or pins foreign
// bytes (a pooled Buffer slice, a socket chunk, or a view into a guest's Wasm memory).

/**
 * Returns `bytes` as a plain Uint8Array whose view covers its whole, non-shared ArrayBuffer.
 * Zero-copy when that already holds; otherwise copies exactly `byteLength` bytes.
 *
 * @param bytes any view (Buffer, Uint8Array over Wasm memory or a SharedArrayBuffer, ...)
 * @returns a Uint8Array the caller may keep or transfer
 */
export function exactBytes(bytes: Uint8Array): Uint8Array {
  const backing = bytes.buffer;
  if (backing instanceof ArrayBuffer && bytes.byteOffset === 0 && bytes.byteLength === backing.byteLength) {
    return Object.getPrototypeOf(bytes) === Uint8Array.prototype ? bytes : new Uint8Array(backing);
  }
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return copy;
}
