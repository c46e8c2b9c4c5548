/* replicate.c: volumes to another host over its NBD server's TLS channel
 * (nbd/replicate.c: the protocol; core/model/replica.c: both ends' storage).
 *
 *   zfs-live replicate SR KEY --to-host HOST:PORT --to SR2
 *       a replica of KEY in SR2 on that host, brought up to date by each
 *       run: everything the first time, the blocks changed since the last
 *       complete replication after that.
 *   zfs-live vol copy SR KEY --to-host HOST:PORT --to SR2
 *       a one-off copy there (a new volume), sparse.
 *
 * This host authenticates with its own PSK (<conf>/tls/host.psk, or
 * --tls-psk), which the destination's server must know. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "nbd/nbd.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

#define CHUNK (1u << 20)
#define BLOCK (64u << 10) /* zeroes are found (and skipped) in these */

struct sender {
  struct nbd_repl *c;
  int fd;
  uint8_t *buf;
  uint64_t size;
  uint64_t done, total; /* progress */
  uint64_t sent;        /* bytes of data sent */
  const struct zl_progress *p;
};

static bool
is_zero(const uint8_t *b, size_t n)
{
  return n == 0 || (b[0] == 0 && memcmp(b, b + 1, n - 1) == 0);
}

/* [off, off + len): DATA records for what is not zero; the zero chunks as
 * ZERO records when zeroes (the destination has other data there), else
 * skipped (it reads zeroes already). */
static int
send_range(struct sender *s, uint64_t off, uint64_t len, bool zeroes)
{
  while (len > 0) {
    size_t n = len > CHUNK ? CHUNK : (size_t)len;
    if (zl_pread_all(s->fd, s->buf, n, (off_t)off) == -1)
      return -1;
    /* runs of blocks alike: data, or zeroes (skipped or sent as ZERO) */
    for (size_t i = 0; i < n;) {
      bool z = is_zero(s->buf + i, n - i < BLOCK ? n - i : BLOCK);
      size_t j = i;
      while (j < n && is_zero(s->buf + j, n - j < BLOCK ? n - j : BLOCK) == z)
        j += n - j < BLOCK ? n - j : BLOCK;
      int r = 0;
      if (!z) {
        r = nbd_repl_data(s->c, s->buf + i, j - i, off + i);
        s->sent += j - i;
      } else if (zeroes) {
        r = nbd_repl_zero(s->c, off + i, j - i);
      }
      if (r == -1)
        return -1;
      i = j;
    }
    zl_fault("replicate", "sent");
    off += n;
    len -= n;
    s->done += n;
    zl_progress_report(s->p, s->done, s->total);
  }
  return 0;
}

/* Everything: the data extents (SEEK_DATA/SEEK_HOLE where the filesystem
 * has them, else all of it), zero chunks skipped. */
static int
send_full(struct sender *s)
{
  uint64_t off = 0;

  s->total = s->size;
  while (off < s->size) {
    off_t d = lseek(s->fd, (off_t)off, SEEK_DATA);
    if (d == -1 && errno == ENXIO)
      break; /* only a hole is left */
    uint64_t start = d == -1 ? off : (uint64_t)d;
    off_t h = d == -1 ? -1 : lseek(s->fd, d, SEEK_HOLE);
    uint64_t end = h == -1 || (uint64_t)h > s->size ? s->size : (uint64_t)h;
    if (start >= s->size)
      break;
    s->done = start;
    if (send_range(s, start, end - start, false) == -1)
      return -1;
    off = end;
  }
  s->done = s->size;
  zl_progress_report(s->p, s->done, s->total);
  return 0;
}

/* The changed blocks only; a zero chunk among them is sent as ZERO. */
static int
send_changes(struct sender *s, const struct zl_bitmap *m)
{
  uint64_t pos = 0, first, count;

  s->total = 0;
  for (uint64_t p = 0, f, c; zl_bitmap_next_run(m, &p, &f, &c);)
    s->total += c * m->granularity;
  while (zl_bitmap_next_run(m, &pos, &first, &count)) {
    uint64_t off = first * m->granularity, len = count * m->granularity;
    if (off >= s->size)
      break;
    if (len > s->size - off)
      len = s->size - off;
    if (send_range(s, off, len, true) == -1)
      return -1;
  }
  return 0;
}

static void
default_psk(char *out, size_t len)
{
  const char *etc = getenv("ZFS_LIVE_CONF_DIR");
  snprintf(out, len, "%s/tls/host.psk", etc && *etc ? etc : "/etc/zfs-live");
}

struct remote_args {
  const char *host, *sr, *type, *psk;
  const char *name, *description; /* a copy's, NULL: the source's */
  bool replica;
};

