/* caps.c: detect which ZFS this host runs and what it can do
 * (reference zfs.md §1-2), decide per version row, validate tunables.
 *
 * Detection order: `zfs version` (OpenZFS 0.8+), /sys/module/zfs/version,
 * then `zpool upgrade -v` ("pool version 23" and no `zfs version`: zfs-fuse).
 * Pool features from `zpool get all <pool>` (feature@...: enabled|active).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/zfs/zfs.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/exec.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

static bool
at_least(const struct zb_caps *c, int major, int minor)
{
  return c->flavour == ZB_OPENZFS &&
         (c->major > major || (c->major == major && c->minor >= minor));
}

/* "zfs-2.2.2-1" / "2.2.2-1" / "zfs-0.8.6-1" -> numbers */
static bool
parse_version(const char *s, struct zb_caps *c)
{
  const char *p = s;

  while (*p && !isdigit((unsigned char)*p))
    p++;
  if (sscanf(p, "%d.%d.%d", &c->major, &c->minor, &c->patch) < 2)
    return false;
  snprintf(c->version, sizeof c->version, "%d.%d.%d", c->major, c->minor, c->patch);
  return true;
}

static bool
feature_on(const char *features, const char *name)
{
  char want[96];
  const char *p;

  if (!features)
    return false;
  snprintf(want, sizeof want, "feature@%s\t", name);
  if (!(p = strstr(features, want)))
    return false;
  p += strlen(want);
  return strncmp(p, "enabled", 7) == 0 || strncmp(p, "active", 6) == 0;
}

int
zb_caps_decide(const struct zb_probe *p, struct zb_caps *c)
{
  memset(c, 0, sizeof *c);
  if (p->version_rc == 0 && p->version_out && parse_version(p->version_out, c)) {
    c->flavour = ZB_OPENZFS;
  } else if (p->sys_version && parse_version(p->sys_version, c)) {
    c->flavour = ZB_OPENZFS;
  } else if (p->upgrade_out && strstr(p->upgrade_out, "pool version 23")) {
    c->flavour = ZB_FUSE;
    c->major = 0, c->minor = 7, c->patch = 0;
    snprintf(c->version, sizeof c->version, "0.7.0");
  } else {
    zl_error_kind(ZL_ERR_UNSUPPORTED, ENOTSUP,
                  "cannot tell which ZFS this is: no `zfs version`, no "
                  "/sys/module/zfs/version, and `zpool upgrade -v` is not pool v23");
    return -1;
  }

  bool oz = c->flavour == ZB_OPENZFS;
  c->pool_version = oz ? 5000 : 23;
  if (oz && p->features_out && !strstr(p->features_out, "feature@"))
    c->pool_version = 28; /* a legacy (pre-feature-flag) pool on OpenZFS */
  c->zvols = oz && p->dev_zfs;
  c->list_p = oz; /* 0.6.3+ */
  c->get_t = oz;  /* 0.6.x+; zfs-fuse rejects -t */
  c->json = at_least(c, 2, 3);
  c->send_c = oz; /* 0.7+ (0.8 is the oldest row we take) */
  c->send_L = oz;
  c->send_e = oz;
  c->recv_s = oz;
  c->recv_o = oz;
  c->rename_u = at_least(c, 2, 0);
  c->create_u = at_least(c, 2, 1);
  c->snapshot_multi = oz;
  c->set_multi = oz;
  c->sync_prop = oz;
  c->snapdev = oz;
  c->refres_auto = oz;
  c->dot_zfs = oz;
  c->bookmarks = oz && (feature_on(p->features_out, "bookmarks") || !p->features_out);
  c->lz4 = oz && (feature_on(p->features_out, "lz4_compress") || !p->features_out);
  c->zstd = at_least(c, 2, 0) &&
            (feature_on(p->features_out, "zstd_compress") || !p->features_out);
  c->large_blocks = oz && feature_on(p->features_out, "large_blocks");
  c->block_cloning = at_least(c, 2, 2) && feature_on(p->features_out, "block_cloning");
  c->default_volblocksize = at_least(c, 2, 2) ? 16384 : 8192;
  return 0;
}

