/* The userfaultfd page server: anonymous memory over a guest range, registered for MISSING
 * faults, served by a dedicated pthread from a snapshot file (UFFDIO_COPY, UFFDIO_ZEROPAGE for
 * holes), with optional in-order fault recording and eager prefetch of runs. No JS runs here.
 * Verified serving (opts.crcs): pages are served a whole checksummed piece (a page, with the
 * snapshot's per-page checksums) at a time, from a buffer whose crc32 was checked, so the guest
 * only ever sees bytes that were checked (not re-read from the file after the check); a fault
 * may bring a few neighbouring pieces with it (fault_bytes), each checked. Measured on this
 * host: crc32 runs at about 2 GB/s (a 4 KiB page: ~2 us, against a ~40 us fault round trip). */
#define _GNU_SOURCE
#include "thaw.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h> /* crc32: resolved from the Node binary, the same code as node:zlib's crc32 */

#define THAW_UFFD_CHUNK_DEFAULT (64 * 1024)
/* Faults in one readahead region after which a verified server installs the whole region. */
#define DENSE_FAULTS 16

/* Guest range | anonymous VMA registered with `uffd` | served page by page or chunk by chunk.
 * Fields after `thread` are written only by the server thread until it is joined. */
struct thaw_uffd {
  uint8_t *base;          /* guest range start, page aligned; owned by the caller's Wasm memory */
  size_t len, page, pages;
  int uffd, stop_fd, src_fd; /* all three owned here, closed by thaw_uffd_stop */
  const uint8_t *src_map; size_t src_map_len; /* read-only mapping of the source, or NULL */
  uint64_t src_off, src_pages, src_end; /* src_end: file size at start */
  int32_t *map;           /* owned copy of the page map, or NULL for identity */
  uint8_t *bounce;        /* pread buffer of `chunk` bytes (use_pread only) */
  size_t chunk;
  thaw_run *prefetch; size_t prefetch_count;
  int record, user_mode_only;
  const uint32_t *crcs;   /* owned copy, or NULL: serve page by page unchecked */
  size_t vbytes, vcount;  /* verified piece size (page multiple) and count */
  uint8_t *vdone;         /* one flag per piece: installed from a checked buffer */
  uint8_t *vbuf;          /* vbuf_bytes: the pieces being checked */
  size_t vbuf_bytes;      /* a multiple of vbytes: max(vbytes, chunk) */
  size_t bad_piece;       /* the piece whose checksum failed (-EBADMSG) */
  size_t fault_pages;     /* most pages a fault installs (readahead window cap), >= 1 */
  size_t ra_next, ra_window; /* readahead: where the last fault's window ended, its size */
  uint16_t *region_faults; /* faults per region of fault_pages (fault_pages > 1 only), or NULL */
  pthread_t thread;
  pthread_mutex_t mu; pthread_cond_t cv; int prefetch_done; /* guarded by mu */
  thaw_uffd_stats st;
  size_t rec_cap;
};

/* A server that cannot serve must not let the guest continue: once the uffd is closed the
 * kernel would hand out zero pages where the snapshot had data. Abort the (sandbox) process. */
static void die(const char *op, int err) {
  fprintf(stderr, "thaw: userfaultfd page server failed in %s: %s; aborting so the sandbox "
                  "never reads pages the snapshot did not give it\n", op, strerror(err));
  abort();
}

/* A checked piece whose bytes do not match: same policy as die(), and the message names the
 * error code the daemon reports for it. */
static void die_corrupt(const thaw_uffd *u) {
  size_t piece = u->bad_piece;
  fprintf(stderr, "thaw: THAW_SNAPSHOT_CORRUPT: userfaultfd page server: guest bytes %zu..%zu "
                  "do not match the snapshot's checksum; aborting so the sandbox never reads them\n",
          piece * u->vbytes, (piece + 1) * u->vbytes);
  abort();
}

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Source page of guest page g, or -1 for a hole (mapped hole or past the end of the file). */
static int64_t src_page(const thaw_uffd *u, size_t g) {
  int64_t s = u->map ? u->map[g] : (int64_t)g;
  return s >= 0 && (uint64_t)s < u->src_pages ? s : -1;
}

