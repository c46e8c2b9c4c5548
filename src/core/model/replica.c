/* replica.c: replication between hosts, the storage side of both ends
 * (the transport is nbd/replicate.c; docs/design.md "Replication").
 *
 * Sending.  Each replication of a volume takes a snapshot of it, a
 * replication point, marked {"replication_point": DEST} in its metadata
 * (DEST names the destination host and SR), and sends that snapshot's
 * content: all of it the first time, only the blocks that changed since
 * the point the destination holds the next times.  Once the destination
 * has committed, the other points for DEST go; if anything fails, the new
 * one goes.  A sender that dies leaves a marked point behind, which the
 * next replication offers like the others and then removes.  On file SRs
 * the changes come from CBT, which the first replication turns on; on
 * ZFS from `zfs send -i` between the two points (core/model/cbt.c).
 *
 * Receiving.  A replica is a volume whose metadata says "replica": {"of":
 * the source volume's uuid, "host": the sending host, "point": the uuid of
 * the source's point its content equals}; one snapshot of it, marked with
 * the same "replica", is the replica point to fall back to.  A replica is
 * read-only: only replication changes it, so its content is always its
 * point's, exactly; to use it (disaster recovery), clone it.  A plain copy
 * (vol copy --to-host) is an ordinary volume.
 *
 *   full         a new transient volume (copy.c's zl_recv), committed
 *                with its "replica"; the replica of the same source it
 *                supersedes goes after the commit, with its snapshots.
 *   incremental  the replica itself takes the changed blocks under an
 *                intent record {"op": "replica", "key", "base": the
 *                replica point's key} while its metadata carries
 *                "receiving": it stays listed (XAPI keeps its VDI record)
 *                but nothing opens, snapshots, reverts, resizes or
 *                destroys it (users.c's refusals name the sender).  The
 *                commit clears the mark and moves the point in one
 *                metadata write; then a new replica point is taken and
 *                the old one goes.  If the transfer stops (the sender
 *                gone, the connection cut, this process dead), the replica
 *                is reverted to its replica point: by the abort, or by the
 *                recovery of the dead record at the next call on the SR.
 *
 * So the destination never shows a half-received volume's data, and an
 * interrupted replication leaves the last complete one in place for the
 * next attempt to start from.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "core/model/model.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

#define POINT_MARK "replication_point"

/* --- the sending side --------------------------------------------------------- */

struct points_ctx {
  const char *of; /* the volume */
  const char *dest;
  json_t *found; /* uuid -> key, points of `of` for dest */
};

static int
points_cb(void *opaque, const char *key, json_t *meta, const struct zl_vol_info *info)
{
  struct points_ctx *c = opaque;
  const char *of = zl_meta_str(meta, "snapshot_of");
  const char *dest = json_string_value(json_object_get(meta, POINT_MARK));
  const char *uuid = zl_meta_str(meta, "uuid");

  (void)info;
  if (zl_meta_hidden(meta) || zl_meta_broken(meta) || !of || !dest || !uuid ||
      strcmp(of, c->of) != 0 || strcmp(dest, c->dest) != 0)
    return 0;
  return json_object_set_new(c->found, uuid, json_string(key));
}

static int
set_point_mark(json_t *meta, void *arg)
{
  const char *dest = arg;
  char name[512];
  snprintf(name, sizeof name, "%s (replication point for %s)",
           zl_meta_str(meta, "name") ? zl_meta_str(meta, "name") : "", dest);
  if (json_object_set_new(meta, POINT_MARK, json_string(dest)) == -1 ||
      json_object_set_new(meta, "name", json_string(name)) == -1) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  return 1;
}

void
zl_repl_source_free(struct zl_repl_source *s)
{
  free(s->point);
  free(s->of);
  s->point = s->of = NULL;
  json_decref(s->source);
  json_decref(s->points);
  s->source = s->points = NULL;
}

int
zl_repl_prepare(struct zl_sr *sr, const char *key, const char *dest,
                struct zl_repl_source *out)
{
  CLEANUP_JSON json_t *meta = NULL;
  struct zl_vol_info info;
  struct zl_volume snap = {0};

