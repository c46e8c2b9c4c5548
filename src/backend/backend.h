/* backend.h: the one ops table every storage backend fills in.
 *
 * Backends are mechanism only: they create, copy, remove and describe
 * storage objects and store the metadata blob the core gives them *with*
 * the object (a sidecar file, ZFS user properties).  They never decide
 * policy (what may be destroyed, what is visible) and never print.
 *
 * Capabilities (caps) are queries and are kept apart from operations: the
 * core uses them to pick a path or to refuse clearly.
 *
 * Crash safety contract: operations that make a new volume (vol_create,
 * vol_copy) commit by storing the metadata last (or atomically with the
 * data).  After a crash the core asks vol_get() whether the volume was
 * committed and calls vol_discard() to remove a partial one.  vol_destroy,
 * vol_resize and vol_revert must be safe to run again after a crash at any
 * point (the core re-runs them).  Each step between storage changes calls
 * zl_fault(op, step) so tests can kill the process there.
 */
#ifndef ZL_BACKEND_H
#define ZL_BACKEND_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/progress.h"
#include "util/fsutil.h"

/* What a backend sees of an open SR (the core's struct zl_sr holds one).
 * The backend fills dirfd, privfd, statefd and be_data in sr_open; the
 * core gives it back to every operation. */
struct zl_store {
  const struct zl_backend *be;
  char *key;     /* the SR key: what SR.attach returned */
  int dirfd;     /* the backend's main directory of the SR, or -1 */
  int privfd;    /* the private area on the storage: sr.json */
  int statefd;   /* runtime state: lock, locks/, journal/ (the private area
                  * itself unless the backend keeps it host-local) */
  void *be_data; /* backend-private */
  /* Set by the core around an operation that may copy data (revert), for
   * the backend to pass to the copy (zl_clone_or_copy_progress); fn NULL
   * otherwise. */
  struct zl_copy_progress copy_progress;
};

/* The layout every SR shares. */
#define ZL_PRIV_DIR    ".zfs-live" /* the private area, in the SR's directory */
#define ZL_SR_INFO     "sr.json"   /* the core's file there: it makes the SR */
#define ZL_JOURNAL_DIR "journal"   /* intent records, in the state directory */
#define ZL_META_MAX    (4u << 20)  /* largest metadata object read */

/* Where to make the temporary of a file that goes into targetfd: the SR's
 * journal directory when it is on the same filesystem (recovery finds a
 * dead writer's temporary there), else targetfd itself.  An fd to close,
 * or -1. */
int zl_store_scratch_for(const struct zl_store *st, int targetfd);

/* Capability bits */
#define ZL_CAP_REFLINK    (1u << 0) /* snapshots/clones share data instantly */
#define ZL_CAP_THICK      (1u << 1) /* space can be reserved */
#define ZL_CAP_CLONES_PIN (1u << 2) /* a snapshot with clones cannot be removed */
#define ZL_CAP_SPARSE     (1u << 3) /* thin volumes allocate on write */
#define ZL_CAP_CHANGES_ALWAYS                                                            \
  (1u << 4) /* vol_changes answers for any two snapshots, even one whose data            \
             * was destroyed: no tracked bitmaps needed */

struct zl_vol_info {
  int64_t virtual_size;
  int64_t physical_utilisation;
};

/* vol_get/vol_list may add "_storage" to the metadata they return: facts
 * the storage reports (provisioning, tunables with their sources) that the
 * core passes through to callers and never stores. */
#define ZL_META_STORAGE "_storage"

/* A volume whose metadata cannot be read (a corrupt sidecar, properties
 * that fail their checksum) is still reported by vol_list and vol_get,
 * with a metadata object of only {"key": k, "_broken": reason}: the core
 * lists it with its health and refuses to act on it, so it is never
 * destroyed as a side effect and never taken for free space. */
#define ZL_META_BROKEN "_broken"

/* Something in an SR's storage that is not a volume: see sr_foreign. */
typedef int (*zl_foreign_cb)(void *opaque, const char *what);

