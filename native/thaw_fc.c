/* Firecracker's userfaultfd page-server protocol, native half (src/firecracker/page-server.ts is
 * the rest): receive the handshake (JSON + the userfaultfd by SCM_RIGHTS, which Node cannot
 * receive) and serve the guest's faults from a flat memory file on a dedicated thread.
 *
 * Differs from thaw_uffd.c, whose server owns its uffd and one contiguous range of this process:
 * here the uffd belongs to another process (Firecracker, or the test VMM), the guest has several
 * regions at arbitrary host addresses, each backed by [offset, offset+size) of the file, and
 * REMOVE events (balloon, MADV_DONTNEED) arrive. Behaviour follows Firecracker's example
 * handlers (src/firecracker/examples/uffd, v1.12): one page per fault, EEXIST counts as served,
 * EAGAIN (a REMOVE is queued) defers the fault until the queue has been read, removed pages are
 * served as zero pages from then on, and on a fatal error the peer is killed (SO_PEERCRED) so it
 * never reads a page the snapshot did not give it.
 * Checked serving (crcs): the first fault in a piece copies the whole piece of the file into a
 * buffer, checks its crc32 and installs every page of it that the guest maps from that buffer. */
#define _GNU_SOURCE
#include <node_api.h>

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
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

typedef struct { uint64_t base, size, off, first; } fc_region; /* first: index of its first page */

struct thaw_fc {
  int uffd, stop_fd;
  pid_t peer;
  int peer_fd;                             /* pidfd of the peer (no pid-reuse race), or -1 */
  int peer_sock;                           /* a dup of the peer's connection, or -1 */
  size_t page;
  const uint8_t *src; size_t src_len;      /* read-only mapping of the whole memory file */
  fc_region *reg; size_t nreg;
  uint8_t *removed; size_t pages;          /* one flag per guest page: REMOVEd, serve zeros */
  uint32_t *crcs; size_t ncrc, vbytes;     /* pieces of the file, or crcs == NULL */
  uint8_t *vdone, *vbuf;
  thaw_run *prefetch; size_t nprefetch;    /* file byte ranges installed before serving */
  thaw_fill_job *parts; size_t nparts;     /* compressed partitions, or parts == NULL */
  uint8_t *pdone, *pbuf, *sbuf;            /* partition installed; decoded and stored buffers */
  uint64_t mem_len;                        /* guest memory bytes ("file offsets" index it) */
  int record;
  pthread_t thread;
  struct uffd_msg *later; size_t nlater, caplater; /* faults deferred on EAGAIN */
  thaw_fc_stats st;
  size_t caprec, capsvc;
};

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int push(void **arr, size_t *n, size_t *cap, size_t size, const void *item) {
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 1024;
    void *p = realloc(*arr, c * size);
    if (!p) return -ENOMEM;
    *arr = p; *cap = c;
  }
  memcpy((uint8_t *)*arr + *n * size, item, size);
  (*n)++;
  return 0;
}

static const fc_region *region_of(const thaw_fc *u, uint64_t addr) {
  for (size_t i = 0; i < u->nreg; i++)
    if (addr >= u->reg[i].base && addr - u->reg[i].base < u->reg[i].size) return &u->reg[i];
  return NULL;
}

/* One UFFDIO_COPY (from != NULL) or UFFDIO_ZEROPAGE of [dst, dst+len). Returns 0, -EAGAIN (a
 * REMOVE is queued: read events, retry), -ESRCH (the peer's memory is gone) or -errno. Pages
 * already present (EEXIST: a racing fault) are skipped: they hold what we installed. */
static int put(thaw_fc *u, uint64_t dst, const uint8_t *from, uint64_t len) {
  uint64_t done = 0;
  while (done < len) {
    int64_t got;
    if (from) {
      struct uffdio_copy c = { dst + done, (uint64_t)(uintptr_t)(from + done), len - done, 0, 0 };
      got = ioctl(u->uffd, UFFDIO_COPY, &c) == 0 ? (int64_t)(len - done) : c.copy > 0 ? c.copy : -errno;
    } else {
      struct uffdio_zeropage z = { { dst + done, len - done }, 0, 0 };
      got = ioctl(u->uffd, UFFDIO_ZEROPAGE, &z) == 0 ? (int64_t)(len - done) : z.zeropage > 0 ? z.zeropage : -errno;
    }
    if (got > 0) { (from ? &u->st.copied_pages : &u->st.zero_pages)[0] += (uint64_t)got / u->page; done += (uint64_t)got; continue; }
    if (got == -EEXIST) { u->st.eexist++; done += u->page; continue; }
    if (got == -EAGAIN) u->st.eagain++;
    return (int)got;
  }
  return 0;
}

