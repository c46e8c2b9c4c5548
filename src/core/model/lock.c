/* lock.c: SR and volume locks, the primitive: flock(2) on files of the
 * state directory.  The rules and the order are in model.h; recover.c adds
 * crash recovery to taking the SR lock. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/model/model.h"
#include "util/beneath.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

#define LOCKS_DIR "locks"

static int
flock_retry(int fd, int op)
{
  while (flock(fd, op) == -1) {
    if (errno != EINTR)
      return -1;
  }
  return 0;
}

static int
open_lockfile(struct zl_sr *sr)
{
  if (sr->lockfd >= 0)
    return 0;
  sr->lockfd = zl_file_beneath(sr->st.statefd, "lock", O_RDWR | O_CREAT, 0600);
  if (sr->lockfd == -1) {
    zl_error_prefix("SR %s: cannot open its lock file: ", sr->st.key);
    return -1;
  }
  return 0;
}

int
zl_sr_flock(struct zl_sr *sr, int mode)
{
  if (open_lockfile(sr) == -1)
    return -1;
  if (flock_retry(sr->lockfd, mode) == -1) {
    zl_error_sys(errno, "SR %s: lock", sr->st.key);
    return -1;
  }
  sr->lock_mode = mode;

  /* The SR may have been destroyed while we waited. */
  if (faccessat(sr->st.statefd, ZL_SR_INFO, F_OK, AT_SYMLINK_NOFOLLOW) == -1) {
    zl_error_kind(ZL_ERR_NO_SR, ENOENT, "SR %s no longer exists", sr->st.key);
    zl_error_subject(sr->st.key);
    zl_sr_unlock(sr);
    return -1;
  }
  return 0;
}

int
zl_sr_flock_change(struct zl_sr *sr, int mode)
{
  if (flock_retry(sr->lockfd, mode) == -1) {
    zl_error_sys(errno, "SR %s: lock", sr->st.key);
    return -1;
  }
  sr->lock_mode = mode;
  return 0;
}

void
zl_sr_unlock(struct zl_sr *sr)
{
  if (sr->lockfd >= 0 && sr->lock_mode)
    flock(sr->lockfd, LOCK_UN);
  sr->lock_mode = 0;
}

void
zl_cleanup_sr_unlock(struct zl_sr **held)
{
  if (*held)
    zl_sr_unlock(*held);
}

int
zl_vol_lock(struct zl_sr *sr, const char *key, struct zl_vol_lock *l)
{
  l->fd = -1;
  CLEANUP_CLOSE int dfd = zl_dir_beneath(sr->st.statefd, LOCKS_DIR, true);
  if (dfd == -1) {
    zl_error_prefix("SR %s: the locks directory: ", sr->st.key);
    return -1;
  }
  l->fd = zl_file_beneath(dfd, key, O_RDWR | O_CREAT, 0600);
  if (l->fd == -1) {
    zl_error_prefix("volume %s: cannot open its lock file: ", key);
    return -1;
  }
  if (flock_retry(l->fd, LOCK_EX) == -1) {
    zl_error_sys(errno, "volume %s: lock", key);
    close(l->fd);
    l->fd = -1;
    return -1;
  }
  return 0;
}

void
zl_vol_unlock(struct zl_vol_lock *l)
{
  if (l->fd >= 0) {
    flock(l->fd, LOCK_UN);
    close(l->fd);
  }
  l->fd = -1;
}

void
zl_vol_lock_forget(struct zl_sr *sr, const char *key)
{
  CLEANUP_CLOSE int dfd = zl_dir_beneath(sr->st.statefd, LOCKS_DIR, false);

  if ((dfd == -1 && errno != ENOENT) ||
      (dfd >= 0 && unlinkat(dfd, key, 0) == -1 && errno != ENOENT))
    zl_warn("volume %s: cannot remove its lock file: %s", key, strerror(errno));
  zl_error_clear();
}
