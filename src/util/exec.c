/* exec.c: see exec.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "compat.h"
#include "error.h"
#include "exec.h"
#include "log.h"
#include "strbuf.h"

#include "util/banned.h" /* last: after every declaration */

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define OUTPUT_MAX   (256u << 20)

extern char **environ;

void
zl_exec_result_free(struct zl_exec_result *res)
{
  free(res->out);
  free(res->err);
  res->out = res->err = NULL;
  res->outlen = res->errlen = 0;
}

const char *
zl_exec_reason(const struct zl_exec_result *res)
{
  static _Thread_local char buf[512];
  const char *e = res->err ? res->err : "";
  size_t n = strcspn(e, "\n");

  if (n == 0)
    snprintf(buf, sizeof buf, "exit status %d", res->status);
  else
    snprintf(buf, sizeof buf, "%.*s", (int)n, e);
  return buf;
}

/* The executable for name: itself if it has a '/', else the first
 * executable regular file in PATH (a system default when unset).  Looked
 * up with access(), not by trying to spawn: a failed posix_spawn still
 * costs a process.  Remembered for the life of the process, per name and
 * PATH. */
static const char *
resolve(const char *name, char *buf, size_t len)
{
  static _Thread_local struct {
    char name[64], path[4096], env[4096];
  } cache[4];
  const char *path = getenv("PATH");
  struct stat st;

  if (strchr(name, '/'))
    return name;
  if (!path || !*path)
    path = DEFAULT_PATH;
  for (size_t i = 0; i < sizeof cache / sizeof cache[0]; i++) {
    if (strcmp(cache[i].name, name) == 0 && strcmp(cache[i].env, path) == 0)
      return snprintf(buf, len, "%s", cache[i].path), buf;
  }
  for (const char *p = path; *p;) {
    size_t n = strcspn(p, ":");
    snprintf(buf, len, "%.*s/%s", (int)(n ? n : 1), n ? p : ".", name);
    if (access(buf, X_OK) == 0 && stat(buf, &st) == 0 && S_ISREG(st.st_mode)) {
      for (size_t i = 0; i < sizeof cache / sizeof cache[0]; i++) {
        if (!cache[i].name[0]) {
          snprintf(cache[i].name, sizeof cache[i].name, "%s", name);
          snprintf(cache[i].path, sizeof cache[i].path, "%s", buf);
          snprintf(cache[i].env, sizeof cache[i].env, "%s", path);
          break;
        }
      }
      return buf;
    }
    p += n + (p[n] == ':');
  }
  return NULL;
}

/* Spawn argv with fds 0-2 from the pipes and nothing else inherited,
 * searching PATH (a system default when unset).  posix_spawn uses
 * vfork semantics: no copy of our address space, and exec failures come
 * back here as errors.  Nothing else inherited: every descriptor of ours
 * from 3 on is marked close-on-exec first (this program hands none to a
 * child; ours are opened O_CLOEXEC, this catches those a library or our
 * caller left open).  Not posix_spawn_file_actions_addclosefrom_np: that
 * is glibc 2.34, and it needs close_range (Linux 5.9) to be cheap. */
static int
spawn(const char *const *argv, int in, int out, int err, pid_t *pid)
{
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  sigset_t none, dfl;
  char full[4096];
  int r = ENOENT;

  zl_cloexec_from(3); /* cannot fail but without /proc and RLIMIT_NOFILE */
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in, 0);
  posix_spawn_file_actions_adddup2(&fa, out, 1);
  posix_spawn_file_actions_adddup2(&fa, err, 2);
  posix_spawnattr_init(&attr);
  sigemptyset(&none);
  sigemptyset(&dfl);
  sigaddset(&dfl, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &dfl);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  const char *prog = resolve(argv[0], full, sizeof full);
  if (prog)
    r = posix_spawn(pid, prog, &fa, &attr, (char *const *)argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  return r;
}

