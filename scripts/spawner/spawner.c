/*
 * podshim-spawner: the helper process through which podshim starts every external program
 * (ip, mount, CNI plugins, ...). podshim writes requests to our fd 0 and reads answers from our
 * fd 1; fd 2 is podshim's stderr. See src/util/exec.ts for why programs are not started from
 * podshim itself.
 *
 * Build: gcc -std=c11 -O2 -Wall -Wextra -Werror -o podshim-spawner spawner.c
 *        (scripts/build-spawner.mjs does this into dist/spawner/).
 *
 * Wire format. Every frame, either way, is
 *     u32 len | len bytes of body
 * and every integer is little-endian. A "str" is u32 n | n bytes (no NUL; arguments and
 * environment strings cannot contain one anyway).
 *
 * Requests (podshim -> helper), body starts with u8 op:
 *     op 1, run:  u32 id | u32 maxOutput | str cmd | u32 argc | argc x str |
 *                 u32 envc | envc x str ("K=V") | u8 hasInput | [str input, if hasInput]
 *                 argv[0] is cmd itself; the args follow it. Without input, stdin is /dev/null.
 *     op 2, kill: u32 id     SIGKILL to the program's process group; ignored for unknown ids.
 * Answers (helper -> podshim), one per run, body starts with u32 id | u8 kind:
 *     kind 0, exited:   i32 exit code | str stdout | str stderr
 *     kind 1, signaled: u32 signal number | str stdout | str stderr
 *     kind 2, error:    str message ("spawn <cmd> ENOENT (No such file or directory)")
 * stdout and stderr hold at most maxOutput bytes each; the rest is read and dropped.
 *
 * Built-in programs. A cmd that starts with "@" names one of the programs below, which the
 * forked child runs itself with a few syscalls instead of exec'ing a binary: what podshim
 * would otherwise run ip, mount or umount for, a dozen times a pod. An exec costs several
 * milliseconds of CPU here (the binary and its libraries mapped and linked); a fork of this
 * small process a fraction of one. They answer like any program: exit 0, or exit 1 with what
 * failed on stderr ("@netns-add /run/netns/x: open: File exists").
 *     @netns-add PATH       a new network namespace, pinned by a bind mount at PATH, as
 *                           `ip netns add` does: PATH's directory is made a shared mount point
 *                           first, so pins propagate to mount namespaces that bind it.
 *     @netns-delete PATH    unpins it (lazy unmount) and removes PATH; gone already is fine.
 *     @netns-lo-up PATH     sets the loopback device of the namespace pinned at PATH up: all
 *                           the CNI loopback plugin does for an ADD, without its exec.
 *     @mount-tmpfs PATH OPTS   a tmpfs at PATH; OPTS as mount -o takes them (nosuid, nodev,
 *                           noexec, ro are flags, the rest go to tmpfs: mode=1777,size=64m).
 *     @umount-lazy PATH     umount -l.
 *
 * A program is answered when it has exited and both its output pipes reached EOF (a program
 * that left a child holding its stdout is not done until that child lets go). One poll()
 * loop serves every program, podshim's request pipe and our answer pipe; SIGCHLD arrives
 * through a self-pipe and every wakeup reaps with waitpid(-1, WNOHANG) until nothing is left,
 * so no child ever stays a zombie. Answers are queued and written when fd 1 is writable: a
 * slow reader never stalls the programs. When fd 0 reaches EOF podshim is gone and we exit;
 * the programs run on in their own process groups.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define OP_RUN 1
#define OP_KILL 2
#define KIND_EXITED 0
#define KIND_SIGNALED 1
#define KIND_ERROR 2

/* A request bigger than this is a broken stream, not a program to run. */
#define MAX_FRAME (256u * 1024 * 1024)
#define DEFAULT_PATH "/usr/bin:/bin"

struct buf {
  char *data;
  size_t len, cap;
};

struct prog {
  struct prog *next;
  uint32_t id;
  pid_t pid;
  int reaped;
  int status;
  int out_fd, err_fd, in_fd; /* -1 once closed */
  size_t max_output;
  struct buf out, err;
  char *input; /* what is left to write is input[input_off..input_len) */
  size_t input_len, input_off;
};

