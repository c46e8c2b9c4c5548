/* zfs-vol.c: volumes of the ZFS backend: listing, create, snapshot and
 * clone, destroy, metadata, dependents, tunables.  Revert, data access and
 * internal objects are in zfs-data.c.  See zfs.h for the layout. */
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

#include "backend/zfs-stream.h"
#include "backend/zfs.h"
#include "util/beneath.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"
#include "util/uuid.h"

#define SNAPIDX "snapidx"

/* --- naming ---------------------------------------------------------------- */

/* The snapshot index: snapidx/<key> holds the dataset component the
 * snapshot belongs to.  A cache: when wrong, a scan finds the snapshot and
 * the entry is rewritten. */
int
zfs_index_read(struct zl_sr *sr, const char *key, char *parent, size_t len)
{
  char name[NAME_MAX + 1];
  CLEANUP_FREE char *buf = NULL;

  snprintf(name, sizeof name, SNAPIDX "/%s", key);
  if (zl_read_file_at(sr->statefd, name, 512, &buf, NULL) == -1)
    return -1;
  snprintf(parent, len, "%.*s", (int)strcspn(buf, "\n"), buf);
  return parent[0] ? 0 : (errno = ENOENT, -1);
}

int
zfs_index_write(struct zl_sr *sr, const char *key, const char *parent)
{
  CLEANUP_CLOSE int dfd = zl_dir_beneath(sr->statefd, SNAPIDX, true);

  if (dfd == -1) {
    zl_error_prefix("snapshot index: ");
    return -1;
  }
  return zl_write_file_atomic(dfd, key, parent, strlen(parent), false);
}

void
zfs_index_remove(struct zl_sr *sr, const char *key)
{
  CLEANUP_CLOSE int dfd = zl_dir_beneath(sr->statefd, SNAPIDX, false);

  if (dfd >= 0)
    unlinkat(dfd, key, 0);
  zl_error_clear();
}

/* The ZFS name of key: <sr>/<parent>@<key> for a snapshot in the index,
 * <sr>/<key> otherwise.  *is_snap tells which. */
void
zfs_name_of(struct zl_sr *sr, const char *key, char *out, size_t len, bool *is_snap)
{
  struct zfs_sr *z = zfs_of(sr);
  char parent[256];

  if (zfs_index_read(sr, key, parent, sizeof parent) == 0) {
    snprintf(out, len, "%s/%s@%s", z->dataset, parent, key);
    *is_snap = true;
  } else {
    snprintf(out, len, "%s/%s", z->dataset, key);
    *is_snap = false;
  }
  zl_error_clear();
}

/* The part of a ZFS name after the SR dataset: "<comp>" or "<comp>@<snap>". */
static const char *
rel_name(const struct zfs_sr *z, const char *name)
{
  size_t n = strlen(z->dataset);
  return strncmp(name, z->dataset, n) == 0 && name[n] == '/' ? name + n + 1 : NULL;
}

static const char *
props_to_get(const struct zfs_sr *z)
{
  static char buf[768];
  snprintf(buf, sizeof buf,
           "type,used,volsize,refreservation,origin,compression,copies,primarycache,"
           "secondarycache,logbias,recordsize,volblocksize," ZFS_SIZE_PROP "%s,%s",
           z->caps.sync_prop ? ",sync" : "", zfs_meta_prop_list());
  return buf;
}

static int64_t
num(const json_t *o, const char *prop)
{
  const char *v = zfs_obj_value(o, prop);
  return v ? strtoll(v, NULL, 10) : 0;
}

/* Set on this object (or received with it by zfs receive -p), not
 * inherited from a parent. */
static bool
own_value(const json_t *o, const char *prop)
{
  const char *src = zfs_obj_source(o, prop);
  return src && (strcmp(src, "local") == 0 || strcmp(src, "received") == 0);
}

/* Build meta (with the storage facts) and info for one object.  Returns 0,
 * 1 if the object is not a committed volume of ours (skip it), -1 on error. */
static int
describe(struct zl_sr *sr, const char *name, const json_t *o, json_t **metap,
         struct zl_vol_info *info)
{
  struct zfs_sr *z = zfs_of(sr);
  const char *rel = rel_name(z, name);
  const char *type = zfs_obj_value(o, "type");
  const char *at;

