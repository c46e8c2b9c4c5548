/* handshake.c: fixed newstyle negotiation (reference nbd.md §1.2-1.4). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "nbd/nbd.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

#define CTX_BASE_ALLOCATION    "base:allocation"
#define CTX_ID_BASE_ALLOCATION 1
#define CTX_DIRTY_PREFIX       "qemu:dirty-bitmap:"
#define CTX_ID_DIRTY           2

static int
reply(struct nbd_conn *c, uint32_t opt, uint32_t type, const void *data, uint32_t len)
{
  uint8_t h[20];
  struct iovec iov[2] = {{h, sizeof h}, {(void *)data, len}};

  put64(h, NBD_REP_MAGIC);
  put32(h + 8, opt);
  put32(h + 12, type);
  put32(h + 16, len);
  return nbd_writev_full(&c->st, iov, len ? 2 : 1);
}

int
nbd_option_reply(struct nbd_conn *c, uint32_t opt, uint32_t type, const void *data,
                 uint32_t len)
{
  return reply(c, opt, type, data, len);
}

static int reply_error(struct nbd_conn *c, uint32_t opt, uint32_t err, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));

static int
reply_error(struct nbd_conn *c, uint32_t opt, uint32_t err, const char *fmt, ...)
{
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n < 0)
    n = 0;
  if ((size_t)n >= sizeof msg)
    n = sizeof msg - 1;
  zl_debug("option %u refused: %s", opt, msg);
  return reply(c, opt, err, msg, (uint32_t)n);
}

/* Read an option's payload.  One over NBD_MAX_OPTION is not read: the
 * connection is dropped (*too_big), since swallowing a length the client
 * never sends would hold this thread forever. */
static uint8_t *
read_payload(struct nbd_conn *c, uint32_t len, bool *too_big)
{
  *too_big = len > NBD_MAX_OPTION;
  if (*too_big)
    return NULL;
  uint8_t *buf = malloc((size_t)len + 1);
  if (!buf || nbd_read_full(&c->st, buf, len) == -1) {
    free(buf);
    return NULL;
  }
  buf[len] = '\0';
  return buf;
}

/* Every option that carries a string (export names in EXPORT_NAME, INFO,
 * GO, LIST/SET_META_CONTEXT; context queries) takes it through here, so
 * they are all held to the same rules (reference nbd.md §1: at most
 * NBD_MAX_STRING bytes, no NUL).  A name with a NUL would otherwise be
 * looked up as the shorter name before it.  0, or -1 with *why set. */
static int
take_string(const uint8_t *p, uint32_t len, char out[NBD_MAX_STRING + 1],
            const char **why)
{
  if (len > NBD_MAX_STRING) {
    *why = "is too long";
    return -1;
  }
  if (memchr(p, 0, len)) {
    *why = "contains a NUL byte";
    return -1;
  }
  memcpy(out, p, len);
  out[len] = '\0';
  return 0;
}

static int
send_info_export(struct nbd_conn *c, uint32_t opt, const struct nbd_export *e,
                 int64_t size)
{
  uint8_t b[12];
  put16(b, NBD_INFO_EXPORT);
  put64(b + 2, (uint64_t)size);
  put16(b + 10, nbd_export_tflags(e, c->structured));
  return reply(c, opt, NBD_REP_INFO, b, sizeof b);
}

static int
send_info_block_size(struct nbd_conn *c, uint32_t opt)
{
  uint8_t b[14];
  put16(b, NBD_INFO_BLOCK_SIZE);
  put32(b + 2, NBD_MIN_BLOCK);
  put32(b + 6, NBD_PREF_BLOCK);
  put32(b + 10, NBD_MAX_PAYLOAD);
  return reply(c, opt, NBD_REP_INFO, b, sizeof b);
}

static int
send_info_string(struct nbd_conn *c, uint32_t opt, uint16_t type, const char *s)
{
  size_t n = strlen(s);
  uint8_t *b = malloc(n + 2);
  if (!b)
    return -1;
  put16(b, type);
  memcpy(b + 2, s, n);
  int r = reply(c, opt, NBD_REP_INFO, b, (uint32_t)(n + 2));
  free(b);
  return r;
}

