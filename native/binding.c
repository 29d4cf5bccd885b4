/* The Node-API boundary of the native addon: checks arguments, converts values, calls thaw.h
 * and throws errors whose `code` is the errno name and whose message starts with the syscall.
 * The only file that includes node_api.h; src/native/index.ts is its only caller. */
#define _GNU_SOURCE
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "thaw.h"

/* Per-instance state (one per loading of the addon in an isolate or worker): no globals. */
typedef struct {
  size_t page;    /* host page size in bytes */
  thaw_pool pool; /* pre-faulted memory (poolReserve), moved under guests by poolMoveRuns */
} thaw_addon;

/* The one checking macro: a failed Node-API call throws (unless an exception is already
 * pending) and the calling function returns NULL, which JS sees as that exception. */
#define CHECK(env, call)                                                    \
  do {                                                                      \
    if ((call) != napi_ok) return throw_last_napi_error((env), #call);     \
  } while (0)

static napi_value throw_last_napi_error(napi_env env, const char *call) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) {
    const napi_extended_error_info *info = NULL;
    napi_get_last_error_info(env, &info);
    char msg[256];
    snprintf(msg, sizeof msg, "%s: %s", call, info && info->error_message ? info->error_message : "Node-API call failed");
    napi_throw_error(env, "ERR_THAW_NAPI", msg);
  }
  return NULL;
}

/* Builds Error{code: errno name, errno, syscall, message "syscall: strerror"}. */
static napi_value errno_error(napi_env env, int err, const char *op) {
  const char *name = strerrorname_np(err);
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", op, strerror(err));
  napi_value code, text, error, num, sys;
  CHECK(env, napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code));
  CHECK(env, napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text));
  CHECK(env, napi_create_error(env, code, text, &error));
  CHECK(env, napi_create_int32(env, err, &num));
  CHECK(env, napi_create_string_utf8(env, op, NAPI_AUTO_LENGTH, &sys));
  CHECK(env, napi_set_named_property(env, error, "errno", num));
  CHECK(env, napi_set_named_property(env, error, "syscall", sys));
  return error;
}

static napi_value throw_errno(napi_env env, int err, const char *op) {
  napi_value error = errno_error(env, err, op);
  if (error) napi_throw(env, error);
  return NULL;
}

static napi_value throw_arg(napi_env env, const char *fn, const char *what) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", fn, what);
  napi_throw_range_error(env, "ERR_INVALID_ARG_VALUE", msg);
  return NULL;
}

/* Bytes of an ArrayBuffer (e.g. a WebAssembly.Memory's buffer) or of a TypedArray/DataView. */
static bool get_bytes(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  bool is = false;
  void *p = NULL;
  if (napi_is_arraybuffer(env, v, &is) == napi_ok && is) {
    if (napi_get_arraybuffer_info(env, v, &p, len) != napi_ok) return false;
    *data = p;
    return true;
  }
  if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
    napi_typedarray_type type;
    size_t count, off;
    napi_value ab;
    if (napi_get_typedarray_info(env, v, &type, &count, &p, &ab, &off) != napi_ok) return false;
    static const size_t width[] = { 1, 1, 1, 2, 2, 4, 4, 4, 8, 8, 8 };
    *data = p;
    *len = count * (type <= napi_biguint64_array ? width[type] : 1);
    return true;
  }
  if (napi_is_dataview(env, v, &is) == napi_ok && is) {
    napi_value ab;
    size_t off;
    if (napi_get_dataview_info(env, v, len, &p, &ab, &off) != napi_ok) return false;
    *data = p;
    return true;
  }
  return false;
}

/* A non-negative safe integer (JS number). */
static bool get_u64(napi_env env, napi_value v, uint64_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return false;
  if (!(d >= 0 && d <= 9007199254740991.0) || d != (double)(uint64_t)d) return false;
  *out = (uint64_t)d;
  return true;
}

static bool get_bool(napi_env env, napi_value v) {
  bool b = false;
  napi_get_value_bool(env, v, &b);
  return b;
}

/* Fetches exactly `n` arguments and the instance state. */
static bool get_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv, thaw_addon **addon) {
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return false;
  if (addon && napi_get_instance_data(env, (void **)addon) != napi_ok) return false;
  return argc >= n;
}

/* A checked byte range [off, off+len) of a buffer. page: alignment of address and length, or 1. */
typedef struct { uint8_t *base; size_t len; } span;

static bool get_span(napi_env env, const char *fn, napi_value buf, napi_value off_v, napi_value len_v,
                     size_t page, span *out) {
  uint8_t *data; size_t total; uint64_t off, len;
  char msg[160];
  if (!get_bytes(env, buf, &data, &total)) return throw_arg(env, fn, "buffer must be an ArrayBuffer or a TypedArray"), false;
  if (!get_u64(env, off_v, &off) || !get_u64(env, len_v, &len))
    return throw_arg(env, fn, "offsetBytes and lengthBytes must be non-negative safe integers"), false;
  if (off > total || len > total - off) {
    snprintf(msg, sizeof msg, "range [%llu, %llu) is outside the buffer's %zu bytes",
             (unsigned long long)off, (unsigned long long)(off + len), total);
    return throw_arg(env, fn, msg), false;
  }
  if (page > 1 && (((uintptr_t)data + off) % page || len % page || len == 0)) {
    snprintf(msg, sizeof msg, "offsetBytes (%llu) and lengthBytes (%llu) must be non-zero multiples of the %zu-byte page",
             (unsigned long long)off, (unsigned long long)len, page);
    return throw_arg(env, fn, msg), false;
  }
  out->base = data + off;
  out->len = (size_t)len;
  return true;
}

