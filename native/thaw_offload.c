/* Offloading a live guest's cold pages (FaaSMem's tiers, without swap or RDMA): one userfaultfd per
 * guest range, registered for MISSING faults and for write-protect in async mode (page life
 * stages, thaw_stages.c), and a server thread that puts an offloaded page back on its first touch.
 * An offloaded page is stored in one of three tiers, then dropped (MADV_DONTNEED):
 *   FILE    a page byte-identical to the snapshot image's page at the same offset: nothing is
 *           stored, the fault reads the image file again (page cache or disk);
 *   LZ4     compressed in this process's memory (malloc'd lz4 block per page);
 *   REMOTE  sent to a memory server over a stream socket (the daemon's relay to its TCP port).
 * A page that cannot be fetched back (the memory server died, a corrupt block) is never served
 * wrong: the whole range becomes PROT_NONE, the faulting thread is woken into a trap, and the
 * handle says why (thaw_om_stats.failed). Where the range is not anonymous memory (a restore
 * mapped a file there) only write-protect is registered: stages work, and the FILE tier may drop
 * pages still mapped from that file (the kernel reads them back itself); nothing else can go.
 * MISSING is registered only at the first offload, so a sandbox that never offloads pays only for
 * the write-protect faults (resolved in the kernel, ~1.3 us per page per stage). */
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
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <time.h>
#include <unistd.h>

#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif

enum { ST_NONE = 0 }; /* else the page's tier: THAW_OM_FILE, THAW_OM_LZ4, THAW_OM_REMOTE */

struct thaw_om {
  uint8_t *base;
  size_t len, page, pages;
  int uffd, stop_fd, mode, file_fd, sock_fd;
  uint8_t *state;            /* per page: ST_NONE or the tier holding it */
  void **blob;               /* LZ4: per page malloc'd block */
  uint32_t *blob_len;
  uint8_t *fbuf, *cbuf;      /* server thread's page buffer; offload's compress buffer */
  uint8_t *rbuf;             /* server thread's buffer for a fault's run (the page and its readahead) */
  size_t ra_next, ra_pages;  /* readahead: the page after the last fault's run, and that run's window */
  pthread_t thread;
  int started;
  pthread_mutex_t mu;        /* guards everything below and the tables above */
  pthread_mutex_t sock_mu;   /* one request/reply exchange on sock_fd at a time (taken after mu, never before) */
  thaw_om_stats st;
};

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* ---- the remote tier's wire format (src/memory/remote-server.ts) ----
 * A 16-byte header {op, 3 zero bytes, count: u32 LE, page: u64 LE} names the run of `count`
 * pages from `page`. 'P' + count pages is answered 'K'; 'G' is answered 'K' + count pages, or
 * 'E' when the server lacks one. One header and one reply per run: the server and the daemon's
 * relay do per-request work, not per-page work, and an injected latency is paid per round trip. */

#define REMOTE_RUN_MAX 256 /* pages per request (the server accepts up to 1024) */

static int io_all(int fd, void *buf, size_t n, int writing) {
  uint8_t *p = buf;
  while (n) {
    ssize_t r = writing ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -errno;
    if (r == 0) return -ECONNRESET;
    p += r; n -= (size_t)r;
  }
  return 0;
}

static int remote_header(int fd, char op, uint64_t g, uint32_t count) {
  uint8_t h[16] = { (uint8_t)op };
  memcpy(h + 4, &count, 4);
  memcpy(h + 8, &g, 8);
  return io_all(fd, h, 16, 1);
}

/* Fetches remote pages [g, g+n) into dst, one request per REMOTE_RUN_MAX pages (one round trip
 * through the relay each). Returns 0 or -errno (-ENOENT: the server lacks a page). */
static int remote_get(thaw_om *m, size_t g, size_t n, uint8_t *dst) {
  int rc = 0;
  pthread_mutex_lock(&m->sock_mu);
  for (size_t done = 0; done < n && !rc;) {
    size_t k = n - done < REMOTE_RUN_MAX ? n - done : REMOTE_RUN_MAX;
    uint8_t status;
    rc = remote_header(m->sock_fd, 'G', g + done, (uint32_t)k);
    if (!rc) rc = io_all(m->sock_fd, &status, 1, 0);
    if (!rc && status != 'K') rc = -ENOENT;
    if (!rc) rc = io_all(m->sock_fd, dst + done * m->page, k * m->page, 0);
    done += k;
  }
  pthread_mutex_unlock(&m->sock_mu);
  return rc;
}

