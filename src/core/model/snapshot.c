/* snapshot.c: snapshots, clones, revert and destroy.
 *
 * Destroy and dependents.  Some storage cannot remove a snapshot while
 * clones made from it exist (ZFS: a clone's origin).  The user must still
 * be able to destroy such a snapshot, and must never see volumes they did
 * not ask for.  So:
 *   - a volume with dependents (backend vol_dependents() > 0) is *hidden*:
 *     its metadata gets "hidden": true, it disappears from SR.ls and stat,
 *     destroying it again succeeds, and its storage stays;
 *   - whenever something is removed, hidden volumes that nothing depends on
 *     any more are collected (removed for real), repeatedly, so a chain of
 *     hidden ancestors goes away with its last dependent.
 * On storage without such dependencies (reflink or copies) nothing is ever
 * hidden.
 */
#include <errno.h>
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

/* What uses key now, for the refusals below (ZL_ERR_BUSY: VDIInUse).
 *   USE_ATTACHED  attached on this host (an NBD export, a loop device)
 *   USE_WRITERS   something may be writing it: active on a host (XAPI's
 *                 activate), open on a Ganeti node, or a loop device here
 * Returns 1 (error set, naming the user), 0 if not in use. */
enum { USE_ATTACHED = 1, USE_WRITERS = 2 };

static int
in_use(struct zl_sr *sr, const char *key, const json_t *meta, int what, const char *op)
{
  const char *host =
      json_string_value(json_object_get(json_object_get(meta, "active_on"), "host"));
  json_t *opened = json_object_get(meta, "opened");
  char who[512] = "";

  if (zl_meta_receiving_error(key, meta) == -1)
    return 1;
  if (host && *host) /* "": deactivated, nobody holds it */
    snprintf(who, sizeof who, "it is active on host %s", host);
  else if (json_object_size(opened)) {
    const char *node = json_object_iter_key(json_object_iter(opened));
    snprintf(who, sizeof who, "it is open on node %s", node);
  } else if (zl_users_writer_blockdev(sr, key) ||
             ((what & USE_ATTACHED) && zl_users_blockdev(sr, key)))
    snprintf(who, sizeof who, "it is attached as a block device on this host");
  else if ((what & USE_ATTACHED) && zl_users_attached(sr, key))
    snprintf(who, sizeof who, "it is attached on this host");
  if (!who[0])
    return 0;
  zl_error_kind(ZL_ERR_BUSY, EBUSY, "volume %s is in use: %s; %s", key, who, op);
  zl_error_subject(key);
  return 1;
}

int
zl_in_use_writers(struct zl_sr *sr, const char *key, const json_t *meta, const char *op)
{
  return in_use(sr, key, meta, USE_WRITERS, op);
}

static int
copy_volume(struct zl_sr *sr, const char *key, const char *new_key,
            enum zl_copy_kind kind, bool hidden, struct zl_volume *out)
{
  const char *op = kind == ZL_COPY_SNAPSHOT ? "snapshot" : "clone";
  char uuid[ZL_UUID_LEN + 1];
  struct zl_intent in;
  CLEANUP_JSON json_t *src = NULL;
  CLEANUP_JSON json_t *meta = NULL;
  CLEANUP_JSON json_t *rec = NULL;

  if (zl_check_key(key) == -1 || (new_key && zl_check_key(new_key) == -1) ||
      zl_uuid_generate(uuid) == -1)
    return -1;
  if (!new_key)
    new_key = uuid;