static napi_value undefined(napi_env env) {
  napi_value u;
  CHECK(env, napi_get_undefined(env, &u));
  return u;
}

static napi_value number(napi_env env, double d) {
  napi_value v;
  CHECK(env, napi_create_double(env, d, &v));
  return v;
}

/* ---- thaw_mmap.c ---- */

static napi_value page_size(napi_env env, napi_callback_info info) {
  thaw_addon *a;
  if (!get_args(env, info, 0, NULL, &a)) return throw_arg(env, "pageSize", "bad call");
  return number(env, (double)a->page);
}

/* jailLockExec(): no thread of this process may execve from now on. */
static napi_value jail_lock_exec(napi_env env, napi_callback_info info) {
  if (!get_args(env, info, 0, NULL, NULL)) return throw_arg(env, "jailLockExec", "bad call");
  int rc = thaw_jail_lock_exec();
  return rc ? throw_errno(env, -rc, "seccomp(SECCOMP_FILTER_FLAG_TSYNC)") : undefined(env);
}

/* uffdUseDevice(fd): an open /dev/userfaultfd to create page servers' userfaultfds from. */
static napi_value uffd_use_device(napi_env env, napi_callback_info info) {
  napi_value argv[1]; uint64_t fd;
  if (!get_args(env, info, 1, argv, NULL) || !get_u64(env, argv[0], &fd) || fd > INT32_MAX)
    return throw_arg(env, "uffdUseDevice", "fd must be a file descriptor");
  thaw_uffd_use_device((int)fd);
  return undefined(env);
}

/* mapFile(buffer, offsetBytes, lengthBytes, fd, fileOffsetBytes, shared) */
static napi_value map_file(napi_env env, napi_callback_info info) {
  napi_value argv[6]; thaw_addon *a; span s; uint64_t fd, foff;
  if (!get_args(env, info, 6, argv, &a)) return throw_arg(env, "mapFile", "expects 6 arguments");
  if (!get_span(env, "mapFile", argv[0], argv[1], argv[2], a->page, &s)) return NULL;
  if (!get_u64(env, argv[3], &fd) || fd > INT32_MAX) return throw_arg(env, "mapFile", "fd must be a file descriptor");
  if (!get_u64(env, argv[4], &foff) || foff % a->page)
    return throw_arg(env, "mapFile", "fileOffsetBytes must be a non-negative multiple of the page size");
  int rc = thaw_map_file(s.base, s.len, (int)fd, foff, get_bool(env, argv[5]));
  return rc ? throw_errno(env, -rc, "mmap(MAP_FIXED)") : undefined(env);
}

/* Shared shape of (buffer, offsetBytes, lengthBytes) calls on page-aligned ranges. */
static napi_value range_call(napi_env env, napi_callback_info info, const char *fn, int which) {
  napi_value argv[3]; thaw_addon *a; span s;
  if (!get_args(env, info, 3, argv, &a)) return throw_arg(env, fn, "expects (buffer, offsetBytes, lengthBytes)");
  if (!get_span(env, fn, argv[0], argv[1], argv[2], a->page, &s)) return NULL;
  int rc = 0;
  if (which == 0) rc = thaw_map_anon(s.base, s.len);
  if (which == 1) rc = thaw_madvise_dontneed(s.base, s.len);
  if (which == 2) thaw_touch_pages(s.base, s.len, a->page);
  if (which == 3) rc = thaw_madvise_hugepage(s.base, s.len);
  if (which == 4) rc = thaw_madvise_populate_write(s.base, s.len);
  if (which == 5) rc = thaw_madvise_populate_read(s.base, s.len);
  if (which == 6) rc = thaw_madvise_willneed(s.base, s.len);
  static const char *const calls[] = { "mmap(MAP_ANONYMOUS)", "madvise(MADV_DONTNEED)", "", "madvise(MADV_HUGEPAGE)",
                                       "madvise(MADV_POPULATE_WRITE)", "madvise(MADV_POPULATE_READ)", "madvise(MADV_WILLNEED)" };
  return rc ? throw_errno(env, -rc, calls[which]) : undefined(env);
}

static napi_value map_anonymous(napi_env env, napi_callback_info info) { return range_call(env, info, "mapAnonymous", 0); }
static napi_value madvise_dontneed(napi_env env, napi_callback_info info) { return range_call(env, info, "madviseDontneed", 1); }
static napi_value touch_pages(napi_env env, napi_callback_info info) { return range_call(env, info, "touchPages", 2); }
static napi_value madvise_hugepage(napi_env env, napi_callback_info info) { return range_call(env, info, "madviseHugepage", 3); }
static napi_value madvise_populate_write(napi_env env, napi_callback_info info) { return range_call(env, info, "madvisePopulateWrite", 4); }
static napi_value madvise_populate_read(napi_env env, napi_callback_info info) { return range_call(env, info, "madvisePopulateRead", 5); }
static napi_value madvise_willneed(napi_env env, napi_callback_info info) { return range_call(env, info, "madviseWillneed", 6); }