enum zl_copy_kind { ZL_COPY_SNAPSHOT, ZL_COPY_CLONE };

/* A changed byte range (length UINT64_MAX: to the end). */
typedef int (*zl_range_fn)(void *opaque, uint64_t offset, uint64_t length);

typedef int (*zl_vol_cb)(void *opaque, const char *key, json_t *meta,
                         const struct zl_vol_info *info);

struct zl_backend {
  const char *name;        /* "file" */
  const char *sr_type;     /* "file-live": the SMAPIv3 SR type and plugin suffix */
  const char *title;       /* Plugin.Query name */
  const char *description; /* Plugin.Query description */
  int64_t size_granularity;

  json_t *(*config_help)(void);          /* device-config key -> description */
  json_t *(*features)(void);             /* extra SMAPIv3 feature strings */
  unsigned (*caps)(struct zl_store *sr); /* ZL_CAP_* for an open SR */
  bool (*sr_key_valid)(const char *sr_key);

  /* SR.create, storage part: validate config (canonicalising it in place),
   * refuse nested SRs, make the storage and an empty private area.  May be
   * re-run on a half-created SR (no sr.json yet).  *sr_key: malloc()ed. */
  int (*sr_prepare)(const char *uuid, json_t *config, char **sr_key);
  /* SR.attach: the key of the SR config describes (it must exist). */
  int (*sr_locate)(const json_t *config, char **sr_key);
  /* Open: validate sr->key, set sr->dirfd/privfd/be_data, and sr->statefd
   * if runtime state (locks, intent records) is to live elsewhere than the
   * private area (host-local storage may keep it in /run). */
  int (*sr_open)(struct zl_store *sr);
  void (*sr_close)(struct zl_store *sr);
  /* Remove the storage of an SR that holds no volumes; the core has already
   * removed its own files from the private area. */
  int (*sr_remove)(struct zl_store *sr);
  /* Under the SR lock (LOCK_EX, so no call is half-way): cb for everything
   * in the SR's storage that is neither a volume (vol_list reports those,
   * readable or not) nor an internal object of the backend, after removing
   * the temporaries dead calls left.  SR.destroy refuses while there is
   * anything: an SR never takes data it cannot account for with it. */
  int (*sr_foreign)(struct zl_store *sr, zl_foreign_cb cb, void *opaque);
  int (*sr_space)(struct zl_store *sr, int64_t *total, int64_t *free);
  /* Append {"sr_key"?, "configuration", "uuid"?, "can_create", "reason"}
   * objects to results for the place config describes. */
  int (*sr_probe)(const json_t *config, json_t *results);
  /* Can other hosts use this SR at the same time (its storage is on a
   * network or cluster filesystem)?  SR.stat's "clustered".  NULL: never. */
  bool (*sr_clustered)(struct zl_store *sr);
  /* A short description of what this SR can do ("reflink=yes fs=btrfs"). */
  char *(*sr_summary)(struct zl_store *sr);