  memset(out, 0, sizeof *out);
  if (zl_check_key(key) == -1 || zl_vol_lookup(sr, key, &meta, &info) == -1)
    return -1;
  if (!(out->of = strdup(key))) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  if (zl_meta_read_only(meta)) {
    if (dest) {
      zl_error_kind(ZL_ERR_INVALID, EINVAL,
                    "volume %s is a snapshot: replicate the volume it is a snapshot of",
                    key);
      return -1;
    }
    out->point = strdup(key); /* a copy of a snapshot reads it as it is */
    out->own_point = false;
  } else {
    /* file SRs find the next replication's changes with CBT */
    if (dest && !zl_meta_cbt(meta) && strcmp(zl_sr_type(sr), "file-live") == 0) {
      if (zl_vol_enable_cbt(sr, key) == -1)
        return -1;
      zl_info("replication of %s: changed block tracking turned on, so that the next "
              "replication sends only the changes",
              key);
      out->cbt_turned_on = true;
    }
    if (zl_vol_snapshot(sr, key, NULL, &snap) == -1)
      return -1;
    out->point = TAKE_PTR(snap.key);
    out->own_point = true;
    out->keep_point = dest != NULL;
    zl_volume_free(&snap);
    if (dest && zl_vol_update(sr, out->point, set_point_mark, (void *)dest) == -1) {
      zl_error_prefix("replication point %s: ", out->point);
      goto fail;
    }
  }
  CLEANUP_JSON json_t *pmeta = NULL;
  struct zl_vol_info pinfo;
  if (zl_vol_lookup(sr, out->point, &pmeta, &pinfo) == -1)
    goto fail;
  json_t *keys = json_object_get(meta, "keys");
  out->source = json_pack(
      "{s:s, s:s, s:s, s:s, s:I, s:O}", "uuid", zl_meta_str(meta, "uuid"), "point",
      zl_meta_str(pmeta, "uuid"), "name",
      zl_meta_str(meta, "name") ? zl_meta_str(meta, "name") : "", "description",
      zl_meta_str(meta, "description") ? zl_meta_str(meta, "description") : "", "size",
      (json_int_t)pinfo.virtual_size, "keys", keys ? keys : json_object());
  out->size = pinfo.virtual_size;
  struct points_ctx c = {key, dest, json_object()};
  out->points = c.found;
  if (!out->source || !c.found) {
    zl_error(ENOMEM, "out of memory");
    goto fail;
  }
  if (dest) {
    CLEANUP_SR_UNLOCK struct zl_sr *held = zl_sr_hold(sr, LOCK_SH);
    if (!held || sr->st.be->vol_list(&sr->st, points_cb, &c) == -1)
      goto fail;
    json_object_del(c.found, zl_meta_str(pmeta, "uuid")); /* not the new one */
  }
  return 0;

fail:;
  struct zl_error_saved saved;
  zl_error_save(&saved);
  if (out->own_point && out->point && zl_vol_destroy(sr, out->point) == -1)
    zl_warn("replication: the point %s stays: %s", out->point, zl_error_msg());
  if (out->cbt_turned_on && zl_vol_disable_cbt(sr, key) == -1)
    zl_warn("replication: CBT of %s stays on: %s", key, zl_error_msg());
  zl_error_restore(&saved);
  zl_repl_source_free(out);
  return -1;
}

int
zl_repl_changes(struct zl_sr *sr, const struct zl_repl_source *s, const char *from_uuid,
                struct zl_bitmap *out)
{
  const char *from = json_string_value(json_object_get(s->points, from_uuid));
  if (!from) {
    zl_error(EINVAL, "the destination holds point %s, which is not one of ours",
             from_uuid);
    return -1;
  }
  return zl_vol_changed_blocks(sr, from, s->point, out);
}

void
zl_repl_finish(struct zl_sr *sr, struct zl_repl_source *s, bool ok)
{
  if (!ok || !s->keep_point) {
    if (s->own_point && zl_vol_destroy(sr, s->point) == -1) {
      zl_warn("replication: the point %s stays: %s", s->point, zl_error_msg());
      zl_error_clear();
    }
    /* a first run that failed changes nothing: CBT goes off again */
    if (!ok && s->cbt_turned_on && zl_vol_disable_cbt(sr, s->of) == -1) {
      zl_warn("replication: CBT of %s stays on: %s", s->of, zl_error_msg());
      zl_error_clear();
    }
  } else {
    const char *uuid;
    json_t *k;
    json_object_foreach(s->points, uuid, k)
    {
      if (zl_vol_destroy(sr, json_string_value(k)) == -1) {
        zl_warn("replication: the old point %s stays: %s", json_string_value(k),
                zl_error_msg());
        zl_error_clear();
      }
    }
  }
  zl_repl_source_free(s);
}