/* discardPages(buffer, offsets: Float64Array, anon): one call per page (thaw_scaling.c); every offset a page inside the buffer. */
static napi_value discard_pages(napi_env env, napi_callback_info info) {
  napi_value argv[3]; thaw_addon *a; uint8_t *data, *raw; size_t total, bytes; bool anon;
  if (!get_args(env, info, 3, argv, &a)) return throw_arg(env, "discardPages", "expects (buffer, offsets, anon)");
  if (!get_bytes(env, argv[0], &data, &total)) return throw_arg(env, "discardPages", "buffer must be an ArrayBuffer or a TypedArray");
  if (!get_bytes(env, argv[1], &raw, &bytes) || bytes % 8) return throw_arg(env, "discardPages", "offsets must be a Float64Array");
  if (napi_get_value_bool(env, argv[2], &anon) != napi_ok) return throw_arg(env, "discardPages", "anon must be a boolean");
  const double *offs = (const double *)raw;
  if ((uintptr_t)data % a->page) return throw_arg(env, "discardPages", "buffer must be page aligned");
  for (size_t i = 0; i < bytes / 8; i++) {
    double o = offs[i];
    if (!(o >= 0) || o != (double)(uint64_t)o || (uint64_t)o % a->page || (uint64_t)o + a->page > total)
      return throw_arg(env, "discardPages", "every offset must be a page-aligned page inside the buffer");
  }
  int rc = thaw_discard_pages(data, offs, bytes / 8, a->page, anon);
  return rc ? throw_errno(env, -rc, anon ? "mmap(MAP_ANONYMOUS)" : "madvise(MADV_DONTNEED)") : undefined(env);
}

/* copyInto(target, targetOffsetBytes, source): memcpy of all of source; returns bytes copied. */
static napi_value copy_into(napi_env env, napi_callback_info info) {
  napi_value argv[3], len_v; span dst; uint8_t *src; size_t n;
  if (!get_args(env, info, 3, argv, NULL)) return throw_arg(env, "copyInto", "expects (target, targetOffsetBytes, source)");
  if (!get_bytes(env, argv[2], &src, &n)) return throw_arg(env, "copyInto", "source must be an ArrayBuffer or a TypedArray");
  CHECK(env, napi_create_double(env, (double)n, &len_v));
  if (!get_span(env, "copyInto", argv[0], argv[1], len_v, 1, &dst)) return NULL;
  memmove(dst.base, src, n);
  return len_v;
}

/* residentBytes(buffer, offsetBytes, lengthBytes) -> bytes of the page-aligned range resident now. */
static napi_value resident_bytes(napi_env env, napi_callback_info info) {
  napi_value argv[3], out; thaw_addon *a; span s;
  if (!get_args(env, info, 3, argv, &a)) return throw_arg(env, "residentBytes", "expects (buffer, offsetBytes, lengthBytes)");
  if (!get_span(env, "residentBytes", argv[0], argv[1], argv[2], a->page, &s)) return NULL;
  int64_t pages = thaw_resident_pages(s.base, s.len, a->page);
  if (pages < 0) return throw_errno(env, (int)-pages, "mincore");
  CHECK(env, napi_create_double(env, (double)pages * (double)a->page, &out));
  return out;
}

/* mincore(fd, lengthBytes) -> Uint8Array, one byte per page, bit 0 set when resident. */
static napi_value mincore_(napi_env env, napi_callback_info info) {
  napi_value argv[2], ab, out; thaw_addon *a; uint64_t fd, len; void *vec; const char *op = "mincore";
  if (!get_args(env, info, 2, argv, &a)) return throw_arg(env, "mincore", "expects (fd, lengthBytes)");
  if (!get_u64(env, argv[0], &fd) || fd > INT32_MAX || !get_u64(env, argv[1], &len))
    return throw_arg(env, "mincore", "fd and lengthBytes must be non-negative integers");
  size_t pages = (size_t)((len + a->page - 1) / a->page);
  CHECK(env, napi_create_arraybuffer(env, pages, &vec, &ab));
  int rc = thaw_mincore((int)fd, (size_t)len, vec, &op);
  if (rc) return throw_errno(env, -rc, op);
  CHECK(env, napi_create_typedarray(env, napi_uint8_array, pages, ab, 0, &out));
  return out;
}

