/* storage.c: the bottom layer of the write path: runs a batch on the
 * volume's descriptor, through the caller's queue.
 *
 * With io_uring, a batch's reads, flushes, zeroes, trims and read-aheads
 * are submitted at once and run in parallel (buffered reads that hit the
 * page cache complete inline, misses overlap); a FLUSH is drained behind
 * everything before it.  Writes run inline with pwritev2: a buffered write
 * is a copy into the page cache, and io_uring hands buffered writes to
 * kernel worker threads on common filesystems, which measured 30% slower
 * (bench/nbd).  Without io_uring (old kernels, seccomp, `vol write`)
 * everything runs with the system calls.
 *
 * Zeroing is fallocate (ZERO_RANGE, or PUNCH_HOLE where deallocating is
 * fine); where the storage cannot, zeroes are written (or -ENOTSUP
 * returned for ZL_IO_FAST_ONLY).  Trims and read-aheads are hints: "not
 * supported" succeeds.  FUA on a write is RWF_DSYNC; on a zero or trim, one
 * fdatasync after the batch. */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/io/io.h"
#include "util/error.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

struct zl_io_queue {
  bool uring;
  struct io_uring ring;
  unsigned depth;
  char *peer; /* the writer's host when remote, else NULL */
};

int
zl_io_queue_set_peer(struct zl_io_queue *q, const char *host)
{
  char *p = host ? strdup(host) : NULL;
  if (host && !p) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  free(q->peer);
  q->peer = p;
  return 0;
}

const char *
zl_io_queue_peer(const struct zl_io_queue *q)
{
  return q ? q->peer : NULL;
}

struct zl_io_queue *
zl_io_queue_new(unsigned depth, bool no_uring)
{
  struct zl_io_queue *q = calloc(1, sizeof *q);

  if (!q) {
    zl_error(ENOMEM, "I/O queue: out of memory");
    return NULL;
  }
  q->depth = depth ? depth : 256;
  if (!no_uring) {
    int r = io_uring_queue_init(q->depth, &q->ring, 0);
    if (r == 0)
      q->uring = true;
    else
      zl_debug("io_uring unavailable (%s): using pread/pwrite", strerror(-r));
  }
  return q;
}

bool
zl_io_uring_available(void)
{
  struct io_uring ring;

  if (io_uring_queue_init(1, &ring, 0) != 0)
    return false;
  io_uring_queue_exit(&ring);
  return true;
}

void
zl_io_queue_free(struct zl_io_queue *q)
{
  if (!q)
    return;
  if (q->uring)
    io_uring_queue_exit(&q->ring);
  free(q->peer);
  free(q);
}

/* --- one request with the system calls ---------------------------------------- */

static const uint8_t zeroes[65536];

/* The whole of a read or write, looping over short transfers. */
static int
rw_sync(int fd, struct zl_io_req *r, uint64_t done)
{
  while (done < r->len) {
    ssize_t n;
    char *p = (char *)r->buf + done;
    size_t left = r->len - done;
    off_t off = (off_t)(r->off + done);
    if (r->op == ZL_IO_READ) {
      n = pread(fd, p, left, off);
      if (n == 0) { /* past the end of a file: zeroes (never for exports) */
        memset(p, 0, left);
        return 0;
      }
    } else {
      struct iovec iov = {p, left};
      n = pwritev2(fd, &iov, 1, off, r->flags & ZL_IO_FUA ? RWF_DSYNC : 0);
    }
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    done += (uint64_t)n;
  }
  return 0;
}

/* Zero a range by writing zeroes (when fallocate cannot). */
static int
write_zeroes(int fd, uint64_t off, uint64_t len)
{
  while (len) {
    size_t n = len > sizeof zeroes ? sizeof zeroes : (size_t)len;
    ssize_t w = pwrite(fd, zeroes, n, (off_t)off);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    off += (uint64_t)w;
    len -= (uint64_t)w;
  }
  return 0;
}

static int
falloc_mode(const struct zl_io_req *r)
{
  if (r->op == ZL_IO_ZERO && !(r->flags & ZL_IO_MAY_TRIM))
    return FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
  return FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
}

/* What a raw result means: zeroing the storage cannot do is done by
 * writing (unless only a fast zero was asked for); hints it cannot take
 * succeed. */
static int
settle(int fd, const struct zl_io_req *r, int res)
{
  if (res != -EOPNOTSUPP && res != -ENOTSUP)
    return res;
  switch (r->op) {
  case ZL_IO_ZERO:
    return r->flags & ZL_IO_FAST_ONLY ? -ENOTSUP : write_zeroes(fd, r->off, r->len);
  case ZL_IO_TRIM:
  case ZL_IO_CACHE:
    return 0;
  default:
    return res;
  }
}

static int
run_sync(int fd, struct zl_io_req *r)
{
  int res = -EINVAL;

  switch ((enum zl_io_op)r->op) {
  case ZL_IO_READ:
  case ZL_IO_WRITE:
    res = rw_sync(fd, r, 0);
    break;
  case ZL_IO_FLUSH:
    res = fdatasync(fd) == 0 ? 0 : -errno;
    break;
  case ZL_IO_ZERO:
  case ZL_IO_TRIM:
    res = fallocate(fd, falloc_mode(r), (off_t)r->off, (off_t)r->len) == 0 ? 0 : -errno;
    break;
  case ZL_IO_CACHE:
    res = -posix_fadvise(fd, (off_t)r->off, (off_t)r->len, POSIX_FADV_WILLNEED);
    break;
  }
  return settle(fd, r, res);
}