static struct prog *progs;
static struct buf requests; /* bytes read from fd 0, not yet parsed */
static size_t requests_off;
static struct buf answers; /* frames not yet written to fd 1 */
static size_t answers_off;
static int sigchld_pipe[2] = {-1, -1};
static int devnull = -1;

static void die(const char *what) {
  fprintf(stderr, "podshim-spawner: %s: %s\n", what, strerror(errno));
  exit(2);
}

static void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (q == NULL) die("out of memory");
  return q;
}

static void buf_reserve(struct buf *b, size_t more) {
  if (b->cap - b->len >= more) return;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap - b->len < more) cap *= 2;
  b->data = xrealloc(b->data, cap);
  b->cap = cap;
}

static void buf_append(struct buf *b, const void *p, size_t n) {
  if (n == 0) return;
  buf_reserve(b, n);
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

static void buf_free(struct buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

static void put_u32(struct buf *b, uint32_t v) {
  unsigned char le[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
  buf_append(b, le, 4);
}

static void put_str(struct buf *b, const char *p, size_t n) {
  put_u32(b, (uint32_t)n);
  buf_append(b, p, n);
}

static uint32_t get_u32_at(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void set_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) die("fcntl O_NONBLOCK");
}

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

/* The names Node uses in its spawn errors, for the errors exec can give; others get a number. */
static const char *errno_name(int e) {
  switch (e) {
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOEXEC: return "ENOEXEC";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case ELOOP: return "ELOOP";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case E2BIG: return "E2BIG";
    case ENOMEM: return "ENOMEM";
    case ETXTBSY: return "ETXTBSY";
    case EAGAIN: return "EAGAIN";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case EIO: return "EIO";
    case EINVAL: return "EINVAL";
    default: return NULL;
  }
}

/* Frame helpers: a frame's length is filled in once its body is written. */
static size_t frame_begin(struct buf *b) {
  size_t at = b->len;
  put_u32(b, 0);
  return at;
}

static void frame_end(struct buf *b, size_t at) {
  uint32_t n = (uint32_t)(b->len - at - 4);
  unsigned char le[4] = {(unsigned char)n, (unsigned char)(n >> 8), (unsigned char)(n >> 16), (unsigned char)(n >> 24)};
  memcpy(b->data + at, le, 4);
}

static void answer_error(uint32_t id, const char *cmd, int err) {
  char msg[512];
  const char *name = errno_name(err);
  if (name != NULL) snprintf(msg, sizeof msg, "spawn %.300s %s (%s)", cmd, name, strerror(err));
  else snprintf(msg, sizeof msg, "spawn %.300s errno %d (%s)", cmd, err, strerror(err));
  size_t at = frame_begin(&answers);
  put_u32(&answers, id);
  unsigned char kind = KIND_ERROR;
  buf_append(&answers, &kind, 1);
  put_str(&answers, msg, strlen(msg));
  frame_end(&answers, at);
}

static void answer_result(struct prog *p) {
  size_t at = frame_begin(&answers);
  put_u32(&answers, p->id);
  unsigned char kind;
  uint32_t v;
  if (WIFSIGNALED(p->status)) {
    kind = KIND_SIGNALED;
    v = (uint32_t)WTERMSIG(p->status);
  } else {
    kind = KIND_EXITED;
    v = (uint32_t)WEXITSTATUS(p->status);
  }
  buf_append(&answers, &kind, 1);
  put_u32(&answers, v);
  put_str(&answers, p->out.data, p->out.len);
  put_str(&answers, p->err.data, p->err.len);
  frame_end(&answers, at);
}

/*
 * In the child, after fork: exec cmd, looking it up on the request's PATH (glibc's execvpe
 * would search the helper's own PATH, which is empty). Returns only with the errno to report.
 */
static int exec_program(const char *cmd, char **argv, char **envp) {
  if (strchr(cmd, '/') != NULL) {
    execve(cmd, argv, envp);
    return errno;
  }
  const char *path = NULL;
  for (char **e = envp; *e != NULL; e++) {
    if (strncmp(*e, "PATH=", 5) == 0) path = *e + 5;
  }
  if (path == NULL) path = DEFAULT_PATH;
  size_t cmdlen = strlen(cmd);
  int err = ENOENT, saw_eacces = 0;
  char full[PATH_MAX];
  for (const char *dir = path;; dir++) {
    const char *end = strchr(dir, ':');
    size_t dirlen = end ? (size_t)(end - dir) : strlen(dir);
    if (dirlen == 0) { /* an empty entry means the current directory, as for execvp */
      dir = ".";
      dirlen = 1;
    }
    if (dirlen + 1 + cmdlen < sizeof full) {
      memcpy(full, dir, dirlen);
      full[dirlen] = '/';
      memcpy(full + dirlen + 1, cmd, cmdlen + 1);
      execve(full, argv, envp);
      err = errno;
      switch (err) {
        case EACCES: saw_eacces = 1; break; /* a later directory may still have it */
        case ENOENT: case ENOTDIR: case ENAMETOOLONG: case ELOOP: case ESTALE: case ENODEV: case ETIMEDOUT: break;
        default: return err; /* found but unusable (ENOEXEC, E2BIG, ...): stop, as execvp does */
      }
    }
    if (end == NULL) break;
    dir = end;
  }
  return saw_eacces ? EACCES : err;
}

/* ---- Built-in programs (see the top comment); they run in the forked child. ---- */

static int fail_builtin(const char *name, const char *path, const char *what) {
  dprintf(2, "%s %s: %s: %s\n", name, path, what, strerror(errno));
  return 1;
}

/* PATH's directory, in buf. */
static const char *dir_of(const char *path, char *buf, size_t size) {
  const char *slash = strrchr(path, '/');
  size_t n = slash == NULL ? 0 : (size_t)(slash - path);
  if (n == 0 || n >= size) return slash == path ? "/" : ".";
  memcpy(buf, path, n);
  buf[n] = '\0';
  return buf;
}

static int builtin_netns_add(const char *path) {
  const char *name = "@netns-add";
  char buf[PATH_MAX];
  const char *dir = dir_of(path, buf, sizeof buf);
  if (mkdir(dir, 0755) < 0 && errno != EEXIST) return fail_builtin(name, path, "mkdir");
  /* A shared mount point: a bind of the directory itself if it is not a mount point yet. The
   * lock keeps two pods started at once from stacking two such binds. */
  int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0) return fail_builtin(name, path, "open its directory");
  while (flock(dirfd, LOCK_EX) < 0 && errno == EINTR) {
  }
  if (mount("", dir, "none", MS_SHARED | MS_REC, NULL) < 0) {
    if (errno != EINVAL) return fail_builtin(name, path, "make its directory shared");
    if (mount(dir, dir, "none", MS_BIND | MS_REC, NULL) < 0) return fail_builtin(name, path, "bind its directory");
    if (mount("", dir, "none", MS_SHARED | MS_REC, NULL) < 0) return fail_builtin(name, path, "make its directory shared");
  }
  close(dirfd);
  int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (fd < 0) return fail_builtin(name, path, "create");
  close(fd);
  /* This child is thrown away: it may move into the new namespace itself. */
  if (unshare(CLONE_NEWNET) < 0) {
    int e = errno;
    unlink(path);
    errno = e;
    return fail_builtin(name, path, "unshare");
  }
  if (mount("/proc/self/ns/net", path, "none", MS_BIND, NULL) < 0) {
    int e = errno;
    unlink(path);
    errno = e;
    return fail_builtin(name, path, "bind the namespace");
  }
  return 0;
}

static int builtin_netns_delete(const char *path) {
  if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT) return fail_builtin("@netns-delete", path, "unmount");
  if (unlink(path) < 0 && errno != ENOENT) return fail_builtin("@netns-delete", path, "unlink");
  return 0;
}

