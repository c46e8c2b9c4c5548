/* io.c: a connection's I/O engine.  With io_uring, a batch's reads, syncs,
 * fallocates and fadvises are submitted at once and run in parallel
 * (buffered reads that hit the page cache complete inline, misses overlap);
 * a request marked barrier (FLUSH) is drained behind everything before it.
 * Writes run inline with pwritev2: a buffered write is a copy into the
 * page cache, and io_uring hands buffered writes to kernel worker threads
 * on common filesystems, which measured 30% slower (bench/nbd).  Without
 * io_uring (old kernels, seccomp) everything runs with the system calls. */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "nbd/nbd.h"
#include "util/log.h"

struct nbd_io {
  bool uring;
  struct io_uring ring;
  unsigned depth;
};

struct nbd_io *
nbd_io_new(unsigned depth, bool no_uring)
{
  struct nbd_io *io = calloc(1, sizeof *io);

  if (!io)
    return NULL;
  io->depth = depth ? depth : 256;
  if (!no_uring) {
    int r = io_uring_queue_init(io->depth, &io->ring, 0);
    if (r == 0)
      io->uring = true;
    else
      zl_debug("io_uring unavailable (%s): using pread/pwrite", strerror(-r));
  }
  return io;
}

void
nbd_io_free(struct nbd_io *io)
{
  if (!io)
    return;
  if (io->uring)
    io_uring_queue_exit(&io->ring);
  free(io);
}

/* The whole of a read or write, looping over short transfers. */
static int
rw_sync(struct io_req *r, uint64_t done)
{
  while (done < r->len) {
    ssize_t n;
    char *p = (char *)r->buf + done;
    size_t left = r->len - done;
    off_t off = (off_t)(r->off + done);
    if (r->op == IO_READ) {
      n = pread(r->fd, p, left, off);
      if (n == 0) { /* past the end of a file: zeroes (never for exports) */
        memset(p, 0, left);
        return 0;
      }
    } else {
      struct iovec iov = {p, left};
      n = pwritev2(r->fd, &iov, 1, off, r->mode);
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

static int
run_sync(struct io_req *r)
{
  switch (r->op) {
  case IO_READ:
  case IO_WRITE:
    return rw_sync(r, 0);
  case IO_FSYNC:
    return fdatasync(r->fd) == 0 ? 0 : -errno;
  case IO_FALLOC:
    return fallocate(r->fd, r->mode, (off_t)r->off, (off_t)r->len) == 0 ? 0 : -errno;
  case IO_FADVISE:
    return posix_fadvise(r->fd, (off_t)r->off, (off_t)r->len, POSIX_FADV_WILLNEED) == 0
               ? 0
               : -errno;
  case IO_NONE:
    return 0;
  }
  return -EINVAL;
}

void
nbd_io_run(struct nbd_io *io, struct io_req *r, size_t n)
{
  if (!io->uring) {
    for (size_t i = 0; i < n; i++)
      r[i].result = run_sync(&r[i]);
    return;
  }
  size_t next = 0, inflight = 0;
  while (next < n || inflight > 0) {
    /* queue as much as fits */
    while (next < n && inflight < io->depth) {
      struct io_req *q = &r[next];
      if (q->op == IO_NONE || q->op == IO_WRITE) {
        q->result = q->op == IO_WRITE ? rw_sync(q, 0) : 0;
        next++;
        continue;
      }
      struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);
      if (!sqe)
        break;
      switch (q->op) {
      case IO_READ:
        io_uring_prep_read(sqe, q->fd, q->buf, (unsigned)q->len, q->off);
        break;
      case IO_WRITE:
        io_uring_prep_write(sqe, q->fd, q->buf, (unsigned)q->len, q->off);
        sqe->rw_flags = q->mode;
        break;
      case IO_FSYNC:
        io_uring_prep_fsync(sqe, q->fd, IORING_FSYNC_DATASYNC);
        break;
      case IO_FALLOC:
        io_uring_prep_fallocate(sqe, q->fd, q->mode, q->off, q->len);
        break;
      case IO_FADVISE:
        io_uring_prep_fadvise(sqe, q->fd, q->off, (off_t)q->len, POSIX_FADV_WILLNEED);
        break;
      case IO_NONE:
        break;
      }
      if (q->barrier)
        sqe->flags |= IOSQE_IO_DRAIN;
      io_uring_sqe_set_data64(sqe, next);
      next++;
      inflight++;
    }
    if (inflight == 0)
      break;
    int sr = io_uring_submit_and_wait(&io->ring, 1);
    if (sr < 0 && sr != -EINTR && sr != -EAGAIN && sr != -EBUSY) {
      /* the ring failed us: finish what is left the slow way */
      zl_warn("io_uring submit: %s; finishing with pread/pwrite", strerror(-sr));
      for (size_t i = 0; i < n; i++)
        r[i].result = run_sync(&r[i]);
      return;
    }
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&io->ring, head, cqe)
    {
      struct io_req *q = &r[io_uring_cqe_get_data64(cqe)];
      int res = cqe->res;
      if (res >= 0 && (q->op == IO_READ || q->op == IO_WRITE))
        res = (uint64_t)res < q->len ? rw_sync(q, (uint64_t)res) : 0;
      else if (res > 0)
        res = 0;
      /* filesystems without async fallocate/fadvise answer EINVAL/EOPNOTSUPP
       * from io_uring itself: the system call decides */
      if (res == -EINVAL && (q->op == IO_FALLOC || q->op == IO_FADVISE))
        res = run_sync(q);
      q->result = res;
      seen++;
      inflight--;
    }
    io_uring_cq_advance(&io->ring, seen);
  }
}
