/* transmission.c: the request loop of one connection.
 *
 * Each round reads every request that has arrived (one recv into a 4 MiB
 * buffer; write payloads are used where they lie), checks them, runs their
 * I/O as one batch down the export's write path (core/io/io.h, through the
 * connection's queue), and sends every reply with one writev — so a
 * client with 32 requests in flight costs a handful of system calls per
 * round, not several per request.  Replies may go in any order the protocol
 * allows; here they follow the requests.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "nbd/nbd.h"
#include "util/error.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

#define RBUF_SIZE (4u << 20)
#define MAX_BATCH 256
/* Read data held for one batch.  Small on purpose: a round's data is sent
 * while it is still in the CPU caches (64 MiB rounds made sequential reads
 * 25% slower than nbdkit's; 2 MiB ones 1.3x faster). */
#define ARENA_MAX   (2u << 20)
#define MAX_EXTENTS 1024
#define HDR         28
#define MAX_STATUS  32 /* block status requests per round */

struct req {
  uint16_t flags, type;
  uint64_t cookie, off;
  uint32_t len;
  const uint8_t *payload;
  uint8_t *data;
  size_t data_off; /* into the arena, which may move while parsing */
  uint32_t error;
  int io; /* index into the io batch, -1: none */
  int nextents, ndirty;
  uint32_t *extents, *dirty; /* base:allocation, qemu:dirty-bitmap */
  uint8_t hdr[40], hdr2[24];
};

struct tx {
  struct nbd_conn *c;
  struct zl_io_queue *q;
  uint8_t *rbuf;
  size_t rlen, rpos;
  uint8_t *arena;
  size_t arena_cap, arena_used;
  uint8_t *big; /* a write payload too large for rbuf */
  size_t big_cap;
  struct req reqs[MAX_BATCH];
  struct zl_io_req ios[MAX_BATCH];
  struct iovec iov[4 * MAX_BATCH];
  uint32_t extents[2 * MAX_STATUS][2 * MAX_EXTENTS]; /* two contexts each */
  bool idle; /* no request came within the linger: park the connection */
};

uint32_t
nbd_errno(int e)
{
  switch (e) {
  case 0:
    return 0;
  case EPERM:
  case EROFS:
    return NBD_EPERM;
  case ENOMEM:
    return NBD_ENOMEM;
  case ENOSPC:
  case EDQUOT:
  case EFBIG:
    return NBD_ENOSPC;
  case EOVERFLOW:
    return NBD_EOVERFLOW;
  case ENOTSUP:
    return NBD_ENOTSUP;
  case ESHUTDOWN:
    return NBD_ESHUTDOWN;
  case EINVAL:
    return NBD_EINVAL;
  default:
    return NBD_EIO;
  }
}

/* Validate one request against the export; 0 or an NBD error. */
static uint32_t
check(const struct nbd_conn *c, const struct req *r)
{
  const struct nbd_export *e = c->exp;
  uint16_t ok = NBD_CMD_FLAG_FUA;
  uint64_t end = r->off + r->len;
  bool past = end < r->off || end > (uint64_t)c->size;

  switch (r->type) {
  case NBD_CMD_READ:
    ok |= c->structured ? NBD_CMD_FLAG_DF : 0;
    break;
  case NBD_CMD_WRITE_ZEROES:
    ok |= NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO;
    break;
  case NBD_CMD_BLOCK_STATUS:
    ok |= NBD_CMD_FLAG_REQ_ONE;
    break;
  case NBD_CMD_WRITE:
  case NBD_CMD_FLUSH:
  case NBD_CMD_TRIM:
  case NBD_CMD_CACHE:
    break;
  default:
    return NBD_EINVAL;
  }
  if (r->flags & ~ok)
    return NBD_EINVAL;
  switch (r->type) {
  case NBD_CMD_WRITE:
  case NBD_CMD_TRIM:
  case NBD_CMD_WRITE_ZEROES:
    if (e->readonly)
      return NBD_EPERM;
    if (past)
      return r->type == NBD_CMD_WRITE || r->type == NBD_CMD_WRITE_ZEROES ? NBD_ENOSPC
                                                                         : NBD_EINVAL;
    return 0;
  case NBD_CMD_FLUSH:
    return r->off || r->len ? NBD_EINVAL : 0;
  case NBD_CMD_BLOCK_STATUS:
    if (!c->meta_base_allocation && !c->meta_dirty)
      return NBD_EINVAL;
    return past || r->len == 0 ? NBD_EINVAL : 0;
  default: /* READ, CACHE */
    if (r->type == NBD_CMD_READ && r->len > NBD_MAX_PAYLOAD)
      return NBD_EOVERFLOW;
    return past ? NBD_EINVAL : 0;
  }
}

