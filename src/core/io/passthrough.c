/* passthrough.c: the layer that adds nothing, where a volume's writes need
 * no tracking (the stack is read-only, or the SR's copy-on-write layer
 * always knows what changed: ZL_CAP_CHANGES_ALWAYS).  It keeps the shape of
 * the stack the same whatever the volume needs. */
#include "core/io/io.h"

#include "util/banned.h" /* last: after every declaration */

static void
passthrough_batch(struct zl_io_layer *self, struct zl_io_queue *q, struct zl_io_req *r,
                  size_t n)
{
  zl_io_next(self, q, r, n);
}

const struct zl_io_layer_ops zl_io_passthrough = {
    .name = "passthrough",
    .batch = passthrough_batch,
};