/* --- the receiving side: finding a replica ------------------------------------ */

struct find {
  const char *of, *host;
  char key[256];  /* the replica */
  char point[64]; /* its point (a source snapshot's uuid) */
  char snap[256]; /* its replica point: the snapshot of it marked with that */
  json_t *metas;  /* key -> meta of every volume */
};

static int
find_cb(void *opaque, const char *key, json_t *meta, const struct zl_vol_info *info)
{
  struct find *f = opaque;
  (void)info;
  return json_object_set(f->metas, key, meta);
}

static const char *
replica_field(const json_t *meta, const char *field)
{
  return json_string_value(json_object_get(json_object_get(meta, "replica"), field));
}

/* The visible replica of `of` from `host` in sr, its point and the
 * snapshot of it at that point ("" where there is none). */
static int
find_replica(struct zl_sr *sr, struct find *f)
{
  const char *k;
  json_t *m;

  f->key[0] = f->point[0] = f->snap[0] = '\0';
  if (!(f->metas = json_object())) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  if (sr->st.be->vol_list(&sr->st, find_cb, f) == -1)
    return -1;
  json_object_foreach(f->metas, k, m)
  {
    const char *of = replica_field(m, "of"), *host = replica_field(m, "host");
    if (zl_meta_str(m, "snapshot_of") || zl_meta_hidden(m) || zl_meta_broken(m) || !of ||
        !host || strcmp(of, f->of) != 0 || strcmp(host, f->host) != 0)
      continue;
    snprintf(f->key, sizeof f->key, "%s", k);
    snprintf(f->point, sizeof f->point, "%s",
             replica_field(m, "point") ? replica_field(m, "point") : "");
  }
  json_object_foreach(f->metas, k, m)
  {
    const char *pt = replica_field(m, "point"), *of = zl_meta_str(m, "snapshot_of");
    if (f->key[0] && zl_meta_read_only(m) && !zl_meta_hidden(m) && of &&
        strcmp(of, f->key) == 0 && pt && strcmp(pt, f->point) == 0)
      snprintf(f->snap, sizeof f->snap, "%s", k);
  }
  return 0;
}

/* --- the receiving side: the transfer ----------------------------------------- */

struct zl_replica {
  struct zl_sr *sr;
  bool full;
  struct zl_recv *recv; /* full */
  char key[256];        /* incremental: the replica */
  char base[256];       /* incremental: its replica point */
  char old[256];        /* full: the replica it supersedes, or "" */
  json_t *replica;      /* {"of", "host", "point"}, or NULL: a plain copy */
  struct zl_intent in;
  int fd;
};

static int
set_receiving(json_t *meta, void *arg)
{
  return json_object_set_new(meta, ZL_META_RECEIVING, json_string(arg)) == 0 ? 1 : -1;
}

static int
begin_incremental(struct zl_replica *r, struct find *f, int64_t size, json_t **plan)
{
  CLEANUP_JSON json_t *meta = NULL;
  struct zl_vol_info info;

  CLEANUP_SR_UNLOCK struct zl_sr *held = zl_sr_hold(r->sr, LOCK_EX);
  if (!held || r->sr->st.be->vol_get(&r->sr->st, f->key, &meta, &info) == -1)
    return -1;
  if (zl_in_use_writers(r->sr, f->key, meta,
                        "a replica takes changes only while nothing uses it"))
    return -1;
  if (zl_users_attached(r->sr, f->key) || zl_users_shared(r->sr, f->key)) {
    zl_error_kind(ZL_ERR_BUSY, EBUSY,
                  "replica %s is in use: it is %s on this host; a replica takes changes "
                  "only while nothing uses it",
                  f->key, zl_users_shared(r->sr, f->key) ? "shared" : "attached");
    return -1;
  }
  snprintf(r->key, sizeof r->key, "%s", f->key);
  snprintf(r->base, sizeof r->base, "%s", f->snap);
  CLEANUP_JSON json_t *rec =
      json_pack("{s:s, s:s, s:s}", "op", "replica", "key", r->key, "base", r->base);
  if (!rec || zl_intent_begin(r->sr, rec, &r->in) == -1)
    return -1;
  json_object_del(meta, ZL_META_STORAGE);
  if (set_receiving(meta, r->base) != 1 ||
      r->sr->st.be->vol_set_meta(&r->sr->st, r->key, meta) == -1) {
    zl_intent_end(&r->in);
    return -1;
  }
  zl_fault("replica", "receiving");
  if (size > info.virtual_size &&
      r->sr->st.be->vol_resize(&r->sr->st, r->key, size, zl_meta_thick(meta)) == -1) {
    zl_error_prefix("replica %s: grow to %lld bytes: ", r->key, (long long)size);
    return -2; /* marked: the caller falls back */
  }
  *plan = json_pack("{s:s, s:s, s:s}", "mode", "incremental", "from", f->point, "replica",
                    r->key);
  return *plan ? 0 : -2;
}

