/* Parallel fill: reads stored pieces of a snapshot file into their places in guest memory,
 * checking each one's crc32 and decompressing the compressed ones straight into place, on
 * several threads at once (Sabre's parallel decompression; thaw's loading-set copy). While one
 * thread waits for the disk another decodes or copies, and the first touches of fresh guest
 * pages are spread over the cores. The calling thread works too and returns when all are done. */
#define _GNU_SOURCE
#include "thaw.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h> /* crc32: resolved from the Node binary, the same code as node:zlib's crc32 */

typedef struct {
  int fd;
  uint8_t *base;
  const thaw_fill_job *jobs;
  size_t count;
  uint8_t *scratch;
  size_t scratch_per_thread;
  atomic_size_t next;
  atomic_int stop;
  atomic_uint_fast64_t bytes_read;
  pthread_mutex_t lock; /* guards the first failure */
  thaw_fill_result *res;
} fill_ctx;

/* Records a failure unless an earlier job (in table order) already failed, and stops the rest. */
static void fail(fill_ctx *c, size_t job, int error) {
  pthread_mutex_lock(&c->lock);
  if (c->res->failed_job < 0 || (int64_t)job < c->res->failed_job) {
    c->res->failed_job = (int64_t)job;
    c->res->error = error;
  }
  pthread_mutex_unlock(&c->lock);
  atomic_store(&c->stop, 1);
}

/* pread until `len` bytes or end of file; returns bytes read or -errno. */
static int64_t read_full(int fd, uint8_t *dst, size_t len, uint64_t off) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = pread(fd, dst + got, len - got, (off_t)(off + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    if (n == 0) break;
    got += (size_t)n;
  }
  return (int64_t)got;
}

static int run_job(fill_ctx *c, const thaw_fill_job *j, uint8_t *scratch) {
  uint8_t *dst = c->base + j->dst_off;
  uint8_t *src = j->codec == THAW_FILL_RAW ? dst : scratch;
  if (j->codec == THAW_FILL_RAW ? j->src_len != j->dst_len : j->src_len > c->scratch_per_thread) return THAW_FILL_EINVAL;
  int64_t n = read_full(c->fd, src, j->src_len, j->src_off);
  if (n < 0) return (int)n;
  atomic_fetch_add(&c->bytes_read, (uint64_t)n);
  if ((uint64_t)n != j->src_len) return THAW_FILL_SHORT;
  if (j->check && (uint32_t)crc32_z(0, src, j->src_len) != j->crc) return THAW_FILL_CRC;
  if (j->codec == THAW_FILL_RAW) return 0;
  int64_t r = j->codec == THAW_FILL_LZ4 ? thaw_lz4_decode(src, j->src_len, dst, j->dst_len)
                                        : thaw_zstd_decode(src, j->src_len, dst, j->dst_len);
  return r >= 0 && (uint64_t)r == j->dst_len ? 0 : THAW_FILL_DECODE;
}

typedef struct { fill_ctx *c; uint8_t *scratch; } worker_arg;

static void *work(void *arg) {
  worker_arg *w = arg;
  fill_ctx *c = w->c;
  for (;;) {
    if (atomic_load(&c->stop)) break;
    size_t i = atomic_fetch_add(&c->next, 1);
    if (i >= c->count) break;
    int e = run_job(c, &c->jobs[i], w->scratch);
    if (e) fail(c, i, e);
  }
  return NULL;
}

int thaw_fill(int fd, uint8_t *base, const thaw_fill_job *jobs, size_t count, uint8_t *scratch,
              size_t scratch_per_thread, int threads, thaw_fill_result *res) {
  if (threads < 1) threads = 1;
  if ((size_t)threads > count) threads = count ? (int)count : 1;
  if (threads > THAW_FILL_MAX_THREADS) threads = THAW_FILL_MAX_THREADS;
  *res = (thaw_fill_result){ .failed_job = -1 };
  fill_ctx c = { .fd = fd, .base = base, .jobs = jobs, .count = count, .scratch = scratch,
                 .scratch_per_thread = scratch_per_thread, .res = res };
  atomic_init(&c.next, 0);
  atomic_init(&c.stop, 0);
  atomic_init(&c.bytes_read, 0);
  pthread_mutex_init(&c.lock, NULL);
  pthread_t tid[THAW_FILL_MAX_THREADS];
  worker_arg args[THAW_FILL_MAX_THREADS];
  int started = 0;
  for (int t = 1; t < threads; t++) {
    args[t] = (worker_arg){ &c, scratch ? scratch + (size_t)t * scratch_per_thread : NULL };
    if (pthread_create(&tid[t], NULL, work, &args[t]) != 0) break; /* fewer threads: still correct */
    started = t;
  }
  args[0] = (worker_arg){ &c, scratch };
  work(&args[0]);
  for (int t = 1; t <= started; t++) pthread_join(tid[t], NULL);
  pthread_mutex_destroy(&c.lock);
  res->threads = started + 1;
  res->bytes_read = atomic_load(&c.bytes_read);
  return res->failed_job < 0 ? 0 : -1;
}
