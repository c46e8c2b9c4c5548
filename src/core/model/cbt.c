/* cbt.c: changed block tracking, the operations: enable, disable,
 * data_destroy and list_changed_blocks (from the copy-on-write layer where
 * it can tell, else from the tracked records of cbt-record.c).  How the
 * records work is told in cbt-record.c. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/model/cbt.h"
#include "core/model/model.h"
#include "util/beneath.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

static int
set_flag(json_t *meta, void *arg)
{
  const char *field = ((const char **)arg)[0];
  bool on = ((const char **)arg)[1] != NULL;
  if (json_is_true(json_object_get(meta, field)) == on)
    return 0;
  if (on)
    json_object_set_new(meta, field, json_true());
  else
    json_object_del(meta, field);
  return 1;
}

int
zl_vol_enable_cbt(struct zl_sr *sr, const char *key)
{
  CLEANUP_JSON json_t *meta = NULL;
  struct zl_vol_info info;
  const char *arg[2] = {"cbt", "on"};
  int r = -1;

  if (zl_check_key(key) == -1)
    return -1;
  CLEANUP_SR_UNLOCK struct zl_sr *held = zl_sr_hold(sr, LOCK_EX);
  if (!held)
    return -1;
  if (zl_vol_lookup(sr, key, &meta, &info) == -1)
    goto out;
  if (zl_meta_data_destroyed(meta)) {
    zl_error(EINVAL, "volume %s holds only CBT metadata; CBT cannot be enabled on it",
             key);
    goto out;
  }
  if (info.virtual_size > ZL_CBT_MAX_SIZE) {
    zl_error_kind(ZL_ERR_SIZE, EFBIG,
                  "volume %s is larger than changed block tracking covers (%lld TiB)",
                  key, (long long)(ZL_CBT_MAX_SIZE >> 40));
    goto out;
  }
  if (zl_meta_cbt(meta)) {
    r = 0; /* already on: keep what was tracked */
    goto out;
  }
  /* The volume's storage is made now if it was not yet (ZFS's dataset
   * layout makes its file on first use): a snapshot that holds no file
   * would make every later change look like a new, wholly changed object. */
  if (!zl_meta_read_only(meta)) {
    int fd = sr->st.be->vol_open(&sr->st, key, O_RDWR);
    if (fd == -1)
      goto out;
    close(fd);
  }
  if (!zl_meta_read_only(meta) && cbt_tracked(sr)) {
    CLEANUP_CLOSE int dfd = cbt_dir(sr, true);
    if (dfd == -1 || cbt_write_new(dfd, key, key, "", info.virtual_size, 2, ACTIVE_SLOT,
                                   NULL, 0) == -1)
      goto out;
  }
  r = zl_vol_update(sr, key, set_flag, arg) == -1 ? -1 : 0;
  cbt_gen_bump(); /* this host's writers look now */
  if (r == 0)
    zl_info("changed block tracking enabled on volume %s", key);
out:
  return r;
}

int
zl_vol_disable_cbt(struct zl_sr *sr, const char *key)
{
  CLEANUP_JSON json_t *meta = NULL;
  const char *arg[2] = {"cbt", NULL};
  int r = -1;

  if (zl_check_key(key) == -1)
    return -1;
  CLEANUP_SR_UNLOCK struct zl_sr *held = zl_sr_hold(sr, LOCK_EX);
  if (!held)
    return -1;
  if (zl_vol_lookup(sr, key, &meta, NULL) == -1)
    goto out;
  if (zl_vol_update(sr, key, set_flag, arg) == -1)
    goto out;
  /* the active record goes; snapshots keep theirs until destroyed, but no
   * chain reaches past this point any more */
  if (!zl_meta_read_only(meta)) {
    CLEANUP_CLOSE int dfd = cbt_dir(sr, false);
    char name[NAME_MAX + 1];
    cbt_file_name(name, sizeof name, key);
    if (dfd >= 0 && unlinkat(dfd, name, 0) == -1 && errno != ENOENT) {
      zl_error_sys(errno, "remove CBT record of %s", key);
      goto out;
    }
  }
  cbt_gen_bump();
  r = 0;
  zl_info("changed block tracking disabled on volume %s", key);
out:
  return r;
}

