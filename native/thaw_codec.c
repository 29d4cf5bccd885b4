/* lz4 (block format) and zstd (frame format) one-shot codecs, decoding straight into the caller's
 * target range, e.g. a snapshot partition into its place in a Wasm memory. */
#include "thaw.h"

#include <errno.h>
#include <limits.h>
#include <lz4.h>
#include <zstd.h>
#include <zstd_errors.h>

int64_t thaw_lz4_bound(size_t n) {
  return n > LZ4_MAX_INPUT_SIZE ? -EFBIG : LZ4_compressBound((int)n);
}

int64_t thaw_lz4_encode(const void *src, size_t n, void *dst, size_t cap, int accel) {
  if (n > LZ4_MAX_INPUT_SIZE) return -EFBIG;
  int r = LZ4_compress_fast(src, dst, (int)n, cap > INT_MAX ? INT_MAX : (int)cap, accel);
  return r > 0 || n == 0 ? r : -ENOSPC;
}

/* LZ4_decompress_safe never writes past cap and rejects malformed input with a negative result. */
int64_t thaw_lz4_decode(const void *src, size_t n, void *dst, size_t cap) {
  if (n > INT_MAX) return -EFBIG;
  int r = LZ4_decompress_safe(src, dst, (int)n, cap > INT_MAX ? INT_MAX : (int)cap);
  return r < 0 ? -EBADMSG : r;
}

int64_t thaw_zstd_bound(size_t n) {
  return (int64_t)ZSTD_compressBound(n);
}

int64_t thaw_zstd_encode(const void *src, size_t n, void *dst, size_t cap, int level) {
  size_t r = ZSTD_compress(dst, cap, src, n, level);
  if (!ZSTD_isError(r)) return (int64_t)r;
  return ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall ? -ENOSPC : -EINVAL;
}

int64_t thaw_zstd_decode(const void *src, size_t n, void *dst, size_t cap) {
  size_t r = ZSTD_decompress(dst, cap, src, n);
  if (!ZSTD_isError(r)) return (int64_t)r;
  return ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall ? -ENOSPC : -EBADMSG;
}
