/* Sealed snapshot images (the `sealed` restore strategy, src/restore/strategies/sealed.ts).
 *
 * The daemon checks a snapshot's image once into a memfd and seals it (F_SEAL_WRITE, SHRINK,
 * GROW, SEAL): from then on no process holding the fd, the daemon included, can change a byte, so
 * a restore copies from it without checking again. Sandbox hosts get the fd over a SOCK_SEQPACKET
 * socketpair the daemon made when it started the host (SCM_RIGHTS: Node's IPC can pass only
 * sockets). Each process keeps its images in one table shared by all its threads (the daemon's
 * prepare worker builds, its main thread sends). Also: zeroing the pages of guest memory that are
 * not zero already (a restore into a reused Pyodide shell). */
#define _GNU_SOURCE
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "thaw.h"

#define SEALS (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
#define TABLE_SIZE 64
#define KEY_MAX 256

typedef struct { char key[KEY_MAX]; int fd; uint64_t bytes, used; uint8_t *map; size_t map_len; } entry;
static entry table[TABLE_SIZE];
static uint64_t tick;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

int thaw_sealed_create(size_t len, int *out, const char **op) {
  int fd = memfd_create("thaw-sealed-image", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) { *op = "memfd_create"; return -errno; }
  if (ftruncate(fd, (off_t)len) < 0) { int e = errno; close(fd); *op = "ftruncate"; return -e; }
  *out = fd;
  return 0;
}

int thaw_sealed_seal(int fd) {
  return fcntl(fd, F_ADD_SEALS, SEALS) < 0 ? -errno : 0;
}

/* 1 when every seal is set, 0 when not, -errno when fd is no sealable file. */
int thaw_sealed_is_sealed(int fd) {
  int s = fcntl(fd, F_GET_SEALS);
  if (s < 0) return -errno;
  return (s & SEALS) == SEALS;
}

static entry *find(const char *key) {
  for (int i = 0; i < TABLE_SIZE; i++) if (table[i].fd > 0 && !strcmp(table[i].key, key)) return &table[i];
  return NULL;
}

static void drop(entry *e) {
  if (e->map) munmap(e->map, e->map_len);
  close(e->fd);
  memset(e, 0, sizeof *e);
}

/* Takes `fd` into the table under `key` (an older entry of that key is closed), evicting the
 * least recently used images while the table would hold more than budget bytes or is full. */
void thaw_sealed_put(const char *key, int fd, uint64_t bytes, uint64_t budget) {
  pthread_mutex_lock(&lock);
  entry *old = find(key);
  if (old) drop(old);
  for (;;) {
    uint64_t total = bytes;
    int used = 0;
    entry *lru = NULL;
    for (int i = 0; i < TABLE_SIZE; i++) {
      if (table[i].fd <= 0) continue;
      used++;
      total += table[i].bytes;
      if (!lru || table[i].used < lru->used) lru = &table[i];
    }
    if ((total <= budget && used < TABLE_SIZE) || !lru) break;
    drop(lru);
  }
  for (int i = 0; i < TABLE_SIZE; i++) {
    if (table[i].fd > 0) continue;
    snprintf(table[i].key, KEY_MAX, "%s", key);
    table[i].fd = fd;
    table[i].bytes = bytes;
    table[i].used = ++tick;
    break;
  }
  pthread_mutex_unlock(&lock);
}

/* The table's fd for `key` (still the table's), or -1. */
int thaw_sealed_get(const char *key) {
  pthread_mutex_lock(&lock);
  entry *e = find(key);
  int fd = -1;
  if (e) { e->used = ++tick; fd = e->fd; }
  pthread_mutex_unlock(&lock);
  return fd;
}

void thaw_sealed_drop(const char *key) {
  pthread_mutex_lock(&lock);
  entry *e = find(key);
  if (e) drop(e);
  pthread_mutex_unlock(&lock);
}

typedef struct { uint8_t *dst; const uint8_t *src; const double *spans; size_t n; uint64_t from, to; } copy_part;

