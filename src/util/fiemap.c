/* fiemap.c: see fiemap.h. */
#include <errno.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "error.h"
#include "fiemap.h"

#include "util/banned.h" /* last: after every declaration */

#define BATCH 512

/* extents we cannot compare by address */
#define VAGUE                                                                            \
  (FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC | FIEMAP_EXTENT_DATA_INLINE |          \
   FIEMAP_EXTENT_DATA_TAIL | FIEMAP_EXTENT_NOT_ALIGNED)

/* A cursor over one file's extents, fetched BATCH at a time. */
struct cursor {
  int fd;
  uint64_t size;
  struct fiemap *fm;
  unsigned i;    /* next extent in fm */
  uint64_t next; /* where the next batch starts */
  bool done;     /* the last extent was seen */
};

static int
fetch(struct cursor *c)
{
  c->fm->fm_start = c->next;
  c->fm->fm_length = c->size > c->next ? c->size - c->next : 0;
  c->fm->fm_flags = FIEMAP_FLAG_SYNC;
  c->fm->fm_extent_count = BATCH;
  c->fm->fm_mapped_extents = 0;
  c->i = 0;
  if (c->fm->fm_length == 0) {
    c->done = true;
    return 0;
  }
  if (ioctl(c->fd, FS_IOC_FIEMAP, c->fm) == -1) {
    int e = errno == ENOTTY || errno == EOPNOTSUPP ? ENOTSUP : errno;
    zl_error(e, "extent map (FIEMAP): %s", strerror(errno));
    return -1;
  }
  unsigned n = c->fm->fm_mapped_extents;
  if (n == 0) {
    c->done = true;
  } else {
    const struct fiemap_extent *last = &c->fm->fm_extents[n - 1];
    c->next = last->fe_logical + last->fe_length;
    if (last->fe_flags & FIEMAP_EXTENT_LAST)
      c->done = true;
  }
  return 0;
}

/* The extent holding pos or the first one after it (NULL: none). */
static int
at(struct cursor *c, uint64_t pos, const struct fiemap_extent **out)
{
  for (;;) {
    while (c->i < c->fm->fm_mapped_extents) {
      const struct fiemap_extent *e = &c->fm->fm_extents[c->i];
      if (e->fe_logical + e->fe_length > pos) {
        *out = e;
        return 0;
      }
      c->i++;
    }
    if (c->done) {
      *out = NULL;
      return 0;
    }
    if (fetch(c) == -1)
      return -1;
  }
}

static bool
same_blocks(const struct fiemap_extent *x, const struct fiemap_extent *y, uint64_t pos)
{
  if ((x->fe_flags | y->fe_flags) & VAGUE)
    return false;
  if ((x->fe_flags | y->fe_flags) & FIEMAP_EXTENT_ENCODED) /* compressed: whole only */
    return x->fe_logical == y->fe_logical && x->fe_length == y->fe_length &&
           x->fe_physical == y->fe_physical && x->fe_flags == y->fe_flags;
  if ((x->fe_flags ^ y->fe_flags) & FIEMAP_EXTENT_UNWRITTEN)
    return false;
  return x->fe_physical + (pos - x->fe_logical) == y->fe_physical + (pos - y->fe_logical);
}

int
zl_fiemap_diff(int a, int b, uint64_t size,
               int (*cb)(void *opaque, uint64_t offset, uint64_t length), void *opaque)
{
  size_t fmsize = sizeof(struct fiemap) + BATCH * sizeof(struct fiemap_extent);
  struct cursor ca = {.fd = a, .size = size}, cb_ = {.fd = b, .size = size};
  uint64_t pos = 0, run = 0, runlen = 0;
  int r = -1;

  ca.fm = calloc(1, fmsize);
  cb_.fm = calloc(1, fmsize);
  if (!ca.fm || !cb_.fm) {
    zl_error(ENOMEM, "out of memory");
    goto out;
  }
  if (fetch(&ca) == -1 || fetch(&cb_) == -1)
    goto out;
  while (pos < size) {
    const struct fiemap_extent *x, *y;
    if (at(&ca, pos, &x) == -1 || at(&cb_, pos, &y) == -1)
      goto out;
    bool in_x = x && x->fe_logical <= pos, in_y = y && y->fe_logical <= pos;
    uint64_t end = size;
    /* the segment ends where either file's extent (or hole) ends */
    if (x)
      end = in_x ? x->fe_logical + x->fe_length : x->fe_logical;
    if (y) {
      uint64_t ey = in_y ? y->fe_logical + y->fe_length : y->fe_logical;
      if (ey < end)
        end = ey;
    }
    if (end > size)
      end = size;
    if (end <= pos) /* malformed map: stop trusting it */
      end = size;
    bool differ = in_x != in_y || (in_x && !same_blocks(x, y, pos));
    if (differ) {
      if (runlen && run + runlen == pos) {
        runlen += end - pos;
      } else {
        if (runlen && cb(opaque, run, runlen) == -1)
          goto out;
        run = pos;
        runlen = end - pos;
      }
    }
    pos = end;
  }
  if (runlen && cb(opaque, run, runlen) == -1)
    goto out;
  r = 0;
out:
  free(ca.fm);
  free(cb_.fm);
  return r;
}
