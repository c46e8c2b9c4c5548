/* volume.c: create, stat, names, keys, resize and I/O access of volumes.
 * Snapshots, clones, revert and destroy are in snapshot.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "core/model/model.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/log.h"
#include "util/uuid.h"

#include "util/banned.h" /* last: after every declaration */

/* The checks of a volume's metadata m (owned: freed on error or when meta
 * is NULL) that every lookup makes. */
static int
lookup_checked(const char *key, struct zl_sr *sr, json_t *m, json_t **meta)
{
  if (zl_meta_hidden(m)) {
    json_decref(m);
    zl_error_kind(ZL_ERR_NO_VOLUME, ENOENT, "volume %s does not exist in SR %s", key,
                  sr->st.key);
    zl_error_subject(key);
    return -1;
  }
  if (zl_meta_broken(m)) {
    zl_meta_broken_error(key, m);
    json_decref(m);
    return -1;
  }
  if (meta)
    *meta = m;
  else
    json_decref(m);
  return 0;
}

int
zl_vol_lookup(struct zl_sr *sr, const char *key, json_t **meta, struct zl_vol_info *info)
{
  json_t *m = NULL;

  if (zl_check_key(key) == -1)
    return -1;
  if (sr->st.be->vol_get(&sr->st, key, &m, info) == -1) {
    if (errno == ENOENT)
      zl_error_kind(ZL_ERR_NO_VOLUME, ENOENT, "volume %s does not exist in SR %s", key,
                    sr->st.key);
    zl_error_subject(key);
    return -1;
  }
  return lookup_checked(key, sr, m, meta);
}

int
zl_vol_lookup2(struct zl_sr *sr, const char *k1, json_t **m1, struct zl_vol_info *i1,
               const char *k2, json_t **m2, struct zl_vol_info *i2)
{
  const char *keys[2] = {k1, k2};
  json_t *m[2] = {NULL, NULL};
  struct zl_vol_info info[2];

  if (zl_check_key(k1) == -1 || zl_check_key(k2) == -1)
    return -1;
  if (!sr->st.be->vol_get_many ||
      sr->st.be->vol_get_many(&sr->st, 2, keys, m, info) == -1) {
    /* one at a time, for the error of the one that fails */
    zl_error_clear();
    if (zl_vol_lookup(sr, k1, m1, i1) == -1)
      return -1;
    if (zl_vol_lookup(sr, k2, m2, i2) == -1) {
      json_decref(*m1);
      *m1 = NULL;
      return -1;
    }
    return 0;
  }
  if (lookup_checked(k1, sr, m[0], m1) == -1) {
    json_decref(m[1]);
    return -1;
  }
  if (lookup_checked(k2, sr, m[1], m2) == -1) {
    json_decref(*m1);
    *m1 = NULL;
    return -1;
  }
  *i1 = info[0];
  *i2 = info[1];
  return 0;
}

int
zl_vol_stat(struct zl_sr *sr, const char *key, struct zl_volume *out)
{
  CLEANUP_JSON json_t *meta = NULL;
  struct zl_vol_info info;

  /* a volume whose metadata cannot be read is shown with its health */
  if (zl_vol_lookup(sr, key, &meta, &info) == -1 && zl_error_get_kind() != ZL_ERR_DAMAGED)
    return -1;
  if (!meta && sr->st.be->vol_get(&sr->st, key, &meta, &info) == -1)
    return -1;
  return zl_meta_to_volume(key, meta, &info, out);
}

int
zl_vol_create(struct zl_sr *sr, const struct zl_create_args *a, struct zl_volume *out)
{
  char uuid[ZL_UUID_LEN + 1];
  const char *key = a->key;
  int64_t size;
  bool thick;
  struct zl_intent in;
  CLEANUP_JSON json_t *meta = NULL;
  CLEANUP_JSON json_t *rec = NULL;

  if (zl_check_name(a->name, "volume name") == -1 ||
      zl_check_description(a->description, "volume description") == -1 ||
      zl_round_size(a->size, sr->st.be->size_granularity, &size) == -1)
    return -1;
  if (key && zl_check_key(key) == -1)
    return -1;
  thick = a->provisioning == ZL_PROV_DEFAULT ? zl_sr_thick_default(sr)
                                             : a->provisioning == ZL_PROV_THICK;
  if (thick && !(sr->st.be->caps(&sr->st) & ZL_CAP_THICK)) {
    zl_error_kind(ZL_ERR_UNSUPPORTED, ENOTSUP,
                  "SR %s cannot reserve space (thick provisioning) on this storage",
                  sr->st.key);
    return -1;
  }
  if (zl_uuid_generate(uuid) == -1)
    return -1;
  if (!key)
    key = uuid;

  CLEANUP_SR_UNLOCK struct zl_sr *held = zl_sr_hold(sr, LOCK_EX);
  if (!held)
    return -1;
  /* a new uuid cannot collide; a key the caller chose (Ganeti) might */
  if (a->key && sr->st.be->vol_get(&sr->st, key, NULL, NULL) == 0) {
    zl_error_kind(ZL_ERR_EXISTS, EEXIST, "volume %s already exists in SR %s", key,
                  sr->st.key);
    return -1;
  }
  meta = zl_meta_new(key, uuid, a->name, a->description, a->sharable, false,
                     thick ? ZL_PROV_THICK : ZL_PROV_THIN, NULL, NULL);
  rec = json_pack("{s:s, s:s}", "op", "create", "key", key);
  if (!meta || !rec || zl_intent_begin(sr, rec, &in) == -1)
    return -1;
  zl_fault("create", "journaled");
  struct zl_vol_info info;
  if (sr->st.be->vol_create(&sr->st, key, size, thick, meta, &info) == -1) {
    zl_error_prefix("create volume %s: ", key);
    struct zl_error_saved saved;
    zl_error_save(&saved);
    if (sr->st.be->vol_discard(&sr->st, key) == 0)
      zl_intent_end(&in);
    else
      close(in.fd); /* leave the record: the next call cleans up */
    zl_error_restore(&saved);
    return -1;
  }
  zl_fault("create", "committed");
  zl_intent_end(&in);
  zl_info("created volume %s (%lld bytes, %s) in SR %s", key, (long long)size,
          thick ? "thick" : "thin", sr->st.key);
  return zl_meta_to_volume(key, meta, &info, out);
}

