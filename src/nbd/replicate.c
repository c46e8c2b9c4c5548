/* replicate.c: replication between hosts over the NBD server's TLS channel
 * (core/model/replica.c holds what each end does with its storage).
 *
 * Like NBD_OPT_ZL_CALL (client.c), the channel is the NBD handshake of
 * the destination host's server: only over TLS, only for a peer that
 * authenticated with a PSK the server knows (its identity: the sending
 * host).  The sender sends the private option NBD_OPT_ZL_RECV whose data
 * is the JSON request
 *
 *   {"sr": SR key here, "type": SR type or null, "replica": true|false,
 *    "source": {"uuid", "point", "name", "description", "size", "keys"},
 *    "points": [uuids of the source's points the sender can diff from]}
 *
 * The server answers NBD_REP_ZL_RESULT with the plan {"mode": "full" |
 * "incremental", "from"?, "replica"} (or an NBD_REP_ERR_* with a message
 * and the connection ends).  From then on the connection carries records,
 * all integers big-endian:
 *
 *   u32 ZL_REC_MAGIC, u32 type, u64 offset, u64 length, then for DATA
 *   length bytes (at most ZL_REC_MAX)
 *
 *   DATA   write these bytes at offset
 *   ZERO   [offset, offset + length) reads back as zeroes
 *   END    offset: the number of DATA bytes sent; commit
 *   ABORT  stop: leave the destination as it was
 *
 * and after END the server answers once more, NBD_REP_ZL_RESULT with the
 * volume made or updated ({"key", "uuid", "name", "size"}) or an error.
 * Anything else — a bad record, a write that fails, the connection lost or
 * silent for ZL_REC_TIMEOUT_S — aborts, and the destination is what it was
 * before (a full copy vanishes, an incremental one is reverted).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "nbd/nbd.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

#define REC_HEADER 24

/* --- the server side ------------------------------------------------------------ */

static int
reply_json(struct nbd_conn *c, const json_t *j)
{
  CLEANUP_FREE char *s = json_dumps(j, JSON_COMPACT);
  if (!s) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  return nbd_option_reply(c, NBD_OPT_ZL_RECV, NBD_REP_ZL_RESULT, s, (uint32_t)strlen(s));
}

static int
reply_err(struct nbd_conn *c, uint32_t err)
{
  const char *m = zl_error_msg();
  size_t n = strlen(m);
  return nbd_option_reply(c, NBD_OPT_ZL_RECV, err, m,
                          (uint32_t)(n > NBD_MAX_STRING ? NBD_MAX_STRING : n));
}

/* Read exactly len bytes; a peer silent for the receive timeout is an
 * error (ETIMEDOUT), as is EOF (ECONNRESET). */
static int
read_rec(struct nbd_stream *s, void *buf, size_t len)
{
  char *p = buf;
  while (len > 0) {
    ssize_t n = nbd_read_some(s, p, len);
    if (n == 0 || (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))) {
      zl_error(n == 0 ? ECONNRESET : ETIMEDOUT,
               n == 0 ? "the sender went away" : "the sender said nothing for %d s",
               ZL_REC_TIMEOUT_S);
      return -1;
    }
    if (n < 0) {
      zl_error_sys(errno, "reading from the sender");
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* [off, off + len) of fd reads back as zeroes. */
static int
zero_range(int fd, bool blockdev, uint64_t off, uint64_t len)
{
  static const char zeroes[65536];

  if (blockdev) {
    uint64_t range[2] = {off, len};
    if (ioctl(fd, BLKZEROOUT, range) == 0)
      return 0;
  } else if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
                       (off_t)len) == 0) {
    return 0;
  }
  while (len > 0) { /* a filesystem that cannot punch (zfs-fuse) */
    size_t n = len > sizeof zeroes ? sizeof zeroes : (size_t)len;
    if (zl_pwrite_all(fd, zeroes, n, (off_t)off) == -1)
      return -1;
    off += n;
    len -= n;
  }
  return 0;
}

