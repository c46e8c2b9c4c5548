/* dataset.c: acts on one ZFS object of an SR (mount state, snapshot,
 * flush of a volume's file, destroy), beneath every volume operation. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/zfs/zfs.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"
#include "util/uuid.h"

#include "util/banned.h" /* last: after every declaration */

bool
zb_is_mounted(struct zl_store *sr, const char *comp)
{
  struct stat sr_st, st;

  return fstat(sr->dirfd, &sr_st) == 0 &&
         fstatat(sr->dirfd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode) &&
         st.st_dev != sr_st.st_dev;
}

int
zb_mount_comp(struct zl_store *sr, const char *comp)
{
  struct zb_sr *z = zb_of(sr);
  char ds[600];
  struct zargv a;

  if (zb_is_mounted(sr, comp))
    return 0;
  snprintf(ds, sizeof ds, "%s/%s", z->dataset, comp);
  zcmd_mount(&a, &z->caps, ds, true);
  if (zrun_free(&a, "mount") == -1 && !strstr(zl_error_msg(), "already mounted"))
    return -1;
  zl_error_clear();
  return 0;
}

int
zb_snapshot_cmd(struct zb_sr *z, const char *snap, const struct zprop *props, int n)
{
  if (zb_lzc_available())
    return zb_lzc_snapshot(snap, props, n);
  struct zargv a;
  zcmd_snapshot(&a, &z->caps, snap, props, n);
  int rc = zrun(&a, "snapshot", NULL);
  za_free(&a);
  return rc;
}

/* Data written through the file must reach ZFS before a snapshot (a
 * volume never opened has no file, or is not mounted: nothing to do). */
void
zb_flush_file(struct zl_store *sr, const char *comp)
{
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/" ZB_DISK, comp);
  int fd = openat(sr->dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

/* Destroy one ZFS object, unmounting a filesystem first; gone is fine. */
int
zb_destroy_object(struct zb_sr *z, const char *name)
{
  struct zargv a;
  int rc;

  if (strchr(name, '@') && zb_lzc_available())
    return zb_lzc_destroy_snapshot(name);
  if (zb_lzc_available() && zb_lzc_destroy(name) == 0)
    return 0; /* a mounted filesystem is busy for lzc: the CLI unmounts it */
  zl_error_clear();
  if (!strchr(name, '@') && z->layout == LAYOUT_DATASET) {
    zcmd_mount(&a, &z->caps, name, false);
    zrun(&a, "unmount", NULL); /* "not mounted" is fine */
    za_free(&a);
    zl_error_clear();
  }
  zcmd_destroy(&a, &z->caps, name);
  rc = zrun(&a, "destroy", NULL);
  za_free(&a);
  if (rc == -1 && errno == ENOENT) {
    zl_error_clear();
    return 0;
  }
  return rc;
}