  *metap = NULL;
  if (!rel || !type || strncmp(rel, ZFS_INTERNAL, strlen(ZFS_INTERNAL)) == 0)
    return 1;
  at = strchr(rel, '@');
  json_t *meta = zfs_meta_decode(o, name);
  if (!meta && zl_error_errno() == ENOENT)
    return 1; /* no metadata: not a volume of ours */
  if (!meta) {
    /* ours, but unreadable: reported under its name, never skipped */
    const char *k = at ? at + 1 : rel;
    if (!zl_key_valid(k) || (!at && strchr(rel, '/')))
      return 1;
    meta = json_pack("{s:s, s:s}", "key", k, ZL_META_BROKEN, zl_error_msg());
    zl_error_clear();
    if (!meta) {
      zl_error(ENOMEM, "out of memory");
      return -1;
    }
  }
  const char *key = json_string_value(json_object_get(meta, "key"));
  /* the object's own name must be its key (a revert in progress renames) */
  if (!key || strcmp(at ? at + 1 : rel, key) != 0 || (!at && strchr(rel, '/'))) {
    json_decref(meta);
    return 1;
  }
  bool snap = strcmp(type, "snapshot") == 0;
  info->physical_utilisation = num(o, "used");
  if (strcmp(type, "volume") == 0 || (snap && zfs_obj_value(o, "volsize"))) {
    info->virtual_size = num(o, "volsize");
  } else if (snap) {
    json_t *s = json_object_get(meta, "size");
    info->virtual_size = json_is_integer(s) ? json_integer_value(s) : 0;
  } else if (zfs_obj_value(o, ZFS_SIZE_PROP) && own_value(o, ZFS_SIZE_PROP)) {
    info->virtual_size = num(o, ZFS_SIZE_PROP);
  } else if (zl_meta_broken(meta)) {
    info->virtual_size = 0; /* unknown: its size was in what cannot be read */
  } else {
    json_decref(meta); /* not made by this version's create */
    return 1;
  }
  static const char *const tun[] = {"compression",    "copies",  "sync", "primarycache",
                                    "secondarycache", "logbias", NULL};
  json_t *t = json_object();
  for (const char *const *p = tun; *p; p++) {
    const char *v = zfs_obj_value(o, *p), *src = zfs_obj_source(o, *p);
    if (v)
      json_object_set_new(t, *p,
                          json_pack("{s:s, s:s}", "value", v, "source",
                                    src && strncmp(src, "inherited", 9) == 0
                                        ? "inherited"
                                        : (src ? src : "-")));
  }
  const char *bs =
      zfs_obj_value(o, strcmp(type, "volume") == 0 ? "volblocksize" : "recordsize");
  if (bs)
    json_object_set_new(t, "volblocksize",
                        json_pack("{s:s, s:s}", "value", bs, "source", "creation"));
  int64_t refres = num(o, "refreservation");
  json_object_set_new(meta, ZL_META_STORAGE,
                      json_pack("{s:s, s:s, s:s, s:I, s:o}", "object", name, "layout",
                                z->layout == LAYOUT_ZVOL ? "zvol" : "dataset",
                                "provisioning", refres > 0 ? "thick" : "thin",
                                "refreservation", (json_int_t)refres, "tunables", t));
  *metap = meta;
  return 0;
}

int
zfs_vol_list(struct zl_sr *sr, zl_vol_cb cb, void *opaque)
{
  struct zfs_sr *z = zfs_of(sr);
  CLEANUP_JSON json_t *objs = NULL;
  const char *targets[] = {z->dataset, NULL};
  const char *name;
  json_t *o;

  if (zget(&z->caps, true, props_to_get(z), targets, &objs, "list the SR") == -1)
    return -1;
  json_object_foreach(objs, name, o)
  {
    json_t *meta;
    struct zl_vol_info info;
    const char *at = strchr(name, '@');
    if (at && !strncmp(at + 1, ZFS_CBT_PREFIX, strlen(ZFS_CBT_PREFIX)) &&
        zfs_cbt_snapshot_stale(at + 1)) {
      /* left by a list_changed_blocks that died: nothing else removes it */
      if (zfs_destroy_object(z, name) == -1)
        zl_warn("SR %s: cannot remove %s: %s", sr->key, name, zl_error_msg());
      zl_error_clear();
      continue;
    }
    int r = describe(sr, name, o, &meta, &info);
    if (r == -1)
      return -1;
    if (r == 1)
      continue;
    const char *key = json_string_value(json_object_get(meta, "key"));
    r = cb(opaque, key, meta, &info);
    json_decref(meta);
    if (r == -1)
      return -1;
  }
  return 0;
}

