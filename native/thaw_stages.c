/* Page life stages (FaaSMem's Pucket without MGLRU): a guest range registered with a userfaultfd
 * in write-protect *async* mode, so a write to a protected page is resolved by the kernel itself
 * (no message, no thread: it just clears the page's uffd-wp bit), and PAGEMAP_SCAN on
 * /proc/self/pagemap lists the pages written since the last scan and write-protects them again in
 * the same call. Debian's 6.1 headers predate both (Linux 6.7), so their constants are defined
 * here, copied from include/uapi/linux/{userfaultfd,fs}.h of Linux 6.7. */
#define _GNU_SOURCE
#include "thaw.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#ifndef PAGEMAP_SCAN
#define PAGE_IS_WRITTEN (1 << 1)
#define PAGE_IS_FILE (1 << 2)
#define PAGE_IS_PRESENT (1 << 3)
#define PM_SCAN_WP_MATCHING (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
struct page_region { uint64_t start, end, categories; };
struct pm_scan_arg {
  uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
  uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif

/* /proc/self/pagemap, opened once per process (a jailed host reads /proc through Landlock). */
static int pagemap_fd = -1;

static int pagemap(void) {
  if (pagemap_fd < 0) {
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    pagemap_fd = fd;
  }
  return pagemap_fd;
}

int thaw_stages_protect(int uffd, void *addr, size_t len) {
  struct uffdio_writeprotect wp = { { (uintptr_t)addr, len }, UFFDIO_WRITEPROTECT_MODE_WP };
  return ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) == 0 ? 0 : -errno;
}

/* Sets bitmap[i] = 1 for each page i of [addr, addr+len) in `category` (PAGE_IS_WRITTEN: written
 * since last protected; PAGE_IS_FILE: still the file's page). With reset, written pages are
 * write-protected again in the same walk. Returns the pages found, or -errno. */
static int64_t scan(void *addr, size_t len, size_t page, uint64_t category, int reset, uint8_t *bitmap) {
  int fd = pagemap();
  if (fd < 0) return fd;
  struct page_region vec[256];
  uint64_t start = (uintptr_t)addr, end = start + len;
  int64_t found = 0;
  while (start < end) {
    struct pm_scan_arg a = { .size = sizeof a, .start = start, .end = end, .vec = (uintptr_t)vec,
                             .vec_len = 256, .category_mask = category, .return_mask = category };
    if (reset) a.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
    int n = ioctl(fd, PAGEMAP_SCAN, &a);
    if (n < 0) return -errno;
    for (int i = 0; i < n; i++) {
      for (uint64_t p = vec[i].start; p < vec[i].end; p += page) bitmap[(p - (uintptr_t)addr) / page] = 1;
      found += (int64_t)((vec[i].end - vec[i].start) / page);
    }
    if (a.walk_end <= start) return -EIO; /* no progress: never loop forever */
    start = a.walk_end;
  }
  return found;
}

int64_t thaw_stages_scan(void *addr, size_t len, size_t page, int reset, uint8_t *bitmap) {
  return scan(addr, len, page, PAGE_IS_WRITTEN, reset, bitmap);
}

int64_t thaw_stages_file_pages(void *addr, size_t len, size_t page, uint8_t *bitmap) {
  return scan(addr, len, page, PAGE_IS_FILE, 0, bitmap);
}

int64_t thaw_stages_present_pages(void *addr, size_t len, size_t page, uint8_t *bitmap) {
  return scan(addr, len, page, PAGE_IS_PRESENT, 0, bitmap);
}