/* fadvise(fd, offsetBytes, lengthBytes, advice) with advice one of the names below. */
static napi_value fadvise(napi_env env, napi_callback_info info) {
  napi_value argv[4]; uint64_t fd, off, len; char name[16]; size_t n;
  static const struct { const char *name; int advice; } names[] = {
    { "dontneed", POSIX_FADV_DONTNEED }, { "willneed", POSIX_FADV_WILLNEED },
    { "sequential", POSIX_FADV_SEQUENTIAL }, { "random", POSIX_FADV_RANDOM }, { "normal", POSIX_FADV_NORMAL } };
  if (!get_args(env, info, 4, argv, NULL)) return throw_arg(env, "fadvise", "expects (fd, offsetBytes, lengthBytes, advice)");
  if (!get_u64(env, argv[0], &fd) || fd > INT32_MAX || !get_u64(env, argv[1], &off) || !get_u64(env, argv[2], &len))
    return throw_arg(env, "fadvise", "fd, offsetBytes and lengthBytes must be non-negative integers");
  if (napi_get_value_string_utf8(env, argv[3], name, sizeof name, &n) != napi_ok)
    return throw_arg(env, "fadvise", "advice must be a string");
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (strcmp(name, names[i].name)) continue;
    int rc = thaw_fadvise((int)fd, off, len, names[i].advice);
    return rc ? throw_errno(env, -rc, "posix_fadvise") : undefined(env);
  }
  return throw_arg(env, "fadvise", "advice must be dontneed, willneed, sequential, random or normal");
}

static void free_finalizer(napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  free(data);
}

/* readDirect(path, offsetBytes, lengthBytes) -> ArrayBuffer (shorter at end of file). */
static napi_value read_direct(napi_env env, napi_callback_info info) {
  napi_value argv[3], out; thaw_addon *a; uint64_t off, len; char path[4096]; size_t n;
  if (!get_args(env, info, 3, argv, &a)) return throw_arg(env, "readDirect", "expects (path, offsetBytes, lengthBytes)");
  if (napi_get_value_string_utf8(env, argv[0], path, sizeof path, &n) != napi_ok || n == 0 || n >= sizeof path - 1)
    return throw_arg(env, "readDirect", "path must be a non-empty string");
  if (!get_u64(env, argv[1], &off) || !get_u64(env, argv[2], &len) || off % a->page || len % a->page)
    return throw_arg(env, "readDirect", "offsetBytes and lengthBytes must be multiples of the page size (O_DIRECT)");
  void *buf; const char *op = "read";
  int64_t got = thaw_read_direct(path, off, (size_t)len, &buf, &op);
  if (got < 0) return throw_errno(env, (int)-got, op);
  if (napi_create_external_arraybuffer(env, buf, (size_t)got, free_finalizer, NULL, &out) != napi_ok) {
    free(buf);
    return throw_last_napi_error(env, "napi_create_external_arraybuffer");
  }
  return out;
}

static napi_value page_fault_counts(napi_env env, napi_callback_info info) {
  (void)info;
  uint64_t minor, major;
  napi_value out;
  int rc = thaw_fault_counts(&minor, &major);
  if (rc) return throw_errno(env, -rc, "getrusage");
  CHECK(env, napi_create_object(env, &out));
  CHECK(env, napi_set_named_property(env, out, "minor", number(env, (double)minor)));
  CHECK(env, napi_set_named_property(env, out, "major", number(env, (double)major)));
  return out;
}

/* poolReserve(lengthBytes) -> bytes available: keeps the pool if it holds at least lengthBytes,
 * else replaces it with a fresh pre-faulted one of lengthBytes (rounded up to the page) plus
 * 2 MiB, the most thaw_pool_move may skip to keep huge pages whole. */
static napi_value pool_reserve(napi_env env, napi_callback_info info) {
  napi_value argv[1]; thaw_addon *a; uint64_t len; const char *op = "mmap";
  if (!get_args(env, info, 1, argv, &a)) return throw_arg(env, "poolReserve", "expects (lengthBytes)");
  if (!get_u64(env, argv[0], &len)) return throw_arg(env, "poolReserve", "lengthBytes must be a non-negative safe integer");
  len = (len + a->page - 1) / a->page * a->page;
  if (len > 0 && a->pool.len < len) {
    int rc = thaw_pool_fill(&a->pool, (size_t)len + ((size_t)2 << 20), &op);
    if (rc) return throw_errno(env, -rc, op);
  }
  return number(env, (double)a->pool.len);
}

static napi_value pool_available(napi_env env, napi_callback_info info) {
  thaw_addon *a;
  if (!get_args(env, info, 0, NULL, &a)) return throw_arg(env, "poolAvailable", "bad call");
  return number(env, (double)a->pool.len);
}

static napi_value pool_release(napi_env env, napi_callback_info info) {
  thaw_addon *a;
  if (!get_args(env, info, 0, NULL, &a)) return throw_arg(env, "poolRelease", "bad call");
  thaw_pool_free(&a->pool);
  return undefined(env);
}

/* poolMoveRuns(buffer, runs: Float64Array of (offsetBytes, lengthBytes) pairs) -> runs moved.
 * Moves pool memory under each run in order and stops at the first the pool cannot cover. */