/* ---- fetching and serving ---- */

/* Reads the stored bytes of page g into dst. Returns 0 or -errno (-EBADMSG: a bad lz4 block,
 * -ENOENT: the server does not hold the page). */
static int fetch(thaw_om *m, size_t g, uint8_t *dst) {
  switch (m->state[g]) {
  case THAW_OM_FILE: {
    ssize_t r = pread(m->file_fd, dst, m->page, (off_t)(g * m->page));
    if (r < 0) return -errno;
    memset(dst + r, 0, m->page - (size_t)r); /* past the end of the image: zeros, as compared */
    return 0;
  }
  case THAW_OM_LZ4:
    return thaw_lz4_decode(m->blob[g], m->blob_len[g], dst, m->page) == (int64_t)m->page ? 0 : -EBADMSG;
  case THAW_OM_REMOTE:
    return remote_get(m, g, 1, dst);
  }
  return -EINVAL;
}

static void forget(thaw_om *m, size_t g) {
  if (m->state[g] == THAW_OM_LZ4) { free(m->blob[g]); m->blob[g] = NULL; m->st.stored_bytes -= m->blob_len[g]; }
  m->state[g] = ST_NONE;
}

/* Fetching failed: no byte of this range may be read any more. */
static void fail(thaw_om *m, size_t g, int err) {
  if (!m->st.failed) {
    snprintf(m->st.why, sizeof m->st.why, "fetching offloaded page %zu from the %s tier failed: %s", g,
             m->state[g] == THAW_OM_REMOTE ? "remote" : m->state[g] == THAW_OM_LZ4 ? "compressed" : "file", strerror(-err));
    fprintf(stderr, "thaw: THAW_MEMORY_SERVER_LOST: %s; guest memory fenced\n", m->st.why);
  }
  m->st.failed = 1;
  mprotect(m->base, m->len, PROT_NONE);
}

/* Pages come back in runs: one read of the tier (one pread for the file tier, one request to the
 * memory server for the remote tier) and one UFFDIO_COPY per run of consecutive held pages. A
 * fault brings back the faulting page and the held pages after it in the same tier, READAHEAD
 * of them in all; a fault at the page right after the previous fault's run (a guest reading on)
 * doubles that window, up to PREFETCH_BATCH, as the kernel's own readahead does (each fault costs
 * a round trip through this thread, and through the memory server for the remote tier). A
 * prefetch (below) brings back runs of up to PREFETCH_BATCH. */
#define READAHEAD 32
#define PREFETCH_BATCH 256

