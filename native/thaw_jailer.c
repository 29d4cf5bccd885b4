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
 *      no_new_privs set, every fd above 4 closed,
 *   6. enforces Landlock and a seccomp filter (namespaces, mounts, ptrace, kernel modules, BPF,
 *      keyrings, io_uring, new processes ... refused), then execs the program with an
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
  int no_jail_fs; /* testing aid: skip Landlock (never used by the daemon) */
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
    else if (!strcmp(a, "--no-landlock")) { o->no_jail_fs = (int)number(v, 0, 1, "--no-landlock"); }
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

/* seccomp: x86_64 only (another architecture is refused outright). Refused with EPERM: what a
 * sandbox host never needs and what widens the kernel's attack surface; new processes (fork,
 * vfork, clone without CLONE_THREAD) too. execve stays allowed here (to exec the host program);
 * the host forbids it itself right after start (native jailLockExec, with TSYNC). */
#define DENY(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM)
#define NOSYS(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS)

static void install_seccomp(void) {
  struct sock_filter filter[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
    /* x32 syscalls (nr | 0x40000000) are another ABI: refuse them all. */
    BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
    /* clone: threads only (CLONE_THREAD), never a new process or namespace. */
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 5),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
    BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET, 1, 0),
    BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 1, 0),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    /* clone3 hides its flags behind a pointer: ENOSYS makes glibc fall back to clone. */
    NOSYS(SYS_clone3),
    DENY(SYS_fork), DENY(SYS_vfork),
    DENY(SYS_ptrace), DENY(SYS_process_vm_readv), DENY(SYS_process_vm_writev), DENY(SYS_kcmp),
    DENY(SYS_pidfd_getfd), DENY(SYS_process_madvise),
    DENY(SYS_unshare), DENY(SYS_setns), DENY(SYS_mount), DENY(SYS_umount2), DENY(SYS_pivot_root), DENY(SYS_chroot),
    DENY(SYS_open_tree), DENY(SYS_move_mount), DENY(SYS_fsopen), DENY(SYS_fsconfig), DENY(SYS_fsmount), DENY(SYS_fspick),
    DENY(SYS_mount_setattr), DENY(SYS_name_to_handle_at), DENY(SYS_open_by_handle_at),
    DENY(SYS_bpf), DENY(SYS_perf_event_open), DENY(SYS_fanotify_init), DENY(SYS_userfaultfd),
    DENY(SYS_init_module), DENY(SYS_finit_module), DENY(SYS_delete_module), DENY(SYS_kexec_load), DENY(SYS_kexec_file_load),
    DENY(SYS_keyctl), DENY(SYS_add_key), DENY(SYS_request_key),
    DENY(SYS_iopl), DENY(SYS_ioperm), DENY(SYS_modify_ldt), DENY(SYS_personality), DENY(SYS_syslog), DENY(SYS_acct),
    DENY(SYS_swapon), DENY(SYS_swapoff), DENY(SYS_reboot), DENY(SYS_quotactl), DENY(SYS_vhangup), DENY(SYS_uselib),
    DENY(SYS_setuid), DENY(SYS_setgid), DENY(SYS_setreuid), DENY(SYS_setregid), DENY(SYS_setresuid), DENY(SYS_setresgid),
    DENY(SYS_setgroups), DENY(SYS_setfsuid), DENY(SYS_setfsgid), DENY(SYS_settimeofday), DENY(SYS_clock_settime),
    DENY(SYS_adjtimex), DENY(SYS_clock_adjtime), DENY(SYS_sethostname), DENY(SYS_setdomainname),
    DENY(SYS_lookup_dcookie), DENY(SYS_move_pages), DENY(SYS_migrate_pages), DENY(SYS_mbind), DENY(SYS_set_mempolicy),
    NOSYS(SYS_io_uring_setup), NOSYS(SYS_io_uring_enter), NOSYS(SYS_io_uring_register),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = { .len = (unsigned short)(sizeof filter / sizeof filter[0]), .filter = filter };
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

static void mirror_exit(pid_t child, int alive_fd) {
  /* Ignore what the daemon's terminal or shell might send; SIGKILL from the daemon kills us,
   * and the child then follows through its parent-death signal. `alive_fd` stays open for as
   * long as we live: the child sees its other end hang up if we died before it armed that. */
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
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

  int ruleset = o.no_jail_fs ? -1 : landlock_ruleset(&o);

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
  if (ruleset >= 0 && syscall(SYS_landlock_restrict_self, ruleset, 0) < 0) die("landlock_restrict_self");
  if (close_range(UFFD_DEV_FD + 1, ~0U, 0) < 0) die("close_range");
  install_seccomp();
  execve(o.argv[0], o.argv, clean_env());
  die(o.argv[0]);
}
