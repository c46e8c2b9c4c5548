/* lock.h: SR and volume locks.
 *
 * Locks are flock(2) locks on files in the SR's private area, released when
 * a process dies and honoured across hosts on NFSv4.
 *
 * ORDER: the SR lock first, then volume locks in strcmp() order of their
 * keys.  Never take an SR lock while holding a volume lock.
 *
 *   SR lock, LOCK_EX   changes to the set of volumes (create, snapshot,
 *                      clone, destroy, revert), SR.destroy, SR renames,
 *                      crash recovery.  Excludes every other change, so
 *                      code holding it takes no volume locks.
 *   SR lock, LOCK_SH   changes to one volume (resize, set, unset, names),
 *                      with that volume's lock held exclusively.
 *   no lock            reads (stat, ls, SR.stat): every change is published
 *                      atomically, so readers never see half a change.
 *
 * zl_sr_lock(LOCK_EX) completes or rolls back what dead callers left (see
 * journal.c) before returning; zl_sr_lock(LOCK_SH) trades up to do so when
 * it finds such leftovers.  Both fail with kind NO_SR if the SR was
 * destroyed while the caller waited.
 */
#ifndef ZL_CORE_LOCK_H
#define ZL_CORE_LOCK_H

struct zl_sr;

int zl_sr_lock(struct zl_sr *sr, int mode); /* LOCK_SH or LOCK_EX; blocks */
void zl_sr_unlock(struct zl_sr *sr);

struct zl_vol_lock {
  int fd;
};
/* Under the SR lock (LOCK_SH): lock one volume exclusively; blocks. */
int zl_vol_lock(struct zl_sr *sr, const char *key, struct zl_vol_lock *l);
void zl_vol_unlock(struct zl_vol_lock *l);
/* Under LOCK_EX, after the volume is gone: remove its lock file. */
void zl_vol_lock_forget(struct zl_sr *sr, const char *key);

#endif
