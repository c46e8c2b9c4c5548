/* copy.c: copying a volume into another SR (or its own), and receiving
 * data into a new volume that nobody sees until it is complete.
 *
 * The path is the cheapest correct one the storage offers, chosen here:
 *   same SR            a clone (instant, shared blocks: a ZFS clone of an
 *                      internal snapshot, a reflink, else a copy); the
 *                      source stays destroyable (snapshot.c hides what a
 *                      clone still needs and collects it with the clone)
 *   same backend       the backend's vol_copy_native when the pair has one
 *                      (ZFS: a clone in the same pool, zfs send | zfs recv
 *                      across pools)
 *   anything else      a sparse stream: only the source's data segments
 *                      are read, and zero blocks are not written, so the
 *                      copy allocates what the source holds
 *
 * A volume being made is *transient* in its metadata: invisible (like a
 * hidden volume), never collected, and named by an intent record
 * {"op": "receive"} that its maker holds (flock) for as long as it works.
 * The maker clears the mark last: the commit.  If the maker dies, the next
 * call on the SR finds the record dead and removes the volume, so a reader
 * of the SR never sees half a copy.  A source that something may write is
 * read through a transient snapshot in its own SR ("copy-source" record),
 * where the storage snapshots cheaply; where it cannot (a file SR without
 * reflinks), a source in use is refused as a snapshot of it would be.
 *
 * What travels: the name and description, the keys (storage tunables are
 * applied to the copy's storage again), the provisioning.  What does not:
 * CBT history (the copy starts untracked; enable_cbt afterwards), the
 * identity (a new uuid and key), snapshots of the source.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "core/model/model.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/uuid.h"

#include "util/banned.h" /* last: after every declaration */

#define SM_CONFIG "_sm_config_"

/* --- receiving into a transient volume ------------------------------------ */

struct zl_recv {
  struct zl_sr *sr; /* NULL once ended */
  char key[256];
  json_t *meta; /* as it will be committed, with the transient mark */
  struct zl_vol_info info;
  struct zl_intent in;
};

static int
begin_record(struct zl_sr *sr, const char *op, const char *key, struct zl_intent *in)
{
  CLEANUP_JSON json_t *rec = json_pack("{s:s, s:s}", "op", op, "key", key);

  if (!rec) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  return zl_intent_begin(sr, rec, in);
}

/* The metadata of a copy of src (meta of the source, or NULL) named as a
 * asks, marked transient. */
static json_t *
new_meta(const char *key, const char *uuid, const struct zl_create_args *a, bool thick,
         const json_t *keys)
{
  json_t *m =
      zl_meta_new(key, uuid, a->name, a->description ? a->description : "", a->sharable,
                  false, thick ? ZL_PROV_THICK : ZL_PROV_THIN, NULL, NULL);
  if (!m)
    return NULL;
  if (keys && json_object_update(json_object_get(m, "keys"), (json_t *)keys) == -1) {
    json_decref(m);
    zl_error(ENOMEM, "out of memory");
    return NULL;
  }
  json_object_set_new(m, ZL_META_TRANSIENT, json_true());
  return m;
}

/* Validate a, pick the key, journal, and make the transient volume by
 * make(): vol_create, or the backend's native copy (1 made, 0 not
 * possible: nothing made, record ended; -1 error). */
typedef int (*make_fn)(struct zl_sr *sr, const char *key, int64_t size, bool thick,
                       const json_t *meta, struct zl_vol_info *info, void *arg);