/* With the SR held shared: lock one volume exclusively (for the caller's
 * scope: CLEANUP_VOL_UNLOCK), then fetch its metadata. */
static int
lock_one(struct zl_sr *sr, const char *key, struct zl_vol_lock *l, json_t **meta,
         struct zl_vol_info *info)
{
  return zl_vol_lock(sr, key, l) == -1 || zl_vol_lookup(sr, key, meta, info) == -1 ? -1
                                                                                   : 0;
}

#define SM_CONFIG "_sm_config_"

/* Read-modify-write of one metadata field (value NULL deletes). */
static int
update_meta(struct zl_sr *sr, const char *key, const char *obj, const char *field,
            const char *value)
{
  CLEANUP_JSON json_t *meta = NULL;

  if (zl_check_key(key) == -1)
    return -1;
  CLEANUP_SR_UNLOCK struct zl_sr *held = zl_sr_hold(sr, LOCK_SH);
  CLEANUP_VOL_UNLOCK struct zl_vol_lock l = ZL_VOL_LOCK_INIT;
  if (!held || lock_one(sr, key, &l, &meta, NULL) == -1)
    return -1;
  /* a storage tunable is applied to the storage first; the key records it */
  if (obj && strncmp(field, SM_CONFIG, strlen(SM_CONFIG)) == 0 && sr->st.be->vol_tune &&
      sr->st.be->vol_tune(&sr->st, key, field + strlen(SM_CONFIG), value) == -1)
    return -1;
  json_t *target = obj ? json_object_get(meta, obj) : meta;
  if (value)
    json_object_set_new(target, field, json_string(value));
  else
    json_object_del(target, field);
  json_object_del(meta, ZL_META_STORAGE);
  return sr->st.be->vol_set_meta(&sr->st, key, meta);
}

int
zl_vol_update(struct zl_sr *sr, const char *key, zl_meta_fn fn, void *arg)
{
  CLEANUP_JSON json_t *meta = NULL;

  if (zl_check_key(key) == -1)
    return -1;
  CLEANUP_SR_UNLOCK struct zl_sr *held = zl_sr_hold(sr, LOCK_SH);
  CLEANUP_VOL_UNLOCK struct zl_vol_lock l = ZL_VOL_LOCK_INIT;
  if (!held || lock_one(sr, key, &l, &meta, NULL) == -1)
    return -1;
  int r = fn(meta, arg);
  if (r == 1) { /* changed: store it */
    json_object_del(meta, ZL_META_STORAGE);
    r = sr->st.be->vol_set_meta(&sr->st, key, meta) == 0 ? 0 : -1;
  }
  return r;
}

int
zl_vol_set_name(struct zl_sr *sr, const char *key, const char *name)
{
  if (zl_check_name(name, "volume name") == -1)
    return -1;
  return update_meta(sr, key, NULL, "name", name);
}

int
zl_vol_set_description(struct zl_sr *sr, const char *key, const char *description)
{
  if (zl_check_description(description, "volume description") == -1)
    return -1;
  return update_meta(sr, key, NULL, "description", description);
}

int
zl_vol_set(struct zl_sr *sr, const char *key, const char *k, const char *v)
{
  if (zl_check_keys_entry(k, v) == -1)
    return -1;
  return update_meta(sr, key, "keys", k, v);
}

int
zl_vol_unset(struct zl_sr *sr, const char *key, const char *k)
{
  if (zl_check_keys_entry(k, NULL) == -1)
    return -1;
  return update_meta(sr, key, "keys", k, NULL);
}

