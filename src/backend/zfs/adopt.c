/* adopt.c: a stable device name for zvols (backend.h vol_device) and
 * adoption of an existing zvol or dataset into a ZFS SR (vol_adopt).
 *
 * Adoption renames the object into the SR as <sr>/<key>; the metadata
 * (and, for a dataset, zfs-live:size and canmount=noauto) is set on it
 * *before* the rename, so the object appears in the SR complete, in one
 * step.  A crash before the rename leaves the source where it was with
 * extra user properties; adopting it again completes.  The source must be
 * in the SR's pool, outside every SR, without snapshots or children (they
 * would carry its metadata), and of the SR's layout: a zvol for
 * layout=zvol, a filesystem holding one raw disk.img for layout=dataset.
 *
 * In place: a source that is already the SR's child <sr>/<key> (a volume
 * of the Python driver this one replaces, taken over by zfs-live-deploy)
 * only gets the metadata; no rename, and storing the metadata is the
 * commit (recovery then finds the volume, or the source without it). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backend/zfs/zfs.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

void
zb_zvol_device(const char *sr_dataset, const char *key, bool snap, char *out, size_t len)
{
  /* a snapshot is read through its read-only clone (data.c) */
  snprintf(out, len, "/dev/zvol/%s/%s%s", sr_dataset, snap ? ZB_RO_PREFIX : "", key);
}

int
zb_vol_device(struct zl_store *sr, const char *key, char *out, size_t len)
{
  struct zb_sr *z = zb_of(sr);
  char name[600];
  bool snap;

  if (z->layout != LAYOUT_ZVOL) {
    zl_error(ENOTSUP, "volume %s is a file (layout=dataset)", key);
    return -1;
  }
  if (zb_name_of(sr, key, name, sizeof name, &snap) == -1)
    return -1;
  zb_zvol_device(z->dataset, key, snap, out, len);
  return 0;
}

static int
set_prop(struct zb_sr *z, const char *ds, const char *prop, const char *value)
{
  struct zargv a;
  zcmd_set(&a, &z->caps, ds, prop, value);
  int rc = zrun(&a, "set a property", NULL);
  za_free(&a);
  return rc;
}

/* Number of objects at and below ds (itself, children, snapshots). */
static int
count_objects(const char *ds)
{
  struct zargv a;
  struct zl_exec_result r;
  int n = 0;

  za_init(&a, "zfs");
  za_add(&a, "list");
  za_add(&a, "-H");
  za_add(&a, "-r");
  za_add(&a, "-t");
  za_add(&a, "all");
  za_add(&a, "-o");
  za_add(&a, "name");
  za_add(&a, ds);
  int rc = zrun(&a, "list the source", &r);
  za_free(&a);
  if (rc == -1)
    return -1;
  for (const char *p = r.out; p && *p; p++)
    n += *p == '\n';
  zl_exec_result_free(&r);
  return n;
}

int
zb_vol_adopt(struct zl_store *sr, const char *key, const char *source, const json_t *meta,
             struct zl_vol_info *out)
{
  struct zb_sr *z = zb_of(sr);
  CLEANUP_JSON json_t *objs = NULL;
  char target[600], size_s[32];
  size_t pl = strlen(z->pool);
  const char *targets[] = {source, NULL};