static int
need_bytes(struct tx *t, size_t want)
{
  while (t->rlen - t->rpos < want) {
    if (t->rpos && t->rpos + want > RBUF_SIZE) { /* no room left at the end */
      memmove(t->rbuf, t->rbuf + t->rpos, t->rlen - t->rpos);
      t->rlen -= t->rpos;
      t->rpos = 0;
    }
    ssize_t n = nbd_read_some(&t->c->st, t->rbuf + t->rlen, RBUF_SIZE - t->rlen);
    if (n == -1 && errno == EAGAIN && t->c->st.idle_return) {
      if (t->rlen == t->rpos) { /* idle between requests: park it */
        t->idle = true;
        return -1;
      }
      continue; /* the rest of a request is owed */
    }
    if (n <= 0)
      return -1;
    t->rlen += (size_t)n;
  }
  return 0;
}

/* Make room for the round's read data; pointers are set after. */
static int
arena_reserve(struct tx *t, size_t total)
{
  if (total <= t->arena_cap)
    return 0;
  size_t cap = t->arena_cap ? t->arena_cap : (1u << 20);
  while (cap < total)
    cap *= 2;
  uint8_t *a = realloc(t->arena, cap);
  if (!a)
    return -1;
  t->arena = a;
  t->arena_cap = cap;
  return 0;
}

/* Parse the requests available (at least one, reading as needed).
 * Returns the number, 0 at EOF/protocol error. *disc: a DISC was seen. */
static size_t
parse(struct tx *t, bool *disc)
{
  size_t nb = 0, nstatus = 0;

  t->arena_used = 0;
  if (need_bytes(t, HDR) == -1)
    return 0;
  while (nb < MAX_BATCH && t->rlen - t->rpos >= HDR) {
    const uint8_t *h = t->rbuf + t->rpos;
    struct req *r = &t->reqs[nb];
    if (be32(h) != NBD_REQUEST_MAGIC) {
      zl_info("bad request magic: disconnecting");
      return 0;
    }
    memset(r, 0, offsetof(struct req, hdr));
    r->flags = be16(h + 4);
    r->type = be16(h + 6);
    r->cookie = be64(h + 8);
    r->off = be64(h + 16);
    r->len = be32(h + 24);
    r->io = -1;
    if (r->type == NBD_CMD_WRITE) {
      if (r->len > NBD_MAX_PAYLOAD) {
        zl_info("write of %u bytes is over the limit: disconnecting", r->len);
        return 0;
      }
      if (t->rlen - t->rpos - HDR < r->len) {
        if (nb > 0)
          break; /* run what we have; the payload is on its way */
        if ((size_t)HDR + r->len <= RBUF_SIZE) {
          if (need_bytes(t, HDR + (size_t)r->len) == -1)
            return 0;
          h = t->rbuf + t->rpos;
        } else {
          if (t->big_cap < r->len) {
            free(t->big);
            if (!(t->big = malloc(r->len)))
              return 0;
            t->big_cap = r->len;
          }
          size_t have = t->rlen - t->rpos - HDR;
          memcpy(t->big, h + HDR, have);
          if (nbd_read_full(&t->c->st, t->big + have, r->len - have) == -1)
            return 0;
          r->payload = t->big;
          t->rlen = t->rpos = 0;
          r->error = check(t->c, r);
          nb++;
          break;
        }
      }
      r->payload = h + HDR;
      t->rpos += HDR + r->len;
    } else {
      if (r->type == NBD_CMD_READ && r->len <= NBD_MAX_PAYLOAD && nb > 0 &&
          t->arena_used + r->len > ARENA_MAX)
        break; /* enough read data held for this round */
      if (r->type == NBD_CMD_BLOCK_STATUS && nstatus == MAX_STATUS)
        break; /* extent buffers for this round are used up */
      nstatus += r->type == NBD_CMD_BLOCK_STATUS;
      t->rpos += HDR;
    }
    if (r->type == NBD_CMD_DISC) {
      *disc = true;
      break;
    }
    r->error = check(t->c, r);
    if (atomic_load(t->c->stopping))
      r->error = NBD_ESHUTDOWN;
    if (!r->error && r->type == NBD_CMD_READ && r->len) {
      r->data_off = t->arena_used;
      t->arena_used += r->len;
    }
    nb++;
  }
  /* the round's read buffers, now that their total is known */
  bool room = arena_reserve(t, t->arena_used) == 0;
  for (size_t i = 0; i < nb; i++) {
    struct req *r = &t->reqs[i];
    if (!r->error && r->type == NBD_CMD_READ && r->len) {
      if (room)
        r->data = t->arena + r->data_off;
      else
        r->error = NBD_ENOMEM;
    }
  }
  return nb;
}