static int
begin(struct zl_sr *sr, const struct zl_create_args *a, const json_t *keys, make_fn make,
      void *arg, struct zl_recv *r)
{
  char uuid[ZL_UUID_LEN + 1];
  int64_t size;

  memset(r, 0, sizeof *r);
  r->in.fd = -1;
  if (zl_check_name(a->name, "volume name") == -1 ||
      zl_check_description(a->description ? a->description : "", "volume description") ==
          -1 ||
      zl_round_size(a->size, sr->st.be->size_granularity, &size) == -1 ||
      (a->key && zl_check_key(a->key) == -1) || zl_uuid_generate(uuid) == -1)
    return -1;
  bool thick = a->provisioning == ZL_PROV_DEFAULT ? zl_sr_thick_default(sr)
                                                  : a->provisioning == ZL_PROV_THICK;
  if (thick && !(sr->st.be->caps(&sr->st) & ZL_CAP_THICK)) {
    zl_error_kind(ZL_ERR_UNSUPPORTED, ENOTSUP,
                  "SR %s cannot reserve space (thick provisioning) on this storage",
                  sr->st.key);
    return -1;
  }
  snprintf(r->key, sizeof r->key, "%s", a->key ? a->key : uuid);

  CLEANUP_SR_UNLOCK struct zl_sr *held = zl_sr_hold(sr, LOCK_EX);
  if (!held)
    return -1;
  if (a->key && sr->st.be->vol_get(&sr->st, r->key, NULL, NULL) == 0) {
    zl_error_kind(ZL_ERR_EXISTS, EEXIST, "volume %s already exists in SR %s", r->key,
                  sr->st.key);
    return -1;
  }
  zl_error_clear();
  r->meta = new_meta(r->key, uuid, a, thick, keys);
  if (!r->meta || begin_record(sr, "receive", r->key, &r->in) == -1)
    goto fail;
  zl_fault("receive", "journaled");
  int made = make(sr, r->key, size, thick, r->meta, &r->info, arg);
  if (made != 1) {
    struct zl_error_saved saved;
    zl_error_save(&saved);
    if (sr->st.be->vol_discard(&sr->st, r->key) == 0)
      zl_intent_end(&r->in);
    else
      close(r->in.fd); /* the next call removes it */
    r->in.fd = -1;
    zl_error_restore(&saved);
    json_decref(r->meta);
    r->meta = NULL;
    return made;
  }
  zl_fault("receive", "made");
  r->sr = sr;
  return 1;

fail:
  json_decref(r->meta);
  r->meta = NULL;
  return -1;
}

static int
make_empty(struct zl_sr *sr, const char *key, int64_t size, bool thick,
           const json_t *meta, struct zl_vol_info *info, void *arg)
{
  const json_t *extra = arg;
  if (extra && json_object_update((json_t *)meta, (json_t *)extra) == -1) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  if (sr->st.be->vol_create(&sr->st, key, size, thick, meta, info) == -1) {
    zl_error_prefix("create volume %s: ", key);
    return -1;
  }
  return 1;
}

struct zl_recv *
zl_recv_begin_meta(struct zl_sr *sr, const struct zl_create_args *a, const json_t *keys,
                   const json_t *extra)
{
  struct zl_recv *r = malloc(sizeof *r);

  if (!r) {
    zl_error(ENOMEM, "out of memory");
    return NULL;
  }
  if (begin(sr, a, keys, make_empty, (void *)extra, r) != 1) {
    free(r);
    return NULL;
  }
  return r;
}

struct zl_recv *
zl_recv_begin(struct zl_sr *sr, const struct zl_create_args *a, const json_t *keys)
{
  return zl_recv_begin_meta(sr, a, keys, NULL);
}

const char *
zl_recv_key(const struct zl_recv *r)
{
  return r->key;
}

int
zl_recv_open(struct zl_recv *r)
{
  return r->sr->st.be->vol_open(&r->sr->st, r->key, O_RDWR);
}

/* The copy's storage gets the tunables its keys name (a failure is a
 * warning: the data is there, the key records what was asked). */
static void
apply_tunables(struct zl_sr *sr, const char *key, const json_t *keys)
{
  const char *k;
  json_t *v;

  if (!sr->st.be->vol_tune)
    return;
  json_object_foreach((json_t *)keys, k, v)
  {
    if (strncmp(k, SM_CONFIG, strlen(SM_CONFIG)) != 0 || !json_is_string(v))
      continue;
    if (sr->st.be->vol_tune(&sr->st, key, k + strlen(SM_CONFIG), json_string_value(v)) ==
        -1) {
      zl_warn("copy %s: tunable %s=%s not applied: %s", key, k + strlen(SM_CONFIG),
              json_string_value(v), zl_error_msg());
      zl_error_clear();
    }
  }
}