/* Installs one ioctl's worth of pages at guest page g. Returns pages newly installed, skipping
 * pages that already exist: EEXIST means a racing fault or the prefetcher got there first, so
 * the page holds the snapshot's bytes and counts as served. EAGAIN means the copy was cut
 * short (the kernel reports progress in .copy/.zeropage) and is retried from there. */
static int64_t install(thaw_uffd *u, size_t g, size_t n, int64_t s, int dontwake, const uint8_t *from) {
  size_t done = 0; int64_t installed = 0;
  while (done < n * u->page) {
    uint64_t dst = (uint64_t)(uintptr_t)(u->base + g * u->page + done);
    uint64_t want = n * u->page - done;
    int64_t got;
    if (s < 0) {
      struct uffdio_zeropage z = { { dst, want }, dontwake ? UFFDIO_ZEROPAGE_MODE_DONTWAKE : 0, 0 };
      got = ioctl(u->uffd, UFFDIO_ZEROPAGE, &z) == 0 ? (int64_t)want : z.zeropage ? z.zeropage : -errno;
    } else {
      const uint8_t *src;
      if (from) {
        src = from + done; /* a checked buffer holding guest pages [g, g+n) */
      } else if (u->src_map) {
        src = u->src_map + (uint64_t)s * u->page + done;
      } else {
        uint64_t at = u->src_off + (uint64_t)s * u->page + done;
        ssize_t r = pread(u->src_fd, u->bounce, want, (off_t)at);
        if (r < 0) return -errno;
        /* Only the tail of the last page may lie past the end of the file it had at start; a
         * shorter read means the snapshot shrank under us, which must not become zeros. */
        uint64_t expect = u->src_end - at < want ? u->src_end - at : want;
        if ((uint64_t)r < expect) return -EIO;
        memset(u->bounce + r, 0, want - (size_t)r);
        src = u->bounce;
      }
      struct uffdio_copy c = { dst, (uint64_t)(uintptr_t)src, want,
                               dontwake ? UFFDIO_COPY_MODE_DONTWAKE : 0, 0 };
      got = ioctl(u->uffd, UFFDIO_COPY, &c) == 0 ? (int64_t)want : c.copy ? c.copy : -errno;
    }
    if (got > 0) { done += (size_t)got; installed += got / (int64_t)u->page; continue; }
    if (got == -EEXIST) { done += u->page; continue; }
    /* ENOENT: the page is no longer in the registered range because this process mapped other
     * memory over it (memory scaling's release maps anonymous memory over pages a guest gave
     * back, src/memory/scaling/discard.ts); it reads as that memory, so it is not ours to serve. */
    if (got == -ENOENT) { done += u->page; continue; }
    if (got != -EAGAIN) return got;
  }
  return installed;
}

/* Installs guest pages [g, g+n) in chunks of contiguous source pages or holes. */
static int64_t install_range(thaw_uffd *u, size_t g, size_t n, int dontwake,
                             uint64_t *copied, uint64_t *zeroed) {
  size_t end = g + n, max = u->chunk / u->page;
  while (g < end) {
    int64_t s = src_page(u, g);
    size_t k = 1;
    while (g + k < end && k < max &&
           (s < 0 ? src_page(u, g + k) < 0 : src_page(u, g + k) == s + (int64_t)k)) k++;
    int64_t r = install(u, g, k, s, dontwake, NULL);
    if (r < 0) return r;
    *(s < 0 ? zeroed : copied) += (uint64_t)r;
    g += k;
  }
  return 0;
}

/* Reads source pages [s, s+k) into dst: from the mapping, or by pread where only the tail of the
 * last page may lie past the end the file had at start (that tail reads as zero). */
