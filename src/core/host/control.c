/* control.c: the control channel's client (see control.h). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/host/control.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/rundir.h"

#include "util/banned.h" /* last: after every declaration */

#define MAX_ANSWER 65536

const char *
zl_control_socket(void)
{
  static __thread char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/control.sock", zl_run_dir());
  return path;
}

static int
connect_control(void)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  const char *path = zl_control_socket();
  if (strlen(path) >= sizeof sa.sun_path) {
    zl_error(ENAMETOOLONG, "socket path %s is too long", path);
    return -1;
  }
  memcpy(sa.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1 || connect(fd, (struct sockaddr *)&sa, sizeof sa) == -1) {
    zl_error_sys(errno, "the NBD server's control channel %s (is the volume attached?)",
                 path);
    if (fd >= 0)
      close(fd);
    return -1;
  }
  return fd;
}

static int
send_line(int fd, const json_t *req)
{
  CLEANUP_FREE char *s = json_dumps(req, JSON_COMPACT);
  if (!s) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  size_t len = strlen(s);
  s[len++] = '\n'; /* replaces the NUL: written by length */
  for (const char *p = s; len;) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL); /* the server gone: EPIPE */
    if (n <= 0) {
      zl_error_sys(n == 0 ? EPIPE : errno, "control channel: sending");
      return -1;
    }
    p += n, len -= (size_t)n;
  }
  return 0;
}

static json_t *
read_answer(int fd)
{
  CLEANUP_FREE char *buf = malloc(MAX_ANSWER);
  size_t have = 0;
  if (!buf) {
    zl_error(ENOMEM, "out of memory");
    return NULL;
  }
  while (!memchr(buf, '\n', have)) {
    ssize_t n = have < MAX_ANSWER - 1 ? read(fd, buf + have, MAX_ANSWER - 1 - have) : 0;
    if (n <= 0) {
      zl_error_sys(n == 0 ? EPROTO : errno, "control channel: no answer");
      return NULL;
    }
    have += (size_t)n;
  }
  json_error_t jerr;
  json_t *j = json_loadb(buf, (size_t)((char *)memchr(buf, '\n', have) - buf), 0, &jerr);
  if (!json_is_object(j)) {
    json_decref(j);
    zl_error(EPROTO, "control channel: a bad answer");
    return NULL;
  }
  return j;
}

json_t *
zl_control_call(const json_t *req)
{
  CLEANUP_CLOSE int fd = connect_control();
  if (fd == -1 || send_line(fd, req) == -1)
    return NULL;
  json_t *a = read_answer(fd);
  if (!a)
    return NULL;
  if (!json_is_true(json_object_get(a, "ok"))) {
    json_t *e = json_object_get(a, "errno"), *m = json_object_get(a, "error");
    int err = json_is_integer(e) ? (int)json_integer_value(e) : EIO;
    zl_error(err > 0 ? err : EIO, "%s",
             json_is_string(m) ? json_string_value(m) : "failed");
    json_decref(a);
    return NULL;
  }
  json_object_del(a, "ok");
  return a;
}