static void record(thaw_fc *u, uint64_t off) {
  if (u->record && push((void **)&u->st.recorded, &u->st.recorded_count, &u->caprec, sizeof off, &off) && !u->st.error) {
    u->st.error = -ENOMEM; u->st.error_op = "realloc(recording)";
  }
}

/* Installs file bytes [fo, fo+len) (page aligned) wherever the regions map them, skipping
 * removed pages, from `from` (a checked buffer holding those bytes) or from the file mapping. */
static int install_file_range(thaw_fc *u, uint64_t fo, uint64_t len, const uint8_t *from, int rec) {
  for (size_t i = 0; i < u->nreg; i++) {
    const fc_region *r = &u->reg[i];
    uint64_t lo = fo > r->off ? fo : r->off, hi = fo + len < r->off + r->size ? fo + len : r->off + r->size;
    while (lo < hi) {
      size_t g = r->first + (lo - r->off) / u->page;
      if (u->removed[g]) { lo += u->page; continue; }
      uint64_t n = u->page;
      while (lo + n < hi && !u->removed[g + n / u->page]) n += u->page;
      const uint8_t *src = from ? from + (lo - fo) : u->src + lo;
      int rc = put(u, r->base + (lo - r->off), src, n);
      if (rc) return rc;
      if (rec) for (uint64_t k = 0; k < n; k += u->page) record(u, lo + k);
      lo += n;
    }
  }
  return 0;
}

/* Checked serving: copies piece p of the file, checks it, installs it. -EBADMSG on mismatch. */
static int serve_piece(thaw_fc *u, size_t p, int rec) {
  uint64_t fo = (uint64_t)p * u->vbytes, n = u->src_len - fo < u->vbytes ? u->src_len - fo : u->vbytes;
  memcpy(u->vbuf, u->src + fo, n);
  if ((uint32_t)crc32_z(0, u->vbuf, n) != u->crcs[p]) return -EBADMSG;
  int rc = install_file_range(u, fo, (n + u->page - 1) / u->page * u->page, u->vbuf, rec);
  if (rc == 0) u->vdone[p] = 1;
  return rc;
}

/* The first partition ending after guest byte fo (nparts if none). */
static size_t part_from(const thaw_fc *u, uint64_t fo) {
  size_t lo = 0, hi = u->nparts;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (u->parts[mid].dst_off + u->parts[mid].dst_len <= fo) lo = mid + 1; else hi = mid;
  }
  return lo;
}

/* The partition holding guest byte fo, or -1 (a hole: zero). */
static int64_t find_part(const thaw_fc *u, uint64_t fo) {
  size_t p = part_from(u, fo);
  return p < u->nparts && u->parts[p].dst_off <= fo ? (int64_t)p : -1;
}

/* Sabre: copies partition p's stored bytes out of the file, checks them, decodes them and
 * installs the result. -EBADMSG when the crc or the decode fails. */
static int serve_part(thaw_fc *u, size_t p, int rec) {
  const thaw_fill_job *j = &u->parts[p];
  memcpy(u->sbuf, u->src + j->src_off, j->src_len);
  if ((uint32_t)crc32_z(0, u->sbuf, j->src_len) != j->crc) return -EBADMSG;
  const uint8_t *from = u->sbuf;
  if (j->codec != THAW_FILL_RAW) {
    int64_t n = j->codec == THAW_FILL_LZ4 ? thaw_lz4_decode(u->sbuf, j->src_len, u->pbuf, j->dst_len)
                                          : thaw_zstd_decode(u->sbuf, j->src_len, u->pbuf, j->dst_len);
    if (n != (int64_t)j->dst_len) return -EBADMSG;
    from = u->pbuf;
  }
  int rc = install_file_range(u, j->dst_off, j->dst_len, from, rec);
  if (rc == 0) u->pdone[p] = 1;
  return rc;
}