char *
zb_tools_identity(void)
{
  const char *path = getenv("PATH");
  char full[4096], *out = NULL, mod[64] = "";
  struct stat st = {0};
  CLEANUP_FREE char *sys = NULL;

  if (!path || !*path)
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  while (*path) {
    size_t n = strcspn(path, ":");
    snprintf(full, sizeof full, "%.*s/zfs", (int)n, path);
    if (stat(full, &st) == 0 && S_ISREG(st.st_mode))
      break;
    memset(&st, 0, sizeof st);
    path += n + (path[n] == ':');
  }
  if (zl_read_file_at(AT_FDCWD, "/sys/module/zfs/version", 64, &sys, NULL) == 0)
    snprintf(mod, sizeof mod, "%.*s", (int)strcspn(sys, "\n"), sys);
  zl_error_clear();
  if (asprintf(&out, "%s:%lu:%lu:%lld:%s", full, (unsigned long)st.st_dev,
               (unsigned long)st.st_ino, (long long)st.st_mtime, mod) < 0)
    return NULL;
  return out;
}

static int
run_capture(struct zl_exec_result *r, const char *const *argv)
{
  return zl_exec(argv, NULL, r);
}

int
zb_caps_probe(const char *pool, struct zb_caps *c)
{
  struct zl_exec_result v = {0}, u = {0}, f = {0};
  CLEANUP_FREE char *sys = NULL;
  struct zb_probe p = {0};
  int r;

  const char *ver[] = {"zfs", "version", NULL};
  if (run_capture(&v, ver) == -1)
    return -1;
  p.version_rc = v.status;
  p.version_out = v.out;
  if (zl_read_file_at(AT_FDCWD, "/sys/module/zfs/version", 64, &sys, NULL) == 0)
    p.sys_version = sys;
  zl_error_clear();
  if (v.status != 0 && !sys) {
    const char *up[] = {"zpool", "upgrade", "-v", NULL};
    if (run_capture(&u, up) == 0)
      p.upgrade_out = u.out;
  }
  if (pool && (v.status == 0 || sys)) {
    const char *fa[] = {"zpool", "get", "-H", "-o", "property,value", "all", pool, NULL};
    if (run_capture(&f, fa) == 0 && f.status == 0)
      p.features_out = f.out;
  }
  p.dev_zfs = access("/dev/zfs", F_OK) == 0;
  r = zb_caps_decide(&p, c);
  zl_exec_result_free(&v);
  zl_exec_result_free(&u);
  zl_exec_result_free(&f);
  return r;
}

/* clang-format off */
#define CAP_FIELDS(X)                                                                    \
  X(zvols) X(list_p) X(get_t) X(json) X(send_c) X(send_L) X(send_e) X(recv_s)            \
  X(recv_o) X(rename_u) X(create_u) X(snapshot_multi) X(set_multi) X(sync_prop)          \
  X(snapdev) X(refres_auto) X(dot_zfs) X(bookmarks) X(lz4) X(zstd) X(large_blocks)       \
  X(block_cloning)
/* clang-format on */

json_t *
zb_caps_to_json(const struct zb_caps *c)
{
  json_t *j = json_pack("{s:s, s:s, s:i, s:I}", "flavour",
                        c->flavour == ZB_OPENZFS ? "openzfs" : "zfs-fuse", "version",
                        c->version, "pool_version", c->pool_version,
                        "default_volblocksize", (json_int_t)c->default_volblocksize);
#define TO(f) json_object_set_new(j, #f, json_boolean(c->f));
  if (j) {
    CAP_FIELDS(TO)
  }
#undef TO
  return j;
}

int
zb_caps_from_json(const json_t *j, struct zb_caps *c)
{
  const char *fl = json_string_value(json_object_get(j, "flavour"));
  const char *v = json_string_value(json_object_get(j, "version"));

  memset(c, 0, sizeof *c);
  if (!fl || !v || !parse_version(v, c)) {
    zl_error(EINVAL, "cached ZFS capabilities are malformed");
    return -1;
  }
  c->flavour = strcmp(fl, "openzfs") == 0 ? ZB_OPENZFS : ZB_FUSE;
  c->pool_version = (int)json_integer_value(json_object_get(j, "pool_version"));
  c->default_volblocksize =
      json_integer_value(json_object_get(j, "default_volblocksize"));
#define FROM(f) c->f = json_is_true(json_object_get(j, #f));
  CAP_FIELDS(FROM)
#undef FROM
  return 0;
}

