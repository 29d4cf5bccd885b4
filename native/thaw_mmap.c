/* Memory primitives for restore strategies: remapping ranges of a live Wasm memory, advice,
 * residency, O_DIRECT reads and fault counters. Callers (binding.c) check alignment and bounds. */
#define _GNU_SOURCE
#include "thaw.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* Replaces [addr, addr+len) with a mapping of the file. MAP_FIXED drops whatever was there;
 * the caller guarantees the range is its own (inside a Wasm memory's accessible bytes). */
int thaw_map_file(void *addr, size_t len, int fd, uint64_t file_off, int shared) {
  int flags = MAP_FIXED | (shared ? MAP_SHARED : MAP_PRIVATE);
  void *p = mmap(addr, len, PROT_READ | PROT_WRITE, flags, fd, (off_t)file_off);
  return p == MAP_FAILED ? -errno : 0;
}

/* Puts fresh zero-fill-on-demand pages over the range (a new VMA, so no uffd stays attached). */
int thaw_map_anon(void *addr, size_t len) {
  void *p = mmap(addr, len, PROT_READ | PROT_WRITE,
                 MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? -errno : 0;
}

int thaw_madvise_dontneed(void *addr, size_t len) {
  return madvise(addr, len, MADV_DONTNEED) == 0 ? 0 : -errno;
}

/* Asks for transparent huge pages over the range (THP "madvise" mode): one fault then installs
 * 2 MiB instead of 4 KiB, which is what makes fresh memory cheap where each fault is costly. */
int thaw_madvise_hugepage(void *addr, size_t len) {
  return madvise(addr, len, MADV_HUGEPAGE) == 0 ? 0 : -errno;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
/* Faults the whole range in, writable, in one call (Linux 5.14+); EINVAL on older kernels. */
int thaw_madvise_populate_write(void *addr, size_t len) {
  return madvise(addr, len, MADV_POPULATE_WRITE) == 0 ? 0 : -errno;
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
/* Maps the whole range in for reading in one call (Linux 5.14+): for a file mapping, page-table
 * entries for the (cached) file pages, with no copy and no user fault; EINVAL on older kernels. */
int thaw_madvise_populate_read(void *addr, size_t len) {
  return madvise(addr, len, MADV_POPULATE_READ) == 0 ? 0 : -errno;
}

/* Writes back the byte it reads at the start of each page: forces a write fault without
 * changing contents. volatile keeps the compiler from dropping the store. */
void thaw_touch_pages(void *addr, size_t len, size_t page) {
  volatile uint8_t *p = addr;
  for (size_t i = 0; i < len; i += page) p[i] = p[i];
}

/* Residency of a file's pages in the page cache, through a short-lived read-only mapping. */
int thaw_mincore(int fd, size_t len, uint8_t *vec, const char **op) {
  if (len == 0) return 0;
  void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return *op = "mmap", -errno;
  int rc = mincore(p, len, vec) == 0 ? 0 : -errno;
  if (rc) *op = "mincore";
  munmap(p, len);
  return rc;
}

/* Pages of [addr, addr+len) resident in this process (mincore on the range itself, in slices so
 * the vector stays small): what a guest's memory really costs, whatever its declared size. */
int64_t thaw_resident_pages(void *addr, size_t len, size_t page) {
  uint8_t vec[4096];
  int64_t pages = 0;
  for (size_t done = 0; done < len;) {
    size_t n = len - done < sizeof vec * page ? len - done : sizeof vec * page;
    if (mincore((uint8_t *)addr + done, n, vec) != 0) return -errno;
    for (size_t i = 0; i < (n + page - 1) / page; i++) pages += vec[i] & 1;
    done += n;
  }
  return pages;
}

int thaw_fadvise(int fd, uint64_t off, uint64_t len, int advice) {
  return -posix_fadvise(fd, (off_t)off, (off_t)len, advice); /* returns the error, not -1 */
}

/* Reads len bytes at off with O_DIRECT (bypassing the page cache) into a buffer aligned to
 * 4096, which satisfies every logical block size Linux uses. A short count means EOF. */
int64_t thaw_read_direct(const char *path, uint64_t off, size_t len, void **out, const char **op) {
  *out = NULL;
  int fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
  if (fd < 0) return *op = "open(O_DIRECT)", -errno;
  void *buf = NULL;
  int rc = posix_memalign(&buf, 4096, len ? len : 4096);
  if (rc) { close(fd); return *op = "posix_memalign", -rc; }
  size_t done = 0;
  while (done < len) {
    size_t want = len - done;
    ssize_t n = pread(fd, (uint8_t *)buf + done, want, (off_t)(off + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) { int e = errno; free(buf); close(fd); return *op = "pread", -e; }
    done += (size_t)n;
    if ((size_t)n < want) break; /* short O_DIRECT read: end of file */
  }
  close(fd);
  *out = buf;
  return (int64_t)done;
}

int thaw_fault_counts(uint64_t *minor, uint64_t *major) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return -errno;
  *minor = (uint64_t)ru.ru_minflt;
  *major = (uint64_t)ru.ru_majflt;
  return 0;
}

#define THAW_HUGE_BYTES ((size_t)2 << 20)

/* Maps len bytes (a page multiple) of fresh anonymous memory at a 2 MiB boundary, asks for huge
 * pages (a hint: without THP the pool is still pre-faulted, in 4 KiB pages) and faults it all in
 * with MADV_POPULATE_WRITE (or a write per page before Linux 5.14). This is the slow part, run
 * when a sandbox host is prepared, before any request. The old pool, if any, is unmapped. */
int thaw_pool_fill(thaw_pool *p, size_t len, const char **op) {
  thaw_pool_free(p);
  if (len == 0) return 0;
  size_t span = len + THAW_HUGE_BYTES;
  uint8_t *raw = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return *op = "mmap", -errno;
  uint8_t *base = (uint8_t *)(((uintptr_t)raw + THAW_HUGE_BYTES - 1) & ~(uintptr_t)(THAW_HUGE_BYTES - 1));
  if (base > raw) munmap(raw, (size_t)(base - raw));
  if (raw + span > base + len) munmap(base + len, (size_t)(raw + span - (base + len)));
  (void)madvise(base, len, MADV_HUGEPAGE);
  if (madvise(base, len, MADV_POPULATE_WRITE) != 0) {
    if (errno != EINVAL) { int e = errno; munmap(base, len); return *op = "madvise(MADV_POPULATE_WRITE)", -e; }
    thaw_touch_pages(base, len, (size_t)sysconf(_SC_PAGESIZE));
  }
  p->base = base;
  p->len = len;
  return 0;
}

/* Moves the pool's first len bytes to dst (page aligned; whatever was mapped there is dropped,
 * as with MAP_FIXED: the caller owns [dst, dst+len)). Runs of 2 MiB or more first skip pool
 * bytes until the pool and dst agree modulo 2 MiB, so whole huge pages move as page-table
 * entries instead of being split into 4 KiB ones. */
int thaw_pool_move(thaw_pool *p, void *dst, size_t len) {
  if (len >= THAW_HUGE_BYTES) {
    size_t skip = ((uintptr_t)dst - (uintptr_t)p->base) & (THAW_HUGE_BYTES - 1);
    if (skip && p->len >= skip + len) {
      munmap(p->base, skip);
      p->base += skip;
      p->len -= skip;
    }
  }
  if (len > p->len) return -ENOSPC;
  void *r = mremap(p->base, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
  if (r == MAP_FAILED) return -errno;
  p->base += len;
  p->len -= len;
  return 0;
}

void thaw_pool_free(thaw_pool *p) {
  if (p->len) munmap(p->base, p->len);
  p->base = NULL;
  p->len = 0;
}