  CLEANUP_SR_UNLOCK struct zl_sr *held = zl_sr_hold(sr, LOCK_EX);
  if (!held)
    return -1;
  struct zl_vol_info src_info, info;
  if (zl_vol_lookup(sr, key, &src, &src_info) == -1)
    return -1;
  if (new_key != uuid && sr->st.be->vol_get(&sr->st, new_key, NULL, NULL) == 0) {
    zl_error_kind(ZL_ERR_EXISTS, EEXIST, "volume %s already exists in SR %s", new_key,
                  sr->st.key);
    return -1;
  }
  /* a copy made while writes land is torn: only storage that snapshots in
   * one step (reflinks, ZFS) may take a volume something writes to */
  if (!(sr->st.be->caps(&sr->st) & ZL_CAP_REFLINK) &&
      in_use(sr, key, src, USE_WRITERS,
             "this SR copies data to snapshot it (no reflinks "
             "on its filesystem) and the copy would be torn: "
             "stop its writer (shut the VM down) first"))
    return -1;
  bool thick = zl_meta_thick(src);
  meta = zl_meta_new(
      new_key, uuid, zl_meta_str(src, "name"),
      zl_meta_str(src, "description") ? zl_meta_str(src, "description") : "",
      json_is_true(json_object_get(src, "sharable")), kind == ZL_COPY_SNAPSHOT,
      thick ? ZL_PROV_THICK : ZL_PROV_THIN, kind == ZL_COPY_SNAPSHOT ? key : NULL,
      kind == ZL_COPY_CLONE ? key : NULL);
  if (hidden)
    json_object_set_new(meta, "hidden", json_true());
  /* a snapshot of a tracked volume carries its changes since the last one */
  struct zl_cbt_rotation rot = {0};
  bool cbt = kind == ZL_COPY_SNAPSHOT && !hidden && zl_meta_cbt(src);
  if (cbt)
    json_object_set_new(meta, "cbt", json_true());
  rec = json_pack("{s:s, s:s, s:s}", "op", op, "key", new_key, "source", key);
  if (!meta || !rec || zl_intent_begin(sr, rec, &in) == -1)
    return -1;
  zl_fault(op, "journaled");
  if (cbt && zl_users_blockdev(sr, key)) {
    /* writes through a block device passed the tracking layer by */
    zl_warn("volume %s is attached as a block device: every block counts as changed",
            key);
    if (zl_cbt_mark_all(sr, key) == -1)
      goto fail_journaled;
  }
  if (cbt && zl_cbt_rotate_begin(sr, key, src, &rot) == -1)
    goto fail_journaled;
  if (sr->st.be->vol_copy(&sr->st, key, new_key, kind, thick, meta, &src_info, &info) ==
      -1) {
    zl_error_prefix("%s of volume %s: ", op, key);
    struct zl_error_saved saved;
    zl_error_save(&saved);
    if (sr->st.be->vol_discard(&sr->st, new_key) == 0)
      zl_intent_end(&in);
    else
      close(in.fd); /* leave the record: the next call cleans up */
    zl_error_restore(&saved);
    return -1;
  }
  zl_fault(op, "committed");
  if (cbt && zl_cbt_rotate_end(sr, key, new_key, &rot) == -1) {
    /* the snapshot stands; its changes stay counted in the volume's record */
    zl_warn("snapshot %s of %s: %s; CBT cannot start from it", new_key, key,
            zl_error_msg());
    zl_error_clear();
  }
  zl_intent_end(&in);
  zl_info("%s of volume %s is %s", op, key, new_key);
  return zl_meta_to_volume(new_key, meta, &info, out);

fail_journaled:
  zl_intent_end(&in);
  return -1;
}

int
zl_vol_snapshot(struct zl_sr *sr, const char *key, const char *new_key,
                struct zl_volume *out)
{
  return copy_volume(sr, key, new_key, ZL_COPY_SNAPSHOT, false, out);
}

int
zl_vol_clone(struct zl_sr *sr, const char *key, const char *new_key,
             struct zl_volume *out)
{
  return copy_volume(sr, key, new_key, ZL_COPY_CLONE, false, out);
}

int
zl_vol_snapshot_hidden(struct zl_sr *sr, const char *key, char **new_key)
{
  struct zl_volume v;

  if (copy_volume(sr, key, NULL, ZL_COPY_SNAPSHOT, true, &v) == -1)
    return -1;
  *new_key = TAKE_PTR(v.key);
  zl_volume_free(&v);
  return 0;
}

