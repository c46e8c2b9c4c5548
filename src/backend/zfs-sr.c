/* zfs-sr.c: SRs of the ZFS backend, and its ops table.  See zfs.h for the
 * layout.  Pools belong to the operator: they are never created, imported
 * or exported here. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/zfs.h"
#include "util/beneath.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"
#include "util/uuid.h"

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

static int
config_path(const json_t *config, const char **path)
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

static void
pool_of(const char *path, char *pool, size_t len)
{
  snprintf(pool, len, "%.*s", (int)strcspn(path, "/"), path);
}

/* Is the pool imported?  If not, say whether it could be imported. */
static int
check_pool(const char *pool)
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
static const char *
sr_marker(const json_t *o)
{
  const char *src = zfs_obj_source(o, ZFS_SR_PROP);
  return src && strcmp(src, "local") == 0 ? zfs_obj_value(o, ZFS_SR_PROP) : NULL;
}

/* The datasets at path and one level below it (zfs get -d 1; snapshots
 * included where zfs lists them), as zfs_parse_get() gives them.  -1 with
 * errno ENOENT when path does not exist. */
static int
place_children(const char *path, json_t **objs)
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
  za_add(&a, ZFS_SR_PROP ",mounted,mountpoint");
  za_add(&a, path);
  int rc = zl_exec(a.v, NULL, &r);
  za_free(&a);
  if (rc == -1)
    return -1;
  *objs = zfs_parse_get(r.out);
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
static const char *
direct_sr(const char *path, const char *name, const json_t *o)
{
  size_t n = strlen(path);

  if (strncmp(name, path, n) != 0 || name[n] != '/' || strchr(name + n + 1, '/') ||
      strchr(name, '@'))
    return NULL;
  return sr_marker(o);
}

/* Is path an SR's dataset or inside one?  1 (the SR's dataset into out),
 * 0 no, -1 error. */
static int
inside_sr(const struct zfs_caps *caps, const char *path, char *out, size_t len)
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
  int rc = zget(caps, false, ZFS_SR_PROP, targets, &up, "look for SRs above");
  for (int i = 1; i < nt; i++)
    free(anc[i]);
  if (rc == -1 && errno != ENOENT)
    return -1;
  zl_error_clear();
  const char *name;
  json_t *o;
  json_object_foreach(up, name, o)
  {
    if (sr_marker(o) && !found) {
      snprintf(out, len, "%s", name);
      found = 1;
    }
  }
  return found;
}

static int
save_state(int privfd, const struct zfs_sr *z, const char *identity)
{
  CLEANUP_JSON json_t *s =
      json_pack("{s:i, s:s, s:s, s:s, s:I, s:o, s:s}", "format", 1, "dataset", z->dataset,
                "pool", z->pool, "layout", z->layout == LAYOUT_ZVOL ? "zvol" : "dataset",
                "blocksize", (json_int_t)z->blocksize, "caps", zfs_caps_to_json(&z->caps),
                "identity", identity ? identity : "");
  if (s)
    json_object_set_new(s, "copies", json_integer(z->copies));
  if (!s) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  return zl_json_save_at(privfd, ZFS_STATE, s, true);
}

static const char *const sr_tunables[] = {
    "compression", "copies", "sync", "primarycache", "secondarycache", "logbias", NULL};

