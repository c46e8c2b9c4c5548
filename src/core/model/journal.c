/* journal.c: intent records (what recovery acts on: recover.c).
 *
 * Before the first storage change of a multi-step operation, the owner
 * writes journal/<id> = {"op": ..., "key": ..., ...} and holds an exclusive
 * flock on it until the operation is complete, then unlinks it.  A record
 * whose flock can be taken therefore belongs to a dead process.  The record
 * is written under a temporary name, locked, then renamed into place, so a
 * record is never seen unlocked by a live owner.
 *
 * zl_journal_recover (under the SR lock, LOCK_EX, so no live operation can
 * be running) hands each dead record to the recovery function: 0 -> the
 * record goes; -1 with EINVAL (a record that cannot be understood) -> it is
 * renamed "bad.<id>", reported and never acted on; any other failure (no
 * space, busy) -> it stays for the next call.  What each operation does
 * with its records is in its own file, registered in recover.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/model/model.h"
#include "util/beneath.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"
#include "util/uuid.h"

#include "util/banned.h" /* last: after every declaration */

#define JOURNAL ZL_JOURNAL_DIR

static int
journal_dir(struct zl_sr *sr, bool create)
{
  int fd = zl_dir_beneath(sr->st.statefd, JOURNAL, create);

  if (fd == -1 && !(errno == ENOENT && !create))
    zl_error_prefix("SR %s: the journal: ", sr->st.key);
  return fd;
}

/* Temporaries of dead writers outside the journal: in the private area,
 * the CBT records, the runtime state and the snapshot index (the places
 * that get files written atomically).  Under LOCK_EX, before the records. */
static void
sweep(struct zl_sr *sr)
{
  static const char *const subs[] = {"cbt", "snapidx", NULL};
  int n = 0;

  for (int i = 0; i < 2; i++) {
    int base = i == 0 ? sr->st.privfd : sr->st.statefd;
    if (base < 0 || (i == 1 && sr->st.statefd == sr->st.privfd))
      continue;
    int k = zl_sweep_temporaries(base);
    n += k > 0 ? k : 0;
    for (const char *const *sub = subs; *sub; sub++) {
      CLEANUP_CLOSE int fd = zl_dir_beneath(base, *sub, false);
      k = fd >= 0 ? zl_sweep_temporaries(fd) : 0;
      n += k > 0 ? k : 0;
    }
  }
  if (n > 0)
    zl_info("SR %s: removed %d temporar%s left by calls that died", sr->st.key, n,
            n == 1 ? "y" : "ies");
  zl_error_clear();
}

/* A full disk must never keep a destroy from freeing space, yet its intent
 * record needs a new file.  So the journal keeps an empty file, "spare",
 * made while there is room; a record that cannot be written for lack of
 * space takes the spare over by a rename (no new inode, no data block),
 * and its name carries it: "<op>@<key>" (keys never hold '@').  Only
 * records of an op and a key (destroy) can be carried so. */
#define SPARE "spare"

