/* thaw-fc-testvmm: plays Firecracker's part of the userfaultfd protocol (DESIGN.md section 7) so
 * the page server can be tested on a host without KVM. Like Firecracker's snapshot load with the
 * Uffd backend it maps each guest region MAP_PRIVATE|MAP_ANONYMOUS, creates a non-blocking
 * userfaultfd with EVENT_REMOVE, registers the regions for MISSING faults, connects to the
 * socket and sends one message (the JSON list of GuestRegionUffdMapping, in the shape of the
 * chosen Firecracker version) with the uffd by SCM_RIGHTS, and keeps both open. Then it plays a
 * guest: reads pages from user mode, has the kernel read pages (write() into a pipe), drops pages
 * with MADV_DONTNEED (REMOVE events: they must read as zero afterwards, as Firecracker's v1.12
 * handler serves them) and checks every byte against the memory file.
 *
 * Usage: thaw-fc-testvmm --socket PATH --memory FILE --regions SIZE[@OFFSET][,...]
 *          [--shape 1.1|1.7|1.12] [--gap BYTES] [--stride N] [--remove PAGES] [--no-verify]
 *          [--json TEXT] [--no-fd] [--bogus-fd] [--wait] [--remove-storm N] [--dump FILE]
 * Sizes accept K/M/G suffixes. Offsets default to the sum of the previous sizes (as Firecracker
 * lays out its memory file). --stride N: user-mode reads of guest pages i % N == 0, kernel reads
 * of i % N == 1. --remove-storm N: a second thread drops the last 16 pages of the last region N
 * times while the guest runs (REMOVE events racing with faults: the server sees EAGAIN); those
 * pages must read as zero or as the snapshot, every other byte exactly. --wait: after the handshake print "ready" and wait for a line on stdin.
 * --dump FILE: after the guest ran, write all guest memory (regions in order) to FILE, as the
 * Firecracker API test double's guest continues from it; with --no-verify, --memory may be left out.
 * Prints one JSON line of results. Exit 0 all bytes right, 1 a byte differs, 2 usage or set-up
 * error, 3 the page server closed its socket (died) while the guest still depends on it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_REGIONS 8
#define PAGE 4096u

static struct { uint8_t *base; uint64_t size, off; } reg[MAX_REGIONS];
static int nreg, sock = -1;

static void die(int code, const char *what) {
  fprintf(stderr, "thaw-fc-testvmm: %s%s%s\n", what, errno ? ": " : "", errno ? strerror(errno) : "");
  exit(code);
}

static uint64_t size_arg(const char *s, char **end) {
  uint64_t v = strtoull(s, end, 0);
  switch (**end) {
    case 'K': v <<= 10; (*end)++; break;
    case 'M': v <<= 20; (*end)++; break;
    case 'G': v <<= 30; (*end)++; break;
  }
  return v;
}

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Firecracker keeps the socket open and never hears from the handler again; EOF on it means the
 * page server is gone and every later fault would wait forever: fail now, and say why. */
