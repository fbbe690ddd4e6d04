/*
 * podshim's pause program: the first process of every pod sandbox. It holds the pod's namespaces
 * open and, as PID 1 of a shared PID namespace, reaps orphaned processes of the pod's containers.
 *
 * Build: gcc -static -Os -s -o pause pause.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* PID 1 gets no default signal actions from the kernel: without a handler SIGTERM would be
 * ignored and stopping the sandbox would have to wait for SIGKILL. */
static void on_terminate(int sig) {
  (void)sig;
  _exit(0);
}

/* One SIGCHLD can stand for many exited children, so reap until none is left. */
static void on_child(int sig) {
  (void)sig;
  int saved = errno;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
  errno = saved;
}

static int install(int sig, void (*handler)(int), int flags) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sa.sa_flags = flags;
  sigemptyset(&sa.sa_mask);
  return sigaction(sig, &sa, NULL);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "-v") == 0) {
    puts("podshim-pause");
    return 0;
  }
  if (getpid() != 1) {
    /* Not fatal: useful when run by hand, but orphans of other processes will not reach us. */
    fputs("pause: not running as PID 1, orphans will not be reaped here\n", stderr);
  }
  if (install(SIGINT, on_terminate, 0) < 0 || install(SIGTERM, on_terminate, 0) < 0 ||
      install(SIGCHLD, on_child, SA_NOCLDSTOP | SA_RESTART) < 0) {
    perror("pause: sigaction");
    return 1;
  }
  for (;;) {
    pause();
  }
}
