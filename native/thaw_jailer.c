/* thaw-jailer: starts one sandbox host process inside its jail, after Firecracker's jailer.
 *
 * The daemon (root) spawns `thaw-jailer [options] -- /usr/bin/node ... host-main.js`. Running as
 * root, the jailer:
 *   1. joins the host's memory cgroup (so every process of the host is accounted from the start),
 *   2. opens /dev/userfaultfd and leaves it at fd 4 (an unprivileged host can then create
 *      userfaultfds that also handle kernel-mode faults; vm.unprivileged_userfaultfd is 0),
 *   3. unshares mount, PID, IPC, UTS and (unless --net host) network namespaces and forks: the
 *      child is PID 1 of the new PID namespace; the parent waits and mirrors its exit,
 *   4. in the child: makes mounts private, mounts a fresh /proc, sets the hostname, makes the
 *      --expose paths reachable (see expose_paths), prepares a Landlock ruleset (read-only and read-write path lists;
 *      TCP connect only to --tcp-port; no signals or abstract sockets outside the domain),
 *   5. drops privileges: bounding set and ambient capabilities cleared, supplementary groups
 *      set, gid and uid changed to the host's own (never 0), parent-death signal armed,
 *      no_new_privs set, every fd above 5 closed (fd 5: the daemon's channel for sealed
 *      snapshot images, a socketpair end, when the daemon passed one; see native/thaw_sealed.c),
 *   6. enforces Landlock and a seccomp allowlist (see install_seccomp), then execs the program with an
 *      environment holding only Node's IPC channel variables.
 * Exit status 121 means the jail could not be set up (the reason is on stderr); the host then
 * never ran. Everything inherited across execve (uid, caps, no_new_privs, Landlock domain,
 * seccomp filter, namespaces) is set here while the process is single-threaded. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define JAIL_FAILED 121
#define UFFD_DEV_FD 4
/* Kept open for the host: the socket the daemon passes sealed snapshot images over (SCM_RIGHTS). */
#define IMAGE_CHANNEL_FD 5
#define MAX_PATHS 64

/* Landlock ABI constants (Debian 12's headers predate ABI 4-7). */
#define LL_CREATE_RULESET_VERSION (1U << 0)
#define LL_RULE_PATH_BENEATH 1
#define LL_RULE_NET_PORT 2
#define LL_FS_EXECUTE (1ULL << 0)
#define LL_FS_WRITE_FILE (1ULL << 1)
#define LL_FS_READ_FILE (1ULL << 2)
#define LL_FS_READ_DIR (1ULL << 3)
#define LL_FS_TRUNCATE (1ULL << 14)
#define LL_FS_IOCTL_DEV (1ULL << 15)
#define LL_NET_BIND_TCP (1ULL << 0)
#define LL_NET_CONNECT_TCP (1ULL << 1)
#define LL_SCOPE_ABSTRACT_UNIX (1ULL << 0)
#define LL_SCOPE_SIGNAL (1ULL << 1)

struct ll_ruleset_attr { uint64_t handled_access_fs, handled_access_net, scoped; };
struct ll_path_beneath { uint64_t allowed_access; int32_t parent_fd; } __attribute__((packed));
struct ll_net_port { uint64_t allowed_access; uint64_t port; };

struct opts {
  uid_t uid;
  gid_t gid;
  gid_t groups[16];
  int ngroups;
  const char *cgroup_procs;
  const char *ro[MAX_PATHS];
  int nro;
  const char *rw[MAX_PATHS];
  int nrw;
  const char *expose[MAX_PATHS];
  int nexpose;
  int net_host;
  long tcp_port;
  int ioctls_uffd;
  char **argv;
};

static void die(const char *what) {
  fprintf(stderr, "thaw-jailer: %s: %s\n", what, strerror(errno));
  _exit(JAIL_FAILED);
}

static void usage(const char *msg) {
  fprintf(stderr, "thaw-jailer: %s\nusage: thaw-jailer --uid N --gid N [--groups G,G] [--cgroup-procs FILE] "
                  "[--ro PATH]... [--rw PATH]... [--expose PATH]... [--net none|host] [--tcp-port N] -- PROGRAM ARGS...\n", msg);
  _exit(JAIL_FAILED);
}