/* The records, into r; 0 at END (the data counted matches), -1 else. */
static int
receive(struct nbd_conn *c, struct zl_replica *r, uint64_t size)
{
  CLEANUP_FREE uint8_t *buf = malloc(ZL_REC_MAX);
  uint64_t data = 0;
  struct stat st;
  int fd = zl_replica_fd(r);

  if (!buf) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  if (fd == -1 || fstat(fd, &st) == -1)
    return -1;
  for (;;) {
    uint8_t h[REC_HEADER];
    if (read_rec(&c->st, h, sizeof h) == -1)
      return -1;
    uint32_t type = be32(h + 4);
    uint64_t off = be64(h + 8), len = be64(h + 16);
    if (be32(h) != ZL_REC_MAGIC) {
      zl_error(EPROTO, "replication: a record without its magic");
      return -1;
    }
    if (type == ZL_REC_END) {
      if (off != data) {
        zl_error(EPROTO, "replication: the sender sent %llu bytes, %llu arrived",
                 (unsigned long long)off, (unsigned long long)data);
        return -1;
      }
      return 0;
    }
    if (type == ZL_REC_ABORT) {
      zl_error(ECANCELED, "the sender stopped the replication");
      return -1;
    }
    if ((type != ZL_REC_DATA && type != ZL_REC_ZERO) || off > size || len > size - off ||
        (type == ZL_REC_DATA && len > ZL_REC_MAX)) {
      zl_error(EPROTO, "replication: a bad record (type %u, %llu+%llu of %llu bytes)",
               type, (unsigned long long)off, (unsigned long long)len,
               (unsigned long long)size);
      return -1;
    }
    if (type == ZL_REC_DATA) {
      if (read_rec(&c->st, buf, len) == -1)
        return -1;
      if (zl_pwrite_all(fd, buf, len, (off_t)off) == -1) {
        zl_error_prefix("replica: ");
        return -1;
      }
      data += len;
      zl_fault("replica", "data");
    } else if (len && zero_range(fd, S_ISBLK(st.st_mode), off, len) == -1) {
      zl_error_prefix("replica: ");
      return -1;
    }
  }
}