static int install(thaw_fc *u, uint64_t fo, uint64_t len, int rec) {
  if (u->parts) {
    for (size_t p = part_from(u, fo); p < u->nparts && u->parts[p].dst_off < fo + len; p++) {
      if (u->pdone[p]) continue;
      int rc = serve_part(u, p, rec);
      if (rc) return rc;
    }
    return 0;
  }
  if (!u->crcs) return install_file_range(u, fo, len, NULL, rec);
  for (size_t p = fo / u->vbytes; p <= (fo + len - 1) / u->vbytes; p++) {
    if (u->vdone[p]) continue;
    int rc = serve_piece(u, p, rec);
    if (rc) return rc;
  }
  return 0;
}

static int serve_fault(thaw_fc *u, uint64_t addr) {
  uint64_t at = addr & ~(uint64_t)(u->page - 1);
  const fc_region *r = region_of(u, at);
  if (!r) return -EFAULT;
  size_t g = r->first + (at - r->base) / u->page;
  uint64_t fo = r->off + (at - r->base);
  uint64_t before = u->st.copied_pages + u->st.zero_pages;
  int rc;
  int64_t part = u->parts ? find_part(u, fo) : 0;
  if (u->removed[g]) rc = put(u, at, NULL, u->page);
  else if (part < 0) { /* a hole between partitions: zero all of it (up to 1 MiB) in this region */
    size_t next = part_from(u, fo);
    uint64_t end = next < u->nparts ? u->parts[next].dst_off : u->mem_len, n = u->page;
    if (end > r->off + r->size) end = r->off + r->size;
    while (fo + n < end && n < (1u << 20) && !u->removed[g + n / u->page]) n += u->page;
    rc = put(u, at, NULL, n);
  } else if (u->parts && u->pdone[part]) rc = 0;
  else if (u->crcs && u->vdone[fo / u->vbytes]) rc = 0; /* installed from its checked piece */
  else rc = install(u, fo, u->page, 1);
  if (rc) return rc;
  if (u->st.copied_pages + u->st.zero_pages == before) { /* already there: wake the waiter */
    struct uffdio_range w = { at, u->page };
    if (ioctl(u->uffd, UFFDIO_WAKE, &w) != 0) return -errno;
  }
  return 0;
}

static void on_remove(thaw_fc *u, uint64_t start, uint64_t end) {
  u->st.remove_events++;
  for (uint64_t a = start & ~(uint64_t)(u->page - 1); a < end; a += u->page) {
    const fc_region *r = region_of(u, a);
    if (!r) continue;
    size_t g = r->first + (a - r->base) / u->page;
    if (!u->removed[g]) { u->removed[g] = 1; u->st.removed_pages++; }
  }
}

static void fatal(thaw_fc *u, int err, const char *op) {
  if (!u->st.error) { u->st.error = err; u->st.error_op = op; }
  /* As Firecracker's handlers do: the guest must not run on without its pages. */
  if (u->peer_fd >= 0) syscall(SYS_pidfd_send_signal, u->peer_fd, SIGKILL, NULL, 0);
  else if (u->peer > 0) kill(u->peer, SIGKILL);
  /* Also when the peer could not be signalled (another uid or PID namespace): the connection's
   * end tells the VMM's owner, who kills it, and a test VMM's watchdog. */
  if (u->peer_sock >= 0) shutdown(u->peer_sock, SHUT_RDWR);
}

