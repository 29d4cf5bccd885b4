/* The Node-API face of thaw_offload.c and thaw_stages.c (registered by binding.c's module init):
 * om* functions over an opaque handle, one per guest memory. Errors carry `code` (the errno name)
 * and `syscall` (the failing step), like binding.c's. */
#define _GNU_SOURCE
#include <node_api.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "thaw.h"

typedef struct { thaw_om *m; } om_handle;

#define TRY(call) do { if ((call) != napi_ok) return NULL; } while (0)

static napi_value om_throw(napi_env env, int err, const char *op) {
  char msg[320];
  napi_value code, text, error, sys;
  const char *name = strerrorname_np(err);
  snprintf(msg, sizeof msg, "%s: %s", op, strerror(err));
  TRY(napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code));
  TRY(napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text));
  TRY(napi_create_error(env, code, text, &error));
  TRY(napi_create_string_utf8(env, op, NAPI_AUTO_LENGTH, &sys));
  TRY(napi_set_named_property(env, error, "syscall", sys));
  napi_throw(env, error);
  return NULL;
}

static napi_value om_bad(napi_env env, const char *what) {
  napi_throw_range_error(env, "ERR_INVALID_ARG_VALUE", what);
  return NULL;
}

static size_t om_args(napi_env env, napi_callback_info info, napi_value *argv, size_t n) {
  size_t argc = n;
  return napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok ? argc : 0;
}

static om_handle *om_get(napi_env env, napi_value v) {
  void *p = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &p) != napi_ok) return NULL;
  return ((om_handle *)p)->m ? p : NULL;
}

static bool om_u32(napi_env env, napi_value v, uint32_t *out) {
  return napi_get_value_uint32(env, v, out) == napi_ok;
}

/* The page-aligned start and length of an ArrayBuffer (a Wasm memory's buffer). */
static bool om_buffer(napi_env env, napi_value v, uint8_t **base, size_t *len) {
  bool is = false;
  void *p;
  if (napi_is_arraybuffer(env, v, &is) != napi_ok || !is || napi_get_arraybuffer_info(env, v, &p, len) != napi_ok) return false;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  *base = p;
  return (uintptr_t)p % page == 0 && *len % page == 0 && *len > 0;
}

static void om_finalize(napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  om_handle *h = data;
  if (h->m) thaw_om_stop(h->m, 0);
  free(h);
}

/* omStart(buffer) -> handle over the whole buffer; EBUSY when a page server already owns it. */
static napi_value om_start(napi_env env, napi_callback_info info) {
  napi_value argv[1], ext;
  uint8_t *base; size_t len;
  if (om_args(env, info, argv, 1) < 1 || !om_buffer(env, argv[0], &base, &len)) return om_bad(env, "omStart: expects a page-aligned ArrayBuffer");
  om_handle *h = calloc(1, sizeof *h);
  if (!h) return om_throw(env, ENOMEM, "calloc");
  const char *op = "userfaultfd";
  int rc = thaw_om_start(base, len, &h->m, &op);
  if (rc) { free(h); return om_throw(env, -rc, op); }
  TRY(napi_create_external(env, h, om_finalize, NULL, &ext));
  return ext;
}

/* omExtend(handle, buffer): registers what the memory grew by. */
static napi_value om_extend(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  om_handle *h; uint8_t *base; size_t len;
  if (om_args(env, info, argv, 2) < 2 || !(h = om_get(env, argv[0])) || !om_buffer(env, argv[1], &base, &len))
    return om_bad(env, "omExtend: expects (handle, buffer)");
  const char *op = "extend";
  int rc = thaw_om_extend(h->m, len, &op);
  return rc ? om_throw(env, -rc, op) : NULL;
}

static napi_value om_set_file(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  om_handle *h; uint32_t fd;
  if (om_args(env, info, argv, 2) < 2 || !(h = om_get(env, argv[0])) || !om_u32(env, argv[1], &fd)) return om_bad(env, "omSetFile: expects (handle, fd)");
  int rc = thaw_om_set_file(h->m, (int)fd);
  return rc ? om_throw(env, -rc, "dup(snapshot image)") : NULL;
}

static napi_value om_connect(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  om_handle *h; uint32_t ms; char path[256]; size_t n;
  if (om_args(env, info, argv, 3) < 3 || !(h = om_get(env, argv[0])) ||
      napi_get_value_string_utf8(env, argv[1], path, sizeof path, &n) != napi_ok || !om_u32(env, argv[2], &ms))
    return om_bad(env, "omConnect: expects (handle, socketPath, timeoutMs)");
  const char *op = "connect";
  int rc = thaw_om_connect(h->m, path, (int)ms, &op);
  return rc ? om_throw(env, -rc, op) : NULL;
}

/* swappedBytes(buffer) -> bytes of a Wasm memory's buffer on swap now (tmo:compressed's zram). */
static napi_value swapped_bytes(napi_env env, napi_callback_info info) {
  napi_value argv[1], out;
  uint8_t *base; size_t len;
  if (om_args(env, info, argv, 1) < 1 || !om_buffer(env, argv[0], &base, &len)) return om_bad(env, "swappedBytes: expects a page-aligned ArrayBuffer");
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  int64_t n = thaw_swapped_pages(base, len, page);
  if (n < 0) return om_throw(env, (int)-n, "pread(/proc/self/pagemap)");
  TRY(napi_create_double(env, (double)n * (double)page, &out));
  return out;
}

/* omPassSocket(unixFd, tcpFd): the memory server hands a client its TCP connection (SCM_RIGHTS). */
static napi_value om_pass_socket(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  uint32_t ufd, tfd;
  if (om_args(env, info, argv, 2) < 2 || !om_u32(env, argv[0], &ufd) || !om_u32(env, argv[1], &tfd))
    return om_bad(env, "omPassSocket: expects (unixFd, tcpFd)");
  int rc = thaw_om_pass_socket((int)ufd, (int)tfd);
  return rc ? om_throw(env, -rc, "sendmsg(SCM_RIGHTS) of a memory server connection") : NULL;
}

