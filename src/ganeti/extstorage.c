/* extstorage.c: the Ganeti ExtStorage provider: one function per script,
 * each translating the request (env.c) into core calls, and the one place
 * where errors become Ganeti's protocol (a line on stderr, exit status 1).
 *
 * Where a disk lives (its "place"):
 *   EXTP_DIR=<dir>    the file SR at <dir> (the canonical path).  <dir>
 *                     must be allowed (gnt_allowed_paths_file()) and on
 *                     the filesystem the host declares for it (fstab,
 *                     mount units; EXTP_MOUNTPOINT): check_mount().
 *   EXTP_POOL=<p>     the ZFS SR directly in the dataset <p> (<p>/<uuid>);
 *                     SRs deeper down are other places' (<p>/x is one).
 * The SR is made by the first create that finds none there (under a
 * host-local lock); every other action requires it.  A place this node
 * cannot reach (not mounted, not allowed here, pool not imported, several
 * SRs put there by hand) is "unreachable": nothing is known about its
 * volumes.  VOL_NAME is the volume key, so a disk made by Ganeti is an
 * ordinary volume of its SR; VOL_CNAME, any string, is its name.
 *
 * What noded does with the answers (lib/storage/extstorage.py,
 * lib/backend.py, lib/cmdlib/instance_migration.py; reference §1.7):
 * every action on a disk starts with attach, and BlockdevRemove treats a
 * failed attach as "already gone" -- remove is then never run and the
 * disk is dropped.  Hence:
 *   attach   prints the block device (zvol, or a loop device reused only
 *            while it fits the volume: file, size, read-only).  Exits
 *            non-zero only when the SR was reached and has no such volume.
 *            Otherwise (unreachable, no device possible) it prints a
 *            stand-in -- a read-only loop device of size 0 -- and the
 *            reason on stderr, so Ganeti keeps the disk
 *   open     VOL_OPEN_EXCLUSIVE=True|False: a per-node open kept with the
 *            volume (core/claims.c); refused while this node's attach
 *            gave a stand-in, so no instance starts on one
 *   close    drops this node's open.  Ganeti closes only to hand an
 *            instance to another node (migrate, failover): refused for
 *            pool= disks, as a pool is imported on one host at a time
 *   detach   releases the device or stand-in and drops this node's open
 *            (noded runs no close before it); an unreachable place or a
 *            missing volume is fine
 *   remove   (noded: attach, detach, remove, retried for 30 s) succeeds
 *            for a volume that is gone, refuses one open on another node,
 *            and fails, never reporting "gone", when the SR cannot be
 *            reached (reached only after a stand-in attach)
 *   grow     resizes, then makes this node's loop device take the size
 *   setinfo  VOL_METADATA becomes the volume's description, VOL_CNAME its
 *            name
 *   snapshot VOL_SNAPSHOT_NAME, a read-only volume of its own
 *   verify   checks the parameters and the place (Ganeti never runs it)
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "ganeti/ganeti.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/log.h"
#include "util/paths.h"

#include "util/banned.h" /* last: after every declaration */

extern char **environ;

/* The one mapping of errors to Ganeti: a line on stderr, exit status 1. */
static int
fail(const struct gnt_req *r, enum gnt_action a)
{
  fprintf(stderr, "zfs-live %s%s%s: %s\n", gnt_action_names[a],
          r && r->vol_name ? " " : "", r && r->vol_name ? r->vol_name : "",
          zl_error_msg());
  return 1;
}

static const char *
sr_type(const struct gnt_req *r)
{
  return r->dir ? "file-live" : "zfs-live";
}

static json_t *
sr_config(const struct gnt_req *r, const char *canon, bool for_create)
{
  json_t *c = json_pack("{s:s}", "path", r->dir ? canon : r->pool);

  if (c && for_create && r->layout)
    json_object_set_new(c, "layout", json_string(r->layout));
  if (c && for_create && r->volblocksize)
    json_object_set_new(c, "volblocksize", json_string(r->volblocksize));
  return c;
}

/* Is the file SR's place (canonical) on the filesystem it should be on?
 * What the host declares (fstab, systemd mount units: the deepest mount
 * point declared at or above it must be mounted) and, where the operator
 * gave EXTP_MOUNTPOINT, that mount point too.  Otherwise the place is
 * unreachable (kind NO_SR): a share that is not mounted shows the empty
 * directory beneath it, where an SR must never be made or used. */