static int
zfs_sr_prepare(const char *uuid, json_t *config, char **sr_key)
{
  const char *path, *layout = json_string_value(json_object_get(config, "layout"));
  const char *vbs = json_string_value(json_object_get(config, "volblocksize"));
  char pool[256], ds[512], mnt[512];
  struct zfs_sr z = {0};
  struct zprop props[16];
  const char *copies_default = json_string_value(json_object_get(config, "copies"));
  int n = 0;
  CLEANUP_JSON json_t *objs = NULL;
  CLEANUP_FREE char *identity = NULL;

  if (config_path(config, &path) == -1)
    return -1;
  pool_of(path, pool, sizeof pool);
  if (check_pool(pool) == -1 || zfs_caps_probe(pool, &z.caps) == -1)
    return -1;

  /* layout: what was asked, or zvols where the host has them */
  if (!layout)
    z.layout = z.caps.zvols ? LAYOUT_ZVOL : LAYOUT_DATASET;
  else if (strcmp(layout, "zvol") == 0)
    z.layout = LAYOUT_ZVOL;
  else if (strcmp(layout, "dataset") == 0)
    z.layout = LAYOUT_DATASET;
  else {
    zl_error(EINVAL, "device-config:layout must be zvol or dataset, not '%s'", layout);
    return -1;
  }
  if (z.layout == LAYOUT_ZVOL && !z.caps.zvols) {
    zl_error_kind(
        ZL_ERR_UNSUPPORTED, ENOTSUP,
        "layout=zvol needs zvols (OpenZFS with /dev/zfs); this host runs %s %s: "
        "use layout=dataset",
        z.caps.flavour == ZFS_FUSE ? "zfs-fuse" : "ZFS", z.caps.version);
    return -1;
  }
  z.blocksize = z.caps.default_volblocksize;
  if (vbs && (zfs_tunable_check(&z.caps, "volblocksize", vbs, true) == -1 ||
              zfs_parse_blocksize(vbs, &z.blocksize) == -1))
    return -1;

  /* SR-wide tunables live on the SR dataset; volumes inherit them */
  const char *compression = json_string_value(json_object_get(config, "compression"));
  if (!compression)
    compression = zfs_default_compression(&z.caps);
  if (zfs_tunable_check(&z.caps, "compression", compression, true) == -1)
    return -1;
  props[n++] = (struct zprop){ZFS_SR_PROP, uuid};
  props[n++] = (struct zprop){"compression", compression};
  for (const char *const *t = sr_tunables + 1; *t; t++) {
    const char *v = json_string_value(json_object_get(config, *t));
    if (!v)
      continue;
    if (zfs_tunable_check(&z.caps, *t, v, true) == -1)
      return -1;
    props[n++] = (struct zprop){*t, v};
  }

  /* the place: not inside an SR, no SR directly in it but ours */
  snprintf(ds, sizeof ds, "%s/%s", path, uuid);
  char above[512];
  int in = inside_sr(&z.caps, path, above, sizeof above);
  if (in == -1)
    return -1;
  if (in == 1) {
    zl_error(EINVAL,
             "cannot create an SR in %s: it is inside the SR %s (nested SRs are "
             "refused)",
             path, above);
    return -1;
  }
  if (place_children(path, &objs) == -1) {
    if (errno != ENOENT)
      return -1;
    /* the parent does not exist yet: make it (not mounted) */
    struct zargv a;
    zcmd_create_parent(&a, &z.caps, path);
    int rc = zrun(&a, "create the parent dataset", NULL);
    za_free(&a);
    if (rc == -1)
      return -1;
  }
  const char *name;
  json_t *o;
  json_object_foreach(objs, name, o)
  {
    const char *v = direct_sr(path, name, o);
    if (!v || (strcmp(name, ds) == 0 && strcmp(v, uuid) == 0))
      continue; /* not an SR of this place, or our own half-made SR: carry on */
    zl_error_kind(ZL_ERR_EXISTS, EEXIST,
                  "cannot create an SR in %s: there is already an SR there (it holds "
                  "the SR %s already; one SR per parent dataset: give the new one "
                  "another path, e.g. %s/<name>)",
                  path, name, path);
    return -1;
  }

  snprintf(mnt, sizeof mnt, ZFS_MOUNT_BASE "/%s", uuid);
  if (!json_object_get(objs, ds)) {
    struct zargv a;
    zcmd_create_sr(&a, &z.caps, ds, mnt, props, n);
    int rc = zrun(&a, "create the SR dataset", NULL);
    za_free(&a);
    if (rc == -1)
      return -1;
  }
  CLEANUP_CLOSE int dfd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (dfd == -1) {
    zl_error(errno, "SR dataset %s is not mounted at %s: %s", ds, mnt, strerror(errno));
    return -1;
  }
  CLEANUP_CLOSE int pfd = zl_dir_beneath(dfd, ZL_PRIV_DIR, true);
  if (pfd == -1)
    zl_error_prefix("%s: ", mnt);
  z.dataset = ds;
  z.pool = pool;
  z.copies = copies_default ? atoi(copies_default) : 1;
  identity = zfs_tools_identity();
  if (pfd == -1 || save_state(pfd, &z, identity) == -1)
    return -1;
  json_object_set_new(config, "layout",
                      json_string(z.layout == LAYOUT_ZVOL ? "zvol" : "dataset"));
  if (!(*sr_key = strdup(mnt))) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  return 0;
}