/* Send key of sr to a->host; the destination's result, or NULL. */
static json_t *
send_volume(struct zl_sr *sr, const char *key, const struct remote_args *a,
            const struct zl_progress *p)
{
  char dest[512], psk[4096];
  struct zl_repl_source src;
  struct zl_bitmap m = {0};
  json_t *plan = NULL, *res = NULL;
  struct sender s = {.fd = -1, .p = p};

  snprintf(dest, sizeof dest, "%s/%s", a->host, a->sr);
  if (a->psk)
    snprintf(psk, sizeof psk, "%s", a->psk);
  else
    default_psk(psk, sizeof psk);
  if (zl_repl_prepare(sr, key, a->replica ? dest : NULL, &src) == -1)
    return NULL;
  if (a->name)
    json_object_set_new(src.source, "name", json_string(a->name));
  if (a->description)
    json_object_set_new(src.source, "description", json_string(a->description));
  CLEANUP_JSON json_t *points = json_array();
  const char *uuid;
  json_t *v;
  json_object_foreach(src.points, uuid, v)
      json_array_append_new(points, json_string(uuid));
  CLEANUP_JSON json_t *req =
      json_pack("{s:s, s:s?, s:b, s:O, s:O}", "sr", a->sr, "type", a->type, "replica",
                a->replica, "source", src.source, "points", points);
  bool ok = false;
  if (!req) {
    zl_error(ENOMEM, "out of memory");
    goto out;
  }
  if (!(s.c = nbd_repl_open(a->host, psk, req, &plan)))
    goto out;
  const char *mode = json_string_value(json_object_get(plan, "mode"));
  const char *from = json_string_value(json_object_get(plan, "from"));
  s.size = (uint64_t)src.size;
  if (!(s.buf = malloc(CHUNK)) || (s.fd = zl_vol_open(sr, src.point, O_RDONLY)) == -1) {
    if (!s.buf)
      zl_error(ENOMEM, "out of memory");
    nbd_repl_abort(s.c);
    goto out;
  }
  zl_info("replication of %s to %s: %s%s%s", key, dest, mode ? mode : "?",
          from ? " from point " : "", from ? from : "");
  int r;
  if (mode && strcmp(mode, "incremental") == 0 && from) {
    r = zl_repl_changes(sr, &src, from, &m);
    if (r == 0)
      r = send_changes(&s, &m);
  } else if (mode && strcmp(mode, "full") == 0) {
    r = send_full(&s);
  } else {
    zl_error(EPROTO, "the destination's plan is not one this host knows");
    r = -1;
  }
  if (r == -1) {
    nbd_repl_abort(s.c);
    goto out;
  }
  if (!(res = nbd_repl_end(s.c))) {
    /* the destination may have committed before the reply was lost: keep
     * the point (a replication's), the next run offers it with the others */
    src.own_point = !src.keep_point;
    goto out;
  }
  json_object_set_new(res, "from", from ? json_string(from) : json_null());
  json_object_set_new(res, "sent", json_integer((json_int_t)s.sent));
  ok = true;
out:
  if (s.fd >= 0)
    close(s.fd);
  free(s.buf);
  zl_bitmap_free(&m);
  nbd_repl_close(s.c);
  json_decref(plan);
  struct zl_error_saved saved;
  zl_error_save(&saved);
  zl_repl_finish(sr, &src, ok);
  zl_error_restore(&saved);
  return res;
}

static int
show(json_t *res, const char *what)
{
  if (cli_json)
    return cli_print_json(res);
  printf("%s %s: %s (%s, %lld bytes of data sent)\n", what,
         json_string_value(json_object_get(res, "key")),
         json_string_value(json_object_get(res, "name")),
         json_string_value(json_object_get(res, "mode")),
         (long long)json_integer_value(json_object_get(res, "sent")));
  json_decref(res);
  return 0;
}

int
cli_vol_copy_remote(struct zl_sr *sr, const char *key, const char *host, const char *to,
                    const char *to_type, const char *psk, const char *name,
                    const char *description)
{
  struct remote_args a = {host, to, to_type, psk, name, description, false};
  struct cli_progress st;
  struct zl_progress p;

  cli_progress_init(&p, &st, "copy");
  json_t *res = send_volume(sr, key, &a, &p);
  cli_progress_done(&st);
  return res ? show(res, "copy") : cli_fail();
}

int
cli_replicate(struct zl_sr *sr, int argc, char **argv)
{
  struct remote_args a = {.replica = true};
  struct cli_progress st;
  struct zl_progress p;

  if (cli_take(&argc, argv, "--to-host", &a.host) == -1 ||
      cli_take(&argc, argv, "--to", &a.sr) == -1 ||
      cli_take(&argc, argv, "--to-type", &a.type) == -1 ||
      cli_take(&argc, argv, "--tls-psk", &a.psk) == -1 ||
      cli_no_more_options(argc, argv) == -1)
    return cli_fail();
  if (argc != 1 || !a.host || !a.sr)
    return cli_usage(NULL, "replicate SR KEY --to-host HOST:PORT --to SR2");
  cli_progress_init(&p, &st, "replicate");
  json_t *res = send_volume(sr, argv[0], &a, &p);
  cli_progress_done(&st);
  return res ? show(res, "replica") : cli_fail();
}
