/* delay.c: a test layer (nbdkit's filters/delay).  With
 * ZFS_LIVE_TEST_WRITE_DELAY_US=N (1..1000000) in the environment when a
 * stack is opened, every batch that changes data is held N microseconds
 * before it goes down; under the tracking layer, that is between marking
 * the ranges and issuing the writes, so tests can make snapshots land in
 * that window (the race core/cbt.c is built for).  Not in a stack
 * otherwise. */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/io/io.h"
#include "util/error.h"

#include "util/banned.h" /* last: after every declaration */

#define DELAY_VAR "ZFS_LIVE_TEST_WRITE_DELAY_US"

static long
delay_us(void)
{
  const char *s = getenv(DELAY_VAR);
  char *end;

  if (!s || !*s)
    return 0;
  long us = strtol(s, &end, 10);
  return *end || us < 0 || us > 1000000 ? 0 : us;
}

static bool
delay_wanted(const struct zl_io_target *t)
{
  (void)t;
  return delay_us() > 0;
}

static int
delay_open(struct zl_io_layer *self, const struct zl_io_target *t)
{
  long *us = malloc(sizeof *us);
  (void)t;
  if (!us) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  *us = delay_us();
  self->state = us;
  return 0;
}

static void
delay_close(struct zl_io_layer *self)
{
  free(self->state);
}

static void
delay_batch(struct zl_io_layer *self, struct zl_io_queue *q, struct zl_io_req *r,
            size_t n)
{
  for (size_t i = 0; i < n; i++) {
    if (zl_io_changes(&r[i])) {
      usleep((useconds_t) * (const long *)self->state);
      break;
    }
  }
  zl_io_next(self, q, r, n);
}

const struct zl_io_layer_ops zl_io_delay = {
    .name = "delay",
    .wanted = delay_wanted,
    .open = delay_open,
    .close = delay_close,
    .batch = delay_batch,
};