static napi_value pool_move_runs(napi_env env, napi_callback_info info) {
  napi_value argv[2], len_v; thaw_addon *a; uint8_t *raw; size_t bytes; span s;
  if (!get_args(env, info, 2, argv, &a)) return throw_arg(env, "poolMoveRuns", "expects (buffer, runs)");
  if (!get_bytes(env, argv[1], &raw, &bytes) || bytes % 16) return throw_arg(env, "poolMoveRuns", "runs must be a Float64Array of pairs");
  const double *runs = (const double *)raw;
  size_t n = bytes / 16, moved = 0;
  for (; moved < n; moved++) {
    napi_value off_v;
    CHECK(env, napi_create_double(env, runs[2 * moved], &off_v));
    CHECK(env, napi_create_double(env, runs[2 * moved + 1], &len_v));
    if (!get_span(env, "poolMoveRuns", argv[0], off_v, len_v, a->page, &s)) return NULL;
    int rc = thaw_pool_move(&a->pool, s.base, s.len);
    if (rc == -ENOSPC) break;
    if (rc) return throw_errno(env, -rc, "mremap(MREMAP_FIXED)");
  }
  return number(env, (double)moved);
}

/* ---- thaw_uffd.c ---- */

/* The JS handle of a running server. If it is collected while still running, the server is
 * left running (leaked): the memory may still be faulting and must never read as zero. */
typedef struct { thaw_uffd *u; } uffd_handle;

static void uffd_handle_finalize(napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  uffd_handle *h = data;
  if (!h->u) free(h);
}

static bool get_prop(napi_env env, napi_value obj, const char *key, napi_value *out) {
  bool has = false;
  napi_valuetype t;
  if (napi_has_named_property(env, obj, key, &has) != napi_ok || !has) return false;
  if (napi_get_named_property(env, obj, key, out) != napi_ok) return false;
  return napi_typeof(env, *out, &t) == napi_ok && t != napi_undefined;
}

/* uffdCreate(buffer, offsetBytes, lengthBytes, {fd, fileOffsetBytes, pageMap?: Int32Array,
 *   pread, record, prefetch?: Float64Array of (offsetBytes, lengthBytes) pairs, chunkBytes,
 *   chunkCrcs?: Uint32Array (one crc32 per verifyBytes piece of the range), verifyBytes, faultBytes?}) */
static napi_value uffd_create(napi_env env, napi_callback_info info) {
  napi_value argv[4], v, ext; thaw_addon *a; span s; uint64_t x;
  thaw_uffd_opts o = { 0 };
  if (!get_args(env, info, 4, argv, &a)) return throw_arg(env, "uffdCreate", "expects (buffer, offsetBytes, lengthBytes, source)");
  if (!get_span(env, "uffdCreate", argv[0], argv[1], argv[2], a->page, &s)) return NULL;
  if (!get_prop(env, argv[3], "fd", &v) || !get_u64(env, v, &x) || x > INT32_MAX)
    return throw_arg(env, "uffdCreate", "source.fd must be a file descriptor");
  o.src_fd = (int)x;
  if (get_prop(env, argv[3], "fileOffsetBytes", &v) && (!get_u64(env, v, &o.src_off) || o.src_off % a->page))
    return throw_arg(env, "uffdCreate", "source.fileOffsetBytes must be a multiple of the page size");
  if (get_prop(env, argv[3], "chunkBytes", &v)) {
    if (!get_u64(env, v, &x) || x % a->page || x == 0 || x > (1u << 30))
      return throw_arg(env, "uffdCreate", "chunkBytes must be a non-zero multiple of the page size up to 1 GiB");
    o.chunk = (size_t)x;
  }
  o.use_pread = get_prop(env, argv[3], "pread", &v) && get_bool(env, v);
  o.record = get_prop(env, argv[3], "record", &v) && get_bool(env, v);
  if (get_prop(env, argv[3], "pageMap", &v)) {
    napi_typedarray_type t; size_t n, off; void *p; napi_value ab; bool is = false;
    if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
        napi_get_typedarray_info(env, v, &t, &n, &p, &ab, &off) != napi_ok || t != napi_int32_array ||
        n != s.len / a->page)
      return throw_arg(env, "uffdCreate", "pageMap must be an Int32Array with one entry per page of the range");
    o.map = p;
  }
  if (get_prop(env, argv[3], "chunkCrcs", &v)) {
    napi_typedarray_type t; size_t n, off; void *p; napi_value ab; bool is = false;
    if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
        napi_get_typedarray_info(env, v, &t, &n, &p, &ab, &off) != napi_ok || t != napi_uint32_array)
      return throw_arg(env, "uffdCreate", "chunkCrcs must be a Uint32Array");
    if (!get_prop(env, argv[3], "verifyBytes", &v) || !get_u64(env, v, &x) || x % a->page || x == 0 || x > (1u << 30))
      return throw_arg(env, "uffdCreate", "verifyBytes must be a non-zero multiple of the page size up to 1 GiB");
    o.crcs = p; o.crc_count = n; o.verify_bytes = (size_t)x;
    if (get_prop(env, argv[3], "faultBytes", &v)) {
      if (!get_u64(env, v, &x) || x % a->page || x > (1u << 30))
        return throw_arg(env, "uffdCreate", "faultBytes must be a multiple of the page size up to 1 GiB");
      o.fault_bytes = (size_t)x;
    }
  }
  if (get_prop(env, argv[3], "prefetch", &v)) {
    napi_typedarray_type t; size_t n, off; void *p; napi_value ab; bool is = false;
    if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
        napi_get_typedarray_info(env, v, &t, &n, &p, &ab, &off) != napi_ok || t != napi_float64_array || n % 2)
      return throw_arg(env, "uffdCreate", "prefetch must be a Float64Array of (offsetBytes, lengthBytes) pairs");
    thaw_run *runs = malloc((n / 2 + 1) * sizeof *runs);
    if (!runs) return throw_errno(env, ENOMEM, "malloc");
    for (size_t i = 0; i < n / 2; i++) {
      double off_d = ((double *)p)[2 * i], len_d = ((double *)p)[2 * i + 1];
      if (!(off_d >= 0 && len_d >= 0 && off_d == (double)(uint64_t)off_d && len_d == (double)(uint64_t)len_d)) {
        free(runs);
        return throw_arg(env, "uffdCreate", "prefetch runs must be non-negative integers");
      }
      runs[i] = (thaw_run){ (uint64_t)off_d, (uint64_t)len_d };
    }
    o.prefetch = runs;
    o.prefetch_count = n / 2;
  }
  uffd_handle *h = calloc(1, sizeof *h);
  const char *op = "userfaultfd";
  int rc = h ? thaw_uffd_start(s.base, s.len, &o, &h->u, &op) : -ENOMEM;
  free((void *)o.prefetch);
  if (rc) {
    free(h);
    if (rc == -EINVAL && (!strncmp(op, "prefetch", 8) || !strncmp(op, "page map", 8) || !strncmp(op, "chunk", 5) ||
                          !strncmp(op, "verify", 6) || !strncmp(op, "checksums", 9)))
      return throw_arg(env, "uffdCreate", op);
    return throw_errno(env, -rc, op);
  }
  /* The server is running: a failure to wrap it can only leak it, never stop it under the guest. */
  CHECK(env, napi_create_external(env, h, uffd_handle_finalize, NULL, &ext));
  return ext;
}