/* Reads every queued event; returns 1 when the peer's memory is gone, 0 to continue, -1 fatal. */
static int drain(thaw_fc *u) {
  struct uffd_msg msgs[64];
  for (;;) {
    ssize_t n = read(u->uffd, msgs, sizeof msgs);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n < 0) { fatal(u, -errno, "read(userfaultfd)"); return -1; }
    if (n == 0) return 1;
    for (size_t i = 0; i < (size_t)n / sizeof msgs[0]; i++) {
      if (msgs[i].event == UFFD_EVENT_REMOVE) on_remove(u, msgs[i].arg.remove.start, msgs[i].arg.remove.end);
      else if (msgs[i].event == UFFD_EVENT_PAGEFAULT) {
        if (push((void **)&u->later, &u->nlater, &u->caplater, sizeof msgs[i], &msgs[i])) { fatal(u, -ENOMEM, "realloc"); return -1; }
      } else { fatal(u, -EPROTO, "read(userfaultfd): unexpected event"); return -1; }
    }
  }
  /* Faults in arrival order, after every REMOVE read so far (ioctls return EAGAIN while one is
   * queued). A fault that still gets EAGAIN stays for the next round. */
  size_t keep = 0;
  for (size_t i = 0; i < u->nlater; i++) {
    uint64_t t0 = now_ns();
    int rc = serve_fault(u, u->later[i].arg.pagefault.address);
    if (rc == -EAGAIN) { u->later[keep++] = u->later[i]; continue; }
    if (rc == -ESRCH) return 1;
    if (rc == -EBADMSG) { fatal(u, rc, "THAW_SNAPSHOT_CORRUPT: a piece of the memory file fails its checksum"); return -1; }
    if (rc == -EFAULT) { fatal(u, rc, "fault outside every region of the handshake"); return -1; }
    if (rc) { fatal(u, rc, "ioctl(UFFDIO_COPY/ZEROPAGE)"); return -1; }
    u->st.faults++;
    uint32_t ns = (uint32_t)((now_ns() - t0) > UINT32_MAX ? UINT32_MAX : now_ns() - t0);
    push((void **)&u->st.service_ns, &u->st.service_count, &u->capsvc, sizeof ns, &ns);
  }
  u->nlater = keep;
  return 0;
}

static void *serve(void *arg) {
  thaw_fc *u = arg;
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < u->nprefetch; i++) {
    uint64_t before = u->st.copied_pages;
    int rc;
    while ((rc = install(u, u->prefetch[i].off, u->prefetch[i].len, 0)) == -EAGAIN)
      if (drain(u)) return NULL;
    u->st.prefetched_pages += u->st.copied_pages - before;
    if (rc == -ESRCH) return NULL;
    if (rc) { fatal(u, rc, rc == -EBADMSG ? "THAW_SNAPSHOT_CORRUPT: a piece of the memory file fails its checksum"
                                          : "ioctl(UFFDIO_COPY) in prefetch"); return NULL; }
  }
  u->st.prefetch_ns = now_ns() - t0;
  for (;;) {
    struct pollfd p[2] = { { u->uffd, POLLIN, 0 }, { u->stop_fd, POLLIN, 0 } };
    if (poll(p, 2, u->nlater ? 1 : -1) < 0) {
      if (errno == EINTR) continue;
      fatal(u, -errno, "poll"); return NULL;
    }
    if (p[1].revents) return NULL;
    if (p[0].revents & (POLLERR | POLLNVAL)) return NULL; /* released: the peer is gone */
    if (drain(u)) return NULL;
  }
}

static void release(thaw_fc *u) {
  if (u->uffd >= 0) close(u->uffd);
  if (u->stop_fd >= 0) close(u->stop_fd);
  if (u->peer_fd >= 0) close(u->peer_fd);
  if (u->peer_sock >= 0) close(u->peer_sock);
  if (u->src) munmap((void *)u->src, u->src_len);
  free(u->reg); free(u->removed); free(u->crcs); free(u->vdone); free(u->vbuf);
  free(u->prefetch); free(u->later); free(u->parts); free(u->pdone); free(u->pbuf); free(u->sbuf); free(u->st.recorded); free(u->st.service_ns);
  free(u);
}

int thaw_fc_recv(int sock, int timeout_ms, char *buf, size_t cap, size_t *len, int *fd, int *pid) {
  *fd = -1; *pid = 0; *len = 0;
  struct pollfd p = { sock, POLLIN, 0 };
  int n = poll(&p, 1, timeout_ms);
  if (n < 0) return -errno;
  if (n == 0) return -ETIMEDOUT;
  union { struct cmsghdr h; char b[CMSG_SPACE(4 * sizeof(int))]; } c;
  struct iovec iov = { buf, cap };
  struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.b, .msg_controllen = sizeof c.b };
  ssize_t r;
  do r = recvmsg(sock, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT); while (r < 0 && errno == EINTR);
  if (r < 0) return -errno;
  for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
    if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int fds[4];
    memcpy(fds, CMSG_DATA(h), k * sizeof(int));
    for (size_t i = 0; i < k; i++) { if (*fd < 0) *fd = fds[i]; else close(fds[i]); } /* one uffd; extras closed */
  }
  if (m.msg_flags & MSG_CTRUNC) { if (*fd >= 0) close(*fd); *fd = -1; return -EPROTO; }
  struct ucred cr; socklen_t cl = sizeof cr;
  if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0) *pid = cr.pid;
  *len = (size_t)r;
  return 0;
}

