/* recover.c: crash recovery, and the entry points that run it first.
 *
 * Every multi-step operation writes an intent record before its first
 * storage change (journal.c).  What recovery does with a dead one is the
 * operation's own business: each operation file registers its {op,
 * recover} pairs here when the program starts (volume.c: create, resize;
 * snapshot.c: snapshot, clone, destroy, revert; adopt.c: adopt), and
 * recovery dispatches on the record's op.  Nothing here knows an op.
 *
 * Recovery runs under the SR lock held exclusively, at the start of the
 * next call on the SR: zl_sr_open looks for dead records, and taking the
 * SR lock (zl_sr_lock) always recovers first.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>

#include "core/model/model.h"
#include "util/error.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

#define MAX_TABLES 16

static const struct zl_recovery *tables[MAX_TABLES];
static size_t ntables;

void
zl_recover_register(const struct zl_recovery *table)
{
  if (ntables < MAX_TABLES)
    tables[ntables++] = table;
}

static const struct zl_recovery *
find(const char *op)
{
  for (size_t t = 0; t < ntables; t++) {
    for (const struct zl_recovery *r = tables[t]; r->op; r++) {
      if (strcmp(r->op, op) == 0)
        return r;
    }
  }
  return NULL;
}

static int
dispatch(struct zl_sr *sr, const json_t *rec)
{
  const char *op = zl_meta_str(rec, "op");
  const char *key = zl_meta_str(rec, "key");

  if (!op || !key || !zl_key_valid(key)) {
    zl_error(EINVAL, "record has no valid op and key");
    return -1;
  }
  const struct zl_recovery *r = find(op);
  if (!r) {
    if (ntables == 0) { /* a program that registered nothing: hands off */
      zl_error(ENOTRECOVERABLE, "no recovery is registered in this program");
      return -1;
    }
    zl_error(EINVAL, "unknown operation '%s'", op);
    return -1;
  }
  return r->recover(sr, rec, key);
}

int
zl_recover(struct zl_sr *sr)
{
  return zl_journal_recover(sr, dispatch);
}

int
zl_sr_lock(struct zl_sr *sr, int mode)
{
  if (zl_sr_flock(sr, mode) == -1)
    return -1;
  if (mode == LOCK_EX)
    return zl_recover(sr) == -1 ? (zl_sr_unlock(sr), -1) : 0;

  /* Shared: a dead caller's leftovers must be dealt with before we change
   * anything.  Only an exclusive holder may recover, so trade up. */
  int dead = zl_intent_any_dead(sr);
  if (dead == -1) {
    zl_sr_unlock(sr);
    return -1;
  }
  if (dead && (zl_sr_flock_change(sr, LOCK_EX) == -1 || zl_recover(sr) == -1 ||
               zl_sr_flock_change(sr, LOCK_SH) == -1)) {
    zl_sr_unlock(sr);
    return -1;
  }
  return 0;
}

struct zl_sr *
zl_sr_hold(struct zl_sr *sr, int mode)
{
  return zl_sr_lock(sr, mode) == 0 ? sr : NULL;
}

struct zl_sr *
zl_sr_open(const char *type, const char *sr_key)
{
  struct zl_sr *sr = zl_sr_open_handle(type, sr_key);

  if (!sr)
    return NULL;
  /* Recovery runs at the start of the next call on the SR. */
  int dead = zl_intent_any_dead(sr);
  if (dead == 1 && zl_sr_lock(sr, LOCK_EX) == 0)
    zl_sr_unlock(sr);
  else if (dead == 1 || dead == -1)
    zl_warn("SR %s: recovery could not complete: %s", sr_key, zl_error_msg());
  return sr;
}
