/* sr.c: SR lifecycle: create, attach, detach, probe, destroy, stat,
 * names, listing.
 *
 * The core keeps one file per SR in the private area the backend provides:
 * sr.json = {"format": 1, "uuid", "type", "name", "description",
 * "provisioning", "created"}.  Its presence is what makes the SR exist:
 * SR.create writes it last and SR.destroy removes it first.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/model/model.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"
#include "util/uuid.h"
#include "util/strbuf.h"

#include "util/banned.h" /* last: after every declaration */

/* device-config keys every SR type understands */
static const char *const common_config[] = {"provisioning", "datapath", NULL};
/* keys toolstacks add on their own, accepted and ignored */
static const char *const ignored_config[] = {"SRmaster", "sr_uuid", NULL};

static bool
in_list(const char *const *l, const char *s)
{
  for (; *l; l++) {
    if (strcmp(*l, s) == 0)
      return true;
  }
  return false;
}

/* Check the keys of a device-config against what the type understands. */
static int
check_config(const struct zl_backend *be, const json_t *config)
{
  CLEANUP_JSON json_t *help = be->config_help();
  const char *k;
  json_t *v;

  if (!zl_json_is_strmap(config)) {
    zl_error(EINVAL, "configuration must be an object of strings");
    return -1;
  }
  json_object_foreach((json_t *)config, k, v)
  {
    if (json_object_get(help, k) || in_list(common_config, k) ||
        in_list(ignored_config, k))
      continue;
    struct zl_sb b = ZL_SB_INIT;
    const char *hk;
    json_t *hv;
    json_object_foreach(help, hk, hv) zl_sb_addf(&b, "%s, ", hk);
    zl_sb_add(&b, "provisioning, datapath");
    CLEANUP_FREE char *known = zl_sb_take(&b);
    if (!known)
      return -1;
    zl_error(EINVAL, "unknown device-config key '%s' for an SR of type %s (known: %s)", k,
             be->sr_type, known);
    return -1;
  }
  const char *dp = json_string_value(json_object_get(config, "datapath"));
  if (dp && strcmp(dp, "auto") != 0 && strcmp(dp, "nbd") != 0) {
    zl_error(EINVAL, "device-config datapath must be 'auto' or 'nbd', not '%s'", dp);
    return -1;
  }
  const char *prov = json_string_value(json_object_get(config, "provisioning"));
  if (prov && strcmp(prov, "thin") != 0 && strcmp(prov, "thick") != 0) {
    zl_error(EINVAL, "device-config provisioning must be 'thin' or 'thick', not '%s'",
             prov);
    return -1;
  }
  return 0;
}

/* Publish a new SR's sr.json: only if there is none (a second SR.create at
 * the same place, even from another host sharing the directory, fails with
 * "already an SR" instead of replacing the first one's identity). */
static int
save_new_info_file(struct zl_sr *sr, const json_t *info)
{
  if (zl_json_save_new_at(sr->st.privfd, ZL_SR_INFO, info) == -1) {
    if (errno == EEXIST)
      zl_error_kind(ZL_ERR_EXISTS, EEXIST, "there is already an SR at %s", sr->st.key);
    return -1;
  }
  if (zl_sr_state_apart(sr) &&
      zl_json_save_at(sr->st.statefd, ZL_SR_INFO, info, false) == -1)
    return -1;
  return 0;
}

/* SR.create runs one at a time on a host (<run>/locks/sr-create), from
 * looking at the place to publishing sr.json: two creates at one place
 * cannot both find it free (ZFS SRs are datasets named after their UUID, so
 * only this lock tells two of them apart; a pool is imported on one host).
 * Across hosts, a shared directory is settled by the exclusive publish. */