static void
ensure_spare(int dfd)
{
  if (faccessat(dfd, SPARE, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
    return;
  int fd = zl_file_beneath(dfd, SPARE, O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd >= 0)
    close(fd);
  zl_error_clear(); /* a full disk: made next time */
}

static bool
no_space(int e)
{
  return e == ENOSPC || e == EDQUOT;
}

static int
begin_from_spare(int dfd, const json_t *record, struct zl_intent *in)
{
  const char *op = zl_meta_str(record, "op"), *key = zl_meta_str(record, "key");

  if (!op || !key || json_object_size(record) != 2 || strcmp(op, "destroy") != 0)
    return -1;
  int fd = zl_file_beneath(dfd, SPARE, O_RDWR, 0);
  if (fd == -1)
    return -1;
  snprintf(in->name, sizeof in->name, "%s@%s", op, key);
  if (flock(fd, LOCK_EX) == -1 || renameat(dfd, SPARE, dfd, in->name) == -1) {
    zl_error_sys(errno, "journal: take the spare record");
    close(fd);
    return -1;
  }
  in->fd = fd;
  zl_info("journal: the disk is full; %s %s recorded in the spare record", op, key);
  return 0;
}

/* The last resort of a destroy on a disk too full even to rename the
 * spare (XFS may need a block to grow a small directory): go on without a
 * record.  The destroy removes the metadata first, so a crash in between
 * leaves at worst the data of a destroyed volume, which SR.destroy then
 * reports (never a lost or half-visible volume). */
static bool
unjournaled_destroy(const json_t *record, struct zl_intent *in)
{
  const char *op = zl_meta_str(record, "op"), *key = zl_meta_str(record, "key");

  if (!op || !key || strcmp(op, "destroy") != 0)
    return false;
  zl_warn("journal: the disk is full; destroying %s without an intent record", key);
  in->fd = -1; /* zl_intent_end: nothing to remove */
  in->name[0] = '\0';
  zl_error_clear();
  return true;
}

/* A record carried by its name ("<op>@<key>", empty): see SPARE. */
static json_t *
record_of_name(const char *name)
{
  const char *at = strchr(name, '@');
  if (!at || at == name)
    return NULL;
  return json_pack("{s:s#, s:s}", "op", name, (int)(at - name), "key", at + 1);
}

int
zl_intent_begin(struct zl_sr *sr, const json_t *record, struct zl_intent *in)
{
  char id[ZL_UUID_LEN + 1], tmp[NAME_MAX + 1];
  CLEANUP_CLOSE int dfd = -1;
  CLEANUP_FREE char *text = NULL;

  in->fd = -1;
  in->sr = sr;
  if ((dfd = journal_dir(sr, true)) == -1 || zl_uuid_generate(id) == -1)
    return -1;
  snprintf(in->name, sizeof in->name, "%s", id);
  zl_tmp_name(tmp, sizeof tmp, id);

  text = json_dumps(record, JSON_COMPACT | JSON_SORT_KEYS);
  if (!text) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  in->fd = zl_file_beneath(dfd, tmp, O_RDWR | O_CREAT | O_EXCL, 0600);
  if (in->fd == -1) {
    zl_error_prefix("journal: create: ");
    goto fail;
  }
  if (flock(in->fd, LOCK_EX) == -1) { /* a scanner lets go at once */
    zl_error_sys(errno, "journal: lock %s", tmp);
    goto fail;
  }
  /* Not fsync()ed: the record guards against the death of the process.  A
   * power cut can lose it, which leaves at worst an unlisted partial object
   * that SR.ls reports and never deletes by itself. */
  if (zl_pwrite_all(in->fd, text, strlen(text), 0) == -1)
    goto fail;
  if (renameat(dfd, tmp, dfd, id) == -1) {
    zl_error_sys(errno, "journal: rename %s", tmp);
    goto fail;
  }
  ensure_spare(dfd);
  return 0;

fail:;
  struct zl_error_saved saved;
  zl_error_save(&saved);
  unlinkat(dfd, tmp, 0);
  if (in->fd >= 0)
    close(in->fd);
  in->fd = -1;
  if (no_space(saved.errnum) && begin_from_spare(dfd, record, in) == 0)
    return 0;
  if (no_space(saved.errnum) && unjournaled_destroy(record, in))
    return 0;
  zl_error_restore(&saved);
  return -1;
}

void
zl_intent_end(struct zl_intent *in)
{
  if (in->fd < 0)
    return;
  CLEANUP_CLOSE int dfd = journal_dir(in->sr, false);
  if (dfd == -1 || unlinkat(dfd, in->name, 0) == -1)
    zl_warn("journal: cannot remove %s: %s", in->name, strerror(errno));
  close(in->fd);
  in->fd = -1;
  if (dfd >= 0 && strchr(in->name, '@'))
    ensure_spare(dfd); /* the spare was used: make another (space was freed) */
}

/* Try to lock dfd/name.  Returns an fd holding the lock (owner dead), -1
 * with errno EWOULDBLOCK if the owner lives, -1 otherwise. */
static int
try_dead(int dfd, const char *name)
{
  int fd = zl_file_beneath(dfd, name, O_RDWR, 0);

  if (fd == -1)
    return -1;
  if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

int
zl_intent_any_dead(struct zl_sr *sr)
{
  CLEANUP_CLOSE int dfd = journal_dir(sr, false);
  CLEANUP_DIR DIR *d = NULL;
  struct dirent *de;

  if (dfd == -1)
    return errno == ENOENT ? 0 : -1;
  int dup_fd = dup(dfd);
  if (dup_fd == -1 || !(d = fdopendir(dup_fd))) {
    if (dup_fd >= 0)
      close(dup_fd);
    zl_error_sys(errno, "journal");
    return -1;
  }
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.' && (!de->d_name[1] || de->d_name[1] == '.'))
      continue;
    if (strncmp(de->d_name, "bad.", 4) == 0 || strcmp(de->d_name, SPARE) == 0)
      continue;
    int fd = try_dead(dfd, de->d_name);
    if (fd >= 0) {
      close(fd);
      return 1;
    }
  }
  return 0;
}

int
zl_journal_recover(struct zl_sr *sr, zl_record_fn fn)
{
  CLEANUP_CLOSE int dfd = journal_dir(sr, false);
  CLEANUP_DIR DIR *d = NULL;
  struct dirent *de;

  if (dfd == -1) {
    if (errno != ENOENT)
      return -1;
    sweep(sr);
    return 0;
  }
  sweep(sr);
  int dup_fd = dup(dfd);
  if (dup_fd == -1 || !(d = fdopendir(dup_fd))) {
    if (dup_fd >= 0)
      close(dup_fd);
    zl_error_sys(errno, "journal");
    return -1;
  }
  while ((de = readdir(d))) {
    const char *name = de->d_name;
    char bad[NAME_MAX + 1];

    if (name[0] == '.' && (!name[1] || name[1] == '.'))
      continue;
    if (strncmp(name, "bad.", 4) == 0 || strcmp(name, SPARE) == 0)
      continue;
    CLEANUP_CLOSE int fd = try_dead(dfd, name);
    if (fd == -1) {
      /* owner alive (cannot be under LOCK_EX), already gone, or something
       * that is not a record (a symlink, a FIFO): never acted on */
      if (errno != EWOULDBLOCK && errno != ENOENT)
        zl_warn("SR %s: journal entry %s left alone: %s", sr->st.key, name,
                zl_error_msg());
      zl_error_clear();
      continue;
    }
    if (name[0] == '.') {
      /* a record that never got its name: nothing was done yet */
      unlinkat(dfd, name, 0);
      continue;
    }
    CLEANUP_JSON json_t *rec =
        strchr(name, '@') ? record_of_name(name) : zl_json_load_at(dfd, name, 65536);
    if (rec && fn(sr, rec) == 0) {
      unlinkat(dfd, name, 0);
      continue;
    }
    if (rec && errno != EINVAL) {
      /* A storage failure (no space, busy): leave the record for the next
       * call to try again, and let this call go on: what a record
       * describes is consistent enough to use (old or new size, an
       * unlisted partial object), and blocking the SR would be worse. */
      zl_warn("SR %s: recovery of %s failed, will retry: %s", sr->st.key, name,
              zl_error_msg());
      continue;
    }
    zl_err("SR %s: journal record %s cannot be recovered (%s); kept as bad.%s",
           sr->st.key, name, zl_error_msg(), name);
    if (snprintf(bad, sizeof bad, "bad.%s", name) < (int)sizeof bad)
      renameat(dfd, name, dfd, bad); /* a name too long for "bad." stays as it is */
  }
  return 0;
}
