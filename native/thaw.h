/* Thaw's native core: page mapping, a userfaultfd page server and lz4/zstd codecs, as plain C.
 * No Node-API types here. Functions return 0 (or a byte count) on success and -errno on failure;
 * where several syscalls can fail, *op names the one that did. Addresses/lengths passed to the
 * mapping and uffd functions must be host-page aligned and lie inside memory the caller owns. */
#ifndef THAW_H
#define THAW_H
#include <stddef.h>
#include <stdint.h>

/* thaw_mmap.c: remap, advise and measure memory; the caller validates alignment and bounds. */
int thaw_map_file(void *addr, size_t len, int fd, uint64_t file_off, int shared);
int thaw_map_anon(void *addr, size_t len);
int thaw_madvise_dontneed(void *addr, size_t len);
int thaw_madvise_hugepage(void *addr, size_t len);
int thaw_madvise_populate_write(void *addr, size_t len);
int thaw_madvise_populate_read(void *addr, size_t len);
int thaw_madvise_willneed(void *addr, size_t len);                                             /* thaw_scaling.c */
int thaw_discard_pages(uint8_t *base, const double *offs, size_t n, size_t page, int anon);   /* thaw_scaling.c */
void thaw_touch_pages(void *addr, size_t len, size_t page);
int64_t thaw_resident_pages(void *addr, size_t len, size_t page); /* -errno on failure */
int thaw_mincore(int fd, size_t len, uint8_t *vec, const char **op); /* vec: one byte per page */
int thaw_fadvise(int fd, uint64_t off, uint64_t len, int advice);
/* O_DIRECT read into a page-aligned buffer it allocates (*out, free()); returns bytes read. */
int64_t thaw_read_direct(const char *path, uint64_t off, size_t len, void **out, const char **op);
int thaw_fault_counts(uint64_t *minor, uint64_t *major);
/* A pool of pre-faulted memory: anonymous, 2 MiB aligned, huge-page advised, resident and zero.
 * Moving its front under a guest range (mremap) hands over pages that never fault again. */
typedef struct { uint8_t *base; size_t len; } thaw_pool;
int thaw_pool_fill(thaw_pool *p, size_t len, const char **op); /* frees the old pool first */
int thaw_pool_move(thaw_pool *p, void *dst, size_t len);        /* -ENOSPC when the pool is short */
void thaw_pool_free(thaw_pool *p);

/* thaw_uffd.c: a page server thread for [addr, addr+len), registered for MISSING faults. */
typedef struct thaw_uffd thaw_uffd;
typedef struct { uint64_t off, len; } thaw_run;             /* guest byte range, page aligned */
typedef struct {
  int src_fd;             /* read-only source; dup'ed, the caller keeps its own fd */
  uint64_t src_off;       /* file offset of source page 0, page aligned */
  const int32_t *map;     /* guest page -> source page, -1 = hole (zero page); NULL = identity */
  int use_pread;          /* 0: UFFDIO_COPY straight from a read-only mmap of the source */
  int record;             /* log faulting page offsets in order */
  const thaw_run *prefetch; size_t prefetch_count; size_t chunk; /* chunk: bytes per COPY */
  /* Verified serving (when crcs != NULL): the range is split into verify_bytes pieces; the first
   * fault (or prefetch) inside a piece reads all of it as the guest must see it, checks its
   * crc32 against crcs[i] and installs the whole piece from the checked buffer. A mismatch
   * aborts the process from the server thread (the guest must never read those bytes), or makes
   * thaw_uffd_stop(fill) fail with -EBADMSG. Pieces may be as small as a page: missing
   * neighbours are read, checked and installed together (up to max(chunk, verify_bytes) at once).
   * fault_bytes (verified serving only; 0 = one page): the most a fault installs, each piece of
   * it checked: a fault where the previous one's window ended doubles the window up to this
   * (sequential readahead), any other installs its own page; the 16th fault in one region of
   * fault_bytes installs the rest of the region (dense scattered access). */
  const uint32_t *crcs; size_t crc_count; size_t verify_bytes; size_t fault_bytes;
} thaw_uffd_opts;
typedef struct {
  uint64_t faults, zero_pages, copied_pages, prefetched_pages, prefetch_ns;
  uint64_t *recorded; size_t recorded_count;              /* malloc'd; caller frees */
  int user_mode_only;
} thaw_uffd_stats;
int thaw_uffd_start(void *addr, size_t len, const thaw_uffd_opts *o, thaw_uffd **out, const char **op);
int thaw_uffd_wait_prefetch(thaw_uffd *u);
/* fill: install every page not yet served before closing; else PROT_NONE the range (fence). */
int thaw_uffd_stop(thaw_uffd *u, int fill, thaw_uffd_stats *st, const char **op);