static long number(const char *s, long min, long max, const char *name) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || v < min || v > max) {
    fprintf(stderr, "thaw-jailer: %s must be an integer in [%ld, %ld], got '%s'\n", name, min, max, s);
    _exit(JAIL_FAILED);
  }
  return v;
}

static void parse(int argc, char **argv, struct opts *o) {
  memset(o, 0, sizeof *o);
  o->uid = (uid_t)-1;
  o->gid = (gid_t)-1;
  o->tcp_port = -1;
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--")) { i++; break; }
    if (!v) usage("an option is missing its value");
    if (!strcmp(a, "--uid")) o->uid = (uid_t)number(v, 1, 0x7fffffff, "--uid");
    else if (!strcmp(a, "--gid")) o->gid = (gid_t)number(v, 1, 0x7fffffff, "--gid");
    else if (!strcmp(a, "--groups")) {
      char *copy = strdup(v), *save = NULL;
      for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (o->ngroups == 16) usage("at most 16 groups");
        o->groups[o->ngroups++] = (gid_t)number(t, 1, 0x7fffffff, "--groups");
      }
      free(copy);
    } else if (!strcmp(a, "--cgroup-procs")) o->cgroup_procs = v;
    else if (!strcmp(a, "--ro")) { if (o->nro == MAX_PATHS) usage("too many --ro"); o->ro[o->nro++] = v; }
    else if (!strcmp(a, "--rw")) { if (o->nrw == MAX_PATHS) usage("too many --rw"); o->rw[o->nrw++] = v; }
    else if (!strcmp(a, "--expose")) { if (o->nexpose == MAX_PATHS || v[0] != '/') usage("--expose takes absolute paths"); o->expose[o->nexpose++] = v; }
    else if (!strcmp(a, "--net")) {
      if (!strcmp(v, "host")) o->net_host = 1;
      else if (strcmp(v, "none")) usage("--net is none or host");
    } else if (!strcmp(a, "--tcp-port")) o->tcp_port = number(v, 1, 65535, "--tcp-port");
    else if (!strcmp(a, "--ioctls")) {
      if (strcmp(v, "uffd")) usage("--ioctls takes uffd");
      o->ioctls_uffd = 1;
    }
    else usage("unknown option");
    i++;
  }
  if (o->uid == (uid_t)-1 || o->gid == (gid_t)-1) usage("--uid and --gid are required (and never 0)");
  if (i >= argc) usage("no program to run after --");
  o->argv = argv + i;
}

static void write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) die(path);
  if (write(fd, text, strlen(text)) < 0) die(path);
  close(fd);
}

/* Adds one path to the ruleset. Paths that do not exist are skipped (not every host has every
 * tier); a rule on a file may only carry file rights. */
static void add_path_rule(int ruleset, const char *path, uint64_t access, uint64_t handled) {
  int fd = open(path, O_PATH | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return;
    die(path);
  }
  struct stat st;
  if (fstat(fd, &st) < 0) die(path);
  if (!S_ISDIR(st.st_mode)) access &= LL_FS_EXECUTE | LL_FS_WRITE_FILE | LL_FS_READ_FILE | LL_FS_TRUNCATE | LL_FS_IOCTL_DEV;
  struct ll_path_beneath rule = { .allowed_access = access & handled, .parent_fd = fd };
  if (syscall(SYS_landlock_add_rule, ruleset, LL_RULE_PATH_BENEATH, &rule, 0) < 0) die("landlock_add_rule");
  close(fd);
}

static void mkdir_p(char *path) {
  for (char *p = path + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(path, 0755) < 0 && errno != EEXIST) die(path);
    *p = '/';
  }
  if (mkdir(path, 0755) < 0 && errno != EEXIST) die(path);
}

/* Makes each --expose path reachable by the unprivileged host at the same absolute path even
 * when an ancestor denies others search permission (a data directory under /root, a test's
 * mkdtemp directory): the highest such ancestor gets an empty tmpfs over it in this mount
 * namespace (hiding the rest of it), and the path is bind-mounted back into place. */