static void *watchdog(void *arg) {
  (void)arg;
  for (;;) {
    struct pollfd p = { sock, POLLIN | POLLRDHUP, 0 };
    if (poll(&p, 1, -1) < 0) continue;
    char c;
    if ((p.revents & (POLLHUP | POLLRDHUP | POLLERR)) || recv(sock, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
      errno = 0;
      die(3, "the page server closed its socket (it died or refused the handshake): guest memory "
             "can no longer be served, stopping instead of waiting forever on the next fault");
    }
    usleep(1000);
  }
  return NULL;
}

#define STORM_PAGES 16
static uint64_t storm_rounds;

static void *storm(void *arg) {
  (void)arg;
  uint8_t *at = reg[nreg - 1].base + reg[nreg - 1].size - STORM_PAGES * PAGE;
  for (uint64_t i = 0; i < storm_rounds; i++) {
    if (madvise(at, STORM_PAGES * PAGE, MADV_DONTNEED) != 0) die(2, "madvise(storm)");
    (void)*(volatile uint8_t *)(at + (i % STORM_PAGES) * PAGE); /* fault one back in */
  }
  return NULL;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  const char *path = NULL, *memory = NULL, *regions = NULL, *shape = "1.12", *json = NULL, *dump = NULL;
  uint64_t gap = 0, stride = 1, remove_pages = 0;
  int send_fd = 1, verify = 1, wait_go = 0, bogus_fd = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    char *end;
    if (!strcmp(a, "--no-fd")) { send_fd = 0; continue; }
    if (!strcmp(a, "--bogus-fd")) { bogus_fd = 1; continue; }
    if (!strcmp(a, "--no-verify")) { verify = 0; continue; }
    if (!strcmp(a, "--wait")) { wait_go = 1; continue; }
    if (!v) { errno = 0; die(2, "every option but --no-fd, --no-verify and --wait takes a value"); }
    i++;
    if (!strcmp(a, "--socket")) path = v;
    else if (!strcmp(a, "--memory")) memory = v;
    else if (!strcmp(a, "--regions")) regions = v;
    else if (!strcmp(a, "--shape")) shape = v;
    else if (!strcmp(a, "--json")) json = v;
    else if (!strcmp(a, "--dump")) dump = v;
    else if (!strcmp(a, "--gap")) gap = size_arg(v, &end);
    else if (!strcmp(a, "--stride")) stride = strtoull(v, &end, 0);
    else if (!strcmp(a, "--remove")) remove_pages = strtoull(v, &end, 0);
    else if (!strcmp(a, "--remove-storm")) storm_rounds = strtoull(v, &end, 0);
    else { errno = 0; die(2, "unknown option"); }
  }
  if (!path || (!memory && verify) || !regions || !stride) { errno = 0; die(2, "--socket, --memory (unless --no-verify) and --regions are required"); }

  uint64_t next_off = 0, span = 0;
  for (char *s = (char *)regions; *s && nreg < MAX_REGIONS; nreg++) {
    char *end;
    reg[nreg].size = size_arg(s, &end);
    reg[nreg].off = next_off;
    if (*end == '@') reg[nreg].off = size_arg(end + 1, &end);
    if (!reg[nreg].size || reg[nreg].size % PAGE || reg[nreg].off % PAGE) { errno = 0; die(2, "regions must be page multiples"); }
    next_off = reg[nreg].off + reg[nreg].size;
    span += reg[nreg].size + gap;
    s = *end == ',' ? end + 1 : end;
  }
  int mfd = open(memory ? memory : "/dev/null", O_RDONLY | O_CLOEXEC);
  if (mfd < 0) die(2, "open(--memory)");
  struct stat sb;
  fstat(mfd, &sb);
  const uint8_t *snap = sb.st_size ? mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, mfd, 0) : NULL;
  if (snap == MAP_FAILED) die(2, "mmap(--memory)");

  /* Guest regions at distinct host addresses with an unmapped gap between them (x86's two
   * regions around the MMIO gap are two separate mappings in Firecracker). */
  uint8_t *area = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (area == MAP_FAILED) die(2, "mmap(reserve)");
  munmap(area, span);
  uint8_t *at = area;
  for (int r = 0; r < nreg; r++) {
    reg[r].base = mmap(at, reg[r].size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    if (reg[r].base == MAP_FAILED) die(2, "mmap(guest region)");
    at += reg[r].size + gap;
  }

  int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
  if (uffd < 0) {
    int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev >= 0) { uffd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK); close(dev); }
  }
  if (uffd < 0) die(2, "userfaultfd (kernel-mode faults needed, as Firecracker asks: run as root or with /dev/userfaultfd access)");
  struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_EVENT_REMOVE };
  if (ioctl(uffd, UFFDIO_API, &api) != 0) die(2, "ioctl(UFFDIO_API, EVENT_REMOVE)");
  for (int r = 0; r < nreg; r++) {
    struct uffdio_register rg = { .range = { (uintptr_t)reg[r].base, reg[r].size }, .mode = UFFDIO_REGISTER_MODE_MISSING };
    if (ioctl(uffd, UFFDIO_REGISTER, &rg) != 0) die(2, "ioctl(UFFDIO_REGISTER)");
  }

  /* The handshake, as serde_json serialises Vec<GuestRegionUffdMapping> in each version. */
  char body[4096];
  size_t n = 0;
  if (json) n = (size_t)snprintf(body, sizeof body, "%s", json);
  else {
    n += (size_t)snprintf(body + n, sizeof body - n, "[");
    for (int r = 0; r < nreg; r++) {
      n += (size_t)snprintf(body + n, sizeof body - n, "%s{\"base_host_virt_addr\":%llu,\"size\":%llu,\"offset\":%llu",
                            r ? "," : "", (unsigned long long)(uintptr_t)reg[r].base, (unsigned long long)reg[r].size,
                            (unsigned long long)reg[r].off);
      if (!strcmp(shape, "1.7")) n += (size_t)snprintf(body + n, sizeof body - n, ",\"page_size_kib\":%u", PAGE);
      else if (!strcmp(shape, "1.12")) n += (size_t)snprintf(body + n, sizeof body - n, ",\"page_size\":%u,\"page_size_kib\":%u", PAGE, PAGE);
      else if (strcmp(shape, "1.1")) { errno = 0; die(2, "--shape must be 1.1, 1.7 or 1.12"); }
      n += (size_t)snprintf(body + n, sizeof body - n, "}");
    }
    n += (size_t)snprintf(body + n, sizeof body - n, "]");
  }
  sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  if (connect(sock, (struct sockaddr *)&sa, sizeof sa) != 0) die(2, "connect(--socket)");
  union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } c;
  struct iovec iov = { body, n };
  struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
  if (send_fd) {
    m.msg_control = c.b; m.msg_controllen = sizeof c.b;
    struct cmsghdr *h = CMSG_FIRSTHDR(&m);
    h->cmsg_level = SOL_SOCKET; h->cmsg_type = SCM_RIGHTS; h->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(h), bogus_fd ? &mfd : &uffd, sizeof(int)); /* --bogus-fd: a file, not a uffd */
  }
  if (sendmsg(sock, &m, MSG_NOSIGNAL) != (ssize_t)n) die(2, "sendmsg(handshake)");
  pthread_t wd;
  pthread_create(&wd, NULL, watchdog, NULL);
  if (wait_go) {
    printf("ready\n");
    fflush(stdout);
    char line[16];
    if (!fgets(line, sizeof line, stdin)) { errno = 0; die(2, "stdin closed before go"); }
  }

  /* Guest page i across the regions, in region order. */
  uint64_t pages = 0;
  for (int r = 0; r < nreg; r++) pages += reg[r].size / PAGE;
  uint64_t *lat = calloc(pages, sizeof *lat), nlat = 0, user = 0, kernel = 0, removed = 0, checked = 0;
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) die(2, "pipe");
  uint8_t *buf = malloc(PAGE);
  pthread_t st;
  if (storm_rounds) pthread_create(&st, NULL, storm, NULL);
  uint64_t storm_from = storm_rounds ? pages - STORM_PAGES : pages; /* guest page index */
  uint64_t t_user = 0, t0 = now_ns();
  for (int r = 0, i0 = 0; r < nreg; i0 += (int)(reg[r].size / PAGE), r++) {
    for (uint64_t p = 0; p < reg[r].size / PAGE; p++) {
      uint64_t i = (uint64_t)i0 + p;
      volatile uint8_t *page = reg[r].base + p * PAGE;
      const uint8_t *want = snap + reg[r].off + p * PAGE;
      if (i >= storm_from) continue;
      if (i % stride == 0) {
        uint64_t a = now_ns();
        uint8_t v = page[0];
        lat[nlat++] = now_ns() - a;
        user++;
        if (verify && v != want[0]) { fprintf(stderr, "thaw-fc-testvmm: user read of page %llu: byte 0 is %u, snapshot has %u\n", (unsigned long long)i, v, want[0]); return 1; }
      } else if (stride > 1 && i % stride == 1) {
        /* The kernel reads guest memory (as KVM or a virtio device would): a write() from it. */
        ssize_t w = write(pipefd[1], (const void *)page, PAGE);
        if (w != (ssize_t)PAGE) die(1, "write(pipe) from guest memory (kernel-mode fault not served)");
        if (read(pipefd[0], buf, PAGE) != (ssize_t)PAGE) die(2, "read(pipe)");
        if (verify && memcmp(buf, want, PAGE)) { fprintf(stderr, "thaw-fc-testvmm: kernel read of page %llu differs from the snapshot\n", (unsigned long long)i); return 1; }
        kernel++;
      }
    }
  }
  t_user = now_ns() - t0;
  if (storm_rounds) pthread_join(st, NULL);

  /* Balloon-like: drop pages (REMOVE events); from then on they must read as zero. */
  uint64_t rm = remove_pages < reg[0].size / PAGE ? remove_pages : reg[0].size / PAGE;
  if (rm) {
    if (madvise(reg[0].base, rm * PAGE, MADV_DONTNEED) != 0) die(2, "madvise(MADV_DONTNEED)");
    removed = rm;
  }
  if (verify) {
    for (int r = 0; r < nreg; r++) {
      for (uint64_t p = 0; p < reg[r].size / PAGE; p++) {
        const uint8_t *got = reg[r].base + p * PAGE, *want = snap + reg[r].off + p * PAGE;
        int zero = r == 0 && p < rm;
        if (r == nreg - 1 && p >= reg[r].size / PAGE - (storm_rounds ? STORM_PAGES : 0)) {
          /* dropped by the storm: all zero (removed) or all the snapshot's */
          int z = 1;
          for (uint64_t k = 0; k < PAGE && z; k++) z = got[k] == 0;
          if (!z && memcmp(got, want, PAGE)) { fprintf(stderr, "thaw-fc-testvmm: stormed page %llu is neither zero nor the snapshot\n", (unsigned long long)p); return 1; }
          checked += PAGE;
          continue;
        }
        for (uint64_t k = 0; k < PAGE; k++) {
          uint8_t w = zero ? 0 : want[k];
          if (got[k] != w) {
            fprintf(stderr, "thaw-fc-testvmm: region %d byte %llu is %u, expected %u%s\n", r,
                    (unsigned long long)(p * PAGE + k), got[k], w, zero ? " (removed page must read as zero)" : "");
            return 1;
          }
        }
        checked += PAGE;
      }
    }
  }
  if (dump) {
    int dfd = open(dump, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (dfd < 0) die(2, "open(--dump)");
    for (int r = 0; r < nreg; r++) {
      for (uint64_t done = 0; done < reg[r].size;) {
        ssize_t w = write(dfd, reg[r].base + done, reg[r].size - done); /* kernel-mode faults for pages not yet read */
        if (w <= 0) die(2, "write(--dump)");
        done += (uint64_t)w;
      }
    }
    if (fsync(dfd) != 0 || close(dfd) != 0) die(2, "fsync(--dump)");
  }
  qsort(lat, nlat, sizeof *lat, cmp_u64);
  printf("{\"ok\":true,\"pages\":%llu,\"userPages\":%llu,\"kernelPages\":%llu,\"removedPages\":%llu,"
         "\"checkedBytes\":%llu,\"touchNs\":%llu,\"userFaultMedianNs\":%llu,\"userFaultP99Ns\":%llu}\n",
         (unsigned long long)pages, (unsigned long long)user, (unsigned long long)kernel, (unsigned long long)removed,
         (unsigned long long)checked, (unsigned long long)t_user,
         (unsigned long long)(nlat ? lat[nlat / 2] : 0), (unsigned long long)(nlat ? lat[nlat * 99 / 100] : 0));
  fflush(stdout);
  _exit(0); /* before the watchdog can see the server close after us */
}