static int
check_mount(const struct gnt_req *r, const char *canon)
{
  char mp[PATH_MAX];

  if (zl_path_mount_check(canon, zl_host_fstab(), zl_host_mount_units()) == -1)
    return -1;
  if (!r->mountpoint)
    return 0;
  if (strcmp(r->mountpoint, "yes") == 0)
    snprintf(mp, sizeof mp, "%s", canon);
  else if (zl_path_canonical(r->mountpoint, mp, sizeof mp) == -1)
    return -1;
  if (!zl_path_within(canon, mp)) {
    zl_error(EINVAL, "EXTP_MOUNTPOINT=%s: %s is not on it (not at or below it)",
             r->mountpoint, canon);
    return -1;
  }
  if (!zl_path_is_mountpoint(mp)) {
    zl_error_kind(ZL_ERR_NO_SR, ENOENT,
                  "%s should be on the filesystem mounted at %s (EXTP_MOUNTPOINT), which "
                  "is not mounted: mount it; nothing is made or used on the filesystem "
                  "beneath",
                  canon, mp);
    return -1;
  }
  return 0;
}

/* The SR's place, checked: for a file SR the canonical, allowed path, on
 * the filesystem it should be on. */
static int
place(const struct gnt_req *r, char *canon, size_t len)
{
  if (!r->dir) {
    snprintf(canon, len, "%s", r->pool);
    return 0;
  }
  if (zl_path_canonical(r->dir, canon, len) == -1) {
    zl_error_prefix("EXTP_DIR: ");
    return -1;
  }
  if (zl_path_allowed(canon, gnt_allowed_paths_file()) == -1 ||
      check_mount(r, canon) == -1) {
    zl_error_prefix("EXTP_DIR: ");
    return -1;
  }
  return 0;
}

/* The key of the SR at the place, or NULL (kind NO_SR when there is none). */
static char *
find_sr(const struct gnt_req *r, const char *canon)
{
  CLEANUP_JSON json_t *cfg = sr_config(r, canon, false);
  return cfg ? zl_place_find(sr_type(r), cfg) : NULL;
}

/* Make the SR at the place (first use): the core finds or makes it. */
static char *
make_sr(const struct gnt_req *r, const char *canon)
{
  CLEANUP_JSON json_t *cfg = sr_config(r, canon, false);
  CLEANUP_JSON json_t *create_cfg = sr_config(r, canon, true);

  if (!cfg || !create_cfg)
    return NULL;
  char *key =
      zl_place_make(sr_type(r), cfg, create_cfg, "ganeti",
                    "made by the Ganeti ExtStorage provider zfs-live at first use");
  if (!key)
    zl_error_prefix("%s: ", canon);
  return key;
}

static struct zl_sr *
open_sr(const struct gnt_req *r, bool create)
{
  char canon[PATH_MAX];
  CLEANUP_FREE char *key = NULL;

  if (place(r, canon, sizeof canon) == -1)
    return NULL;
  key = find_sr(r, canon);
  if (!key && create && zl_error_get_kind() == ZL_ERR_NO_SR)
    key = make_sr(r, canon);
  return key ? zl_sr_open(sr_type(r), key) : NULL;
}

/* The volume's name: VOL_CNAME byte for byte (Ganeti allows any disk name:
 * NonEmptyString in its opcodes; names are data), else VOL_NAME.  One the
 * metadata cannot hold -- not UTF-8 (only Python's surrogateescape makes
 * that), or longer than a name may be -- is reported and VOL_NAME used: a
 * disk is never refused over its label. */
static const char *
volume_name(const struct gnt_req *r)
{
  if (!r->cname)
    return r->vol_name;
  if (zl_check_name(r->cname, "VOL_CNAME") == 0)
    return r->cname;
  zl_warn("%s: %s; the volume is named %s instead", r->vol_name, zl_error_msg(),
          r->vol_name);
  zl_error_clear();
  return r->vol_name;
}

