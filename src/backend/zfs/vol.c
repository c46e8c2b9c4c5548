/* vol.c: volumes of the ZFS backend: create, snapshot and
 * clone, destroy, metadata, dependents, tunables.  Revert, data access and
 * internal objects are in data.c.  See zfs.h for the layout. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/zfs/stream.h"
#include "backend/zfs/zfs.h"
#include "util/beneath.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"
#include "util/uuid.h"

#include "util/banned.h" /* last: after every declaration */

/* --- making volumes ---------------------------------------------------------- */

/* Create through libzfs_core: 1 if done, 0 if the CLI must do it, -1 on
 * error.  Thick zvols stay on the CLI: libzfs sizes their reservation from
 * the pool's layout. */
static int
create_lzc(struct zb_sr *z, const char *ds, int64_t size, bool thick,
           const struct zprop *meta, int nmeta)
{
  struct zprop p[ZB_META_CHUNKS + 6];
  char s_size[32], s_bs[32], s_res[32];
  int n = 0;

  if (!zb_lzc_available() || (z->layout == LAYOUT_ZVOL && thick))
    return 0;
  snprintf(s_size, sizeof s_size, "%lld", (long long)size);
  snprintf(s_bs, sizeof s_bs, "%lld", (long long)z->blocksize);
  if (z->layout == LAYOUT_ZVOL) {
    p[n++] = (struct zprop){"volsize", s_size};
    p[n++] = (struct zprop){"volblocksize", s_bs};
  } else {
    snprintf(s_res, sizeof s_res, "%lld",
             thick ? (long long)zb_thick_reservation(size, z->blocksize, z->copies)
                   : 0LL);
    p[n++] = (struct zprop){"canmount", "noauto"};
    p[n++] = (struct zprop){ZB_SIZE_PROP, s_size};
    p[n++] = (struct zprop){"recordsize", s_bs};
    p[n++] = (struct zprop){"refreservation", s_res};
  }
  for (int i = 0; i < nmeta; i++)
    p[n++] = meta[i];
  if (zb_lzc_create(ds, z->layout == LAYOUT_ZVOL, p, n) == 0)
    return 1;
  return errno == ENOTSUP ? 0 : -1;
}

int
zb_vol_create(struct zl_store *sr, const char *key, int64_t size, bool thick,
              const json_t *meta, struct zl_vol_info *out)
{
  struct zb_sr *z = zb_of(sr);
  struct zprop props[ZB_META_CHUNKS];
  int n, rc;
  CLEANUP_FREE char *buf = NULL;
  char ds[600];
  struct zargv a;

  if (zb_meta_encode(meta, 'a', props, &n, &buf) == -1)
    return -1;
  snprintf(ds, sizeof ds, "%s/%s", z->dataset, key);
  rc = create_lzc(z, ds, size, thick, props, n);
  if (rc == 0) {
    zcmd_create_volume(&a, &z->caps, z->layout, ds, size, z->blocksize, thick, z->copies,
                       props, n);
    rc = zrun(&a, "create", NULL) == 0 ? 1 : -1;
    za_free(&a);
  }
  if (rc == -1)
    return -1;
  zl_fault("create", "data");
  /* as made: thin allocates nothing yet; thick reserves (reported by stat);
   * the dataset layout's file is made when the data is first opened */
  out->virtual_size = size;
  out->physical_utilisation = 0;
  return 0;
}

int
zb_vol_copy(struct zl_store *sr, const char *src, const char *dst, enum zl_copy_kind kind,
            bool thick, const json_t *meta, const struct zl_vol_info *src_info,
            struct zl_vol_info *out)
{
  struct zb_sr *z = zb_of(sr);
  const char *op = kind == ZL_COPY_SNAPSHOT ? "snapshot" : "clone";
  char srcname[600], origin[700], ds[600];
  bool src_snap;
  struct zprop props[ZB_META_CHUNKS + 4];
  int n;
  CLEANUP_FREE char *buf = NULL;
  CLEANUP_JSON json_t *m = json_deep_copy(meta);
  const struct zl_vol_info info = *src_info;

  if (zb_name_of(sr, src, srcname, sizeof srcname, &src_snap) == -1)

