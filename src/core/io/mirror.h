/* mirror.h: storage migration (SXM) on a volume's write path
 * (core/io/mirror.c; the "mirror" layer of io.h).
 *
 * A mirror copies the volume's data to a remote NBD export and, until it is
 * freed, forwards every write, zero, trim and flush that goes through the
 * stack to the remote before the request completes.  Writes that do not go
 * through this stack (another process's stack, a loop device) are not
 * seen: whoever starts a mirror must make sure the volume has no other
 * writer (the NBD server serves every connection through one stack).
 *
 * A failure of the remote fails the mirror (zl_mirror_stat: failed), never
 * the guest's request: the volume keeps serving.
 */
#ifndef ZL_CORE_IO_MIRROR_H
#define ZL_CORE_IO_MIRROR_H

#include <stdbool.h>
#include <stdint.h>

#include "core/io/io.h"

struct zl_mirror;

/* Start mirroring the writable stack open over fd (the descriptor given
 * to zl_io_open; the stack must stay open until zl_mirror_free) to remote
 * (util/nbdclient.h's URIs): connects, then copies in the background.
 * NULL with an error message: ENOENT if no writable stack is open over
 * fd, EBUSY if it has a mirror already, EINVAL if the remote is smaller
 * than the volume. */
struct zl_mirror *zl_io_mirror_start(int fd, const char *remote);

struct zl_mirror_stat {
  bool complete;       /* copied, and every write is now mirrored synchronously */
  bool failed;         /* the remote failed, or the mirror was cancelled */
  bool cancelled;      /* zl_mirror_cancel */
  double progress;     /* 0..1 of the copy */
  double copy_seconds; /* from the start to complete (or to now) */
  char error[256];     /* why it failed, "" */
};
void zl_mirror_stat(struct zl_mirror *m, struct zl_mirror_stat *out);
/* Stop copying and forwarding (the remote is left as it is); the volume
 * goes on without a mirror.  Idempotent. */
void zl_mirror_cancel(struct zl_mirror *m);
/* Cancel if running, and free.  NULL: nothing. */
void zl_mirror_free(struct zl_mirror *m);

#endif