void
nbd_recv_serve(struct nbd_conn *c, const char *peer)
{
  json_error_t je;
  CLEANUP_JSON json_t *req =
      json_loadb(c->recv_req, c->recv_len, JSON_REJECT_DUPLICATES, &je);
  const char *sr_key = json_string_value(json_object_get(req, "sr"));
  const char *type = json_string_value(json_object_get(req, "type"));
  json_t *source = json_object_get(req, "source");
  json_t *plan = NULL;
  struct zl_sr *sr = NULL;
  struct zl_replica *r = NULL;

  free(c->recv_req);
  c->recv_req = NULL;
  if (!sr_key || !json_is_object(source)) {
    zl_error(EINVAL, "a replication request is {\"sr\", \"source\", \"points\"}");
    reply_err(c, NBD_REP_ERR_INVALID);
    return;
  }
  if (!(sr = zl_sr_open(type, sr_key))) {
    reply_err(c, NBD_REP_ERR_UNKNOWN);
    return;
  }
  r = zl_replica_begin(sr, peer, source, json_object_get(req, "points"),
                       json_is_true(json_object_get(req, "replica")), &plan);
  if (!r) {
    zl_info("replication from host %s into SR %s refused: %s", peer, sr_key,
            zl_error_msg());
    reply_err(c, NBD_REP_ERR_INVALID);
    zl_sr_close(sr);
    return;
  }
  struct timeval tv = {.tv_sec = ZL_REC_TIMEOUT_S};
  setsockopt(c->st.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  c->st.idle_return = true; /* a timeout ends a read: read_rec says so */
  uint64_t size = (uint64_t)json_integer_value(json_object_get(source, "size"));
  zl_info("replication from host %s into SR %s: %s", peer, sr_key,
          json_string_value(json_object_get(plan, "mode")));
  if (reply_json(c, plan) == -1 || receive(c, r, size) == -1) {
    zl_info("replication from host %s into SR %s stopped: %s", peer, sr_key,
            zl_error_msg());
    zl_replica_abort(r);
    reply_err(c, NBD_REP_ERR_INVALID); /* the sender may be gone */
  } else {
    struct zl_volume v;
    zl_fault("replica", "received");
    if (zl_replica_commit(r, &v) == -1) {
      zl_info("replication from host %s into SR %s: commit failed: %s", peer, sr_key,
              zl_error_msg());
      reply_err(c, NBD_REP_ERR_INVALID);
    } else {
      CLEANUP_JSON json_t *res =
          json_pack("{s:s, s:s, s:s, s:I, s:s}", "key", v.key, "uuid", v.uuid, "name",
                    v.name, "size", (json_int_t)v.virtual_size, "mode",
                    json_string_value(json_object_get(plan, "mode")));
      zl_volume_free(&v);
      if (res)
        reply_json(c, res);
    }
  }
  json_decref(plan);
  zl_sr_close(sr);
}

/* --- the client side ------------------------------------------------------------ */

struct nbd_repl {
  struct nbd_stream st;
  struct nbd_tls *tls;
  uint64_t data; /* DATA bytes sent */
};

/* Read one option reply to NBD_OPT_ZL_RECV: its type, text in *out. */
static int64_t
read_reply(struct nbd_stream *s, char **out)
{
  uint8_t h[20];

  *out = NULL;
  if (nbd_read_full(s, h, sizeof h) == -1 || be64(h) != NBD_REP_MAGIC ||
      be32(h + 8) != NBD_OPT_ZL_RECV || be32(h + 16) > (1u << 20)) {
    zl_error(EPROTO, "the destination's server sent no valid reply");
    return -1;
  }
  uint32_t len = be32(h + 16);
  char *buf = malloc((size_t)len + 1);
  if (!buf || nbd_read_full(s, buf, len) == -1) {
    free(buf);
    zl_error(EPROTO, "the destination's reply was cut short");
    return -1;
  }
  buf[len] = '\0';
  *out = buf;
  return be32(h + 12);
}

static json_t *
reply_value(struct nbd_stream *s, const char *what)
{
  CLEANUP_FREE char *text = NULL;
  int64_t type = read_reply(s, &text);
  json_error_t je;

  if (type == -1)
    return NULL;
  if (type != NBD_REP_ZL_RESULT) {
    zl_error(type == (int64_t)NBD_REP_ERR_UNSUP ? ENOTSUP : EIO, "%s: %s", what,
             type == (int64_t)NBD_REP_ERR_UNSUP
                 ? "the destination's zfs-live does not receive replications"
                 : (text && *text ? text : "refused"));
    return NULL;
  }
  json_t *j = json_loads(text, 0, &je);
  if (!j)
    zl_error(EPROTO, "%s: a reply that is not JSON", what);
  return j;
}

void
nbd_repl_close(struct nbd_repl *r)
{
  if (!r)
    return;
  nbd_stream_close(&r->st);
  nbd_tls_free(r->tls);
  free(r);
}

struct nbd_repl *
nbd_repl_open(const char *hostport, const char *psk_file, const json_t *req,
              json_t **plan)
{
  uint8_t greeting[18], flags[4], h[16];
  CLEANUP_FREE char *body = json_dumps(req, JSON_COMPACT);
  struct nbd_repl *r = calloc(1, sizeof *r);

  *plan = NULL;
  if (!r || !body) {
    free(r);
    zl_error(ENOMEM, "out of memory");
    return NULL;
  }
  r->st.fd = -1;
  size_t len = strlen(body);
  if (len > NBD_MAX_OPTION) {
    zl_error(E2BIG, "replication request of %zu bytes", len);
    goto fail;
  }
  if (!(r->tls = nbd_tls_client_new(psk_file)) ||
      (r->st.fd = nbd_client_dial(hostport, greeting, 30)) == -1)
    goto fail;
  put32(flags, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
  if (nbd_write_full(&r->st, flags, sizeof flags) == -1 ||
      nbd_client_starttls(&r->st, r->tls) == -1)
    goto fail;
  put64(h, NBD_IHAVEOPT);
  put32(h + 8, NBD_OPT_ZL_RECV);
  put32(h + 12, (uint32_t)len);
  struct iovec iov[2] = {{h, sizeof h}, {body, len}};
  if (nbd_writev_full(&r->st, iov, 2) == -1 ||
      !(*plan = reply_value(&r->st, "the destination refused the replication")))
    goto fail;
  return r;

fail:
  zl_error_prefix("%s: ", hostport);
  nbd_repl_close(r);
  return NULL;
}

static int
send_rec(struct nbd_repl *r, uint32_t type, uint64_t off, uint64_t len, const void *data)
{
  uint8_t h[REC_HEADER];
  put32(h, ZL_REC_MAGIC);
  put32(h + 4, type);
  put64(h + 8, off);
  put64(h + 16, len);
  struct iovec iov[2] = {{h, sizeof h}, {(void *)data, data ? len : 0}};
  if (nbd_writev_full(&r->st, iov, data && len ? 2 : 1) == -1) {
    zl_error_sys(errno, "sending to the destination");
    return -1;
  }
  return 0;
}

int
nbd_repl_data(struct nbd_repl *r, const void *buf, size_t len, uint64_t off)
{
  if (len > ZL_REC_MAX) {
    zl_error(EINVAL, "a record of %zu bytes", len);
    return -1;
  }
  r->data += len;
  return send_rec(r, ZL_REC_DATA, off, len, buf);
}

int
nbd_repl_zero(struct nbd_repl *r, uint64_t off, uint64_t len)
{
  return send_rec(r, ZL_REC_ZERO, off, len, NULL);
}

json_t *
nbd_repl_end(struct nbd_repl *r)
{
  if (send_rec(r, ZL_REC_END, r->data, 0, NULL) == -1)
    return NULL;
  return reply_value(&r->st, "the destination could not commit");
}

void
nbd_repl_abort(struct nbd_repl *r)
{
  struct zl_error_saved saved;
  zl_error_save(&saved);
  if (r)
    send_rec(r, ZL_REC_ABORT, 0, 0, NULL); /* best effort: closing says it too */
  zl_error_restore(&saved);
}