/* Reads held pages [g, g+n), all in one tier, into dst. Returns 0 or -errno. */
static int fetch_run(thaw_om *m, size_t g, size_t n, uint8_t *dst) {
  if (m->state[g] == THAW_OM_REMOTE) return remote_get(m, g, n, dst);
  if (m->state[g] == THAW_OM_FILE) {
    size_t want = n * m->page, got = 0;
    while (got < want) {
      ssize_t r = pread(m->file_fd, dst + got, want - got, (off_t)(g * m->page + got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return -errno;
      if (r == 0) break;
      got += (size_t)r;
    }
    memset(dst + got, 0, want - got); /* past the end of the image: zeros, as compared */
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    int rc = fetch(m, g + i, dst + i * m->page);
    if (rc) return rc;
  }
  return 0;
}

/* Installs src as pages [g, g+n), skipping any already there. wp: write-protected, so the next
 * scan sees only what the guest really writes (a faulting page goes in unprotected: a page a
 * request faulted back counts as the request's, read or written). Returns 0 or -errno. */
static int install_run(thaw_om *m, size_t g, size_t n, const uint8_t *src, int wp) {
  size_t done = 0, step = n; /* step: pages per copy; one at a time once a run crosses mappings */
  while (done < n) {
    size_t k = n - done < step ? n - done : step;
    struct uffdio_copy c = { (uintptr_t)(m->base + (g + done) * m->page), (uintptr_t)(src + done * m->page),
                             k * m->page, wp ? UFFDIO_COPY_MODE_WP : 0, 0 };
    if (ioctl(m->uffd, UFFDIO_COPY, &c) == 0) done += k;
    else if (errno == EAGAIN && c.copy > 0) done += (size_t)c.copy / m->page; /* partial: go on after it */
    else if (errno == EEXIST) done++;                                  /* this page is there already */
    else if (errno == ENOENT && k > 1) step = 1; /* the run spans two mappings (a grown memory): page by page */
    else return -errno;
  }
  return 0;
}

/* Remote pages [g, g+n) for a fault, installed as they arrive: page g first (unprotected, and the
 * faulting guest thread runs on from there), then the rest READAHEAD pages at a time,
 * write-protected, while the server's reply is still coming in. Returns 0 or -errno. */
static int remote_fault_run(thaw_om *m, size_t g, size_t n) {
  uint8_t status;
  pthread_mutex_lock(&m->sock_mu);
  int rc = remote_header(m->sock_fd, 'G', g, (uint32_t)n);
  if (!rc) rc = io_all(m->sock_fd, &status, 1, 0);
  if (!rc && status != 'K') rc = -ENOENT;
  for (size_t done = 0; done < n && !rc;) {
    size_t k = done == 0 ? 1 : n - done < READAHEAD ? n - done : READAHEAD;
    rc = io_all(m->sock_fd, m->rbuf + done * m->page, k * m->page, 0);
    if (!rc) rc = install_run(m, g + done, k, m->rbuf + done * m->page, done > 0);
    done += k;
  }
  pthread_mutex_unlock(&m->sock_mu);
  return rc;
}

/* Puts page g in place (its stored bytes and the held pages after it, or a zero page when nothing
 * was offloaded there). */
static void serve_page(thaw_om *m, size_t g) {
  uint64_t dst = (uintptr_t)(m->base + g * m->page), t0 = now_ns();
  int rc = 0;
  if (m->st.failed) rc = -EIO;
  else if (m->state[g] == ST_NONE) {
    /* EEXIST: a run put it in while this fault waited (the guest is woken by that copy). */
    struct uffdio_zeropage z = { { dst, m->page }, 0, 0 };
    if (ioctl(m->uffd, UFFDIO_ZEROPAGE, &z) == 0) m->st.zero_pages++;
    else if (errno != EEXIST) rc = -errno;
  } else {
    size_t want = g == m->ra_next && m->ra_pages * 2 > READAHEAD ? m->ra_pages * 2 : READAHEAD, n = 1;
    if (want > PREFETCH_BATCH) want = PREFETCH_BATCH;
    while (n < want && g + n < m->pages && m->state[g + n] == m->state[g]) n++;
    if (m->state[g] == THAW_OM_REMOTE) rc = remote_fault_run(m, g, n);
    else if ((rc = fetch_run(m, g, n, m->rbuf)) == 0 && (rc = install_run(m, g, 1, m->rbuf, 0)) == 0 && n > 1)
      rc = install_run(m, g + 1, n - 1, m->rbuf + m->page, 1);
    if (!rc) {
      for (size_t i = 0; i < n; i++) forget(m, g + i);
      m->st.faulted_pages += n;
      m->st.faults++;
      m->st.fault_ns += now_ns() - t0;
      m->ra_next = g + n;
      m->ra_pages = want;
    }
  }
  if (rc) {
    fail(m, g, rc);
    struct uffdio_range w = { dst, m->page };
    ioctl(m->uffd, UFFDIO_WAKE, &w); /* into PROT_NONE: a trap, never zeros */
  }
}

static void *serve(void *arg) {
  thaw_om *m = arg;
  struct uffd_msg msgs[32];
  for (;;) {
    struct pollfd p[2] = { { m->uffd, POLLIN, 0 }, { m->stop_fd, POLLIN, 0 } };
    if (poll(p, 2, -1) < 0) { if (errno == EINTR) continue; abort(); }
    if (p[1].revents) return NULL;
    ssize_t n = read(m->uffd, msgs, sizeof msgs);
    if (n < 0) { if (errno == EINTR || errno == EAGAIN) continue; abort(); }
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < (size_t)n / sizeof msgs[0]; i++) {
      if (msgs[i].event != UFFD_EVENT_PAGEFAULT) continue;
      serve_page(m, (size_t)((msgs[i].arg.pagefault.address - (uintptr_t)m->base) / m->page));
    }
    pthread_mutex_unlock(&m->mu);
  }
}

/* ---- lifecycle ---- */

static int grow_tables(thaw_om *m, size_t pages) {
  uint8_t *s = realloc(m->state, pages);
  if (!s) return -ENOMEM;
  m->state = s;
  void **b = realloc(m->blob, pages * sizeof *b);
  if (!b) return -ENOMEM;
  m->blob = b;
  uint32_t *l = realloc(m->blob_len, pages * sizeof *l);
  if (!l) return -ENOMEM;
  m->blob_len = l;
  memset(m->state + m->pages, 0, pages - m->pages);
  memset(m->blob + m->pages, 0, (pages - m->pages) * sizeof *b);
  return 0;
}

/* Registers [base+from, base+to) and write-protects it. */
static int register_range(thaw_om *m, size_t from, size_t to, const char **op) {
  struct uffdio_register reg = { { (uintptr_t)m->base + from, to - from }, UFFDIO_REGISTER_MODE_WP, 0 };
  if (m->mode == THAW_OM_MODE_FULL) reg.mode |= UFFDIO_REGISTER_MODE_MISSING;
  if (ioctl(m->uffd, UFFDIO_REGISTER, &reg) != 0) return *op = "ioctl(UFFDIO_REGISTER)", -errno;
  int rc = thaw_stages_protect(m->uffd, m->base + from, to - from);
  return rc ? (*op = "ioctl(UFFDIO_WRITEPROTECT)", rc) : 0;
}

static void release(thaw_om *m) {
  if (m->uffd >= 0) close(m->uffd);
  if (m->stop_fd >= 0) close(m->stop_fd);
  if (m->file_fd >= 0) close(m->file_fd);
  if (m->sock_fd >= 0) close(m->sock_fd);
  for (size_t g = 0; g < m->pages && m->blob; g++) free(m->blob[g]);
  free(m->state); free(m->blob); free(m->blob_len); free(m->fbuf); free(m->cbuf); free(m->rbuf);
  pthread_mutex_destroy(&m->mu);
  pthread_mutex_destroy(&m->sock_mu);
  free(m);
}

#define FAIL(name, err) do { *op = (name); int e_ = (err); release(m); return e_; } while (0)

int thaw_om_start(void *addr, size_t len, thaw_om **out, const char **op) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  thaw_om *m = calloc(1, sizeof *m);
  if (!m) return *op = "calloc", -ENOMEM;
  *m = (thaw_om){ .base = addr, .page = page, .uffd = -1, .stop_fd = -1, .file_fd = -1, .sock_fd = -1 };
  pthread_mutex_init(&m->mu, NULL);
  pthread_mutex_init(&m->sock_mu, NULL);
  if (!(m->fbuf = malloc(page)) || !(m->cbuf = malloc((size_t)thaw_lz4_bound(page))) || !(m->rbuf = malloc(PREFETCH_BATCH * page)))
    FAIL("malloc", -ENOMEM);
  int umo = 0;
  int fd = thaw_uffd_open(&umo);
  if (fd < 0) FAIL("userfaultfd", fd);
  m->uffd = fd;
  struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED };
  if (ioctl(m->uffd, UFFDIO_API, &api) != 0) FAIL("ioctl(UFFDIO_API) with WP_ASYNC (Linux 6.7+)", -errno);
  if (grow_tables(m, len / page)) FAIL("malloc(page tables)", -ENOMEM);
  m->pages = len / page; m->len = len;
  /* Write-protect only until the first offload (thaw_om_enable_missing): until then a first touch
   * of a fresh page costs no round trip through the server thread. */
  m->mode = THAW_OM_MODE_WP;
  int rc = register_range(m, 0, len, op);
  if (rc) { const char *o = *op; release(m); *op = o; return rc; }
  if ((m->stop_fd = eventfd(0, EFD_CLOEXEC)) < 0) FAIL("eventfd", -errno);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  rc = pthread_create(&m->thread, NULL, serve, m);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc) FAIL("pthread_create", -rc);
  m->started = 1;
  m->st.mode = m->mode;
  *out = m;
  return 0;
}