int
zl_recv_commit(struct zl_recv *r, struct zl_volume *out)
{
  struct zl_sr *sr = r->sr;
  int rc = -1;

  CLEANUP_SR_UNLOCK struct zl_sr *held = zl_sr_hold(sr, LOCK_EX);
  if (!held)
    return -1;
  apply_tunables(sr, r->key, json_object_get(r->meta, "keys"));
  zl_fault("receive", "tuned");
  json_object_del(r->meta, ZL_META_TRANSIENT);
  if (sr->st.be->vol_set_meta(&sr->st, r->key, r->meta) == -1) {
    zl_error_prefix("commit volume %s: ", r->key);
    zl_sr_unlock(TAKE_PTR(held));
    zl_recv_abort(r);
    return -1;
  }
  zl_fault("receive", "committed");
  zl_intent_end(&r->in);
  struct zl_vol_info info;
  if (sr->st.be->vol_get(&sr->st, r->key, NULL, &info) == -1)
    info = r->info;
  rc = out ? zl_meta_to_volume(r->key, r->meta, &info, out) : 0;
  json_decref(r->meta);
  free(r);
  return rc;
}

void
zl_recv_abort(struct zl_recv *r)
{
  struct zl_error_saved saved;

  if (!r)
    return;
  zl_error_save(&saved);
  struct zl_sr *held = zl_sr_hold(r->sr, LOCK_EX);
  if (held && r->sr->st.be->vol_discard(&r->sr->st, r->key) == 0) {
    zl_vol_lock_forget(r->sr, r->key);
    zl_intent_end(&r->in);
    zl_info("receive of volume %s abandoned: removed what was made", r->key);
  } else {
    zl_warn("receive of volume %s abandoned: %s; the next call removes it", r->key,
            zl_error_msg());
    close(r->in.fd); /* dead from now on: recovery finishes */
    r->in.fd = -1;
  }
  if (held)
    zl_sr_unlock(held);
  json_decref(r->meta);
  free(r);
  zl_error_restore(&saved);
}

/* --- the source: one instant of it ---------------------------------------- */

struct source {
  struct zl_sr *sr;
  const char *read;           /* what to read: the volume, or snap */
  char snap[ZL_UUID_LEN + 1]; /* a transient snapshot made for the copy, or "" */
  struct zl_intent in;
};

/* Under LOCK_EX: a transient snapshot of key, journaled as copy-source. */
static int
snapshot_source(struct zl_sr *sr, const char *key, const json_t *meta,
                const struct zl_vol_info *info, struct source *s)
{
  struct zl_vol_info made;
  CLEANUP_JSON json_t *m = NULL;

  if (zl_uuid_generate(s->snap) == -1)
    return -1;
  m = zl_meta_new(s->snap, s->snap, zl_meta_str(meta, "name"), "", false, true,
                  zl_meta_thick(meta) ? ZL_PROV_THICK : ZL_PROV_THIN, key, NULL);
  if (!m)
    return -1;
  json_object_set_new(m, ZL_META_TRANSIENT, json_true());
  if (begin_record(sr, "copy-source", s->snap, &s->in) == -1)
    return -1;
  zl_fault("copy", "source-journaled");
  if (sr->st.be->vol_copy(&sr->st, key, s->snap, ZL_COPY_SNAPSHOT, false, m, info,
                          &made) == -1) {
    zl_error_prefix("snapshot of %s for the copy: ", key);
    struct zl_error_saved saved;
    zl_error_save(&saved);
    if (sr->st.be->vol_discard(&sr->st, s->snap) == 0)
      zl_intent_end(&s->in);
    else
      close(s->in.fd);
    s->in.fd = -1;
    zl_error_restore(&saved);
    return -1;
  }
  s->read = s->snap;
  return 0;
}

/* Decide what to read for a copy of key: key itself when nobody writes it
 * (a snapshot), else a transient snapshot where the storage makes one
 * cheaply, else key when it is not in use (refused when it is). */