/* Copies bytes [from, to) of the concatenated spans. */
static void *copy_run(void *arg) {
  copy_part *c = arg;
  uint64_t at = 0;
  for (size_t i = 0; i < c->n && at < c->to; i++) {
    uint64_t off = (uint64_t)c->spans[2 * i], len = (uint64_t)c->spans[2 * i + 1];
    uint64_t lo = c->from > at ? c->from - at : 0, hi = c->to - at < len ? c->to - at : len;
    if (lo < hi) memcpy(c->dst + off + lo, c->src + off + lo, hi - lo);
    at += len;
  }
  return NULL;
}

#define COPY_MAX_THREADS 8

/* Copies spans ([off, len] pairs, inside both) of the table's image with fd `fd` to `dst` on up
 * to `threads` threads (the caller's included), from a read-only shared mapping of the image made
 * at the first copy (MAP_POPULATE: no fault per page) and kept with the entry. -ENOENT when the
 * table has no such fd. */
int thaw_sealed_copy(int fd, uint8_t *dst, size_t dst_len, const double *spans, size_t n, int threads, const char **op) {
  pthread_mutex_lock(&lock);
  entry *e = NULL;
  for (int i = 0; i < TABLE_SIZE; i++) if (table[i].fd == fd && fd > 0) e = &table[i];
  if (!e) { pthread_mutex_unlock(&lock); *op = "sealed image lookup"; return -ENOENT; }
  if (!e->map) {
    off_t size = lseek(fd, 0, SEEK_END);
    if (size <= 0) { pthread_mutex_unlock(&lock); *op = "lseek"; return size < 0 ? -errno : -EINVAL; }
    void *m = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (m == MAP_FAILED) { int err = errno; pthread_mutex_unlock(&lock); *op = "mmap"; return -err; }
    e->map = m;
    e->map_len = (size_t)size;
  }
  e->used = ++tick;
  uint64_t total = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t off = (uint64_t)spans[2 * i], l = (uint64_t)spans[2 * i + 1];
    if (off + l > e->map_len || off + l > dst_len) { pthread_mutex_unlock(&lock); *op = "sealed copy bounds"; return -ERANGE; }
    total += l;
  }
  if (threads < 1) threads = 1;
  if (threads > COPY_MAX_THREADS) threads = COPY_MAX_THREADS;
  if (total < ((uint64_t)threads << 22)) threads = (int)(total >> 22) + 1; /* >= 4 MiB a thread */
  copy_part parts[COPY_MAX_THREADS];
  pthread_t tids[COPY_MAX_THREADS];
  int started = 0;
  for (int t = 0; t < threads; t++) {
    parts[t] = (copy_part){ dst, e->map, spans, n, total * t / threads, total * (t + 1) / threads };
    if (t > 0 && pthread_create(&tids[t], NULL, copy_run, &parts[t]) == 0) started |= 1 << t;
  }
  copy_run(&parts[0]);
  for (int t = 1; t < threads; t++) {
    if (started & (1 << t)) pthread_join(tids[t], NULL);
    else copy_run(&parts[t]); /* no thread: this one copies it */
  }
  pthread_mutex_unlock(&lock);
  return 0;
}

int thaw_sealed_send(int sock, const char *key, int fd) {
  char ctl[CMSG_SPACE(sizeof(int))];
  memset(ctl, 0, sizeof ctl);
  struct iovec iov = { .iov_base = (void *)key, .iov_len = strlen(key) };
  struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl };
  struct cmsghdr *h = CMSG_FIRSTHDR(&m);
  h->cmsg_level = SOL_SOCKET;
  h->cmsg_type = SCM_RIGHTS;
  h->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(h), &fd, sizeof fd);
  return sendmsg(sock, &m, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 ? -errno : 0;
}

/* One pending message: its key (NUL-terminated) and fd (-1 if none came). 0, -EAGAIN when
 * nothing is pending, or -errno. */
int thaw_sealed_recv(int sock, char *key, size_t cap, int *fd) {
  char ctl[CMSG_SPACE(sizeof(int) * 4)];
  struct iovec iov = { .iov_base = key, .iov_len = cap - 1 };
  struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl };
  ssize_t n = recvmsg(sock, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0) return -errno;
  key[n] = 0;
  *fd = -1;
  for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
    if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS) continue;
    int fds[4];
    size_t count = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    memcpy(fds, CMSG_DATA(h), count * sizeof(int));
    for (size_t i = 0; i < count; i++) {
      if (*fd < 0) *fd = fds[i];
      else close(fds[i]);
    }
  }
  return 0;
}