static int builtin_netns_lo_up(const char *path) {
  const char *name = "@netns-lo-up";
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail_builtin(name, path, "open");
  if (setns(fd, CLONE_NEWNET) < 0) return fail_builtin(name, path, "enter the namespace");
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return fail_builtin(name, path, "socket");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, "lo", 3);
  if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) return fail_builtin(name, path, "read lo's flags");
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) return fail_builtin(name, path, "set lo up");
  return 0;
}

static int builtin_mount_tmpfs(const char *path, const char *opts) {
  unsigned long flags = 0;
  size_t len = strlen(opts);
  char *data = xrealloc(NULL, len + 1);
  size_t used = 0;
  for (const char *o = opts; *o != '\0';) {
    const char *end = strchr(o, ',');
    size_t n = end ? (size_t)(end - o) : strlen(o);
    if (n == 6 && strncmp(o, "nosuid", n) == 0) flags |= MS_NOSUID;
    else if (n == 5 && strncmp(o, "nodev", n) == 0) flags |= MS_NODEV;
    else if (n == 6 && strncmp(o, "noexec", n) == 0) flags |= MS_NOEXEC;
    else if (n == 2 && strncmp(o, "ro", n) == 0) flags |= MS_RDONLY;
    else if (n > 0) {
      if (used > 0) data[used++] = ',';
      memcpy(data + used, o, n);
      used += n;
    }
    o += n + (end != NULL);
  }
  data[used] = '\0';
  if (mount("tmpfs", path, "tmpfs", flags, data) < 0) return fail_builtin("@mount-tmpfs", path, "mount");
  return 0;
}