/* Fill r's block status replies (which need no I/O). */
static void
block_status(struct tx *t, struct req *r, size_t bs)
{
  bool one = r->flags & NBD_CMD_FLAG_REQ_ONE;

  r->extents = t->extents[2 * bs]; /* parse() keeps bs < MAX_STATUS */
  r->dirty = t->extents[2 * bs + 1];
  if (t->c->meta_base_allocation) {
    int n = nbd_extents(t->c->exp, r->off, r->len, one, r->extents, MAX_EXTENTS);
    if (n < 0)
      r->error = nbd_errno(errno);
    r->nextents = n;
  }
  if (t->c->meta_dirty)
    r->ndirty =
        nbd_bitmap_extents(&t->c->dirty, r->off, r->len, one, r->dirty, MAX_EXTENTS);
}

/* The write path's request for r; false when r needs no I/O. */
static bool
io_request(const struct req *r, struct zl_io_req *q)
{
  uint8_t fua = r->flags & NBD_CMD_FLAG_FUA ? ZL_IO_FUA : 0;

  *q = (struct zl_io_req){.off = r->off, .len = r->len};
  switch (r->type) {
  case NBD_CMD_READ:
    q->op = ZL_IO_READ;
    q->buf = r->data;
    return r->len != 0;
  case NBD_CMD_WRITE:
    q->op = ZL_IO_WRITE;
    q->flags = fua;
    q->buf = (void *)r->payload;
    return true;
  case NBD_CMD_FLUSH:
    q->op = ZL_IO_FLUSH;
    return true;
  case NBD_CMD_TRIM:
    q->op = ZL_IO_TRIM;
    q->flags = fua;
    return true;
  case NBD_CMD_WRITE_ZEROES:
    q->op = ZL_IO_ZERO;
    q->flags = fua | (r->flags & NBD_CMD_FLAG_NO_HOLE ? 0 : ZL_IO_MAY_TRIM) |
               (r->flags & NBD_CMD_FLAG_FAST_ZERO ? ZL_IO_FAST_ONLY : 0);
    return true;
  case NBD_CMD_CACHE:
    q->op = ZL_IO_CACHE;
    return true;
  default:
    return false;
  }
}

/* Run the round's requests: one batch down the write path. */
static void
execute(struct tx *t, size_t nb)
{
  size_t ni = 0, bs = 0;

  for (size_t i = 0; i < nb; i++) {
    struct req *r = &t->reqs[i];
    if (r->error || r->type == NBD_CMD_DISC)
      continue;
    if (r->type == NBD_CMD_BLOCK_STATUS)
      block_status(t, r, bs++);
    else if (io_request(r, &t->ios[ni]))
      r->io = (int)ni++;
  }
  zl_io_batch(t->c->exp->io, t->q, t->ios, ni);
  for (size_t i = 0; i < nb; i++) {
    struct req *r = &t->reqs[i];
    if (r->io >= 0)
      r->error = nbd_errno(-t->ios[r->io].result);
  }
}