static int read_src(thaw_uffd *u, int64_t s, size_t k, uint8_t *dst) {
  size_t want = k * u->page;
  if (u->src_map) { memcpy(dst, u->src_map + (uint64_t)s * u->page, want); return 0; }
  uint64_t at = u->src_off + (uint64_t)s * u->page;
  size_t got = 0;
  while (got < want) {
    ssize_t r = pread(u->src_fd, dst + got, want - got, (off_t)(at + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -errno;
    if (r == 0) break;
    got += (size_t)r;
  }
  uint64_t expect = u->src_end - at < want ? u->src_end - at : want;
  if (got < expect) return -EIO;
  memset(dst + got, 0, want - got);
  return 0;
}

static void record(thaw_uffd *u, uint64_t off);

/* Verified serving: installs the pieces holding guest pages [g, g+n) that are not in yet, each
 * read as the guest must see it (holes as zeros) and checked against its crc32 before any byte
 * of it is installed. Consecutive missing pieces go in batches of up to vbuf_bytes: one read and
 * one UFFDIO_COPY per run of source pages, however small the pieces. Returns 0, -EBADMSG on a
 * checksum mismatch (u->bad_piece names the piece; nothing of its batch is installed), or -errno. */
static int64_t serve_pieces(thaw_uffd *u, size_t g, size_t n, int dontwake, uint64_t *copied, uint64_t *zeroed) {
  size_t per = u->vbytes / u->page, batch = u->vbuf_bytes / u->vbytes;
  size_t p = g / per, pend = (g + n + per - 1) / per;
  while (p < pend) {
    if (u->vdone[p]) { p++; continue; }
    size_t q = p + 1;
    while (q < pend && q - p < batch && !u->vdone[q]) q++;
    size_t g0 = p * per, n_pages = (q * per < u->pages ? q * per : u->pages) - g0;
    for (size_t i = 0; i < n_pages;) {
      int64_t s = src_page(u, g0 + i);
      size_t k = 1;
      while (i + k < n_pages && (s < 0 ? src_page(u, g0 + i + k) < 0 : src_page(u, g0 + i + k) == s + (int64_t)k)) k++;
      if (s < 0) memset(u->vbuf + i * u->page, 0, k * u->page);
      else { int rc = read_src(u, s, k, u->vbuf + i * u->page); if (rc) return rc; }
      i += k;
    }
    for (size_t k = p; k < q; k++) {
      size_t at = (k - p) * u->vbytes, len = n_pages * u->page - at < u->vbytes ? n_pages * u->page - at : u->vbytes;
      if ((uint32_t)crc32_z(0, u->vbuf + at, len) != u->crcs[k]) { u->bad_piece = k; return -EBADMSG; }
    }
    for (size_t i = 0; i < n_pages;) {
      int hole = src_page(u, g0 + i) < 0;
      size_t k = 1;
      while (i + k < n_pages && (src_page(u, g0 + i + k) < 0) == hole) k++;
      int64_t r = install(u, g0 + i, k, hole ? -1 : 0, dontwake, hole ? NULL : u->vbuf + i * u->page);
      if (r < 0) return r;
      *(hole ? zeroed : copied) += (uint64_t)r;
      i += k;
    }
    memset(u->vdone + p, 1, q - p);
    /* The whole pieces are in now: later touches inside them never fault, so a recording logs
     * all of them (what a replay must install for the guest to run without faults). */
    if (u->record) for (size_t i = 0; i < n_pages; i++) record(u, (uint64_t)(g0 + i) * u->page);
    p = q;
  }
  return 0;
}

/* Installs guest pages [g, g+n): through their checked pieces when verifying, else directly. */
static int64_t serve_range(thaw_uffd *u, size_t g, size_t n, int dontwake, uint64_t *copied, uint64_t *zeroed) {
  if (!u->crcs) return install_range(u, g, n, dontwake, copied, zeroed);
  return serve_pieces(u, g, n, dontwake, copied, zeroed);
}

static void record(thaw_uffd *u, uint64_t off) {
  if (u->st.recorded_count == u->rec_cap) {
    size_t cap = u->rec_cap ? u->rec_cap * 2 : 1024;
    uint64_t *p = realloc(u->st.recorded, cap * sizeof *p);
    if (!p) die("realloc(recording)", ENOMEM);
    u->st.recorded = p; u->rec_cap = cap;
  }
  u->st.recorded[u->st.recorded_count++] = off;
}

/* Serves every fault message queued on the uffd, one page each. */
static void drain(thaw_uffd *u) {
  struct uffd_msg msgs[64];
  for (;;) {
    ssize_t n = read(u->uffd, msgs, sizeof msgs);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n < 0) die("read(userfaultfd)", errno);
    for (size_t i = 0; i < (size_t)n / sizeof msgs[0]; i++) {
      if (msgs[i].event != UFFD_EVENT_PAGEFAULT) die("read(userfaultfd): unexpected event", EPROTO);
      uint64_t off = (msgs[i].arg.pagefault.address & ~(uint64_t)(u->page - 1)) - (uintptr_t)u->base;
      size_t g = (size_t)(off / u->page);
      uint64_t copied = 0, zeroed = 0;
      u->st.faults++;
      /* Readahead, as the kernel's for files: a fault where the previous window ended doubles
       * the window (up to fault_pages), any other fault starts again at one page. Scattered
       * access is served (and checked) page by page, sequential access in growing windows. */
      u->ra_window = g == u->ra_next && u->ra_window ? (u->ra_window * 2 < u->fault_pages ? u->ra_window * 2 : u->fault_pages) : 1;
      size_t g0 = g, gn = u->pages - g < u->ra_window ? u->pages - g : u->ra_window;
      u->ra_next = g0 + gn;
      /* Dense scattered access: the DENSE_FAULTS-th fault in a region installs the rest of it
       * (what per-page faults there would cost past that point exceeds one read of the region:
       * a fault round trip is ~40 us here, a checked 1 MiB ~1 ms). */
      if (u->region_faults) {
        size_t r = g / u->fault_pages;
        if (u->region_faults[r] < UINT16_MAX && ++u->region_faults[r] == DENSE_FAULTS) {
          g0 = r * u->fault_pages;
          gn = u->pages - g0 < u->fault_pages ? u->pages - g0 : u->fault_pages;
        }
      }
      /* A page already in (prefetched without waking) leaves the faulting thread asleep. */
      int was_in = u->crcs && u->vdone[g / (u->vbytes / u->page)];
      int64_t r = serve_range(u, g0, gn, 0, &copied, &zeroed);
      if (r == -EBADMSG) die_corrupt(u);
      if (r < 0) die(src_page(u, g) < 0 ? "ioctl(UFFDIO_ZEROPAGE)" : "ioctl(UFFDIO_COPY)", (int)-r);
      u->st.copied_pages += copied; u->st.zero_pages += zeroed;
      if (copied + zeroed == 0 || was_in) { /* already there (prefetched): the faulting thread still sleeps */
        struct uffdio_range w = { (uintptr_t)u->base + off, u->page };
        if (ioctl(u->uffd, UFFDIO_WAKE, &w) != 0) die("ioctl(UFFDIO_WAKE)", errno);
      } else if (u->record && !u->crcs) {
        record(u, off); /* verified serving records in serve_pieces */
      }
    }
  }
}

/* Installs the prefetch runs without waking anyone (DONTWAKE), serving faults that arrive
 * meanwhile between chunks, then wakes the whole prefetched span once. */
static void prefetch(thaw_uffd *u) {
  uint64_t t0 = now_ns(), lo = UINT64_MAX, hi = 0, zeroed = 0;
  for (size_t i = 0; i < u->prefetch_count; i++) {
    thaw_run r = u->prefetch[i];
    for (uint64_t at = r.off; at < r.off + r.len; at += u->chunk) {
      uint64_t n = r.off + r.len - at < u->chunk ? r.off + r.len - at : u->chunk;
      int64_t rc = serve_range(u, at / u->page, n / u->page, 1, &u->st.prefetched_pages, &zeroed);
      if (rc == -EBADMSG) die_corrupt(u);
      if (rc < 0) die("ioctl(UFFDIO_COPY) in prefetch", (int)-rc);
      struct pollfd p = { u->uffd, POLLIN, 0 };
      if (poll(&p, 1, 0) > 0) drain(u);
    }
    if (r.len) {
      /* Verified serving installs whole pieces: wake all of them. */
      uint64_t a = u->crcs ? r.off / u->vbytes * u->vbytes : r.off;
      uint64_t b = u->crcs ? (r.off + r.len + u->vbytes - 1) / u->vbytes * u->vbytes : r.off + r.len;
      if (b > u->len) b = u->len;
      lo = a < lo ? a : lo; hi = b > hi ? b : hi;
    }
  }
  u->st.prefetched_pages += zeroed;
  if (hi > lo) {
    struct uffdio_range w = { (uintptr_t)u->base + lo, hi - lo };
    if (ioctl(u->uffd, UFFDIO_WAKE, &w) != 0) die("ioctl(UFFDIO_WAKE)", errno);
  }
  u->st.prefetch_ns = now_ns() - t0;
}

static void *serve(void *arg) {
  thaw_uffd *u = arg;
  if (u->prefetch_count) prefetch(u);
  pthread_mutex_lock(&u->mu);
  u->prefetch_done = 1;
  pthread_cond_broadcast(&u->cv);
  pthread_mutex_unlock(&u->mu);
  for (;;) {
    struct pollfd p[2] = { { u->uffd, POLLIN, 0 }, { u->stop_fd, POLLIN, 0 } };
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      die("poll", errno);
    }
    if (p[0].revents & (POLLERR | POLLHUP | POLLNVAL)) die("poll(userfaultfd)", EPIPE);
    if (p[0].revents & POLLIN) drain(u);
    if (p[1].revents) return NULL;
  }
}