static bool
in_list(const json_t *list, const char *s)
{
  size_t i;
  json_t *v;

  json_array_foreach(list, i, v)
  {
    if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
      return true;
  }
  return false;
}

static void replica_free(struct zl_replica *r);
static int fall_back(struct zl_sr *sr, const char *key, const char *base);
static void new_point(struct zl_sr *sr, const char *key, json_t *replica,
                      const char *old_snap, const char *old_replica);

struct zl_replica *
zl_replica_begin(struct zl_sr *sr, const char *host, const json_t *source,
                 const json_t *points, bool replica, json_t **plan)
{
  struct find f = {.of = json_string_value(json_object_get(source, "uuid")),
                   .host = host};
  const char *point = json_string_value(json_object_get(source, "point"));
  json_int_t size = json_integer_value(json_object_get(source, "size"));
  struct zl_replica *r = calloc(1, sizeof *r);

  *plan = NULL;
  if (!r) {
    zl_error(ENOMEM, "out of memory");
    return NULL;
  }
  r->sr = sr;
  r->fd = r->in.fd = -1;
  if (!f.of || !point || size <= 0 || (points && !json_is_array(points))) {
    zl_error(EINVAL, "a replication names the source's uuid, its size, the point it "
                     "sends and the points it can send changes from");
    goto fail;
  }
  if (replica) {
    r->replica = json_pack("{s:s, s:s, s:s}", "of", f.of, "host", host, "point", point);
    if (!r->replica || find_replica(sr, &f) == -1)
      goto fail;
  }
  if (replica && f.key[0] && !f.snap[0] && points && in_list(points, f.point)) {
    /* committed, then cut off before its replica point was taken: the
     * replica (read-only) still holds exactly its point's content */
    new_point(sr, f.key, json_object_get(json_object_get(f.metas, f.key), "replica"),
              NULL, NULL);
    json_decref(f.metas);
    f.metas = NULL;
    if (find_replica(sr, &f) == -1)
      goto fail;
  }
  struct zl_vol_info rinfo = {0};
  if (f.key[0] && sr->st.be->vol_get(&sr->st, f.key, NULL, &rinfo) == -1)
    goto fail;
  if (replica && f.key[0] && f.snap[0] && points && in_list(points, f.point) &&
      size >= rinfo.virtual_size) {
    int rc = begin_incremental(r, &f, size, plan);
    if (rc == -2) {
      struct zl_error_saved saved;
      zl_error_save(&saved);
      CLEANUP_SR_UNLOCK struct zl_sr *held = zl_sr_hold(sr, LOCK_EX);
      if (held && fall_back(sr, r->key, r->base) == 0)
        zl_intent_end(&r->in);
      zl_error_restore(&saved);
      goto fail;
    }
    if (rc == -1)
      goto fail;
    zl_info("replica %s of %s from host %s: incremental from point %s", r->key, f.of,
            host, f.point);
  } else {
    struct zl_create_args a = {
        .key = NULL,
        .name = json_string_value(json_object_get(source, "name")),
        .description = json_string_value(json_object_get(source, "description")),
        .size = size,
        .provisioning = ZL_PROV_DEFAULT,
    };
    if (!a.name)
      a.name = "";
    if (!a.description)
      a.description = "";
    r->full = true;
    snprintf(r->old, sizeof r->old, "%s", f.key);
    CLEANUP_JSON json_t *extra =
        r->replica ? json_pack("{s:O, s:b}", "replica", r->replica, "read_only", true)
                   : json_object();
    r->recv =
        extra ? zl_recv_begin_meta(sr, &a, json_object_get(source, "keys"), extra) : NULL;
    if (!r->recv)
      goto fail;
    *plan = json_pack("{s:s, s:s}", "mode", "full", "replica", zl_recv_key(r->recv));
    if (!*plan) {
      zl_recv_abort(TAKE_PTR(r->recv));
      zl_error(ENOMEM, "out of memory");
      goto fail;
    }
    zl_info("%s %s of %s from host %s: full", replica ? "replica" : "copy",
            zl_recv_key(r->recv), f.of, host);
  }
  json_decref(f.metas);
  return r;

fail:
  json_decref(f.metas);
  replica_free(r);
  return NULL;
}