/* Find the SR dataset config describes, mount it if needed, return its
 * mountpoint.  With sr_uuid (XAPI has it from SR.create on): exactly the
 * dataset <path>/<sr_uuid>.  Without: the one SR directly in path (SR
 * creation never makes a second one there); several (put there by hand)
 * is an error listing them.  Never an SR deeper down: that is another
 * place's. */
static int
zfs_sr_locate(const json_t *config, char **sr_key)
{
  const char *path, *uuid = json_string_value(json_object_get(config, "sr_uuid"));
  char pool[256], ds[512], several[1024] = "";
  CLEANUP_JSON json_t *objs = NULL;
  const char *name, *found = NULL;
  json_t *o, *fo = NULL;

  if (config_path(config, &path) == -1)
    return -1;
  if (uuid && !zl_uuid_valid(uuid)) {
    zl_error(EINVAL, "device-config:sr_uuid '%s' is not a UUID", uuid);
    return -1;
  }
  pool_of(path, pool, sizeof pool);
  if (check_pool(pool) == -1)
    return -1;
  struct zfs_caps c = {.flavour = ZFS_FUSE}; /* the most portable command line */
  if (uuid) {
    snprintf(ds, sizeof ds, "%s/%s", path, uuid);
    const char *targets[] = {ds, NULL};
    if (zget(&c, false, ZFS_SR_PROP ",mounted,mountpoint", targets, &objs,
             "look for the SR") == -1) {
      zl_error_kind(ZL_ERR_NO_SR, ENOENT, "no SR %s in %s: %s", uuid, path,
                    zl_error_msg());
      return -1;
    }
    fo = json_object_get(objs, ds);
    const char *v = fo ? direct_sr(path, ds, fo) : NULL;
    if (!v || strcmp(v, uuid) != 0) {
      zl_error_kind(ZL_ERR_NO_SR, ENOENT, "no SR %s in %s (%s is not marked as it)", uuid,
                    path, ds);
      return -1;
    }
    found = ds;
  } else {
    if (place_children(path, &objs) == -1) {
      zl_error_kind(ZL_ERR_NO_SR, ENOENT, "no SR in %s: %s", path, zl_error_msg());
      return -1;
    }
    json_object_foreach(objs, name, o)
    {
      const char *v = direct_sr(path, name, o);
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
  const char *mnt = zfs_obj_value(fo, "mountpoint");
  if (!mnt || mnt[0] != '/') {
    zl_error(EINVAL, "SR dataset %s has no mountpoint", ds);
    return -1;
  }
  const char *mounted = zfs_obj_value(fo, "mounted");
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

static void
zfs_sr_close(struct zl_sr *sr)
{
  struct zfs_sr *z = zfs_of(sr);
  if (!z)
    return;
  free(z->dataset);
  free(z->pool);
  free(z);
  sr->be_data = NULL;
}

/* /run/zfs-live/sr/<key with '/' as "%2F">: made if missing; *fresh tells
 * whether it was (first use since boot). */
static int
open_state_dir(const char *key, bool *fresh)
{
  char name[NAME_MAX + 1], *p = name;
  CLEANUP_CLOSE int sub = zl_run_subdir("sr", true); /* <run>/sr */

  if (sub == -1)
    return -1;
  for (const char *k = key; *k && p < name + sizeof name - 4; k++) {
    if (*k == '/')
      p += sprintf(p, "%%2F");
    else
      *p++ = *k;
  }
  *p = '\0';
  *fresh = mkdirat(sub, name, 0700) == 0;
  int fd = zl_dir_beneath(sub, name, false);
  if (fd == -1)
    zl_error_prefix("%s/sr: ", zl_run_dir());
  return fd;
}

static int
load_state(struct zfs_sr *z, const json_t *st, const char *key)
{
  const char *ds = json_string_value(json_object_get(st, "dataset"));
  const char *pool = json_string_value(json_object_get(st, "pool"));
  const char *layout = json_string_value(json_object_get(st, "layout"));

  if (!ds || !pool || !layout ||
      zfs_caps_from_json(json_object_get(st, "caps"), &z->caps) == -1) {
    zl_error(EINVAL, "SR %s: " ZFS_STATE " is malformed", key);
    return -1;
  }
  free(z->dataset);
  free(z->pool);
  z->dataset = strdup(ds);
  z->pool = strdup(pool);
  z->layout = strcmp(layout, "zvol") == 0 ? LAYOUT_ZVOL : LAYOUT_DATASET;
  z->blocksize = json_integer_value(json_object_get(st, "blocksize"));
  z->copies = (int)json_integer_value(json_object_get(st, "copies"));
  if (z->copies < 1)
    z->copies = 1;
  if (!z->dataset || !z->pool) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  return 0;
}

static int
zfs_sr_open(struct zl_sr *sr)
{
  struct zfs_sr *z = calloc(1, sizeof *z);
  CLEANUP_JSON json_t *st = NULL;
  CLEANUP_FREE char *identity = NULL;
  bool fresh;

  if (!z) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  sr->be_data = z;
  sr->dirfd = open(sr->key, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (sr->dirfd == -1) {
    zl_error(errno, "SR %s: %s", sr->key, strerror(errno));
    return -1;
  }
  sr->privfd =
      openat(sr->dirfd, ZL_PRIV_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (sr->privfd == -1) {
    zl_error(errno, "SR %s: %s", sr->key, strerror(errno));
    return -1;
  }
  /* runtime state is host-local, in /run; its zfs.json is a copy of the
   * one kept on the dataset */
  if ((sr->statefd = open_state_dir(sr->key, &fresh)) == -1)
    return -1;
  st = fresh ? NULL : zl_json_load_at(sr->statefd, ZFS_STATE, 1 << 20);
  if (!st) {
    zl_error_clear();
    if (!(st = zl_json_load_at(sr->privfd, ZFS_STATE, 1 << 20)) ||
        load_state(z, st, sr->key) == -1)
      return -1;
    /* first use since boot: what a reboot cut off is in the ZFS objects */
    if (zfs_boot_recovery(sr) == -1)
      zl_warn("SR %s: recovery after restart incomplete: %s", sr->key, zl_error_msg());
    zl_error_clear();
    if (zl_json_save_at(sr->statefd, ZFS_STATE, st, false) == -1)
      return -1;
  } else if (load_state(z, st, sr->key) == -1) {
    return -1;
  }

  /* the tools changed (upgrade): probe again, keep the decision cached */
  identity = zfs_tools_identity();
  const char *was = json_string_value(json_object_get(st, "identity"));
  if (identity && (!was || strcmp(was, identity) != 0)) {
    struct zfs_caps c;
    if (zfs_caps_probe(z->pool, &c) == 0) {
      zl_info("SR %s: ZFS tools changed; capabilities probed again (%s %s)", sr->key,
              c.flavour == ZFS_FUSE ? "zfs-fuse" : "OpenZFS", c.version);
      z->caps = c;
      if (save_state(sr->privfd, z, identity) == -1 ||
          save_state(sr->statefd, z, identity) == -1)
        zl_warn("SR %s: cannot cache capabilities: %s", sr->key, zl_error_msg());
    }
    zl_error_clear();
  }
  return 0;
}

/* The SR stops existing in one step, the destroy of its dataset (sr.json
 * and the zfs-live:sr mark go with it).  Before that, only what is rebuilt
 * on the next open goes (internal objects, the host-local state, which a
 * first open after a reboot makes again): a crash anywhere before leaves a
 * working SR.  The dataset is destroyed without -r: SR.destroy checked it
 * holds nothing else, and ZFS refuses if something appeared since. */
static int
zfs_sr_remove(struct zl_sr *sr)
{
  struct zfs_sr *z = zfs_of(sr);
  struct zargv a;
  int rc;
  char state[64], real[PATH_MAX];

  if (zfs_sr_clear_internal(sr) == -1)
    return -1;
  snprintf(state, sizeof state, "/proc/self/fd/%d", sr->statefd);
  ssize_t n = readlink(state, real, sizeof real - 1);
  if (n > 0) {
    real[n] = '\0';
    const char *base = strrchr(real, '/');
    CLEANUP_CLOSE int run = zl_run_subdir("sr", false);
    if (run >= 0 && base && zl_remove_tree(run, base + 1) == -1)
      zl_warn("SR %s: %s", sr->key, zl_error_msg());
  }
  zl_error_clear();
  /* nothing of ours may hold the mount (the lock is in the run directory) */
  close(sr->privfd);
  close(sr->dirfd);
  sr->privfd = sr->dirfd = -1;
  zcmd_mount(&a, &z->caps, z->dataset, false);
  rc = zrun(&a, "unmount the SR dataset", NULL);
  za_free(&a);
  if (rc == -1)
    return -1;
  za_init(&a, "zfs");
  za_add(&a, "destroy");
  za_add(&a, z->dataset);
  rc = zrun(&a, "destroy the SR dataset", NULL);
  za_free(&a);
  if (rc == -1) {
    /* still an SR: mount it back for the next call */
    struct zargv m;
    zcmd_mount(&m, &z->caps, z->dataset, true);
    struct zl_error_saved saved;
    zl_error_save(&saved);
    zrun(&m, "mount the SR dataset", NULL);
    za_free(&m);
    zl_error_restore(&saved);
    return -1;
  }
  zl_fault("sr-destroy", "unmarked");
  rmdir(sr->key);
  return 0;
}

static int
zfs_sr_space(struct zl_sr *sr, int64_t *total, int64_t *free_)
{
  struct zfs_sr *z = zfs_of(sr);
  CLEANUP_JSON json_t *objs = NULL;
  const char *targets[] = {z->dataset, NULL};

  if (zget(&z->caps, false, "used,available,quota", targets, &objs, "SR space") == -1)
    return -1;
  json_t *o = json_object_get(objs, z->dataset);
  const char *u = zfs_obj_value(o, "used"), *av = zfs_obj_value(o, "available");
  const char *q = zfs_obj_value(o, "quota");
  if (!u || !av) {
    zl_error(EIO, "SR %s: zfs did not report used/available", sr->key);
    return -1;
  }
  int64_t used = strtoll(u, NULL, 10), avail = strtoll(av, NULL, 10);
  int64_t quota = q ? strtoll(q, NULL, 10) : 0;
  *total = quota > 0 ? quota : used + avail;
  *free_ = avail;
  return 0;
}

static int
zfs_sr_probe(const json_t *config, json_t *results)
{
  const char *path;
  char pool[256];
  CLEANUP_JSON json_t *objs = NULL;
  struct zfs_caps c = {.flavour = ZFS_FUSE};

  if (config_path(config, &path) == -1)
    return -1;
  pool_of(path, pool, sizeof pool);
  if (check_pool(pool) == -1) {
    /* report, never import */
    json_array_append_new(results,
                          json_pack("{s:{s:s}, s:b, s:s}", "configuration", "path", path,
                                    "can_create", 0, "reason", zl_error_msg()));
    zl_error_clear();
    return 0;
  }
  /* the SRs of this place (directly in it), and whether one can be made */
  char why[600] = "", above[512];
  if (inside_sr(&c, path, above, sizeof above) == 1)
    snprintf(why, sizeof why, "%s is inside the SR %s (nested SRs are refused)", path,
             above);
  zl_error_clear();
  bool exists = place_children(path, &objs) == 0;
  zl_error_clear();
  const char *name;
  json_t *o;
  json_object_foreach(objs, name, o)
  {
    const char *v = direct_sr(path, name, o);
    const char *m = zfs_obj_value(o, "mountpoint");
    if (!v)
      continue;
    if (!why[0])
      snprintf(why, sizeof why, "%s holds the SR %s already (one SR per parent dataset)",
               path, name);
    const char *mounted = zfs_obj_value(o, "mounted");
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

static char *
zfs_sr_summary(struct zl_sr *sr)
{
  struct zfs_sr *z = zfs_of(sr);
  const struct zfs_caps *c = &z->caps;
  char *out = NULL;

  if (asprintf(&out,
               "zfs=%s-%s pool=%s pool_version=%d layout=%s blocksize=%lld lz4=%s "
               "zstd=%s lzc=%s",
               c->flavour == ZFS_FUSE ? "zfs-fuse" : "openzfs", c->version, z->pool,
               c->pool_version, z->layout == LAYOUT_ZVOL ? "zvol" : "dataset",
               (long long)z->blocksize, c->lz4 ? "yes" : "no", c->zstd ? "yes" : "no",
               zfs_lzc_available() ? "yes" : "no") < 0)
    return NULL;
  return out;
}

static unsigned
zfs_caps_bits(struct zl_sr *sr)
{
  (void)sr;
  return ZL_CAP_REFLINK | ZL_CAP_THICK | ZL_CAP_CLONES_PIN | ZL_CAP_SPARSE |
         ZL_CAP_CHANGES_ALWAYS;
}

static json_t *
zfs_config_help(void)
{
  return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "path",
                   "<pool>[/<parent dataset>]: where the SR's dataset is made (the pool "
                   "must be imported)",
                   "layout",
                   "zvol (a raw zvol per volume; OpenZFS) or dataset (a "
                   "filesystem per volume holding one raw file); default: zvol where "
                   "the host has zvols",
                   "provisioning", "thin (sparse, the default) or thick (refreservation)",
                   "compression", "SR default; lz4 where available, else on", "copies",
                   "SR default: 1, 2 or 3", "sync",
                   "SR default: standard, always or disabled (OpenZFS)", "primarycache",
                   "SR default: all, none or metadata", "secondarycache",
                   "SR default: all, none or metadata", "logbias",
                   "SR default: latency or throughput", "volblocksize",
                   "block size of new volumes (power of two, 512 to 128K or 1M)");
}

static json_t *
zfs_features(void)
{
  return json_pack("[s, s]", "THIN_PROVISIONING", "LARGE_VDI");
}

/* What each capability decides, for the operator. */
static const struct {
  const char *name, *use;
} cap_rows[] = {
    {"zvols", "layout=zvol (the default layout when available)"},
    {"list_p", "zfs list -p (exact numbers; zfs get -Hp is used either way)"},
    {"get_t", "zfs get -t (list only datasets, volumes, snapshots)"},
    {"json", "zfs ... -j JSON output (2.3+; not needed)"},
    {"send_c", "zfs send -c (compressed streams for copies and CBT)"},
    {"send_L", "zfs send -L (large blocks)"},
    {"recv_s", "zfs receive -s (resumable copies)"},
    {"rename_u", "zfs rename -u (rename without remount)"},
    {"create_u", "zfs create -u (create without mounting)"},
    {"snapshot_multi", "several snapshots in one command"},
    {"set_multi", "several properties in one zfs set"},
    {"sync_prop", "the sync tunable"},
    {"snapdev", "snapdev=visible (snapshot devices)"},
    {"refres_auto", "refreservation=auto (thick clones)"},
    {"dot_zfs", ".zfs/snapshot (read snapshots in place; else a read clone)"},
    {"bookmarks", "zfs bookmark (CBT baselines without pinning space)"},
    {"lz4", "compression=lz4 (the default; else on = lzjb)"},
    {"zstd", "compression=zstd"},
    {"large_blocks", "block sizes above 128K"},
    {"block_cloning", "block cloning of files (dataset layout copies)"},
};

static json_t *
zfs_host_report(const char *pool)
{
  struct zfs_caps c;
  json_t *caps, *rows = json_array();

  if (zfs_caps_probe(pool, &c) == -1) {
    if (errno == ENOENT) /* no zfs at all on this host */
      return json_pack("{s:b, s:s}", "present", 0, "reason", zl_error_msg());
    return json_pack("{s:b, s:s}", "present", 0, "reason", zl_error_msg());
  }
  caps = zfs_caps_to_json(&c);
  for (size_t i = 0; i < sizeof cap_rows / sizeof cap_rows[0]; i++)
    json_array_append_new(
        rows, json_pack("{s:s, s:O, s:s}", "capability", cap_rows[i].name, "value",
                        json_object_get(caps, cap_rows[i].name), "use", cap_rows[i].use));
  json_t *r = json_pack("{s:b, s:s, s:s, s:i, s:I, s:s, s:b, s:o, s:o}", "present", 1,
                        "flavour", c.flavour == ZFS_FUSE ? "zfs-fuse" : "openzfs",
                        "version", c.version, "pool_version", c.pool_version,
                        "default_volblocksize", (json_int_t)c.default_volblocksize,
                        "default_compression", zfs_default_compression(&c), "lzc",
                        zfs_lzc_available(), "capabilities", rows, "raw", caps);
  if (pool)
    json_object_set_new(r, "pool", json_string(pool));
  return r;
}

const struct zl_backend zl_backend_zfs = {
    .name = "zfs",
    .sr_type = "zfs-live",
    .title = "zfs-live ZFS SR",
    .description = "VM disks as ZFS zvols (or datasets holding one raw file where zvols "
                   "are unavailable); instant ZFS snapshots and clones, per-disk "
                   "compression and tuning, thin or thick",
    .size_granularity = 1 << 20,
    .config_help = zfs_config_help,
    .features = zfs_features,
    .caps = zfs_caps_bits,
    .vol_changes = zfs_vol_changes,
    .sr_key_valid = zl_path_key_valid,
    .sr_prepare = zfs_sr_prepare,
    .sr_locate = zfs_sr_locate,
    .sr_open = zfs_sr_open,
    .sr_close = zfs_sr_close,
    .sr_remove = zfs_sr_remove,
    .sr_foreign = zfs_sr_foreign,
    .sr_space = zfs_sr_space,
    .sr_probe = zfs_sr_probe,
    .sr_summary = zfs_sr_summary,
    .vol_list = zfs_vol_list,
    .vol_get = zfs_vol_get,
    .vol_create = zfs_vol_create,
    .vol_copy = zfs_vol_copy,
    .vol_discard = zfs_vol_discard,
    .vol_destroy = zfs_vol_destroy,
    .vol_resize = zfs_vol_resize,
    .vol_revert = zfs_vol_revert,
    .vol_set_meta = zfs_vol_set_meta,
    .vol_open = zfs_vol_open,
    .vol_dependents = zfs_vol_dependents,
    .vol_tune = zfs_vol_tune,
    .host_report = zfs_host_report,
    .vol_device = zfs_vol_device,
    .vol_adopt = zfs_vol_adopt,
    .vol_adopt_recover = zfs_vol_adopt_recover,
};