static int
do_create(const struct gnt_req *r)
{
  struct zl_sr *sr = open_sr(r, true);
  struct zl_volume v;
  struct zl_create_args a = {
      .key = r->vol_name,
      .name = volume_name(r),
      .description = "",
      .size = r->size,
      .provisioning = !r->provisioning                   ? ZL_PROV_DEFAULT
                      : strcmp(r->provisioning, "thick") ? ZL_PROV_THIN
                                                         : ZL_PROV_THICK,
  };

  if (!sr)
    return -1;
  if (zl_vol_create(sr, &a, &v) == -1) {
    zl_sr_close(sr);
    return -1;
  }
  zl_volume_free(&v);
  for (int i = 0; i < r->ntune; i++) {
    char k[64];
    snprintf(k, sizeof k, "_sm_config_%s", r->tune[i][0]);
    if (zl_vol_set(sr, r->vol_name, k, r->tune[i][1]) == -1) {
      /* nothing changed: the volume goes again */
      struct zl_error_saved s;
      zl_error_save(&s);
      zl_vol_destroy(sr, r->vol_name);
      zl_error_restore(&s);
      zl_sr_close(sr);
      return -1;
    }
  }
  zl_sr_close(sr);
  return 0;
}

/* Ganeti treats a failed attach as "the volume is gone": BlockdevRemove
 * (lib/backend.py) builds the device with _RecursiveFindBD, which runs
 * attach; a non-zero exit or a line that is not a block device makes it
 * return no device, and the removal counts as done without running the
 * remove script.  So attach fails only when the volume is known not to
 * exist (its SR was reached and has no such volume).  When that cannot be
 * known -- the SR cannot be reached from this node (share not mounted,
 * pool not imported, place not allowed here, several SRs) or the volume's
 * device cannot be made -- attach prints a stand-in (a read-only loop
 * device of size 0) and says why on stderr: Ganeti keeps the disk, and
 * open (which follows every assembly), remove, grow, snapshot and setinfo
 * then fail with the reason, so nothing runs on the stand-in and nothing
 * is dropped while its data may exist. */
static int
do_attach(const struct gnt_req *r)
{
  struct zl_sr *sr = open_sr(r, false);
  struct zl_blockdev b;
  int rc = -1;

  if (sr) {
    rc = zl_vol_blockdev(sr, r->vol_name, &b);
    if (rc == -1 && zl_error_get_kind() == ZL_ERR_NO_VOLUME) {
      struct zl_error_saved gone;
      zl_error_save(&gone);
      zl_sr_close(sr);
      zl_blockdev_standin_release(r->vol_name);
      zl_error_restore(&gone);
      return -1; /* gone: Ganeti may forget it */
    }
    zl_sr_close(sr);
  }
  if (rc == 0) {
    if (zl_blockdev_standin_release(r->vol_name) == -1) {
      zl_warn("%s: %s", r->vol_name, zl_error_msg());
      zl_error_clear();
    }
  } else {
    char why[1024];
    snprintf(why, sizeof why, "%s", zl_error_msg());
    fprintf(stderr,
            "zfs-live attach %s: %s; printing a stand-in device (size 0, read-only) so "
            "that Ganeti keeps the disk: open, remove and the rest refuse until this is "
            "fixed\n",
            r->vol_name, why);
    if (zl_blockdev_standin(r->vol_name, why, b.path, sizeof b.path) == -1)
      return -1;
  }
  /* line 1: the block device; no userspace URIs */
  if (printf("%s\n", b.path) < 0 || fflush(stdout) != 0) {
    zl_error_sys(errno, "stdout");
    return -1;
  }
  return 0;
}

static int
do_detach(const struct gnt_req *r)
{
  if (zl_blockdev_standin_release(r->vol_name) == -1)
    return -1;
  struct zl_sr *sr = open_sr(r, false);
  if (!sr) {
    /* what this node cannot reach it cannot have mapped through the SR */
    zl_info("%s: nothing to detach (%s)", r->vol_name, zl_error_msg());
    zl_error_clear();
    return 0;
  }
  int rc = zl_vol_blockdev_release(sr, r->vol_name);
  if (rc == 0)
    rc = zl_vol_unclaim(sr, r->vol_name, zl_node_name());
  zl_sr_close(sr);
  return rc;
}