int thaw_om_extend(thaw_om *m, size_t len, const char **op) {
  if (len <= m->len) return 0;
  pthread_mutex_lock(&m->mu);
  int rc = grow_tables(m, len / m->page);
  if (rc) { pthread_mutex_unlock(&m->mu); return *op = "malloc(page tables)", rc; }
  size_t from = m->len;
  m->pages = len / m->page; m->len = len;
  pthread_mutex_unlock(&m->mu);
  return register_range(m, from, len, op);
}

/* True when a file (a regular file, tmpfs or memfd) is mapped anywhere in the range. MISSING
 * faults would not cover it: a dropped page of a private tmpfs mapping reads the file's page
 * back without a fault, so only the file tier may drop pages there. */
static int maps_a_file(const thaw_om *m) {
  FILE *f = fopen("/proc/self/maps", "re");
  if (!f) return 1; /* cannot tell: assume the worst */
  char line[512];
  uint64_t lo = (uintptr_t)m->base, hi = lo + m->len;
  int found = 0;
  while (!found && fgets(line, sizeof line, f)) {
    unsigned long a, b, ino;
    if (sscanf(line, "%lx-%lx %*s %*x %*x:%*x %lu", &a, &b, &ino) == 3 && a < hi && b > lo && ino != 0) found = 1;
  }
  fclose(f);
  return found;
}