  /* Volumes */
  int (*vol_list)(struct zl_store *sr, zl_vol_cb cb, void *opaque);
  /* ENOENT (kind NO_VOLUME) if the volume does not exist or was never
   * committed.  meta: new reference, may be NULL if not wanted. */
  int (*vol_get)(struct zl_store *sr, const char *key, json_t **meta,
                 struct zl_vol_info *info);
  /* vol_get of n keys in one query (metas: new references, required);
   * -1 if any of them fails, with nothing returned (the core then asks
   * one at a time).  NULL: the core asks one at a time. */
  int (*vol_get_many)(struct zl_store *sr, size_t n, const char *const *keys,
                      json_t **metas, struct zl_vol_info *infos);
  /* Make a volume; *out receives its size and allocation as made (so the
   * caller need not ask the storage again). */
  int (*vol_create)(struct zl_store *sr, const char *key, int64_t size, bool thick,
                    const json_t *meta, struct zl_vol_info *out);
  /* Snapshot or clone src (whose facts the caller has: src_info) as dst. */
  int (*vol_copy)(struct zl_store *sr, const char *src, const char *dst,
                  enum zl_copy_kind kind, bool thick, const json_t *meta,
                  const struct zl_vol_info *src_info, struct zl_vol_info *out);
  int (*vol_discard)(struct zl_store *sr, const char *key);
  int (*vol_destroy)(struct zl_store *sr, const char *key);
  int (*vol_resize)(struct zl_store *sr, const char *key, int64_t size, bool thick);
  int (*vol_revert)(struct zl_store *sr, const char *key, const char *snap, bool thick);
  int (*vol_set_meta)(struct zl_store *sr, const char *key, const json_t *meta);
  int (*vol_open)(struct zl_store *sr, const char *key, int flags);
  /* Make dst in this SR a copy of src in src_sr (an open SR of the same
   * backend, maybe this one) without the core moving the data: 1 done,
   * with meta stored last (the commit, as vol_create); 0 when this pair
   * has no such path (nothing done: the core copies the data); -1 on error
   * (what was made is left for vol_discard).  src may be written meanwhile:
   * the copy is of one instant of it.  NULL: never. */
  int (*vol_copy_native)(struct zl_store *sr, const char *dst, struct zl_store *src_sr,
                         const char *src, bool thick, const json_t *meta,
                         const struct zl_progress *p, struct zl_vol_info *out);
  /* Number of objects that keep key's storage alive (clones of a snapshot);
   * NULL when the backend has no such dependencies. */
  int (*vol_dependents)(struct zl_store *sr, const char *key);
  /* A per-volume storage tunable set through the keys map as
   * "_sm_config_<prop>" (value NULL: back to the SR's default).  Returns 1
   * if prop is a tunable of this backend and was applied, 0 if it is not a
   * tunable (the key is then only stored), -1 on error (invalid value:
   * nothing changed).  NULL: no tunables. */
  int (*vol_tune)(struct zl_store *sr, const char *key, const char *prop,
                  const char *value);
  /* Changed blocks between two snapshots of one volume, or a snapshot and
   * the volume (from the copy-on-write layer): cb for every range that may
   * differ, never missing one.  -1 with errno ENOTSUP when the storage cannot
   * tell (the core then uses tracked bitmaps).  NULL: never can. */
  int (*vol_changes)(struct zl_store *sr, const char *from, const char *to,
                     zl_range_fn cb, void *opaque);
  /* Free a snapshot's data, keeping what vol_changes needs of it (and its
   * metadata).  NULL: the data stays (vol_changes needs it). */
  int (*vol_data_destroy)(struct zl_store *sr, const char *key);
  /* What this host offers this backend (for `zfs-live doctor`): a JSON
   * object, arg naming a place to look (a pool); NULL: nothing to report. */
  json_t *(*host_report)(const char *arg);
  /* The stable path of the block device that holds key's data when the
   * storage is a device (a zvol: /dev/zvol/...), into out; -1 with errno
   * ENOTSUP when its data is a file.  NULL: always files. */
  int (*vol_device)(struct zl_store *sr, const char *key, char *out, size_t len);
  /* Take the existing object source (a raw file, a zvol or a dataset
   * holding one) into the SR as key without copying its data, storing
   * meta with it; re-running after a crash completes it.  NULL: the
   * backend cannot adopt. */
  int (*vol_adopt)(struct zl_store *sr, const char *key, const char *source,
                   const json_t *meta, struct zl_vol_info *out);
  /* After a crash in vol_adopt (the core journals it): committed (vol_get
   * finds key) -> finish (the source's old name goes); not -> undo what
   * was done (the source keeps its data, nothing of it stays in the SR).
   * Both leave the data under exactly one name.  NULL: nothing to do. */
  int (*vol_adopt_recover)(struct zl_store *sr, const char *key, const char *source,
                           bool committed);
};

extern const struct zl_backend zl_backend_file;
extern const struct zl_backend zl_backend_zfs;

#endif