/* Zeroes every page of [off, off+len) spans of `base` that is not zero already (reading a zero
 * page costs no write, so no copy-on-write and no dirtying). Returns the pages zeroed. */
uint64_t thaw_zero_dirty(uint8_t *base, const double *spans, size_t n, size_t page) {
  uint64_t zeroed = 0;
  for (size_t i = 0; i < n; i++) {
    uint8_t *p = base + (uint64_t)spans[2 * i], *end = p + (uint64_t)spans[2 * i + 1];
    for (; p < end; p += page) {
      const uint64_t *w = (const uint64_t *)p;
      uint64_t acc = 0;
      for (size_t k = 0; k < page / 8; k++) acc |= w[k];
      if (acc) { memset(p, 0, page); zeroed++; }
    }
  }
  return zeroed;
}

/* The runs of pages of [base, base+len) that are not zero, as [off, len] pairs into out (at most
 * cap pairs; returns the pairs found, or -1 when there are more than cap). */
int64_t thaw_nonzero_spans(const uint8_t *base, size_t len, size_t page, double *out, size_t cap) {
  size_t n = 0;
  for (size_t at = 0; at + page <= len; at += page) {
    const uint64_t *w = (const uint64_t *)(base + at);
    uint64_t acc = 0;
    for (size_t k = 0; k < page / 8; k++) acc |= w[k];
    if (!acc) continue;
    if (n > 0 && (size_t)(out[2 * n - 2] + out[2 * n - 1]) == at) { out[2 * n - 1] += (double)page; continue; }
    if (n == cap) return -1;
    out[2 * n] = (double)at;
    out[2 * n + 1] = (double)page;
    n++;
  }
  return (int64_t)n;
}

/* ---- Node-API ---- */

static napi_value sl_throw(napi_env env, int err, const char *op) {
  char msg[320];
  napi_value code, text, error, sys;
  const char *name = strerrorname_np(err);
  snprintf(msg, sizeof msg, "%s: %s", op, strerror(err));
  napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text);
  napi_create_error(env, code, text, &error);
  napi_create_string_utf8(env, op, NAPI_AUTO_LENGTH, &sys);
  napi_set_named_property(env, error, "syscall", sys);
  napi_throw(env, error);
  return NULL;
}

static size_t sl_args(napi_env env, napi_callback_info info, napi_value *argv, size_t n) {
  size_t argc = n;
  return napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok ? argc : 0;
}

static int sl_int(napi_env env, napi_value v) {
  int32_t x = -1;
  napi_get_value_int32(env, v, &x);
  return x;
}

static double sl_num(napi_env env, napi_value v) {
  double x = -1;
  napi_get_value_double(env, v, &x);
  return x;
}

static int sl_key(napi_env env, napi_value v, char *out) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, out, KEY_MAX, &len) != napi_ok || len == 0 || len >= KEY_MAX - 1) {
    napi_throw_range_error(env, "ERR_INVALID_ARG_VALUE", "sealed image key: 1..254 bytes of text");
    return 0;
  }
  return 1;
}

static napi_value sl_number(napi_env env, double d) {
  napi_value v;
  napi_create_double(env, d, &v);
  return v;
}

static napi_value sl_create(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (sl_args(env, info, argv, 1) < 1) return NULL;
  double len = sl_num(env, argv[0]);
  if (len < 0) { napi_throw_range_error(env, "ERR_INVALID_ARG_VALUE", "sealedCreate(bytes)"); return NULL; }
  int fd;
  const char *op = "";
  int r = thaw_sealed_create((size_t)len, &fd, &op);
  return r < 0 ? sl_throw(env, -r, op) : sl_number(env, fd);
}

static napi_value sl_seal(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (sl_args(env, info, argv, 1) < 1) return NULL;
  int r = thaw_sealed_seal(sl_int(env, argv[0]));
  return r < 0 ? sl_throw(env, -r, "fcntl(F_ADD_SEALS)") : NULL;
}