static uffd_handle *get_handle(napi_env env, napi_value v) {
  void *p = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &p) != napi_ok) return NULL;
  return p;
}

static napi_value uffd_wait_prefetch(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  uffd_handle *h;
  if (!get_args(env, info, 1, argv, NULL) || !(h = get_handle(env, argv[0])) || !h->u)
    return throw_arg(env, "uffdWaitPrefetch", "expects a running server handle");
  thaw_uffd_wait_prefetch(h->u);
  return undefined(env);
}

/* uffdStop(handle, fill) -> {faults, zeroPages, copiedPages, prefetchedPages, prefetchNs,
 *   userModeOnly, recorded: BigUint64Array of page offsets in fault order} */
static napi_value uffd_stop(napi_env env, napi_callback_info info) {
  napi_value argv[2], out, ab, rec, b;
  uffd_handle *h;
  if (!get_args(env, info, 2, argv, NULL) || !(h = get_handle(env, argv[0])) || !h->u)
    return throw_arg(env, "uffdStop", "expects a running server handle");
  thaw_uffd_stats st;
  const char *op = "uffd stop";
  int rc = thaw_uffd_stop(h->u, get_bool(env, argv[1]), &st, &op);
  h->u = NULL; /* released by thaw_uffd_stop, even on error */
  if (rc) { free(st.recorded); return throw_errno(env, -rc, op); }
  void *data;
  napi_status ok = napi_create_arraybuffer(env, st.recorded_count * sizeof(uint64_t), &data, &ab);
  if (ok == napi_ok && st.recorded_count) memcpy(data, st.recorded, st.recorded_count * sizeof(uint64_t));
  free(st.recorded);
  CHECK(env, ok);
  CHECK(env, napi_create_typedarray(env, napi_biguint64_array, st.recorded_count, ab, 0, &rec));
  CHECK(env, napi_create_object(env, &out));
  CHECK(env, napi_set_named_property(env, out, "faults", number(env, (double)st.faults)));
  CHECK(env, napi_set_named_property(env, out, "zeroPages", number(env, (double)st.zero_pages)));
  CHECK(env, napi_set_named_property(env, out, "copiedPages", number(env, (double)st.copied_pages)));
  CHECK(env, napi_set_named_property(env, out, "prefetchedPages", number(env, (double)st.prefetched_pages)));
  CHECK(env, napi_set_named_property(env, out, "prefetchNs", number(env, (double)st.prefetch_ns)));
  CHECK(env, napi_get_boolean(env, st.user_mode_only, &b));
  CHECK(env, napi_set_named_property(env, out, "userModeOnly", b));
  CHECK(env, napi_set_named_property(env, out, "recorded", rec));
  return out;
}

/* ---- thaw_codec.c ---- */

enum codec { LZ4, ZSTD };