int thaw_om_enable_missing(thaw_om *m, const char **op) {
  if (m->mode == THAW_OM_MODE_FULL) return 0;
  if (maps_a_file(m)) return *op = "a file is mapped in the guest range", -EINVAL;
  /* Re-registering with the same uffd adds MISSING; the pages' write-protect bits stay. */
  struct uffdio_register reg = { { (uintptr_t)m->base, m->len }, UFFDIO_REGISTER_MODE_WP | UFFDIO_REGISTER_MODE_MISSING, 0 };
  if (ioctl(m->uffd, UFFDIO_REGISTER, &reg) != 0) return *op = "ioctl(UFFDIO_REGISTER) for MISSING faults", -errno;
  pthread_mutex_lock(&m->mu);
  m->mode = m->st.mode = THAW_OM_MODE_FULL;
  pthread_mutex_unlock(&m->mu);
  return 0;
}

int thaw_om_set_file(thaw_om *m, int fd) {
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) return -errno;
  pthread_mutex_lock(&m->mu);
  if (m->file_fd >= 0) close(m->file_fd);
  m->file_fd = d;
  pthread_mutex_unlock(&m->mu);
  return 0;
}

/* The memory server's greeting on a new connection (src/memory/remote-server.ts): 'T' carrying a
 * TCP socket by SCM_RIGHTS, already connected to the server inside its own network namespace
 * (the pages then flow over that socket, with no relay), or 'R' (the Unix socket itself is
 * relayed to the server's TCP port). Returns the fd to use (fd itself for 'R') or -errno. */
static int remote_greeting(int fd, int timeout_ms) {
  char byte = 0;
  union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } ctl;
  struct iovec iov = { &byte, 1 };
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf };
  ssize_t r;
  do r = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC); while (r < 0 && errno == EINTR);
  if (r < 0) return -errno;
  if (r == 0) return -ECONNRESET;
  int passed = -1;
  struct cmsghdr *h = CMSG_FIRSTHDR(&msg);
  if (h && h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS && h->cmsg_len == CMSG_LEN(sizeof(int))) memcpy(&passed, CMSG_DATA(h), sizeof passed);
  if (byte == 'R' && passed < 0) return fd;
  if (byte != 'T' || passed < 0 || (msg.msg_flags & MSG_CTRUNC)) { if (passed >= 0) close(passed); return -EPROTO; }
  /* The server's copy was non-blocking (Node's); this side waits with timeouts instead. */
  int fl = fcntl(passed, F_GETFL), one = 1;
  struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
  if (fl < 0 || fcntl(passed, F_SETFL, fl & ~O_NONBLOCK) != 0 || setsockopt(passed, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
      setsockopt(passed, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 || setsockopt(passed, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) {
    int e = errno; close(passed); return -e;
  }
  close(fd);
  return passed;
}

int thaw_om_connect(thaw_om *m, const char *path, int timeout_ms, const char **op) {
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  if (strlen(path) >= sizeof sa.sun_path) return *op = "socket path", -ENAMETOOLONG;
  strcpy(sa.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return *op = "socket", -errno;
  struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) { int e = errno; close(fd); return *op = "connect(memory server socket)", -e; }
  int use = remote_greeting(fd, timeout_ms);
  if (use < 0) { close(fd); return *op = "recvmsg(memory server greeting)", use; }
  pthread_mutex_lock(&m->mu);
  if (m->sock_fd >= 0) close(m->sock_fd);
  m->sock_fd = use;
  pthread_mutex_unlock(&m->mu);
  return 0;
}

int thaw_om_pass_socket(int unix_fd, int tcp_fd) {
  char byte = 'T';
  union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } ctl;
  memset(&ctl, 0, sizeof ctl);
  struct iovec iov = { &byte, 1 };
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf };
  struct cmsghdr *h = CMSG_FIRSTHDR(&msg);
  h->cmsg_level = SOL_SOCKET; h->cmsg_type = SCM_RIGHTS; h->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(h), &tcp_fd, sizeof tcp_fd);
  ssize_t r;
  do r = sendmsg(unix_fd, &msg, MSG_NOSIGNAL); while (r < 0 && errno == EINTR);
  return r == 1 ? 0 : r < 0 ? -errno : -EAGAIN;
}

