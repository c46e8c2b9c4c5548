/* place.c: where a ZFS SR is: the configured dataset (device-config:path,
 * EXTP_POOL), its pool, and the SR directly in it (never one found deeper:
 * places nest); SR.attach and SR.probe. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/zfs/zfs.h"
#include "util/beneath.h"
#include "util/cleanup.h"
#include "util/escape.h"
#include "util/rundir.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"
#include "util/uuid.h"

#include "util/banned.h" /* last: after every declaration */

/* <pool>[/<parent>...]: ZFS's component alphabet, no snapshots, no '//'. */
static bool
dataset_name_valid(const char *s)
{
  size_t len = s ? strlen(s) : 0;

  if (len == 0 || len > 200 || s[0] == '/' || s[len - 1] == '/')
    return false;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.' || c == ':' ||
              c == '/';
    if (!ok || (c == '/' && s[i + 1] == '/'))
      return false;
  }
  return !(s[0] >= '0' && s[0] <= '9') || strchr(s, '/'); /* pools start alpha */
}

int
zb_config_path(const json_t *config, const char **path)
{
  *path = json_string_value(json_object_get(config, "path"));
  if (!*path) {
    zl_error(EINVAL, "device-config:path is required: <pool>[/<parent dataset>]");
    return -1;
  }
  if (!dataset_name_valid(*path)) {
    zl_error(EINVAL, "device-config:path '%s' is not a ZFS pool or dataset name", *path);
    return -1;
  }
  return 0;
}

void
zb_pool_of(const char *path, char *pool, size_t len)
{
  snprintf(pool, len, "%.*s", (int)strcspn(path, "/"), path);
}

/* Is the pool imported?  If not, say whether it could be imported. */
int
zb_check_pool(const char *pool)
{
  struct zargv a;
  struct zl_exec_result r;
  int rc;

  zcmd_pool_list(&a, pool);
  rc = zl_exec(a.v, NULL, &r);
  za_free(&a);
  if (rc == -1)
    return -1;
  rc = r.status;
  zl_exec_result_free(&r);
  if (rc == 0)
    return 0;
  zcmd_pool_importable(&a);
  rc = zl_exec(a.v, NULL, &r);
  za_free(&a);
  char want[300];
  snprintf(want, sizeof want, "pool: %s\n", pool);
  bool importable = rc == 0 && strstr(r.out, want);
  zl_exec_result_free(&r);
  if (importable)
    zl_error_kind(ZL_ERR_NO_SR, ENOENT,
                  "pool %s is not imported; zfs-live never imports pools: run "
                  "`zpool import %s` first",
                  pool, pool);
  else
    zl_error_kind(ZL_ERR_NO_SR, ENOENT, "there is no ZFS pool %s on this host", pool);
  return -1;
}

/* The SR marker of a dataset: set there, not inherited (user properties
 * are inherited by every volume of the SR). */
const char *
zb_sr_marker(const json_t *o)
{
  const char *src = zb_obj_source(o, ZB_SR_PROP);
  return src && strcmp(src, "local") == 0 ? zb_obj_value(o, ZB_SR_PROP) : NULL;
}

/* The datasets at path and one level below it (zfs get -d 1; snapshots
 * included where zfs lists them), as zb_parse_get() gives them.  -1 with
 * errno ENOENT when path does not exist. */
int
zb_place_children(const char *path, json_t **objs)
{
  struct zargv a;
  struct zl_exec_result r;

  *objs = NULL;
  za_init(&a, "zfs");
  za_add(&a, "get");
  za_add(&a, "-Hp");
  za_add(&a, "-d");
  za_add(&a, "1");
  za_add(&a, "-o");
  za_add(&a, "name,property,value,source");
  za_add(&a, ZB_SR_PROP ",mounted,mountpoint");
  za_add(&a, path);
  int rc = zl_exec(a.v, NULL, &r);
  za_free(&a);
  if (rc == -1)
    return -1;
  *objs = zb_parse_get(r.out);
  if (r.status != 0) {
    zl_error(strstr(r.err, "does not exist") ? ENOENT : EIO, "look for SRs in %s: %s",
             path, zl_exec_reason(&r));
    rc = -1;
  }
  zl_exec_result_free(&r);
  if (!*objs) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  return rc;
}