static int
append(char **buf, size_t *len, size_t *cap, const char *data, size_t n)
{
  if (*len + n + 1 > *cap) {
    size_t nc = *cap ? *cap : 4096;
    while (nc < *len + n + 1)
      nc *= 2;
    if (nc > OUTPUT_MAX)
      return -1;
    char *nb = realloc(*buf, nc);
    if (!nb)
      return -1;
    *buf = nb;
    *cap = nc;
  }
  memcpy(*buf + *len, data, n);
  *len += n;
  (*buf)[*len] = '\0';
  return 0;
}

int
zl_exec(const char *const *argv, const char *stdin_data, struct zl_exec_result *res)
{
  return zl_exec_stream(argv, stdin_data, NULL, NULL, res);
}

#define STREAM_BUF (1u << 20)

int
zl_exec_stream(const char *const *argv, const char *stdin_data, zl_exec_sink sink,
               void *opaque, struct zl_exec_result *res)
{
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
  size_t outcap = 0, errcap = 0, inlen = stdin_data ? strlen(stdin_data) : 0, inoff = 0;
  struct timespec t0, t1;
  pid_t pid;
  int wstatus;

  memset(res, 0, sizeof *res);
  if (pipe2(in, O_CLOEXEC) == -1 || pipe2(out, O_CLOEXEC) == -1 ||
      pipe2(err, O_CLOEXEC) == -1) {
    zl_error_sys(errno, "%s: pipe", argv[0]);
    goto fail_fds;
  }
  /* a stream's writer blocks less often on a larger pipe (zfs send on
   * zfs-fuse: each full 64 KiB pipe is a wake-up of the daemon); best
   * effort, the default size works too */
  if (sink)
    (void)fcntl(out[1], F_SETPIPE_SZ, (int)STREAM_BUF);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int sr = spawn(argv, in[0], out[1], err[1], &pid);
  if (sr != 0) {
    if (sr == ENOENT)
      zl_error(ENOENT, "%s is not installed (not found in PATH)", argv[0]);
    else
      zl_error_sys(sr, "cannot run %s", argv[0]);
    goto fail_fds;
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  in[0] = out[1] = err[1] = -1;
  if (inlen == 0) {
    close(in[1]);
    in[1] = -1;
  } else {
    fcntl(in[1], F_SETFL, O_NONBLOCK);
  }

  char small[65536];
  char *buf = small;
  size_t bufsize = sizeof small;
  if (sink && (buf = malloc(STREAM_BUF)) != NULL)
    bufsize = STREAM_BUF;
  if (!buf)
    buf = small;
  res->sink_failed = false;

  struct pollfd p[3];
  for (;;) {
    int n = 0, iout = -1, ierr = -1, iin = -1;
    if (out[0] >= 0)
      iout = n, p[n++] = (struct pollfd){.fd = out[0], .events = POLLIN};
    if (err[0] >= 0)
      ierr = n, p[n++] = (struct pollfd){.fd = err[0], .events = POLLIN};
    if (in[1] >= 0)
      iin = n, p[n++] = (struct pollfd){.fd = in[1], .events = POLLOUT};
    if (n == 0)
      break;
    if (poll(p, (nfds_t)n, -1) == -1) {
      if (errno == EINTR)
        continue;
      break;
    }
    for (int k = 0; k < 2; k++) {
      int idx = k == 0 ? iout : ierr;
      int *fd = k == 0 ? &out[0] : &err[0];
      if (idx < 0 || !(p[idx].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      ssize_t r = read(*fd, buf, k == 0 ? bufsize : sizeof small);
      if (r > 0) {
        int a;
        if (k == 0 && sink) {
          /* the sink has the error: stop reading, the child gets EPIPE */
          a = sink(opaque, buf, (size_t)r);
          if (a == -1)
            res->sink_failed = true;
        } else {
          a = k == 0 ? append(&res->out, &res->outlen, &outcap, buf, (size_t)r)
                     : append(&res->err, &res->errlen, &errcap, buf, (size_t)r);
        }
        if (a == -1) { /* too much output: stop reading, the child gets EPIPE */
          close(*fd);
          *fd = -1;
        }
      } else if (r == 0 || errno != EINTR) {
        close(*fd);
        *fd = -1;
      }
    }
    if (iin >= 0 && (p[iin].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = write(in[1], stdin_data + inoff, inlen - inoff);
      if (w > 0)
        inoff += (size_t)w;
      if (w < 0 ? errno != EAGAIN && errno != EINTR : inoff == inlen) {
        close(in[1]);
        in[1] = -1;
      }
    }
  }
  if (buf != small)
    free(buf);
  while (waitpid(pid, &wstatus, 0) == -1) {
    if (errno != EINTR) {
      zl_error_sys(errno, "%s: waitpid", argv[0]);
      zl_exec_result_free(res);
      return -1;
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  res->status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  if (!res->out && append(&res->out, &res->outlen, &outcap, "", 0) == -1)
    goto oom;
  if (!res->err && append(&res->err, &res->errlen, &errcap, "", 0) == -1)
    goto oom;
  if (zl_log_enabled(LOG_DEBUG)) {
    struct zl_sb b = ZL_SB_INIT;
    zl_sb_join(&b, argv, " ");
    char *line = zl_sb_take(&b);
    zl_debug("exec: %s -> %d in %.1f ms", line ? line : argv[0], res->status,
             (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
                 (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    free(line);
    zl_error_clear();
  }
  return 0;

oom:
  zl_exec_result_free(res);
  zl_error(ENOMEM, "out of memory");
  return -1;

fail_fds:
  for (int i = 0; i < 2; i++) {
    if (in[i] >= 0)
      close(in[i]);
    if (out[i] >= 0)
      close(out[i]);
    if (err[i] >= 0)
      close(err[i]);
  }
  return -1;
}

int
zl_exec_start(const char *const *argv, struct zl_exec_child *c)
{
  int in[2] = {-1, -1}, err[2] = {-1, -1}, null = -1;
  pid_t pid;

  c->pid = -1;
  c->in = c->err = -1;
  c->name = argv[0];
  if (pipe2(in, O_CLOEXEC) == -1 || pipe2(err, O_CLOEXEC) == -1 ||
      (null = open("/dev/null", O_WRONLY | O_CLOEXEC)) == -1) {
    zl_error_sys(errno, "%s: pipe", argv[0]);
    goto fail;
  }
  int sr = spawn(argv, in[0], null, err[1], &pid);
  if (sr != 0) {
    if (sr == ENOENT)
      zl_error(ENOENT, "%s is not installed (not found in PATH)", argv[0]);
    else
      zl_error_sys(sr, "cannot run %s", argv[0]);
    goto fail;
  }
  close(in[0]);
  close(err[1]);
  close(null);
  c->pid = pid;
  c->in = in[1];
  c->err = err[0];
  return 0;

fail:
  for (int i = 0; i < 2; i++) {
    if (in[i] >= 0)
      close(in[i]);
    if (err[i] >= 0)
      close(err[i]);
  }
  if (null >= 0)
    close(null);
  return -1;
}

int
zl_exec_finish(struct zl_exec_child *c, struct zl_exec_result *res)
{
  size_t errcap = 0;
  char buf[4096];
  int wstatus;

  memset(res, 0, sizeof *res);
  if (c->in >= 0)
    close(c->in);
  c->in = -1;
  for (;;) {
    ssize_t r = read(c->err, buf, sizeof buf);
    if (r > 0) {
      if (append(&res->err, &res->errlen, &errcap, buf, (size_t)r) == -1)
        break;
    } else if (r == 0 || errno != EINTR) {
      break;
    }
  }
  close(c->err);
  c->err = -1;
  while (waitpid(c->pid, &wstatus, 0) == -1) {
    if (errno != EINTR) {
      zl_error_sys(errno, "%s: waitpid", c->name);
      zl_exec_result_free(res);
      return -1;
    }
  }
  c->pid = -1;
  res->status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  size_t outcap = 0;
  if (append(&res->out, &res->outlen, &outcap, "", 0) == -1 ||
      (!res->err && append(&res->err, &res->errlen, &errcap, "", 0) == -1)) {
    zl_exec_result_free(res);
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  return 0;
}
