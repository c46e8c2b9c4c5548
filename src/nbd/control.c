/* control.c: the server's control channel, <run>/control.sock (0600; a
 * peer whose uid (SO_PEERCRED) is neither root nor the server's is
 * refused).  The short-lived plugin processes ask the long-lived server
 * for what must outlive them: mirrors (SXM) and import sockets.
 *
 * Protocol: the client sends one JSON object on one line, the server
 * answers one JSON object on one line, and so on until either closes.
 * Every request has "op"; every answer has "ok": true and the op's
 * fields, or "ok": false, "errno" (a number) and "error" (a message).
 *
 *   {"op":"ping"}                              -> {"version","pid"} (the
 *                                                  server's; doctor compares)
 *   {"op":"mirror","export":E,"remote":URI}    -> {"id":ID}
 *   {"op":"mirror-stat","id":ID}               -> {"failed","complete",
 *                                                  "cancelled","progress",
 *                                                  "copy_seconds","error"}
 *   {"op":"mirror-cancel","id":ID}             -> {}
 *   {"op":"mirror-destroy","id":ID}            -> {}  (unknown id: ok)
 *   {"op":"mirror-ls"}                         -> {"ids":[ID...]}
 *   {"op":"mirror-release","export":E}         -> {}  (destroys E's mirrors)
 *   {"op":"import","export":E}                 -> {"socket":PATH}
 *
 * A mirror holds its export (and so the volume's one write path, which
 * every connection to the export shares) until it is destroyed or the
 * server stops.  An import socket (one per export, made once) takes a
 * connected fd by SCM_RIGHTS and serves NBD on it for that export only,
 * whatever name the client asks for. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/io/mirror.h"
#include "nbd/nbd.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"
#include "util/uuid.h"

#include "util/banned.h" /* last: after every declaration */

#define MAX_MIRRORS 64
#define MAX_IMPORTS 256
#define MAX_LINE    65536

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
  char id[40];
  struct nbd_export *exp;
  struct zl_mirror *m;
} mirrors[MAX_MIRRORS];
static struct {
  char *export, *path;
  int fd;
} imports[MAX_IMPORTS];
static char import_dir[PATH_MAX];

static json_t *
fail_reply(void)
{
  return json_pack("{s:b, s:i, s:s}", "ok", 0, "errno", zl_error_errno(), "error",
                   zl_error_msg());
}

static int
find_mirror(const char *id)
{
  for (int i = 0; i < MAX_MIRRORS; i++) {
    if (mirrors[i].m && strcmp(mirrors[i].id, id) == 0)
      return i;
  }
  zl_error(ENOENT, "no mirror %s on this server", id);
  return -1;
}

/* --- mirrors -------------------------------------------------------------- */

static json_t *
op_mirror(const json_t *req)
{
  const char *name, *remote;
  if (zl_json_string(req, "export", "request", &name) == -1 ||
      zl_json_string(req, "remote", "request", &remote) == -1)
    return NULL;
  struct nbd_export *e = nbd_export_get(name, NULL);
  if (!e)
    return NULL;
  if (e->readonly) {
    nbd_export_put(e);
    zl_error(EROFS, "export %s is read-only: there is nothing to mirror", name);
    return NULL;
  }
  /* a mirror of this export that failed or was cancelled (xapi never
   * destroys one) gives way: it leaves the write path, keeps its stat */
  pthread_mutex_lock(&lock);
  for (int i = 0; i < MAX_MIRRORS; i++) {
    struct zl_mirror_stat st;
    if (mirrors[i].m && mirrors[i].exp == e) {
      zl_mirror_stat(mirrors[i].m, &st);
      if (st.failed)
        zl_mirror_cancel(mirrors[i].m);
    }
  }
  pthread_mutex_unlock(&lock);
  struct zl_mirror *m = zl_io_mirror_start(e->fd, remote);
  if (!m) {
    nbd_export_put(e);
    return NULL;
  }
  pthread_mutex_lock(&lock);
  int i = 0;
  while (i < MAX_MIRRORS && mirrors[i].m)
    i++;
  if (i == MAX_MIRRORS) {
    pthread_mutex_unlock(&lock);
    zl_mirror_free(m);
    nbd_export_put(e);
    zl_error(EMFILE, "too many mirrors");
    return NULL;
  }
  zl_uuid_generate(mirrors[i].id);
  mirrors[i].exp = e;
  mirrors[i].m = m;
  json_t *r = json_pack("{s:s}", "id", mirrors[i].id);
  pthread_mutex_unlock(&lock);
  zl_info("mirror %s: export %s to %s", json_string_value(json_object_get(r, "id")), name,
          remote);
  return r;
}