/* Find snapshot's metadata, hidden or not. */
static int
lookup_any(struct zl_sr *sr, const char *key, json_t **meta)
{
  if (zl_check_key(key) == -1)
    return -1;
  if (sr->st.be->vol_get(&sr->st, key, meta, NULL) == -1) {
    if (errno == ENOENT)
      zl_error_kind(ZL_ERR_NO_VOLUME, ENOENT, "volume %s does not exist in SR %s", key,
                    sr->st.key);
    return -1;
  }
  if (zl_meta_broken(*meta)) {
    zl_meta_broken_error(key, *meta);
    json_decref(*meta);
    *meta = NULL;
    return -1;
  }
  return 0;
}

static int revert(struct zl_sr *sr, const char *snapshot, const char *key, bool any,
                  const struct zl_progress *p);

int
zl_vol_revert(struct zl_sr *sr, const char *snapshot, const char *key)
{
  return revert(sr, snapshot, key, false, NULL);
}

int
zl_vol_revert_progress(struct zl_sr *sr, const char *snapshot, const char *key,
                       const struct zl_progress *p)
{
  return revert(sr, snapshot, key, false, p);
}

int
zl_vol_revert_any(struct zl_sr *sr, const char *snapshot, const char *key)
{
  return revert(sr, snapshot, key, true, NULL);
}

/* The backend's copy reports to the meter (which shows at most 4 a
 * second). */
static void
copy_meter(void *opaque, uint64_t done, uint64_t total)
{
  struct zl_meter *m = opaque;
  m->total = total;
  zl_meter_set(m, done);
}

int
zl_vol_remove(struct zl_sr *sr, const char *key)
{
  if (zl_check_key(key) == -1)
    return -1;
  CLEANUP_SR_UNLOCK struct zl_sr *held = zl_sr_hold(sr, LOCK_EX);
  if (!held)
    return -1;
  int r = 0;
  if (sr->st.be->vol_get(&sr->st, key, NULL, NULL) == 0)
    r = zl_vol_remove_unlocked(sr, key);
  else if (errno != ENOENT)
    r = -1;
  return r;
}

static int
revert(struct zl_sr *sr, const char *snapshot, const char *key, bool any,
       const struct zl_progress *p)
{
  struct zl_intent in;
  CLEANUP_JSON json_t *vol = NULL;
  CLEANUP_JSON json_t *snap = NULL;
  CLEANUP_JSON json_t *rec = NULL;

  if (zl_check_key(key) == -1 || zl_check_key(snapshot) == -1)
    return -1;
  CLEANUP_SR_UNLOCK struct zl_sr *held = zl_sr_hold(sr, LOCK_EX);
  if (!held)
    return -1;
  if (zl_vol_lookup(sr, key, &vol, NULL) == -1 ||
      (any ? lookup_any(sr, snapshot, &snap)
           : zl_vol_lookup(sr, snapshot, &snap, NULL)) == -1)
    return -1;
  if (zl_meta_read_only(vol)) {
    zl_error_kind(ZL_ERR_READ_ONLY, EROFS,
                  "volume %s is a snapshot; it cannot be reverted", key);
    return -1;
  }
  const char *of = zl_meta_str(snap, "snapshot_of");
  if (!zl_meta_read_only(snap) || !of || strcmp(of, key) != 0) {
    zl_error(EINVAL, "volume %s is not a snapshot of %s", snapshot, key);
    return -1;
  }
  /* the user's revert: not under a running guest.  The reset of a
   * non-persistent disk (any) runs at Datapath.close, attached but after
   * deactivate: only writers refuse it. */
  if (in_use(sr, key, vol, any ? USE_WRITERS : USE_WRITERS | USE_ATTACHED,
             "revert it when it is detached"))
    return -1;
  bool thick = zl_meta_thick(vol);
  rec = json_pack("{s:s, s:s, s:s, s:b}", "op", "revert", "key", key, "snapshot",
                  snapshot, "thick", thick);
  if (!rec || zl_intent_begin(sr, rec, &in) == -1)
    return -1;
  zl_fault("revert", "journaled");
  struct zl_meter m;
  zl_meter_init(&m, p, 0);
  if (m.p)
    sr->st.copy_progress = (struct zl_copy_progress){copy_meter, &m};
  int r = sr->st.be->vol_revert(&sr->st, key, snapshot, thick);
  sr->st.copy_progress = (struct zl_copy_progress){NULL, NULL};
  if (r == -1) {
    /* backends leave the volume as it was when they fail */
    zl_error_prefix("revert volume %s to %s: ", key, snapshot);
    zl_intent_end(&in);
    return -1;
  }
  if (m.total) /* it copied */
    zl_meter_end(&m);
  zl_intent_end(&in);
  /* the volume now differs from its last snapshot in unknown blocks */
  if (zl_cbt_mark_all(sr, key) == -1) {
    zl_warn("revert of %s: %s", key, zl_error_msg());
    zl_error_clear();
  }
  zl_info("reverted volume %s to snapshot %s", key, snapshot);
  return 0;
}

