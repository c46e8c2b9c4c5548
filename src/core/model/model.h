/* internal.h: core-private declarations, grouped by source file so that the
 * header is also a map of the core.  Front ends include core.h only;
 * backends see backend.h only.
 */
#ifndef ZL_CORE_INTERNAL_H
#define ZL_CORE_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>

#include "backend/backend.h"
#include "core/core.h"

/* An open SR.
 *
 * Lock order (see "lock.c" below): the SR lock (lockfd) before any volume lock;
 * volume locks in strcmp() order of their keys.  Holding the SR lock
 * exclusively excludes every other change to the SR, so code under LOCK_EX
 * takes no volume locks.
 */
struct zl_sr {
  struct zl_store st; /* what the backend sees: key, directories, its data */
  int lockfd;         /* statefd/lock, opened on first use */
  int lock_mode;      /* 0, LOCK_SH or LOCK_EX as currently held */
  json_t *info;       /* sr.json: uuid, name, description, type, provisioning */
};

/* registry.c: the backend of an SR type, or NULL */
const struct zl_backend *zl_backend_find(const char *sr_type);

/* handle.c: an open SR, without locking or recovery */
const struct zl_backend *zl_backend_or_error(const char *type);
/* Storage and private area, sr.json not required (SR.create). */
struct zl_sr *zl_sr_open_storage(const struct zl_backend *be, const char *key);
/* Storage, private area and sr.json. */
struct zl_sr *zl_sr_open_handle(const char *type, const char *sr_key);
int zl_sr_load_info(struct zl_sr *sr);
int zl_sr_save_info(struct zl_sr *sr, const json_t *info);
/* Is runtime state kept apart from the private area (host-local)? */
bool zl_sr_state_apart(const struct zl_sr *sr);
bool zl_sr_thick_default(const struct zl_sr *sr);

/* lock.c: SR and volume locks.
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
 * zl_sr_lock (recover.c) takes the SR lock and completes or rolls back
 * what dead callers left before returning (LOCK_SH trades up to do so when
 * it finds such leftovers).  The primitive here, zl_sr_flock, only locks;
 * both fail with kind NO_SR if the SR was destroyed while the caller waited.
 */
/* The SR lock, and recovery first: see recover.c.  LOCK_SH or LOCK_EX;
 * blocks. */
int zl_sr_lock(struct zl_sr *sr, int mode);
/* The lock alone (blocks); change the mode of a held one. */
int zl_sr_flock(struct zl_sr *sr, int mode);
int zl_sr_flock_change(struct zl_sr *sr, int mode);
void zl_sr_unlock(struct zl_sr *sr);
/* The SR lock (recovery first, as zl_sr_lock) for the rest of the scope,
 * after nbdkit's ACQUIRE_LOCK_FOR_CURRENT_SCOPE:
 *   CLEANUP_SR_UNLOCK struct zl_sr *held = zl_sr_hold(sr, LOCK_EX);
 *   if (!held) return -1;
 * NULL (error set) when it cannot be had. */
struct zl_sr *zl_sr_hold(struct zl_sr *sr, int mode);
void zl_cleanup_sr_unlock(struct zl_sr **held);
#define CLEANUP_SR_UNLOCK __attribute__((cleanup(zl_cleanup_sr_unlock)))

struct zl_vol_lock {
  int fd;
};
/* Under the SR lock (LOCK_SH): lock one volume exclusively; blocks. */
int zl_vol_lock(struct zl_sr *sr, const char *key, struct zl_vol_lock *l);
void zl_vol_unlock(struct zl_vol_lock *l);
/* A volume lock released at the end of the scope (declared after the SR
 * hold, it goes first: the lock order). */
#define ZL_VOL_LOCK_INIT                                                                 \
  {                                                                                      \
    -1                                                                                   \
  }
#define CLEANUP_VOL_UNLOCK __attribute__((cleanup(zl_vol_unlock)))
/* Under LOCK_EX, after the volume is gone: remove its lock file. */
void zl_vol_lock_forget(struct zl_sr *sr, const char *key);

/* journal.c: intent records, one file per operation in progress, held
 * under flock by its owner for its lifetime so that a dead owner is
 * recognised without pids or timeouts. */
struct zl_intent {
  int fd;
  char name[64];
  struct zl_sr *sr;
};
/* record: {"op": ..., ...}; not stolen. */
int zl_intent_begin(struct zl_sr *sr, const json_t *record, struct zl_intent *in);
void zl_intent_end(struct zl_intent *in);
/* Any record whose owner is dead?  1 yes, 0 no, -1 error. */
int zl_intent_any_dead(struct zl_sr *sr);
/* Under LOCK_EX: fn for every dead record (see journal.c for what its
 * result does to the record), after the dead writers' temporaries go. */