static json_t *
op_mirror_stat(const json_t *req)
{
  const char *id;
  struct zl_mirror_stat st;
  if (zl_json_string(req, "id", "request", &id) == -1)
    return NULL;
  pthread_mutex_lock(&lock);
  int i = find_mirror(id);
  if (i >= 0)
    zl_mirror_stat(mirrors[i].m, &st);
  pthread_mutex_unlock(&lock);
  if (i < 0)
    return NULL;
  return json_pack("{s:b, s:b, s:b, s:f, s:f, s:s}", "failed", st.failed, "complete",
                   st.complete, "cancelled", st.cancelled, "progress", st.progress,
                   "copy_seconds", st.copy_seconds, "error", st.error);
}

/* cancel (destroy: false) or destroy a mirror */
static json_t *
op_mirror_end(const json_t *req, bool destroy)
{
  const char *id;
  struct zl_mirror *m = NULL;
  struct nbd_export *e = NULL;
  if (zl_json_string(req, "id", "request", &id) == -1)
    return NULL;
  pthread_mutex_lock(&lock);
  int i = find_mirror(id);
  if (i >= 0 && destroy) {
    m = mirrors[i].m, e = mirrors[i].exp;
    mirrors[i].m = NULL, mirrors[i].exp = NULL;
  } else if (i >= 0) {
    zl_mirror_cancel(mirrors[i].m);
  }
  pthread_mutex_unlock(&lock);
  if (i < 0 && !destroy)
    return NULL;
  zl_mirror_free(m);
  nbd_export_put(e);
  return json_object();
}

/* Destroy every mirror of an export (its volume is being detached:
 * nothing will write it any more, and xapi never calls Data.destroy). */
static json_t *
op_mirror_release(const json_t *req)
{
  const char *name;
  if (zl_json_string(req, "export", "request", &name) == -1)
    return NULL;
  for (;;) {
    struct zl_mirror *m = NULL;
    struct nbd_export *e = NULL;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < MAX_MIRRORS && !m; i++) {
      if (mirrors[i].m && strcmp(mirrors[i].exp->name, name) == 0) {
        m = mirrors[i].m, e = mirrors[i].exp;
        mirrors[i].m = NULL, mirrors[i].exp = NULL;
      }
    }
    pthread_mutex_unlock(&lock);
    if (!m)
      return json_object();
    zl_info("mirror of %s: released (the volume is detached)", name);
    zl_mirror_free(m);
    nbd_export_put(e);
  }
}

static json_t *
op_mirror_ls(void)
{
  json_t *ids = json_array();
  pthread_mutex_lock(&lock);
  for (int i = 0; i < MAX_MIRRORS; i++) {
    if (mirrors[i].m)
      json_array_append_new(ids, json_string(mirrors[i].id));
  }
  pthread_mutex_unlock(&lock);
  return json_pack("{s:o}", "ids", ids);
}

/* --- imports ------------------------------------------------------------------ */

struct import_arg {
  int fd;
  char *export;
};

/* The connected fd the peer passed (SCM_RIGHTS), or -1. */
static int
receive_fd(int sock)
{
  char byte;
  struct iovec iov = {&byte, 1};
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } u;
  struct msghdr msg = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u};
  if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) <= 0)
    return -1;
  int fd = -1;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
        c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
      for (int k = 0; k < n; k++) {
        int x;
        memcpy(&x, CMSG_DATA(c) + k * sizeof(int), sizeof x);
        if (fd == -1)
          fd = x;
        else
          close(x); /* one fd per message */
      }
    }
  }
  return fd;
}