    return -1;
  /* a new snapshot or clone shares all its data: it has used nothing yet */
  out->virtual_size = src_info->virtual_size;
  out->physical_utilisation = 0;
  if (kind == ZL_COPY_SNAPSHOT) {
    if (src_snap) {
      zl_error_kind(ZL_ERR_UNSUPPORTED, ENOTSUP,
                    "%s is a snapshot; ZFS cannot snapshot a snapshot (clone it first)",
                    src);
      return -1;
    }
    if (z->layout == LAYOUT_DATASET) {
      /* a snapshot's file cannot be stat()ed everywhere (no .zfs on
       * zfs-fuse): its size, immutable, is recorded with it */
      json_object_set_new(m, "size", json_integer(info.virtual_size));
      zb_flush_file(sr, src);
    }
    if (zb_meta_encode(m, 'a', props, &n, &buf) == -1 ||
        zb_index_write(sr, dst, src) == -1)
      return -1;
    snprintf(origin, sizeof origin, "%s@%s", srcname, dst);
    if (zb_snapshot_cmd(z, origin, props, n) == -1)
      return -1;
    zl_fault(op, "data");
    return 0;
  }

  /* clone: of a snapshot directly; of a writable volume through an internal
   * snapshot that goes when the clone goes */
  if (src_snap) {
    snprintf(origin, sizeof origin, "%s", srcname);
  } else {
    if (z->layout == LAYOUT_DATASET)
      zb_flush_file(sr, src);
    snprintf(origin, sizeof origin, "%s@" ZB_ORIGIN_PREFIX "%s", srcname, dst);
    if (zb_snapshot_cmd(z, origin, NULL, 0) == -1)
      return -1;
  }
  if (zb_meta_encode(m, 'a', props, &n, &buf) == -1)
    return -1;
  char refres[64], size[32];
  if (z->layout == LAYOUT_DATASET) { /* a clone keeps no local property */
    snprintf(size, sizeof size, "%lld", (long long)info.virtual_size);
    props[n++] = (struct zprop){ZB_SIZE_PROP, size};
    props[n++] = (struct zprop){"canmount", "noauto"};
  }
  if (thick) {
    if (z->layout == LAYOUT_ZVOL && z->caps.refres_auto)
      snprintf(refres, sizeof refres, "auto");
    else
      snprintf(
          refres, sizeof refres, "%lld",
          (long long)zb_thick_reservation(info.virtual_size, z->blocksize, z->copies));
    props[n++] = (struct zprop){"refreservation", refres};
  }
  snprintf(ds, sizeof ds, "%s/%s", z->dataset, dst);
  int rc = zb_lzc_available() ? zb_lzc_clone(ds, origin, props, n) : -1;
  if (rc == -1 && (!zb_lzc_available() || errno == ENOTSUP)) {
    struct zargv a;
    zcmd_clone(&a, &z->caps, origin, ds, props, n);
    rc = zrun(&a, "clone", NULL);
    za_free(&a);
  }
  if (rc == -1)
    return -1;
  zl_fault(op, "data");
  return 0;
}

/* --- removing volumes -------------------------------------------------------- */

/* The internal origin snapshot of clone key that no clone uses any more
 * ("" if none), anywhere in the pool: a copy into another SR of the pool
 * (copy.c) leaves it in the source's SR.  One still in use is the origin
 * of a live clone of the same key in another SR: never taken. */
static int
find_origin_snapshot(struct zb_sr *z, const char *key, char *out, size_t len)
{
  CLEANUP_JSON json_t *objs = NULL;
  const char *targets[] = {z->pool, NULL};
  char want[300];
  const char *n;
  json_t *o;

  out[0] = '\0';
  if (zget(&z->caps, true, "origin", targets, &objs, "look for origins") == -1)
    return -1;
  snprintf(want, sizeof want, "@" ZB_ORIGIN_PREFIX "%s", key);
  json_object_foreach(objs, n, o)
  {
    const char *at = strchr(n, '@');
    if (!at || strcmp(at, want) != 0)
      continue;
    const char *m;
    json_t *p;
    bool used = false;
    json_object_foreach(objs, m, p)
    {
      const char *org = zb_obj_value(p, "origin");
      used = used || (org && strcmp(org, n) == 0);
    }
    if (!used)
      snprintf(out, len, "%s", n);
  }
  return 0;
}