/* thaw_jail.c: forbid execve/execveat to every thread of this process, for good. */
int thaw_jail_lock_exec(void);
/* thaw_uffd.c: an open /dev/userfaultfd handed in by the jailer (the caller keeps ownership);
 * page servers create their userfaultfds from it when the userfaultfd syscall is refused. */
void thaw_uffd_use_device(int fd);

/* thaw_codec.c: one-shot block codecs; decode returns bytes written, -EBADMSG if corrupt. */
int64_t thaw_lz4_bound(size_t n);
int64_t thaw_lz4_encode(const void *src, size_t n, void *dst, size_t cap, int accel);
int64_t thaw_lz4_decode(const void *src, size_t n, void *dst, size_t cap);
int64_t thaw_zstd_bound(size_t n);
int64_t thaw_zstd_encode(const void *src, size_t n, void *dst, size_t cap, int level);
int64_t thaw_zstd_decode(const void *src, size_t n, void *dst, size_t cap);

/* thaw_fill.c: stored pieces of a file put in place in guest memory by several threads. */
enum { THAW_FILL_RAW = 0, THAW_FILL_LZ4 = 1, THAW_FILL_ZSTD = 2 };
/* Positive failure codes of a job (negative ones are -errno of its pread). */
enum { THAW_FILL_SHORT = 1, THAW_FILL_CRC = 2, THAW_FILL_DECODE = 3, THAW_FILL_EINVAL = 4 };
#define THAW_FILL_MAX_THREADS 16
typedef struct {
  uint64_t dst_off, dst_len; /* guest bytes [dst_off, +dst_len) */
  uint64_t src_off, src_len; /* stored bytes in the file; raw: src_len == dst_len, read into place */
  uint32_t crc;              /* crc32 of the stored bytes, checked when `check` */
  uint8_t codec, check;
} thaw_fill_job;
typedef struct {
  int64_t failed_job;        /* -1, or the first job (in table order) that failed */
  int error;                 /* its THAW_FILL_* code or -errno */
  int threads;               /* threads that worked, the caller's included */
  uint64_t bytes_read;
} thaw_fill_result;
/* scratch: `threads` slices of scratch_per_thread bytes for compressed jobs (may be NULL when all
 * are raw). Returns 0, or -1 with res->failed_job set; jobs after a failure may not have run. */
int thaw_fill(int fd, uint8_t *base, const thaw_fill_job *jobs, size_t count, uint8_t *scratch,
              size_t scratch_per_thread, int threads, thaw_fill_result *res);
/* thaw_uffd.c: a userfaultfd as page servers get one (syscall, else the jailer's device, else
 * user-mode faults only); -errno on failure. */
int thaw_uffd_open(int *user_mode_only);

/* thaw_stages.c: page life stages by userfaultfd write-protect (async mode) and PAGEMAP_SCAN. */
int thaw_stages_protect(int uffd, void *addr, size_t len);
/* bitmap[i] = 1 for each page written since last protected; reset re-protects them. */
int64_t thaw_stages_scan(void *addr, size_t len, size_t page, int reset, uint8_t *bitmap);
/* bitmap[i] = 1 for each page still mapped from its file (never copied on write). */
int64_t thaw_stages_file_pages(void *addr, size_t len, size_t page, uint8_t *bitmap);
int64_t thaw_stages_present_pages(void *addr, size_t len, size_t page, uint8_t *bitmap);