static void *
import_thread(void *arg)
{
  struct import_arg a = *(struct import_arg *)arg;
  free(arg);
  zl_log_set_tag("import");
  for (;;) {
    int s = accept4(a.fd, NULL, NULL, SOCK_CLOEXEC);
    if (s == -1) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      break; /* closed: the server stops */
    }
    struct ucred cr;
    socklen_t cl = sizeof cr;
    int fd = -1;
    if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0 &&
        (cr.uid == 0 || cr.uid == geteuid()))
      fd = receive_fd(s);
    close(s);
    if (fd == -1) {
      zl_warn("import %s: no fd received", a.export);
      continue;
    }
    if (nbd_serve_fd(fd, a.export) == -1)
      zl_warn("import %s: %s", a.export, zl_error_msg());
  }
  free(a.export);
  return NULL;
}

static int
listen_at(const char *path)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) {
    zl_error(ENAMETOOLONG, "socket path %s is too long", path);
    return -1;
  }
  memcpy(sa.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1) {
    zl_error_sys(errno, "socket");
    return -1;
  }
  unlink(path);
  mode_t old = umask(0177);
  int r = bind(fd, (struct sockaddr *)&sa, sizeof sa);
  umask(old);
  if (r == -1 || listen(fd, 64) == -1) {
    zl_error_sys(errno, "listen on %s", path);
    close(fd);
    return -1;
  }
  return fd;
}

static json_t *
op_import(const json_t *req)
{
  const char *name;
  if (zl_json_string(req, "export", "request", &name) == -1)
    return NULL;
  struct nbd_export *e = nbd_export_get(name, NULL); /* attached and writable? */
  if (!e)
    return NULL;
  bool ro = e->readonly;
  nbd_export_put(e);
  if (ro) {
    zl_error(EROFS, "export %s is read-only: it cannot receive a mirror", name);
    return NULL;
  }
  pthread_mutex_lock(&lock);
  int i = 0, free_i = -1;
  for (; i < MAX_IMPORTS; i++) {
    if (imports[i].export && strcmp(imports[i].export, name) == 0)
      break;
    if (!imports[i].export && free_i < 0)
      free_i = i;
  }
  json_t *r = NULL;
  if (i < MAX_IMPORTS) { /* idempotent */
    r = json_pack("{s:s}", "socket", imports[i].path);
  } else if (free_i < 0) {
    zl_error(EMFILE, "too many import sockets");
  } else {
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/import-%d.sock", import_dir, free_i);
    struct import_arg *a = malloc(sizeof *a);
    int fd = a ? listen_at(path) : -1;
    pthread_t th;
    if (fd >= 0 && (a->export = strdup(name)) && (a->fd = fd, true) &&
        pthread_create(&th, NULL, import_thread, a) == 0) {
      pthread_detach(th);
      imports[free_i].export = strdup(name);
      imports[free_i].path = strdup(path);
      imports[free_i].fd = fd;
      r = json_pack("{s:s}", "socket", path);
      zl_info("import %s: listening on %s", name, path);
    } else {
      if (fd >= 0)
        close(fd);
      if (a)
        free(a->export);
      free(a);
      if (fd >= 0)
        zl_error(ENOMEM, "import %s: cannot start its listener", name);
    }
  }
  pthread_mutex_unlock(&lock);
  return r;
}

/* --- the channel ----------------------------------------------------------------- */

static json_t *
dispatch(const json_t *req)
{
  const char *op;
  if (!json_is_object(req)) {
    zl_error(EINVAL, "a request must be a JSON object");
    return NULL;
  }
  if (zl_json_string(req, "op", "request", &op) == -1)
    return NULL;
  if (strcmp(op, "ping") == 0)
    return json_pack("{s:s, s:i}", "version", ZFS_LIVE_VERSION, "pid", (int)getpid());
  if (strcmp(op, "mirror") == 0)
    return op_mirror(req);
  if (strcmp(op, "mirror-stat") == 0)
    return op_mirror_stat(req);
  if (strcmp(op, "mirror-cancel") == 0)
    return op_mirror_end(req, false);
  if (strcmp(op, "mirror-destroy") == 0)
    return op_mirror_end(req, true);
  if (strcmp(op, "mirror-ls") == 0)
    return op_mirror_ls();
  if (strcmp(op, "mirror-release") == 0)
    return op_mirror_release(req);
  if (strcmp(op, "import") == 0)
    return op_import(req);
  zl_error(EINVAL, "unknown op '%s'", op);
  return NULL;
}

