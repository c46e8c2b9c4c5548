/* context.c: base:allocation extents, from the storage (SEEK_DATA /
 * SEEK_HOLE on files; a block device is reported as all data). */
#include <errno.h>
#include <unistd.h>

#include "nbd/nbd.h"

#include "util/banned.h" /* last: after every declaration */

#define EXTENT_MAX UINT32_C(0xfffff000) /* one u32 extent, block aligned */

static int
add(uint32_t *pairs, int n, uint64_t len, uint32_t flags)
{
  pairs[2 * n] = (uint32_t)(len > EXTENT_MAX ? EXTENT_MAX : len);
  pairs[2 * n + 1] = flags;
  return n + 1;
}

int
nbd_extents(const struct nbd_export *e, uint64_t off, uint64_t len, bool one,
            uint32_t *pairs, int max)
{
  uint64_t end = off + len, pos = off;
  int n = 0;

  if (e->blockdev)
    return add(pairs, 0, len, 0);
  while (pos < end && n < max && !(one && n == 1)) {
    off_t data = lseek(e->fd, (off_t)pos, SEEK_DATA);
    if (data == -1) {
      if (errno != ENXIO)
        return n ? n : add(pairs, 0, len, 0); /* no SEEK_DATA: all data */
      data = (off_t)end;                      /* only a hole to the end */
    }
    if ((uint64_t)data > pos) {
      uint64_t h = (uint64_t)data < end ? (uint64_t)data : end;
      n = add(pairs, n, h - pos, NBD_STATE_HOLE | NBD_STATE_ZERO);
      pos += pairs[2 * (n - 1)];
      continue;
    }
    off_t hole = lseek(e->fd, (off_t)pos, SEEK_HOLE);
    uint64_t h = hole == -1 || (uint64_t)hole > end ? end : (uint64_t)hole;
    if (h <= pos)
      h = end;
    n = add(pairs, n, h - pos, 0);
    pos += pairs[2 * (n - 1)];
  }
  return n;
}