  if (strncmp(source, z->pool, pl) != 0 || source[pl] != '/' || strchr(source, '@')) {
    zl_error(EINVAL, "'%s' is not a zvol or dataset of the SR's pool %s", source,
             z->pool);
    return -1;
  }
  snprintf(target, sizeof target, "%s/%s", z->dataset, key);
  bool in_place = strcmp(source, target) == 0;
  if (!in_place && strncmp(source, z->dataset, strlen(z->dataset)) == 0) {
    zl_error(EINVAL, "%s is inside the SR already", source);
    return -1;
  }
  if (zget(&z->caps, false, "type,volsize,mounted,mountpoint," ZB_SR_PROP, targets, &objs,
           "look at the source") == -1)
    return -1;
  json_t *o = json_object_get(objs, source);
  const char *type = zb_obj_value(o, "type");
  if (!type) {
    zl_error(ENOENT, "%s does not exist", source);
    return -1;
  }
  if (!in_place && zb_obj_value(o, ZB_SR_PROP)) {
    zl_error(EINVAL, "%s is (or is inside) a zfs-live SR", source);
    return -1;
  }
  int count = count_objects(source);
  if (count == -1)
    return -1;
  if (count != 1) {
    zl_error(EINVAL, "%s has snapshots or children; adopt takes a zvol or dataset alone",
             source);
    return -1;
  }
  bool zvol = strcmp(type, "volume") == 0;
  if (zvol != (z->layout == LAYOUT_ZVOL) || (!zvol && strcmp(type, "filesystem") != 0)) {
    zl_error(EINVAL, "%s is a %s; this SR (layout=%s) adopts %s", source, type,
             z->layout == LAYOUT_ZVOL ? "zvol" : "dataset",
             z->layout == LAYOUT_ZVOL ? "zvols" : "filesystems holding " ZB_DISK);
    return -1;
  }
  int64_t size;
  if (zvol) {
    const char *vs = zb_obj_value(o, "volsize");
    size = vs ? strtoll(vs, NULL, 10) : 0;
  } else {
    const char *mounted = zb_obj_value(o, "mounted"), *mp = zb_obj_value(o, "mountpoint");
    char path[PATH_MAX];
    struct stat st;
    if (!mounted || strcmp(mounted, "yes") != 0 || !mp || mp[0] != '/') {
      zl_error(EINVAL,
               "%s is not mounted: mount it so that its " ZB_DISK " can be checked",
               source);
      return -1;
    }
    snprintf(path, sizeof path, "%s/" ZB_DISK, mp);
    if (lstat(path, &st) == -1 || !S_ISREG(st.st_mode)) {
      zl_error(EINVAL, "%s holds no raw image %s", source, path);
      return -1;
    }
    size = st.st_size;
  }
  if (size <= 0 || size % 512 != 0) {
    zl_error(EINVAL, "%s is %lld bytes: a raw image is a non-zero multiple of 512 bytes",
             source, (long long)size);
    return -1;
  }
  if (!zvol) {
    snprintf(size_s, sizeof size_s, "%lld", (long long)size);
    struct zargv a;
    zcmd_inherit(&a, &z->caps, source, "mountpoint");
    int rc = zrun(&a, "inherit the mountpoint", NULL);
    za_free(&a);
    if (rc == -1 || set_prop(z, source, ZB_SIZE_PROP, size_s) == -1 ||
        set_prop(z, source, "canmount", "noauto") == -1)
      return -1;
  }
  if (zb_meta_store(&z->caps, source, meta) == -1)
    return -1;
  if (in_place)
    return zb_vol_get(sr, key, NULL, out);
  struct zargv a;
  if (!zvol) { /* volumes are mounted on first use (zfs-fuse renames no mounted one) */
    zcmd_mount(&a, &z->caps, source, false);
    int urc = zrun(&a, "unmount it", NULL);
    za_free(&a);
    if (urc == -1)
      return -1;
  }
  zcmd_rename(&a, &z->caps, source, target);
  int rc = zrun(&a, "move it into the SR", NULL);
  za_free(&a);
  if (rc == -1)
    return -1;
  return zb_vol_get(sr, key, NULL, out);
}

int
zb_vol_adopt_recover(struct zl_store *sr, const char *key, const char *source,
                     bool committed)
{
  struct zb_sr *z = zb_of(sr);
  CLEANUP_JSON json_t *objs = NULL;
  const char *targets[] = {source, NULL};
  (void)key;

  /* committed: the rename moved the one name; nothing is left outside */
  if (committed)
    return 0;
  /* not committed: the source is where it was; it loses what marked it as
   * ours (canmount and the mountpoint stay as adopt set them) */
  if (zget(&z->caps, false, ZB_META_PROP "," ZB_SIZE_PROP, targets, &objs,
           "look at the source") == -1) {
    zl_error_clear();
    return 0; /* gone, or never there */
  }
  json_t *o = json_object_get(objs, source);
  const char *const props[] = {ZB_META_PROP, ZB_SIZE_PROP, NULL};
  for (const char *const *p = props; *p; p++) {
    const char *src = zb_obj_source(o, *p);
    if (!zb_obj_value(o, *p) || !src || strcmp(src, "local") != 0)
      continue;
    struct zargv a;
    zcmd_inherit(&a, &z->caps, source, *p);
    int rc = zrun(&a, "undo an adopt", NULL);
    za_free(&a);
    if (rc == -1)
      return -1;
  }
  return 0;
}