/* NBD_OPT_INFO / NBD_OPT_GO.  Returns 1 when GO succeeded. */
static int
opt_info_go(struct nbd_conn *c, uint32_t opt, const uint8_t *p, uint32_t len,
            char **meta_export)
{
  if (len < 6)
    return reply_error(c, opt, NBD_REP_ERR_INVALID, "option too short");
  uint32_t namelen = be32(p);
  if (namelen > len - 6)
    return reply_error(c, opt, NBD_REP_ERR_INVALID, "export name length is wrong");
  uint16_t nreq = be16(p + 4 + namelen);
  if ((uint64_t)4 + namelen + 2 + 2u * nreq != len)
    return reply_error(c, opt, NBD_REP_ERR_INVALID, "option length is wrong");
  char name[NBD_MAX_STRING + 1];
  const char *why;
  if (take_string(p + 4, namelen, name, &why) == -1)
    return reply_error(c, opt, NBD_REP_ERR_INVALID, "the export name %s", why);

  int64_t size;
  struct nbd_export *e = nbd_export_get(c->import ? c->import : name, &size);
  if (!e)
    return reply_error(c, opt, NBD_REP_ERR_UNKNOWN, "%s", zl_error_msg());
  int r = send_info_export(c, opt, e, size);
  if (r == 0)
    r = send_info_block_size(c, opt);
  for (uint16_t i = 0; r == 0 && i < nreq; i++) {
    uint16_t what = be16(p + 4 + namelen + 2 + 2 * i);
    if (what == NBD_INFO_NAME)
      r = send_info_string(c, opt, NBD_INFO_NAME, name);
    else if (what == NBD_INFO_DESCRIPTION) {
      char d[1024];
      snprintf(d, sizeof d, "zfs-live volume %s of %s SR %s", e->vol_key, e->sr_type,
               e->sr_key);
      r = send_info_string(c, opt, NBD_INFO_DESCRIPTION, d);
    }
  }
  /* contexts chosen for another export do not carry over */
  bool same = *meta_export && strcmp(*meta_export, name) == 0;
  if (r == 0 && opt == NBD_OPT_GO && same && c->meta_dirty && !c->dirty.bits &&
      nbd_bitmap_load(e, c->dirty_from, &c->dirty) == -1) {
    r = reply_error(c, opt, NBD_REP_ERR_UNKNOWN, "%s%s: %s", CTX_DIRTY_PREFIX,
                    c->dirty_from, zl_error_msg());
    nbd_export_put(e);
    return r == -1 ? -1 : 0;
  }
  if (r == 0)
    r = reply(c, opt, NBD_REP_ACK, NULL, 0);
  if (r == -1 || opt == NBD_OPT_INFO) {
    nbd_export_put(e);
    return r;
  }
  if (!same)
    c->meta_base_allocation = c->meta_dirty = 0;
  c->exp = e;
  c->size = size;
  return 1;
}