/* --- tunables ------------------------------------------------------------- */

static const char *const tunables[] = {"compression",  "copies",         "sync",
                                       "primarycache", "secondarycache", "logbias",
                                       "volblocksize", "recordsize",     NULL};

bool
zb_is_tunable(const char *prop)
{
  for (const char *const *t = tunables; *t; t++) {
    if (strcmp(*t, prop) == 0)
      return true;
  }
  return false;
}

static bool
one_of(const char *v, const char *const *set)
{
  for (; *set; set++) {
    if (strcmp(v, *set) == 0)
      return true;
  }
  return false;
}

static void
compression_values(const struct zb_caps *c, char *buf, size_t len)
{
  snprintf(buf, len, "on, off, lzjb, gzip, gzip-1..gzip-9, zle%s%s",
           c->lz4 ? ", lz4" : "",
           c->zstd ? ", zstd, zstd-1..zstd-19, zstd-fast, zstd-fast-N" : "");
}

static bool
compression_ok(const struct zb_caps *c, const char *v)
{
  static const char *const base[] = {"on", "off", "lzjb", "gzip", "zle", NULL};
  int n;
  char end;

  if (one_of(v, base))
    return true;
  if (sscanf(v, "gzip-%d%c", &n, &end) == 1)
    return n >= 1 && n <= 9;
  if (strcmp(v, "lz4") == 0)
    return c->lz4;
  if (!c->zstd)
    return false;
  if (strcmp(v, "zstd") == 0 || strcmp(v, "zstd-fast") == 0)
    return true;
  if (sscanf(v, "zstd-fast-%d%c", &n, &end) == 1)
    return (n >= 1 && n <= 10) || (n >= 20 && n <= 100 && n % 10 == 0) || n == 500 ||
           n == 1000;
  if (sscanf(v, "zstd-%d%c", &n, &end) == 1)
    return n >= 1 && n <= 19;
  return false;
}

int
zb_parse_blocksize(const char *s, int64_t *out)
{
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);

  if (errno || end == s || v <= 0)
    goto bad;
  if (*end == 'K' || *end == 'k')
    v *= 1024, end++;
  else if (*end == 'M' || *end == 'm')
    v *= 1024 * 1024, end++;
  if (*end)
    goto bad;
  if (v < 512 || v > (1 << 20) || (v & (v - 1)) != 0)
    goto bad;
  *out = v;
  return 0;
bad:
  zl_error(EINVAL, "block size '%s' must be a power of two from 512 to 1M (e.g. 16K)", s);
  return -1;
}

int
zb_tunable_check(const struct zb_caps *c, const char *prop, const char *value,
                 bool at_create)
{
  static const char *const cache[] = {"all", "none", "metadata", NULL};
  static const char *const bias[] = {"latency", "throughput", NULL};
  static const char *const syncv[] = {"standard", "always", "disabled", NULL};
  static const char *const copies[] = {"1", "2", "3", NULL};
  char vals[256];
  const char *host = c->flavour == ZB_FUSE ? "zfs-fuse (pool version 23)" : "this ZFS";

  if (!zb_is_tunable(prop)) {
    zl_error(EINVAL,
             "'%s' is not a ZFS tunable of zfs-live (compression, copies, sync, "
             "primarycache, secondarycache, logbias, volblocksize)",
             prop);
    return -1;
  }
  if (strcmp(prop, "compression") == 0) {
    if (compression_ok(c, value))
      return 0;
    compression_values(c, vals, sizeof vals);
    zl_error(EINVAL, "compression '%s' is not supported by %s; supported: %s", value,
             host, vals);
    return -1;
  }
  if (strcmp(prop, "copies") == 0) {
    if (one_of(value, copies))
      return 0;
    zl_error(EINVAL, "copies must be 1, 2 or 3, not '%s'", value);
    return -1;
  }
  if (strcmp(prop, "sync") == 0) {
    if (!c->sync_prop) {
      zl_error_kind(ZL_ERR_UNSUPPORTED, ENOTSUP, "sync is not a property on %s", host);
      return -1;
    }
    if (one_of(value, syncv))
      return 0;
    zl_error(EINVAL, "sync must be standard, always or disabled, not '%s'", value);
    return -1;
  }
  if (strcmp(prop, "primarycache") == 0 || strcmp(prop, "secondarycache") == 0) {
    if (one_of(value, cache))
      return 0;
    zl_error(EINVAL, "%s must be all, none or metadata, not '%s'", prop, value);
    return -1;
  }
  if (strcmp(prop, "logbias") == 0) {
    if (one_of(value, bias))
      return 0;
    zl_error(EINVAL, "logbias must be latency or throughput, not '%s'", value);
    return -1;
  }
  /* volblocksize (recordsize: the same, for the dataset layout's file) */
  if (!at_create) {
    zl_error(EINVAL,
             "%s is fixed when a volume is created; it cannot be changed (create a new "
             "volume and copy the data)",
             prop);
    return -1;
  }
  int64_t bs;
  if (zb_parse_blocksize(value, &bs) == -1)
    return -1;
  if (bs > (128 << 10) && !c->large_blocks) {
    zl_error(EINVAL,
             "volblocksize %s needs the large_blocks pool feature; at most 128K "
             "on %s",
             value, host);
    return -1;
  }
  return 0;
}

