/* revert.c: a volume takes a snapshot's content.
 *
 * `zfs rollback` when the snapshot is the newest of the volume's
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

#include "backend/zfs/zfs.h"
#include "util/beneath.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/uuid.h"

#include "util/banned.h" /* last: after every declaration */

static int
exists(struct zb_sr *z, const char *name, json_t **objp)
{
  CLEANUP_JSON json_t *objs = NULL;
  const char *targets[] = {name, NULL};

  if (zget(&z->caps, false, ZB_REVERT_OLD ",origin,type", targets, &objs, "revert") ==
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
rename_ds(struct zb_sr *z, const char *from, const char *to)
{
  struct zargv a;

  if (z->layout == LAYOUT_DATASET) {
    zcmd_mount(&a, &z->caps, from, false);
    zrun(&a, "unmount", NULL);
    za_free(&a);
    zl_error_clear();
  }
  zcmd_rename(&a, &z->caps, from, to);
  return zrun_free(&a, "rename");
}

/* Dataset layout: the volume's size is a property; set it to what the
 * volume now holds. */
static int
set_size(struct zb_sr *z, const char *key, int64_t size)
{
  char ds[600], v[32];
  struct zargv a;

  if (z->layout != LAYOUT_DATASET)
    return 0;
  snprintf(ds, sizeof ds, "%s/%s", z->dataset, key);
  snprintf(v, sizeof v, "%lld", (long long)size);
  zcmd_set(&a, &z->caps, ds, ZB_SIZE_PROP, v);
  return zrun_free(&a, "set the size");
}

/* The fallback: copy the snapshot's data over the volume's file. */
static int
revert_by_copy(struct zl_store *sr, const char *key, const char *snap, bool thick)
{
  struct zb_sr *z = zb_of(sr);
  char tmp[PATH_MAX], img[PATH_MAX];
  struct stat st;
  CLEANUP_CLOSE int in = -1;
  CLEANUP_CLOSE int out = -1;

  if (z->layout != LAYOUT_DATASET) {
    zl_error_kind(ZL_ERR_BUSY, EBUSY, "volume %s is busy: cannot revert it now", key);
    return -1;
  }
  if ((in = zb_vol_open(sr, snap, O_RDONLY)) == -1 || fstat(in, &st) == -1 ||
      zb_mount_comp(sr, key) == -1)
    return -1;
  snprintf(tmp, sizeof tmp, "%s/." ZB_DISK ".revert", key);
  snprintf(img, sizeof img, "%s/" ZB_DISK, key);
  const char *last;
  CLEANUP_CLOSE int tdir = zl_parent_beneath(sr->dirfd, tmp, false, &last);
  if (tdir == -1 || (unlinkat(tdir, last, 0) == -1 && errno != ENOENT)) {
    zl_error_sys(errno, "%s/%s", sr->key, tmp);
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
             (long long)zb_thick_reservation(st.st_size, z->blocksize, z->copies));
    zcmd_set(&a, &z->caps, ds, "refreservation", v);
    if (zrun_free(&a, "reserve space") == -1)
      goto fail;
  }
  if (renameat(sr->dirfd, tmp, sr->dirfd, img) == -1) {
    zl_error_sys(errno, "replace %s/%s", sr->key, img);
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
retire_old(struct zl_store *sr, const char *key, const char *old)
{
  struct zb_sr *z = zb_of(sr);
  char oldname[600];
  CLEANUP_JSON json_t *objs = NULL;
  char uuid[ZL_UUID_LEN + 1];

  snprintf(oldname, sizeof oldname, "%s/%s", z->dataset, old);
  const char *targets[] = {oldname, NULL};
  if (zget(&z->caps, true, zb_meta_prop_list(), targets, &objs, "revert") == -1)
    return -1;
  json_t *meta = zb_meta_decode(json_object_get(objs, oldname), oldname);
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
  int rc = zb_vol_set_meta(sr, old, meta); /* not a snapshot: <sr>/<old> */
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
    if (at && strncmp(at + 1, ZB_INTERNAL, strlen(ZB_INTERNAL)) != 0 &&
        zb_index_read(sr, at + 1, parent, sizeof parent) == 0 && strcmp(parent, old) != 0)
      zb_index_write(sr, at + 1, old);
  }
  zl_error_clear();
  return 0;
}

int
zb_vol_revert(struct zl_store *sr, const char *key, const char *snap, bool thick)
{
  struct zb_sr *z = zb_of(sr);
  char vol[600], rv[600], snapname[600], oldname[600], old[256], parent[256];
  bool is_snap;
  CLEANUP_JSON json_t *rvobj = NULL;
  /* declared before the goto below: its cleanup runs on every return */
  CLEANUP_JSON json_t *meta = NULL;
  struct zargv a;

  snprintf(vol, sizeof vol, "%s/%s", z->dataset, key);
  snprintf(rv, sizeof rv, "%s/" ZB_RV_PREFIX "%s", z->dataset, key);
  if (zb_name_of(sr, snap, snapname, sizeof snapname, &is_snap) == -1)
    return -1;
  if (!is_snap || zb_index_read(sr, snap, parent, sizeof parent) == -1) {
    zl_error(EINVAL, "%s is not a snapshot", snap);
    return -1;
  }

  /* where a previous attempt stopped */
  int has_rv = exists(z, rv, &rvobj), has_vol = exists(z, vol, NULL);
  if (has_rv == -1 || has_vol == -1)
    return -1;
  if (has_rv) {
    const char *o = zb_obj_value(rvobj, ZB_REVERT_OLD);
    snprintf(old, sizeof old, "%s", o ? o : "");
    snprintf(oldname, sizeof oldname, "%s/%s", z->dataset, old);
    int has_old = old[0] ? exists(z, oldname, NULL) : 0;
    if (has_old == -1)
      return -1;
    if (!has_vol && has_old) /* stopped after step 2: finish */
      goto finish;
    if (zb_destroy_object(z, rv) == -1) /* stopped before step 2: again */
      return -1;
  } else if (!has_vol) {
    zl_error(ENOENT, "volume %s does not exist", key);
    return -1;
  }

  /* the snapshot's size (recorded with it in the dataset layout) */
  struct zl_vol_info sinfo;
  if (zb_vol_get(sr, snap, NULL, &sinfo) == -1)
    return -1;

  /* the newest snapshot of the volume's own dataset: a rollback (which
   * does not roll properties back: the size follows) */
  if (strcmp(parent, key) == 0) {
    zcmd_rollback(&a, &z->caps, snapname);
    if (zrun_free(&a, "rollback") == 0) {
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
  if (zb_vol_get(sr, key, &meta, &info) == -1)
    return -1;
  char hex[ZL_UUID_LEN + 1];
  if (zl_uuid_generate(hex) == -1)
    return -1;
  snprintf(old, sizeof old, "%.180s.r%.8s", key, hex);
  snprintf(oldname, sizeof oldname, "%s/%s", z->dataset, old);
  {
    struct zprop props[ZB_META_CHUNKS + 4];
    int n;
    CLEANUP_FREE char *buf = NULL;
    char refres[32], size[32];
    if (zb_meta_encode(meta, 'a', props, &n, &buf) == -1)
      return -1;
    props[n++] = (struct zprop){ZB_REVERT_OLD, old};
    if (z->layout == LAYOUT_DATASET) { /* mounted on first use, like any volume */
      snprintf(size, sizeof size, "%lld", (long long)sinfo.virtual_size);
      props[n++] = (struct zprop){ZB_SIZE_PROP, size};
      props[n++] = (struct zprop){"canmount", "noauto"};
    }
    if (thick) {
      snprintf(
          refres, sizeof refres, "%lld",
          (long long)zb_thick_reservation(sinfo.virtual_size, z->blocksize, z->copies));
      props[n++] = (struct zprop){"refreservation", refres};
    }
    zcmd_clone(&a, &z->caps, snapname, rv, props, n);
    if (zrun_free(&a, "clone for revert") == -1)
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
    if (zb_destroy_object(z, rv) == -1)
      return -1;
    return revert_by_copy(sr, key, snap, thick);
  }

finish:
  if (retire_old(sr, key, old) == -1 || rename_ds(z, rv, vol) == -1)
    return -1;
  zcmd_inherit(&a, &z->caps, vol, ZB_REVERT_OLD);
  if (zrun_free(&a, "finish revert") == -1)
    return -1;
  zl_fault("revert", "swapped");
  return 0;
}