/* LIST_META_CONTEXT / SET_META_CONTEXT */
static int
opt_meta(struct nbd_conn *c, uint32_t opt, const uint8_t *p, uint32_t len,
         char **meta_export)
{
  bool set = opt == NBD_OPT_SET_META_CONTEXT;

  /* SET replaces the selection even when it fails (reference nbd.md §1.3):
   * a refused SET leaves none, never the one from before */
  if (set) {
    c->meta_base_allocation = c->meta_dirty = 0;
    free(c->dirty_from);
    c->dirty_from = NULL;
    zl_bitmap_free(&c->dirty);
    free(*meta_export);
    *meta_export = NULL;
  }
  if (set && !c->structured)
    return reply_error(c, opt, NBD_REP_ERR_INVALID,
                       "structured replies must be negotiated first");
  if (len < 8)
    return reply_error(c, opt, NBD_REP_ERR_INVALID, "option too short");
  uint32_t namelen = be32(p);
  if (namelen > len - 8)
    return reply_error(c, opt, NBD_REP_ERR_INVALID, "export name length is wrong");
  char name[NBD_MAX_STRING + 1], query[NBD_MAX_STRING + 1];
  const char *why;
  if (take_string(p + 4, namelen, name, &why) == -1)
    return reply_error(c, opt, NBD_REP_ERR_INVALID, "the export name %s", why);
  uint32_t nq = be32(p + 4 + namelen);
  const uint8_t *q = p + 8 + namelen, *end = p + len;
  bool base = false, all_dirty = false;
  char *dirty = NULL; /* the bitmap asked for by name */
  const size_t dpl = strlen(CTX_DIRTY_PREFIX);

  /* validate every query before answering anything */
  for (uint32_t i = 0; i < nq; i++) {
    if (end - q < 4 || be32(q) > (uint32_t)(end - q - 4) ||
        take_string(q + 4, be32(q), query, &why) == -1) {
      free(dirty);
      return reply_error(c, opt, NBD_REP_ERR_INVALID, "query %u is malformed", i);
    }
    uint32_t ql = be32(q);
    const char *s = query;
    if (ql == strlen(CTX_BASE_ALLOCATION) && memcmp(s, CTX_BASE_ALLOCATION, ql) == 0)
      base = true;
    else if (!set && ql == 5 && memcmp(s, "base:", 5) == 0)
      base = true; /* LIST wildcard */
    else if (!set && ((ql == 5 && memcmp(s, "qemu:", 5) == 0) ||
                      (ql == dpl && memcmp(s, CTX_DIRTY_PREFIX, dpl) == 0)))
      all_dirty = true; /* LIST wildcards */
    else if (ql > dpl && memcmp(s, CTX_DIRTY_PREFIX, dpl) == 0 && !dirty)
      dirty = strndup(s + dpl, ql - dpl); /* one bitmap at a time */
    q += 4 + ql;
  }
  if (q != end) {
    free(dirty);
    return reply_error(c, opt, NBD_REP_ERR_INVALID, "trailing bytes after the queries");
  }
  if (nq == 0 && !set)
    base = all_dirty = true; /* LIST with no query lists everything */

  struct nbd_export *e = nbd_export_get(c->import ? c->import : name, NULL);
  if (!e) {
    free(dirty);
    return reply_error(c, opt, NBD_REP_ERR_UNKNOWN, "%s", zl_error_msg());
  }
  /* the bitmaps this export has: one per CBT snapshot of its volume */
  char **names = all_dirty || dirty ? nbd_bitmap_names(e) : NULL;
  nbd_export_put(e);
  bool have = false;
  for (char **n = names; dirty && n && *n; n++)
    have |= strcmp(*n, dirty) == 0;
  if (set) {
    c->meta_base_allocation = base ? CTX_ID_BASE_ALLOCATION : 0;
    c->dirty_from = have ? strdup(dirty) : NULL;
    c->meta_dirty = c->dirty_from ? CTX_ID_DIRTY : 0;
    *meta_export = strdup(name);
  }
  int r = 0;
  if (base) {
    uint8_t b[4 + sizeof CTX_BASE_ALLOCATION];
    put32(b, set ? CTX_ID_BASE_ALLOCATION : 0);
    memcpy(b + 4, CTX_BASE_ALLOCATION, sizeof CTX_BASE_ALLOCATION - 1);
    r = reply(c, opt, NBD_REP_META_CONTEXT, b, (uint32_t)sizeof b - 1);
  }
  for (char **n = names; r == 0 && n && *n; n++) {
    if (!all_dirty && !(have && strcmp(*n, dirty) == 0))
      continue;
    size_t l = dpl + strlen(*n);
    uint8_t *b = malloc(4 + l);
    if (!b) {
      r = -1;
      break;
    }
    put32(b, set ? CTX_ID_DIRTY : 0);
    memcpy(b + 4, CTX_DIRTY_PREFIX, dpl);
    memcpy(b + 4 + dpl, *n, l - dpl);
    r = reply(c, opt, NBD_REP_META_CONTEXT, b, (uint32_t)(4 + l));
    free(b);
    if (set)
      break;
  }
  for (char **n = names; n && *n; n++)
    free(*n);
  free(names);
  free(dirty);
  return r == -1 ? -1 : reply(c, opt, NBD_REP_ACK, NULL, 0);
}