const char *
zb_default_compression(const struct zb_caps *c)
{
  return c->lz4 ? "lz4" : "on";
}

int64_t
zb_thick_reservation(int64_t size, int64_t blocksize, int copies)
{
  const int64_t dnodes_per_level = 1 << (17 - 7); /* DN_MAX_INDBLKSHIFT - BLKPTRSHIFT */
  /* ZFS blocks are at least 512 bytes (SPA_MINBLOCKSIZE) */
  int64_t nblocks = blocksize > 0 ? size / (blocksize < 512 ? 512 : blocksize) : 0;
  int64_t numdb = 7; /* the metadnode, L0-L6 */

  if (copies < 1)
    copies = 1;
  while (nblocks > 1) {
    nblocks = (nblocks - 1) / dnodes_per_level + 1; /* rounded up, cannot overflow */
    numdb += nblocks;
  }
  numdb *= copies + 1 < 3 ? copies + 1 : 3; /* MIN(SPA_DVAS_PER_BP, copies + 1) */
  /* numdb < 2^46 for any int64 size (512-byte blocks); the data part may
   * not fit: then more than any pool holds, which ZFS refuses as such */
  int64_t meta = numdb * (1 << 17);
  if (size > (INT64_MAX - meta) / copies)
    return INT64_MAX;
  return size * copies + meta;
}

const char *
zb_bookmarks_use(const struct zb_caps *c)
{
  return c->bookmarks ? "data_destroy frees a snapshot's space: a bookmark keeps its "
                        "changed blocks (zfs send -i #bookmark)"
                      : "none: data_destroy keeps the snapshot's data on this pool "
                        "(no bookmarks); its space is freed when the snapshot is "
                        "destroyed";
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

json_t *
zb_host_report(const char *pool)
{
  struct zb_caps c;
  json_t *caps, *rows = json_array();

  if (zb_caps_probe(pool, &c) == -1) {
    if (errno == ENOENT) /* no zfs at all on this host */
      return json_pack("{s:b, s:s}", "present", 0, "reason", zl_error_msg());
    return json_pack("{s:b, s:s}", "present", 0, "reason", zl_error_msg());
  }
  caps = zb_caps_to_json(&c);
  for (size_t i = 0; i < sizeof cap_rows / sizeof cap_rows[0]; i++) {
    const char *use = cap_rows[i].use;
    if (strcmp(cap_rows[i].name, "bookmarks") == 0)
      use = zb_bookmarks_use(&c);
    json_array_append_new(
        rows, json_pack("{s:s, s:O, s:s}", "capability", cap_rows[i].name, "value",
                        json_object_get(caps, cap_rows[i].name), "use", use));
  }
  json_t *r = json_pack("{s:b, s:s, s:s, s:i, s:I, s:s, s:b, s:o, s:o}", "present", 1,
                        "flavour", c.flavour == ZB_FUSE ? "zfs-fuse" : "openzfs",
                        "version", c.version, "pool_version", c.pool_version,
                        "default_volblocksize", (json_int_t)c.default_volblocksize,
                        "default_compression", zb_default_compression(&c), "lzc",
                        zb_lzc_available(), "capabilities", rows, "raw", caps);
  if (pool)
    json_object_set_new(r, "pool", json_string(pool));
  return r;
}