size_t thaw_om_pages(thaw_om *m) { return m->pages; }

int64_t thaw_om_scan(thaw_om *m, int what, uint8_t *bitmap) {
  if (what == 2) return thaw_stages_present_pages(m->base, m->len, m->page, bitmap);
  return thaw_stages_scan(m->base, m->len, m->page, what == 1, bitmap);
}

/* Where a file is mapped (write-protect only), a dropped page comes back without a fault: the
 * kernel maps the file's page again. Such a page is held only while it is not mapped (pagemap's
 * present bit; mincore would report the file's page cache instead). Call with mu. */
static void resync_file_mapped(thaw_om *m) {
  if (m->mode == THAW_OM_MODE_FULL) return;
  uint8_t *present = calloc(m->pages, 1);
  if (present && thaw_stages_present_pages(m->base, m->len, m->page, present) >= 0)
    for (size_t g = 0; g < m->pages; g++) if (m->state[g] != ST_NONE && present[g]) m->state[g] = ST_NONE;
  free(present);
}

/* Drops pages [g, g+n) once they are stored. */
static int drop(thaw_om *m, size_t g, size_t n) {
  return madvise(m->base + g * m->page, n * m->page, MADV_DONTNEED) == 0 ? 0 : -errno;
}

int64_t thaw_om_offload(thaw_om *m, int tier, const uint32_t *pages, size_t n, const char **op) {
  if (m->st.failed) return *op = m->st.why, -EIO;
  if (tier == THAW_OM_FILE && m->file_fd < 0) return *op = "file tier: no snapshot image (the sandbox was not restored)", -ENOENT;
  if (tier == THAW_OM_REMOTE && m->sock_fd < 0) return *op = "remote tier: not connected to a memory server", -ENOTCONN;
  if (m->mode != THAW_OM_MODE_FULL) {
    int64_t e = thaw_om_enable_missing(m, op);
    if (e && e != -EINVAL) return e; /* EINVAL: a restore mapped a file here: write-protect only */
  }
  if (m->mode != THAW_OM_MODE_FULL && tier != THAW_OM_FILE)
    return *op = "only the file tier can offload a guest range that a restore mapped from a file", -EOPNOTSUPP;
  uint8_t *vec = malloc(m->pages), *filemap = NULL;
  uint32_t *take = malloc((n ? n : 1) * sizeof *take);
  int64_t rc = 0;
  size_t k = 0;
  int sock_locked = 0;
  if (!vec || !take) { rc = -ENOMEM; *op = "malloc"; goto out; }
  if (mincore(m->base, m->len, vec) != 0) { rc = -errno; *op = "mincore"; goto out; }
  pthread_mutex_lock(&m->mu);
  resync_file_mapped(m);
  pthread_mutex_unlock(&m->mu);
  if (m->mode != THAW_OM_MODE_FULL) {
    if (!(filemap = calloc(m->pages, 1))) { rc = -ENOMEM; *op = "malloc"; goto out; }
    int64_t r = thaw_stages_file_pages(m->base, m->len, m->page, filemap);
    if (r < 0) { rc = r; *op = "ioctl(PAGEMAP_SCAN)"; goto out; }
  }
  /* The whole batch of puts and their acks is one exchange: no fetch may interleave with it. */
  if (tier == THAW_OM_REMOTE) { pthread_mutex_lock(&m->sock_mu); sock_locked = 1; }
  for (size_t i = 0; i < n; i++) {
    size_t g = pages[i];
    if (g >= m->pages || !(vec[g] & 1) || m->state[g] != ST_NONE) continue;
    uint8_t *p = m->base + g * m->page;
    if (tier == THAW_OM_FILE) {
      if (filemap && !filemap[g]) continue;
      ssize_t r = pread(m->file_fd, m->cbuf, m->page, (off_t)(g * m->page));
      if (r < 0) { rc = -errno; *op = "pread(snapshot image)"; goto out; }
      memset(m->cbuf + r, 0, m->page - (size_t)r);
      if (memcmp(m->cbuf, p, m->page) != 0) continue; /* written since the snapshot: not clean */
    } else if (tier == THAW_OM_LZ4) {
      int64_t c = thaw_lz4_encode(p, m->page, m->cbuf, (size_t)thaw_lz4_bound(m->page), 1);
      void *b = c > 0 ? malloc((size_t)c) : NULL;
      if (!b) { rc = c < 0 ? c : -ENOMEM; *op = "lz4 encode"; goto out; }
      memcpy(b, m->cbuf, (size_t)c);
      pthread_mutex_lock(&m->mu);
      m->blob[g] = b; m->blob_len[g] = (uint32_t)c; m->st.stored_bytes += (uint64_t)c;
      pthread_mutex_unlock(&m->mu);
    } /* REMOTE: sent below, in runs */
    take[k++] = (uint32_t)g;
  }
  if (tier == THAW_OM_REMOTE) {
    /* One request per run of consecutive pages (up to REMOTE_RUN_MAX), straight from guest memory;
     * the acks (one per request) are read after all runs are sent. */
    size_t requests = 0;
    for (size_t i = 0; i < k && !rc; requests++) {
      size_t j = i + 1;
      while (j < k && j - i < REMOTE_RUN_MAX && take[j] == take[j - 1] + 1) j++;
      rc = remote_header(m->sock_fd, 'P', take[i], (uint32_t)(j - i));
      if (!rc) rc = io_all(m->sock_fd, m->base + (size_t)take[i] * m->page, (j - i) * m->page, 1);
      i = j;
    }
    if (rc) { *op = "send(pages to the memory server)"; goto out; }
    for (size_t i = 0; i < requests && !rc; i++) {
      uint8_t ack;
      rc = io_all(m->sock_fd, &ack, 1, 0);
      if (!rc && ack != 'K') rc = -EREMOTEIO;
    }
    pthread_mutex_unlock(&m->sock_mu);
    sock_locked = 0;
    if (rc) { *op = "recv(ack from the memory server)"; goto out; }
  }
  pthread_mutex_lock(&m->mu);
  for (size_t i = 0; i < k; i++) m->state[take[i]] = (uint8_t)tier;
  m->st.offloaded_pages += k;
  pthread_mutex_unlock(&m->mu);
  for (size_t i = 0; i < k;) {
    size_t j = i + 1;
    while (j < k && take[j] == take[j - 1] + 1) j++;
    if ((rc = drop(m, take[i], j - i))) { *op = "madvise(MADV_DONTNEED)"; goto out; }
    i = j;
  }
  rc = (int64_t)k;
out:
  if (sock_locked) pthread_mutex_unlock(&m->sock_mu);
  if (rc < 0 && tier == THAW_OM_LZ4) { /* blocks stored for pages not yet marked */
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < k; i++) if (m->state[take[i]] == ST_NONE && m->blob[take[i]]) {
      free(m->blob[take[i]]); m->blob[take[i]] = NULL; m->st.stored_bytes -= m->blob_len[take[i]];
    }
    pthread_mutex_unlock(&m->mu);
  }
  free(vec); free(take); free(filemap);
  return rc;
}

