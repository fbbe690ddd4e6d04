// The baseline allow-list: the system calls a container may make under RuntimeDefault, as
// data. It matches in effect the default profile Docker, containerd and CRI-O apply (the same
// calls, argument conditions and capability-opened groups, io_uring closed as in Moby 25), with
// one stricter choice: ptrace needs CAP_SYS_PTRACE whatever the kernel version.
//
// Names, not numbers: runc resolves each name for every architecture the profile lists and
// skips names an architecture lacks, so one list serves x86_64, i386 and x32 alike.

/** Host CPU families podshim builds a profile for, by Node's process.arch. */
export const SECCOMP_ARCHITECTURES: Readonly<Record<string, readonly string[]>> = Object.freeze({
  // The native ABI first, then the 32-bit ABIs the same kernel runs.
  x64: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
  arm64: ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
});

export interface ArgCondition {
  index: number;
  op: "SCMP_CMP_EQ" | "SCMP_CMP_LT" | "SCMP_CMP_GT" | "SCMP_CMP_MASKED_EQ";
  value: number;
  valueTwo?: number;
}

/** One allowed group. A container gets it when every condition holds. */
export interface AllowGroup {
  why: string;
  names: readonly string[];
  /** Only on these host families (keys of SECCOMP_ARCHITECTURES). */
  arches?: readonly string[];
  /** Only when the container holds one of these capabilities. */
  withCap?: readonly string[];
  /** Only when it holds none of these (the narrowed form of a call the capability opens). */
  withoutCap?: readonly string[];
  /** One rule per entry; any entry matching allows the call. */
  argsAnyOf?: readonly ArgCondition[];
  /** Refuse with this errno instead of allowing (a refusal that must differ from EPERM). */
  errno?: number;
}

// Namespace flags of clone(2): NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET.
export const CLONE_NAMESPACE_MASK = 0x7e020000;
// AF_ALG (38, the kernel's crypto API) and AF_VSOCK (40, reaches the hypervisor) are closed.
const AF_ALG = 38;
const AF_VSOCK = 40;
// personality(2) values that keep the address-space hardening: PER_LINUX, PER_LINUX32,
// UNAME26, UNAME26|PER_LINUX32, and the query form 0xffffffff.
const SAFE_PERSONALITIES = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];
const ENOSYS = 38;

const FILES = [
  "access", "faccessat", "faccessat2", "chdir", "fchdir", "getcwd", "chmod", "fchmod", "fchmodat",
  "chown", "chown32", "fchown", "fchown32", "fchownat", "lchown", "lchown32", "close", "close_range",
  "creat", "open", "openat", "openat2", "copy_file_range", "dup", "dup2", "dup3", "fadvise64",
  "fadvise64_64", "fallocate", "fcntl", "fcntl64", "fdatasync", "fsync", "sync", "syncfs",
  "sync_file_range", "flock", "fstat", "fstat64", "fstatat64", "newfstatat", "stat", "stat64",
  "lstat", "lstat64", "statx", "fstatfs", "fstatfs64", "statfs", "statfs64", "ftruncate",
  "ftruncate64", "truncate", "truncate64", "getdents", "getdents64", "link", "linkat", "symlink",
  "symlinkat", "unlink", "unlinkat", "rename", "renameat", "renameat2", "mkdir", "mkdirat",
  "rmdir", "mknod", "mknodat", "readlink", "readlinkat", "lseek", "_llseek", "read", "readv",
  "pread64", "preadv", "preadv2", "write", "writev", "pwrite64", "pwritev", "pwritev2",
  "readahead", "sendfile", "sendfile64", "splice", "tee", "vmsplice", "umask", "utime",
  "utimes", "utimensat", "utimensat_time64", "futimesat", "ioctl", "name_to_handle_at",
  "getxattr", "lgetxattr", "fgetxattr", "setxattr", "lsetxattr", "fsetxattr", "listxattr",
  "llistxattr", "flistxattr", "removexattr", "lremovexattr", "fremovexattr",
  "inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch", "fanotify_mark",
  "memfd_create", "memfd_secret", "fchmodat2", "cachestat", "getxattrat", "setxattrat", "listxattrat",
  "removexattrat", "listmount", "statmount",
];