static int
source_open(struct zl_sr *sr, const char *key, const json_t *meta,
            const struct zl_vol_info *info, struct source *s)
{
  memset(s, 0, sizeof *s);
  s->sr = sr;
  s->in.fd = -1;
  s->read = key;
  if (zl_meta_read_only(meta))
    return 0;
  CLEANUP_SR_UNLOCK struct zl_sr *held = zl_sr_hold(sr, LOCK_EX);
  if (!held)
    return -1;
  if (sr->st.be->caps(&sr->st) & ZL_CAP_REFLINK)
    return snapshot_source(sr, key, meta, info, s);
  return zl_in_use_writers(sr, key, meta,
                           "this SR cannot snapshot it without a full copy (no "
                           "reflinks on its filesystem) and a copy of it while it is "
                           "written would be torn: stop its writer (shut the VM down) "
                           "or copy a snapshot of it")
             ? -1
             : 0;
}

/* Under LOCK_EX: the snapshot a copy read from goes, or, when the copy
 * is a clone of it (ZFS, same pool), becomes hidden: kept for the copy,
 * collected with it (snapshot.c). */
static int
source_drop(struct zl_sr *sr, const char *snap)
{
  int deps = sr->st.be->vol_dependents ? sr->st.be->vol_dependents(&sr->st, snap) : 0;
  CLEANUP_JSON json_t *meta = NULL;

  if (deps == -1)
    return -1;
  if (deps == 0) {
    if (sr->st.be->vol_destroy(&sr->st, snap) == -1)
      return -1;
    zl_vol_lock_forget(sr, snap);
    return 0;
  }
  if (sr->st.be->vol_get(&sr->st, snap, &meta, NULL) == -1)
    return -1;
  json_object_del(meta, ZL_META_TRANSIENT);
  json_object_del(meta, ZL_META_STORAGE);
  json_object_set_new(meta, "hidden", json_true());
  return sr->st.be->vol_set_meta(&sr->st, snap, meta);
}

static void
source_close(struct source *s)
{
  if (!s->snap[0])
    return;
  struct zl_error_saved saved;
  zl_error_save(&saved);
  struct zl_sr *held = zl_sr_hold(s->sr, LOCK_EX);
  if (held && source_drop(s->sr, s->snap) == 0) {
    zl_intent_end(&s->in);
  } else {
    zl_warn("copy: cannot remove the snapshot %s it read from: %s; the next call "
            "does",
            s->snap, zl_error_msg());
    close(s->in.fd);
    s->in.fd = -1;
  }
  if (held)
    zl_sr_unlock(held);
  zl_error_restore(&saved);
}

/* --- the copy -------------------------------------------------------------- */

struct native_arg {
  struct zl_sr *src;
  const char *key;
  const struct zl_progress *p;
};

static int
make_native(struct zl_sr *sr, const char *key, int64_t size, bool thick,
            const json_t *meta, struct zl_vol_info *info, void *arg)
{
  struct native_arg *n = arg;
  (void)size;
  int r = sr->st.be->vol_copy_native(&sr->st, key, &n->src->st, n->key, thick, meta, n->p,
                                     info);
  if (r == -1)
    zl_error_prefix("copy of %s: ", n->key);
  return r;
}

/* zl_copy_data's reports through the meter (a few a second at most) */
static void
stream_cb(void *opaque, uint64_t done, uint64_t total)
{
  struct zl_meter *m = opaque;
  m->total = total;
  zl_meter_set(m, done);
}

/* Copy the data of s into the transient volume r. */
static int
stream(struct source *s, struct zl_recv *r, int64_t size, const struct zl_progress *p)
{
  CLEANUP_CLOSE int in = s->sr->st.be->vol_open(&s->sr->st, s->read, O_RDONLY);
  if (in == -1)
    return -1;
  CLEANUP_CLOSE int out = zl_recv_open(r);
  if (out == -1)
    return -1;
  struct zl_meter m;
  zl_meter_init(&m, p, 0);
  struct zl_copy_opts o = {.fresh = true, .cb = m.p ? stream_cb : NULL, .opaque = &m};
  uint64_t copied;
  if (zl_copy_data(in, out, (uint64_t)size, &o, &copied) == -1) {
    zl_error_prefix("copy of %s: ", s->read);
    return -1;
  }
  zl_meter_end(&m);
  zl_fault("copy", "data");
  if (fsync(out) == -1) {
    zl_error_sys(errno, "copy of %s: fsync", s->read);
    return -1;
  }
  zl_debug("copy of %s: %llu data bytes", s->read, (unsigned long long)copied);
  return 0;
}

