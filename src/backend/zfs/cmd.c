/* cmd.c: every zfs/zpool command line this backend runs, built by pure
 * functions of the capabilities and the arguments, so that unit tests can
 * check each one for each version row (tests/unit/test-zfs.c).  Options
 * are chosen per zfs.md §2: -H -p where accepted, no option a row lacks. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/zfs/zfs.h"
#include "util/strbuf.h"

#include "util/banned.h" /* last: after every declaration */

void
za_init(struct zargv *a, const char *prog)
{
  memset(a, 0, sizeof *a);
  a->v[a->n++] = prog;
}

void
za_add(struct zargv *a, const char *s)
{
  if (a->n < ZARGV_MAX)
    a->v[a->n++] = s;
  a->v[a->n] = NULL;
}

void
za_addf(struct zargv *a, const char *fmt, ...)
{
  va_list ap;
  char *s = NULL;

  va_start(ap, fmt);
  if (vasprintf(&s, fmt, ap) < 0)
    s = NULL;
  va_end(ap);
  if (!s || a->nowned >= ZARGV_MAX) {
    free(s);
    za_add(a, "(out of memory)");
    return;
  }
  a->owned[a->nowned++] = s;
  za_add(a, s);
}

void
za_free(struct zargv *a)
{
  for (int i = 0; i < a->nowned; i++)
    free(a->owned[i]);
  a->nowned = a->n = 0;
}

char *
za_join(const struct zargv *a)
{
  struct zl_sb b = ZL_SB_INIT;
  zl_sb_join(&b, a->v, " "); /* a->v is NULL-terminated */
  return zl_sb_take(&b);
}

static void
add_props(struct zargv *a, const struct zprop *props, int n)
{
  for (int i = 0; i < n; i++) {
    za_add(a, "-o");
    za_addf(a, "%s=%s", props[i].name, props[i].value);
  }
}

void
zcmd_create_sr(struct zargv *a, const struct zb_caps *c, const char *ds,
               const char *mountpoint, const struct zprop *props, int nprops)
{
  (void)c;
  za_init(a, "zfs");
  za_add(a, "create");
  za_add(a, "-o");
  za_addf(a, "mountpoint=%s", mountpoint);
  add_props(a, props, nprops);
  za_add(a, ds);
}

void
zcmd_create_parent(struct zargv *a, const struct zb_caps *c, const char *ds)
{
  (void)c;
  za_init(a, "zfs");
  za_add(a, "create");
  za_add(a, "-p");
  za_add(a, "-o");
  za_add(a, "mountpoint=none");
  za_add(a, ds);
}

void
zcmd_create_volume(struct zargv *a, const struct zb_caps *c, enum zb_layout l,
                   const char *ds, int64_t size, int64_t blocksize, bool thick,
                   int copies, const struct zprop *props, int nprops)
{
  (void)c;
  za_init(a, "zfs");
  za_add(a, "create");
  if (l == LAYOUT_ZVOL) {
    /* ZFS computes a thick zvol's refreservation itself (libzfs); sparse
     * (-s) is thin.  The block size is always explicit: its default
     * changed in 2.2. */
    if (!thick)
      za_add(a, "-s");
    za_add(a, "-b");
    za_addf(a, "%lld", (long long)blocksize);
    za_add(a, "-V");
    za_addf(a, "%lld", (long long)size);
  } else {
    /* One raw file per filesystem: its recordsize is the block size, and
     * thick means a refreservation covering the file as ZFS would for a
     * zvol of that size.  Mounted on first use; the size is a property. */
    za_add(a, "-o");
    za_add(a, "canmount=noauto");
    za_add(a, "-o");
    za_addf(a, ZB_SIZE_PROP "=%lld", (long long)size);
    za_add(a, "-o");
    za_addf(a, "recordsize=%lld", (long long)blocksize);
    za_add(a, "-o");
    if (thick)
      za_addf(a, "refreservation=%lld",
              (long long)zb_thick_reservation(size, blocksize, copies));
    else
      za_add(a, "refreservation=none");
  }
  add_props(a, props, nprops);
  za_add(a, ds);
}

void
zcmd_snapshot(struct zargv *a, const struct zb_caps *c, const char *snap,
              const struct zprop *props, int nprops)
{
  (void)c;
  za_init(a, "zfs");
  za_add(a, "snapshot");
  add_props(a, props, nprops);
  za_add(a, snap);
}

/* An incremental stream for changed block tracking: payloads as stored
 * (-c, they are skipped anyway), whole large blocks (-L) and embedded
 * blocks as such (-e), where this zfs has them. */
void
zcmd_send_incremental(struct zargv *a, const struct zb_caps *c, const char *from,
                      const char *to)
{
  za_init(a, "zfs");
  za_add(a, "send");
  if (c->send_c)
    za_add(a, "-c");
  if (c->send_L)
    za_add(a, "-L");
  if (c->send_e)
    za_add(a, "-e");
  za_add(a, "-i");
  za_add(a, from);
  za_add(a, to);
}