int
zb_vol_discard(struct zl_store *sr, const char *key)
{
  struct zb_sr *z = zb_of(sr);
  char name[600], origin[700];
  bool snap;

  if (zb_name_of(sr, key, name, sizeof name, &snap) == -1)

    return -1;
  /* a volume never committed has no snapshots of its users; one a copy
   * received brings the stream's (copy.c): they go first */
  struct zargv a;
  struct zl_exec_result res;
  if (!snap) {
    zcmd_list_snapshots(&a, &z->caps, name);
    int rc = zrun(&a, "list snapshots", &res);
    za_free(&a);
    char *save = NULL;
    for (char *line = rc == 0 ? strtok_r(res.out, "\n", &save) : NULL; line;
         line = strtok_r(NULL, "\n", &save))
      if (strchr(line, '@') && (rc = zb_destroy_object(z, line)) == -1)
        break;
    zl_exec_result_free(&res);
    if (rc == -1 && errno != ENOENT)
      return -1;
    zl_error_clear();
  }
  if (zb_destroy_object(z, name) == -1)
    return -1;
  if (snap) {
    zb_index_remove(sr, key);
    return 0;
  }
  if (find_origin_snapshot(z, key, origin, sizeof origin) == -1)
    return -1;
  return origin[0] ? zb_destroy_object(z, origin) : 0;
}

int
zb_vol_destroy(struct zl_store *sr, const char *key)
{
  struct zb_sr *z = zb_of(sr);
  char name[600], origin[700] = "", ro[600];
  bool snap;

  if (zb_name_of(sr, key, name, sizeof name, &snap) == -1)

    return -1;
  if (zb_bm_exists(sr, key)) {
    /* data destroyed: the snapshot (if a crash left it), then its bookmark
     * and record */
    if (zb_bm_source(sr, key, name, sizeof name) == -1)
      return -1;
    name[strcspn(name, "#")] = '\0';
    snprintf(name + strlen(name), sizeof name - strlen(name), "@%s", key);
    snprintf(ro, sizeof ro, "%s/" ZB_RO_PREFIX "%s", z->dataset, key);
    if (zb_destroy_object(z, ro) == -1 || zb_destroy_object(z, name) == -1 ||
        zb_bm_destroy(sr, key) == -1)
      return -1;
    zb_index_remove(sr, key);
    return 0;
  }
  if (snap) {
    /* the read-only clone a snapshot may have been read through goes first */
    snprintf(ro, sizeof ro, "%s/" ZB_RO_PREFIX "%s", z->dataset, key);
    if (zb_destroy_object(z, ro) == -1)
      return -1;
    zl_fault("destroy", "unlisted");
    if (zb_destroy_object(z, name) == -1)
      return -1;
    zl_fault("destroy", "removed");
    zb_index_remove(sr, key);
    return 0;
  }
  CLEANUP_JSON json_t *objs = NULL;
  const char *targets[] = {name, NULL};
  if (zget(&z->caps, false, "origin", targets, &objs, "destroy") == 0) {
    const char *org = zb_obj_value(json_object_get(objs, name), "origin");
    char want[300];
    snprintf(want, sizeof want, "@" ZB_ORIGIN_PREFIX "%s", key);
    if (org && strlen(org) > strlen(want) &&
        strcmp(org + strlen(org) - strlen(want), want) == 0)
      snprintf(origin, sizeof origin, "%s", org);
  } else if (errno == ENOENT) {
    /* already gone (a re-run after a crash): its origin may remain */
    if (find_origin_snapshot(z, key, origin, sizeof origin) == -1)
      return -1;
  } else {
    return -1;
  }
  zl_fault("destroy", "unlisted");
  if (zb_destroy_object(z, name) == -1)
    return -1;
  if (origin[0] && zb_destroy_object(z, origin) == -1)
    return -1;
  zl_fault("destroy", "removed");
  return 0;
}

/* --- metadata, size, dependents, tunables ------------------------------------ */

int
zb_vol_set_meta(struct zl_store *sr, const char *key, const json_t *meta)
{
  char name[600];
  bool snap;

  if (zb_name_of(sr, key, name, sizeof name, &snap) == -1)

    return -1;
  if (zb_bm_exists(sr, key)) {
    /* data destroyed: the record (and the snapshot, if a crash left it) */
    if (zb_bm_set_meta(sr, key, meta) == -1)
      return -1;
    if (!snap || zb_meta_store(&zb_of(sr)->caps, name, meta) == 0 || errno == ENOENT) {
      zl_error_clear();
      return 0;
    }
    return -1;
  }
  return zb_meta_store(&zb_of(sr)->caps, name, meta);
}

