/* io.h: the write path of a volume, as a stack of layers (after nbdkit's
 * filters, which call next->pwrite(next, ...)).
 *
 * Every writer of a volume (the NBD server, `zfs-live vol write`) opens the
 * volume's stack and hands it batches of requests; it never tracks, delays
 * or syncs by itself.  The stack, top first:
 *
 *   fence                    refuses the writes of a host the volume is not
 *                            active on (fence.h); writable stacks only
 *   mirror                   writable stacks: when a mirror is attached
 *                            (SXM, core/io/mirror.h), forwards every change
 *                            and flush to the remote before it completes
 *   tracking | passthrough   CBT (core/cbt.c): marks every changed range
 *                            before and after the layer below ran it, and
 *                            makes the bits durable before a FLUSH or FUA
 *                            completes; passthrough where the SR needs no
 *                            tracking (its CoW layer always knows) or the
 *                            stack is read-only
 *   delay                    tests only (ZFS_LIVE_TEST_WRITE_DELAY_US)
 *   fault                    tests only (ZFS_LIVE_TEST_IO_FAULT)
 *   storage                  the bottom: runs the requests on the volume's
 *                            descriptor, through the caller's queue
 *                            (io_uring, or the system calls)
 *
 * The test layers are in a stack only when their variable is set in the
 * environment when it is opened; otherwise they are not in the hot path at
 * all.
 */
#ifndef ZL_CORE_IO_H
#define ZL_CORE_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct zl_sr;

/* --- requests ---------------------------------------------------------------- */

enum zl_io_op {
  ZL_IO_READ,  /* buf[0, len) <- [off, off + len) */
  ZL_IO_WRITE, /* buf[0, len) -> [off, off + len) */
  ZL_IO_ZERO,  /* [off, off + len) reads back as zeroes */
  ZL_IO_TRIM,  /* [off, off + len) may be deallocated (a hint: unsupported is 0) */
  ZL_IO_FLUSH, /* every write completed before this batch is durable */
  ZL_IO_CACHE, /* a hint to read [off, off + len) ahead */
};

#define ZL_IO_FUA       0x1u /* write, zero, trim: durable when it completes */
#define ZL_IO_MAY_TRIM  0x2u /* zero: deallocating the range is fine */
#define ZL_IO_FAST_ONLY 0x4u /* zero: -ENOTSUP rather than writing zeroes */

struct zl_io_req {
  uint8_t op;    /* enum zl_io_op */
  uint8_t flags; /* ZL_IO_* */
  int result;    /* set by the stack: 0 or -errno */
  void *buf;
  uint64_t off, len;
};

/* Does the request change the volume's data? */
static inline bool
zl_io_changes(const struct zl_io_req *r)
{
  return r->op == ZL_IO_WRITE || r->op == ZL_IO_ZERO || r->op == ZL_IO_TRIM;
}

/* --- queues: one thread's way to the storage ---------------------------------- */

/* An io_uring of depth entries, or (no_uring, or where the kernel refuses
 * one) the system calls.  One thread at a time.  NULL on error (ENOMEM). */
struct zl_io_queue;
struct zl_io_queue *zl_io_queue_new(unsigned depth, bool no_uring);
/* Does this host give io_uring to this process (a ring of one entry is
 * set up and torn down)?  false on kernels before 5.1 or under a filter. */
bool zl_io_uring_available(void);
void zl_io_queue_free(struct zl_io_queue *q);
/* Whose writes the queue carries: host, the authenticated identity of a
 * remote client (the fence layer lets a host write only while the volume
 * is active there: fence.h); NULL (the default): this host.  0 or -1. */
int zl_io_queue_set_peer(struct zl_io_queue *q, const char *host);
const char *zl_io_queue_peer(const struct zl_io_queue *q);

/* --- the stack of one volume (what writers use) ------------------------------- */

struct zl_io;

/* The stack of volume key of sr over fd, the volume's data opened by
 * zl_vol_open (borrowed: the caller closes it after zl_io_close).
 * readonly: nothing will be written through it (no tracking).  sr is used
 * only during the call.  NULL with an error message on failure. */
struct zl_io *zl_io_open(struct zl_sr *sr, const char *key, int fd, bool readonly);
/* Make what the layers hold durable (tracking bits) and free the stack. */
void zl_io_close(struct zl_io *io);
/* Run n requests through the stack; every result is set when it returns.
 * Requests of one batch run in any order, except that a FLUSH covers every
 * write, zero and trim before it in the batch.  Safe to call from several
 * threads at once, each with its own queue.  A result is the storage's
 * -errno, or -EIO where a layer failed the request (it logs why). */
void zl_io_batch(struct zl_io *io, struct zl_io_queue *q, struct zl_io_req *r, size_t n);
/* The layers, top first, e.g. "tracking>storage" (for logs and tests). */
const char *zl_io_describe(const struct zl_io *io);

/* --- writing a layer (core/io/ only) ------------------------------------------ */

struct zl_io_target {
  struct zl_sr *sr; /* only during open */
  const char *key;  /* only during open */
  int fd;           /* the volume's data; valid until close */
  bool readonly;
};

struct zl_io_layer;
struct zl_io_layer_ops {
  const char *name;
  /* Is this layer in the stack of t?  NULL: always.  Called once, at open. */
  bool (*wanted)(const struct zl_io_target *t);
  /* Set up self->state; -1 with an error message on failure (having freed
   * what it made).  NULL: none. */
  int (*open)(struct zl_io_layer *self, const struct zl_io_target *t);
  /* Make durable what the layer holds and free self->state.  NULL: none. */
  void (*close)(struct zl_io_layer *self);
  /* Run the batch: set every result, usually by passing the requests (all,
   * or those it does not fail itself) to zl_io_next.  Concurrent calls
   * happen (one per queue). */
  void (*batch)(struct zl_io_layer *self, struct zl_io_queue *q, struct zl_io_req *r,
                size_t n);
};

struct zl_io_layer {
  const struct zl_io_layer_ops *ops;
  struct zl_io_layer *next; /* NULL for the bottom layer only */
  void *state;
};

static inline void
zl_io_next(struct zl_io_layer *self, struct zl_io_queue *q, struct zl_io_req *r, size_t n)
{
  self->next->ops->batch(self->next, q, r, n);
}

/* The layers (one file each). */
extern const struct zl_io_layer_ops zl_io_fence;       /* fence.c */
extern const struct zl_io_layer_ops zl_io_mirror;      /* mirror.c */
extern const struct zl_io_layer_ops zl_io_tracking;    /* tracking.c */
extern const struct zl_io_layer_ops zl_io_passthrough; /* passthrough.c */
extern const struct zl_io_layer_ops zl_io_delay;       /* delay.c */
extern const struct zl_io_layer_ops zl_io_fault;       /* fault.c */
extern const struct zl_io_layer_ops zl_io_storage;     /* storage.c */

#endif