static int builtin_umount_lazy(const char *path) {
  if (umount2(path, MNT_DETACH) < 0) return fail_builtin("@umount-lazy", path, "umount");
  return 0;
}

/* Runs the built-in named by cmd; returns its exit code. */
static int run_builtin(const char *cmd, char **argv) {
  int argc = 0;
  while (argv[argc] != NULL) argc++;
  if (strcmp(cmd, "@netns-add") == 0 && argc == 2) return builtin_netns_add(argv[1]);
  if (strcmp(cmd, "@netns-delete") == 0 && argc == 2) return builtin_netns_delete(argv[1]);
  if (strcmp(cmd, "@netns-lo-up") == 0 && argc == 2) return builtin_netns_lo_up(argv[1]);
  if (strcmp(cmd, "@mount-tmpfs") == 0 && argc == 3) return builtin_mount_tmpfs(argv[1], argv[2]);
  if (strcmp(cmd, "@umount-lazy") == 0 && argc == 2) return builtin_umount_lazy(argv[1]);
  dprintf(2, "%s: no such built-in program, or wrong arguments (%d)\n", cmd, argc - 1);
  return 2;
}

_Noreturn static void child(const char *cmd, char **argv, char **envp, int in_fd, int out_fd, int err_fd, int report_fd) {
  /* Its own session and so its own process group (pgid = pid), as Node's detached: true
   * gives (libuv calls setsid): a kill of the group reaches what it spawns, and neither a
   * Ctrl-C nor a hangup of a terminal podshim was started from reaches it. */
  setsid();
  /* Default dispositions (SIGPIPE above all, which the helper ignores) and an empty mask. */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  for (int sig = 1; sig < NSIG; sig++) {
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &sa, NULL);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  /* All three sources are fds >= 3 (0-2 are the helper's own), so no dup2 clobbers another;
   * dup2 clears close-on-exec on the copies, every other fd of ours closes at exec. */
  int err = 0;
  if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0) err = errno;
  else if (cmd[0] == '@') {
    /* Started: the report pipe closes empty, as a successful exec closes it. */
    close(report_fd);
    _exit(run_builtin(cmd, argv));
  } else err = exec_program(cmd, argv, envp);
  ssize_t w;
  do w = write(report_fd, &err, sizeof err);
  while (w < 0 && errno == EINTR);
  _exit(127);
}

/* Frees a request's strings. */
static void free_strv(char **v) {
  if (v == NULL) return;
  for (char **s = v; *s != NULL; s++) free(*s);
  free(v);
}

