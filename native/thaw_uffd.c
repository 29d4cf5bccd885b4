/* The userfaultfd page server: anonymous memory over a guest range, registered for MISSING
 * faults, served by a dedicated pthread from a snapshot file (UFFDIO_COPY, UFFDIO_ZEROPAGE for
 * holes), with optional in-order fault recording and eager prefetch of runs. No JS runs here. */
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

#define THAW_UFFD_CHUNK_DEFAULT (64 * 1024)

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
static int64_t install(thaw_uffd *u, size_t g, size_t n, int64_t s, int dontwake) {
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
      if (u->src_map) {
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
    int64_t r = install(u, g, k, s, dontwake);
    if (r < 0) return r;
    *(s < 0 ? zeroed : copied) += (uint64_t)r;
    g += k;
  }
  return 0;
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
      int64_t r = install_range(u, g, 1, 0, &copied, &zeroed);
      if (r < 0) die(src_page(u, g) < 0 ? "ioctl(UFFDIO_ZEROPAGE)" : "ioctl(UFFDIO_COPY)", (int)-r);
      u->st.copied_pages += copied; u->st.zero_pages += zeroed;
      if (copied + zeroed == 0) { /* already there (prefetched): the faulting thread still sleeps */
        struct uffdio_range w = { (uintptr_t)u->base + off, u->page };
        if (ioctl(u->uffd, UFFDIO_WAKE, &w) != 0) die("ioctl(UFFDIO_WAKE)", errno);
      } else if (u->record) {
        record(u, off);
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
      int64_t rc = install_range(u, at / u->page, n / u->page, 1, &u->st.prefetched_pages, &zeroed);
      if (rc < 0) die("ioctl(UFFDIO_COPY) in prefetch", (int)-rc);
      struct pollfd p = { u->uffd, POLLIN, 0 };
      if (poll(&p, 1, 0) > 0) drain(u);
    }
    if (r.len) { lo = r.off < lo ? r.off : lo; hi = r.off + r.len > hi ? r.off + r.len : hi; }
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
static int open_uffd(int *user_mode_only) {
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
  free(u->map); free(u->bounce); free(u->prefetch); free(u);
}

#define FAIL(name, err) do { *op = (name); int e_ = (err); release(u); return e_; } while (0)

int thaw_uffd_start(void *addr, size_t len, const thaw_uffd_opts *o, thaw_uffd **out, const char **op) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE), chunk = o->chunk ? o->chunk : THAW_UFFD_CHUNK_DEFAULT;
  if (chunk % page) return *op = "chunk size", -EINVAL;
  thaw_uffd *u = calloc(1, sizeof *u);
  if (!u) return *op = "calloc", -ENOMEM;
  *u = (thaw_uffd){ .base = addr, .len = len, .page = page, .pages = len / page, .uffd = -1,
                    .stop_fd = -1, .src_fd = -1, .src_off = o->src_off, .chunk = chunk,
                    .record = o->record };
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
  if ((u->src_fd = fcntl(o->src_fd, F_DUPFD_CLOEXEC, 0)) < 0) FAIL("dup(source)", -errno);
  if (o->use_pread) {
    if (!(u->bounce = malloc(chunk))) FAIL("malloc(bounce buffer)", -ENOMEM);
  } else if (avail) {
    /* mmap needs a page-aligned file offset, which src_off is (checked by the binding). */
    void *m = mmap(NULL, avail, PROT_READ, MAP_SHARED, u->src_fd, (off_t)o->src_off);
    if (m == MAP_FAILED) FAIL("mmap(source)", -errno);
    u->src_map = m; u->src_map_len = avail;
  }

  int fd = open_uffd(&u->user_mode_only);
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
  int64_t r = fill ? install_range(u, 0, u->pages, 0, &copied, &zeroed) : 0;
  if ((!fill || r < 0) && mprotect(u->base, u->len, PROT_NONE) != 0) die("mprotect(fence)", errno);
  *st = u->st;
  u->st.recorded = NULL;
  release(u);
  if (r < 0) *op = "ioctl(UFFDIO_COPY) in fill (range fenced)";
  return (int)r;
}
