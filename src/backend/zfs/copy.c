/* copy.c: copies between zfs-live SRs without the data passing through
 * the core (backend.h vol_copy_native).
 *
 *   same pool      a clone of the source, in the destination SR: instant,
 *                  blocks shared.  A writable source is cloned through an
 *                  internal snapshot <src>@_zl-origin-<dst> (destroyed with
 *                  the copy: zb_vol_destroy follows the clone's origin), so
 *                  the source stays destroyable: the core hides it while
 *                  the copy needs its blocks and collects it after.
 *   other pools    zfs send of one snapshot | zfs receive, with -c -L -e
 *                  where the tools have them; where receive has -s, a
 *                  stream cut off part-way is resumed from the receive
 *                  resume token (twice at most), else sent again whole
 *                  (zfs-fuse).  The source snapshot is internal
 *                  (<src>@_zl-send-<dst>) unless the source is one.
 * Layouts must match (a zvol is not received into a dataset SR): else the
 * core streams the data.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/zfs/zfs.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

#define ZB_SEND_PREFIX "_zl-send-"

/* Properties the volume needs in its SR that a clone or a received stream
 * does not bring: size and mount policy (dataset layout), reservation. */
static int
add_local_props(struct zb_sr *z, int64_t size, bool thick, struct zprop *props, int *n,
                char *sizebuf, size_t sl, char *resbuf, size_t rl)
{
  if (z->layout == LAYOUT_DATASET) {
    snprintf(sizebuf, sl, "%lld", (long long)size);
    props[(*n)++] = (struct zprop){ZB_SIZE_PROP, sizebuf};
    props[(*n)++] = (struct zprop){"canmount", "noauto"};
  }
  if (thick) {
    if (z->layout == LAYOUT_ZVOL && z->caps.refres_auto)
      snprintf(resbuf, rl, "auto");
    else
      snprintf(resbuf, rl, "%lld",
               (long long)zb_thick_reservation(size, z->blocksize, z->copies));
    props[(*n)++] = (struct zprop){"refreservation", resbuf};
  }
  return 0;
}

static int
clone_across(struct zl_store *sr, const char *dst, struct zl_store *src_sr,
             const char *src, bool thick, const json_t *meta,
             const struct zl_vol_info *src_info)
{
  struct zb_sr *z = zb_of(sr), *zs = zb_of(src_sr);
  char srcname[600], origin[700], ds[600], size[32], res[64];
  struct zprop props[ZB_META_CHUNKS + 4];
  CLEANUP_FREE char *buf = NULL;
  bool src_snap, made_origin = false;
  int n;

  if (zb_name_of(src_sr, src, srcname, sizeof srcname, &src_snap) == -1)
    return -1;
  if (src_snap) {
    snprintf(origin, sizeof origin, "%s", srcname);
  } else {
    if (zs->layout == LAYOUT_DATASET)
      zb_flush_file(src_sr, src);
    snprintf(origin, sizeof origin, "%s@" ZB_ORIGIN_PREFIX "%s", srcname, dst);
    if (zb_snapshot_cmd(zs, origin, NULL, 0) == -1)
      return -1;
    made_origin = true;
  }
  zl_fault("copy", "origin");
  if (zb_meta_encode(meta, 'a', props, &n, &buf) == -1)
    goto fail;
  add_local_props(z, src_info->virtual_size, thick, props, &n, size, sizeof size, res,
                  sizeof res);
  snprintf(ds, sizeof ds, "%s/%s", z->dataset, dst);
  struct zargv a;
  zcmd_clone(&a, &z->caps, origin, ds, props, n);
  if (zrun_free(&a, "clone") == 0)
    return 1;
fail:
  if (made_origin) {
    struct zl_error_saved saved;
    zl_error_save(&saved);
    zb_destroy_object(zs, origin);
    zl_error_restore(&saved);
  }
  return -1;
}

/* --- send | receive ------------------------------------------------------- */

struct feed {
  struct zl_exec_child *recv;
  const struct zl_progress *p;
  uint64_t done, total;
};

static int
feed_sink(void *opaque, const void *data, size_t len)
{
  struct feed *f = opaque;

  if (zl_write_all(f->recv->in, data, len) == -1) {
    zl_error_prefix("zfs receive: ");
    return -1;
  }
  f->done += len;
  zl_progress_report(f->p, f->done, f->total > f->done ? f->total : f->done);
  return 0;
}

/* One zfs send | zfs receive.  token: resume from it ("" or NULL: whole). */
static int
send_once(struct zb_sr *z, const char *snap, const char *ds, const char *token,
          struct feed *f)
{
  struct zargv s, r;
  struct zl_exec_child child;
  struct zl_exec_result sres, rres;
  struct sigaction ign = {.sa_handler = SIG_IGN}, old;
  int rc = -1;