static void start(uint32_t id, size_t max_output, char *cmd, char **argv, char **envp, char *input, size_t input_len, int has_input) {
  int out[2] = {-1, -1}, err[2] = {-1, -1}, in[2] = {-1, -1}, report[2] = {-1, -1};
  int e = 0;
  if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 || (has_input && pipe2(in, O_CLOEXEC) < 0) || pipe2(report, O_CLOEXEC) < 0) {
    e = errno;
    goto fail;
  }
  pid_t pid = fork();
  if (pid < 0) {
    e = errno;
    goto fail;
  }
  if (pid == 0) child(cmd, argv, envp, has_input ? in[0] : devnull, out[1], err[1], report[1]);
  close_fd(&out[1]);
  close_fd(&err[1]);
  close_fd(&in[0]);
  close_fd(&report[1]);
  /* The child writes an errno if exec failed; a successful exec closes the pipe empty. */
  int child_err = 0;
  ssize_t n;
  do n = read(report[0], &child_err, sizeof child_err);
  while (n < 0 && errno == EINTR);
  close_fd(&report[0]);
  if (n == (ssize_t)sizeof child_err) {
    /* The child is exiting right now; reap it here so it is never left a zombie. */
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    e = child_err;
    goto fail;
  }
  struct prog *p = calloc(1, sizeof *p);
  if (p == NULL) die("out of memory");
  p->id = id;
  p->pid = pid;
  p->max_output = max_output;
  p->out_fd = out[0];
  p->err_fd = err[0];
  p->in_fd = in[1];
  set_nonblock(p->out_fd);
  set_nonblock(p->err_fd);
  if (p->in_fd >= 0) {
    set_nonblock(p->in_fd);
    p->input = input;
    p->input_len = input_len;
    input = NULL;
    if (input_len == 0) close_fd(&p->in_fd);
  }
  p->next = progs;
  progs = p;
  free(input);
  free(cmd);
  free_strv(argv);
  free_strv(envp);
  return;
fail:
  close_fd(&out[0]);
  close_fd(&out[1]);
  close_fd(&err[0]);
  close_fd(&err[1]);
  close_fd(&in[0]);
  close_fd(&in[1]);
  close_fd(&report[0]);
  close_fd(&report[1]);
  answer_error(id, cmd, e);
  free(input);
  free(cmd);
  free_strv(argv);
  free_strv(envp);
}

/* A cursor over one request body; any read past its end marks it bad. */
struct cursor {
  const unsigned char *p, *end;
  int bad;
};

static uint32_t take_u32(struct cursor *c) {
  if (c->bad || c->end - c->p < 4) {
    c->bad = 1;
    return 0;
  }
  uint32_t v = get_u32_at(c->p);
  c->p += 4;
  return v;
}

static unsigned char take_u8(struct cursor *c) {
  if (c->bad || c->end - c->p < 1) {
    c->bad = 1;
    return 0;
  }
  return *c->p++;
}

/* A NUL-terminated copy of the next str; *len gets its length. */
static char *take_str(struct cursor *c, size_t *len) {
  uint32_t n = take_u32(c);
  if (c->bad || (size_t)(c->end - c->p) < n) {
    c->bad = 1;
    return NULL;
  }
  char *s = xrealloc(NULL, (size_t)n + 1);
  memcpy(s, c->p, n);
  s[n] = '\0';
  c->p += n;
  if (len != NULL) *len = n;
  return s;
}

/* A NULL-terminated vector of strs, with `first` (if not NULL) in front. */
static char **take_strv(struct cursor *c, const char *first) {
  uint32_t n = take_u32(c);
  if (c->bad || n > (size_t)(c->end - c->p) / 4) { /* every str takes at least 4 bytes */
    c->bad = 1;
    return NULL;
  }
  size_t extra = first != NULL;
  char **v = xrealloc(NULL, ((size_t)n + extra + 1) * sizeof *v);
  size_t i = 0;
  if (first != NULL) {
    v[i] = strdup(first);
    if (v[i++] == NULL) die("out of memory");
  }
  for (uint32_t k = 0; k < n; k++) {
    v[i] = take_str(c, NULL);
    if (v[i] == NULL) break;
    i++;
  }
  v[i] = NULL;
  return v;
}