/* ---- prefetch: held pages brought back in bulk before a request needs them ---- */

int64_t thaw_om_prefetch(thaw_om *m, const uint32_t *pages, size_t n, const char **op) {
  if (m->st.failed) return *op = m->st.why, -EIO;
  uint8_t *buf = malloc(PREFETCH_BATCH * m->page);
  if (!buf) return *op = "malloc", -ENOMEM;
  uint64_t t0 = now_ns(), moved = 0;
  int rc = 0;
  for (size_t i = 0; i < n && !rc;) {
    pthread_mutex_lock(&m->mu); /* per batch: the fault thread may serve in between */
    size_t g = pages[i], k = 1;
    if (g >= m->pages || m->state[g] == ST_NONE) { pthread_mutex_unlock(&m->mu); i++; continue; }
    while (k < PREFETCH_BATCH && i + k < n && pages[i + k] == g + k && g + k < m->pages && m->state[g + k] == m->state[g]) k++;
    if (m->mode != THAW_OM_MODE_FULL) {
      /* A file mapped here (file tier only): the kernel reads the pages back from the file itself. */
      if (madvise(m->base + g * m->page, k * m->page, MADV_POPULATE_READ) != 0) rc = -errno, *op = "madvise(MADV_POPULATE_READ)";
    } else if ((rc = fetch_run(m, g, k, buf)) != 0) {
      fail(m, g, rc);
      *op = m->st.why;
    } else if ((rc = install_run(m, g, k, buf, 1)) != 0) {
      *op = "ioctl(UFFDIO_COPY) of a prefetched run";
    }
    if (!rc) {
      for (size_t j = 0; j < k; j++) forget(m, g + j);
      m->st.prefetched_pages += k;
      moved += k;
    }
    pthread_mutex_unlock(&m->mu);
    i += k;
  }
  pthread_mutex_lock(&m->mu);
  m->st.prefetch_ns += now_ns() - t0;
  pthread_mutex_unlock(&m->mu);
  free(buf);
  return rc ? rc : (int64_t)moved;
}