static bool
internal_name(const char *rel)
{
  const char *at = strchr(rel, '@');
  const char *last = at ? at + 1 : rel;
  return strncmp(rel, ZFS_INTERNAL, strlen(ZFS_INTERNAL)) == 0 ||
         strncmp(last, ZFS_INTERNAL, strlen(ZFS_INTERNAL)) == 0;
}

/* Files in the SR dataset's directory: its private area and the mount
 * points of its volumes (empty directories where they are not mounted)
 * belong to it; anything else does not. */
static int
foreign_files(struct zl_sr *sr, const json_t *objs, zl_foreign_cb cb, void *opaque)
{
  struct zfs_sr *z = zfs_of(sr);
  CLEANUP_DIR DIR *d = NULL;
  struct dirent *de;
  struct stat st;
  int fd = openat(sr->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  if (fd == -1 || !(d = fdopendir(fd))) {
    if (fd >= 0)
      close(fd);
    zl_error(errno, "SR %s: cannot list: %s", sr->key, strerror(errno));
    return -1;
  }
  while ((de = readdir(d))) {
    char child[600], what[NAME_MAX + 16];
    const char *n = de->d_name;
    if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, ZL_PRIV_DIR))
      continue;
    snprintf(child, sizeof child, "%s/%s", z->dataset, n);
    if (json_object_get(objs, child) &&
        fstatat(sr->dirfd, n, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
      continue;
    snprintf(what, sizeof what, "file %s", n);
    if (cb(opaque, what) == -1)
      return -1;
  }
  return 0;
}

int
zfs_sr_foreign(struct zl_sr *sr, zl_foreign_cb cb, void *opaque)
{
  struct zfs_sr *z = zfs_of(sr);
  CLEANUP_JSON json_t *objs = NULL;
  const char *targets[] = {z->dataset, NULL};
  const char *name;
  json_t *o;

  if (zget(&z->caps, true, props_to_get(z), targets, &objs, "list the SR") == -1)
    return -1;
  json_object_foreach(objs, name, o)
  {
    const char *rel = rel_name(z, name);
    json_t *meta = NULL;
    struct zl_vol_info info;
    if (strcmp(name, z->dataset) == 0 || (rel && internal_name(rel)))
      continue; /* the SR itself; internal objects go with it */
    int r = rel ? describe(sr, name, o, &meta, &info) : 1;
    json_decref(meta);
    if (r == -1)
      return -1;
    if (r == 0)
      continue;                 /* a volume: vol_list reports it */
    if (cb(opaque, name) == -1) /* a snapshot of the SR, a dataset not ours */
      return -1;
  }
  return foreign_files(sr, objs, cb, opaque);
}

/* Find a snapshot by key when the index is missing or wrong. */
static int
find_snapshot(struct zl_sr *sr, const char *key, json_t **objp, char *name, size_t len)
{
  struct zfs_sr *z = zfs_of(sr);
  CLEANUP_JSON json_t *objs = NULL;
  const char *targets[] = {z->dataset, NULL};
  const char *n;
  json_t *o;

  if (zget(&z->caps, true, props_to_get(z), targets, &objs, "look for a snapshot") == -1)
    return -1;
  json_object_foreach(objs, n, o)
  {
    const char *at = strchr(n, '@');
    if (at && strcmp(at + 1, key) == 0) {
      const char *rel = rel_name(z, n);
      char parent[256];
      snprintf(parent, sizeof parent, "%.*s", rel ? (int)(at - rel) : 0, rel ? rel : "");
      zfs_index_write(sr, key, parent); /* repair the cache */
      snprintf(name, len, "%s", n);
      *objp = json_incref(o);
      return 0;
    }
  }
  zl_error(ENOENT, "no snapshot %s in %s", key, z->dataset);
  return -1;
}

int
zfs_vol_get(struct zl_sr *sr, const char *key, json_t **metap, struct zl_vol_info *infop)
{
  struct zfs_sr *z = zfs_of(sr);
  char name[600];
  bool snap;
  CLEANUP_JSON json_t *objs = NULL;
  CLEANUP_JSON json_t *o = NULL;
  struct zl_vol_info info;
  json_t *meta;

  zfs_name_of(sr, key, name, sizeof name, &snap);
  const char *targets[] = {name, NULL};
  if (zget(&z->caps, false, props_to_get(z), targets, &objs, "stat") == 0) {
    o = json_incref(json_object_get(objs, name));
  } else if (errno != ENOENT) {
    return -1;
  } else if (snap && find_snapshot(sr, key, &o, name, sizeof name) == -1) {
    zfs_index_remove(sr, key);
    return -1;
  }
  if (!o) {
    zl_error(ENOENT, "volume %s does not exist", key);
    return -1;
  }
  if (describe(sr, name, o, &meta, &info) != 0) {
    zl_error(ENOENT, "volume %s does not exist (or was never completed)", key);
    return -1;
  }
  if (infop)
    *infop = info;
  if (metap)
    *metap = meta;
  else
    json_decref(meta);
  return 0;
}

/* --- making volumes ---------------------------------------------------------- */

/* Create through libzfs_core: 1 if done, 0 if the CLI must do it, -1 on
 * error.  Thick zvols stay on the CLI: libzfs sizes their reservation from
 * the pool's layout. */
static int
create_lzc(struct zfs_sr *z, const char *ds, int64_t size, bool thick,
           const struct zprop *meta, int nmeta)
{
  struct zprop p[ZFS_META_CHUNKS + 6];
  char s_size[32], s_bs[32], s_res[32];
  int n = 0;

  if (!zfs_lzc_available() || (z->layout == LAYOUT_ZVOL && thick))
    return 0;
  snprintf(s_size, sizeof s_size, "%lld", (long long)size);
  snprintf(s_bs, sizeof s_bs, "%lld", (long long)z->blocksize);
  if (z->layout == LAYOUT_ZVOL) {
    p[n++] = (struct zprop){"volsize", s_size};
    p[n++] = (struct zprop){"volblocksize", s_bs};
  } else {
    snprintf(s_res, sizeof s_res, "%lld",
             thick ? (long long)zfs_thick_reservation(size, z->blocksize, z->copies)
                   : 0LL);
    p[n++] = (struct zprop){"canmount", "noauto"};
    p[n++] = (struct zprop){ZFS_SIZE_PROP, s_size};
    p[n++] = (struct zprop){"recordsize", s_bs};
    p[n++] = (struct zprop){"refreservation", s_res};
  }
  for (int i = 0; i < nmeta; i++)
    p[n++] = meta[i];
  if (zfs_lzc_create(ds, z->layout == LAYOUT_ZVOL, p, n) == 0)
    return 1;
  return errno == ENOTSUP ? 0 : -1;
}

int
zfs_vol_create(struct zl_sr *sr, const char *key, int64_t size, bool thick,
               const json_t *meta, struct zl_vol_info *out)
{
  struct zfs_sr *z = zfs_of(sr);
  struct zprop props[ZFS_META_CHUNKS];
  int n, rc;
  CLEANUP_FREE char *buf = NULL;
  char ds[600];
  struct zargv a;

  if (zfs_meta_encode(meta, 'a', props, &n, &buf) == -1)
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

static int
snapshot_cmd(struct zfs_sr *z, const char *snap, const struct zprop *props, int n)
{
  if (zfs_lzc_available())
    return zfs_lzc_snapshot(snap, props, n);
  struct zargv a;
  zcmd_snapshot(&a, &z->caps, snap, props, n);
  int rc = zrun(&a, "snapshot", NULL);
  za_free(&a);
  return rc;
}

/* Data written through the file must reach ZFS before a snapshot (a
 * volume never opened has no file, or is not mounted: nothing to do). */
static void
flush_file(struct zl_sr *sr, const char *comp)
{
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/" ZFS_DISK, comp);
  int fd = openat(sr->dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

int
zfs_vol_copy(struct zl_sr *sr, const char *src, const char *dst, enum zl_copy_kind kind,
             bool thick, const json_t *meta, const struct zl_vol_info *src_info,
             struct zl_vol_info *out)
{
  struct zfs_sr *z = zfs_of(sr);
  const char *op = kind == ZL_COPY_SNAPSHOT ? "snapshot" : "clone";
  char srcname[600], origin[700], ds[600];
  bool src_snap;
  struct zprop props[ZFS_META_CHUNKS + 4];
  int n;
  CLEANUP_FREE char *buf = NULL;
  CLEANUP_JSON json_t *m = json_deep_copy(meta);
  const struct zl_vol_info info = *src_info;

  zfs_name_of(sr, src, srcname, sizeof srcname, &src_snap);
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
      flush_file(sr, src);
    }
    if (zfs_meta_encode(m, 'a', props, &n, &buf) == -1 ||
        zfs_index_write(sr, dst, src) == -1)
      return -1;
    snprintf(origin, sizeof origin, "%s@%s", srcname, dst);
    if (snapshot_cmd(z, origin, props, n) == -1)
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
      flush_file(sr, src);
    snprintf(origin, sizeof origin, "%s@" ZFS_ORIGIN_PREFIX "%s", srcname, dst);
    if (snapshot_cmd(z, origin, NULL, 0) == -1)
      return -1;
  }
  if (zfs_meta_encode(m, 'a', props, &n, &buf) == -1)
    return -1;
  char refres[64], size[32];
  if (z->layout == LAYOUT_DATASET) { /* a clone keeps no local property */
    snprintf(size, sizeof size, "%lld", (long long)info.virtual_size);
    props[n++] = (struct zprop){ZFS_SIZE_PROP, size};
    props[n++] = (struct zprop){"canmount", "noauto"};
  }
  if (thick) {
    if (z->layout == LAYOUT_ZVOL && z->caps.refres_auto)
      snprintf(refres, sizeof refres, "auto");
    else
      snprintf(
          refres, sizeof refres, "%lld",
          (long long)zfs_thick_reservation(info.virtual_size, z->blocksize, z->copies));
    props[n++] = (struct zprop){"refreservation", refres};
  }
  snprintf(ds, sizeof ds, "%s/%s", z->dataset, dst);
  int rc = zfs_lzc_available() ? zfs_lzc_clone(ds, origin, props, n) : -1;
  if (rc == -1 && (!zfs_lzc_available() || errno == ENOTSUP)) {
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

/* Destroy one ZFS object, unmounting a filesystem first; gone is fine. */
int
zfs_destroy_object(struct zfs_sr *z, const char *name)
{
  struct zargv a;
  int rc;

  if (strchr(name, '@') && zfs_lzc_available())
    return zfs_lzc_destroy_snapshot(name);
  if (zfs_lzc_available() && zfs_lzc_destroy(name) == 0)
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

/* The internal origin snapshot of clone key, wherever it is ("" if none). */
static int
find_origin_snapshot(struct zfs_sr *z, const char *key, char *out, size_t len)
{
  CLEANUP_JSON json_t *objs = NULL;
  const char *targets[] = {z->dataset, NULL};
  char want[300];
  const char *n;
  json_t *o;

  out[0] = '\0';
  if (zget(&z->caps, true, "type", targets, &objs, "look for origins") == -1)
    return -1;
  snprintf(want, sizeof want, "@" ZFS_ORIGIN_PREFIX "%s", key);
  json_object_foreach(objs, n, o)
  {
    const char *at = strchr(n, '@');
    if (at && strcmp(at, want) == 0)
      snprintf(out, len, "%s", n);
  }
  return 0;
}

int
zfs_vol_discard(struct zl_sr *sr, const char *key)
{
  struct zfs_sr *z = zfs_of(sr);
  char name[600], origin[700];
  bool snap;

  zfs_name_of(sr, key, name, sizeof name, &snap);
  if (zfs_destroy_object(z, name) == -1)
    return -1;
  if (snap) {
    zfs_index_remove(sr, key);
    return 0;
  }
  if (find_origin_snapshot(z, key, origin, sizeof origin) == -1)
    return -1;
  return origin[0] ? zfs_destroy_object(z, origin) : 0;
}

int
zfs_vol_destroy(struct zl_sr *sr, const char *key)
{
  struct zfs_sr *z = zfs_of(sr);
  char name[600], origin[700] = "", ro[600];
  bool snap;

  zfs_name_of(sr, key, name, sizeof name, &snap);
  if (snap) {
    /* the read-only clone a snapshot may have been read through goes first */
    snprintf(ro, sizeof ro, "%s/" ZFS_RO_PREFIX "%s", z->dataset, key);
    if (zfs_destroy_object(z, ro) == -1)
      return -1;
    zl_fault("destroy", "unlisted");
    if (zfs_destroy_object(z, name) == -1)
      return -1;
    zl_fault("destroy", "removed");
    zfs_index_remove(sr, key);
    return 0;
  }
  CLEANUP_JSON json_t *objs = NULL;
  const char *targets[] = {name, NULL};
  if (zget(&z->caps, false, "origin", targets, &objs, "destroy") == 0) {
    const char *org = zfs_obj_value(json_object_get(objs, name), "origin");
    char want[300];
    snprintf(want, sizeof want, "@" ZFS_ORIGIN_PREFIX "%s", key);
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
  if (zfs_destroy_object(z, name) == -1)
    return -1;
  if (origin[0] && zfs_destroy_object(z, origin) == -1)
    return -1;
  zl_fault("destroy", "removed");
  return 0;
}

/* --- metadata, size, dependents, tunables ------------------------------------ */

int
zfs_vol_set_meta(struct zl_sr *sr, const char *key, const json_t *meta)
{
  char name[600];
  bool snap;

  zfs_name_of(sr, key, name, sizeof name, &snap);
  return zfs_meta_store(&zfs_of(sr)->caps, name, meta);
}

int
zfs_vol_resize(struct zl_sr *sr, const char *key, int64_t size, bool thick)
{
  struct zfs_sr *z = zfs_of(sr);
  char ds[600], path[PATH_MAX];
  struct zl_vol_info info;
  struct zargv a;
  int rc;

  if (zfs_vol_get(sr, key, NULL, &info) == -1)
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
             (long long)zfs_thick_reservation(size, z->blocksize, z->copies));
    zcmd_set(&a, &z->caps, ds, "refreservation", v);
    rc = zrun(&a, "reserve space", NULL);
    za_free(&a);
    if (rc == -1)
      return -1;
  }
  zl_fault("resize", "reserved");
  char v[32];
  snprintf(v, sizeof v, "%lld", (long long)size);
  zcmd_set(&a, &z->caps, ds, ZFS_SIZE_PROP, v); /* the size is this property */
  rc = zrun(&a, "resize", NULL);
  za_free(&a);
  if (rc == -1)
    return -1;
  /* a made file grows now (opening it would grow it too) */
  snprintf(path, sizeof path, "%s/%s/" ZFS_DISK, sr->key, key);
  struct stat st;
  if (zfs_is_mounted(sr, key) && stat(path, &st) == 0 && st.st_size < size &&
      truncate(path, size) == -1) {
    zl_error(errno, "%s: %s", path, strerror(errno));
    return -1;
  }
  return 0;
}

int
zfs_vol_dependents(struct zl_sr *sr, const char *key)
{
  struct zfs_sr *z = zfs_of(sr);
  char name[600];
  bool snap;
  CLEANUP_JSON json_t *objs = NULL;
  const char *n;
  json_t *o;
  int count = 0;

  zfs_name_of(sr, key, name, sizeof name, &snap);
  const char *targets[] = {snap ? z->dataset : name, NULL};
  /* a snapshot is kept by its clones (not by the internal read clone); a
   * volume by its snapshots (user ones, hidden ones, clone origins) */
  if (zget(&z->caps, true, "origin", targets, &objs, "dependents") == -1)
    return errno == ENOENT ? 0 : -1;
  json_object_foreach(objs, n, o)
  {
    const char *rel = rel_name(z, n);
    if (snap) {
      const char *org = zfs_obj_value(o, "origin");
      if (org && strcmp(org, name) == 0 && rel &&
          strncmp(rel, ZFS_RO_PREFIX, strlen(ZFS_RO_PREFIX)) != 0)
        count++;
    } else if (strncmp(n, name, strlen(name)) == 0 && n[strlen(name)] == '@') {
      count++;
    }
  }
  return count;
}

int
zfs_vol_tune(struct zl_sr *sr, const char *key, const char *prop, const char *value)
{
  struct zfs_sr *z = zfs_of(sr);
  char name[600];
  bool snap;
  struct zargv a;
  int rc;

  if (!zfs_is_tunable(prop))
    return 0;
  if (value && zfs_tunable_check(&z->caps, prop, value, false) == -1)
    return -1;
  if (!value && (strcmp(prop, "volblocksize") == 0 || strcmp(prop, "recordsize") == 0))
    return zfs_tunable_check(&z->caps, prop, "x", false);
  zfs_name_of(sr, key, name, sizeof name, &snap);
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

/* --- changed blocks ---------------------------------------------------------- */

/* The temporary snapshot a comparison with the volume itself takes is named
 * _zl-cbt-<pid>-<first 8 of the boot id>-<random>: one whose process is gone
 * (or of an earlier boot) is stale. */
static void
boot8(char *out)
{
  char id[64];
  zl_boot_id(id, sizeof id);
  snprintf(out, 9, "%.8s", strlen(id) >= 8 ? id : "00000000");
}

bool
zfs_cbt_snapshot_stale(const char *snap)
{
  char boot[9], theirs[9] = "";
  long pid = 0;
  if (sscanf(snap + strlen(ZFS_CBT_PREFIX), "%ld-%8[0-9a-f]", &pid, theirs) != 2 ||
      pid <= 0)
    return false; /* not ours to judge */
  boot8(boot);
  return strcmp(boot, theirs) != 0 || (kill((pid_t)pid, 0) == -1 && errno == ESRCH);
}

struct changes {
  struct zstream *parser;
  bool empty; /* no stream byte came */
  zl_range_fn cb;
  void *opaque;
};

static int
stream_sink(void *opaque, const void *data, size_t len)
{
  struct changes *ch = opaque;
  ch->empty = false;
  return zstream_feed(ch->parser, data, len);
}

static int
stream_range(void *opaque, uint64_t offset, uint64_t length, bool freed)
{
  struct changes *ch = opaque;
  /* A FREE from a non-zero offset to the end of the object describes space
   * past the object's last block (senders before OpenZFS 0.8, zfs-fuse,
   * carry no maxblkid for the parser to tell it by).  Our volumes never
   * shrink, so it is never a change; [0, end) is a deleted object. */
  if (freed && length == UINT64_MAX && offset > 0)
    return 0;
  return ch->cb(ch->opaque, offset, length);
}

/* Run zfs send -i from to and report the data object's ranges. */
static int
send_changes(struct zfs_sr *z, uint64_t obj, const char *from, const char *to,
             struct changes *ch)
{
  struct zl_exec_result res = {0};
  struct zstream_info info;
  struct zargv a;
  int r = -1;

  ch->empty = true;
  if (!(ch->parser = zstream_new(obj, 0, stream_range, ch)))
    return -1;
  zcmd_send_incremental(&a, &z->caps, from, to);
  int e = zl_exec_stream(a.v, NULL, stream_sink, ch, &res);
  za_free(&a);
  if (e == -1)
    return -1;
  if (res.sink_failed) {
    zl_error_prefix("zfs send -i %s %s: ", from, to);
  } else if (res.status != 0) {
    zl_error(EIO, "zfs send -i %s %s: %s", from, to, zl_exec_reason(&res));
  } else if (zstream_finish(ch->parser, &info) == -1) {
    zl_error_prefix("zfs send -i %s %s: ", from, to);
  } else if (info.fromguid == 0) {
    zl_error(EIO, "zfs send -i %s %s: not an incremental stream", from, to);
  } else {
    zl_debug("changed blocks %s..%s: %llu records, %llu bytes of stream", from, to,
             (unsigned long long)info.records, (unsigned long long)info.bytes);
    r = 0;
  }
  zl_exec_result_free(&res);
  return r;
}

/* The ZFS object holding the volume's data: 1 for a zvol; for the dataset
 * layout, the inode number of its file (ZFS inode numbers are object
 * numbers).  0: the file was never made (it reads as zeros). */
static int
data_object(struct zl_sr *sr, const char *comp, uint64_t *obj)
{
  struct zfs_sr *z = zfs_of(sr);
  char path[PATH_MAX];
  struct stat st;

  if (z->layout == LAYOUT_ZVOL) {
    *obj = ZSTREAM_ZVOL_OBJECT;
    return 0;
  }
  snprintf(path, sizeof path, "%s/" ZFS_DISK, comp);
  if (fstatat(sr->dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    *obj = (uint64_t)st.st_ino;
    return 0;
  }
  if (errno == ENOENT && zfs_is_mounted(sr, comp)) {
    *obj = 0;
    return 0;
  }
  char ds[600];
  struct zargv a;
  snprintf(ds, sizeof ds, "%s/%s", z->dataset, comp);
  zcmd_mount(&a, &z->caps, ds, true);
  int r = zrun(&a, "mount", NULL);
  za_free(&a);
  if (r == -1 && !strstr(zl_error_msg(), "already mounted"))
    return -1;
  zl_error_clear();
  if (fstatat(sr->dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0)
    *obj = (uint64_t)st.st_ino;
  else if (errno == ENOENT)
    *obj = 0;
  else {
    zl_error(errno, "volume %s: %s", comp, strerror(errno));
    return -1;
  }
  return 0;
}

int
zfs_vol_changes(struct zl_sr *sr, const char *from, const char *to, zl_range_fn cb,
                void *opaque)
{
  struct zfs_sr *z = zfs_of(sr);
  char fname[600], tname[600], tmp[700] = "", uuid[ZL_UUID_LEN + 1];
  bool fsnap, tsnap;
  uint64_t obj;
  int r = -1;

  zfs_name_of(sr, from, fname, sizeof fname, &fsnap);
  zfs_name_of(sr, to, tname, sizeof tname, &tsnap);
  if (!fsnap && tsnap) { /* the volume and one of its snapshots: the same set */
    char t[600];
    memcpy(t, fname, sizeof t);
    memcpy(fname, tname, sizeof fname);
    memcpy(tname, t, sizeof tname);
    fsnap = true;
    tsnap = false;
  }
  /* both in one dataset: <sr>/<comp>@from and <sr>/<comp>[@to] */
  size_t dl = strcspn(fname, "@");
  if (!fsnap || strncmp(fname, tname, dl) != 0 ||
      (tname[dl] != '@' && tname[dl] != '\0')) {
    zl_error(EINVAL, "%s and %s are not snapshots of one ZFS volume", from, to);
    return -1;
  }
  const char *comp = fname + strlen(z->dataset) + 1;
  char comp_only[300];
  snprintf(comp_only, sizeof comp_only, "%.*s", (int)strcspn(comp, "@"), comp);
  if (data_object(sr, comp_only, &obj) == -1)
    return -1;
  if (obj == 0)
    return 0; /* never written: zeros then and now */
  if (!tsnap) {
    /* the volume itself: compare with a snapshot of it taken now */
    if (zl_uuid_generate(uuid) == -1)
      return -1;
    char boot[9];
    boot8(boot);
    snprintf(tmp, sizeof tmp, "%s@" ZFS_CBT_PREFIX "%ld-%s-%.8s", tname, (long)getpid(),
             boot, uuid);
    if (z->layout == LAYOUT_DATASET)
      flush_file(sr, comp_only);
    if (snapshot_cmd(z, tmp, NULL, 0) == -1)
      return -1;
    snprintf(tname, sizeof tname, "%s", tmp);
  }

  struct changes ch = {.cb = cb, .opaque = opaque};
  r = send_changes(z, obj, fname, tname, &ch);
  if (r == -1 && ch.empty && tsnap) {
    /* to may be the older of the two: the changes are the same set */
    struct zl_error_saved saved;
    zl_error_save(&saved);
    zstream_free(ch.parser);
    ch.parser = NULL;
    r = send_changes(z, obj, tname, fname, &ch);
    if (r == -1)
      zl_error_restore(&saved);
  }
  zstream_free(ch.parser);
  if (tmp[0]) {
    struct zl_error_saved saved;
    zl_error_save(&saved);
    if (zfs_destroy_object(z, tmp) == -1)
      zl_warn("cannot remove %s: %s", tmp, zl_error_msg());
    zl_error_restore(&saved);
  }
  return r;
}