const EVENTS_AND_AIO = [
  "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_wait", "epoll_wait_old",
  "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "poll", "ppoll", "ppoll_time64", "select",
  "_newselect", "pselect6", "pselect6_time64", "io_setup", "io_destroy", "io_submit", "io_cancel",
  "io_getevents", "io_pgetevents", "io_pgetevents_time64", "signalfd", "signalfd4",
  "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime", "timerfd_settime64",
  "pipe", "pipe2",
];

const PROCESSES = [
  "execve", "execveat", "exit", "exit_group", "fork", "vfork", "wait4", "waitid", "waitpid",
  "kill", "tkill", "tgkill", "pidfd_open", "pidfd_send_signal", "process_mrelease",
  "getpid", "getppid", "gettid", "getpgid", "setpgid", "getpgrp", "getsid", "setsid",
  "getuid", "getuid32", "geteuid", "geteuid32", "getgid", "getgid32", "getegid", "getegid32",
  "getresuid", "getresuid32", "getresgid", "getresgid32", "getgroups", "getgroups32",
  "setuid", "setuid32", "setgid", "setgid32", "setreuid", "setreuid32", "setregid", "setregid32",
  "setresuid", "setresuid32", "setresgid", "setresgid32", "setfsuid", "setfsuid32", "setfsgid",
  "setfsgid32", "setgroups", "setgroups32", "capget", "capset", "prctl", "seccomp",
  "getrlimit", "ugetrlimit", "setrlimit", "prlimit64", "getrusage", "getpriority", "setpriority",
  "ioprio_get", "ioprio_set", "sched_getaffinity", "sched_setaffinity", "sched_getattr",
  "sched_setattr", "sched_getparam", "sched_setparam", "sched_getscheduler", "sched_setscheduler",
  "sched_get_priority_max", "sched_get_priority_min", "sched_rr_get_interval",
  "sched_rr_get_interval_time64", "sched_yield", "getcpu", "set_tid_address", "set_robust_list",
  "get_robust_list", "rseq", "restart_syscall", "futex", "futex_time64", "futex_waitv", "futex_wait",
  "futex_wake", "futex_requeue", "uretprobe",
  "set_thread_area", "get_thread_area", "uname", "sysinfo", "getrandom", "membarrier",
  "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
];

const SIGNALS = [
  "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn",
  "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo",
  "sigaltstack", "sigprocmask", "sigreturn", "pause",
];

const MEMORY = [
  "brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync",
  "mlock", "mlock2", "mlockall", "munlock", "munlockall", "remap_file_pages", "pkey_alloc",
  "pkey_free", "pkey_mprotect", "mseal", "map_shadow_stack",
];

const TIME = [
  "alarm", "getitimer", "setitimer", "nanosleep", "clock_nanosleep", "clock_nanosleep_time64",
  "clock_gettime", "clock_gettime64", "clock_getres", "clock_getres_time64", "gettimeofday",
  "time", "times", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime",
  "timer_gettime64", "timer_settime", "timer_settime64",
  // Reading the clock's state; setting it still needs CAP_SYS_TIME in the kernel.
  "adjtimex", "clock_adjtime", "clock_adjtime64",
];

const NETWORK = [
  "accept", "accept4", "bind", "connect", "listen", "getpeername", "getsockname", "getsockopt",
  "setsockopt", "recv", "recvfrom", "recvmsg", "recvmmsg", "recvmmsg_time64", "send", "sendto",
  "sendmsg", "sendmmsg", "shutdown", "socketpair",
  // The 32-bit x86 multiplexer: its arguments sit in memory a filter cannot read.
  "socketcall",
];

const SYSV_AND_POSIX_IPC = [
  "ipc", "msgctl", "msgget", "msgrcv", "msgsnd", "semctl", "semget", "semop", "semtimedop",
  "semtimedop_time64", "shmat", "shmctl", "shmdt", "shmget", "mq_open", "mq_unlink",
  "mq_getsetattr", "mq_notify", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend",
  "mq_timedsend_time64",
];

const SYS_ADMIN = "CAP_SYS_ADMIN";