/* Build all replies into iovecs and send them at once. */
static int
send_replies(struct tx *t, size_t nb)
{
  const bool sr = t->c->structured;
  int n = 0;

  for (size_t i = 0; i < nb; i++) {
    struct req *r = &t->reqs[i];
    uint8_t *h = r->hdr;
    if (r->type == NBD_CMD_DISC)
      continue;
    bool read = r->type == NBD_CMD_READ, bstat = r->type == NBD_CMD_BLOCK_STATUS;
    if (!sr || (!read && !bstat && !r->error) || (!sr && r->error)) {
      put32(h, NBD_SIMPLE_MAGIC);
      put32(h + 4, r->error);
      put64(h + 8, r->cookie);
      t->iov[n++] = (struct iovec){h, 16};
      if (read && !r->error && r->len)
        t->iov[n++] = (struct iovec){r->data, r->len};
      continue;
    }
    put32(h, NBD_STRUCTURED_MAGIC);
    put16(h + 4, NBD_REPLY_FLAG_DONE);
    put64(h + 8, r->cookie);
    if (r->error) {
      put16(h + 6, NBD_REPLY_TYPE_ERROR);
      put32(h + 16, 6);
      put32(h + 20, r->error);
      put16(h + 24, 0);
      t->iov[n++] = (struct iovec){h, 26};
    } else if (read && r->len) {
      put16(h + 6, NBD_REPLY_TYPE_OFFSET_DATA);
      put32(h + 16, 8 + r->len);
      put64(h + 20, r->off);
      t->iov[n++] = (struct iovec){h, 28};
      t->iov[n++] = (struct iovec){r->data, r->len};
    } else if (read) {
      put16(h + 6, NBD_REPLY_TYPE_NONE);
      put32(h + 16, 0);
      t->iov[n++] = (struct iovec){h, 20};
    } else { /* block status: one chunk per context, the last one DONE */
      bool both = t->c->meta_base_allocation && t->c->meta_dirty;
      if (t->c->meta_base_allocation) {
        put16(h + 4, both ? 0 : NBD_REPLY_FLAG_DONE);
        put16(h + 6, NBD_REPLY_TYPE_BLOCK_STATUS);
        put32(h + 16, 4 + 8 * (uint32_t)r->nextents);
        put32(h + 20, t->c->meta_base_allocation);
        for (int k = 0; k < 2 * r->nextents; k++)
          r->extents[k] = __builtin_bswap32(r->extents[k]);
        t->iov[n++] = (struct iovec){h, 24};
        t->iov[n++] = (struct iovec){r->extents, 8 * (size_t)r->nextents};
      }
      if (t->c->meta_dirty) {
        uint8_t *h2 = both ? r->hdr2 : h;
        put32(h2, NBD_STRUCTURED_MAGIC);
        put16(h2 + 4, NBD_REPLY_FLAG_DONE);
        put16(h2 + 6, NBD_REPLY_TYPE_BLOCK_STATUS);
        put64(h2 + 8, r->cookie);
        put32(h2 + 16, 4 + 8 * (uint32_t)r->ndirty);
        put32(h2 + 20, t->c->meta_dirty);
        for (int k = 0; k < 2 * r->ndirty; k++)
          r->dirty[k] = __builtin_bswap32(r->dirty[k]);
        t->iov[n++] = (struct iovec){h2, 24};
        t->iov[n++] = (struct iovec){r->dirty, 8 * (size_t)r->ndirty};
      }
    }
  }
  return n ? nbd_writev_full(&t->c->st, t->iov, n) : 0;
}

/* Linger: a connection with no request for this long gives its thread
 * back (SO_RCVTIMEO; no extra system call per request). */
static void
set_linger(struct nbd_conn *c)
{
  if (c->linger_ms <= 0 || c->st.idle_return)
    return;
  struct timeval tv = {.tv_sec = c->linger_ms / 1000,
                       .tv_usec = c->linger_ms % 1000 * 1000};
  if (setsockopt(c->st.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0)
    c->st.idle_return = true;
}

/* A connection's round state (~0.6 MiB, mostly extent buffers that few
 * rounds touch) is mapped, not calloc()ed: a connection that wakes from
 * parking would otherwise have it zeroed (touched) from recycled heap
 * memory once glibc's mmap threshold has grown past it, and 1,000 idle
 * connections held 239 MiB.  Fresh mappings cost only the pages used. */
static struct tx *
tx_new(void)
{
  void *p = mmap(NULL, sizeof(struct tx), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

bool
nbd_transmission(struct nbd_conn *c)
{
  struct tx *t = tx_new();
  bool park = false;

  if (!t || !(t->rbuf = malloc(RBUF_SIZE)) ||
      !(t->q = zl_io_queue_new((unsigned)c->cfg->threads_io_depth, c->cfg->no_uring))) {
    zl_err("connection: out of memory");
    goto out;
  }
  /* whose writes these are, for the fence: a TLS peer writes as the host
   * its PSK names (an X.509 peer as nobody's), a plain connection (the
   * local socket) as this host, a plain TCP one as nobody's */
  const char *peer = c->st.session ? nbd_tls_peer(c->st.session) : NULL;
  if (c->st.session || c->tcp) {
    if (zl_io_queue_set_peer(t->q, peer            ? peer
                                   : c->st.session ? "tls:anonymous"
                                                   : "tcp:anonymous") == -1) {
      zl_err("connection: out of memory");
      goto out;
    }
  }
  t->c = c;
  set_linger(c);
  for (;;) {
    bool disc = false;
    size_t nb = parse(t, &disc);
    if (nb) {
      execute(t, nb);
      if (send_replies(t, nb) == -1)
        break;
    }
    if (disc || !nb) {
      park = !nb && t->idle && !atomic_load(c->stopping);
      break;
    }
    if (t->rpos == t->rlen)
      t->rpos = t->rlen = 0;
  }
out:
  if (t) {
    zl_io_queue_free(t->q);
    free(t->rbuf);
    free(t->arena);
    free(t->big);
    munmap(t, sizeof *t);
  }
  return park;
}