#define FAIL(name, err) do { *op = (name); int e_ = (err); release(u); return e_; } while (0)

int thaw_fc_start(const thaw_fc_opts *o, thaw_fc **out, const char **op) {
  thaw_fc *u = calloc(1, sizeof *u);
  if (!u) { close(o->uffd); return *op = "calloc", -ENOMEM; }
  u->uffd = o->uffd; u->stop_fd = -1; u->peer = o->peer; u->record = o->record;
  /* Our own copy: the caller's fd may be closed (and its number reused) before we stop. */
  u->peer_sock = o->peer_sock >= 0 ? fcntl(o->peer_sock, F_DUPFD_CLOEXEC, 0) : -1;
  /* Taken while the peer is connected, so a kill on a fatal error cannot hit a reused pid. */
  u->peer_fd = o->peer > 0 ? (int)syscall(SYS_pidfd_open, o->peer, 0) : -1;
  u->page = (size_t)sysconf(_SC_PAGESIZE);
  struct stat sb;
  if (fstat(o->src_fd, &sb) != 0) FAIL("fstat(memory file)", -errno);
  u->src_len = (size_t)sb.st_size;
  u->mem_len = o->parts ? o->memory_bytes : u->src_len;
  if (o->parts) {
    if (o->crcs) FAIL("partitions and piece checksums together", -EINVAL);
    size_t maxd = u->page, maxs = 1;
    for (size_t i = 0; i < o->part_count; i++) {
      const thaw_fill_job *j = &o->parts[i];
      if (j->dst_off % u->page || !j->dst_len || j->dst_len % u->page || j->dst_off + j->dst_len > u->mem_len ||
          (i && j->dst_off < o->parts[i - 1].dst_off + o->parts[i - 1].dst_len) ||
          j->src_off > u->src_len || j->src_len > u->src_len - j->src_off || j->codec > THAW_FILL_ZSTD ||
          (j->codec == THAW_FILL_RAW && j->src_len != j->dst_len))
        FAIL("partition table (unsorted, overlapping, or outside memory or the file)", -EINVAL);
      if (j->dst_len > maxd) maxd = j->dst_len;
      if (j->src_len > maxs) maxs = j->src_len;
    }
    if (!(u->parts = malloc((o->part_count ? o->part_count : 1) * sizeof *u->parts)) || !(u->pdone = calloc(o->part_count + 1, 1)) ||
        !(u->pbuf = malloc(maxd)) || !(u->sbuf = malloc(maxs))) FAIL("malloc(partitions)", -ENOMEM);
    memcpy(u->parts, o->parts, o->part_count * sizeof *u->parts);
    u->nparts = o->part_count;
  }
  if (!(u->reg = calloc(o->region_count ? o->region_count : 1, sizeof *u->reg))) FAIL("calloc", -ENOMEM);
  for (size_t i = 0; i < o->region_count; i++) {
    const uint64_t *r = o->regions + 3 * i; /* base, size, offset: checked by the caller */
    if (r[0] % u->page || r[1] % u->page || r[2] % u->page || r[2] + r[1] > u->mem_len)
      FAIL("region (unaligned, or past the end of the memory file)", -EINVAL);
    u->reg[i] = (fc_region){ r[0], r[1], r[2], u->pages };
    u->pages += r[1] / u->page;
  }
  u->nreg = o->region_count;
  if (!(u->removed = calloc(u->pages ? u->pages : 1, 1))) FAIL("calloc", -ENOMEM);
  if (u->src_len) {
    void *m = mmap(NULL, u->src_len, PROT_READ, MAP_SHARED, o->src_fd, 0);
    if (m == MAP_FAILED) FAIL("mmap(memory file)", -errno);
    u->src = m;
  }
  if (o->crcs) {
    if (!o->verify_bytes || o->verify_bytes % u->page) FAIL("verify piece size", -EINVAL);
    u->vbytes = o->verify_bytes;
    u->ncrc = (u->src_len + u->vbytes - 1) / u->vbytes;
    if (o->crc_count != u->ncrc) FAIL("checksums (one per piece of the memory file)", -EINVAL);
    if (!(u->crcs = malloc(u->ncrc * sizeof *u->crcs)) || !(u->vdone = calloc(u->ncrc, 1)) ||
        !(u->vbuf = malloc(u->vbytes))) FAIL("malloc(checksums)", -ENOMEM);
    memcpy(u->crcs, o->crcs, u->ncrc * sizeof *u->crcs);
  }
  if (o->prefetch_count) {
    if (!(u->prefetch = malloc(o->prefetch_count * sizeof *u->prefetch))) FAIL("malloc", -ENOMEM);
    for (size_t i = 0; i < o->prefetch_count; i++) {
      thaw_run r = o->prefetch[i];
      if (r.off % u->page || r.len % u->page || r.off > u->mem_len || r.len > u->mem_len - r.off) FAIL("prefetch run", -EINVAL);
      if (r.len) u->prefetch[u->nprefetch++] = r;
    }
  }
  /* The peer chooses what fd it sends: only a userfaultfd is served. */
  char link[64], want[] = "anon_inode:[userfaultfd]", fdpath[48];
  snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", u->uffd);
  ssize_t ln = readlink(fdpath, link, sizeof link - 1);
  if (ln < 0 || (size_t)ln != sizeof want - 1 || memcmp(link, want, sizeof want - 1))
    FAIL("the fd sent with the handshake is not a userfaultfd", -EBADF);
  if ((u->stop_fd = eventfd(0, EFD_CLOEXEC)) < 0) FAIL("eventfd", -errno);
  int fl = fcntl(u->uffd, F_GETFL);
  if (fl < 0 || fcntl(u->uffd, F_SETFL, fl | O_NONBLOCK) != 0) FAIL("fcntl(userfaultfd, O_NONBLOCK)", -errno);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&u->thread, NULL, serve, u);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc) FAIL("pthread_create", -rc);
  *out = u;
  return 0;
}

