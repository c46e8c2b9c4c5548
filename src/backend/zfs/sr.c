/* sr.c: SRs of the ZFS backend, and its ops table.  See zfs.h for the
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

static int
save_state(int privfd, const struct zb_sr *z, const char *identity)
{
  CLEANUP_JSON json_t *s =
      json_pack("{s:i, s:s, s:s, s:s, s:I, s:o, s:s}", "format", 1, "dataset", z->dataset,
                "pool", z->pool, "layout", z->layout == LAYOUT_ZVOL ? "zvol" : "dataset",
                "blocksize", (json_int_t)z->blocksize, "caps", zb_caps_to_json(&z->caps),
                "identity", identity ? identity : "");
  if (s)
    json_object_set_new(s, "copies", json_integer(z->copies));
  if (!s) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  return zl_json_save_at(privfd, ZB_STATE, s, true);
}

static const char *const sr_tunables[] = {
    "compression", "copies", "sync", "primarycache", "secondarycache", "logbias", NULL};

static int
zb_sr_prepare(const char *uuid, json_t *config, char **sr_key)
{
  const char *path, *layout = json_string_value(json_object_get(config, "layout"));
  const char *vbs = json_string_value(json_object_get(config, "volblocksize"));
  char pool[256], ds[512], mnt[512];
  struct zb_sr z = {0};
  struct zprop props[16];
  const char *copies_default = json_string_value(json_object_get(config, "copies"));
  int n = 0;
  CLEANUP_JSON json_t *objs = NULL;
  CLEANUP_FREE char *identity = NULL;

  if (zb_config_path(config, &path) == -1)
    return -1;
  zb_pool_of(path, pool, sizeof pool);
  if (zb_check_pool(pool) == -1 || zb_caps_probe(pool, &z.caps) == -1)
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
        z.caps.flavour == ZB_FUSE ? "zfs-fuse" : "ZFS", z.caps.version);
    return -1;
  }
  z.blocksize = z.caps.default_volblocksize;
  if (vbs && (zb_tunable_check(&z.caps, "volblocksize", vbs, true) == -1 ||
              zb_parse_blocksize(vbs, &z.blocksize) == -1))
    return -1;

  /* SR-wide tunables live on the SR dataset; volumes inherit them */
  const char *compression = json_string_value(json_object_get(config, "compression"));
  if (!compression)
    compression = zb_default_compression(&z.caps);
  if (zb_tunable_check(&z.caps, "compression", compression, true) == -1)
    return -1;
  props[n++] = (struct zprop){ZB_SR_PROP, uuid};
  props[n++] = (struct zprop){"compression", compression};
  for (const char *const *t = sr_tunables + 1; *t; t++) {
    const char *v = json_string_value(json_object_get(config, *t));
    if (!v)
      continue;
    if (zb_tunable_check(&z.caps, *t, v, true) == -1)
      return -1;
    props[n++] = (struct zprop){*t, v};
  }

  /* the place: not inside an SR, no SR directly in it but ours */
  snprintf(ds, sizeof ds, "%s/%s", path, uuid);
  char above[512];
  int in = zb_inside_sr(&z.caps, path, above, sizeof above);
  if (in == -1)
    return -1;
  if (in == 1) {
    zl_error(EINVAL,
             "cannot create an SR in %s: it is inside the SR %s (nested SRs are "
             "refused)",
             path, above);
    return -1;
  }
  if (zb_place_children(path, &objs) == -1) {
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
    const char *v = zb_direct_sr(path, name, o);
    if (!v || (strcmp(name, ds) == 0 && strcmp(v, uuid) == 0))
      continue; /* not an SR of this place, or our own half-made SR: carry on */
    zl_error_kind(ZL_ERR_EXISTS, EEXIST,
                  "cannot create an SR in %s: there is already an SR there (it holds "
                  "the SR %s already; one SR per parent dataset: give the new one "
                  "another path, e.g. %s/<name>)",
                  path, name, path);
    return -1;
  }

  snprintf(mnt, sizeof mnt, ZB_MOUNT_BASE "/%s", uuid);
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
    zl_error_sys(errno, "SR dataset %s is not mounted at %s", ds, mnt);
    return -1;
  }
  CLEANUP_CLOSE int pfd = zl_dir_beneath(dfd, ZL_PRIV_DIR, true);
  if (pfd == -1)
    zl_error_prefix("%s: ", mnt);
  z.dataset = ds;
  z.pool = pool;
  z.copies = copies_default ? atoi(copies_default) : 1;
  identity = zb_tools_identity();
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

