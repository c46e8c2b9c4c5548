/* changes.c: changed blocks from the copy-on-write layer: `zfs send -i`
 * piped through the stream parser (stream.c), reporting the ranges of the
 * volume's data object. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/zfs/stream.h"
#include "backend/zfs/zfs.h"
#include "util/beneath.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"
#include "util/uuid.h"

#include "util/banned.h" /* last: after every declaration */

struct changes {
  struct zstream *parser;
  bool empty; /* no stream byte came */
  zl_range_fn cb;
  void *opaque;
};

static int
stream_sink(void *opaque, const void *data, size_t len)
{
  struct changes *ch = opaque;
  ch->empty = false;
  return zstream_feed(ch->parser, data, len);
}

static int
stream_range(void *opaque, uint64_t offset, uint64_t length, bool freed)
{
  struct changes *ch = opaque;
  /* A FREE from a non-zero offset to the end of the object describes space
   * past the object's last block (senders before OpenZFS 0.8, zfs-fuse,
   * carry no maxblkid for the parser to tell it by).  Our volumes never
   * shrink, so it is never a change; [0, end) is a deleted object. */
  if (freed && length == UINT64_MAX && offset > 0)
    return 0;
  return ch->cb(ch->opaque, offset, length);
}

/* Run zfs send -i from to and report the data object's ranges. */
static int
send_changes(struct zb_sr *z, uint64_t obj, const char *from, const char *to,
             struct changes *ch)
{
  struct zl_exec_result res = {0};
  struct zstream_info info;
  struct zargv a;
  int r = -1;

  ch->empty = true;
  if (!(ch->parser = zstream_new(obj, 0, stream_range, ch)))
    return -1;
  zcmd_send_incremental(&a, &z->caps, from, to);
  int e = zl_exec_stream(a.v, NULL, stream_sink, ch, &res);
  za_free(&a);
  if (e == -1)
    return -1;
  if (res.sink_failed) {
    zl_error_prefix("zfs send -i %s %s: ", from, to);
  } else if (res.status != 0) {
    zl_error(EIO, "zfs send -i %s %s: %s", from, to, zl_exec_reason(&res));
  } else if (zstream_finish(ch->parser, &info) == -1) {
    zl_error_prefix("zfs send -i %s %s: ", from, to);
  } else if (info.fromguid == 0) {
    zl_error(EIO, "zfs send -i %s %s: not an incremental stream", from, to);
  } else {
    zl_debug("changed blocks %s..%s: %llu records, %llu bytes of stream", from, to,
             (unsigned long long)info.records, (unsigned long long)info.bytes);
    r = 0;
  }
  zl_exec_result_free(&res);
  return r;
}

/* The ZFS object holding the volume's data: 1 for a zvol; for the dataset
 * layout, the inode number of its file (ZFS inode numbers are object
 * numbers).  0: the file was never made (it reads as zeros). */