typedef int (*zl_record_fn)(struct zl_sr *sr, const json_t *rec);
int zl_journal_recover(struct zl_sr *sr, zl_record_fn fn);

/* recover.c: what each operation does with its dead records, registered
 * by the operation files at start (constructors). */
struct zl_recovery {
  const char *op;
  int (*recover)(struct zl_sr *sr, const json_t *rec, const char *key);
};
void zl_recover_register(const struct zl_recovery *table); /* {NULL}-ended */
/* Under LOCK_EX: complete or roll back every dead record. */
int zl_recover(struct zl_sr *sr);

/* meta.c: the metadata object stored with each volume. */
json_t *zl_meta_new(const char *key, const char *uuid, const char *name,
                    const char *description, bool sharable, bool read_only,
                    enum zl_provisioning prov, const char *snapshot_of,
                    const char *clone_of);
int zl_meta_to_volume(const char *key, const json_t *meta, const struct zl_vol_info *info,
                      struct zl_volume *out);
/* Not seen by users: hidden (destroyed, kept for its dependents) or
 * transient (being made by a copy: see copy.c). */
bool zl_meta_hidden(const json_t *meta);
#define ZL_META_TRANSIENT "transient"
/* Being made by a copy, import or receive whose maker holds the intent
 * record that names it: never collected; the maker's commit clears it,
 * the recovery of its dead record removes the volume (copy.c). */
bool zl_meta_transient(const json_t *meta);
/* A replica taking changes (replica.c): listed, but nothing opens,
 * snapshots, reverts, resizes or destroys it until the commit; the value
 * is the key of the replica point the recovery reverts it to. */
#define ZL_META_RECEIVING "receiving"
/* -1 (ZL_ERR_BUSY, naming what it waits for) if meta is receiving. */
int zl_meta_receiving_error(const char *key, const json_t *meta);
/* Why meta could not be read (ZL_META_BROKEN), or NULL. */
const char *zl_meta_broken(const json_t *meta);
/* Set a ZL_ERR_DAMAGED error for key whose metadata meta is broken. */
int zl_meta_broken_error(const char *key, const json_t *meta);
bool zl_meta_read_only(const json_t *meta);
bool zl_meta_thick(const json_t *meta);
const char *zl_meta_str(const json_t *meta, const char *field); /* or NULL */
bool zl_meta_cbt(const json_t *meta);            /* changed blocks tracked */
bool zl_meta_data_destroyed(const json_t *meta); /* only CBT metadata left */

/* cbt.c: kept in step with volume operations, under LOCK_EX */
struct zl_cbt_rotation {
  bool active;
  unsigned old;
};
/* Around the storage snapshot of key as snap (see cbt.c). */
int zl_cbt_rotate_begin(struct zl_sr *sr, const char *key, const json_t *meta,
                        struct zl_cbt_rotation *rot);
int zl_cbt_rotate_end(struct zl_sr *sr, const char *key, const char *snap,
                      const struct zl_cbt_rotation *rot);
/* Recovery of a snapshot of key that was committed as snap: finish its
 * rotation if a crash cut it off. */
int zl_cbt_rotate_recover(struct zl_sr *sr, const char *key, const char *snap);
/* key is going: its changes move into its successor's record. */
int zl_cbt_forget(struct zl_sr *sr, const char *key);
int zl_cbt_mark_all(struct zl_sr *sr, const char *key); /* after a revert */
int zl_cbt_resize(struct zl_sr *sr, const char *key, int64_t size);
int zl_cbt_sr_remove(struct zl_sr *sr); /* SR destroy: the records go */

/* volume.c */
/* Fetch meta and info of a visible volume; ENOENT/NO_VOLUME otherwise. */
int zl_vol_lookup(struct zl_sr *sr, const char *key, json_t **meta,
                  struct zl_vol_info *info);
/* zl_vol_lookup of two keys, in one query where the backend can
 * (vol_get_many).  m1 and m2 are required (new references). */
int zl_vol_lookup2(struct zl_sr *sr, const char *k1, json_t **m1, struct zl_vol_info *i1,
                   const char *k2, json_t **m2, struct zl_vol_info *i2);

/* Read-modify-write a volume's metadata under its lock: fn returns 1 if it
 * changed meta (then stored), 0 if not, -1 on error (error set). */
typedef int (*zl_meta_fn)(json_t *meta, void *arg);
int zl_vol_update(struct zl_sr *sr, const char *key, zl_meta_fn fn, void *arg);
/* Recovery of a volume being made (create, snapshot, clone): kept when
 * committed, else what was made goes. */
