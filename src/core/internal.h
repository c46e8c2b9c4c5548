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
#include "core/lock.h"

/* An open SR.
 *
 * Lock order (see lock.c): the SR lock (lockfd) before any volume lock;
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

/* sr.c */
bool zl_sr_thick_default(const struct zl_sr *sr);

/* lock.c: see core/lock.h */

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
/* Under LOCK_EX: complete or roll back every dead record. */
int zl_recover(struct zl_sr *sr);

/* meta.c: the metadata object stored with each volume. */
json_t *zl_meta_new(const char *key, const char *uuid, const char *name,
                    const char *description, bool sharable, bool read_only,
                    enum zl_provisioning prov, const char *snapshot_of,
                    const char *clone_of);
int zl_meta_to_volume(const char *key, const json_t *meta, const struct zl_vol_info *info,
                      struct zl_volume *out);
bool zl_meta_hidden(const json_t *meta);
/* Why meta could not be read (ZL_META_BROKEN), or NULL. */
const char *zl_meta_broken(const json_t *meta);
/* Set a ZL_ERR_DAMAGED error for key whose metadata meta is broken. */
int zl_meta_broken_error(const char *key, const json_t *meta);
bool zl_meta_read_only(const json_t *meta);
bool zl_meta_thick(const json_t *meta);
const char *zl_meta_str(const json_t *meta, const char *field); /* or NULL */

/* cbt.c: kept in step with volume operations, under LOCK_EX */
bool zl_meta_cbt(const json_t *meta);
bool zl_meta_data_destroyed(const json_t *meta);
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

/* Read-modify-write a volume's metadata under its lock: fn returns 1 if it
 * changed meta (then stored), 0 if not, -1 on error (error set). */
typedef int (*zl_meta_fn)(json_t *meta, void *arg);
int zl_vol_update(struct zl_sr *sr, const char *key, zl_meta_fn fn, void *arg);

/* adopt.c: recovery of an adopt cut off by a crash (see backend.h). */
int zl_adopt_recover(struct zl_sr *sr, const char *key, const char *source);

/* snapshot.c */
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

#endif