static int
do_remove(const struct gnt_req *r)
{
  struct zl_sr *sr = open_sr(r, false);
  char other[256];

  if (!sr) {
    zl_error_prefix("cannot tell whether %s exists, so it is not reported removed: ",
                    r->vol_name);
    return -1;
  }
  int c = zl_vol_claimed_elsewhere(sr, r->vol_name, zl_node_name(), other, sizeof other);
  if (c == -1 && zl_error_get_kind() == ZL_ERR_NO_VOLUME) {
    zl_info("%s: already gone", r->vol_name);
    zl_error_clear();
    zl_vol_blockdev_release(sr, r->vol_name);
    zl_sr_close(sr);
    return 0;
  }
  if (c == 1)
    zl_error_kind(ZL_ERR_BUSY, EBUSY,
                  "volume %s is open on node %s: close it there first", r->vol_name,
                  other);
  int rc = c == 0 && zl_vol_blockdev_release(sr, r->vol_name) == 0 &&
                   zl_vol_destroy(sr, r->vol_name) == 0
               ? 0
               : -1;
  zl_sr_close(sr);
  return rc;
}

static int
do_grow(const struct gnt_req *r)
{
  struct zl_sr *sr = open_sr(r, false);
  struct zl_volume v;

  if (!sr)
    return -1;
  int rc = zl_vol_stat(sr, r->vol_name, &v);
  if (rc == 0) {
    if (v.virtual_size > r->new_size) {
      zl_error_kind(ZL_ERR_SIZE, EINVAL,
                    "volume %s is %lld MiB, more than VOL_NEW_SIZE: volumes only grow",
                    r->vol_name, (long long)(v.virtual_size >> 20));
      rc = -1;
    }
    zl_volume_free(&v);
  }
  if (rc == 0)
    rc = zl_vol_resize(sr, r->vol_name, r->new_size);
  if (rc == 0 && zl_vol_blockdev_refresh(sr, r->vol_name) == -1)
    rc = -1;
  zl_sr_close(sr);
  return rc;
}

static int
do_setinfo(const struct gnt_req *r)
{
  struct zl_sr *sr = open_sr(r, false);
  if (!sr)
    return -1;
  /* Ganeti runs setinfo after create and after an instance rename; the
   * disk's name (VOL_CNAME) may have changed since too */
  int rc = zl_vol_set_description(sr, r->vol_name, r->metadata);
  if (rc == 0 && r->cname)
    rc = zl_vol_set_name(sr, r->vol_name, volume_name(r));
  zl_sr_close(sr);
  return rc;
}

static int
do_snapshot(const struct gnt_req *r)
{
  struct zl_sr *sr = open_sr(r, false);
  struct zl_volume v;

  if (!sr)
    return -1;
  int rc = zl_vol_snapshot(sr, r->vol_name, r->snap_name, &v);
  if (rc == 0)
    zl_volume_free(&v);
  zl_sr_close(sr);
  return rc;
}

static int
do_open(const struct gnt_req *r)
{
  CLEANUP_FREE char *standin = zl_blockdev_standin_reason(r->vol_name);
  if (standin) {
    zl_error(EIO,
             "volume %s is not mapped on this node: its attach could only print "
             "a stand-in (%s)",
             r->vol_name, standin);
    return -1;
  }
  struct zl_sr *sr = open_sr(r, false);
  if (!sr)
    return -1;
  int rc = zl_vol_claim(sr, r->vol_name, zl_node_name(), r->exclusive == 1);
  zl_sr_close(sr);
  return rc;
}

/* Ganeti runs close only to hand an instance to another node
 * (lib/cmdlib/instance_migration.py: first on the target of a migration,
 * on the source of a failover, before the configuration names the new
 * primary).  A pool is imported on one host at a time, so a pool= disk
 * can never be opened on two nodes (migration) nor reached from the node
 * a failover would move the instance to: refused, so the handover stops
 * before anything moves. */