void thaw_fc_stop(thaw_fc *u, thaw_fc_stats *st) {
  uint64_t one = 1;
  if (write(u->stop_fd, &one, sizeof one) != sizeof one) { /* eventfd write cannot fail here */ }
  pthread_join(u->thread, NULL);
  *st = u->st;
  u->st.recorded = NULL; u->st.service_ns = NULL;
  release(u);
}

/* ---- Node-API: fcRecv(fd, timeoutMs), fcStart(opts), fcStop(handle) ---- */

static napi_value fc_throw(napi_env env, int err, const char *op) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", op, strerror(err < 0 ? -err : err));
  const char *name = strerrorname_np(err < 0 ? -err : err);
  napi_throw_error(env, name ? name : "EINVAL", msg);
  return NULL;
}

static double fc_num(napi_env env, napi_value obj, const char *key, double dflt) {
  napi_value v; double d;
  bool has = false;
  if (napi_has_named_property(env, obj, key, &has) != napi_ok || !has) return dflt;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok || napi_get_value_double(env, v, &d) != napi_ok) return dflt;
  return d;
}

static void *fc_typed(napi_env env, napi_value obj, const char *key, napi_typedarray_type want, size_t *count) {
  napi_value v; bool has = false, is = false;
  napi_typedarray_type t; void *data = NULL;
  *count = 0;
  if (napi_has_named_property(env, obj, key, &has) != napi_ok || !has) return NULL;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok || napi_is_typedarray(env, v, &is) != napi_ok || !is) return NULL;
  if (napi_get_typedarray_info(env, v, &t, count, &data, NULL, NULL) != napi_ok || t != want) { *count = 0; return NULL; }
  return data;
}

static void fc_set(napi_env env, napi_value obj, const char *key, double d) {
  napi_value v;
  napi_create_double(env, d, &v);
  napi_set_named_property(env, obj, key, v);
}

