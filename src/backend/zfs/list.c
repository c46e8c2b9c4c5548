/* list.c: what the SR dataset holds, read by one `zfs get`: volumes (with
 * their metadata, readable or not, and the storage facts), and what is
 * neither a volume nor an internal object (SR.destroy refuses those). */
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

static int64_t
num(const json_t *o, const char *prop)
{
  const char *v = zb_obj_value(o, prop);
  return v ? strtoll(v, NULL, 10) : 0;
}

/* Set on this object (or received with it by zfs receive -p), not
 * inherited from a parent. */
static bool
own_value(const json_t *o, const char *prop)
{
  const char *src = zb_obj_source(o, prop);
  return src && (strcmp(src, "local") == 0 || strcmp(src, "received") == 0);
}

/* Build meta (with the storage facts) and info for one object.  Returns 0,
 * 1 if the object is not a committed volume of ours (skip it), -1 on error. */
int
zb_describe(struct zl_store *sr, const char *name, const json_t *o, json_t **metap,
            struct zl_vol_info *info)
{
  struct zb_sr *z = zb_of(sr);
  const char *rel = zb_rel_name(z, name);
  const char *type = zb_obj_value(o, "type");
  const char *at;

  *metap = NULL;
  if (!rel || !type || strncmp(rel, ZB_INTERNAL, strlen(ZB_INTERNAL)) == 0)
    return 1;
  at = strchr(rel, '@');
  json_t *meta = zb_meta_decode(o, name);
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
  if (strcmp(type, "volume") == 0 || (snap && zb_obj_value(o, "volsize"))) {
    info->virtual_size = num(o, "volsize");
  } else if (snap) {
    json_t *s = json_object_get(meta, "size");
    info->virtual_size = json_is_integer(s) ? json_integer_value(s) : 0;
  } else if (zb_obj_value(o, ZB_SIZE_PROP) && own_value(o, ZB_SIZE_PROP)) {
    info->virtual_size = num(o, ZB_SIZE_PROP);
  } else if (json_object_get(meta, ZL_META_BROKEN)) {
    info->virtual_size = 0; /* unknown: its size was in what cannot be read */
  } else {
    json_decref(meta); /* not made by this version's create */
    return 1;
  }
  static const char *const tun[] = {"compression",    "copies",  "sync", "primarycache",
                                    "secondarycache", "logbias", NULL};
  json_t *t = json_object();
  for (const char *const *p = tun; *p; p++) {
    const char *v = zb_obj_value(o, *p), *src = zb_obj_source(o, *p);
    if (v)
      json_object_set_new(t, *p,
                          json_pack("{s:s, s:s}", "value", v, "source",
                                    src && strncmp(src, "inherited", 9) == 0
                                        ? "inherited"
                                        : (src ? src : "-")));
  }
  const char *bs =
      zb_obj_value(o, strcmp(type, "volume") == 0 ? "volblocksize" : "recordsize");
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
zb_vol_list(struct zl_store *sr, zl_vol_cb cb, void *opaque)
{
  struct zb_sr *z = zb_of(sr);
  CLEANUP_JSON json_t *objs = NULL;
  const char *targets[] = {z->dataset, NULL};
  const char *name;
  json_t *o;

  CLEANUP_JSON json_t *seen = json_object();
  if (!seen) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  if (zget(&z->caps, true, zb_props_to_get(z), targets, &objs, "list the SR") == -1)
    return -1;
  json_object_foreach(objs, name, o)
  {
    json_t *meta;
    struct zl_vol_info info;
    const char *at = strchr(name, '@');
    if (at && !strncmp(at + 1, ZB_CBT_PREFIX, strlen(ZB_CBT_PREFIX)) &&
        zb_cbt_snapshot_stale(at + 1)) {
      /* left by a list_changed_blocks that died: nothing else removes it */
      if (zb_destroy_object(z, name) == -1)
        zl_warn("SR %s: cannot remove %s: %s", sr->key, name, zl_error_msg());
      zl_error_clear();
      continue;
    }
    int r = zb_describe(sr, name, o, &meta, &info);
    if (r == -1)
      return -1;
    if (r == 1)
      continue;
    const char *key = json_string_value(json_object_get(meta, "key"));
    json_object_set_new(seen, key, json_true());
    r = cb(opaque, key, meta, &info);
    json_decref(meta);
    if (r == -1)
      return -1;
  }
  return zb_bm_list(sr, seen, cb, opaque); /* snapshots whose data was destroyed */
}

static bool
internal_name(const char *rel)
{
  const char *at = strchr(rel, '@');
  const char *last = at ? at + 1 : rel;
  return strncmp(rel, ZB_INTERNAL, strlen(ZB_INTERNAL)) == 0 ||
         strncmp(last, ZB_INTERNAL, strlen(ZB_INTERNAL)) == 0;
}

/* Files in the SR dataset's directory: its private area and the mount
 * points of its volumes (empty directories where they are not mounted)
 * belong to it; anything else does not. */
static int
foreign_files(struct zl_store *sr, const json_t *objs, zl_foreign_cb cb, void *opaque)
{
  struct zb_sr *z = zb_of(sr);
  CLEANUP_DIR DIR *d = NULL;
  struct dirent *de;
  struct stat st;
  int fd = openat(sr->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  if (fd == -1 || !(d = fdopendir(fd))) {
    if (fd >= 0)
      close(fd);
    zl_error_sys(errno, "SR %s: cannot list", sr->key);
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
zb_sr_foreign(struct zl_store *sr, zl_foreign_cb cb, void *opaque)
{
  struct zb_sr *z = zb_of(sr);
  CLEANUP_JSON json_t *objs = NULL;
  const char *targets[] = {z->dataset, NULL};
  const char *name;
  json_t *o;

  if (zget(&z->caps, true, zb_props_to_get(z), targets, &objs, "list the SR") == -1)
    return -1;
  json_object_foreach(objs, name, o)
  {
    const char *rel = zb_rel_name(z, name);
    json_t *meta = NULL;
    struct zl_vol_info info;
    if (strcmp(name, z->dataset) == 0 || (rel && internal_name(rel)))
      continue; /* the SR itself; internal objects go with it */
    int r = rel ? zb_describe(sr, name, o, &meta, &info) : 1;
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
find_snapshot(struct zl_store *sr, const char *key, json_t **objp, char *name, size_t len)
{
  struct zb_sr *z = zb_of(sr);
  CLEANUP_JSON json_t *objs = NULL;
  const char *targets[] = {z->dataset, NULL};
  const char *n;
  json_t *o;

  if (zget(&z->caps, true, zb_props_to_get(z), targets, &objs, "look for a snapshot") ==
      -1)
    return -1;
  json_object_foreach(objs, n, o)
  {
    const char *at = strchr(n, '@');
    if (at && strcmp(at + 1, key) == 0) {
      const char *rel = zb_rel_name(z, n);
      char parent[256];
      snprintf(parent, sizeof parent, "%.*s", rel ? (int)(at - rel) : 0, rel ? rel : "");
      zb_index_write(sr, key, parent); /* repair the cache */
      snprintf(name, len, "%s", n);
      *objp = json_incref(o);
      return 0;
    }
  }
  zl_error(ENOENT, "no snapshot %s in %s", key, z->dataset);
  return -1;
}

int
zb_vol_get(struct zl_store *sr, const char *key, json_t **metap,
           struct zl_vol_info *infop)
{
  struct zb_sr *z = zb_of(sr);
  char name[600];
  bool snap;
  CLEANUP_JSON json_t *objs = NULL;
  CLEANUP_JSON json_t *o = NULL;
  struct zl_vol_info info;
  json_t *meta;

  if (zb_name_of(sr, key, name, sizeof name, &snap) == -1)

    return -1;
  const char *targets[] = {name, NULL};
  if (zget(&z->caps, false, zb_props_to_get(z), targets, &objs, "stat") == 0) {
    o = json_incref(json_object_get(objs, name));
  } else if (errno != ENOENT) {
    return -1;
  } else if (zb_bm_exists(sr, key)) {
    zl_error_clear(); /* its data was destroyed: the record has its metadata */
    return zb_bm_get(sr, key, metap, infop);
  } else if (snap && find_snapshot(sr, key, &o, name, sizeof name) == -1) {
    zb_index_remove(sr, key);
    return -1;
  }
  if (!o) {
    zl_error(ENOENT, "volume %s does not exist", key);
    return -1;
  }
  if (zb_describe(sr, name, o, &meta, &info) != 0) {
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

int
zb_vol_get_many(struct zl_store *sr, size_t n, const char *const *keys, json_t **metas,
                struct zl_vol_info *infos)
{
  struct zb_sr *z = zb_of(sr);
  char names[ZB_GET_MANY][600];
  const char *targets[ZB_GET_MANY + 1];
  CLEANUP_JSON json_t *objs = NULL;
  bool snap;
  size_t i;

  if (n > ZB_GET_MANY) {
    zl_error(E2BIG, "at most %d volumes in one query", ZB_GET_MANY);
    return -1;
  }
  for (i = 0; i < n; i++) {
    if (zb_name_of(sr, keys[i], names[i], sizeof names[i], &snap) == -1)
      return -1;
    targets[i] = names[i];
  }
  targets[n] = NULL;
  if (zget(&z->caps, false, zb_props_to_get(z), targets, &objs, "stat") == -1)
    return -1;
  for (i = 0; i < n; i++) {
    const json_t *o = json_object_get(objs, names[i]);
    if (!o || zb_describe(sr, names[i], o, &metas[i], &infos[i]) != 0) {
      zl_error(ENOENT, "volume %s does not exist (or was never completed)", keys[i]);
      break;
    }
  }
  if (i == n)
    return 0;
  while (i-- > 0) {
    json_decref(metas[i]);
    metas[i] = NULL;
  }
  return -1;
}