int
zl_sr_create(const char *type, const char *uuid, const json_t *config, const char *name,
             const char *description, json_t **config_out)
{
  const struct zl_backend *be = zl_backend_or_error(type);
  CLEANUP_CLOSE int lock = -1;
  CLEANUP_JSON json_t *cfg = NULL;
  CLEANUP_JSON json_t *info = NULL;
  CLEANUP_FREE char *key = NULL;
  char created[32];
  struct stat st;
  time_t now = time(NULL);
  struct tm tm;

  if (!be)
    return -1;
  if (!zl_uuid_valid(uuid)) {
    zl_error(EINVAL, "SR uuid '%s' is not a UUID", uuid);
    return -1;
  }
  if (zl_check_name(name, "SR name") == -1 ||
      zl_check_description(description, "SR description") == -1 ||
      check_config(be, config) == -1)
    return -1;
  if (!(cfg = json_deep_copy(config))) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  json_object_del(cfg, "sr_uuid");
  json_object_del(cfg, "SRmaster");
  if ((lock = zl_run_lock("sr-create")) == -1 || be->sr_prepare(uuid, cfg, &key) == -1)
    return -1;

  struct zl_sr *sr = zl_sr_open_storage(be, key);
  if (!sr)
    return -1;
  zl_fault("sr-create", "prepared");
  if (fstatat(sr->st.privfd, ZL_SR_INFO, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    zl_error_kind(ZL_ERR_EXISTS, EEXIST, "there is already an SR at %s", key);
    zl_sr_close(sr);
    return -1;
  }
  const char *prov = json_string_value(json_object_get(cfg, "provisioning"));
  gmtime_r(&now, &tm);
  strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
  info = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s}", "format", 1, "uuid", uuid,
                   "type", be->sr_type, "name", name, "description", description,
                   "provisioning", prov ? prov : "thin", "created", created);
  const char *dpath = json_string_value(json_object_get(cfg, "datapath"));
  if (info && dpath) /* nbd: every guest's writes through the NBD server */
    json_object_set_new(info, "datapath", json_string(dpath));
  const char *shost = json_string_value(json_object_get(cfg, "storage-host"));
  if (info && shost) /* a shared SR (a zfs-live pool served to other hosts) */
    json_object_set_new(info, "storage_host", json_string(shost));
  int r = info ? save_new_info_file(sr, info) : -1;
  zl_sr_close(sr);
  if (r == -1)
    return -1;
  json_object_set_new(cfg, "sr_uuid", json_string(uuid));
  zl_info("created %s SR %s (%s) at %s", be->sr_type, uuid, name, key);
  *config_out = TAKE_PTR(cfg);
  return 0;
}

/* The device-config keys of the Python zfs-live driver this one replaces
 * (same SR type, same `path`): its PBDs keep them after a takeover
 * (zfs-live-deploy install --takeover), so attach accepts and ignores
 * them.  SR.create still refuses them. */
static const char *const predecessor_config[] = {
    "zpool", "dataset", "adopt", "auto_cleanup_orphans", "orphan_grace_period_seconds",
    NULL};

/* config without the predecessor's keys (and its datapath values), or
 * NULL (ENOMEM). */
static json_t *
without_predecessor_keys(const json_t *config)
{
  json_t *c = json_deep_copy(config);
  const char *dp = json_string_value(json_object_get(config, "datapath"));

  if (!c) {
    zl_error(ENOMEM, "out of memory");
    return NULL;
  }
  for (const char *const *k = predecessor_config; *k; k++)
    json_object_del(c, *k);
  if (dp && (strcmp(dp, "raw-qdisk") == 0 || strcmp(dp, "tapdisk") == 0))
    json_object_del(c, "datapath");
  return c;
}

char *
zl_sr_attach(const char *type, const json_t *config)
{
  const struct zl_backend *be = zl_backend_or_error(type);
  char *key = NULL;
  CLEANUP_JSON json_t *cfg =
      json_is_object(config) ? without_predecessor_keys(config) : NULL;

  if (json_is_object(config) && !cfg)
    return NULL;
  if (cfg)
    config = cfg;
  if (!be || check_config(be, config) == -1 || be->sr_locate(config, &key) == -1)
    return NULL;
  struct zl_sr *sr = zl_sr_open(type, key);
  if (!sr) {
    free(key);
    return NULL;
  }
  zl_sr_close(sr);
  return key;
}

int
zl_sr_detach(const char *type, const char *sr_key)
{
  const struct zl_backend *be = zl_backend_find(type);

  /* Idempotent by contract: an SR we do not know is detached already.
   * Nothing is cached per attachment yet, so there is nothing to release. */
  if (!be || !be->sr_key_valid(sr_key))
    zl_debug("detach of unknown SR '%s': nothing to do", sr_key);
  return 0;
}

json_t *
zl_sr_probe(const char *type, const json_t *config)
{
  const struct zl_backend *be = zl_backend_or_error(type);
  CLEANUP_JSON json_t *raw = NULL;
  json_t *out, *e;
  size_t i;

  if (!be || check_config(be, config) == -1)
    return NULL;
  if (!(raw = json_array()) || !(out = json_array())) {
    zl_error(ENOMEM, "out of memory");
    return NULL;
  }
  if (be->sr_probe(config, raw) == -1) {
    json_decref(out);
    return NULL;
  }
  /* Existing SRs: complete, with sr_uuid in the configuration and the SR
   * key for the caller to stat.  The place itself: a hint saying whether a
   * new SR can be created there (never complete, never an sr_uuid). */
  json_array_foreach(raw, i, e)
  {
    const char *key = zl_meta_str(e, "sr_key");
    json_t *cfg = json_deep_copy(json_object_get(e, "configuration"));
    if (key) {
      struct zl_sr *sr = zl_sr_open(type, key);
      if (!sr) {
        zl_warn("probe: skipping %s: %s", key, zl_error_msg());
        json_decref(cfg);
        continue;
      }
      json_object_set_new(cfg, "sr_uuid", json_string(zl_meta_str(sr->info, "uuid")));
      json_array_append_new(out, json_pack("{s:o, s:b, s:s, s:{}}", "configuration", cfg,
                                           "complete", 1, "sr", key, "extra_info"));
      zl_sr_close(sr);
    } else {
      bool can = json_is_true(json_object_get(e, "can_create"));
      const char *why = zl_meta_str(e, "reason");
      json_array_append_new(out,
                            json_pack("{s:o, s:b, s:{s:s, s:s}}", "configuration", cfg,
                                      "complete", 0, "extra_info", "can_create",
                                      can ? "true" : "false", "reason", why ? why : ""));
    }
  }
  return out;
}