static napi_value fc_recv(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2]; int32_t fd = -1, timeout = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int32(env, argv[1], &timeout) != napi_ok || fd < 0)
    return fc_throw(env, EINVAL, "fcRecv(fd, timeoutMs)");
  size_t cap = 1 << 20, len = 0;
  char *buf = malloc(cap);
  if (!buf) return fc_throw(env, ENOMEM, "malloc");
  int ufd = -1, pid = 0;
  int rc = thaw_fc_recv(fd, timeout, buf, cap, &len, &ufd, &pid);
  if (rc) { free(buf); return fc_throw(env, rc, rc == -ETIMEDOUT ? "recvmsg(handshake): nothing within the timeout" : "recvmsg(handshake)"); }
  napi_value out, s;
  napi_create_object(env, &out);
  napi_create_string_latin1(env, buf, len, &s); /* bytes as-is; JS checks they are ASCII JSON */
  free(buf);
  napi_set_named_property(env, out, "body", s);
  fc_set(env, out, "fd", ufd);
  fc_set(env, out, "pid", pid);
  return out;
}

static void fc_finalize(napi_env env, void *data, void *hint) {
  thaw_fc **h = data;
  if (*h) { thaw_fc_stats st; thaw_fc_stop(*h, &st); free(st.recorded); free(st.service_ns); }
  free(h);
}

/* fcStart({uffd, srcFd, peer, regions: BigUint64Array (base, size, offset)*, crcs?: Uint32Array,
 * verifyBytes?, prefetch?: BigUint64Array (offset, length)*, record?}) -> handle. Takes the uffd
 * (closed by fcStop, or here on failure). */
static napi_value fc_start(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value o;
  napi_get_cb_info(env, info, &argc, &o, NULL, NULL);
  if (argc < 1) return fc_throw(env, EINVAL, "fcStart(options)");
  thaw_fc_opts opts = { 0 };
  opts.uffd = (int)fc_num(env, o, "uffd", -1);
  opts.src_fd = (int)fc_num(env, o, "srcFd", -1);
  opts.peer = (int)fc_num(env, o, "peer", 0);
  opts.peer_sock = (int)fc_num(env, o, "peerSocket", -1);
  opts.record = fc_num(env, o, "record", 0) != 0;
  opts.verify_bytes = (size_t)fc_num(env, o, "verifyBytes", 0);
  size_t n;
  opts.regions = fc_typed(env, o, "regions", napi_biguint64_array, &n);
  opts.region_count = n / 3;
  opts.crcs = fc_typed(env, o, "crcs", napi_uint32_array, &opts.crc_count);
  opts.prefetch = fc_typed(env, o, "prefetch", napi_biguint64_array, &n);
  opts.prefetch_count = n / 2;
  double *pt = fc_typed(env, o, "parts", napi_float64_array, &n);
  thaw_fill_job *jobs = NULL;
  if (pt) {
    opts.part_count = n / 6;
    opts.memory_bytes = (uint64_t)fc_num(env, o, "memoryBytes", 0);
    if (!(jobs = calloc(opts.part_count + 1, sizeof *jobs))) { close(opts.uffd); return fc_throw(env, ENOMEM, "calloc"); }
    for (size_t i = 0; i < opts.part_count; i++)
      jobs[i] = (thaw_fill_job){ (uint64_t)pt[6 * i], (uint64_t)pt[6 * i + 1], (uint64_t)pt[6 * i + 2], (uint64_t)pt[6 * i + 3],
                                 (uint32_t)pt[6 * i + 5], (uint8_t)pt[6 * i + 4], 1 };
    opts.parts = jobs;
  }
  if (opts.uffd < 0 || opts.src_fd < 0 || !opts.regions) {
    if (opts.uffd >= 0) close(opts.uffd);
    free(jobs);
    return fc_throw(env, EINVAL, "fcStart: uffd, srcFd and regions are required");
  }
  thaw_fc **h = calloc(1, sizeof *h);
  const char *op = "calloc";
  int rc = h ? thaw_fc_start(&opts, h, &op) : -ENOMEM;
  free(jobs);
  if (!h) close(opts.uffd);
  if (rc) { free(h); return fc_throw(env, rc, op); }
  napi_value ext;
  napi_create_external(env, h, fc_finalize, NULL, &ext);
  return ext;
}

