/* copy.c: copies between zfs-live SRs without the data passing through
 * the core (backend.h vol_copy_native).
 *
 * The source is a snapshot: the core reads a writable volume through a
 * snapshot it makes for the copy (core/model/copy.c), and keeps it, hidden,
 * while a clone needs it.
 *   same pool      a clone of the snapshot, in the destination SR: instant,
 *                  blocks shared
 *   other pools    zfs send of the snapshot | zfs receive, with -c -L -e
 *                  where the tools have them; where receive has -s, a
 *                  stream cut off part-way is resumed from the receive
 *                  resume token (twice at most), else sent again whole
 *                  (zfs-fuse)
 * Otherwise (a writable source, layouts that differ: a zvol is not
 * received into a dataset SR) 0: the core streams the data.
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
clone_across(struct zl_store *sr, const char *dst, const char *origin, bool thick,
             const json_t *meta, const struct zl_vol_info *src_info)
{
  struct zb_sr *z = zb_of(sr);
  char ds[600], size[32], res[64];
  struct zprop props[ZB_META_CHUNKS + 4];
  CLEANUP_FREE char *buf = NULL;
  struct zargv a;
  int n;

  if (zb_meta_encode(meta, 'a', props, &n, &buf) == -1)
    return -1;
  add_local_props(z, src_info->virtual_size, thick, props, &n, size, sizeof size, res,
                  sizeof res);
  snprintf(ds, sizeof ds, "%s/%s", z->dataset, dst);
  zcmd_clone(&a, &z->caps, origin, ds, props, n);
  if (zrun_free(&a, "clone") == -1)
    return -1;
  zl_fault("copy", "cloned");
  return 1;
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

  zcmd_send(&s, &z->caps, snap, token);
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
send_receive(struct zl_store *sr, const char *dst, const char *snap, bool thick,
             const json_t *meta, const struct zl_vol_info *src_info,
             const struct zl_progress *p)
{
  struct zb_sr *z = zb_of(sr);
  char ds[600], recvd[700], size[32], res[64], tok[4096] = "";
  struct feed f = {.p = p, .total = (uint64_t)src_info->physical_utilisation};

  snprintf(ds, sizeof ds, "%s/%s", z->dataset, dst);
  for (int attempt = 0;; attempt++) {
    f.done = 0;
    if (send_once(z, snap, ds, tok, &f) == 0)
      break;
    if (!z->caps.recv_s || attempt == 2)
      return -1;
    resume_token(z, ds, tok, sizeof tok);
    if (!tok[0])
      return -1;
    zl_warn("copy of %s: the stream was cut off; resuming (%s)", snap, zl_error_msg());
    zl_error_clear();
  }
  zl_fault("copy", "received");
  /* the received snapshot is not a volume of this SR */
  snprintf(recvd, sizeof recvd, "%s%s", ds, strchr(snap, '@'));
  if (zb_destroy_object(z, recvd) == -1)
    return -1;
  struct zprop props[4];
  int n = 0;
  add_local_props(z, src_info->virtual_size, thick, props, &n, size, sizeof size, res,
                  sizeof res);
  for (int i = 0; i < n; i++) {
    struct zargv a;
    zcmd_set(&a, &z->caps, ds, props[i].name, props[i].value);
    if (zrun_free(&a, "set properties of the copy") == -1)
      return -1;
  }
  if (z->caps.flavour != ZB_OPENZFS) {
    /* zfs-fuse's receive mounts what it made (no -u): a volume's dataset is
     * mounted when its data is first opened, not before */
    struct zargv a;
    zcmd_mount(&a, &z->caps, ds, false);
    zrun(&a, "unmount", NULL);
    za_free(&a);
    zl_error_clear();
  }
  return zb_meta_store(&z->caps, ds, meta) == 0 ? 1 : -1;
}

int
zb_vol_copy_native(struct zl_store *sr, const char *dst, struct zl_store *src_sr,
                   const char *src, bool thick, const json_t *meta,
                   const struct zl_progress *p, struct zl_vol_info *out)
{
  struct zb_sr *z = zb_of(sr), *zs = zb_of(src_sr);
  struct zl_vol_info info;
  char name[600];
  bool snap;

  if (z->layout != zs->layout)
    return 0; /* a zvol into a dataset SR or back: the core streams it */
  if (zb_name_of(src_sr, src, name, sizeof name, &snap) == -1)
    return -1;
  if (!snap)
    return 0; /* only one instant of a source is copied natively */
  if (zb_vol_get(src_sr, src, NULL, &info) == -1)
    return -1;
  out->virtual_size = info.virtual_size;
  out->physical_utilisation = 0;
  if (strcmp(z->pool, zs->pool) == 0)
    return clone_across(sr, dst, name, thick, meta, &info);
  return send_receive(sr, dst, name, thick, meta, &info, p);
}
