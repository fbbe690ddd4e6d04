/* sysprobe: makes one system call named on the command line and prints "ok" or the errno
 * name, so a test can tell which calls a seccomp profile lets through. Built static, 64- and
 * 32-bit, by the seccomp integration test. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif

/* Runs fn in a forked child so calls that change the process (unshare, mount) stay there. */
static long in_child(long (*fn)(void)) {
  pid_t pid = fork();
  if (pid < 0) return -errno;
  if (pid == 0) _exit(fn() < 0 ? errno : 0);
  int st = 0;
  waitpid(pid, &st, 0);
  if (!WIFEXITED(st)) return -EFAULT;
  return WEXITSTATUS(st) == 0 ? 0 : -WEXITSTATUS(st);
}

static long do_unshare(void) { return syscall(SYS_unshare, CLONE_NEWUTS); }
static long do_mount(void) { return mount("none", "/tmp", "tmpfs", 0, NULL); }
static long do_ptrace(void) { return ptrace(PTRACE_TRACEME, 0, NULL, NULL); }

static long raw_clone(unsigned long flags) {
  long r = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
  if (r == 0) _exit(0);
  if (r < 0) return -errno;
  waitpid((pid_t)r, NULL, 0);
  return 0;
}

struct clone3_args { unsigned long long flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls; };

static long do_clone3(void) {
  struct clone3_args a;
  memset(&a, 0, sizeof a);
  a.exit_signal = SIGCHLD;
  long r = syscall(SYS_clone3, &a, sizeof a);
  if (r == 0) _exit(0);
  if (r < 0) return -errno;
  waitpid((pid_t)r, NULL, 0);
  return 0;
}

static long ret(long r) { return r < 0 ? -errno : r; }

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: sysprobe CALL\n");
    return 2;
  }
  const char *c = argv[1];
  long r;
  errno = 0;
  if (!strcmp(c, "hello")) { printf("hello from a %d-bit process\n", (int)(sizeof(void *) * 8)); return 0; }
  else if (!strcmp(c, "unshare")) r = in_child(do_unshare);
  else if (!strcmp(c, "mount")) r = in_child(do_mount);
  else if (!strcmp(c, "ptrace")) r = in_child(do_ptrace);
  else if (!strcmp(c, "keyctl")) r = ret(syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* session */, 0));
  else if (!strcmp(c, "bpf")) { char attr[128] = {0}; r = ret(syscall(SYS_bpf, 0 /* MAP_CREATE */, attr, sizeof attr)); }
  else if (!strcmp(c, "kexec_load")) r = ret(syscall(SYS_kexec_load, 0, 0, NULL, 0));
  else if (!strcmp(c, "clone-newns")) r = raw_clone(CLONE_NEWNS);
  else if (!strcmp(c, "clone-newuser")) r = raw_clone(CLONE_NEWUSER);
  else if (!strcmp(c, "clone-plain")) r = raw_clone(0);
  else if (!strcmp(c, "clone3")) r = do_clone3();
  else if (!strcmp(c, "socket-inet")) { r = ret(socket(AF_INET, SOCK_STREAM, 0)); if (r >= 0) { close((int)r); r = 0; } }
  else if (!strcmp(c, "socket-vsock")) { r = ret(socket(AF_VSOCK, SOCK_STREAM, 0)); if (r >= 0) { close((int)r); r = 0; } }
  else if (!strcmp(c, "personality-query")) r = ret(personality(0xffffffff)) >= 0 ? 0 : -errno;
  else if (!strcmp(c, "personality-noaslr")) r = ret(personality(ADDR_NO_RANDOMIZE)) >= 0 ? 0 : -errno;
  else if (!strcmp(c, "io_uring_setup")) { char p[120] = {0}; r = ret(syscall(SYS_io_uring_setup, 1, p)); if (r > 0) { close((int)r); r = 0; } }
  else if (!strcmp(c, "unlisted")) r = ret(syscall(argc > 2 ? atol(argv[2]) : 1000, 0, 0, 0));
  else {
    fprintf(stderr, "sysprobe: unknown call %s\n", c);
    return 2;
  }
  if (r >= 0) {
    printf("ok\n");
    return 0;
  }
  const char *name = strerrorname_np((int)-r);
  printf("%s\n", name ? name : "unknown");
  return 1;
}
