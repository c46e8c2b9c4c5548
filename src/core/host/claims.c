/* claims.c: which nodes have a volume open (Ganeti's open/close), kept in
 * the volume's metadata -- the file SR's sidecar on the shared directory,
 * the ZFS volume's user properties -- so that every node sharing the
 * storage sees them:
 *
 *   "opened": {"<node>": "exclusive" | "shared", ...}
 *
 * An exclusive open excludes every other node; shared opens (the two ends
 * of a live migration) exclude exclusive ones elsewhere.  Each change is a
 * read-modify-write under the volume lock (zl_vol_update); on a file SR
 * that lock is an flock on the shared directory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/model/model.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

#define OPENED "opened"

const char *
zl_node_name(void)
{
  static char name[256];
  const char *env = getenv("ZFS_LIVE_NODE");

  if (env && *env)
    return env;
  if (!name[0] && gethostname(name, sizeof name - 1) == -1)
    snprintf(name, sizeof name, "unknown-node");
  return name;
}

struct claim {
  const char *node;
  bool exclusive;
  bool drop;     /* unclaim */
  bool takeover; /* drop the others */
  int dropped;
};

static int
apply(json_t *meta, void *arg)
{
  struct claim *c = arg;
  json_t *opened = json_object_get(meta, OPENED);
  const char *n;
  json_t *mode;
  void *tmp;

  if (c->drop) {
    if (!json_object_get(opened, c->node))
      return 0;
    json_object_del(opened, c->node);
    if (json_object_size(opened) == 0)
      json_object_del(meta, OPENED);
    return 1;
  }
  if (!json_is_object(opened)) {
    opened = json_object();
    json_object_set_new(meta, OPENED, opened);
  }
  json_object_foreach_safe(opened, tmp, n, mode)
  {
    if (strcmp(n, c->node) == 0)
      continue;
    if (c->takeover) {
      zl_warn("volume %s: open on node %s taken over by %s",
              zl_meta_str(meta, "key") ? zl_meta_str(meta, "key") : "?", n, c->node);
      json_object_del(opened, n);
      c->dropped++;
      continue;
    }
    bool other_excl =
        strcmp(json_string_value(mode) ? json_string_value(mode) : "", "shared") != 0;
    if (c->exclusive || other_excl) {
      zl_error_kind(ZL_ERR_BUSY, EBUSY,
                    "volume %s is open %s on node %s; close it there first (or, if %s "
                    "is down, take it over: zfs-live vol takeover)",
                    zl_meta_str(meta, "key") ? zl_meta_str(meta, "key") : "?",
                    other_excl ? "exclusively" : "shared", n, n);
      zl_error_subject(n);
      return -1;
    }
  }
  const char *want = c->exclusive ? "exclusive" : "shared";
  const char *have = json_string_value(json_object_get(opened, c->node));
  if (have && strcmp(have, want) == 0 && !c->dropped)
    return 0;
  json_object_set_new(opened, c->node, json_string(want));
  return 1;
}

int
zl_vol_claim(struct zl_sr *sr, const char *key, const char *node, bool exclusive)
{
  struct claim c = {.node = node, .exclusive = exclusive};
  return zl_vol_update(sr, key, apply, &c);
}

int
zl_vol_unclaim(struct zl_sr *sr, const char *key, const char *node)
{
  struct claim c = {.node = node, .drop = true};
  int r = zl_vol_update(sr, key, apply, &c);
  if (r == -1 && zl_error_get_kind() == ZL_ERR_NO_VOLUME) {
    zl_error_clear();
    return 0;
  }
  return r;
}

int
zl_vol_takeover(struct zl_sr *sr, const char *key, const char *node, int *dropped)
{
  struct claim c = {.node = node, .exclusive = true, .takeover = true};
  int r = zl_vol_update(sr, key, apply, &c);
  if (dropped)
    *dropped = c.dropped;
  return r;
}

int
zl_vol_claimed_elsewhere(struct zl_sr *sr, const char *key, const char *node, char *other,
                         size_t len)
{
  CLEANUP_JSON json_t *meta = NULL;
  const char *n;
  json_t *mode;

  if (zl_vol_lookup(sr, key, &meta, NULL) == -1)
    return -1;
  json_object_foreach(json_object_get(meta, OPENED), n, mode)
  {
    if (strcmp(n, node) != 0) {
      snprintf(other, len, "%s", n);
      return 1;
    }
  }
  return 0;
}