static void bad_request(const char *why) {
  fprintf(stderr, "podshim-spawner: malformed request (%s); exiting\n", why);
  exit(2);
}

static void handle_request(const unsigned char *body, size_t len) {
  struct cursor c = {body, body + len, 0};
  unsigned char op = take_u8(&c);
  if (op == OP_KILL) {
    uint32_t id = take_u32(&c);
    if (c.bad) bad_request("kill");
    for (struct prog *p = progs; p != NULL; p = p->next) {
      if (p->id != id) continue;
      /* The group outlives its leader while a member holds the output pipes, so it is
       * killed even after the leader was reaped: that is what lets the answer come. */
      if (kill(-p->pid, SIGKILL) < 0 && !p->reaped) kill(p->pid, SIGKILL);
      break;
    }
    return;
  }
  if (op != OP_RUN) bad_request("unknown op");
  uint32_t id = take_u32(&c);
  uint32_t max_output = take_u32(&c);
  char *cmd = take_str(&c, NULL);
  char **argv = cmd != NULL ? take_strv(&c, cmd) : NULL;
  char **envp = argv != NULL ? take_strv(&c, NULL) : NULL;
  unsigned char has_input = take_u8(&c);
  char *input = NULL;
  size_t input_len = 0;
  if (has_input) input = take_str(&c, &input_len);
  if (c.bad) bad_request("run");
  start(id, max_output, cmd, argv, envp, input, input_len, has_input);
}

/* Parses and runs every complete request frame read so far. */
static void handle_requests(void) {
  for (;;) {
    size_t avail = requests.len - requests_off;
    if (avail < 4) break;
    const unsigned char *at = (const unsigned char *)requests.data + requests_off;
    uint32_t n = get_u32_at(at);
    if (n > MAX_FRAME) bad_request("frame too long");
    if (avail - 4 < n) break;
    handle_request(at + 4, n);
    requests_off += 4 + (size_t)n;
  }
  /* Move the unparsed tail to the front once the parsed part dominates. */
  if (requests_off > 0 && requests_off >= requests.len - requests_off) {
    memmove(requests.data, requests.data + requests_off, requests.len - requests_off);
    requests.len -= requests_off;
    requests_off = 0;
  }
  if (requests.len == 0 && requests.cap > 1024 * 1024) buf_free(&requests); /* a big input's memory */
}

static void read_requests(void) {
  for (;;) {
    buf_reserve(&requests, 65536);
    ssize_t n = read(0, requests.data + requests.len, requests.cap - requests.len);
    if (n > 0) {
      requests.len += (size_t)n;
      continue;
    }
    if (n == 0) exit(0); /* podshim is gone; its programs run on in their own groups */
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    die("read requests");
  }
  handle_requests();
}

static void write_answers(void) {
  while (answers_off < answers.len) {
    ssize_t n = write(1, answers.data + answers_off, answers.len - answers_off);
    if (n > 0) {
      answers_off += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n < 0 && errno == EPIPE) exit(0); /* nobody reads answers any more: podshim is gone */
    die("write answers");
  }
  answers.len = answers_off = 0;
  if (answers.cap > 1024 * 1024) buf_free(&answers); /* do not keep one big answer's memory */
}

/* Reads what a program printed: keeps up to max_output bytes, drains the rest. */
static void drain(struct prog *p, int *fd, struct buf *b) {
  static char scratch[65536];
  for (;;) {
    ssize_t n = read(*fd, scratch, sizeof scratch);
    if (n > 0) {
      size_t room = p->max_output > b->len ? p->max_output - b->len : 0;
      buf_append(b, scratch, (size_t)n < room ? (size_t)n : room);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    close_fd(fd); /* EOF, or an error that ends this stream all the same */
    return;
  }
}

static void feed(struct prog *p) {
  while (p->input_off < p->input_len) {
    ssize_t n = write(p->in_fd, p->input + p->input_off, p->input_len - p->input_off);
    if (n > 0) {
      p->input_off += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    /* EPIPE: the program exited or closed stdin without reading it all; how it exited is
     * what its answer reports, so the rest of the input is simply dropped. */
    break;
  }
  close_fd(&p->in_fd);
  free(p->input);
  p->input = NULL;
}

static void reap(void) {
  char sink[256];
  while (read(sigchld_pipe[0], sink, sizeof sink) > 0) {
  }
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid < 0 && errno == EINTR) continue;
    if (pid <= 0) return;
    for (struct prog *p = progs; p != NULL; p = p->next) {
      if (p->pid == pid && !p->reaped) {
        p->reaped = 1;
        p->status = status;
        break;
      }
    }
  }
}