static napi_value sl_is_sealed(napi_env env, napi_callback_info info) {
  napi_value argv[1], out;
  if (sl_args(env, info, argv, 1) < 1) return NULL;
  int r = thaw_sealed_is_sealed(sl_int(env, argv[0]));
  napi_get_boolean(env, r == 1, &out);
  return out;
}

static napi_value sl_put(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  char key[KEY_MAX];
  if (sl_args(env, info, argv, 4) < 4 || !sl_key(env, argv[0], key)) return NULL;
  thaw_sealed_put(key, sl_int(env, argv[1]), (uint64_t)sl_num(env, argv[2]), (uint64_t)sl_num(env, argv[3]));
  return NULL;
}

static napi_value sl_get(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  char key[KEY_MAX];
  if (sl_args(env, info, argv, 1) < 1 || !sl_key(env, argv[0], key)) return NULL;
  return sl_number(env, thaw_sealed_get(key));
}

static napi_value sl_drop(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  char key[KEY_MAX];
  if (sl_args(env, info, argv, 1) < 1 || !sl_key(env, argv[0], key)) return NULL;
  thaw_sealed_drop(key);
  return NULL;
}

/* [daemon end, host end], both close-on-exec (spawn dup2s the host end into place). */
static napi_value sl_channel(napi_env env, napi_callback_info info) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return sl_throw(env, errno, "socketpair");
  napi_value arr;
  napi_create_array_with_length(env, 2, &arr);
  napi_set_element(env, arr, 0, sl_number(env, sv[0]));
  napi_set_element(env, arr, 1, sl_number(env, sv[1]));
  return arr;
}

static napi_value sl_send(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char key[KEY_MAX];
  if (sl_args(env, info, argv, 3) < 3 || !sl_key(env, argv[1], key)) return NULL;
  int r = thaw_sealed_send(sl_int(env, argv[0]), key, sl_int(env, argv[2]));
  return r < 0 ? sl_throw(env, -r, "sendmsg") : NULL;
}

/* Every pending message as [key, fd] pairs (fd -1 when none came). */
static napi_value sl_recv(napi_env env, napi_callback_info info) {
  napi_value argv[1], arr;
  if (sl_args(env, info, argv, 1) < 1) return NULL;
  int sock = sl_int(env, argv[0]);
  napi_create_array(env, &arr);
  for (uint32_t i = 0;; i++) {
    char key[KEY_MAX];
    int fd;
    int r = thaw_sealed_recv(sock, key, sizeof key, &fd);
    if (r == -EAGAIN || r == -EWOULDBLOCK) break;
    if (r < 0) return sl_throw(env, -r, "recvmsg");
    napi_value pair, k;
    napi_create_array_with_length(env, 2, &pair);
    napi_create_string_utf8(env, key, NAPI_AUTO_LENGTH, &k);
    napi_set_element(env, pair, 0, k);
    napi_set_element(env, pair, 1, sl_number(env, fd));
    napi_set_element(env, arr, i, pair);
  }
  return arr;
}

/* An ArrayBuffer and a Float64Array of [offset, length] pairs; 0 (a TypeError thrown) when not. */
static int sl_buffer_spans(napi_env env, napi_value buf, napi_value arr, uint8_t **base, size_t *len, const double **spans, size_t *pairs, const char *usage) {
  void *b, *s;
  size_t count;
  napi_typedarray_type t;
  bool is = false;
  if (napi_is_arraybuffer(env, buf, &is) != napi_ok || !is || napi_get_arraybuffer_info(env, buf, &b, len) != napi_ok ||
      napi_get_typedarray_info(env, arr, &t, &count, &s, NULL, NULL) != napi_ok || t != napi_float64_array || count % 2) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", usage);
    return 0;
  }
  *base = b;
  *spans = s;
  *pairs = count / 2;
  return 1;
}

static napi_value sl_copy(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  uint8_t *base;
  const double *s;
  size_t len, pairs;
  if (sl_args(env, info, argv, 4) < 4) return NULL;
  if (!sl_buffer_spans(env, argv[1], argv[2], &base, &len, &s, &pairs, "sealedCopy(fd, ArrayBuffer, Float64Array of [offset, length] pairs, threads)")) return NULL;
  for (size_t i = 0; i < 2 * pairs; i++) {
    if (s[i] < 0) { napi_throw_range_error(env, "ERR_INVALID_ARG_VALUE", "sealedCopy: negative span"); return NULL; }
  }
  const char *op = "";
  int r = thaw_sealed_copy(sl_int(env, argv[0]), base, len, s, pairs, sl_int(env, argv[3]), &op);
  return r < 0 ? sl_throw(env, -r, op) : NULL;
}