/* --- a batch through io_uring ------------------------------------------------- */

static void
prep(struct io_uring_sqe *sqe, int fd, struct zl_io_req *r)
{
  switch ((enum zl_io_op)r->op) {
  case ZL_IO_READ:
    io_uring_prep_read(sqe, fd, r->buf, (unsigned)r->len, r->off);
    break;
  case ZL_IO_WRITE:
    io_uring_prep_write(sqe, fd, r->buf, (unsigned)r->len, r->off);
    sqe->rw_flags = r->flags & ZL_IO_FUA ? RWF_DSYNC : 0;
    break;
  case ZL_IO_FLUSH:
    io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
    sqe->flags |= IOSQE_IO_DRAIN; /* covers every write before it */
    break;
  case ZL_IO_ZERO:
  case ZL_IO_TRIM:
    io_uring_prep_fallocate(sqe, fd, falloc_mode(r), r->off, r->len);
    break;
  case ZL_IO_CACHE:
    io_uring_prep_fadvise(sqe, fd, r->off, (off_t)r->len, POSIX_FADV_WILLNEED);
    break;
  }
}

/* The result of a completion. */
static int
completed(int fd, struct zl_io_req *r, int res)
{
  if (res >= 0 && (r->op == ZL_IO_READ || r->op == ZL_IO_WRITE))
    return (uint64_t)res < r->len ? rw_sync(fd, r, (uint64_t)res) : 0;
  if (res > 0)
    res = 0;
  /* filesystems without async fallocate/fadvise answer EINVAL/EOPNOTSUPP
   * from io_uring itself: the system call decides */
  if (res == -EINVAL &&
      (r->op == ZL_IO_ZERO || r->op == ZL_IO_TRIM || r->op == ZL_IO_CACHE))
    return run_sync(fd, r);
  return settle(fd, r, res);
}

static void
run_uring(struct zl_io_queue *q, int fd, struct zl_io_req *r, size_t n)
{
  size_t next = 0, inflight = 0;

  while (next < n || inflight > 0) {
    /* queue as much as fits */
    while (next < n && inflight < q->depth) {
      struct zl_io_req *x = &r[next];
      if (x->op == ZL_IO_WRITE) {
        x->result = rw_sync(fd, x, 0);
        next++;
        continue;
      }
      struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);
      if (!sqe)
        break;
      prep(sqe, fd, x);
      io_uring_sqe_set_data64(sqe, next);
      next++;
      inflight++;
    }
    if (inflight == 0)
      break;
    int sr = io_uring_submit_and_wait(&q->ring, 1);
    if (sr < 0 && sr != -EINTR && sr != -EAGAIN && sr != -EBUSY) {
      /* the ring failed us: finish what is left the slow way */
      zl_warn("io_uring submit: %s; finishing with pread/pwrite", strerror(-sr));
      for (size_t i = 0; i < n; i++)
        r[i].result = run_sync(fd, &r[i]);
      return;
    }
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&q->ring, head, cqe)
    {
      struct zl_io_req *x = &r[io_uring_cqe_get_data64(cqe)];
      x->result = completed(fd, x, cqe->res);
      seen++;
      inflight--;
    }
    io_uring_cq_advance(&q->ring, seen);
  }
}

/* --- the layer ---------------------------------------------------------------- */

struct storage {
  int fd;
};

static int
storage_open(struct zl_io_layer *self, const struct zl_io_target *t)
{
  struct storage *s = malloc(sizeof *s);
  if (!s) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  s->fd = t->fd;
  self->state = s;
  return 0;
}

static void
storage_close(struct zl_io_layer *self)
{
  free(self->state);
}

static void
storage_batch(struct zl_io_layer *self, struct zl_io_queue *q, struct zl_io_req *r,
              size_t n)
{
  const int fd = ((const struct storage *)self->state)->fd;
  bool fua = false;

  if (q->uring) {
    run_uring(q, fd, r, n);
  } else {
    for (size_t i = 0; i < n; i++)
      r[i].result = run_sync(fd, &r[i]);
  }
  /* FUA on zero and trim: durable before the batch returns */
  for (size_t i = 0; i < n; i++)
    fua |= (r[i].op == ZL_IO_ZERO || r[i].op == ZL_IO_TRIM) && (r[i].flags & ZL_IO_FUA) &&
           r[i].result == 0;
  if (fua && fdatasync(fd) == -1) {
    int res = -errno;
    for (size_t i = 0; i < n; i++) {
      if ((r[i].op == ZL_IO_ZERO || r[i].op == ZL_IO_TRIM) && (r[i].flags & ZL_IO_FUA) &&
          r[i].result == 0)
        r[i].result = res;
    }
  }
}

const struct zl_io_layer_ops zl_io_storage = {
    .name = "storage",
    .open = storage_open,
    .close = storage_close,
    .batch = storage_batch,
};