static int
answer(int fd, const char *line)
{
  json_error_t jerr;
  CLEANUP_JSON json_t *req = json_loads(line, 0, &jerr);
  json_t *r = req ? dispatch(req) : NULL;
  if (!req)
    zl_error(EINVAL, "bad JSON: %s", jerr.text);
  if (r)
    json_object_set_new(r, "ok", json_true());
  else
    r = fail_reply();
  CLEANUP_FREE char *out = json_dumps(r, JSON_COMPACT);
  json_decref(r);
  if (!out)
    return -1;
  size_t len = strlen(out);
  out[len++] = '\n'; /* replaces the NUL: written by length */
  const char *p = out;
  while (len) {
    ssize_t n = write(fd, p, len);
    if (n <= 0)
      return -1;
    p += n, len -= (size_t)n;
  }
  return 0;
}

static void *
client_thread(void *arg)
{
  int fd = (int)(intptr_t)arg;
  char *buf = malloc(MAX_LINE);
  size_t have = 0;
  zl_log_set_tag("control");
  while (buf) {
    ssize_t n = read(fd, buf + have, MAX_LINE - 1 - have);
    if (n <= 0)
      break;
    have += (size_t)n;
    buf[have] = '\0';
    char *nl;
    while ((nl = memchr(buf, '\n', have))) {
      *nl = '\0';
      if (answer(fd, buf) == -1)
        goto out;
      have -= (size_t)(nl + 1 - buf);
      memmove(buf, nl + 1, have);
    }
    if (have == MAX_LINE - 1)
      break; /* a line too long */
  }
out:
  free(buf);
  close(fd);
  return NULL;
}

static void *
control_thread(void *arg)
{
  int lfd = (int)(intptr_t)arg;
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd == -1) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      break;
    }
    struct ucred cr;
    socklen_t cl = sizeof cr;
    pthread_t th;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == -1 ||
        (cr.uid != 0 && cr.uid != geteuid())) {
      zl_warn("control: refused a client of uid %d", (int)cr.uid);
      close(fd);
      continue;
    }
    if (pthread_create(&th, NULL, client_thread, (void *)(intptr_t)fd) != 0)
      close(fd);
    else
      pthread_detach(th);
  }
  return NULL;
}

static int control_fd = -1;

int
nbd_control_start(const struct nbd_config *cfg)
{
  const char *path = cfg->control_path;
  if (!path)
    return 0;
  const char *slash = strrchr(path, '/');
  if (slash)
    snprintf(import_dir, sizeof import_dir, "%.*s", (int)(slash - path), path);
  else
    snprintf(import_dir, sizeof import_dir, ".");
  control_fd = listen_at(path);
  if (control_fd == -1) {
    zl_error_prefix("no control channel (no mirrors, no imports): ");
    return -1;
  }
  pthread_t th;
  if (pthread_create(&th, NULL, control_thread, (void *)(intptr_t)control_fd) != 0) {
    zl_error(EAGAIN, "control: cannot start its thread");
    close(control_fd);
    return -1;
  }
  pthread_detach(th);
  return 0;
}

void
nbd_control_stop(const struct nbd_config *cfg)
{
  if (control_fd < 0)
    return;
  shutdown(control_fd, SHUT_RDWR);
  unlink(cfg->control_path);
  pthread_mutex_lock(&lock);
  for (int i = 0; i < MAX_MIRRORS; i++) {
    if (mirrors[i].m) {
      zl_mirror_free(mirrors[i].m);
      nbd_export_put(mirrors[i].exp);
      mirrors[i].m = NULL;
    }
  }
  for (int i = 0; i < MAX_IMPORTS; i++) {
    if (imports[i].export) {
      shutdown(imports[i].fd, SHUT_RDWR);
      unlink(imports[i].path);
    }
  }
  pthread_mutex_unlock(&lock);
}