static int
do_close(const struct gnt_req *r)
{
  if (r->pool) {
    zl_error_kind(
        ZL_ERR_UNSUPPORTED, ENOTSUP,
        "%s is on a ZFS pool (EXTP_POOL=%s), which is imported on one host at "
        "a time: its instance cannot migrate or fail over (Ganeti closes a disk "
        "only to hand it to another node).  To move it: stop the instance, "
        "zpool export on this node, zpool import on the new one, then "
        "gnt-instance modify --new-primary",
        r->vol_name, r->pool);
    return -1;
  }
  struct zl_sr *sr = open_sr(r, false);
  if (!sr)
    return -1;
  int rc = zl_vol_unclaim(sr, r->vol_name, zl_node_name());
  zl_sr_close(sr);
  return rc;
}

/* The parameters (already parsed) and the place: the SR, or where the
 * first create would make it. */
static int
do_verify(const struct gnt_req *r)
{
  char canon[PATH_MAX];
  CLEANUP_JSON json_t *cfg = NULL;
  CLEANUP_FREE char *why = NULL;

  if (place(r, canon, sizeof canon) == -1)
    return -1;
  CLEANUP_FREE char *key = find_sr(r, canon);
  if (key) {
    struct zl_sr *sr = zl_sr_open(sr_type(r), key);
    if (!sr)
      return -1;
    if (r->vol_name) {
      struct zl_volume v;
      if (zl_vol_stat(sr, r->vol_name, &v) == 0)
        zl_volume_free(&v);
      else if (zl_error_get_kind() != ZL_ERR_NO_VOLUME) {
        zl_sr_close(sr);
        return -1;
      }
    }
    fprintf(stderr, "zfs-live verify: parameters valid; SR %s\n", key);
    zl_sr_close(sr);
    return 0;
  }
  if (zl_error_get_kind() != ZL_ERR_NO_SR)
    return -1;
  cfg = sr_config(r, canon, false);
  int can = cfg ? zl_place_can_make(sr_type(r), cfg, &why) : -1;
  if (can == -1)
    return -1;
  if (!can) {
    zl_error(EINVAL, "no SR in %s and none can be made there: %s", canon,
             why ? why : "?");
    return -1;
  }
  fprintf(stderr, "zfs-live verify: parameters valid; no SR in %s yet (%s)\n", canon,
          why ? why : "the first create makes it");
  return 0;
}

static int (*const handlers[GNT_NACTIONS])(const struct gnt_req *) = {
    [GNT_CREATE] = do_create, [GNT_ATTACH] = do_attach,     [GNT_DETACH] = do_detach,
    [GNT_REMOVE] = do_remove, [GNT_GROW] = do_grow,         [GNT_SETINFO] = do_setinfo,
    [GNT_VERIFY] = do_verify, [GNT_SNAPSHOT] = do_snapshot, [GNT_OPEN] = do_open,
    [GNT_CLOSE] = do_close,
};

int
gnt_main(enum gnt_action action, int argc, char **argv)
{
  struct gnt_req r;
  char self[PATH_MAX];

  zl_log_init("zfs-live", LOG_INFO);
  zl_log_set_tag(gnt_action_names[action]);
  if (argc > 1)
    zl_warn("ignoring %d unexpected argument%s (Ganeti passes none)", argc - 1,
            argc > 2 ? "s" : "");
  snprintf(self, sizeof self, "%s", argv[0]);
  if (gnt_check_provider_dir(dirname(self)) == -1)
    return fail(NULL, action);
  if (gnt_parse(action, environ, &r) == -1)
    return fail(NULL, action);
  if (handlers[action](&r) == -1)
    return fail(&r, action);
  return 0;
}

/* The rows of commands.c (IN_GANETI): one per script. */
#define SCRIPT(fn, a)                                                                    \
  int fn(int argc, char **argv)                                                          \
  {                                                                                      \
    return gnt_main(a, argc, argv);                                                      \
  }
SCRIPT(gnt_create, GNT_CREATE)
SCRIPT(gnt_attach, GNT_ATTACH)
SCRIPT(gnt_detach, GNT_DETACH)
SCRIPT(gnt_remove, GNT_REMOVE)
SCRIPT(gnt_grow, GNT_GROW)
SCRIPT(gnt_setinfo, GNT_SETINFO)
SCRIPT(gnt_verify, GNT_VERIFY)
SCRIPT(gnt_snapshot, GNT_SNAPSHOT)
SCRIPT(gnt_open, GNT_OPEN)
SCRIPT(gnt_close, GNT_CLOSE)