int
zl_vol_resize(struct zl_sr *sr, const char *key, int64_t new_size)
{
  struct zl_vol_info info;
  struct zl_intent in;
  CLEANUP_JSON json_t *meta = NULL;
  CLEANUP_JSON json_t *rec = NULL;
  int64_t size;
  bool thick;

  if (zl_round_size(new_size, sr->st.be->size_granularity, &size) == -1 ||
      zl_check_key(key) == -1)
    return -1;
  CLEANUP_SR_UNLOCK struct zl_sr *held = zl_sr_hold(sr, LOCK_SH);
  CLEANUP_VOL_UNLOCK struct zl_vol_lock l = ZL_VOL_LOCK_INIT;
  if (!held || lock_one(sr, key, &l, &meta, &info) == -1)
    return -1;
  if (zl_meta_read_only(meta)) {
    zl_error_kind(ZL_ERR_READ_ONLY, EROFS,
                  "volume %s is a snapshot and cannot be resized", key);
    return -1;
  }
  if (zl_meta_receiving_error(key, meta) == -1)
    return -1;
  if (size < info.virtual_size) {
    zl_error_kind(ZL_ERR_SIZE, EINVAL,
                  "shrinking not allowed: volume %s is %lld bytes, asked for %lld", key,
                  (long long)info.virtual_size, (long long)new_size);
    return -1;
  }
  if (size == info.virtual_size)
    return 0;
  thick = zl_meta_thick(meta);
  /* the tracked record grows first (it refuses sizes it cannot cover) */
  if (zl_meta_cbt(meta) && zl_cbt_resize(sr, key, size) == -1)
    return -1;
  rec = json_pack("{s:s, s:s, s:I, s:b}", "op", "resize", "key", key, "size",
                  (json_int_t)size, "thick", thick);
  if (!rec || zl_intent_begin(sr, rec, &in) == -1)
    return -1;
  zl_fault("resize", "journaled");
  if (sr->st.be->vol_resize(&sr->st, key, size, thick) == -1) {
    /* backends leave the old size when they fail */
    zl_error_prefix("resize volume %s: ", key);
    zl_intent_end(&in);
    return -1;
  }
  zl_fault("resize", "committed");
  zl_intent_end(&in);
  zl_info("resized volume %s from %lld to %lld bytes", key, (long long)info.virtual_size,
          (long long)size);
  return 0;
}

int
zl_vol_open(struct zl_sr *sr, const char *key, int flags)
{
  CLEANUP_JSON json_t *meta = NULL;

  if (zl_vol_lookup(sr, key, &meta, NULL) == -1)
    return -1;
  if (zl_meta_receiving_error(key, meta) == -1)
    return -1;
  if (zl_meta_data_destroyed(meta)) {
    zl_error_kind(ZL_ERR_INVALID, ENODATA,
                  "volume %s holds only CBT metadata (its data was destroyed)", key);
    return -1;
  }
  if ((flags & O_ACCMODE) != O_RDONLY && zl_meta_read_only(meta)) {
    zl_error_kind(ZL_ERR_READ_ONLY, EROFS, "volume %s is a read-only snapshot", key);
    return -1;
  }
  return sr->st.be->vol_open(&sr->st, key, flags);
}

/* --- recovery (registered in recover.c) ------------------------------------- */

int
zl_recover_new_volume(struct zl_sr *sr, const char *key)
{
  if (sr->st.be->vol_get(&sr->st, key, NULL, NULL) == 0) {
    zl_info("recovery: volume %s was complete; keeping it", key);
    return 0;
  }
  if (errno != ENOENT)
    return -1;
  zl_info("recovery: volume %s was not complete; removing what was made", key);
  return sr->st.be->vol_discard(&sr->st, key);
}

/* create: committed (vol_get finds it) -> kept; else the partial data goes */
static int
recover_create(struct zl_sr *sr, const json_t *rec, const char *key)
{
  (void)rec;
  return zl_recover_new_volume(sr, key);
}

/* resize: grown to the recorded size (never shrunk) */
static int
recover_resize(struct zl_sr *sr, const json_t *rec, const char *key)
{
  json_t *size = json_object_get(rec, "size");
  struct zl_vol_info info;

  if (!json_is_integer(size)) {
    zl_error(EINVAL, "resize record without a size");
    return -1;
  }
  if (sr->st.be->vol_get(&sr->st, key, NULL, &info) == -1)
    return errno == ENOENT ? 0 : -1;
  int64_t want = json_integer_value(size);
  if (info.virtual_size > want)
    want = info.virtual_size;
  zl_info("recovery: finishing the resize of %s to %lld", key, (long long)want);
  return sr->st.be->vol_resize(&sr->st, key, want,
                               json_is_true(json_object_get(rec, "thick")));
}

static const struct zl_recovery recoveries[] = {
    {"create", recover_create},
    {"resize", recover_resize},
    {NULL, NULL},
};

__attribute__((constructor)) static void
register_recoveries(void)
{
  zl_recover_register(recoveries);
}