static int
opt_list(struct nbd_conn *c, uint32_t opt)
{
  char **names = nbd_export_list();
  int r = 0;

  for (char **n = names; r == 0 && n && *n; n++) {
    size_t l = strlen(*n);
    uint8_t *b = malloc(l + 4);
    if (!b)
      break;
    put32(b, (uint32_t)l);
    memcpy(b + 4, *n, l);
    r = reply(c, opt, NBD_REP_SERVER, b, (uint32_t)(l + 4));
    free(b);
  }
  for (char **n = names; n && *n; n++)
    free(*n);
  free(names);
  return r == 0 ? reply(c, opt, NBD_REP_ACK, NULL, 0) : -1;
}

/* NBD_OPT_EXPORT_NAME: no reply header, size + flags (+ 124 zeroes); a name
 * that cannot be served can only be refused by hanging up. */
static int
opt_export_name(struct nbd_conn *c, const uint8_t *p, uint32_t len)
{
  char name[NBD_MAX_STRING + 1];
  uint8_t b[8 + 2 + 124] = {0};
  const char *why;
  int64_t size;

  if (take_string(p, len, name, &why) == -1) {
    zl_info("NBD_OPT_EXPORT_NAME: the export name %s: disconnecting", why);
    return -1;
  }
  struct nbd_export *e = nbd_export_get(c->import ? c->import : name, &size);
  if (!e) {
    zl_info("NBD_OPT_EXPORT_NAME %s: %s: disconnecting", name, zl_error_msg());
    return -1;
  }
  put64(b, (uint64_t)size);
  put16(b + 8, nbd_export_tflags(e, c->structured));
  if (nbd_write_full(&c->st, b, c->no_zeroes ? 10 : sizeof b) == -1) {
    nbd_export_put(e);
    return -1;
  }
  c->exp = e;
  c->size = size;
  return 1;
}

