/* zfs-data.c: reaching a volume's data (files, zvol devices, snapshots),
 * revert, and the internal objects of the ZFS backend.
 *
 * Revert.  `zfs rollback` when the snapshot is the newest of the volume's
 * dataset.  Otherwise a clone swap keeps every newer snapshot:
 *   1. clone <vol>@<snap> as _zl-rv-<key>, carrying the volume's metadata
 *      and zfs-live:revert-old=<old> (the name the old dataset will take)
 *   2. rename <key> -> <old>, and mark <old> as a hidden volume of its own
 *      (it holds the snapshots; it is collected when nothing needs it)
 *   3. rename _zl-rv-<key> -> <key>: the volume has the snapshot's content,
 *      its key, name and keys
 * Re-running after a crash at any step finishes the job: the state of the
 * three names says which step was reached.
 *
 * zfs-fuse refuses to rename a dataset while a clone of one of its
 * snapshots is mounted.  Our own clone is unmounted first; if the user's
 * clones (running VMs) still keep the dataset busy, the revert copies the
 * snapshot's data instead (dataset layout: holes preserved, the file
 * replaced by rename inside the volume's dataset), which keeps every
 * snapshot too, at the cost of the data copied.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/zfs.h"
#include "util/beneath.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/uuid.h"

static int
run(struct zargv *a, const char *what)
{
  int rc = zrun(a, what, NULL);
  za_free(a);
  return rc;
}

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

bool
zfs_is_mounted(struct zl_sr *sr, const char *comp)
{
  struct stat sr_st, st;

  return fstat(sr->dirfd, &sr_st) == 0 &&
         fstatat(sr->dirfd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode) &&
         st.st_dev != sr_st.st_dev;
}

static int
mount_comp(struct zl_sr *sr, const char *comp)
{
  struct zfs_sr *z = zfs_of(sr);
  char ds[600];
  struct zargv a;

  if (zfs_is_mounted(sr, comp))
    return 0;
  snprintf(ds, sizeof ds, "%s/%s", z->dataset, comp);
  zcmd_mount(&a, &z->caps, ds, true);
  if (run(&a, "mount") == -1 && !strstr(zl_error_msg(), "already mounted"))
    return -1;
  zl_error_clear();
  return 0;
}

/* A file never made holds zeros: an anonymous sparse file of that size. */
static int
zeros(const char *key, int64_t size)
{
  int fd = memfd_create("zfs-live-zeros", MFD_CLOEXEC);

  if (fd == -1 || ftruncate(fd, size) == -1) {
    zl_error(errno, "volume %s: %s", key, strerror(errno));
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
open_file(struct zl_sr *sr, const char *key, const char *comp, int64_t size, int flags)
{
  char path[PATH_MAX];
  bool rw = (flags & O_ACCMODE) != O_RDONLY;
  struct stat st;

  snprintf(path, sizeof path, "%s/" ZFS_DISK, comp);
  int fd = zl_file_beneath(sr->dirfd, path, flags | (rw ? O_CREAT : 0), 0600);
  if (fd == -1 && errno == ENOENT && !rw)
    return zeros(key, size);
  if (fd == -1) {
    zl_error_prefix("volume %s: %s: ", key, sr->key);
    return -1;
  }
  if (rw && fstat(fd, &st) == 0 && st.st_size < size && ftruncate(fd, size) == -1) {
    zl_error(errno, "volume %s: %s", key, strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

int
zfs_vol_open(struct zl_sr *sr, const char *key, int flags)
{
  struct zfs_sr *z = zfs_of(sr);
  char name[600], path[PATH_MAX], parent[256];
  bool snap;
  struct zl_vol_info info;
  int fd;

  zfs_name_of(sr, key, name, sizeof name, &snap);
  if (z->layout == LAYOUT_DATASET && zfs_vol_get(sr, key, NULL, &info) == -1)
    return -1;
  if (snap && z->layout == LAYOUT_DATASET && z->caps.dot_zfs &&
      zfs_index_read(sr, key, parent, sizeof parent) == 0 &&
      mount_comp(sr, parent) == 0) {
    snprintf(path, sizeof path, "%s/.zfs/snapshot/%s", parent, key);
    return open_file(sr, key, path, info.virtual_size, O_RDONLY);
  }
  zl_error_clear();
  if (snap) {
    /* read through an internal read-only clone (made once, kept until the
     * snapshot goes) */
    char ro[600], rocomp[300];
    snprintf(rocomp, sizeof rocomp, ZFS_RO_PREFIX "%s", key);
    snprintf(ro, sizeof ro, "%s/%s", z->dataset, rocomp);
    struct zargv a;
    struct zprop p = {"readonly", "on"};
    zcmd_clone(&a, &z->caps, name, ro, &p, 1);
    if (run(&a, "make a read clone") == -1 && errno != EEXIST)
      return -1;
    zl_error_clear();
    if (z->layout == LAYOUT_ZVOL) {
      snprintf(path, sizeof path, "/dev/zvol/%s", ro);
      fd = open_zvol(path, O_RDONLY);
    } else {
      return mount_comp(sr, rocomp) == 0
                 ? open_file(sr, key, rocomp, info.virtual_size, O_RDONLY)
                 : -1;
    }
  } else if (z->layout == LAYOUT_ZVOL) {
    snprintf(path, sizeof path, "/dev/zvol/%s", name);
    fd = open_zvol(path, flags);
  } else {
    return mount_comp(sr, key) == 0 ? open_file(sr, key, key, info.virtual_size, flags)
                                    : -1;
  }
  if (fd == -1)
    zl_error(errno, "volume %s: %s: %s", key, path, strerror(errno));
  return fd;
}

/* --- revert ------------------------------------------------------------------ */

static int
exists(struct zfs_sr *z, const char *name, json_t **objp)
{
  CLEANUP_JSON json_t *objs = NULL;
  const char *targets[] = {name, NULL};

  if (zget(&z->caps, false, ZFS_REVERT_OLD ",origin,type", targets, &objs, "revert") ==
      0) {
    if (objp)
      *objp = json_incref(json_object_get(objs, name));
    return 1;
  }
  return errno == ENOENT ? (zl_error_clear(), 0) : -1;
}

/* Rename a dataset (unmounted: zfs-fuse renames only those); it is mounted
 * again on its next use. */
static int
rename_ds(struct zfs_sr *z, const char *from, const char *to)
{
  struct zargv a;

  if (z->layout == LAYOUT_DATASET) {
    zcmd_mount(&a, &z->caps, from, false);
    zrun(&a, "unmount", NULL);
    za_free(&a);
    zl_error_clear();
  }
  zcmd_rename(&a, &z->caps, from, to);
  return run(&a, "rename");
}

/* Dataset layout: the volume's size is a property; set it to what the
 * volume now holds. */
static int
set_size(struct zfs_sr *z, const char *key, int64_t size)
{
  char ds[600], v[32];
  struct zargv a;

  if (z->layout != LAYOUT_DATASET)
    return 0;
  snprintf(ds, sizeof ds, "%s/%s", z->dataset, key);
  snprintf(v, sizeof v, "%lld", (long long)size);
  zcmd_set(&a, &z->caps, ds, ZFS_SIZE_PROP, v);
  return run(&a, "set the size");
}

/* The fallback: copy the snapshot's data over the volume's file. */
static int
revert_by_copy(struct zl_sr *sr, const char *key, const char *snap, bool thick)
{
  struct zfs_sr *z = zfs_of(sr);
  char tmp[PATH_MAX], img[PATH_MAX];
  struct stat st;
  CLEANUP_CLOSE int in = -1;
  CLEANUP_CLOSE int out = -1;

  if (z->layout != LAYOUT_DATASET) {
    zl_error_kind(ZL_ERR_BUSY, EBUSY, "volume %s is busy: cannot revert it now", key);
    return -1;
  }
  if ((in = zfs_vol_open(sr, snap, O_RDONLY)) == -1 || fstat(in, &st) == -1 ||
      mount_comp(sr, key) == -1)
    return -1;
  snprintf(tmp, sizeof tmp, "%s/." ZFS_DISK ".revert", key);
  snprintf(img, sizeof img, "%s/" ZFS_DISK, key);
  const char *last;
  CLEANUP_CLOSE int tdir = zl_parent_beneath(sr->dirfd, tmp, false, &last);
  if (tdir == -1 || (unlinkat(tdir, last, 0) == -1 && errno != ENOENT)) {
    zl_error(errno, "%s/%s: %s", sr->key, tmp, strerror(errno));
    return -1;
  }
  out = zl_file_beneath(sr->dirfd, tmp, O_RDWR | O_CREAT | O_EXCL, 0600);
  if (out == -1)
    return -1;
  if (zl_copy_sparse(in, out, st.st_size, NULL) == -1 || fsync(out) == -1)
    goto fail;
  zl_fault("revert", "copied");
  if (thick) {
    char v[32], ds[600];
    struct zargv a;
    snprintf(ds, sizeof ds, "%s/%s", z->dataset, key);
    snprintf(v, sizeof v, "%lld",
             (long long)zfs_thick_reservation(st.st_size, z->blocksize, z->copies));
    zcmd_set(&a, &z->caps, ds, "refreservation", v);
    if (run(&a, "reserve space") == -1)
      goto fail;
  }
  if (renameat(sr->dirfd, tmp, sr->dirfd, img) == -1) {
    zl_error(errno, "replace %s/%s: %s", sr->key, img, strerror(errno));
    goto fail;
  }
  if (set_size(z, key, st.st_size) == -1)
    return -1;
  zl_fault("revert", "swapped");
  return 0;
fail:;
  int e = errno;
  unlinkat(sr->dirfd, tmp, 0);
  errno = e;
  return -1;
}

/* Step 2 after the rename: the old dataset becomes a hidden volume named
 * after itself, and the index follows its snapshots. */
static int
retire_old(struct zl_sr *sr, const char *key, const char *old)
{
  struct zfs_sr *z = zfs_of(sr);
  char oldname[600];
  CLEANUP_JSON json_t *objs = NULL;
  char uuid[ZL_UUID_LEN + 1];

  snprintf(oldname, sizeof oldname, "%s/%s", z->dataset, old);
  const char *targets[] = {oldname, NULL};
  if (zget(&z->caps, true, zfs_meta_prop_list(), targets, &objs, "revert") == -1)
    return -1;
  json_t *meta = zfs_meta_decode(json_object_get(objs, oldname), oldname);
  if (!meta)
    return -1;
  if (zl_uuid_generate(uuid) == -1) {
    json_decref(meta);
    return -1;
  }
  json_object_set_new(meta, "key", json_string(old));
  json_object_set_new(meta, "uuid", json_string(uuid));
  json_object_set_new(meta, "hidden", json_true());
  json_object_set_new(meta, "reverted_from", json_string(key));
  int rc = zfs_vol_set_meta(sr, old, meta); /* not a snapshot: <sr>/<old> */
  json_decref(meta);
  if (rc == -1)
    return -1;
  /* snapshots that moved with the dataset */
  const char *n;
  json_t *o;
  json_object_foreach(objs, n, o)
  {
    const char *at = strchr(n, '@');
    char parent[256];
    if (at && strncmp(at + 1, ZFS_INTERNAL, strlen(ZFS_INTERNAL)) != 0 &&
        zfs_index_read(sr, at + 1, parent, sizeof parent) == 0 &&
        strcmp(parent, old) != 0)
      zfs_index_write(sr, at + 1, old);
  }
  zl_error_clear();
  return 0;
}

int
zfs_vol_revert(struct zl_sr *sr, const char *key, const char *snap, bool thick)
{
  struct zfs_sr *z = zfs_of(sr);
  char vol[600], rv[600], snapname[600], oldname[600], old[256], parent[256];
  bool is_snap;
  CLEANUP_JSON json_t *rvobj = NULL;
  /* declared before the goto below: its cleanup runs on every return */
  CLEANUP_JSON json_t *meta = NULL;
  struct zargv a;

  snprintf(vol, sizeof vol, "%s/%s", z->dataset, key);
  snprintf(rv, sizeof rv, "%s/" ZFS_RV_PREFIX "%s", z->dataset, key);
  zfs_name_of(sr, snap, snapname, sizeof snapname, &is_snap);
  if (!is_snap || zfs_index_read(sr, snap, parent, sizeof parent) == -1) {
    zl_error(EINVAL, "%s is not a snapshot", snap);
    return -1;
  }

  /* where a previous attempt stopped */
  int has_rv = exists(z, rv, &rvobj), has_vol = exists(z, vol, NULL);
  if (has_rv == -1 || has_vol == -1)
    return -1;
  if (has_rv) {
    const char *o = zfs_obj_value(rvobj, ZFS_REVERT_OLD);
    snprintf(old, sizeof old, "%s", o ? o : "");
    snprintf(oldname, sizeof oldname, "%s/%s", z->dataset, old);
    int has_old = old[0] ? exists(z, oldname, NULL) : 0;
    if (has_old == -1)
      return -1;
    if (!has_vol && has_old) /* stopped after step 2: finish */
      goto finish;
    if (zfs_destroy_object(z, rv) == -1) /* stopped before step 2: again */
      return -1;
  } else if (!has_vol) {
    zl_error(ENOENT, "volume %s does not exist", key);
    return -1;
  }

  /* the snapshot's size (recorded with it in the dataset layout) */
  struct zl_vol_info sinfo;
  if (zfs_vol_get(sr, snap, NULL, &sinfo) == -1)
    return -1;

  /* the newest snapshot of the volume's own dataset: a rollback (which
   * does not roll properties back: the size follows) */
  if (strcmp(parent, key) == 0) {
    zcmd_rollback(&a, &z->caps, snapname);
    if (run(&a, "rollback") == 0) {
      zl_fault("revert", "copied");
      if (set_size(z, key, sinfo.virtual_size) == -1)
        return -1;
      zl_fault("revert", "swapped");
      return 0;
    }
    if (!strstr(zl_error_msg(), "more recent snapshots"))
      return -1;
    zl_error_clear();
  }

  /* otherwise the clone swap */
  struct zl_vol_info info;
  if (zfs_vol_get(sr, key, &meta, &info) == -1)
    return -1;
  char hex[ZL_UUID_LEN + 1];
  if (zl_uuid_generate(hex) == -1)
    return -1;
  snprintf(old, sizeof old, "%.180s.r%.8s", key, hex);
  snprintf(oldname, sizeof oldname, "%s/%s", z->dataset, old);
  {
    struct zprop props[ZFS_META_CHUNKS + 4];
    int n;
    CLEANUP_FREE char *buf = NULL;
    char refres[32], size[32];
    if (zfs_meta_encode(meta, 'a', props, &n, &buf) == -1)
      return -1;
    props[n++] = (struct zprop){ZFS_REVERT_OLD, old};
    if (z->layout == LAYOUT_DATASET) { /* mounted on first use, like any volume */
      snprintf(size, sizeof size, "%lld", (long long)sinfo.virtual_size);
      props[n++] = (struct zprop){ZFS_SIZE_PROP, size};
      props[n++] = (struct zprop){"canmount", "noauto"};
    }
    if (thick) {
      snprintf(
          refres, sizeof refres, "%lld",
          (long long)zfs_thick_reservation(sinfo.virtual_size, z->blocksize, z->copies));
      props[n++] = (struct zprop){"refreservation", refres};
    }
    zcmd_clone(&a, &z->caps, snapname, rv, props, n);
    if (run(&a, "clone for revert") == -1)
      return -1;
  }
  zl_fault("revert", "copied"); /* the clone is not mounted (canmount=noauto) */
  if (rename_ds(z, vol, oldname) == -1) {
    if (errno != EBUSY)
      return -1;
    zl_info("revert of %s: the volume is busy (clones of its snapshots are in use); "
            "copying the snapshot's data instead of swapping",
            key);
    zl_error_clear();
    if (zfs_destroy_object(z, rv) == -1)
      return -1;
    return revert_by_copy(sr, key, snap, thick);
  }

finish:
  if (retire_old(sr, key, old) == -1 || rename_ds(z, rv, vol) == -1)
    return -1;
  zcmd_inherit(&a, &z->caps, vol, ZFS_REVERT_OLD);
  if (run(&a, "finish revert") == -1)
    return -1;
  zl_fault("revert", "swapped");
  return 0;
}

/* --- internal objects -------------------------------------------------------- */

int
zfs_sr_clear_internal(struct zl_sr *sr)
{
  struct zfs_sr *z = zfs_of(sr);
  CLEANUP_JSON json_t *objs = NULL;
  const char *targets[] = {z->dataset, NULL};
  const char *n;
  json_t *o;

  if (zget(&z->caps, true, "origin", targets, &objs, "SR contents") == -1)
    return errno == ENOENT ? 0 : -1;
  /* clones (read clones, reverts in progress) before any snapshot */
  for (int pass = 0; pass < 2; pass++) {
    json_object_foreach(objs, n, o)
    {
      bool is_snap = strchr(n, '@') != NULL;
      size_t dl = strlen(z->dataset);
      if ((pass == 0) == is_snap || strncmp(n, z->dataset, dl) != 0 || n[dl] != '/')
        continue;
      /* internal objects only (_zl-*, or a snapshot named so): SR.destroy
       * refused anything else before it came here */
      const char *rel = n + dl + 1, *at = strchr(rel, '@');
      if (strncmp(rel, ZFS_INTERNAL, strlen(ZFS_INTERNAL)) != 0 &&
          !(at && strncmp(at + 1, ZFS_INTERNAL, strlen(ZFS_INTERNAL)) == 0))
        continue;
      if (zfs_destroy_object(z, n) == -1)
        zl_warn("SR %s: cannot remove %s: %s", sr->key, n, zl_error_msg());
    }
  }
  zl_error_clear();
  return 0;
}

/* --- after a reboot ------------------------------------------------------------ */

int
zfs_boot_recovery(struct zl_sr *sr)
{
  struct zfs_sr *z = zfs_of(sr);
  CLEANUP_JSON json_t *objs = NULL;
  const char *targets[] = {z->dataset, NULL};
  const char *n;
  json_t *o;
  size_t dl = strlen(z->dataset);

  if (zget(&z->caps, true, "type,origin," ZFS_REVERT_OLD, targets, &objs, "recovery") ==
      -1)
    return -1;
  /* the snapshot index, first: the rest looks snapshots up through it */
  json_object_foreach(objs, n, o)
  {
    const char *at = strchr(n, '@');
    if (at && strncmp(n, z->dataset, dl) == 0 && n[dl] == '/' &&
        strncmp(at + 1, ZFS_INTERNAL, strlen(ZFS_INTERNAL)) != 0) {
      char parent[256];
      snprintf(parent, sizeof parent, "%.*s", (int)(at - n - dl - 1), n + dl + 1);
      zfs_index_write(sr, at + 1, parent);
    }
  }
  json_object_foreach(objs, n, o)
  {
    if (strncmp(n, z->dataset, dl) != 0 || n[dl] != '/')
      continue;
    const char *rel = n + dl + 1, *at = strchr(rel, '@');
    char other[700];
    if (at && strncmp(at + 1, ZFS_ORIGIN_PREFIX, strlen(ZFS_ORIGIN_PREFIX)) == 0) {
      /* the origin of a clone of a writable volume: orphaned if the clone
       * is gone (a destroy cut off between its two steps) */
      snprintf(other, sizeof other, "%s/%s", z->dataset,
               at + 1 + strlen(ZFS_ORIGIN_PREFIX));
      if (!json_object_get(objs, other)) {
        zl_info("recovery: removing orphaned %s", n);
        zfs_destroy_object(z, n);
      }
    } else if (!at && strncmp(rel, ZFS_RO_PREFIX, strlen(ZFS_RO_PREFIX)) == 0) {
      const char *org = zfs_obj_value(o, "origin");
      if (!org || !json_object_get(objs, org)) {
        zl_info("recovery: removing orphaned %s", n);
        zfs_destroy_object(z, n);
      }
    } else if (!at && strncmp(rel, ZFS_RV_PREFIX, strlen(ZFS_RV_PREFIX)) == 0) {
      /* a revert cut off: undo it if the volume is still there, else
       * finish it (the clone says where the old dataset went) */
      const char *key = rel + strlen(ZFS_RV_PREFIX);
      const char *org = zfs_obj_value(o, "origin");
      const char *snap = org ? strchr(org, '@') : NULL;
      snprintf(other, sizeof other, "%s/%s", z->dataset, key);
      if (json_object_get(objs, other) || !snap) {
        zl_info("recovery: undoing the revert of %s that a restart cut off", key);
        zfs_destroy_object(z, n);
      } else {
        zl_info("recovery: finishing the revert of %s that a restart cut off", key);
        if (zfs_vol_revert(sr, key, snap + 1, false) == -1)
          zl_warn("recovery: revert of %s: %s", key, zl_error_msg());
      }
    }
  }
  zl_error_clear();
  return 0;
}