/* omScan(handle, what: 0 written | 1 written and re-protect | 2 present) -> Uint8Array, 1 byte per page. */
static napi_value om_scan(napi_env env, napi_callback_info info) {
  napi_value argv[2], ab, out;
  om_handle *h; uint32_t what; void *data;
  if (om_args(env, info, argv, 2) < 2 || !(h = om_get(env, argv[0])) || !om_u32(env, argv[1], &what) || what > 2)
    return om_bad(env, "omScan: expects (handle, 0 | 1 | 2)");
  size_t pages = thaw_om_pages(h->m);
  TRY(napi_create_arraybuffer(env, pages, &data, &ab));
  memset(data, 0, pages);
  int64_t rc = thaw_om_scan(h->m, (int)what, data);
  if (rc < 0) return om_throw(env, (int)-rc, "ioctl(PAGEMAP_SCAN)");
  TRY(napi_create_typedarray(env, napi_uint8_array, pages, ab, 0, &out));
  return out;
}

/* omOffload(handle, tier 1|2|3, pages: Uint32Array) -> pages offloaded */
static napi_value om_offload(napi_env env, napi_callback_info info) {
  napi_value argv[3], ab, out;
  om_handle *h; uint32_t tier; bool is = false;
  napi_typedarray_type t; size_t n, off; void *p;
  if (om_args(env, info, argv, 3) < 3 || !(h = om_get(env, argv[0])) || !om_u32(env, argv[1], &tier) || tier < 1 || tier > 3 ||
      napi_is_typedarray(env, argv[2], &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, argv[2], &t, &n, &p, &ab, &off) != napi_ok || t != napi_uint32_array)
    return om_bad(env, "omOffload: expects (handle, tier 1..3, Uint32Array of page numbers)");
  const char *op = "offload";
  int64_t rc = thaw_om_offload(h->m, (int)tier, p, n, &op);
  if (rc < 0) return om_throw(env, (int)-rc, op);
  TRY(napi_create_double(env, (double)rc, &out));
  return out;
}

/* omPrefetch(handle, pages: Uint32Array ascending) -> pages brought back */
static napi_value om_prefetch(napi_env env, napi_callback_info info) {
  napi_value argv[2], ab, out;
  om_handle *h; bool is = false;
  napi_typedarray_type t; size_t n, off; void *p;
  if (om_args(env, info, argv, 2) < 2 || !(h = om_get(env, argv[0])) ||
      napi_is_typedarray(env, argv[1], &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, argv[1], &t, &n, &p, &ab, &off) != napi_ok || t != napi_uint32_array)
    return om_bad(env, "omPrefetch: expects (handle, Uint32Array of page numbers)");
  const char *op = "prefetch";
  int64_t rc = thaw_om_prefetch(h->m, p, n, &op);
  if (rc < 0) return om_throw(env, (int)-rc, op);
  TRY(napi_create_double(env, (double)rc, &out));
  return out;
}

static napi_value om_stats(napi_env env, napi_callback_info info) {
  napi_value argv[1], out, v;
  om_handle *h;
  if (om_args(env, info, argv, 1) < 1 || !(h = om_get(env, argv[0]))) return om_bad(env, "omStats: expects a running handle");
  thaw_om_stats st;
  thaw_om_get_stats(h->m, &st);
  TRY(napi_create_object(env, &out));
  const struct { const char *k; double v; } nums[] = {
    { "offloadedPages", (double)st.offloaded_pages }, { "faultedPages", (double)st.faulted_pages },
    { "faultNs", (double)st.fault_ns }, { "faults", (double)st.faults }, { "zeroPages", (double)st.zero_pages },
    { "storedBytes", (double)st.stored_bytes }, { "heldPages", (double)st.held_pages }, { "mode", st.mode },
    { "prefetchedPages", (double)st.prefetched_pages }, { "prefetchNs", (double)st.prefetch_ns },
  };
  for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
    TRY(napi_create_double(env, nums[i].v, &v));
    TRY(napi_set_named_property(env, out, nums[i].k, v));
  }
  TRY(napi_create_string_utf8(env, st.failed ? st.why : "", NAPI_AUTO_LENGTH, &v));
  TRY(napi_set_named_property(env, out, "failure", v));
  return out;
}

/* omStop(handle, fill): stops the server; held pages are put back (fill) or fenced. */
static napi_value om_stop(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  om_handle *h; bool fill = false;
  if (om_args(env, info, argv, 2) < 2 || !(h = om_get(env, argv[0]))) return om_bad(env, "omStop: expects a running handle");
  napi_get_value_bool(env, argv[1], &fill);
  int rc = thaw_om_stop(h->m, fill);
  h->m = NULL;
  return rc ? om_throw(env, -rc, "offloaded pages could not be put back (range fenced)") : NULL;
}

napi_status thaw_offload_register(napi_env env, napi_value exports) {
  napi_property_descriptor fns[] = {
#define FN(name, cb) { name, NULL, cb, NULL, NULL, NULL, napi_enumerable, NULL }
    FN("omStart", om_start), FN("omExtend", om_extend), FN("omSetFile", om_set_file), FN("omConnect", om_connect),
    FN("omScan", om_scan), FN("omOffload", om_offload), FN("omPrefetch", om_prefetch), FN("omStats", om_stats), FN("omStop", om_stop),
    FN("omPassSocket", om_pass_socket), FN("swappedBytes", swapped_bytes),
#undef FN
  };
  return napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);
}
