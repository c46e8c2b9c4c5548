/* data.c: reaching a volume's data (files, zvol devices, snapshots through
 * .zfs or a read clone), the internal objects of the ZFS backend, and what
 * a reboot cut off. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/zfs/zfs.h"
#include "util/beneath.h"
#include "util/cleanup.h"
#include "util/compat.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/uuid.h"

#include "util/banned.h" /* last: after every declaration */

/* Wait for a zvol's device link (created asynchronously by udev). */
static int
open_zvol(const char *dev, int flags)
{
  for (int i = 0; i < 200; i++) {
    int fd = open(dev, flags | O_CLOEXEC);
    if (fd >= 0 || errno != ENOENT)
      return fd;
    struct timespec ts = {0, 100 * 1000000L};
    nanosleep(&ts, NULL);
  }
  errno = ENOENT;
  return -1;
}

/* A file never made holds zeros: an anonymous sparse file of that size. */
static int
zeros(const char *key, int64_t size)
{
  int fd = zl_memfd("zfs-live-zeros");

  if (fd == -1 || ftruncate(fd, size) == -1) {
    zl_error_sys(errno, "volume %s", key);
    if (fd >= 0)
      close(fd);
    return -1;
  }
  return fd;
}

/* The dataset layout's file in mounted dataset comp: made (sparse) on the
 * first writable open, grown to size if a resize came first; read as
 * zeros when it was never made. */
static int
open_file(struct zl_store *sr, const char *key, const char *comp, int64_t size, int flags)
{
  char path[PATH_MAX];
  bool rw = (flags & O_ACCMODE) != O_RDONLY;
  struct stat st;

  snprintf(path, sizeof path, "%s/" ZB_DISK, comp);
  int fd = zl_file_beneath(sr->dirfd, path, flags | (rw ? O_CREAT : 0), 0600);
  if (fd == -1 && errno == ENOENT && !rw)
    return zeros(key, size);
  if (fd == -1) {
    zl_error_prefix("volume %s: %s: ", key, sr->key);
    return -1;
  }
  if (rw && fstat(fd, &st) == 0 && st.st_size < size && ftruncate(fd, size) == -1) {
    zl_error_sys(errno, "volume %s", key);
    close(fd);
    return -1;
  }
  return fd;
}

int
zb_vol_open(struct zl_store *sr, const char *key, int flags)
{
  struct zb_sr *z = zb_of(sr);
  char name[600], path[PATH_MAX], parent[256];
  bool snap;
  struct zl_vol_info info;
  int fd;

  if (zb_name_of(sr, key, name, sizeof name, &snap) == -1)

    return -1;
  if (z->layout == LAYOUT_DATASET && zb_vol_get(sr, key, NULL, &info) == -1)
    return -1;
  if (snap && z->layout == LAYOUT_DATASET && z->caps.dot_zfs &&
      zb_index_read(sr, key, parent, sizeof parent) == 0 &&
      zb_mount_comp(sr, parent) == 0) {
    snprintf(path, sizeof path, "%s/.zfs/snapshot/%s", parent, key);
    return open_file(sr, key, path, info.virtual_size, O_RDONLY);
  }
  zl_error_clear();
  if (snap) {
    /* read through an internal read-only clone (made once, kept until the
     * snapshot goes) */
    char ro[600], rocomp[300];
    snprintf(rocomp, sizeof rocomp, ZB_RO_PREFIX "%s", key);
    snprintf(ro, sizeof ro, "%s/%s", z->dataset, rocomp);
    struct zargv a;
    struct zprop p = {"readonly", "on"};
    zcmd_clone(&a, &z->caps, name, ro, &p, 1);
    if (zrun_free(&a, "make a read clone") == -1 && errno != EEXIST)
      return -1;
    zl_error_clear();
    if (z->layout == LAYOUT_ZVOL) {
      snprintf(path, sizeof path, "/dev/zvol/%s", ro);
      fd = open_zvol(path, O_RDONLY);
    } else {
      return zb_mount_comp(sr, rocomp) == 0
                 ? open_file(sr, key, rocomp, info.virtual_size, O_RDONLY)
                 : -1;
    }
  } else if (z->layout == LAYOUT_ZVOL) {
    snprintf(path, sizeof path, "/dev/zvol/%s", name);
    fd = open_zvol(path, flags);
  } else {
    return zb_mount_comp(sr, key) == 0 ? open_file(sr, key, key, info.virtual_size, flags)
                                       : -1;
  }
  if (fd == -1)
    zl_error_sys(errno, "volume %s: %s", key, path);
  return fd;
}

/* --- internal objects -------------------------------------------------------- */

/* --- after a reboot ------------------------------------------------------------ */
