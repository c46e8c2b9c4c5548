/* bookmark.c: snapshots reduced to their CBT metadata by data_destroy
 * where the pool has bookmarks (OpenZFS >= 0.6.4, feature `bookmarks`;
 * reference zfs.md §5): their records and bookmarks.  The data_destroy
 * itself is in datadestroy.c.
 *
 * A snapshot reduced to its CBT metadata keeps, of ZFS, only a bookmark
 * <sr>/<vol>#zl-<key> (the incremental source of `zfs send -i`: changed
 * blocks are still answered), and its metadata moves to a record in the
 * SR's private area, bookmarked/<key>.json:
 *   {"meta": <the core's object>, "parent": "<vol>", "size": <bytes>}
 * The record is authoritative for such a key: vol_get, vol_list,
 * vol_set_meta and vol_destroy read it when the snapshot is gone, and it
 * names the bookmark (the snapshot index is a cache a reboot drops).
 *
 * Order (each step re-runnable; the core marks the metadata first and
 * re-runs data_destroy after a crash): record, bookmark, destroy the
 * snapshot.  A crash between leaves the snapshot whole (its metadata says
 * data_destroyed): lookups find it first, and the re-run finishes.
 *
 * Without bookmarks (zfs-fuse, pool v23) nothing is done: the snapshot
 * keeps its data, so that vol_changes can still send from it (doctor says
 * so). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/zfs/zfs.h"
#include "util/beneath.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fault.h"
#include "util/keys.h"
#include "util/json.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

#define BM_DIR "bookmarked"

void
zb_bookmark_name(const char *snap, char *out, size_t len)
{
  size_t at = strcspn(snap, "@");
  snprintf(out, len, "%.*s#" ZB_BOOKMARK_PREFIX "%s", (int)at, snap,
           snap[at] ? snap + at + 1 : "");
}

int
zb_data_destroy_plan(const struct zb_caps *c, const char *snap, struct zargv *cmds)
{
  char bm[700];

  if (!c->bookmarks)
    return 0; /* the snapshot stays: vol_changes sends from it */
  zb_bookmark_name(snap, bm, sizeof bm);
  zcmd_bookmark(&cmds[0], c, snap, bm);
  zcmd_destroy(&cmds[1], c, snap);
  return 2;
}

static int
bm_dir(struct zl_store *sr, bool create)
{
  return zl_dir_beneath(sr->privfd, BM_DIR, create);
}

static void
rec_name(char *out, size_t len, const char *key)
{
  snprintf(out, len, "%s.json", key);
}

/* The record of key, or NULL (errno ENOENT when there is none). */
static json_t *
rec_load(struct zl_store *sr, const char *key)
{
  char name[300];
  CLEANUP_CLOSE int dfd = bm_dir(sr, false);

  if (dfd == -1)
    return NULL;
  rec_name(name, sizeof name, key);
  json_t *rec = zl_json_load_at(dfd, name, ZL_META_MAX);
  if (rec && (!json_is_object(json_object_get(rec, "meta")) ||
              !json_is_string(json_object_get(rec, "parent")))) {
    json_decref(rec);
    zl_error_kind(ZL_ERR_DAMAGED, EINVAL, "volume %s: its CBT metadata record is damaged",
                  key);
    return NULL;
  }
  return rec;
}

static int
rec_save(struct zl_store *sr, const char *key, const json_t *rec)
{
  char name[300];
  CLEANUP_CLOSE int dfd = bm_dir(sr, true);

  if (dfd == -1)
    return -1;
  rec_name(name, sizeof name, key);
  return zl_json_save_at(dfd, name, rec, true);
}