/* The uuid of the SR whose dataset name is, or NULL: an SR of the place
 * path is a dataset directly in it (<path>/<uuid>) marked there.  SRs
 * deeper down belong to other places (<path>/<child>/<uuid> is the SR of
 * the place <path>/<child>), never to this one. */
const char *
zb_direct_sr(const char *path, const char *name, const json_t *o)
{
  size_t n = strlen(path);

  if (strncmp(name, path, n) != 0 || name[n] != '/' || strchr(name + n + 1, '/') ||
      strchr(name, '@'))
    return NULL;
  return zb_sr_marker(o);
}

/* Is path an SR's dataset or inside one?  1 (the SR's dataset into out),
 * 0 no, -1 error. */
int
zb_inside_sr(const struct zb_caps *caps, const char *path, char *out, size_t len)
{
  char copy[512];
  const char *targets[34];
  int nt = 0, found = 0;
  CLEANUP_JSON json_t *up = NULL;

  snprintf(copy, sizeof copy, "%s", path);
  targets[nt++] = path;
  char *anc[33] = {NULL}, *slash;
  while ((slash = strrchr(copy, '/')) && nt < 33) {
    *slash = '\0';
    if (!(anc[nt] = strdup(copy)))
      break;
    targets[nt] = anc[nt];
    nt++;
  }
  targets[nt] = NULL;
  int rc = zget(caps, false, ZB_SR_PROP, targets, &up, "look for SRs above");
  for (int i = 1; i < nt; i++)
    free(anc[i]);
  if (rc == -1 && errno != ENOENT)
    return -1;
  zl_error_clear();
  const char *name;
  json_t *o;
  json_object_foreach(up, name, o)
  {
    if (zb_sr_marker(o) && !found) {
      snprintf(out, len, "%s", name);
      found = 1;
    }
  }
  return found;
}

/* Find the SR dataset config describes, mount it if needed, return its
 * mountpoint.  With sr_uuid (XAPI has it from SR.create on): exactly the
 * dataset <path>/<sr_uuid>.  Without: the one SR directly in path (SR
 * creation never makes a second one there); several (put there by hand)
 * is an error listing them.  Never an SR deeper down: that is another
 * place's. */