int
zl_vol_data_destroy(struct zl_sr *sr, const char *key)
{
  CLEANUP_JSON json_t *meta = NULL;
  const char *arg[2] = {"data_destroyed", "yes"};
  int r = -1;

  if (zl_check_key(key) == -1)
    return -1;
  CLEANUP_SR_UNLOCK struct zl_sr *held = zl_sr_hold(sr, LOCK_EX);
  if (!held)
    return -1;
  if (zl_vol_lookup(sr, key, &meta, NULL) == -1)
    goto out;
  if (zl_meta_data_destroyed(meta)) {
    /* again, or after a crash between the mark and the freeing */
    r = sr->st.be->vol_data_destroy ? sr->st.be->vol_data_destroy(&sr->st, key) : 0;
    goto out;
  }
  if (!zl_meta_read_only(meta) || !zl_meta_str(meta, "snapshot_of")) {
    zl_error(EINVAL,
             "volume %s is not a snapshot; only a snapshot's data can be destroyed", key);
    goto out;
  }
  if (!zl_meta_cbt(meta)) {
    zl_error(EINVAL,
             "snapshot %s was taken without changed block tracking; destroying its data "
             "would leave nothing (destroy the volume instead)",
             key);
    goto out;
  }
  if (zl_users_attached(sr, key)) {
    zl_error_kind(ZL_ERR_BUSY, EBUSY, "snapshot %s is attached; detach it first", key);
    goto out;
  }
  /* the record that keeps the changes must exist before the data goes */
  if (cbt_tracked(sr)) {
    CLEANUP_CLOSE int dfd = cbt_dir(sr, false);
    struct cbt_file f;
    if (dfd == -1 || cbt_map(dfd, key, &f) == -1) {
      zl_error(ENOENT,
               "snapshot %s has no CBT record (CBT was enabled after it was taken); "
               "destroying its data would lose its changes",
               key);
      goto out;
    }
    cbt_unmap(&f);
  }
  /* mark first: a crash after it leaves a volume no one reads, never a
   * volume whose data is gone but looks whole */
  if (zl_vol_update(sr, key, set_flag, arg) == -1)
    goto out;
  zl_fault("data-destroy", "marked");
  if (sr->st.be->vol_data_destroy && sr->st.be->vol_data_destroy(&sr->st, key) == -1) {
    zl_error_prefix("destroy the data of snapshot %s: ", key);
    goto out;
  }
  r = 0;
  zl_info("data of snapshot %s destroyed; its CBT metadata stays", key);
out:
  return r;
}

/* OR the tracked changes from "from" to "to" (to: a snapshot's map, or the
 * volume's active file) into m by walking back along "prev".  ENOENT with a
 * clear error when the chain does not reach from. */
static int
tracked_changes(int dfd, const char *from, const char *to, struct zl_bitmap *m)
{
  char cur[KEY_ROOM];
  snprintf(cur, sizeof cur, "%s", to);

  for (int steps = 0; steps < 100000; steps++) {
    struct cbt_file f;
    if (cbt_map(dfd, cur, &f) == -1) {
      if (errno == ENOENT)
        zl_error(ENOENT, "no CBT record of the changes up to %s", cur);
      return -1;
    }
    for (unsigned i = 0; i < f.h->nslots; i++) {
      struct zl_bitmap s = slot_map(&f, i, nblocks_of((int64_t)f.h->size));
      zl_bitmap_or(m, &s); /* over the smaller size */
    }
    snprintf(cur, sizeof cur, "%s", f.h->prev);
    cbt_unmap(&f);
    if (strcmp(cur, from) == 0)
      return 0;
    if (!cur[0]) {
      zl_error(ENOENT,
               "CBT has no record of the changes since %s (it was not enabled then)",
               from);
      return -1;
    }
  }
  zl_error(ELOOP, "CBT records of %s form a loop", to);
  return -1;
}

static int
add_range(void *opaque, uint64_t offset, uint64_t length)
{
  zl_bitmap_set_bytes(opaque, offset, length); /* UINT64_MAX: to the end */
  return 0;
}

/* vol_changes run in a thread of its own while the core looks the two
 * volumes up (storage that answers for any two snapshots: the answer does
 * not depend on what the lookups find).  The ranges are kept, merged where
 * they touch, until the size of the bitmap is known. */
struct early {
  struct zl_sr *sr;
  const char *from, *to;
  pthread_t thread;
  uint64_t (*r)[2]; /* [offset, end) */
  size_t n, cap;
  int rc, err;
  struct zl_error_saved saved;
};

static int
keep_range(void *opaque, uint64_t offset, uint64_t length)
{
  struct early *e = opaque;
  uint64_t end = length > UINT64_MAX - offset ? UINT64_MAX : offset + length;
  if (length == 0)
    return 0;
  if (e->n && offset <= e->r[e->n - 1][1] && offset >= e->r[e->n - 1][0]) {
    if (end > e->r[e->n - 1][1])
      e->r[e->n - 1][1] = end;
    return 0;
  }
  if (e->n == e->cap) {
    size_t cap = e->cap ? e->cap * 2 : 1024;
    void *nr = realloc(e->r, cap * sizeof *e->r);
    if (!nr) {
      zl_error(ENOMEM, "out of memory");
      return -1;
    }
    e->r = nr;
    e->cap = cap;
  }
  e->r[e->n][0] = offset;
  e->r[e->n][1] = end;
  e->n++;
  return 0;
}

static void *
early_run(void *arg)
{
  struct early *e = arg;
  e->rc = e->sr->st.be->vol_changes(&e->sr->st, e->from, e->to, keep_range, e);
  if (e->rc == -1) {
    e->err = errno;
    zl_error_save(&e->saved);
  }
  return NULL;
}