static napi_value sl_zero_dirty(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  uint8_t *base;
  const double *s;
  size_t len, pairs;
  if (sl_args(env, info, argv, 2) < 2) return NULL;
  if (!sl_buffer_spans(env, argv[0], argv[1], &base, &len, &s, &pairs, "zeroDirtyPages(ArrayBuffer, Float64Array of [offset, length] pairs)")) return NULL;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  for (size_t i = 0; i < 2 * pairs; i += 2) {
    if (s[i] < 0 || s[i + 1] < 0 || (uint64_t)s[i] % page || (uint64_t)s[i + 1] % page || s[i] + s[i + 1] > (double)len) {
      napi_throw_range_error(env, "ERR_INVALID_ARG_VALUE", "zeroDirtyPages: spans must be page aligned and inside the buffer");
      return NULL;
    }
  }
  return sl_number(env, (double)thaw_zero_dirty(base, s, pairs, page));
}

/* nonZeroSpans(buffer): Float64Array of [offset, length] pairs of its non-zero pages, or null
 * when they lie in more than 65536 runs. */
static napi_value sl_nonzero_spans(napi_env env, napi_callback_info info) {
  napi_value argv[1], ab, arr, nul;
  void *base, *data;
  size_t len;
  bool is = false;
  if (sl_args(env, info, argv, 1) < 1) return NULL;
  if (napi_is_arraybuffer(env, argv[0], &is) != napi_ok || !is || napi_get_arraybuffer_info(env, argv[0], &base, &len) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "nonZeroSpans(ArrayBuffer)");
    return NULL;
  }
  enum { CAP = 65536 };
  double *out = malloc(sizeof(double) * 2 * CAP);
  if (!out) return sl_throw(env, ENOMEM, "malloc");
  int64_t n = thaw_nonzero_spans(base, len, (size_t)sysconf(_SC_PAGESIZE), out, CAP);
  if (n < 0) { free(out); napi_get_null(env, &nul); return nul; }
  if (napi_create_arraybuffer(env, sizeof(double) * 2 * (size_t)n, &data, &ab) != napi_ok) { free(out); return NULL; }
  memcpy(data, out, sizeof(double) * 2 * (size_t)n);
  free(out);
  napi_create_typedarray(env, napi_float64_array, 2 * (size_t)n, ab, 0, &arr);
  return arr;
}

void thaw_sealed_register(void *env_, void *exports_) {
  napi_env env = env_;
  napi_value exports = exports_;
  napi_property_descriptor fns[] = {
    { "sealedCreate", NULL, sl_create, NULL, NULL, NULL, napi_enumerable, NULL },
    { "sealedSeal", NULL, sl_seal, NULL, NULL, NULL, napi_enumerable, NULL },
    { "sealedIsSealed", NULL, sl_is_sealed, NULL, NULL, NULL, napi_enumerable, NULL },
    { "sealedPut", NULL, sl_put, NULL, NULL, NULL, napi_enumerable, NULL },
    { "sealedGet", NULL, sl_get, NULL, NULL, NULL, napi_enumerable, NULL },
    { "sealedDrop", NULL, sl_drop, NULL, NULL, NULL, napi_enumerable, NULL },
    { "sealedChannel", NULL, sl_channel, NULL, NULL, NULL, napi_enumerable, NULL },
    { "sealedSend", NULL, sl_send, NULL, NULL, NULL, napi_enumerable, NULL },
    { "sealedRecv", NULL, sl_recv, NULL, NULL, NULL, napi_enumerable, NULL },
    { "sealedCopy", NULL, sl_copy, NULL, NULL, NULL, napi_enumerable, NULL },
    { "nonZeroSpans", NULL, sl_nonzero_spans, NULL, NULL, NULL, napi_enumerable, NULL },
    { "zeroDirtyPages", NULL, sl_zero_dirty, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);
}