static napi_value fc_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value a; thaw_fc **h = NULL;
  napi_get_cb_info(env, info, &argc, &a, NULL, NULL);
  if (argc < 1 || napi_get_value_external(env, a, (void **)&h) != napi_ok || !h || !*h)
    return fc_throw(env, EINVAL, "fcStop(handle): not a running server");
  thaw_fc_stats st;
  thaw_fc_stop(*h, &st);
  *h = NULL;
  napi_value out, ab, arr, s;
  napi_create_object(env, &out);
  fc_set(env, out, "faults", (double)st.faults);
  fc_set(env, out, "copiedPages", (double)st.copied_pages);
  fc_set(env, out, "zeroPages", (double)st.zero_pages);
  fc_set(env, out, "prefetchedPages", (double)st.prefetched_pages);
  fc_set(env, out, "prefetchNs", (double)st.prefetch_ns);
  fc_set(env, out, "removeEvents", (double)st.remove_events);
  fc_set(env, out, "removedPages", (double)st.removed_pages);
  fc_set(env, out, "eexist", (double)st.eexist);
  fc_set(env, out, "eagain", (double)st.eagain);
  void *d;
  napi_create_arraybuffer(env, st.recorded_count * sizeof(uint64_t), &d, &ab);
  if (st.recorded_count) memcpy(d, st.recorded, st.recorded_count * sizeof(uint64_t));
  napi_create_typedarray(env, napi_biguint64_array, st.recorded_count, ab, 0, &arr);
  napi_set_named_property(env, out, "recorded", arr);
  napi_create_arraybuffer(env, st.service_count * sizeof(uint32_t), &d, &ab);
  if (st.service_count) memcpy(d, st.service_ns, st.service_count * sizeof(uint32_t));
  napi_create_typedarray(env, napi_uint32_array, st.service_count, ab, 0, &arr);
  napi_set_named_property(env, out, "serviceNs", arr);
  if (st.error) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s: %s", st.error_op, strerror(-st.error));
    napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &s);
    napi_set_named_property(env, out, "error", s);
  }
  free(st.recorded); free(st.service_ns);
  return out;
}

/* fcDataExtents(fd): the data extents of a sparse file as [offset, length, ...] (lseek SEEK_DATA /
 * SEEK_HOLE), as Firecracker's snapshot-editor reads a diff memory file: its holes are pages the
 * diff does not hold, its data the pages dirtied (zero pages included). */
static napi_value fc_extents(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value a; int32_t fd = -1;
  napi_get_cb_info(env, info, &argc, &a, NULL, NULL);
  if (argc < 1 || napi_get_value_int32(env, a, &fd) != napi_ok || fd < 0) return fc_throw(env, EINVAL, "fcDataExtents(fd)");
  struct stat sb;
  if (fstat(fd, &sb) != 0) return fc_throw(env, errno, "fstat");
  size_t cap = 64, n = 0;
  double *out = malloc(cap * sizeof *out);
  if (!out) return fc_throw(env, ENOMEM, "malloc");
  for (off_t at = 0; at < sb.st_size;) {
    off_t data = lseek(fd, at, SEEK_DATA);
    if (data < 0) { if (errno == ENXIO) break; int e = errno; free(out); return fc_throw(env, e, "lseek(SEEK_DATA)"); }
    off_t hole = lseek(fd, data, SEEK_HOLE);
    if (hole < 0) { int e = errno; free(out); return fc_throw(env, e, "lseek(SEEK_HOLE)"); }
    if (n + 2 > cap) {
      double *more = realloc(out, (cap *= 2) * sizeof *out);
      if (!more) { free(out); return fc_throw(env, ENOMEM, "realloc"); }
      out = more;
    }
    out[n++] = (double)data;
    out[n++] = (double)(hole - data);
    at = hole;
  }
  napi_value ab, arr; void *d;
  napi_create_arraybuffer(env, n * sizeof(double), &d, &ab);
  memcpy(d, out, n * sizeof(double));
  free(out);
  napi_create_typedarray(env, napi_float64_array, n, ab, 0, &arr);
  return arr;
}

void thaw_fc_register(void *env_, void *exports_) {
  napi_env env = env_;
  napi_value exports = exports_;
  napi_property_descriptor fns[] = {
    { "fcRecv", NULL, fc_recv, NULL, NULL, NULL, napi_enumerable, NULL },
    { "fcStart", NULL, fc_start, NULL, NULL, NULL, napi_enumerable, NULL },
    { "fcStop", NULL, fc_stop, NULL, NULL, NULL, napi_enumerable, NULL },
    { "fcDataExtents", NULL, fc_extents, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);
}