struct ls_ctx {
  struct zl_volume *v;
  size_t n, cap;
  bool hidden_too;
  int failed;
};

static int
ls_cb(void *opaque, const char *key, json_t *meta, const struct zl_vol_info *info)
{
  struct ls_ctx *c = opaque;

  if (zl_meta_hidden(meta) && !c->hidden_too)
    return 0;
  if (c->n == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 64;
    struct zl_volume *nv = realloc(c->v, cap * sizeof *nv);
    if (!nv) {
      zl_error(ENOMEM, "out of memory");
      return -1;
    }
    c->v = nv;
    c->cap = cap;
  }
  if (zl_meta_to_volume(key, meta, info, &c->v[c->n]) == -1) {
    if (zl_error_errno() != EINVAL)
      return -1;
    /* readable but not in a format we know: listed as damaged */
    json_object_set_new(meta, ZL_META_BROKEN, json_string(zl_error_msg()));
    if (zl_meta_to_volume(key, meta, info, &c->v[c->n]) == -1)
      return -1;
  }
  c->n++;
  return 0;
}

static int
cmp_key(const void *a, const void *b)
{
  return strcmp(((const struct zl_volume *)a)->key, ((const struct zl_volume *)b)->key);
}

int
zl_sr_ls(struct zl_sr *sr, struct zl_volume **vols, size_t *n)
{
  struct ls_ctx c = {0};

  if (sr->st.be->vol_list(&sr->st, ls_cb, &c) == -1) {
    zl_volume_list_free(c.v, c.n);
    return -1;
  }
  if (c.n)
    qsort(c.v, c.n, sizeof *c.v, cmp_key);
  *vols = c.v;
  *n = c.n;
  return 0;
}

static int
save_info(struct zl_sr *sr, const char *field, const char *value)
{
  CLEANUP_SR_UNLOCK struct zl_sr *held = zl_sr_hold(sr, LOCK_EX);
  if (!held)
    return -1;
  int r = zl_sr_load_info(sr);
  if (r == 0) {
    json_object_set_new(sr->info, field, json_string(value));
    r = zl_sr_save_info(sr, sr->info);
  }
  return r;
}

int
zl_sr_set_name(struct zl_sr *sr, const char *name)
{
  if (zl_check_name(name, "SR name") == -1)
    return -1;
  return save_info(sr, "name", name);
}

int
zl_sr_set_description(struct zl_sr *sr, const char *description)
{
  if (zl_check_description(description, "SR description") == -1)
    return -1;
  return save_info(sr, "description", description);
}

static char *
xstrdup(const char *s)
{
  return strdup(s ? s : "");
}