/* lz4Compress(source, acceleration) / zstdCompress(source, level) -> ArrayBuffer */
static napi_value compress(napi_env env, napi_callback_info info, enum codec c) {
  napi_value argv[2], out; uint8_t *src; size_t n; int32_t param; void *data;
  const char *fn = c == LZ4 ? "lz4Compress" : "zstdCompress";
  if (!get_args(env, info, 2, argv, NULL) || !get_bytes(env, argv[0], &src, &n) ||
      napi_get_value_int32(env, argv[1], &param) != napi_ok)
    return throw_arg(env, fn, "expects (source: ArrayBuffer | TypedArray, level: number)");
  int64_t cap = c == LZ4 ? thaw_lz4_bound(n) : thaw_zstd_bound(n);
  if (cap < 0) return throw_errno(env, (int)-cap, fn);
  uint8_t *tmp = malloc(cap ? (size_t)cap : 1);
  if (!tmp) return throw_errno(env, ENOMEM, "malloc");
  int64_t got = c == LZ4 ? thaw_lz4_encode(src, n, tmp, (size_t)cap, param) : thaw_zstd_encode(src, n, tmp, (size_t)cap, param);
  if (got < 0) { free(tmp); return throw_errno(env, (int)-got, c == LZ4 ? "LZ4_compress_fast" : "ZSTD_compress"); }
  napi_status ok = napi_create_arraybuffer(env, (size_t)got, &data, &out);
  if (ok == napi_ok) memcpy(data, tmp, (size_t)got);
  free(tmp);
  CHECK(env, ok);
  return out;
}

static napi_value lz4_compress(napi_env env, napi_callback_info info) { return compress(env, info, LZ4); }
static napi_value zstd_compress(napi_env env, napi_callback_info info) { return compress(env, info, ZSTD); }

/* A decode: compressed source into target range [dst, dst+cap). */
typedef struct {
  enum codec codec;
  const uint8_t *src; size_t n; uint8_t *dst; size_t cap;
  int64_t result;
} decode_job;

static void decode_run(decode_job *j) {
  j->result = j->codec == LZ4 ? thaw_lz4_decode(j->src, j->n, j->dst, j->cap) : thaw_zstd_decode(j->src, j->n, j->dst, j->cap);
  if (j->result >= 0 && (size_t)j->result != j->cap) j->result = -EBADMSG; /* must fill the range exactly */
}

static napi_value decode_result(napi_env env, decode_job *j) {
  if (j->result >= 0) return number(env, (double)j->result);
  return errno_error(env, (int)-j->result, j->codec == LZ4 ? "LZ4_decompress_safe" : "ZSTD_decompress");
}

/* Parses (source, target, targetOffsetBytes, lengthBytes) into a job. */
static bool decode_args(napi_env env, napi_callback_info info, enum codec c, decode_job *j, napi_value *argv) {
  span dst; uint8_t *src; size_t n;
  const char *fn = c == LZ4 ? "lz4Decompress" : "zstdDecompress";
  if (!get_args(env, info, 4, argv, NULL)) return throw_arg(env, fn, "expects (source, target, targetOffsetBytes, lengthBytes)"), false;
  if (!get_bytes(env, argv[0], &src, &n)) return throw_arg(env, fn, "source must be an ArrayBuffer or a TypedArray"), false;
  if (!get_span(env, fn, argv[1], argv[2], argv[3], 1, &dst)) return false;
  *j = (decode_job){ .codec = c, .src = src, .n = n, .dst = dst.base, .cap = dst.len };
  return true;
}

/* lz4Decompress / zstdDecompress(source, target, targetOffsetBytes, lengthBytes) -> lengthBytes;
 * the decoded size must equal lengthBytes (EBADMSG otherwise). */
static napi_value decompress(napi_env env, napi_callback_info info, enum codec c) {
  napi_value argv[4], r; decode_job j;
  if (!decode_args(env, info, c, &j, argv)) return NULL;
  decode_run(&j);
  if (j.result >= 0) return number(env, (double)j.result);
  if ((r = decode_result(env, &j))) napi_throw(env, r);
  return NULL;
}

static napi_value lz4_decompress(napi_env env, napi_callback_info info) { return decompress(env, info, LZ4); }
static napi_value zstd_decompress(napi_env env, napi_callback_info info) { return decompress(env, info, ZSTD); }

/* ---- thaw_fill.c ---- */

/* fill(fd, target, jobs: Float64Array of 6 numbers per job [dstOff, dstLen, srcOff, srcLen, crc32,
 * codec | check << 8], scratch: ArrayBuffer | TypedArray | null, scratchPerThread, threads)
 * -> { bytesRead, threads }. A failed job throws an Error whose `job` is its index and whose code
 * is THAW_FILL_SHORT, THAW_FILL_CRC, THAW_FILL_DECODE or the errno name of its read. */