/* The device fd a jailed host was given (process-wide, like the fd itself); -1 = none. */
static int uffd_device = -1;

void thaw_uffd_use_device(int fd) { uffd_device = fd; }

/* Root (or CAP_SYS_PTRACE) may handle kernel-mode faults too; otherwise /dev/userfaultfd (the
 * jailer's fd, else the path if its permissions allow), else user-mode-only faults (syscalls
 * touching unserved pages get EFAULT). */
int thaw_uffd_open(int *user_mode_only) {
  int flags = O_CLOEXEC | O_NONBLOCK;
  *user_mode_only = 0;
  int fd = (int)syscall(SYS_userfaultfd, flags);
  if (fd >= 0 || errno != EPERM) return fd >= 0 ? fd : -errno;
  if (uffd_device >= 0) {
    fd = ioctl(uffd_device, USERFAULTFD_IOC_NEW, flags);
    if (fd >= 0) return fd;
  }
  int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
  if (dev >= 0) {
    fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
    close(dev);
    if (fd >= 0) return fd;
  }
  fd = (int)syscall(SYS_userfaultfd, flags | UFFD_USER_MODE_ONLY);
  if (fd >= 0) *user_mode_only = 1;
  return fd >= 0 ? fd : -EPERM;
}

static void release(thaw_uffd *u) {
  if (u->uffd >= 0) close(u->uffd);
  if (u->stop_fd >= 0) close(u->stop_fd);
  if (u->src_fd >= 0) close(u->src_fd);
  if (u->src_map) munmap((void *)u->src_map, u->src_map_len);
  pthread_mutex_destroy(&u->mu);
  pthread_cond_destroy(&u->cv);
  free(u->map); free(u->bounce); free(u->prefetch);
  free((void *)u->crcs); free(u->vdone); free(u->vbuf); free(u->region_faults); free(u);
}

