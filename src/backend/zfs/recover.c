/* recover.c: the ZFS backend's own leftovers: its internal objects
 * cleared, and what a reboot cut off (orphaned origins and read clones, a
 * revert half done) undone or finished. */
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

int
zb_sr_clear_internal(struct zl_store *sr)
{
  struct zb_sr *z = zb_of(sr);
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
      if (strncmp(rel, ZB_INTERNAL, strlen(ZB_INTERNAL)) != 0 &&
          !(at && strncmp(at + 1, ZB_INTERNAL, strlen(ZB_INTERNAL)) == 0))
        continue;
      if (zb_destroy_object(z, n) == -1)
        zl_warn("SR %s: cannot remove %s: %s", sr->key, n, zl_error_msg());
    }
  }
  zl_error_clear();
  return 0;
}

int
zb_boot_recovery(struct zl_store *sr)
{
  struct zb_sr *z = zb_of(sr);
  CLEANUP_JSON json_t *objs = NULL;
  const char *targets[] = {z->dataset, NULL};
  const char *n;
  json_t *o;
  size_t dl = strlen(z->dataset);

  if (zget(&z->caps, true, "type,origin," ZB_REVERT_OLD, targets, &objs, "recovery") ==
      -1)
    return -1;
  /* the snapshot index, first: the rest looks snapshots up through it */
  json_object_foreach(objs, n, o)
  {
    const char *at = strchr(n, '@');
    if (at && strncmp(n, z->dataset, dl) == 0 && n[dl] == '/' &&
        strncmp(at + 1, ZB_INTERNAL, strlen(ZB_INTERNAL)) != 0) {
      char parent[256];
      snprintf(parent, sizeof parent, "%.*s", (int)(at - n - dl - 1), n + dl + 1);
      zb_index_write(sr, at + 1, parent);
    }
  }
  json_object_foreach(objs, n, o)
  {
    if (strncmp(n, z->dataset, dl) != 0 || n[dl] != '/')
      continue;
    const char *rel = n + dl + 1, *at = strchr(rel, '@');
    char other[700];
    if (at && strncmp(at + 1, ZB_ORIGIN_PREFIX, strlen(ZB_ORIGIN_PREFIX)) == 0) {
      /* the origin of a clone of a writable volume: orphaned if the clone
       * is gone (a destroy cut off between its two steps) */
      snprintf(other, sizeof other, "%s/%s", z->dataset,
               at + 1 + strlen(ZB_ORIGIN_PREFIX));
      if (!json_object_get(objs, other)) {
        zl_info("recovery: removing orphaned %s", n);
        zb_destroy_object(z, n);
      }
    } else if (!at && strncmp(rel, ZB_RO_PREFIX, strlen(ZB_RO_PREFIX)) == 0) {
      const char *org = zb_obj_value(o, "origin");
      if (!org || !json_object_get(objs, org)) {
        zl_info("recovery: removing orphaned %s", n);
        zb_destroy_object(z, n);
      }
    } else if (!at && strncmp(rel, ZB_RV_PREFIX, strlen(ZB_RV_PREFIX)) == 0) {
      /* a revert cut off: undo it if the volume is still there, else
       * finish it (the clone says where the old dataset went) */
      const char *key = rel + strlen(ZB_RV_PREFIX);
      const char *org = zb_obj_value(o, "origin");
      const char *snap = org ? strchr(org, '@') : NULL;
      snprintf(other, sizeof other, "%s/%s", z->dataset, key);
      if (json_object_get(objs, other) || !snap) {
        zl_info("recovery: undoing the revert of %s that a restart cut off", key);
        zb_destroy_object(z, n);
      } else {
        zl_info("recovery: finishing the revert of %s that a restart cut off", key);
        if (zb_vol_revert(sr, key, snap + 1, false) == -1)
          zl_warn("recovery: revert of %s: %s", key, zl_error_msg());
      }
    }
  }
  zl_error_clear();
  return 0;
}