int
zl_replica_fd(struct zl_replica *r)
{
  if (r->fd >= 0)
    return r->fd;
  r->fd = r->full ? zl_recv_open(r->recv)
                  : r->sr->st.be->vol_open(&r->sr->st, r->key, O_RDWR);
  return r->fd;
}

static int
set_replica(json_t *meta, void *arg)
{
  json_object_del(meta, ZL_META_RECEIVING);
  return json_object_set(meta, "replica", arg) == 0 ? 1 : -1;
}

/* A replica point: its "replica", and a name that says what it is. */
static int
set_replica_point(json_t *meta, void *arg)
{
  char name[512];
  snprintf(name, sizeof name, "%s (replica point)",
           zl_meta_str(meta, "name") ? zl_meta_str(meta, "name") : "");
  if (json_object_set_new(meta, "name", json_string(name)) == -1)
    return -1;
  return set_replica(meta, arg);
}

static int
destroy_tree(struct zl_sr *sr, const char *key)
{
  struct zl_volume *v;
  size_t n;
  int rc = 0;

  if (zl_sr_ls(sr, &v, &n) == -1)
    return -1;
  for (size_t i = 0; i < n && rc == 0; i++)
    if (v[i].snapshot_of && strcmp(v[i].snapshot_of, key) == 0)
      rc = zl_vol_destroy(sr, v[i].key);
  zl_volume_list_free(v, n);
  return rc == 0 ? zl_vol_destroy(sr, key) : -1;
}

struct stale_ctx {
  const char *key, *keep;
  json_t *found; /* keys */
};

static int
stale_cb(void *opaque, const char *key, json_t *meta, const struct zl_vol_info *info)
{
  struct stale_ctx *c = opaque;
  const char *of = zl_meta_str(meta, "snapshot_of");
  (void)info;
  if (!of || strcmp(of, c->key) != 0 || strcmp(key, c->keep) == 0 ||
      !json_object_get(meta, "replica") || zl_meta_hidden(meta))
    return 0;
  return json_array_append_new(c->found, json_string(key));
}

/* The replica points of key but keep (a commit cut off before its old
 * point went leaves two). */
static void
drop_stale_points(struct zl_sr *sr, const char *key, const char *keep)
{
  struct stale_ctx c = {key, keep, json_array()};
  size_t i;
  json_t *k;

  if (!c.found || sr->st.be->vol_list(&sr->st, stale_cb, &c) == -1) {
    zl_error_clear();
    json_decref(c.found);
    return;
  }
  json_array_foreach(c.found, i, k)
  {
    if (zl_vol_destroy(sr, json_string_value(k)) == -1) {
      zl_warn("replica %s: the old replica point %s stays: %s", key, json_string_value(k),
              zl_error_msg());
      zl_error_clear();
    }
  }
  json_decref(c.found);
}

/* After the commit: a new replica point, then the old points (or the
 * replica superseded) go.  Failures are warnings: the replica is
 * complete, and the next replication is a full one if no point is left. */
static void
new_point(struct zl_sr *sr, const char *key, json_t *replica, const char *old_snap,
          const char *old_replica)
{
  struct zl_volume snap = {0};

  if (zl_vol_snapshot(sr, key, NULL, &snap) == -1 ||
      zl_vol_update(sr, snap.key, set_replica_point, replica) == -1) {
    zl_warn("replica %s: no replica point: %s", key, zl_error_msg());
    zl_error_clear();
    if (snap.key && zl_vol_destroy(sr, snap.key) == -1)
      zl_error_clear();
    zl_volume_free(&snap);
    return;
  }
  (void)old_snap;
  drop_stale_points(sr, key, snap.key);
  zl_volume_free(&snap);
  if (old_replica && *old_replica && destroy_tree(sr, old_replica) == -1) {
    zl_warn("replica %s: the replica it supersedes (%s) stays: %s", key, old_replica,
            zl_error_msg());
    zl_error_clear();
  }
}