int
zb_sr_locate(const json_t *config, char **sr_key)
{
  const char *path, *uuid = json_string_value(json_object_get(config, "sr_uuid"));
  char pool[256], ds[512], several[1024] = "";
  CLEANUP_JSON json_t *objs = NULL;
  const char *name, *found = NULL;
  json_t *o, *fo = NULL;

  if (zb_config_path(config, &path) == -1)
    return -1;
  if (uuid && !zl_uuid_valid(uuid)) {
    zl_error(EINVAL, "device-config:sr_uuid '%s' is not a UUID", uuid);
    return -1;
  }
  zb_pool_of(path, pool, sizeof pool);
  if (zb_check_pool(pool) == -1)
    return -1;
  struct zb_caps c = {.flavour = ZB_FUSE}; /* the most portable command line */
  if (uuid) {
    snprintf(ds, sizeof ds, "%s/%s", path, uuid);
    const char *targets[] = {ds, NULL};
    if (zget(&c, false, ZB_SR_PROP ",mounted,mountpoint", targets, &objs,
             "look for the SR") == -1) {
      zl_error_kind(ZL_ERR_NO_SR, ENOENT, "no SR %s in %s: %s", uuid, path,
                    zl_error_msg());
      return -1;
    }
    fo = json_object_get(objs, ds);
    const char *v = fo ? zb_direct_sr(path, ds, fo) : NULL;
    if (!v || strcmp(v, uuid) != 0) {
      zl_error_kind(ZL_ERR_NO_SR, ENOENT, "no SR %s in %s (%s is not marked as it)", uuid,
                    path, ds);
      return -1;
    }
    found = ds;
  } else {
    if (zb_place_children(path, &objs) == -1) {
      zl_error_kind(ZL_ERR_NO_SR, ENOENT, "no SR in %s: %s", path, zl_error_msg());
      return -1;
    }
    json_object_foreach(objs, name, o)
    {
      const char *v = zb_direct_sr(path, name, o);
      if (!v)
        continue;
      size_t l = strlen(several);
      snprintf(several + l, sizeof several - l, "%s%s", l ? ", " : "", name);
      if (!found)
        found = name, fo = o;
      else
        fo = NULL;
    }
    if (found && !fo) {
      zl_error(EINVAL, "several SRs in %s: %s; give device-config:sr_uuid", path,
               several);
      return -1;
    }
    if (!found) {
      zl_error_kind(ZL_ERR_NO_SR, ENOENT, "no SR in %s", path);
      return -1;
    }
  }
  if (found != ds)
    snprintf(ds, sizeof ds, "%s", found);
  const char *mnt = zb_obj_value(fo, "mountpoint");
  if (!mnt || mnt[0] != '/') {
    zl_error(EINVAL, "SR dataset %s has no mountpoint", ds);
    return -1;
  }
  const char *mounted = zb_obj_value(fo, "mounted");
  if (!mounted || strcmp(mounted, "yes") != 0) {
    struct zargv a;
    zcmd_mount(&a, &c, ds, true);
    int rc = zrun(&a, "mount the SR dataset", NULL);
    za_free(&a);
    if (rc == -1)
      return -1;
  }
  if (!(*sr_key = strdup(mnt))) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  return 0;
}

int
zb_sr_probe(const json_t *config, json_t *results)
{
  const char *path;
  char pool[256];
  CLEANUP_JSON json_t *objs = NULL;
  struct zb_caps c = {.flavour = ZB_FUSE};

  if (zb_config_path(config, &path) == -1)
    return -1;
  zb_pool_of(path, pool, sizeof pool);
  if (zb_check_pool(pool) == -1) {
    /* report, never import */
    json_array_append_new(results,
                          json_pack("{s:{s:s}, s:b, s:s}", "configuration", "path", path,
                                    "can_create", 0, "reason", zl_error_msg()));
    zl_error_clear();
    return 0;
  }
  /* the SRs of this place (directly in it), and whether one can be made */
  char why[600] = "", above[512];
  if (zb_inside_sr(&c, path, above, sizeof above) == 1)
    snprintf(why, sizeof why, "%s is inside the SR %s (nested SRs are refused)", path,
             above);
  zl_error_clear();
  bool exists = zb_place_children(path, &objs) == 0;
  zl_error_clear();
  const char *name;
  json_t *o;
  json_object_foreach(objs, name, o)
  {
    const char *v = zb_direct_sr(path, name, o);
    const char *m = zb_obj_value(o, "mountpoint");
    if (!v)
      continue;
    if (!why[0])
      snprintf(why, sizeof why, "%s holds the SR %s already (one SR per parent dataset)",
               path, name);
    const char *mounted = zb_obj_value(o, "mounted");
    if (m && mounted && strcmp(mounted, "yes") == 0)
      json_array_append_new(results, json_pack("{s:s, s:{s:s}}", "sr_key", m,
                                               "configuration", "path", path));
    else
      json_array_append_new(results,
                            json_pack("{s:{s:s, s:s}, s:b, s:s}", "configuration", "path",
                                      path, "sr_uuid", v, "can_create", 0, "reason",
                                      "an SR is here but not mounted: attach it"));
  }
  json_array_append_new(results,
                        json_pack("{s:{s:s}, s:b, s:s}", "configuration", "path", path,
                                  "can_create", why[0] == 0, "reason",
                                  why[0]   ? why
                                  : exists ? "an SR can be created in this dataset"
                                           : "the dataset will be created"));
  return 0;
}