static void expose_paths(const struct opts *o) {
  int fds[MAX_PATHS];
  for (int i = 0; i < o->nexpose; i++) {
    fds[i] = open(o->expose[i], O_PATH | O_CLOEXEC);
    if (fds[i] < 0) die(o->expose[i]);
  }
  for (int i = 0; i < o->nexpose; i++) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s", o->expose[i]) >= (int)sizeof path) { errno = ENAMETOOLONG; die("--expose"); }
    char *hidden = NULL;
    for (char *p = path + 1; (p = strchr(p, '/')); p++) {
      *p = 0;
      struct stat st;
      if (stat(path, &st) < 0) die(path);
      int blocked = !(st.st_mode & S_IXOTH);
      if (blocked) {
        if (mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") < 0) die("mount(tmpfs over a private ancestor)");
        hidden = path;
      }
      *p = '/';
      if (blocked) break;
    }
    if (!hidden) { close(fds[i]); continue; }
    mkdir_p(path);
    char src[64];
    snprintf(src, sizeof src, "/proc/self/fd/%d", fds[i]);
    if (mount(src, path, NULL, MS_BIND | MS_REC, NULL) < 0) die("mount(bind an exposed path)");
    close(fds[i]);
  }
}

static int landlock_ruleset(const struct opts *o) {
  long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);
  if (abi < 1) die("landlock (the kernel has no Landlock; the jail needs ABI >= 1)");
  /* Every filesystem right the running ABI knows: anything not granted below is refused. */
  uint64_t fs_all = (1ULL << 13) - 1;          /* ABI 1: execute .. make_sym */
  if (abi >= 2) fs_all |= 1ULL << 13;          /* refer */
  if (abi >= 3) fs_all |= LL_FS_TRUNCATE;
  if (abi >= 5) fs_all |= LL_FS_IOCTL_DEV;
  struct ll_ruleset_attr attr = { .handled_access_fs = fs_all };
  size_t size = sizeof(uint64_t);
  if (abi >= 4) { attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP; size = 2 * sizeof(uint64_t); }
  if (abi >= 6) { attr.scoped = LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL; size = sizeof attr; }
  int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
  if (rs < 0) die("landlock_create_ruleset");
  uint64_t ro = LL_FS_EXECUTE | LL_FS_READ_FILE | LL_FS_READ_DIR;
  for (int i = 0; i < o->nro; i++) add_path_rule(rs, o->ro[i], ro, fs_all);
  /* Read-write trees: everything but creating device nodes. */
  uint64_t rw = fs_all & ~((1ULL << 6) | (1ULL << 11));
  for (int i = 0; i < o->nrw; i++) add_path_rule(rs, o->rw[i], rw, fs_all);
  if (abi >= 4 && o->tcp_port > 0) {
    struct ll_net_port port = { .allowed_access = LL_NET_CONNECT_TCP, .port = (uint64_t)o->tcp_port };
    if (syscall(SYS_landlock_add_rule, rs, LL_RULE_NET_PORT, &port, 0) < 0) die("landlock_add_rule(net)");
  }
  return rs;
}

/* seccomp: an allowlist (x86_64 only; another architecture or the x32 ABI is refused outright).
 * Allowed: what Node, V8, libuv, glibc, Pyodide and the native addon were seen to call in jailed
 * hosts across the restore, Python, object-store and jail tests (traced with strace -f), plus the
 * close relatives of those calls (the *at, v and 64 variants) and what a host may need under
 * other inputs (file watching, timers, sockets: the network itself is fenced by namespaces and
 * Landlock). clone is allowed for threads only (CLONE_THREAD, no namespace flags). Refused with
 * EPERM, explicitly: what a host must never do (new processes, namespaces, mounts, ptrace and
 * process_vm, BPF, perf, kernel modules, keyrings, uid changes, ...). Anything else fails with
 * ENOSYS, as on a kernel without it. execve stays allowed here (to exec the host program); the
 * host forbids it itself right after start (native jailLockExec, with TSYNC). */