bool
zb_bm_exists(struct zl_store *sr, const char *key)
{
  char name[300];
  CLEANUP_CLOSE int dfd = bm_dir(sr, false);

  rec_name(name, sizeof name, key);
  bool r = dfd >= 0 && faccessat(dfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
  zl_error_clear();
  return r;
}

int
zb_bm_source(struct zl_store *sr, const char *key, char *out, size_t len)
{
  struct zb_sr *z = zb_of(sr);
  CLEANUP_JSON json_t *rec = rec_load(sr, key);

  if (!rec)
    return -1;
  int n = snprintf(out, len, "%s/%s#" ZB_BOOKMARK_PREFIX "%s", z->dataset,
                   json_string_value(json_object_get(rec, "parent")), key);
  if (n < 0 || (size_t)n >= len) {
    zl_error(ENAMETOOLONG, "volume %s: its bookmark name is too long", key);
    return -1;
  }
  return 0;
}

int
zb_bm_get(struct zl_store *sr, const char *key, json_t **meta, struct zl_vol_info *info)
{
  json_t *rec = rec_load(sr, key);

  if (!rec)
    return -1;
  if (info) {
    info->virtual_size = json_integer_value(json_object_get(rec, "size"));
    info->physical_utilisation = 0; /* a bookmark holds no data */
  }
  if (meta)
    *meta = json_deep_copy(json_object_get(rec, "meta"));
  json_decref(rec);
  if (meta && !*meta) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  return 0;
}

int
zb_bm_list(struct zl_store *sr, const json_t *seen, zl_vol_cb cb, void *opaque)
{
  CLEANUP_CLOSE int dfd = bm_dir(sr, false);
  CLEANUP_DIR DIR *d = NULL;
  struct dirent *de;

  if (dfd == -1) {
    zl_error_clear();
    return 0; /* none yet */
  }
  int fd = dup(dfd);
  if (fd == -1 || !(d = fdopendir(fd))) {
    if (fd >= 0)
      close(fd);
    zl_error_sys(errno, "SR %s: cannot list %s", sr->key, BM_DIR);
    return -1;
  }
  while ((de = readdir(d))) {
    char key[300];
    size_t n = strlen(de->d_name);
    if (n <= 5 || n >= sizeof key || strcmp(de->d_name + n - 5, ".json") != 0)
      continue;
    snprintf(key, sizeof key, "%.*s", (int)(n - 5), de->d_name);
    if (!zl_key_valid(key) || json_object_get(seen, key))
      continue; /* the snapshot is still there (listed from ZFS) */
    json_t *meta;
    struct zl_vol_info info;
    if (zb_bm_get(sr, key, &meta, &info) == -1) {
      zl_warn("SR %s: %s", sr->key, zl_error_msg());
      zl_error_clear();
      continue;
    }
    int r = cb(opaque, key, meta, &info);
    json_decref(meta);
    if (r == -1)
      return -1;
  }
  return 0;
}

int
zb_bm_set_meta(struct zl_store *sr, const char *key, const json_t *meta)
{
  CLEANUP_JSON json_t *rec = rec_load(sr, key);

  if (!rec)
    return -1;
  json_object_set_new(rec, "meta", json_deep_copy(meta));
  json_object_del(json_object_get(rec, "meta"), ZL_META_STORAGE);
  return rec_save(sr, key, rec);
}

int
zb_bm_destroy(struct zl_store *sr, const char *key)
{
  char bm[700], name[300];
  struct zargv a;

  if (zb_bm_source(sr, key, bm, sizeof bm) == -1)
    return errno == ENOENT ? 0 : -1;
  zcmd_destroy(&a, &zb_of(sr)->caps, bm);
  int rc = zrun(&a, "destroy the bookmark", NULL);
  za_free(&a);
  if (rc == -1 && errno != ENOENT) /* gone with its volume: fine */
    return -1;
  zl_error_clear();
  zl_fault("zfs-data-destroy", "bookmark-gone");
  CLEANUP_CLOSE int dfd = bm_dir(sr, false);
  rec_name(name, sizeof name, key);
  if (dfd >= 0 && unlinkat(dfd, name, 0) == -1 && errno != ENOENT) {
    zl_error_sys(errno, "volume %s: remove its CBT metadata record", key);
    return -1;
  }
  zl_error_clear();
  return 0;
}

int
zb_bm_record(struct zl_store *sr, const char *key, json_t *meta, const char *parent,
             int64_t size)
{
  json_object_del(meta, ZL_META_STORAGE);
  json_t *rec = json_pack("{s:O, s:s, s:I}", "meta", meta, "parent", parent, "size",
                          (json_int_t)size);
  if (!rec) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  int rc = rec_save(sr, key, rec);
  json_decref(rec);
  return rc;
}