int64_t thaw_swapped_pages(void *addr, size_t len, size_t page) {
  /* /proc/self/pagemap: one u64 per page, bit 62 = swapped (readable by the process itself). */
  int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  uint64_t e[512];
  size_t first = (uintptr_t)addr / page, pages = len / page;
  int64_t swapped = 0;
  for (size_t done = 0; done < pages;) {
    size_t k = pages - done < 512 ? pages - done : 512;
    ssize_t r = pread(fd, e, k * 8, (off_t)((first + done) * 8));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0 || r % 8) { int err = r < 0 ? errno : EIO; close(fd); return -err; }
    for (size_t i = 0; i < (size_t)r / 8; i++) swapped += (e[i] >> 62) & 1;
    done += (size_t)r / 8;
  }
  close(fd);
  return swapped;
}

void thaw_om_get_stats(thaw_om *m, thaw_om_stats *st) {
  pthread_mutex_lock(&m->mu);
  resync_file_mapped(m);
  *st = m->st;
  st->held_pages = 0;
  for (size_t g = 0; g < m->pages; g++) st->held_pages += m->state[g] != ST_NONE;
  pthread_mutex_unlock(&m->mu);
}

int thaw_om_stop(thaw_om *m, int fill) {
  uint64_t one = 1;
  int rc = 0;
  if (m->started) {
    if (write(m->stop_fd, &one, sizeof one) != sizeof one) abort();
    pthread_join(m->thread, NULL);
  }
  size_t held = 0;
  for (size_t g = 0; g < m->pages; g++) {
    if (m->state[g] == ST_NONE) continue;
    if (fill && !m->st.failed && fetch(m, g, m->fbuf) == 0) {
      struct uffdio_copy c = { (uintptr_t)(m->base + g * m->page), (uintptr_t)m->fbuf, m->page, 0, 0 };
      if (ioctl(m->uffd, UFFDIO_COPY, &c) == 0 || errno == EEXIST) { forget(m, g); continue; }
    }
    held++;
  }
  /* Closing the uffd unregisters the range: a page still offloaded would read as zero. */
  if (held && mprotect(m->base, m->len, PROT_NONE) != 0) rc = -errno;
  if (held && fill) rc = -EIO;
  release(m);
  return rc;
}