#define FAIL(name, err) do { *op = (name); int e_ = (err); release(u); return e_; } while (0)

int thaw_uffd_start(void *addr, size_t len, const thaw_uffd_opts *o, thaw_uffd **out, const char **op) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE), chunk = o->chunk ? o->chunk : THAW_UFFD_CHUNK_DEFAULT;
  if (chunk % page) return *op = "chunk size", -EINVAL;
  thaw_uffd *u = calloc(1, sizeof *u);
  if (!u) return *op = "calloc", -ENOMEM;
  *u = (thaw_uffd){ .base = addr, .len = len, .page = page, .pages = len / page, .uffd = -1,
                    .stop_fd = -1, .src_fd = -1, .src_off = o->src_off, .chunk = chunk,
                    .record = o->record, .fault_pages = 1 };
  pthread_mutex_init(&u->mu, NULL);
  pthread_cond_init(&u->cv, NULL);

  struct stat sb;
  if (fstat(o->src_fd, &sb) != 0) FAIL("fstat(source)", -errno);
  uint64_t avail = (uint64_t)sb.st_size > o->src_off ? (uint64_t)sb.st_size - o->src_off : 0;
  u->src_pages = (avail + page - 1) / page;
  u->src_end = o->src_off + avail;
  if (o->map) {
    if (!(u->map = malloc(u->pages * sizeof *u->map))) FAIL("malloc(page map)", -ENOMEM);
    memcpy(u->map, o->map, u->pages * sizeof *u->map);
    for (size_t g = 0; g < u->pages; g++)
      if (u->map[g] < -1 || (u->map[g] >= 0 && (uint64_t)u->map[g] >= u->src_pages))
        FAIL("page map (entry past the end of the source file)", -EINVAL);
  }
  for (size_t i = 0; i < o->prefetch_count; i++)
    if (o->prefetch[i].off % page || o->prefetch[i].len % page || o->prefetch[i].off > len ||
        o->prefetch[i].len > len - o->prefetch[i].off) FAIL("prefetch run", -EINVAL);
  if (o->prefetch_count) {
    if (!(u->prefetch = malloc(o->prefetch_count * sizeof *u->prefetch))) FAIL("malloc", -ENOMEM);
    memcpy(u->prefetch, o->prefetch, o->prefetch_count * sizeof *u->prefetch);
    u->prefetch_count = o->prefetch_count;
  }
  if (o->crcs) {
    if (!o->verify_bytes || o->verify_bytes % page) FAIL("verify piece size", -EINVAL);
    u->vbytes = o->verify_bytes;
    u->vcount = (len + u->vbytes - 1) / u->vbytes;
    if (o->crc_count != u->vcount) FAIL("checksums (one per verified piece of the range)", -EINVAL);
    uint32_t *c = malloc(u->vcount * sizeof *c);
    if (!c) FAIL("malloc(checksums)", -ENOMEM);
    memcpy(c, o->crcs, u->vcount * sizeof *c);
    u->crcs = c;
    if (o->fault_bytes % page || o->fault_bytes > len) FAIL("verify fault-around bytes", -EINVAL);
    if (o->fault_bytes) u->fault_pages = o->fault_bytes / page;
    size_t want = chunk > o->fault_bytes ? chunk : o->fault_bytes;
    u->vbuf_bytes = want > u->vbytes ? want / u->vbytes * u->vbytes : u->vbytes;
    if (!(u->vdone = calloc(u->vcount, 1)) || !(u->vbuf = malloc(u->vbuf_bytes))) FAIL("malloc(verify buffer)", -ENOMEM);
    if (u->fault_pages > 1 && !(u->region_faults = calloc((u->pages + u->fault_pages - 1) / u->fault_pages, sizeof *u->region_faults)))
      FAIL("malloc(region fault counts)", -ENOMEM);
  }
  if ((u->src_fd = fcntl(o->src_fd, F_DUPFD_CLOEXEC, 0)) < 0) FAIL("dup(source)", -errno);
  if (o->use_pread) {
    if (!(u->bounce = malloc(chunk))) FAIL("malloc(bounce buffer)", -ENOMEM);
  } else if (avail) {
    /* mmap needs a page-aligned file offset, which src_off is (checked by the binding). */
    void *m = mmap(NULL, avail, PROT_READ, MAP_SHARED, u->src_fd, (off_t)o->src_off);
    if (m == MAP_FAILED) FAIL("mmap(source)", -errno);
    u->src_map = m; u->src_map_len = avail;
  }

  int fd = thaw_uffd_open(&u->user_mode_only);
  if (fd < 0) FAIL("userfaultfd", fd);
  u->uffd = fd;
  u->st.user_mode_only = u->user_mode_only;
  struct uffdio_api api = { .api = UFFD_API, .features = 0 };
  if (ioctl(u->uffd, UFFDIO_API, &api) != 0) FAIL("ioctl(UFFDIO_API)", -errno);
  /* Fresh anonymous pages: every first touch is a MISSING fault. The old contents are gone. */
  int rc = thaw_map_anon(addr, len);
  if (rc) FAIL("mmap(MAP_ANONYMOUS)", rc);
  struct uffdio_register reg = { .range = { (uintptr_t)addr, len }, .mode = UFFDIO_REGISTER_MODE_MISSING };
  if (ioctl(u->uffd, UFFDIO_REGISTER, &reg) != 0) FAIL("ioctl(UFFDIO_REGISTER)", -errno);
  uint64_t need = (1ull << _UFFDIO_COPY) | (1ull << _UFFDIO_ZEROPAGE) | (1ull << _UFFDIO_WAKE);
  if ((reg.ioctls & need) != need) FAIL("ioctl(UFFDIO_REGISTER): COPY/ZEROPAGE/WAKE", -EOPNOTSUPP);
  if ((u->stop_fd = eventfd(0, EFD_CLOEXEC)) < 0) FAIL("eventfd", -errno);

  /* The server thread takes no signals: Node's handlers stay on Node's threads. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  rc = pthread_create(&u->thread, NULL, serve, u);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc) FAIL("pthread_create", -rc);
  *out = u;
  return 0;
}

int thaw_uffd_wait_prefetch(thaw_uffd *u) {
  pthread_mutex_lock(&u->mu);
  while (!u->prefetch_done) pthread_cond_wait(&u->cv, &u->mu);
  pthread_mutex_unlock(&u->mu);
  return 0;
}

/* Joins the server, then either installs every page still missing (fill) or makes the range
 * PROT_NONE (fence; also when fill fails) before closing the uffd: closing it unregisters the
 * range, after which an unserved page would silently read as zero. A later map_file/map_anon
 * lifts the fence. Always releases `u`; only a failed fill returns an error. */
int thaw_uffd_stop(thaw_uffd *u, int fill, thaw_uffd_stats *st, const char **op) {
  uint64_t one = 1;
  if (write(u->stop_fd, &one, sizeof one) != sizeof one) die("write(eventfd)", errno);
  int rc = pthread_join(u->thread, NULL);
  if (rc) die("pthread_join", rc);
  uint64_t copied = 0, zeroed = 0;
  u->record = 0; /* the fill below is not the guest's working set */
  int64_t r = fill ? serve_range(u, 0, u->pages, 0, &copied, &zeroed) : 0;
  if ((!fill || r < 0) && mprotect(u->base, u->len, PROT_NONE) != 0) die("mprotect(fence)", errno);
  *st = u->st;
  u->st.recorded = NULL;
  release(u);
  if (r == -EBADMSG) *op = "checksum of a snapshot piece in fill (range fenced)";
  else if (r < 0) *op = "ioctl(UFFDIO_COPY) in fill (range fenced)";
  return (int)r;
}