int zl_recover_new_volume(struct zl_sr *sr, const char *key);

/* users.c: who uses a volume on this host (hooks the host layer registers) */
struct zl_users {
  bool (*attached)(struct zl_sr *sr, const char *key);        /* any attachment */
  bool (*blockdev)(struct zl_sr *sr, const char *key);        /* a loop device */
  bool (*writer_blockdev)(struct zl_sr *sr, const char *key); /* Ganeti's device */
  bool (*shared)(struct zl_sr *sr, const char *key);          /* vol share */
};
void zl_users_register(const struct zl_users *u);
bool zl_users_attached(struct zl_sr *sr, const char *key);
bool zl_users_blockdev(struct zl_sr *sr, const char *key);
bool zl_users_shared(struct zl_sr *sr, const char *key);
bool zl_users_writer_blockdev(struct zl_sr *sr, const char *key);

/* adopt.c: recovery of an adopt cut off by a crash (see backend.h). */
int zl_adopt_recover(struct zl_sr *sr, const char *key, const char *source);

/* copy.c: zl_recv_begin with extra fields merged into the metadata. */
struct zl_recv *zl_recv_begin_meta(struct zl_sr *sr, const struct zl_create_args *a,
                                   const json_t *keys, const json_t *extra);

/* snapshot.c */
/* 1 (error set, naming the writer: active on a host, open on a node, a
 * writable block device here) if something may write key; 0 if not.  op
 * ends the message (what to do). */
int zl_in_use_writers(struct zl_sr *sr, const char *key, const json_t *meta,
                      const char *op);
/* A snapshot only the core sees (hidden from the first moment), e.g. the
 * reset point of a non-persistent disk. */
int zl_vol_snapshot_hidden(struct zl_sr *sr, const char *key, char **new_key);
/* Revert key to snap even when snap is hidden, and remove a hidden
 * volume outright (under their own locks). */
int zl_vol_revert_any(struct zl_sr *sr, const char *snapshot, const char *key);
int zl_vol_remove(struct zl_sr *sr, const char *key);
/* Under LOCK_EX: remove key's storage (journaled), then collect hidden
 * ancestors that nothing depends on any more. */
int zl_vol_remove_unlocked(struct zl_sr *sr, const char *key);
/* Under LOCK_EX: destroy hidden volumes without dependents. */
int zl_collect_hidden(struct zl_sr *sr);

/* image.c: what export and import share */
const char *zl_image_qemu_format(enum zl_image_format f); /* qemu-img's -f name */
/* Progress reports, at most 4 a second and once at the end. */
struct zl_meter {
  const struct zl_progress *p; /* NULL: nobody listens */
  uint64_t done, total;
  long long last_ns;
};
void zl_meter_init(struct zl_meter *m, const struct zl_progress *p, uint64_t total);
void zl_meter_set(struct zl_meter *m, uint64_t done);
void zl_meter_add(struct zl_meter *m, uint64_t n);
void zl_meter_end(struct zl_meter *m);
/* Copy size bytes of raw data from in to out, hashing them: in a file
 * (in_stream false) only its data segments are read, holes hashed as
 * zeros; from a stream exactly size bytes (fewer: "truncated", more: an
 * error).  out -1: only hash; a stream gets every byte, a file only the
 * blocks that are not zero, then its size set. */
struct zl_sha256;
struct zl_raw_copy {
  int in;
  bool in_stream;
  int64_t size;
  int out;
  bool out_stream;
  bool out_volume;        /* a volume, already of its size and zero: never truncated */
  struct zl_sha256 *hash; /* or NULL */
  struct zl_meter *meter;
};
int zl_raw_copy(const struct zl_raw_copy *c);
/* A digest when on (*failed: it could not be had, error set), or NULL;
 * finish: its hex into hex ("" for NULL), and the context freed. */
struct zl_sha256 *zl_digest_start(bool on, bool *failed);
int zl_digest_finish(struct zl_sha256 *h, char hex[65]);
/* The SHA-256 of size bytes of fd's data (holes as zeros). */
int zl_image_hash_fd(int fd, int64_t size, struct zl_meter *m, char hex[65]);
/* "/proc/<pid>/fd/<fd>": fd by a name another program can open. */
void zl_fd_path(int fd, char *out, size_t len);
/* Run qemu-img (argv[0] "qemu-img"); its -p progress moves m from base
 * over span; out non-NULL: its stdout instead (malloc()ed).  A non-zero
 * exit is an error (kind INVALID) with qemu-img's message. */
int zl_qemu_img(const char *const *argv, struct zl_meter *m, uint64_t base, uint64_t span,
                char **out);

#endif