static int
remove_one(struct zl_sr *sr, const char *key)
{
  struct zl_intent in;
  CLEANUP_JSON json_t *rec = json_pack("{s:s, s:s}", "op", "destroy", "key", key);

  if (!rec || zl_intent_begin(sr, rec, &in) == -1)
    return -1;
  zl_fault("destroy", "journaled");
  if (zl_cbt_forget(sr, key) == -1) {
    zl_error_prefix("destroy volume %s: ", key);
    zl_intent_end(&in);
    return -1;
  }
  if (sr->st.be->vol_destroy(&sr->st, key) == -1) {
    zl_error_prefix("destroy volume %s: ", key);
    close(in.fd); /* the next call finishes the destruction */
    return -1;
  }
  zl_vol_lock_forget(sr, key);
  zl_intent_end(&in);
  return 0;
}

int
zl_vol_remove_unlocked(struct zl_sr *sr, const char *key)
{
  if (remove_one(sr, key) == -1)
    return -1;
  return zl_collect_hidden(sr);
}

struct hidden_ctx {
  char **keys;
  size_t n;
};

static int
hidden_cb(void *opaque, const char *key, json_t *meta, const struct zl_vol_info *info)
{
  struct hidden_ctx *c = opaque;
  (void)info;
  /* a volume being made (a copy's, an import's) is its maker's: recovery
   * ran first, so the maker is alive */
  if (!zl_meta_hidden(meta) || zl_meta_transient(meta) ||
      json_object_get(meta, "importing"))
    return 0;
  char **nk = realloc(c->keys, (c->n + 1) * sizeof *nk);
  if (!nk || !(nk[c->n] = strdup(key))) {
    if (nk)
      c->keys = nk;
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  c->keys = nk;
  c->n++;
  return 0;
}

int
zl_collect_hidden(struct zl_sr *sr)
{
  if (!sr->st.be->vol_dependents)
    return 0; /* nothing can ever be hidden */

  for (;;) {
    struct hidden_ctx c = {0};
    size_t removed = 0;
    int r = sr->st.be->vol_list(&sr->st, hidden_cb, &c);

    for (size_t i = 0; r == 0 && i < c.n; i++) {
      int deps = sr->st.be->vol_dependents(&sr->st, c.keys[i]);
      if (deps == -1) {
        r = -1;
      } else if (deps == 0) {
        zl_info("collecting hidden volume %s: nothing depends on it any more", c.keys[i]);
        if (remove_one(sr, c.keys[i]) == -1)
          r = -1;
        else
          removed++;
      }
    }
    for (size_t i = 0; i < c.n; i++)
      free(c.keys[i]);
    free(c.keys);
    if (r == -1)
      return -1;
    if (removed == 0)
      return 0;
  }
}

int
zl_vol_destroy(struct zl_sr *sr, const char *key)
{
  CLEANUP_JSON json_t *meta = NULL;
  int r = -1;

  if (zl_check_key(key) == -1)
    return -1;
  CLEANUP_SR_UNLOCK struct zl_sr *held = zl_sr_hold(sr, LOCK_EX);
  if (!held)
    return -1;
  if (sr->st.be->vol_get(&sr->st, key, &meta, NULL) == -1) {
    if (errno == ENOENT) {
      zl_info("destroy of volume %s: already gone", key);
      r = 0;
    }
    goto out;
  }
  if (zl_meta_hidden(meta)) {
    r = 0;
    goto out;
  }
  if (zl_meta_broken(meta)) { /* never destroyed without knowing what it is */
    zl_meta_broken_error(key, meta);
    goto out;
  }
  if (in_use(sr, key, meta, USE_WRITERS | USE_ATTACHED, "detach it first"))
    goto out;
  int deps = sr->st.be->vol_dependents ? sr->st.be->vol_dependents(&sr->st, key) : 0;
  if (deps == -1)
    goto out;
  if (deps > 0) {
    json_object_set_new(meta, "hidden", json_true());
    json_object_del(meta, ZL_META_STORAGE);
    r = sr->st.be->vol_set_meta(&sr->st, key, meta);
    if (r == 0)
      zl_info("volume %s hidden: %d clone%s still depend on it; removed with the last",
              key, deps, deps == 1 ? "" : "s");
    zl_fault("destroy", "hidden");
    goto out;
  }
  r = zl_vol_remove_unlocked(sr, key);
  if (r == 0)
    zl_info("destroyed volume %s", key);
out:
  return r;
}

/* --- recovery (registered in recover.c) ------------------------------------- */

/* snapshot, clone: as a create; a snapshot that stands finishes its
 * changed-block rotation */
static int
recover_copy(struct zl_sr *sr, const json_t *rec, const char *key)
{
  if (zl_recover_new_volume(sr, key) == -1)
    return -1;
  const char *op = zl_meta_str(rec, "op"), *source = zl_meta_str(rec, "source");
  if (!strcmp(op, "snapshot") && source && zl_key_valid(source) &&
      sr->st.be->vol_get(&sr->st, key, NULL, NULL) == 0)
    return zl_cbt_rotate_recover(sr, source, key);
  zl_error_clear();
  return 0;
}

/* destroy: finished (the user asked for it) */
static int
recover_destroy(struct zl_sr *sr, const json_t *rec, const char *key)
{
  (void)rec;
  zl_info("recovery: finishing the destruction of %s", key);
  return zl_vol_remove_unlocked(sr, key);
}

/* revert: finished, the snapshot's content taken again */
static int
recover_revert(struct zl_sr *sr, const json_t *rec, const char *key)
{
  const char *snap = zl_meta_str(rec, "snapshot");
  if (!snap || !zl_key_valid(snap)) {
    zl_error(EINVAL, "revert record without a snapshot");
    return -1;
  }
  /* The volume itself may be absent for a moment in a backend's revert
   * (a rename swap): the backend's re-run sees where it stopped. */
  if (sr->st.be->vol_get(&sr->st, snap, NULL, NULL) == -1) {
    if (errno != ENOENT)
      return -1;
    zl_warn("recovery: revert of %s: snapshot %s is gone; nothing to redo", key, snap);
    return 0;
  }
  zl_info("recovery: finishing the revert of %s to %s", key, snap);
  if (zl_cbt_mark_all(sr, key) == -1) /* its blocks change in unknown places */
    return -1;
  if (sr->st.be->vol_revert(&sr->st, key, snap,
                            json_is_true(json_object_get(rec, "thick"))) == -1) {
    if (errno != ENOENT)
      return -1;
    zl_warn("recovery: revert of %s: the volume is gone; nothing to redo", key);
  }
  return 0;
}

static const struct zl_recovery recoveries[] = {
    {"snapshot", recover_copy},
    {"clone", recover_copy},
    {"destroy", recover_destroy},
    {"revert", recover_revert},
    {NULL, NULL},
};

__attribute__((constructor)) static void
register_recoveries(void)
{
  zl_recover_register(recoveries);
}
