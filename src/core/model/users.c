/* users.c: who uses a volume on this host, as the host layer knows it.
 *
 * Attachments (NBD exports, XAPI's and Ganeti's loop devices) are state
 * of this host (core/host/).  The model decides what may not be done to a
 * volume in use (destroy, revert, a torn snapshot, data_destroy), so it
 * asks through these hooks, which the host layer registers when the
 * program starts: the model never calls up into the host layer.  With
 * nothing registered, only what the metadata says counts (active_on,
 * Ganeti opens). */
#include <stddef.h>

#include "core/model/model.h"

#include "util/banned.h" /* last: after every declaration */

static const struct zl_users *users;

void
zl_users_register(const struct zl_users *u)
{
  users = u;
}

bool
zl_users_attached(struct zl_sr *sr, const char *key)
{
  return users && users->attached && users->attached(sr, key);
}

bool
zl_users_shared(struct zl_sr *sr, const char *key)
{
  return users && users->shared && users->shared(sr, key);
}

bool
zl_users_blockdev(struct zl_sr *sr, const char *key)
{
  return users && users->blockdev && users->blockdev(sr, key);
}

bool
zl_users_writer_blockdev(struct zl_sr *sr, const char *key)
{
  return users && users->writer_blockdev && users->writer_blockdev(sr, key);
}