/* Start vol_changes early where its answer needs no lookup; false: not
 * started (the caller calls it in turn). */
static bool
early_start(struct zl_sr *sr, const char *from, const char *to, struct early *e)
{
  memset(e, 0, sizeof *e);
  if (!sr->st.be->vol_changes || !(sr->st.be->caps(&sr->st) & ZL_CAP_CHANGES_ALWAYS) ||
      strcmp(from, to) == 0)
    return false;
  e->sr = sr;
  e->from = from;
  e->to = to;
  return pthread_create(&e->thread, NULL, early_run, e) == 0;
}

/* Wait for it; on success its ranges into out (if not NULL).  Its result,
 * with its error. */
static int
early_finish(struct early *e, struct zl_bitmap *out)
{
  pthread_join(e->thread, NULL);
  int rc = e->rc;
  if (rc == 0 && out)
    for (size_t i = 0; i < e->n; i++)
      zl_bitmap_set_bytes(out, e->r[i][0],
                          e->r[i][1] == UINT64_MAX ? UINT64_MAX
                                                   : e->r[i][1] - e->r[i][0]);
  free(e->r);
  e->r = NULL;
  if (rc == -1 && out) {
    zl_error_restore(&e->saved);
    errno = e->err;
  }
  return rc;
}

int
zl_vol_changed_blocks(struct zl_sr *sr, const char *from, const char *to,
                      struct zl_bitmap *out)
{
  CLEANUP_JSON json_t *fm = NULL;
  CLEANUP_JSON json_t *tm = NULL;
  struct zl_vol_info fi, ti;
  int r = -1;

  memset(out, 0, sizeof *out);
  if (zl_check_key(from) == -1 || zl_check_key(to) == -1)
    return -1;
  CLEANUP_SR_UNLOCK struct zl_sr *held = zl_sr_hold(sr, LOCK_SH);
  if (!held)
    return -1;
  struct early e;
  bool early = early_start(sr, from, to, &e);
  if (zl_vol_lookup2(sr, from, &fm, &fi, to, &tm, &ti) == -1)
    goto out;
  const char *base = zl_meta_read_only(tm) ? zl_meta_str(tm, "snapshot_of") : to;
  const char *fbase = zl_meta_read_only(fm) ? zl_meta_str(fm, "snapshot_of") : from;
  if (!base || !fbase || strcmp(base, fbase) != 0) {
    zl_error(EINVAL, "volumes %s and %s are not snapshots of one volume", from, to);
    goto out;
  }
  if (zl_bitmap_alloc(out, (uint64_t)ti.virtual_size, G) == -1)
    goto out;
  if (strcmp(from, to) == 0) {
    r = 0;
    goto out;
  }
  bool have_data = (!zl_meta_data_destroyed(fm) && !zl_meta_data_destroyed(tm)) ||
                   !cbt_tracked(sr); /* such storage keeps what it needs */
  int got = -1;
  if (early) {
    early = false;
    got = early_finish(&e, out);
    if (got == -1 && errno != ENOTSUP)
      goto fail;
    if (got == -1)
      zl_debug("changed blocks %s..%s: %s; using the tracked record", from, to,
               zl_error_msg());
  } else if (have_data && sr->st.be->vol_changes) {
    got = sr->st.be->vol_changes(&sr->st, from, to, add_range, out);
    if (got == -1 && errno != ENOTSUP)
      goto fail;
    if (got == -1)
      zl_debug("changed blocks %s..%s: %s; using the tracked record", from, to,
               zl_error_msg());
  }
  if (got == -1) {
    CLEANUP_CLOSE int dfd = cbt_dir(sr, false);
    if (dfd == -1) {
      zl_error(ENOENT, "CBT has no record of the changes between %s and %s", from, to);
      goto fail;
    }
    zl_bitmap_clear(out);
    if (tracked_changes(dfd, from, to, out) == -1) {
      /* maybe "to" is the older one: the set of changes is the same */
      struct zl_error_saved saved;
      zl_error_save(&saved);
      zl_bitmap_clear(out);
      if (zl_meta_read_only(tm) && tracked_changes(dfd, to, from, out) == 0) {
        zl_debug("changed blocks: %s is older than %s", to, from);
      } else {
        zl_error_restore(&saved);
        goto fail;
      }
    }
  }
  /* what lies past the smaller size reads as zeros in one of them */
  int64_t small = fi.virtual_size < ti.virtual_size ? fi.virtual_size : ti.virtual_size;
  if (ti.virtual_size > small)
    zl_bitmap_set_bytes(out, (uint64_t)small / G * G,
                        (uint64_t)(ti.virtual_size - small) + G);
  r = 0;
  goto out;
fail:
  zl_bitmap_free(out);
out:
  if (early) { /* a lookup failed: its error is the answer */
    struct zl_error_saved saved;
    zl_error_save(&saved);
    early_finish(&e, NULL);
    zl_error_restore(&saved);
  }
  return r;
}