export const BASELINE_GROUPS: readonly Readonly<AllowGroup>[] = Object.freeze([
  { why: "files and descriptors", names: FILES },
  { why: "waiting for events, asynchronous I/O", names: EVENTS_AND_AIO },
  { why: "processes, credentials, scheduling", names: PROCESSES },
  { why: "signals", names: SIGNALS },
  { why: "memory", names: MEMORY },
  { why: "clocks and timers", names: TIME },
  { why: "sockets", names: NETWORK },
  { why: "System V and POSIX IPC, namespaced", names: SYSV_AND_POSIX_IPC },
  {
    why: "sockets of every family but AF_ALG and AF_VSOCK",
    names: ["socket"],
    argsAnyOf: [
      { index: 0, op: "SCMP_CMP_LT", value: AF_ALG },
      { index: 0, op: "SCMP_CMP_EQ", value: AF_ALG + 1 },
      { index: 0, op: "SCMP_CMP_GT", value: AF_VSOCK },
    ],
  },
  {
    why: "personalities that keep address-space randomisation",
    names: ["personality"],
    argsAnyOf: SAFE_PERSONALITIES.map((value) => ({ index: 0, op: "SCMP_CMP_EQ" as const, value })),
  },
  { why: "x86 thread and segment setup", names: ["arch_prctl"], arches: ["x64"] },
  { why: "x86 local descriptor tables (old 32-bit binaries, Wine)", names: ["modify_ldt"], arches: ["x64"] },
  {
    why: "arm cache and TLS calls",
    names: ["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"],
    arches: ["arm64"],
  },
  // clone without CAP_SYS_ADMIN: threads and processes, never new namespaces. clone3 hides its
  // flags in memory, so it answers ENOSYS and libc falls back to clone.
  {
    why: "clone without namespace flags",
    names: ["clone"],
    withoutCap: [SYS_ADMIN],
    argsAnyOf: [{ index: 0, op: "SCMP_CMP_MASKED_EQ", value: CLONE_NAMESPACE_MASK, valueTwo: 0 }],
  },
  { why: "clone3, whose flags a filter cannot read", names: ["clone3"], withoutCap: [SYS_ADMIN], errno: ENOSYS },
  {
    why: "what CAP_SYS_ADMIN grants: namespaces, mounts, hostname, BPF, tracing",
    names: [
      "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick", "lookup_dcookie", "mount",
      "mount_setattr", "move_mount", "open_tree", "perf_event_open", "quotactl", "quotactl_fd", "setdomainname",
      "sethostname", "setns", "syslog", "umount", "umount2", "unshare", "lsm_get_self_attr", "lsm_set_self_attr",
      "lsm_list_modules",
    ],
    withCap: [SYS_ADMIN],
  },
  { why: "opening files by handle", names: ["open_by_handle_at"], withCap: ["CAP_DAC_READ_SEARCH"] },
  { why: "reboot", names: ["reboot"], withCap: ["CAP_SYS_BOOT"] },
  { why: "chroot", names: ["chroot"], withCap: ["CAP_SYS_CHROOT"] },
  { why: "kernel modules", names: ["init_module", "finit_module", "delete_module"], withCap: ["CAP_SYS_MODULE"] },
  { why: "process accounting", names: ["acct"], withCap: ["CAP_SYS_PACCT"] },
  // Stricter than the baseline, which opens the first three on kernels >= 4.8 for everyone.
  {
    why: "inspecting other processes",
    names: ["ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "process_madvise"],
    withCap: ["CAP_SYS_PTRACE"],
  },
  { why: "raw I/O ports", names: ["iopl", "ioperm"], withCap: ["CAP_SYS_RAWIO"] },
  { why: "setting the clock", names: ["settimeofday", "stime", "clock_settime", "clock_settime64"], withCap: ["CAP_SYS_TIME"] },
  { why: "hanging up the terminal", names: ["vhangup"], withCap: ["CAP_SYS_TTY_CONFIG"] },
  { why: "NUMA memory policy", names: ["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"], withCap: ["CAP_SYS_NICE"] },
  { why: "the kernel log", names: ["syslog"], withCap: ["CAP_SYSLOG"] },
  { why: "BPF", names: ["bpf"], withCap: ["CAP_BPF"] },
  { why: "performance counters", names: ["perf_event_open"], withCap: ["CAP_PERFMON"] },
].map((g) => Object.freeze(g as AllowGroup)));