/* thaw_offload.c: a guest range's offload tiers, served back through one userfaultfd. */
typedef struct thaw_om thaw_om;
enum { THAW_OM_FILE = 1, THAW_OM_LZ4 = 2, THAW_OM_REMOTE = 3 };
enum { THAW_OM_MODE_WP = 1, THAW_OM_MODE_FULL = 2 }; /* write-protect only; + MISSING (offload) */
typedef struct {
  uint64_t offloaded_pages, faulted_pages, fault_ns, zero_pages, stored_bytes, held_pages;
  uint64_t faults;        /* fault-backs served (each brings faulted pages back in one run) */
  uint64_t prefetched_pages, prefetch_ns; /* brought back in bulk (thaw_om_prefetch), not by faults */
  int failed, mode;
  char why[200];
} thaw_om_stats;
/* -EBUSY: the range already has a userfaultfd (a restore strategy's page server). */
int thaw_om_start(void *addr, size_t len, thaw_om **out, const char **op);
int thaw_om_extend(thaw_om *m, size_t len, const char **op);
/* Adds MISSING faults (done by the first offload); -EINVAL where a file is mapped in the range. */
int thaw_om_enable_missing(thaw_om *m, const char **op);
int thaw_om_set_file(thaw_om *m, int fd);
int thaw_om_connect(thaw_om *m, const char *path, int timeout_ms, const char **op);
/* Memory server side: greets a client on unix_fd with 'T' and tcp_fd (SCM_RIGHTS). 0 or -errno. */
int thaw_om_pass_socket(int unix_fd, int tcp_fd);
/* what: 0 written, 1 written + re-protect, 2 present. bitmap: thaw_om_pages bytes. */
int64_t thaw_om_scan(thaw_om *m, int what, uint8_t *bitmap);
size_t thaw_om_pages(thaw_om *m);
int64_t thaw_om_offload(thaw_om *m, int tier, const uint32_t *pages, size_t n, const char **op);
/* Brings held pages among `pages` (ascending) back in bulk; returns how many, or -errno. */
int64_t thaw_om_prefetch(thaw_om *m, const uint32_t *pages, size_t n, const char **op);
void thaw_om_get_stats(thaw_om *m, thaw_om_stats *st);
/* Pages of [addr, addr+len) on swap now (this process's pagemap), or -errno. */
int64_t thaw_swapped_pages(void *addr, size_t len, size_t page);
/* fill: put every held page back first; else (or when that fails) the range is fenced. Frees m. */
int thaw_om_stop(thaw_om *m, int fill);

/* thaw_fc.c: Firecracker's userfaultfd handshake and a page server for a uffd another process
 * made (guest regions at its addresses, each backed by [offset, offset+size) of a memory file). */
typedef struct thaw_fc thaw_fc;
typedef struct {
  int uffd;                 /* taken: closed by thaw_fc_stop (or on failure) */
  int src_fd;               /* memory file; mapped read-only, the caller keeps its fd */
  int peer;                 /* pid killed on a fatal error, as Firecracker's handlers do; 0 = none */
  int peer_sock;            /* the peer's connection, shut down on a fatal error (so its owner learns
                               even when the peer cannot be killed: a jailed server); -1 = none */
  const uint64_t *regions; size_t region_count; /* region_count x (base, size, offset) */
  const uint32_t *crcs; size_t crc_count; size_t verify_bytes; /* crc32 per piece of the file */
  const thaw_run *prefetch; size_t prefetch_count; /* file byte ranges installed first */
  int record;               /* log the file offsets of faulted pages */
  /* Compressed partitions (Sabre): guest memory is memory_bytes long and src_fd holds stored
   * pieces; jobs use dst_off/dst_len as guest memory bytes, sorted, disjoint. The first fault in
   * a partition reads it, checks its crc32, decodes it and installs all of it; pages in no
   * partition are zero pages. parts == NULL: src_fd is flat guest memory. */
  const thaw_fill_job *parts; size_t part_count; uint64_t memory_bytes;
} thaw_fc_opts;
typedef struct {
  uint64_t faults, copied_pages, zero_pages, prefetched_pages, prefetch_ns;
  uint64_t remove_events, removed_pages, eexist, eagain;
  uint64_t *recorded; size_t recorded_count;   /* malloc'd; caller frees */
  uint32_t *service_ns; size_t service_count;  /* per served fault; malloc'd; caller frees */
  int error; const char *error_op;             /* first fatal error (-errno), or 0 */
} thaw_fc_stats;
/* Receives one message and its SCM_RIGHTS fd (-1 if none) and the peer's pid (SO_PEERCRED). */
int thaw_fc_recv(int sock, int timeout_ms, char *buf, size_t cap, size_t *len, int *fd, int *pid);
int thaw_fc_start(const thaw_fc_opts *o, thaw_fc **out, const char **op);
void thaw_fc_stop(thaw_fc *u, thaw_fc_stats *st);
/* Adds fcRecv/fcStart/fcStop to the addon's exports (napi_env, napi_value: void * here so this
 * header stays free of Node-API types). */
void thaw_fc_register(void *env, void *exports);
/* thaw_sealed.c: sealed snapshot images in memfds, passed to hosts by SCM_RIGHTS (sealed* exports). */
void thaw_sealed_register(void *env, void *exports);
#endif