int
zl_sr_stat(struct zl_sr *sr, struct zl_sr_stat *out)
{
  memset(out, 0, sizeof *out);
  if (sr->st.be->sr_space(&sr->st, &out->total_space, &out->free_space) == -1)
    return -1;
  out->sr = xstrdup(sr->st.key);
  out->type = xstrdup(sr->st.be->sr_type);
  out->uuid = xstrdup(zl_meta_str(sr->info, "uuid"));
  out->name = xstrdup(zl_meta_str(sr->info, "name"));
  out->description = xstrdup(zl_meta_str(sr->info, "description"));
  out->provisioning = zl_sr_thick_default(sr) ? ZL_PROV_THICK : ZL_PROV_THIN;
  out->clustered = zl_sr_clustered(sr);
  out->healthy = true;
  out->health_msg = sr->st.be->sr_summary ? sr->st.be->sr_summary(&sr->st) : xstrdup("");
  if (!out->sr || !out->type || !out->uuid || !out->name || !out->description ||
      !out->health_msg) {
    zl_sr_stat_free(out);
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  return 0;
}

void
zl_sr_stat_free(struct zl_sr_stat *s)
{
  free(s->sr);
  free(s->type);
  free(s->uuid);
  free(s->name);
  free(s->description);
  free(s->health_msg);
  memset(s, 0, sizeof *s);
}

struct any_ctx {
  size_t visible, hidden, broken, foreign, transient;
  char first[256];    /* a visible volume */
  char damaged[256];  /* a volume whose metadata cannot be read */
  char unknown[1024]; /* what is not a volume */
};

static int
any_cb(void *opaque, const char *key, json_t *meta, const struct zl_vol_info *info)
{
  struct any_ctx *c = opaque;
  (void)info;
  if (zl_meta_broken(meta)) {
    if (c->broken++ == 0)
      snprintf(c->damaged, sizeof c->damaged, "%s", key);
  } else if (zl_meta_transient(meta)) {
    c->transient++; /* recovery ran first: its maker is alive */
  } else if (zl_meta_hidden(meta)) {
    c->hidden++;
  } else if (c->visible++ == 0) {
    snprintf(c->first, sizeof c->first, "%s", key);
  }
  return 0;
}

static int
foreign_cb(void *opaque, const char *what)
{
  struct any_ctx *c = opaque;
  size_t len = strlen(c->unknown);

  if (c->foreign++ < 5 && len + strlen(what) + 3 < sizeof c->unknown)
    snprintf(c->unknown + len, sizeof c->unknown - len, "%s%s", len ? ", " : "", what);
  return 0;
}

/* What SR.destroy must not take with it: volumes (the user destroys them
 * first), volumes whose metadata cannot be read, anything that is not a
 * volume.  Hidden volumes are the SR's own and go with it. */
static int
check_empty(struct zl_sr *sr, struct any_ctx *c)
{
  if (sr->st.be->vol_list(&sr->st, any_cb, c) == -1)
    return -1;
  if (c->visible) {
    zl_error_kind(ZL_ERR_BUSY, EBUSY,
                  "SR %s still holds %zu volume%s (%s%s); destroy them first", sr->st.key,
                  c->visible, c->visible == 1 ? "" : "s", c->first,
                  c->visible > 1 ? ", ..." : "");
    return -1;
  }
  if (c->transient) {
    zl_error_kind(ZL_ERR_BUSY, EBUSY,
                  "SR %s is receiving %zu volume%s (a copy or import in progress); try "
                  "again when it is done",
                  sr->st.key, c->transient, c->transient == 1 ? "" : "s");
    return -1;
  }
  if (c->broken) {
    zl_error_kind(ZL_ERR_BUSY, EBUSY,
                  "SR %s holds %zu volume%s whose metadata cannot be read (%s%s); they "
                  "are kept: repair or remove them first",
                  sr->st.key, c->broken, c->broken == 1 ? "" : "s", c->damaged,
                  c->broken > 1 ? ", ..." : "");
    return -1;
  }
  if (sr->st.be->sr_foreign && sr->st.be->sr_foreign(&sr->st, foreign_cb, c) == -1)
    return -1;
  if (c->foreign) {
    zl_error_kind(ZL_ERR_BUSY, EBUSY,
                  "SR %s holds %zu thing%s that %s not volumes of it (%s%s); the SR is "
                  "kept: move or remove them first",
                  sr->st.key, c->foreign, c->foreign == 1 ? "" : "s",
                  c->foreign == 1 ? "is" : "are", c->unknown,
                  c->foreign > 5 ? ", ..." : "");
    return -1;
  }
  return 0;
}

int
zl_sr_destroy(struct zl_sr *sr)
{
  struct any_ctx c = {0};

  CLEANUP_SR_UNLOCK struct zl_sr *held = zl_sr_hold(sr, LOCK_EX);
  if (!held)
    return -1;
  if (check_empty(sr, &c) == -1)
    return -1;
  if (c.hidden && zl_collect_hidden(sr) == -1)
    return -1;
  if (c.hidden) {
    /* what is left is still shared: a copy in another SR of the pool
     * (vol copy) is a clone of it */
    struct any_ctx left = {0};
    if (sr->st.be->vol_list(&sr->st, any_cb, &left) == -1)
      return -1;
    if (left.hidden) {
      zl_error_kind(ZL_ERR_BUSY, EBUSY,
                    "SR %s keeps %zu destroyed volume%s whose data copies in other SRs "
                    "still share (copies made by vol copy in the same pool); destroy "
                    "those copies first",
                    sr->st.key, left.hidden, left.hidden == 1 ? "" : "s");
      return -1;
    }
  }
  /* The backend's removal makes the SR cease to exist in one step (the
   * private area renamed away, the SR dataset destroyed) and then clears
   * what is left; a crash before that step leaves the SR as it was. */
  if (zl_cbt_sr_remove(sr) == -1 || sr->st.be->sr_remove(&sr->st) == -1)
    return -1;
  zl_info("destroyed SR %s", sr->st.key);
  return 0;
}

bool
zl_sr_clustered(struct zl_sr *sr)
{
  return zl_meta_str(sr->info, "storage_host") != NULL ||
         (sr->st.be->sr_clustered && sr->st.be->sr_clustered(&sr->st));
}
