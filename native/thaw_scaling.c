/* Memory scaling (src/memory/scaling/): page-by-page discards for the balloon model and
 * MADV_WILLNEED for the population benchmark. */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include "thaw.h"

/* madvise(MADV_WILLNEED): on anonymous memory a hint only (swap readahead); measured, not relied on. */
int thaw_madvise_willneed(void *addr, size_t len) {
  return madvise(addr, len, MADV_WILLNEED) == 0 ? 0 : -errno;
}

/* Gives back `n` single pages of `page` bytes at base + offs[i], one system call per page as a
 * balloon device does per page it takes: madvise(MADV_DONTNEED), or with `anon` fresh anonymous
 * memory mapped over the page (memory that may be a private file mapping). Offsets are checked
 * by the caller. Returns 0 or -errno of the first failure. */
int thaw_discard_pages(uint8_t *base, const double *offs, size_t n, size_t page, int anon) {
  for (size_t i = 0; i < n; i++) {
    void *p = base + (size_t)offs[i];
    if (anon) {
      int rc = thaw_map_anon(p, page);
      if (rc) return rc;
    } else if (madvise(p, page, MADV_DONTNEED) != 0) {
      return -errno;
    }
  }
  return 0;
}