static const int allowed_syscalls[] = {
  /* hottest first: the filter is a linear scan */
  SYS_futex, SYS_read, SYS_write, SYS_epoll_pwait, SYS_epoll_wait, SYS_ioctl, SYS_pread64, SYS_pwrite64, SYS_statx,
  SYS_openat, SYS_close, SYS_mmap, SYS_munmap, SYS_mprotect, SYS_madvise, SYS_brk, SYS_mremap, SYS_mincore,
  SYS_readv, SYS_writev, SYS_preadv, SYS_pwritev, SYS_preadv2, SYS_pwritev2, SYS_open, SYS_creat, SYS_close_range,
  SYS_stat, SYS_fstat, SYS_lstat, SYS_newfstatat, SYS_statfs, SYS_fstatfs, SYS_lseek, SYS_access, SYS_faccessat, SYS_faccessat2,
  SYS_getdents64, SYS_getcwd, SYS_chdir, SYS_fchdir, SYS_readlink, SYS_readlinkat, SYS_rename, SYS_renameat, SYS_renameat2,
  SYS_mkdir, SYS_mkdirat, SYS_rmdir, SYS_unlink, SYS_unlinkat, SYS_link, SYS_linkat, SYS_symlink, SYS_symlinkat,
  SYS_chmod, SYS_fchmod, SYS_fchmodat, SYS_umask, SYS_utimensat, SYS_truncate, SYS_ftruncate, SYS_fallocate, SYS_fadvise64,
  SYS_readahead, SYS_fsync, SYS_fdatasync, SYS_sync_file_range, SYS_flock, SYS_fcntl, SYS_dup, SYS_dup2, SYS_dup3,
  SYS_copy_file_range, SYS_sendfile, SYS_splice, SYS_tee, SYS_memfd_create, SYS_msync,
  SYS_inotify_init1, SYS_inotify_add_watch, SYS_inotify_rm_watch,
  SYS_pipe, SYS_pipe2, SYS_eventfd, SYS_eventfd2, SYS_epoll_create, SYS_epoll_create1, SYS_epoll_ctl, SYS_epoll_pwait2,
  SYS_poll, SYS_ppoll, SYS_select, SYS_pselect6, SYS_timerfd_create, SYS_timerfd_settime, SYS_timerfd_gettime, SYS_signalfd4,
  SYS_socket, SYS_socketpair, SYS_connect, SYS_bind, SYS_listen, SYS_accept, SYS_accept4, SYS_sendto, SYS_recvfrom,
  SYS_sendmsg, SYS_recvmsg, SYS_sendmmsg, SYS_recvmmsg, SYS_shutdown, SYS_getsockname, SYS_getpeername, SYS_setsockopt, SYS_getsockopt,
  SYS_rt_sigaction, SYS_rt_sigprocmask, SYS_rt_sigreturn, SYS_rt_sigpending, SYS_rt_sigtimedwait, SYS_rt_sigsuspend, SYS_sigaltstack,
  SYS_kill, SYS_tgkill, SYS_tkill, SYS_restart_syscall,
  SYS_nanosleep, SYS_clock_nanosleep, SYS_clock_gettime, SYS_clock_getres, SYS_gettimeofday, SYS_time, SYS_times,
  SYS_sched_yield, SYS_sched_getaffinity, SYS_sched_getparam, SYS_sched_getscheduler, SYS_sched_get_priority_max,
  SYS_sched_get_priority_min, SYS_getpriority, SYS_setpriority,
  SYS_getpid, SYS_getppid, SYS_gettid, SYS_getuid, SYS_geteuid, SYS_getgid, SYS_getegid, SYS_getgroups, SYS_getresuid,
  SYS_getresgid, SYS_getpgrp, SYS_getpgid, SYS_getsid, SYS_capget,
  SYS_getrlimit, SYS_prlimit64, SYS_getrusage, SYS_sysinfo, SYS_uname, SYS_getrandom,
  SYS_prctl, SYS_arch_prctl, SYS_set_robust_list, SYS_get_robust_list, SYS_set_tid_address, SYS_rseq, SYS_membarrier,
  SYS_pkey_alloc, SYS_pkey_free, SYS_pkey_mprotect, SYS_futex_waitv,
  SYS_wait4, SYS_waitid, SYS_exit, SYS_exit_group, SYS_seccomp, SYS_execve,
};