  za_init(&s, "zfs");
  za_add(&s, "send");
  if (token && *token) {
    za_add(&s, "-t");
    za_add(&s, token);
  } else {
    if (z->caps.send_c)
      za_add(&s, "-c");
    if (z->caps.send_L)
      za_add(&s, "-L");
    if (z->caps.send_e)
      za_add(&s, "-e");
    za_add(&s, snap);
  }
  zcmd_receive(&r, &z->caps, ds);
  if (zl_exec_start(r.v, &child) == -1)
    goto out;
  f->recv = &child;
  sigaction(SIGPIPE, &ign, &old); /* a receive that dies is an error, not ours */
  int sent = zl_exec_stream(s.v, NULL, feed_sink, f, &sres);
  if (zl_exec_finish(&child, &rres) == -1) {
    if (sent == 0)
      zl_exec_result_free(&sres);
    sigaction(SIGPIPE, &old, NULL);
    goto out;
  }
  sigaction(SIGPIPE, &old, NULL);
  if (sent == -1) {
    zl_exec_result_free(&rres);
    goto out;
  }
  if (rres.status != 0)
    zl_error(EIO, "zfs receive into %s: %s", ds, zl_exec_reason(&rres));
  else if (sres.status != 0 || sres.sink_failed)
    zl_error(EIO, "zfs send of %s: %s", snap,
             sres.sink_failed ? "the receive stopped" : zl_exec_reason(&sres));
  else
    rc = 0;
  zl_exec_result_free(&sres);
  zl_exec_result_free(&rres);
out:
  za_free(&s);
  za_free(&r);
  return rc;
}

/* The resume token a cut-off `zfs receive -s` left on ds, into tok ("" if
 * none). */
static void
resume_token(struct zb_sr *z, const char *ds, char *tok, size_t len)
{
  CLEANUP_JSON json_t *objs = NULL;
  const char *targets[] = {ds, NULL};

  tok[0] = '\0';
  if (zget(&z->caps, false, "receive_resume_token", targets, &objs, "resume") == 0) {
    const char *t = zb_obj_value(json_object_get(objs, ds), "receive_resume_token");
    if (t)
      snprintf(tok, len, "%s", t);
  }
  zl_error_clear();
}

static int
send_receive(struct zl_store *sr, const char *dst, struct zl_store *src_sr,
             const char *src, bool thick, const json_t *meta,
             const struct zl_vol_info *src_info, const struct zl_progress *p)
{
  struct zb_sr *z = zb_of(sr), *zs = zb_of(src_sr);
  char srcname[600], snap[700], ds[600], recvd[700], size[32], res[64];
  bool src_snap;
  int rc = -1;

  if (zb_name_of(src_sr, src, srcname, sizeof srcname, &src_snap) == -1)
    return -1;
  snprintf(ds, sizeof ds, "%s/%s", z->dataset, dst);
  if (src_snap) {
    snprintf(snap, sizeof snap, "%s", srcname);
  } else {
    if (zs->layout == LAYOUT_DATASET)
      zb_flush_file(src_sr, src);
    snprintf(snap, sizeof snap, "%s@" ZB_SEND_PREFIX "%s", srcname, dst);
    if (zb_snapshot_cmd(zs, snap, NULL, 0) == -1)
      return -1;
  }
  zl_fault("copy", "snapshot");
  struct feed f = {.p = p, .total = (uint64_t)src_info->physical_utilisation};
  char tok[4096] = "";
  for (int attempt = 0;; attempt++) {
    f.done = 0;
    if (send_once(z, snap, ds, tok, &f) == 0)
      break;
    if (!z->caps.recv_s || attempt == 2)
      goto out;
    resume_token(z, ds, tok, sizeof tok);
    if (!tok[0])
      goto out;
    zl_warn("copy of %s: the stream was cut off; resuming (%s)", src, zl_error_msg());
    zl_error_clear();
  }
  zl_fault("copy", "received");
  /* the received snapshot is not a volume of this SR */
  snprintf(recvd, sizeof recvd, "%s%s", ds, strchr(snap, '@'));
  if (zb_destroy_object(z, recvd) == -1)
    goto out;
  struct zprop props[4];
  int n = 0;
  add_local_props(z, src_info->virtual_size, thick, props, &n, size, sizeof size, res,
                  sizeof res);
  for (int i = 0; i < n; i++) {
    struct zargv a;
    zcmd_set(&a, &z->caps, ds, props[i].name, props[i].value);
    if (zrun_free(&a, "set properties of the copy") == -1)
      goto out;
  }
  if (zb_meta_store(&z->caps, ds, meta) == -1)
    goto out;
  rc = 1;
out:
  if (!src_snap) {
    struct zl_error_saved saved;
    zl_error_save(&saved);
    if (zb_destroy_object(zs, snap) == -1)
      zl_warn("copy of %s: %s stays: %s", src, snap, zl_error_msg());
    zl_error_restore(&saved);
  }
  return rc;
}

int
zb_vol_copy_native(struct zl_store *sr, const char *dst, struct zl_store *src_sr,
                   const char *src, bool thick, const json_t *meta,
                   const struct zl_progress *p, struct zl_vol_info *out)
{
  struct zb_sr *z = zb_of(sr), *zs = zb_of(src_sr);
  struct zl_vol_info info;

  if (z->layout != zs->layout)
    return 0; /* a zvol into a dataset SR or back: the core streams it */
  if (zb_vol_get(src_sr, src, NULL, &info) == -1)
    return -1;
  out->virtual_size = info.virtual_size;
  out->physical_utilisation = 0;
  if (strcmp(z->pool, zs->pool) == 0)
    return clone_across(sr, dst, src_sr, src, thick, meta, &info);
  return send_receive(sr, dst, src_sr, src, thick, meta, &info, p);
}