static int
data_object(struct zl_store *sr, const char *comp, uint64_t *obj)
{
  struct zb_sr *z = zb_of(sr);
  char path[PATH_MAX];
  struct stat st;

  if (z->layout == LAYOUT_ZVOL) {
    *obj = ZSTREAM_ZVOL_OBJECT;
    return 0;
  }
  snprintf(path, sizeof path, "%s/" ZB_DISK, comp);
  if (fstatat(sr->dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    *obj = (uint64_t)st.st_ino;
    return 0;
  }
  if (errno == ENOENT && zb_is_mounted(sr, comp)) {
    *obj = 0;
    return 0;
  }
  char ds[600];
  struct zargv a;
  snprintf(ds, sizeof ds, "%s/%s", z->dataset, comp);
  zcmd_mount(&a, &z->caps, ds, true);
  int r = zrun(&a, "mount", NULL);
  za_free(&a);
  if (r == -1 && !strstr(zl_error_msg(), "already mounted"))
    return -1;
  zl_error_clear();
  if (fstatat(sr->dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0)
    *obj = (uint64_t)st.st_ino;
  else if (errno == ENOENT)
    *obj = 0;
  else {
    zl_error_sys(errno, "volume %s", comp);
    return -1;
  }
  return 0;
}

int
zb_vol_changes(struct zl_store *sr, const char *from, const char *to, zl_range_fn cb,
               void *opaque)
{
  struct zb_sr *z = zb_of(sr);
  char fname[600], tname[600], tmp[700] = "", uuid[ZL_UUID_LEN + 1];
  bool fsnap, tsnap;
  uint64_t obj;
  int r = -1;

  if (zb_name_of(sr, from, fname, sizeof fname, &fsnap) == -1)

    return -1;
  if (zb_name_of(sr, to, tname, sizeof tname, &tsnap) == -1)
    return -1;
  /* a snapshot whose data was destroyed: its bookmark is the source (it
   * cannot be the target: swap, the changes are the same set) */
  bool fbm = zb_bm_exists(sr, from), tbm = zb_bm_exists(sr, to);
  if (fbm && tbm) {
    zl_error_kind(ZL_ERR_UNSUPPORTED, ENOTSUP,
                  "the data of both %s and %s was destroyed: ZFS cannot compare two "
                  "bookmarks",
                  from, to);
    return -1;
  }
  if (tbm) {
    const char *k = from;
    from = to;
    to = k;
    char t[600];
    memcpy(t, fname, sizeof t);
    memcpy(fname, tname, sizeof fname);
    memcpy(tname, t, sizeof tname);
    tsnap = fsnap;
    fbm = true;
  }
  if (fbm) {
    if (zb_bm_source(sr, from, fname, sizeof fname) == -1)
      return -1;
    fsnap = true;
  }
  if (!fsnap && tsnap) { /* the volume and one of its snapshots: the same set */
    char t[600];
    memcpy(t, fname, sizeof t);
    memcpy(fname, tname, sizeof fname);
    memcpy(tname, t, sizeof tname);
    fsnap = true;
    tsnap = false;
  }
  /* both in one dataset: <sr>/<comp>{@,#zl-}from and <sr>/<comp>[@to] */
  size_t dl = strcspn(fname, "@#");
  if (!fsnap || strncmp(fname, tname, dl) != 0 ||
      (tname[dl] != '@' && tname[dl] != '\0')) {
    zl_error(EINVAL, "%s and %s are not snapshots of one ZFS volume", from, to);
    return -1;
  }
  const char *comp = fname + strlen(z->dataset) + 1;
  char comp_only[300];
  snprintf(comp_only, sizeof comp_only, "%.*s", (int)strcspn(comp, "@#"), comp);
  if (data_object(sr, comp_only, &obj) == -1)
    return -1;
  if (obj == 0)
    return 0; /* never written: zeros then and now */
  if (!tsnap) {
    /* the volume itself: compare with a snapshot of it taken now */
    if (zl_uuid_generate(uuid) == -1)
      return -1;
    char boot[9];
    zb_boot8(boot);
    snprintf(tmp, sizeof tmp, "%s@" ZB_CBT_PREFIX "%ld-%s-%.8s", tname, (long)getpid(),
             boot, uuid);
    if (z->layout == LAYOUT_DATASET)
      zb_flush_file(sr, comp_only);
    if (zb_snapshot_cmd(z, tmp, NULL, 0) == -1)
      return -1;
    if (snprintf(tname, sizeof tname, "%s", tmp) >= (int)sizeof tname) {
      zl_error(ENAMETOOLONG, "%s: the name is too long", tmp);
      return -1;
    }
  }

  struct changes ch = {.cb = cb, .opaque = opaque};
  r = send_changes(z, obj, fname, tname, &ch);
  if (r == -1 && ch.empty && tsnap && !fbm) {
    /* to may be the older of the two: the changes are the same set */
    struct zl_error_saved saved;
    zl_error_save(&saved);
    zstream_free(ch.parser);
    ch.parser = NULL;
    r = send_changes(z, obj, tname, fname, &ch);
    if (r == -1)
      zl_error_restore(&saved);
  }
  zstream_free(ch.parser);
  if (tmp[0]) {
    struct zl_error_saved saved;
    zl_error_save(&saved);
    if (zb_destroy_object(z, tmp) == -1)
      zl_warn("cannot remove %s: %s", tmp, zl_error_msg());
    zl_error_restore(&saved);
  }
  return r;
}