static const int refused_syscalls[] = {
  SYS_fork, SYS_vfork, SYS_ptrace, SYS_process_vm_readv, SYS_process_vm_writev, SYS_kcmp, SYS_pidfd_getfd, SYS_process_madvise,
  SYS_unshare, SYS_setns, SYS_mount, SYS_umount2, SYS_pivot_root, SYS_chroot, SYS_open_tree, SYS_move_mount, SYS_fsopen,
  SYS_fsconfig, SYS_fsmount, SYS_fspick, SYS_mount_setattr, SYS_name_to_handle_at, SYS_open_by_handle_at,
  SYS_bpf, SYS_perf_event_open, SYS_fanotify_init, SYS_userfaultfd, SYS_init_module, SYS_finit_module, SYS_delete_module,
  SYS_kexec_load, SYS_kexec_file_load, SYS_keyctl, SYS_add_key, SYS_request_key, SYS_iopl, SYS_ioperm, SYS_modify_ldt,
  SYS_personality, SYS_syslog, SYS_acct, SYS_swapon, SYS_swapoff, SYS_reboot, SYS_quotactl, SYS_vhangup, SYS_uselib,
  SYS_setuid, SYS_setgid, SYS_setreuid, SYS_setregid, SYS_setresuid, SYS_setresgid, SYS_setgroups, SYS_setfsuid, SYS_setfsgid,
  SYS_capset, SYS_settimeofday, SYS_clock_settime, SYS_adjtimex, SYS_clock_adjtime, SYS_sethostname, SYS_setdomainname,
  SYS_lookup_dcookie, SYS_move_pages, SYS_migrate_pages, SYS_mbind, SYS_set_mempolicy,
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* --ioctls uffd (a Firecracker page server, src/firecracker/page-server-jail.ts): ioctl takes only
 * these requests, anything else fails with EPERM: the userfaultfd ones a page server issues on
 * the uffd Firecracker sends it (copy a page, zero a page, wake a deferred fault), and those Node
 * and libuv issue on their own fds (non-blocking and close-on-exec flags, bytes readable,
 * terminal queries on stdio). */
static const unsigned long uffd_ioctls[] = {
  UFFDIO_COPY, UFFDIO_ZEROPAGE, UFFDIO_WAKE,
  FIONBIO, FIOCLEX, FIONCLEX, FIONREAD, TCGETS, TIOCGWINSZ,
};

static void install_seccomp(int ioctls_uffd) {
  static struct sock_filter f[16 + 2 * (NELEM(allowed_syscalls) + NELEM(refused_syscalls)) + 4 + NELEM(uffd_ioctls)];
  size_t n = 0;
#define EMIT(stmt) (f[n++] = (struct sock_filter)stmt)
  EMIT(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)));
  EMIT(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0));
  EMIT(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
  EMIT(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
  /* x32 syscalls (nr | 0x40000000) are another ABI: refuse them all. */
  EMIT(BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1));
  EMIT(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM));
  /* clone: threads only (CLONE_THREAD), never a new process or namespace. */
  EMIT(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 5));
  EMIT(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])));
  EMIT(BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET, 1, 0));
  EMIT(BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 1, 0));
  EMIT(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM));
  EMIT(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  if (ioctls_uffd) {
    /* ioctl: the request (args[1], its low 32 bits: the kernel truncates it to unsigned int) must be listed. */
    EMIT(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_ioctl, 0, 3 + NELEM(uffd_ioctls)));
    EMIT(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])));
    for (size_t i = 0; i < NELEM(uffd_ioctls); i++) EMIT(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)uffd_ioctls[i], (uint8_t)(NELEM(uffd_ioctls) - i), 0));
    EMIT(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM));
    EMIT(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  }
  for (size_t i = 0; i < NELEM(refused_syscalls); i++) {
    EMIT(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)refused_syscalls[i], 0, 1));
    EMIT(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM));
  }
  for (size_t i = 0; i < NELEM(allowed_syscalls); i++) {
    EMIT(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)allowed_syscalls[i], 0, 1));
    EMIT(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  }
  /* clone3 hides its flags behind a pointer: ENOSYS (like anything unlisted) makes glibc fall back to clone. */
  EMIT(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS));
#undef EMIT
  struct sock_fprog prog = { .len = (unsigned short)n, .filter = f };
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0) die("seccomp");
}

/* The environment a host gets: only what Node's IPC channel needs (set by the daemon's spawn). */
static char **clean_env(void) {
  extern char **environ;
  static char *env[8];
  int n = 0;
  for (char **e = environ; *e && n < 7; e++) {
    if (!strncmp(*e, "NODE_CHANNEL_FD=", 16) || !strncmp(*e, "NODE_CHANNEL_SERIALIZATION_MODE=", 32)) env[n++] = *e;
  }
  env[n] = NULL;
  return env;
}