void
zcmd_send(struct zargv *a, const struct zb_caps *c, const char *snap, const char *token)
{
  za_init(a, "zfs");
  za_add(a, "send");
  if (token && *token) { /* the stream resumes as it began: flags come with it */
    za_add(a, "-t");
    za_add(a, token);
    return;
  }
  if (c->send_c)
    za_add(a, "-c");
  if (c->send_L)
    za_add(a, "-L");
  if (c->send_e)
    za_add(a, "-e");
  za_add(a, snap);
}

void
zcmd_receive(struct zargv *a, const struct zb_caps *c, const char *ds)
{
  za_init(a, "zfs");
  za_add(a, "receive");
  if (c->flavour == ZB_OPENZFS) /* zfs-fuse's receive has neither */
    za_add(a, "-u");
  if (c->recv_s)
    za_add(a, "-s");
  za_add(a, ds);
}

void
zcmd_clone(struct zargv *a, const struct zb_caps *c, const char *origin, const char *ds,
           const struct zprop *props, int nprops)
{
  (void)c;
  za_init(a, "zfs");
  za_add(a, "clone");
  add_props(a, props, nprops);
  za_add(a, origin);
  za_add(a, ds);
}

void
zcmd_bookmark(struct zargv *a, const struct zb_caps *c, const char *snap,
              const char *bookmark)
{
  (void)c;
  za_init(a, "zfs");
  za_add(a, "bookmark");
  za_add(a, snap);
  za_add(a, bookmark);
}

void
zcmd_destroy(struct zargv *a, const struct zb_caps *c, const char *name)
{
  (void)c;
  za_init(a, "zfs");
  za_add(a, "destroy");
  za_add(a, name);
}

void
zcmd_get(struct zargv *a, const struct zb_caps *c, bool recursive, const char *props,
         const char *const *targets)
{
  za_init(a, "zfs");
  za_add(a, "get");
  za_add(a, recursive ? "-Hpr" : "-Hp");
  if (recursive && c->get_t) {
    za_add(a, "-t");
    za_add(a, "filesystem,volume,snapshot");
  }
  za_add(a, "-o");
  za_add(a, "name,property,value,source");
  za_add(a, props);
  for (; *targets; targets++)
    za_add(a, *targets);
}

void
zcmd_set(struct zargv *a, const struct zb_caps *c, const char *ds, const char *prop,
         const char *value)
{
  (void)c;
  za_init(a, "zfs");
  za_add(a, "set");
  za_addf(a, "%s=%s", prop, value);
  za_add(a, ds);
}

void
zcmd_inherit(struct zargv *a, const struct zb_caps *c, const char *ds, const char *prop)
{
  (void)c;
  za_init(a, "zfs");
  za_add(a, "inherit");
  za_add(a, prop);
  za_add(a, ds);
}

void
zcmd_volsize(struct zargv *a, const struct zb_caps *c, const char *ds, int64_t size)
{
  /* through the CLI, so libzfs keeps a thick zvol's refreservation */
  (void)c;
  za_init(a, "zfs");
  za_add(a, "set");
  za_addf(a, "volsize=%lld", (long long)size);
  za_add(a, ds);
}

void
zcmd_rollback(struct zargv *a, const struct zb_caps *c, const char *snap)
{
  /* never -r/-R: they destroy newer snapshots and clones */
  (void)c;
  za_init(a, "zfs");
  za_add(a, "rollback");
  za_add(a, snap);
}

void
zcmd_rename(struct zargv *a, const struct zb_caps *c, const char *from, const char *to)
{
  (void)c;
  za_init(a, "zfs");
  za_add(a, "rename");
  za_add(a, from);
  za_add(a, to);
}

void
zcmd_mount(struct zargv *a, const struct zb_caps *c, const char *ds, bool mount)
{
  (void)c;
  za_init(a, "zfs");
  za_add(a, mount ? "mount" : "umount");
  za_add(a, ds);
}

void
zcmd_list_snapshots(struct zargv *a, const struct zb_caps *c, const char *ds)
{
  za_init(a, "zfs");
  za_add(a, "list");
  za_add(a, "-H");
  if (c->list_p)
    za_add(a, "-p");
  za_add(a, "-t");
  za_add(a, "snapshot");
  za_add(a, "-o");
  za_add(a, "name");
  za_add(a, "-d");
  za_add(a, "1");
  za_add(a, ds);
}

void
zcmd_pool_list(struct zargv *a, const char *pool)
{
  za_init(a, "zpool");
  za_add(a, "list");
  za_add(a, "-H");
  za_add(a, "-o");
  za_add(a, "name");
  za_add(a, pool);
}

void
zcmd_pool_importable(struct zargv *a)
{
  /* lists pools that could be imported; imports nothing */
  za_init(a, "zpool");
  za_add(a, "import");
}