static void
zb_sr_close(struct zl_store *sr)
{
  struct zb_sr *z = zb_of(sr);
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
  char name[NAME_MAX + 1];
  CLEANUP_CLOSE int sub = zl_run_subdir("sr", true); /* <run>/sr */

  if (sub == -1 || zl_escape_name(key, "", name, sizeof name) == -1)
    return -1;
  *fresh = mkdirat(sub, name, 0700) == 0;
  int fd = zl_dir_beneath(sub, name, false);
  if (fd == -1)
    zl_error_prefix("%s/sr: ", zl_run_dir());
  return fd;
}

static int
load_state(struct zb_sr *z, const json_t *st, const char *key)
{
  const char *ds = json_string_value(json_object_get(st, "dataset"));
  const char *pool = json_string_value(json_object_get(st, "pool"));
  const char *layout = json_string_value(json_object_get(st, "layout"));

  if (!ds || !pool || !layout ||
      zb_caps_from_json(json_object_get(st, "caps"), &z->caps) == -1) {
    zl_error(EINVAL, "SR %s: " ZB_STATE " is malformed", key);
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
zb_sr_open(struct zl_store *sr)
{
  struct zb_sr *z = calloc(1, sizeof *z);
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
    zl_error_sys(errno, "SR %s", sr->key);
    return -1;
  }
  sr->privfd =
      openat(sr->dirfd, ZL_PRIV_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (sr->privfd == -1) {
    zl_error_sys(errno, "SR %s", sr->key);
    return -1;
  }
  /* runtime state is host-local, in /run; its zfs.json is a copy of the
   * one kept on the dataset */
  if ((sr->statefd = open_state_dir(sr->key, &fresh)) == -1)
    return -1;
  st = fresh ? NULL : zl_json_load_at(sr->statefd, ZB_STATE, 1 << 20);
  if (!st) {
    zl_error_clear();
    if (!(st = zl_json_load_at(sr->privfd, ZB_STATE, 1 << 20)) ||
        load_state(z, st, sr->key) == -1)
      return -1;
    /* first use since boot: what a reboot cut off is in the ZFS objects */
    if (zb_boot_recovery(sr) == -1)
      zl_warn("SR %s: recovery after restart incomplete: %s", sr->key, zl_error_msg());
    zl_error_clear();
    if (zl_json_save_at(sr->statefd, ZB_STATE, st, false) == -1)
      return -1;
  } else if (load_state(z, st, sr->key) == -1) {
    return -1;
  }

  /* the tools changed (upgrade): probe again, keep the decision cached */
  identity = zb_tools_identity();
  const char *was = json_string_value(json_object_get(st, "identity"));
  if (identity && (!was || strcmp(was, identity) != 0)) {
    struct zb_caps c;
    if (zb_caps_probe(z->pool, &c) == 0) {
      zl_info("SR %s: ZFS tools changed; capabilities probed again (%s %s)", sr->key,
              c.flavour == ZB_FUSE ? "zfs-fuse" : "OpenZFS", c.version);
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
zb_sr_remove(struct zl_store *sr)
{
  struct zb_sr *z = zb_of(sr);
  struct zargv a;
  int rc;
  char state[64], real[PATH_MAX];

  if (zb_sr_clear_internal(sr) == -1)
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
zb_sr_space(struct zl_store *sr, int64_t *total, int64_t *free_)
{
  struct zb_sr *z = zb_of(sr);
  CLEANUP_JSON json_t *objs = NULL;
  const char *targets[] = {z->dataset, NULL};

  if (zget(&z->caps, false, "used,available,quota", targets, &objs, "SR space") == -1)
    return -1;
  json_t *o = json_object_get(objs, z->dataset);
  const char *u = zb_obj_value(o, "used"), *av = zb_obj_value(o, "available");
  const char *q = zb_obj_value(o, "quota");
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

static char *
zb_sr_summary(struct zl_store *sr)
{
  struct zb_sr *z = zb_of(sr);
  const struct zb_caps *c = &z->caps;
  char *out = NULL;

  if (asprintf(&out,
               "zfs=%s-%s pool=%s pool_version=%d layout=%s blocksize=%lld lz4=%s "
               "zstd=%s lzc=%s",
               c->flavour == ZB_FUSE ? "zfs-fuse" : "openzfs", c->version, z->pool,
               c->pool_version, z->layout == LAYOUT_ZVOL ? "zvol" : "dataset",
               (long long)z->blocksize, c->lz4 ? "yes" : "no", c->zstd ? "yes" : "no",
               zb_lzc_available() ? "yes" : "no") < 0)
    return NULL;
  return out;
}

static unsigned
zb_caps_bits(struct zl_store *sr)
{
  (void)sr;
  return ZL_CAP_REFLINK | ZL_CAP_THICK | ZL_CAP_CLONES_PIN | ZL_CAP_SPARSE |
         ZL_CAP_CHANGES_ALWAYS;
}

static json_t *
zb_config_help(void)
{
  return json_pack(
      "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "storage-host",
      "shared SR: HOST:PORT of the NBD/TLS server of the host whose pool "
      "holds it; the other hosts reach it from there",
      "storage-host-uuid", "shared SR: that host's UUID (INSTALLATION_UUID)", "tls-psk",
      "shared SR: each host's own PSK file, first line '<host uuid>:<hex key>' "
      "(default /etc/zfs-live/tls/host.psk)",
      "path",
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
      "SR default: all, none or metadata", "logbias", "SR default: latency or throughput",
      "volblocksize", "block size of new volumes (power of two, 512 to 128K or 1M)");
}

static json_t *
zb_features(void)
{
  return json_pack("[s, s]", "THIN_PROVISIONING", "LARGE_VDI");
}

const struct zl_backend zl_backend_zfs = {
    .name = "zfs",
    .sr_type = "zfs-live",
    .title = "zfs-live ZFS SR",
    .description = "VM disks as ZFS zvols (or datasets holding one raw file where zvols "
                   "are unavailable); instant ZFS snapshots and clones, per-disk "
                   "compression and tuning, thin or thick",
    .size_granularity = 1 << 20,
    .config_help = zb_config_help,
    .features = zb_features,
    .caps = zb_caps_bits,
    .vol_changes = zb_vol_changes,
    .vol_data_destroy = zb_vol_data_destroy,
    .sr_key_valid = zl_path_key_valid,
    .sr_prepare = zb_sr_prepare,
    .sr_locate = zb_sr_locate,
    .sr_open = zb_sr_open,
    .sr_close = zb_sr_close,
    .sr_remove = zb_sr_remove,
    .sr_foreign = zb_sr_foreign,
    .sr_space = zb_sr_space,
    .sr_probe = zb_sr_probe,
    .sr_summary = zb_sr_summary,
    .vol_list = zb_vol_list,
    .vol_get = zb_vol_get,
    .vol_get_many = zb_vol_get_many,
    .vol_create = zb_vol_create,
    .vol_copy = zb_vol_copy,
    .vol_copy_native = zb_vol_copy_native,
    .vol_discard = zb_vol_discard,
    .vol_destroy = zb_vol_destroy,
    .vol_resize = zb_vol_resize,
    .vol_revert = zb_vol_revert,
    .vol_set_meta = zb_vol_set_meta,
    .vol_open = zb_vol_open,
    .vol_dependents = zb_vol_dependents,
    .vol_tune = zb_vol_tune,
    .host_report = zb_host_report,
    .vol_device = zb_vol_device,
    .vol_adopt = zb_vol_adopt,
    .vol_adopt_recover = zb_vol_adopt_recover,
};