static volatile pid_t host_pid;

/* SIGTERM from the daemon: the host dies at once (SIGKILL) and is reaped here, so it never
 * lingers as an orphan for init to collect while its memory cgroup is being removed. */
static void kill_host(int sig) {
  (void)sig;
  if (host_pid > 0) kill(host_pid, SIGKILL);
}

static void mirror_exit(pid_t child, int alive_fd) {
  /* Ignore what the daemon's terminal or shell might send. SIGTERM (the daemon's way to stop a
   * host) kills the host; SIGKILL kills us, and the host follows through its parent-death
   * signal. `alive_fd` stays open for as long as we live: the child sees its other end hang up
   * if we died before it armed that. */
  host_pid = child;
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGTERM, kill_host);
  if (alive_fd != 3 && dup2(alive_fd, 3) < 0) die("dup2");
  close_range(4, ~0U, 0);
  int status;
  while (waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) die("waitpid");
  }
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    struct rlimit none = { 0, 0 };
    setrlimit(RLIMIT_CORE, &none);
    signal(sig, SIG_DFL);
    kill(getpid(), sig);
    _exit(128 + sig);
  }
  _exit(WEXITSTATUS(status));
}

int main(int argc, char **argv) {
  struct opts o;
  parse(argc, argv, &o);
  if (getuid() != 0) { errno = EPERM; die("the jailer must run as root"); }

  if (o.cgroup_procs) {
    char pid[32];
    snprintf(pid, sizeof pid, "%d", getpid());
    write_file(o.cgroup_procs, pid);
  }
  int dev = open("/dev/userfaultfd", O_RDWR);
  if (dev >= 0 && dev != UFFD_DEV_FD) {
    if (dup2(dev, UFFD_DEV_FD) < 0) die("dup2(/dev/userfaultfd)");
    close(dev);
  } else if (dev < 0) {
    close(UFFD_DEV_FD); /* no device: the host falls back to user-mode-only userfaultfd */
  }

  int ns = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | (o.net_host ? 0 : CLONE_NEWNET);
  if (unshare(ns) < 0) die("unshare");
  int alive[2];
  if (pipe2(alive, O_CLOEXEC) < 0) die("pipe");
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child > 0) mirror_exit(child, alive[1]);
  close(alive[1]);

  /* PID 1 of the host's namespaces from here on. */
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) die("mount(private /)");
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) die("mount(/proc)");
  if (sethostname("thaw-sandbox", 12) < 0) die("sethostname");
  expose_paths(&o);

  int ruleset = landlock_ruleset(&o);

  for (int cap = 0; cap <= 63; cap++) {
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) die("prctl(PR_CAPBSET_DROP)");
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) die("prctl(PR_CAP_AMBIENT)");
  if (setgroups((size_t)o.ngroups, o.groups) < 0) die("setgroups");
  if (setresgid(o.gid, o.gid, o.gid) < 0) die("setresgid");
  if (setresuid(o.uid, o.uid, o.uid) < 0) die("setresuid");
  if (setuid(0) == 0 || geteuid() == 0) { errno = EPERM; die("privileges could be regained"); }
  /* Armed after the uid change (which clears it), then checked against a parent already gone. */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) die("prctl(PR_SET_PDEATHSIG)");
  struct pollfd parent_alive = { .fd = alive[0], .events = POLLIN };
  if (poll(&parent_alive, 1, 0) != 0) _exit(JAIL_FAILED);
  close(alive[0]);
  umask(007);
  if (chdir("/") < 0) die("chdir");
  struct rlimit core = { 0, 0 };
  setrlimit(RLIMIT_CORE, &core);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("prctl(PR_SET_NO_NEW_PRIVS)");
  if (syscall(SYS_landlock_restrict_self, ruleset, 0) < 0) die("landlock_restrict_self");
  if (close_range(IMAGE_CHANNEL_FD + 1, ~0U, 0) < 0) die("close_range");
  install_seccomp(o.ioctls_uffd);
  execve(o.argv[0], o.argv, clean_env());
  die(o.argv[0]);
}
