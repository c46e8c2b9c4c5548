/* io.c: a volume's stack of write-path layers (see io.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/io/io.h"
#include "util/error.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

#define MAX_LAYERS 8

struct zl_io {
  size_t n;
  struct zl_io_layer layers[MAX_LAYERS]; /* [0] is the top */
  char name[64];
};

/* Open ops as the next layer down; -1 with an error message. */
static int
push(struct zl_io *io, const struct zl_io_layer_ops *ops, const struct zl_io_target *t)
{
  struct zl_io_layer *l = &io->layers[io->n];

  l->ops = ops;
  if (ops->open && ops->open(l, t) == -1) {
    zl_error_prefix("write path of %s: %s layer: ", t->key, ops->name);
    return -1;
  }
  if (io->n > 0)
    io->layers[io->n - 1].next = l;
  io->n++;
  size_t len = strlen(io->name);
  snprintf(io->name + len, sizeof io->name - len, "%s%s", len ? ">" : "", ops->name);
  return 0;
}

struct zl_io *
zl_io_open(struct zl_sr *sr, const char *key, int fd, bool readonly)
{
  const struct zl_io_target t = {.sr = sr, .key = key, .fd = fd, .readonly = readonly};
  struct zl_io *io = calloc(1, sizeof *io);

  if (!io) {
    zl_error(ENOMEM, "write path of %s: out of memory", key);
    return NULL;
  }
  /* top first; the test layers only when configured */
  if ((zl_io_fence.wanted(&t) && push(io, &zl_io_fence, &t) == -1) ||
      (zl_io_mirror.wanted(&t) && push(io, &zl_io_mirror, &t) == -1) ||
      push(io, zl_io_tracking.wanted(&t) ? &zl_io_tracking : &zl_io_passthrough, &t) ==
          -1 ||
      (zl_io_delay.wanted(&t) && push(io, &zl_io_delay, &t) == -1) ||
      (zl_io_fault.wanted(&t) && push(io, &zl_io_fault, &t) == -1) ||
      push(io, &zl_io_storage, &t) == -1) {
    zl_io_close(io);
    return NULL;
  }
  zl_debug("write path of %s: %s", key, io->name);
  return io;
}

void
zl_io_close(struct zl_io *io)
{
  if (!io)
    return;
  for (size_t i = 0; i < io->n; i++) {
    struct zl_io_layer *l = &io->layers[i];
    if (l->ops->close)
      l->ops->close(l);
  }
  free(io);
}

void
zl_io_batch(struct zl_io *io, struct zl_io_queue *q, struct zl_io_req *r, size_t n)
{
  if (n)
    io->layers[0].ops->batch(&io->layers[0], q, r, n);
}

const char *
zl_io_describe(const struct zl_io *io)
{
  return io->name;
}
