/* datadestroy.c: data_destroy on ZFS (the record, bookmark and destroy
 * steps are told in bookmark.c).  Order: record, bookmark, destroy the
 * snapshot; each step re-runnable (the core marks the metadata first and
 * re-runs data_destroy after a crash).  Without bookmarks nothing is done:
 * the snapshot keeps its data. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "backend/zfs/zfs.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fault.h"
#include "util/json.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

int
zb_vol_data_destroy(struct zl_store *sr, const char *key)
{
  struct zb_sr *z = zb_of(sr);
  char name[600], ro[600], parent[300];
  struct zargv cmds[2];
  bool snap;
  CLEANUP_JSON json_t *objs = NULL;
  json_t *meta = NULL;
  struct zl_vol_info info;

  if (!z->caps.bookmarks) {
    zl_debug("snapshot %s keeps its data: pool %s has no bookmarks", key, z->pool);
    return 0;
  }
  bool recorded = zb_bm_exists(sr, key);
  if (zb_name_of(sr, key, name, sizeof name, &snap) == -1)
    return -1;
  if (!snap && recorded)
    return 0; /* done before (and the index forgot the snapshot) */
  if (!snap) {
    zl_error(EINVAL, "volume %s is not a snapshot", key);
    return -1;
  }
  /* the snapshot itself, not the record vol_get would fall back to */
  const char *targets[] = {name, NULL};
  if (zget(&z->caps, false, zb_props_to_get(z), targets, &objs, "stat") == -1) {
    if (errno == ENOENT && recorded) {
      zl_error_clear();
      return 0; /* the snapshot went after the bookmark: done */
    }
    return -1;
  }
  const json_t *o = json_object_get(objs, name);
  if (!o || zb_describe(sr, name, o, &meta, &info) != 0) {
    zl_error(ENOENT, "snapshot %s does not exist", key);
    return -1;
  }
  /* a snapshot with clones of its own keeps its data (ZFS cannot free it) */
  int deps = zb_vol_dependents(sr, key);
  if (deps != 0) {
    json_decref(meta);
    if (deps > 0)
      zl_info("snapshot %s keeps its data: %d clone(s) depend on it", key, deps);
    return deps > 0 ? 0 : -1;
  }
  const char *rel = zb_rel_name(z, name);
  snprintf(parent, sizeof parent, "%.*s", rel ? (int)strcspn(rel, "@") : 0,
           rel ? rel : "");
  int rc = zb_bm_record(sr, key, meta, parent, info.virtual_size);
  json_decref(meta);
  if (rc == -1)
    return -1;
  zl_fault("zfs-data-destroy", "recorded");
  /* its read clone (zvol layout) would pin it */
  snprintf(ro, sizeof ro, "%s/" ZB_RO_PREFIX "%s", z->dataset, key);
  if (zb_destroy_object(z, ro) == -1)
    return -1;
  int n = zb_data_destroy_plan(&z->caps, name, cmds);
  rc = 0;
  for (int i = 0; i < n; i++) {
    if (rc == 0) {
      rc = zrun(&cmds[i], i == 0 ? "bookmark" : "destroy the snapshot", NULL);
      if (rc == -1 && ((i == 0 && errno == EEXIST) || (i == 1 && errno == ENOENT))) {
        zl_error_clear(); /* done before a crash */
        rc = 0;
      }
      if (rc == 0 && i == 0)
        zl_fault("zfs-data-destroy", "bookmarked");
    }
    za_free(&cmds[i]);
  }
  if (rc == 0)
    zl_info("snapshot %s: data freed, its changes kept by bookmark %s#" ZB_BOOKMARK_PREFIX
            "%s",
            key, parent, key);
  return rc;
}