void
nbd_greeting(uint8_t out[18])
{
  put64(out, NBD_MAGIC);
  put64(out + 8, NBD_IHAVEOPT);
  put16(out + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
}

int
nbd_handshake(struct nbd_conn *c)
{
  uint8_t hello[18], cflags[4];
  char *meta_export = NULL;
  int result = -1;

  nbd_greeting(hello);
  if ((!c->greeted && nbd_write_full(&c->st, hello, sizeof hello) == -1) ||
      nbd_read_full(&c->st, cflags, sizeof cflags) == -1)
    return -1;
  uint32_t cf = be32(cflags);
  if (cf & ~(uint32_t)(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
    zl_info("client flags 0x%x unknown: disconnecting", cf);
    return -1;
  }
  c->no_zeroes = cf & NBD_FLAG_C_NO_ZEROES;

  for (;;) {
    uint8_t h[16];
    bool too_big;
    if (nbd_read_full(&c->st, h, sizeof h) == -1)
      break;
    if (be64(h) != NBD_IHAVEOPT) {
      zl_info("bad option magic: disconnecting");
      break;
    }
    uint32_t opt = be32(h + 8), len = be32(h + 12);
    uint8_t *p = read_payload(c, len, &too_big);
    if (!p) {
      if (too_big)
        zl_info("option %u with %u bytes of data: disconnecting", opt, len);
      break;
    }
    int r;
    bool tls_missing = c->tls == TLS_REQUIRE && !c->st.session;
    if (atomic_load(c->stopping) && opt != NBD_OPT_ABORT) {
      r = reply_error(c, opt, NBD_REP_ERR_SHUTDOWN, "the server is shutting down");
    } else if (tls_missing && opt == NBD_OPT_EXPORT_NAME) {
      r = -1; /* FORCEDTLS: a plain EXPORT_NAME is answered by hanging up */
    } else if (tls_missing && opt != NBD_OPT_STARTTLS && opt != NBD_OPT_ABORT) {
      r = reply_error(c, opt, NBD_REP_ERR_TLS_REQD, "TLS is required: use STARTTLS");
    } else {
      switch (opt) {
      case NBD_OPT_EXPORT_NAME:
        r = opt_export_name(c, p, len);
        break;
      case NBD_OPT_ABORT:
        reply(c, opt, NBD_REP_ACK, NULL, 0); /* the client may already be gone */
        r = -1;
        break;
      case NBD_OPT_LIST:
        r = len ? reply_error(c, opt, NBD_REP_ERR_INVALID, "LIST takes no data")
                : opt_list(c, opt);
        break;
      case NBD_OPT_STARTTLS:
        if (len)
          r = reply_error(c, opt, NBD_REP_ERR_INVALID, "STARTTLS takes no data");
        else if (c->st.session)
          r = reply_error(c, opt, NBD_REP_ERR_INVALID, "TLS is already on");
        else if (c->tls == TLS_OFF || !nbd_tls_configured(c->creds))
          r = reply_error(c, opt, NBD_REP_ERR_POLICY, "TLS is not configured here");
        else if ((r = reply(c, opt, NBD_REP_ACK, NULL, 0)) == 0) {
          r = nbd_stream_starttls(&c->st, c->creds);
          if (r == 0) { /* everything negotiated before is forgotten */
            c->structured = false;
            c->meta_base_allocation = c->meta_dirty = 0;
            free(c->dirty_from);
            c->dirty_from = NULL;
            zl_bitmap_free(&c->dirty);
            free(meta_export);
            meta_export = NULL;
          } else {
            zl_info("%s", zl_error_msg());
          }
        }
        break;
      case NBD_OPT_INFO:
      case NBD_OPT_GO:
        r = opt_info_go(c, opt, p, len, &meta_export);
        break;
      case NBD_OPT_STRUCTURED_REPLY:
        if (len) {
          r = reply_error(c, opt, NBD_REP_ERR_INVALID, "STRUCTURED_REPLY takes no data");
        } else {
          c->structured = true;
          r = reply(c, opt, NBD_REP_ACK, NULL, 0);
        }
        break;
      case NBD_OPT_LIST_META_CONTEXT:
      case NBD_OPT_SET_META_CONTEXT:
        r = opt_meta(c, opt, p, len, &meta_export);
        break;
      case NBD_OPT_ZL_CALL: {
        const char *peer = c->st.session ? nbd_tls_peer(c->st.session) : NULL;
        char *res = peer ? nbd_call_run(peer, (const char *)p, len) : NULL;
        if (!peer)
          r = reply_error(c, opt, NBD_REP_ERR_POLICY, "calls need TLS with a host's PSK");
        else if (!res)
          r = reply_error(c, opt, NBD_REP_ERR_INVALID, "%s", zl_error_msg());
        else
          r = reply(c, opt, NBD_REP_ZL_RESULT, res, (uint32_t)strlen(res));
        free(res);
        break;
      }
      case NBD_OPT_ZL_RECV:
        if (!c->st.session || !nbd_tls_peer(c->st.session)) {
          r = reply_error(c, opt, NBD_REP_ERR_POLICY,
                          "replications need TLS with a host's PSK");
        } else { /* replicate.c answers, after the handshake's deadline is off */
          c->recv_req = (char *)TAKE_PTR(p);
          c->recv_len = len;
          r = 2;
        }
        break;
      default:
        r = reply_error(c, opt, NBD_REP_ERR_UNSUP, "option %u is not supported", opt);
        break;
      }
    }
    free(p);
    if (r == 1 || r == 2) {
      result = r - 1;
      break;
    }
    if (r == -1)
      break;
  }
  free(meta_export);
  return result;
}