static napi_value fill(napi_env env, napi_callback_info info) {
  napi_value argv[6], out, null_v; uint8_t *base, *raw, *scratch = NULL; size_t total, bytes, scratch_len = 0;
  uint64_t fd, per, threads; napi_valuetype t;
  if (!get_args(env, info, 6, argv, NULL) || !get_u64(env, argv[0], &fd) || fd > INT32_MAX || !get_bytes(env, argv[1], &base, &total) ||
      !get_bytes(env, argv[2], &raw, &bytes) || bytes % (6 * sizeof(double)) || !get_u64(env, argv[4], &per) ||
      !get_u64(env, argv[5], &threads) || napi_typeof(env, argv[3], &t) != napi_ok)
    return throw_arg(env, "fill", "expects (fd, target, jobs: Float64Array, scratch | null, scratchPerThread, threads)");
  CHECK(env, napi_get_null(env, &null_v));
  if (t != napi_null && !get_bytes(env, argv[3], &scratch, &scratch_len)) return throw_arg(env, "fill", "scratch must be an ArrayBuffer, a TypedArray or null");
  if (threads < 1 || threads > THAW_FILL_MAX_THREADS) return throw_arg(env, "fill", "threads must be 1..16");
  if (per * threads > scratch_len) return throw_arg(env, "fill", "scratch is smaller than threads x scratchPerThread");
  size_t count = bytes / (6 * sizeof(double));
  const double *v = (const double *)raw;
  thaw_fill_job *jobs = calloc(count ? count : 1, sizeof *jobs);
  if (!jobs) return throw_errno(env, ENOMEM, "calloc");
  for (size_t i = 0; i < count; i++, v += 6) {
    uint64_t flags = (uint64_t)v[5];
    jobs[i] = (thaw_fill_job){ .dst_off = (uint64_t)v[0], .dst_len = (uint64_t)v[1], .src_off = (uint64_t)v[2],
                               .src_len = (uint64_t)v[3], .crc = (uint32_t)v[4], .codec = flags & 0xff, .check = (flags >> 8) & 1 };
    if (jobs[i].dst_off > total || jobs[i].dst_len > total - jobs[i].dst_off || jobs[i].codec > THAW_FILL_ZSTD ||
        (jobs[i].codec != THAW_FILL_RAW && !scratch)) {
      free(jobs);
      char msg[160];
      snprintf(msg, sizeof msg, "job %zu: target range outside the buffer, unknown codec, or compressed without scratch", i);
      return throw_arg(env, "fill", msg);
    }
  }
  thaw_fill_result r;
  thaw_fill((int)fd, base, jobs, count, scratch, (size_t)per, (int)threads, &r);
  free(jobs);
  if (r.failed_job >= 0) {
    static const char *codes[] = { NULL, "THAW_FILL_SHORT", "THAW_FILL_CRC", "THAW_FILL_DECODE", "THAW_FILL_EINVAL" };
    static const char *texts[] = { NULL, "file ends early", "checksum mismatch", "does not decode to its size", "bad job" };
    napi_value err, code, text;
    if (r.error < 0) {
      err = errno_error(env, -r.error, "pread");
      if (!err) return NULL;
    } else {
      char msg[96];
      snprintf(msg, sizeof msg, "fill: job %lld: %s", (long long)r.failed_job, texts[r.error]);
      CHECK(env, napi_create_string_utf8(env, codes[r.error], NAPI_AUTO_LENGTH, &code));
      CHECK(env, napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text));
      CHECK(env, napi_create_error(env, code, text, &err));
    }
    CHECK(env, napi_set_named_property(env, err, "job", number(env, (double)r.failed_job)));
    napi_throw(env, err);
    return NULL;
  }
  CHECK(env, napi_create_object(env, &out));
  CHECK(env, napi_set_named_property(env, out, "bytesRead", number(env, (double)r.bytes_read)));
  CHECK(env, napi_set_named_property(env, out, "threads", number(env, r.threads)));
  return out;
}

/* ---- module ---- */

napi_status thaw_offload_register(napi_env env, napi_value exports); /* binding_offload.c */

static void addon_finalize(napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  thaw_pool_free(&((thaw_addon *)data)->pool);
  free(data);
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  thaw_addon *a = calloc(1, sizeof *a);
  if (!a) return throw_errno(env, ENOMEM, "calloc");
  a->page = (size_t)sysconf(_SC_PAGESIZE);
  CHECK(env, napi_set_instance_data(env, a, addon_finalize, NULL));
  napi_property_descriptor fns[] = {
#define FN(name, cb) { name, NULL, cb, NULL, NULL, NULL, napi_enumerable, NULL }
    FN("pageSize", page_size), FN("mapFile", map_file), FN("mapAnonymous", map_anonymous),
    FN("madviseDontneed", madvise_dontneed), FN("touchPages", touch_pages), FN("madviseHugepage", madvise_hugepage),
    FN("madvisePopulateWrite", madvise_populate_write), FN("madvisePopulateRead", madvise_populate_read), FN("madviseWillneed", madvise_willneed), FN("discardPages", discard_pages), FN("copyInto", copy_into),
    FN("mincore", mincore_), FN("residentBytes", resident_bytes), FN("fadvise", fadvise), FN("readDirect", read_direct),
    FN("pageFaultCounts", page_fault_counts), FN("poolReserve", pool_reserve), FN("poolAvailable", pool_available),
    FN("poolRelease", pool_release), FN("poolMoveRuns", pool_move_runs), FN("uffdCreate", uffd_create),
    FN("uffdWaitPrefetch", uffd_wait_prefetch), FN("uffdStop", uffd_stop),
    FN("lz4Compress", lz4_compress), FN("zstdCompress", zstd_compress),
    FN("lz4Decompress", lz4_decompress), FN("zstdDecompress", zstd_decompress),
    FN("fill", fill), FN("jailLockExec", jail_lock_exec), FN("uffdUseDevice", uffd_use_device),
#undef FN
  };
  CHECK(env, napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns));
  CHECK(env, thaw_offload_register(env, exports));
  thaw_fc_register(env, exports);
  thaw_sealed_register(env, exports);
  return exports;
}