int
zb_vol_resize(struct zl_store *sr, const char *key, int64_t size, bool thick)
{
  struct zb_sr *z = zb_of(sr);
  char ds[600], path[PATH_MAX];
  struct zl_vol_info info;
  struct zargv a;
  int rc;

  if (zb_vol_get(sr, key, NULL, &info) == -1)
    return -1;
  if (size < info.virtual_size) {
    zl_error_kind(ZL_ERR_SIZE, EINVAL, "volume %s is larger than %lld bytes", key,
                  (long long)size);
    return -1;
  }
  snprintf(ds, sizeof ds, "%s/%s", z->dataset, key);
  if (z->layout == LAYOUT_ZVOL) {
    zl_fault("resize", "reserved");
    zcmd_volsize(&a, &z->caps, ds, size); /* libzfs keeps a thick reservation */
    rc = zrun(&a, "resize", NULL);
    za_free(&a);
    return rc;
  }
  if (thick) { /* reserve first: a failure leaves the old size */
    char v[32];
    snprintf(v, sizeof v, "%lld",
             (long long)zb_thick_reservation(size, z->blocksize, z->copies));
    zcmd_set(&a, &z->caps, ds, "refreservation", v);
    rc = zrun(&a, "reserve space", NULL);
    za_free(&a);
    if (rc == -1)
      return -1;
  }
  zl_fault("resize", "reserved");
  char v[32];
  snprintf(v, sizeof v, "%lld", (long long)size);
  zcmd_set(&a, &z->caps, ds, ZB_SIZE_PROP, v); /* the size is this property */
  rc = zrun(&a, "resize", NULL);
  za_free(&a);
  if (rc == -1)
    return -1;
  /* a made file grows now (opening it would grow it too) */
  snprintf(path, sizeof path, "%s/%s/" ZB_DISK, sr->key, key);
  struct stat st;
  if (zb_is_mounted(sr, key) && stat(path, &st) == 0 && st.st_size < size &&
      truncate(path, size) == -1) {
    zl_error_sys(errno, "%s", path);
    return -1;
  }
  return 0;
}

int
zb_vol_dependents(struct zl_store *sr, const char *key)
{
  struct zb_sr *z = zb_of(sr);
  char name[600];
  bool snap;
  CLEANUP_JSON json_t *objs = NULL;
  const char *n;
  json_t *o;
  int count = 0;

  if (zb_name_of(sr, key, name, sizeof name, &snap) == -1)

    return -1;
  /* a snapshot is kept by its clones, in any SR of the pool (vol copy),
   * but not by its internal read clone; a volume by its snapshots (user
   * ones, hidden ones, clone origins) */
  const char *targets[] = {snap ? z->pool : name, NULL};
  if (zget(&z->caps, true, "origin", targets, &objs, "dependents") == -1)
    return errno == ENOENT ? 0 : -1;
  json_object_foreach(objs, n, o)
  {
    const char *rel = zb_rel_name(z, n);
    if (snap) {
      const char *org = zb_obj_value(o, "origin");
      if (org && strcmp(org, name) == 0 &&
          !(rel && strncmp(rel, ZB_RO_PREFIX, strlen(ZB_RO_PREFIX)) == 0))
        count++;
    } else if (strncmp(n, name, strlen(name)) == 0 && n[strlen(name)] == '@') {
      count++;
    }
  }
  return count;
}

int
zb_vol_tune(struct zl_store *sr, const char *key, const char *prop, const char *value)
{
  struct zb_sr *z = zb_of(sr);
  char name[600];
  bool snap;
  struct zargv a;
  int rc;

  if (!zb_is_tunable(prop))
    return 0;
  if (value && zb_tunable_check(&z->caps, prop, value, false) == -1)
    return -1;
  if (!value && (strcmp(prop, "volblocksize") == 0 || strcmp(prop, "recordsize") == 0))
    return zb_tunable_check(&z->caps, prop, "x", false);
  if (zb_name_of(sr, key, name, sizeof name, &snap) == -1)
    return -1;
  if (snap) {
    zl_error_kind(ZL_ERR_READ_ONLY, EROFS,
                  "%s is a snapshot: its tunables are those of "
                  "the volume when it was taken",
                  key);
    return -1;
  }
  if (value)
    zcmd_set(&a, &z->caps, name, prop, value);
  else
    zcmd_inherit(&a, &z->caps, name, prop);
  rc = zrun(&a, value ? "set a tunable" : "reset a tunable", NULL);
  za_free(&a);
  return rc == 0 ? 1 : -1;
}