static int
commit_incremental(struct zl_replica *r)
{
  CLEANUP_JSON json_t *meta = NULL;

  CLEANUP_SR_UNLOCK struct zl_sr *held = zl_sr_hold(r->sr, LOCK_EX);
  if (!held || r->sr->st.be->vol_get(&r->sr->st, r->key, &meta, NULL) == -1)
    return -1;
  /* the changes went past the tracking layer: CBT sees all of it changed */
  if (zl_meta_cbt(meta) && zl_cbt_mark_all(r->sr, r->key) == -1)
    return -1;
  json_object_del(meta, ZL_META_STORAGE);
  if (set_replica(meta, r->replica) != 1 ||
      r->sr->st.be->vol_set_meta(&r->sr->st, r->key, meta) == -1)
    return -1;
  zl_fault("replica", "committed");
  zl_intent_end(&r->in);
  return 0;
}

int
zl_replica_commit(struct zl_replica *r, struct zl_volume *out)
{
  char key[256];
  int rc;

  if (r->fd >= 0 && fsync(r->fd) == -1) {
    zl_error_sys(errno, "replica: fsync");
    zl_replica_abort(r);
    return -1;
  }
  if (r->fd >= 0)
    close(r->fd);
  r->fd = -1;
  if (r->full) {
    snprintf(key, sizeof key, "%s", zl_recv_key(r->recv));
    rc = zl_recv_commit(TAKE_PTR(r->recv), NULL);
    if (rc == 0 && r->replica)
      new_point(r->sr, key, r->replica, NULL, r->old);
  } else {
    snprintf(key, sizeof key, "%s", r->key);
    rc = commit_incremental(r);
    if (rc == -1) {
      zl_replica_abort(r);
      return -1;
    }
    new_point(r->sr, key, r->replica, r->base, NULL);
  }
  struct zl_sr *sr = r->sr;
  replica_free(r);
  if (rc == -1)
    return -1;
  zl_info("replica %s committed", key);
  return out ? zl_vol_stat(sr, key, out) : 0;
}

/* Under LOCK_EX: the replica back to its point, the mark gone. */
static int
fall_back(struct zl_sr *sr, const char *key, const char *base)
{
  CLEANUP_JSON json_t *meta = NULL;

  zl_info("replica %s: the transfer did not finish; back to its replica point %s", key,
          base);
  if (sr->st.be->vol_get(&sr->st, key, &meta, NULL) == -1)
    return -1;
  if (sr->st.be->vol_revert(&sr->st, key, base, zl_meta_thick(meta)) == -1)
    return -1;
  if (zl_meta_cbt(meta) && zl_cbt_mark_all(sr, key) == -1)
    return -1;
  json_object_del(meta, ZL_META_RECEIVING);
  json_object_del(meta, ZL_META_STORAGE);
  return sr->st.be->vol_set_meta(&sr->st, key, meta);
}

static void
replica_free(struct zl_replica *r)
{
  if (!r)
    return;
  if (r->fd >= 0)
    close(r->fd);
  json_decref(r->replica);
  free(r);
}

void
zl_replica_abort(struct zl_replica *r)
{
  struct zl_error_saved saved;

  if (!r)
    return;
  zl_error_save(&saved);
  if (r->fd >= 0)
    close(r->fd);
  r->fd = -1;
  if (r->full) {
    zl_recv_abort(TAKE_PTR(r->recv));
  } else {
    struct zl_sr *held = zl_sr_hold(r->sr, LOCK_EX);
    if (held && fall_back(r->sr, r->key, r->base) == 0) {
      zl_intent_end(&r->in);
    } else {
      zl_warn("replica %s: %s; the next call on the SR puts it back", r->key,
              zl_error_msg());
      close(r->in.fd); /* the record stays, dead: recovery reverts */
    }
    if (held)
      zl_sr_unlock(held);
  }
  replica_free(r);
  zl_error_restore(&saved);
}

/* --- recovery ------------------------------------------------------------------ */

static int
recover_replica(struct zl_sr *sr, const json_t *rec, const char *key)
{
  const char *base = json_string_value(json_object_get(rec, "base"));
  CLEANUP_JSON json_t *meta = NULL;

  if (sr->st.be->vol_get(&sr->st, key, &meta, NULL) == -1)
    return errno == ENOENT ? 0 : -1;
  if (!json_object_get(meta, ZL_META_RECEIVING))
    return 0; /* committed */
  if (!base) {
    zl_error(EINVAL, "replica record of %s without its base", key);
    return -1;
  }
  return fall_back(sr, key, base);
}

static const struct zl_recovery recoveries[] = {
    {"replica", recover_replica},
    {NULL, NULL},
};

__attribute__((constructor)) static void
register_recoveries(void)
{
  zl_recover_register(recoveries);
}