int
zl_vol_copy(struct zl_sr *src, const char *key, struct zl_sr *dst,
            const struct zl_copy_args *ca, const struct zl_progress *p,
            struct zl_volume *out)
{
  CLEANUP_JSON json_t *meta = NULL;
  struct zl_vol_info info;

  if (zl_vol_lookup(src, key, &meta, &info) == -1)
    return -1;
  if (zl_meta_data_destroyed(meta)) {
    zl_error_kind(ZL_ERR_INVALID, ENODATA,
                  "volume %s holds only CBT metadata (its data was destroyed)", key);
    return -1;
  }
  json_t *keys = json_object_get(meta, "keys");
  struct zl_create_args a = {
      .key = ca->key,
      .name = ca->name ? ca->name : zl_meta_str(meta, "name"),
      .description = ca->description ? ca->description : zl_meta_str(meta, "description"),
      .size = info.virtual_size,
      .sharable = json_is_true(json_object_get(meta, "sharable")),
      .provisioning = zl_meta_thick(meta) ? ZL_PROV_THICK : ZL_PROV_THIN,
  };
  if (!a.name)
    a.name = "";
  if (!a.description)
    a.description = "";
  struct zl_recv *r = NULL;
  struct source s;
  int made = 0;

  if (source_open(src, key, meta, &info, &s) == -1)
    return -1;
  if (dst->st.be == src->st.be && dst->st.be->vol_copy_native) {
    struct native_arg n = {src, s.read, p};
    if (!(r = malloc(sizeof *r))) {
      zl_error(ENOMEM, "out of memory");
      source_close(&s);
      return -1;
    }
    made = begin(dst, &a, keys, make_native, &n, r);
    if (made != 1)
      free(TAKE_PTR(r));
    if (made == 1)
      zl_info("copy of %s into SR %s as %s: native", key, dst->st.key, r->key);
  }
  if (made == 0) {
    if (!(r = zl_recv_begin(dst, &a, keys)))
      made = -1;
    else if (stream(&s, r, info.virtual_size, p) == -1) {
      zl_recv_abort(TAKE_PTR(r));
      made = -1;
    } else {
      zl_info("copy of %s into SR %s as %s: streamed", key, dst->st.key, r->key);
    }
  }
  source_close(&s);
  if (made == -1)
    return -1;
  return zl_recv_commit(r, out);
}

/* --- recovery ---------------------------------------------------------------- */

/* receive: a transient volume whose maker died goes; a committed one stays */
static int
recover_receive(struct zl_sr *sr, const json_t *rec, const char *key)
{
  CLEANUP_JSON json_t *meta = NULL;
  (void)rec;

  if (sr->st.be->vol_get(&sr->st, key, &meta, NULL) == 0 && !zl_meta_transient(meta)) {
    zl_info("recovery: volume %s was received completely; keeping it", key);
    return 0;
  }
  if (errno != ENOENT && !meta)
    return -1;
  zl_error_clear();
  zl_info("recovery: the copy that made volume %s died; removing it", key);
  if (sr->st.be->vol_discard(&sr->st, key) == -1)
    return -1;
  zl_vol_lock_forget(sr, key);
  return 0;
}

/* copy-source: the snapshot a dead copy read from goes */
static int
recover_source(struct zl_sr *sr, const json_t *rec, const char *key)
{
  (void)rec;
  if (sr->st.be->vol_get(&sr->st, key, NULL, NULL) == -1) {
    if (errno != ENOENT)
      return -1;
    zl_error_clear();
    return sr->st.be->vol_discard(&sr->st, key); /* half made */
  }
  zl_info("recovery: removing snapshot %s a dead copy read from", key);
  return source_drop(sr, key);
}

static const struct zl_recovery recoveries[] = {
    {"receive", recover_receive},
    {"copy-source", recover_source},
    {NULL, NULL},
};

__attribute__((constructor)) static void
register_recoveries(void)
{
  zl_recover_register(recoveries);
}