/* Answers and forgets every program that has exited with both output pipes at EOF. */
static void finish(void) {
  for (struct prog **pp = &progs; *pp != NULL;) {
    struct prog *p = *pp;
    if (!p->reaped || p->out_fd >= 0 || p->err_fd >= 0) {
      pp = &p->next;
      continue;
    }
    answer_result(p);
    *pp = p->next;
    close_fd(&p->in_fd);
    free(p->input);
    buf_free(&p->out);
    buf_free(&p->err);
    free(p);
  }
}

static void on_sigchld(int sig) {
  (void)sig;
  int saved = errno;
  ssize_t w = write(sigchld_pipe[1], "x", 1); /* full pipe: a wakeup is pending anyway */
  (void)w;
  errno = saved;
}

int main(void) {
  if (pipe2(sigchld_pipe, O_CLOEXEC | O_NONBLOCK) < 0) die("pipe");
  devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devnull < 0) die("open /dev/null");
  /* Never die writing to a program that closed its stdin, or to podshim. */
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigchld;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGCHLD, &sa, NULL) < 0) die("sigaction SIGCHLD");
  set_nonblock(0);
  set_nonblock(1);

  struct pollfd *fds = NULL;
  struct prog **owner = NULL; /* owner[i]: the program fds[i] belongs to, or NULL */
  size_t cap = 0;
  for (;;) {
    size_t want = 3;
    for (struct prog *p = progs; p != NULL; p = p->next) want += 3;
    if (want > cap) {
      cap = want * 2;
      fds = xrealloc(fds, cap * sizeof *fds);
      owner = xrealloc(owner, cap * sizeof *owner);
    }
    size_t n = 0;
    fds[n] = (struct pollfd){.fd = 0, .events = POLLIN};
    owner[n++] = NULL;
    fds[n] = (struct pollfd){.fd = answers_off < answers.len ? 1 : -1, .events = POLLOUT};
    owner[n++] = NULL;
    fds[n] = (struct pollfd){.fd = sigchld_pipe[0], .events = POLLIN};
    owner[n++] = NULL;
    for (struct prog *p = progs; p != NULL; p = p->next) {
      if (p->out_fd >= 0) {
        fds[n] = (struct pollfd){.fd = p->out_fd, .events = POLLIN};
        owner[n++] = p;
      }
      if (p->err_fd >= 0) {
        fds[n] = (struct pollfd){.fd = p->err_fd, .events = POLLIN};
        owner[n++] = p;
      }
      if (p->in_fd >= 0) {
        fds[n] = (struct pollfd){.fd = p->in_fd, .events = POLLOUT};
        owner[n++] = p;
      }
    }
    if (poll(fds, (nfds_t)n, -1) < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    /* Program fds first: a request handled below may close and reuse fd numbers. */
    for (size_t i = 3; i < n; i++) {
      struct prog *p = owner[i];
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == p->out_fd) drain(p, &p->out_fd, &p->out);
      else if (fds[i].fd == p->err_fd) drain(p, &p->err_fd, &p->err);
      else if (fds[i].fd == p->in_fd) feed(p);
    }
    if (fds[2].revents != 0) reap();
    finish();
    if (fds[1].revents != 0) write_answers();
    if (fds[0].revents != 0) read_requests();
    /* Error answers from this round's requests go out now if the pipe has room. */
    if (answers_off < answers.len) write_answers();
  }
}
