/* zfs.h: private declarations of the ZFS backend, by source file.
 *
 * Layout of a zfs-live SR (device-config:path = <pool>[/<parent>]):
 *   <path>/<sr-uuid>                  the SR dataset, zfs-live:sr=<uuid>,
 *                                     mounted at /run/sr-mount/<sr-uuid>
 *                                     (the SR key is that mountpoint)
 *   <mnt>/.zfs-live/                  private area: sr.json (core),
 *                                     zfs.json (this backend)
 *   <run>/sr/<key, escaped>/         runtime state (pools are host-local;
 *                                     <run> is /run/zfs-live or $ZFS_LIVE_RUN):
 *                                     locks, journal, zfs.json (a copy),
 *                                     snapidx/<key> (snapshot -> its
 *                                     dataset, a cache).  After a reboot it
 *                                     is made again, and what a call cut
 *                                     off by the reboot left is found in
 *                                     the ZFS objects (zfs_boot_recovery)
 *   <sr>/<key>                        a volume: a zvol (layout=zvol), or a
 *                                     filesystem holding one raw sparse file
 *                                     disk.img (layout=dataset), made with
 *                                     canmount=noauto and zfs-live:size: it
 *                                     is mounted, and its file made, when
 *                                     its data is first opened (a file never
 *                                     made reads as zeros), so thousands of
 *                                     volumes need no mounts (zfs-fuse stops
 *                                     at about 1,000)
 *   <sr>/<vol>@<key>                  a snapshot volume
 *   <sr>/<vol>@_zl-origin-<clone>     internal: origin of a clone of a
 *                                     writable volume (clone-on-boot)
 *   <sr>/_zl-ro-<snap>                internal: read-only clone through which
 *                                     a snapshot is read where ZFS has no
 *                                     .zfs directory (zfs-fuse)
 *   <sr>/_zl-rv-<key>                 internal: a revert in progress
 *   <sr>/<vol>@_zl-cbt-<pid>-<boot>-<r> internal: the volume itself, for the
 *                                     length of a list_changed_blocks (a
 *                                     stale one is removed by the next list)
 * Metadata (the core's object) is in user properties zfs-live:meta[.N] of
 * each volume, so it travels with zfs send.  Internal objects carry no
 * metadata and are never listed.
 */
#ifndef ZL_BACKEND_ZFS_H
#define ZL_BACKEND_ZFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/internal.h"
#include "util/exec.h"

#define ZFS_SR_PROP       "zfs-live:sr"
#define ZFS_META_PROP     "zfs-live:meta"
#define ZFS_META_CHUNKS   8
#define ZFS_META_CHUNK    7900
#define ZFS_REVERT_OLD    "zfs-live:revert-old"
#define ZFS_SIZE_PROP     "zfs-live:size" /* dataset layout: the volume size */
#define ZFS_INTERNAL      "_zl-"
#define ZFS_ORIGIN_PREFIX "_zl-origin-"
#define ZFS_RO_PREFIX     "_zl-ro-"
#define ZFS_RV_PREFIX     "_zl-rv-"
#define ZFS_CBT_PREFIX    "_zl-cbt-" /* temporary snapshot of a comparison */
#define ZFS_DISK          "disk.img"
#define ZFS_MOUNT_BASE    "/run/sr-mount"
#define ZFS_STATE         "zfs.json"

/* --- zfs-caps.c: what the host's ZFS can do ------------------------------ */

enum zfs_flavour { ZFS_UNKNOWN = 0, ZFS_OPENZFS, ZFS_FUSE };

struct zfs_caps {
  enum zfs_flavour flavour;
  char version[32]; /* "2.2.2", or "0.7.0" for zfs-fuse */
  int major, minor, patch;
  int pool_version; /* 23 (zfs-fuse), 5000 (feature flags) */
  bool zvols;       /* zfs create -V works (/dev/zfs present) */
  bool list_p;      /* zfs list -p */
  bool get_t;       /* zfs get -t type */
  bool json;        /* -j output (2.3+) */
  bool send_c, send_L, send_e;
  bool recv_s, recv_o;
  bool rename_u;       /* 2.0+ */
  bool create_u;       /* 2.1+ */
  bool snapshot_multi; /* several snapshots in one command */
  bool set_multi;      /* zfs set a=1 b=2 */
  bool sync_prop, snapdev, refres_auto, dot_zfs, bookmarks;
  /* pool features */
  bool lz4, zstd, large_blocks, block_cloning;
  int64_t default_volblocksize;
};

/* Raw outputs of the probe commands: what zfs_caps_decide() reads. */
struct zfs_probe {
  int version_rc; /* `zfs version` */
  const char *version_out;
  const char *sys_version;  /* /sys/module/zfs/version or NULL */
  const char *upgrade_out;  /* `zpool upgrade -v` */
  const char *features_out; /* `zpool get -H -o property,value all POOL` */
  bool dev_zfs;             /* /dev/zfs exists */
};

/* Decide capabilities from probe outputs (pure: unit-tested per version). */
int zfs_caps_decide(const struct zfs_probe *p, struct zfs_caps *c);
/* Run the probe commands for pool (NULL: host only) and decide. */
int zfs_caps_probe(const char *pool, struct zfs_caps *c);
json_t *zfs_caps_to_json(const struct zfs_caps *c);
int zfs_caps_from_json(const json_t *j, struct zfs_caps *c);
/* Identity of the zfs tools now (binary, module version): caches are
 * re-probed when it changes.  Malloc()ed string. */
char *zfs_tools_identity(void);

/* Tunables.  Returns 0 if value is valid for prop on this host, else -1
 * with an error naming the supported values.  create_only props
 * (volblocksize) are refused unless at_create. */
int zfs_tunable_check(const struct zfs_caps *c, const char *prop, const char *value,
                      bool at_create);
bool zfs_is_tunable(const char *prop);
/* The compression an SR gets when none is asked for: lz4, or "on" (lzjb)
 * where lz4 is not available (pool v23). */
const char *zfs_default_compression(const struct zfs_caps *c);
/* Parse "16K", "16384" -> bytes (power of two, 512..1M). */
int zfs_parse_blocksize(const char *s, int64_t *out);
/* Thick reservation for size bytes (libzfs's zvol_volsize_to_reservation
 * before pool-layout corrections). */
int64_t zfs_thick_reservation(int64_t size, int64_t blocksize, int copies);

/* --- zfs-cmd.c: command lines (pure: unit-tested) ------------------------ */

#define ZARGV_MAX 96

struct zargv {
  const char *v[ZARGV_MAX + 1];
  char *owned[ZARGV_MAX];
  int n, nowned;
};

struct zprop {
  const char *name;
  const char *value;
};

enum zfs_layout { LAYOUT_DATASET = 0, LAYOUT_ZVOL = 1 };

void za_init(struct zargv *a, const char *prog);
void za_add(struct zargv *a, const char *s);
void za_addf(struct zargv *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void za_free(struct zargv *a);
char *za_join(const struct zargv *a); /* for tests and logs */

void zcmd_create_sr(struct zargv *a, const struct zfs_caps *c, const char *ds,
                    const char *mountpoint, const struct zprop *props, int nprops);
void zcmd_create_parent(struct zargv *a, const struct zfs_caps *c, const char *ds);
void zcmd_create_volume(struct zargv *a, const struct zfs_caps *c, enum zfs_layout l,
                        const char *ds, int64_t size, int64_t blocksize, bool thick,
                        int copies, const struct zprop *props, int nprops);
void zcmd_snapshot(struct zargv *a, const struct zfs_caps *c, const char *snap,
                   const struct zprop *props, int nprops);
void zcmd_send_incremental(struct zargv *a, const struct zfs_caps *c, const char *from,
                           const char *to);
void zcmd_clone(struct zargv *a, const struct zfs_caps *c, const char *origin,
                const char *ds, const struct zprop *props, int nprops);
void zcmd_destroy(struct zargv *a, const struct zfs_caps *c, const char *name);
void zcmd_get(struct zargv *a, const struct zfs_caps *c, bool recursive,
              const char *props, const char *const *targets);
void zcmd_set(struct zargv *a, const struct zfs_caps *c, const char *ds, const char *prop,
              const char *value);
void zcmd_inherit(struct zargv *a, const struct zfs_caps *c, const char *ds,
                  const char *prop);
void zcmd_volsize(struct zargv *a, const struct zfs_caps *c, const char *ds,
                  int64_t size);
void zcmd_rollback(struct zargv *a, const struct zfs_caps *c, const char *snap);
void zcmd_rename(struct zargv *a, const struct zfs_caps *c, const char *from,
                 const char *to);
void zcmd_mount(struct zargv *a, const struct zfs_caps *c, const char *ds, bool mount);
void zcmd_list_snapshots(struct zargv *a, const struct zfs_caps *c, const char *ds);
void zcmd_pool_list(struct zargv *a, const char *pool);
void zcmd_pool_importable(struct zargv *a);

/* --- zfs-run.c: running commands, reading and writing properties ---------- */

/* Run a built command; on failure the error says "<what>: <zfs's reason>".
 * res may be NULL when only success matters.  Destroys and renames retry
 * "dataset is busy" for a short while (zfs-fuse, udev). */
int zrun(struct zargv *a, const char *what, struct zl_exec_result *res);

/* `zfs get` output -> {name: {prop: [value, source]}} (new reference). */
json_t *zfs_parse_get(const char *out);
const char *zfs_obj_value(const json_t *obj, const char *prop); /* "-" -> NULL */
const char *zfs_obj_source(const json_t *obj, const char *prop);

/* The metadata properties (see zfs-run.c): encode meta as the header
 * zfs-live:meta and chunks of bank 'a' (zfs-live:meta.N) or 'b'
 * (zfs-live:meta.bN) (the strings in *buf, owned by the caller: free with
 * free()); decode (NULL with errno ENOENT when the object has no metadata,
 * EINVAL when it cannot be read); the bank a header names. */
int zfs_meta_encode(const json_t *meta, char bank, struct zprop *props, int *nprops,
                    char **buf);
json_t *zfs_meta_decode(const json_t *obj, const char *name);
char zfs_meta_bank(const json_t *obj);
/* Replace the metadata of the existing object name atomically, whatever
 * its size (fault point set-meta:chunks between the chunks and the
 * header). */
int zfs_meta_store(const struct zfs_caps *c, const char *name, const json_t *meta);
/* The comma-separated list of meta property names (for zfs get). */
const char *zfs_meta_prop_list(void);

/* zfs get on explicit targets.  *objs is always set (parsed output, even
 * when some targets do not exist: then -1 with errno ENOENT). */
int zget(const struct zfs_caps *c, bool recursive, const char *props,
         const char *const *targets, json_t **objs, const char *what);

/* --- zfs-lzc.c: libzfs_core through dlopen (OpenZFS only) ----------------- */

bool zfs_lzc_available(void);
/* Load from dir (NULL: the system's libraries); 0 if usable.  Tests load a
 * stand-in library this way. */
int zfs_lzc_load_from(const char *dir);
/* -1 with errno ENOTSUP when a property cannot be given to the kernel
 * (a name libzfs would translate): the caller then uses the CLI. */
int zfs_lzc_create(const char *name, bool zvol, const struct zprop *props, int n);
int zfs_lzc_clone(const char *name, const char *origin, const struct zprop *props, int n);
int zfs_lzc_destroy(const char *name);
int zfs_lzc_snapshot(const char *snap, const struct zprop *props, int nprops);
int zfs_lzc_destroy_snapshot(const char *snap);

/* --- zfs-sr.c / zfs-vol.c ----------------------------------------------------- */

struct zfs_sr {
  char *dataset; /* <path>/<sr-uuid> */
  char *pool;
  enum zfs_layout layout;
  int64_t blocksize; /* volblocksize / recordsize of new volumes */
  int copies;        /* the SR's copies (thick reservations) */
  struct zfs_caps caps;
};

static inline struct zfs_sr *
zfs_of(struct zl_sr *sr)
{
  return (struct zfs_sr *)sr->be_data;
}

/* zfs-vol.c */
/* The snapshot index (a cache: snapidx/<key> = the dataset component). */
int zfs_index_read(struct zl_sr *sr, const char *key, char *parent, size_t len);
int zfs_index_write(struct zl_sr *sr, const char *key, const char *parent);
void zfs_index_remove(struct zl_sr *sr, const char *key);
/* <sr>/<parent>@<key> for snapshots in the index, <sr>/<key> otherwise. */
void zfs_name_of(struct zl_sr *sr, const char *key, char *out, size_t len, bool *is_snap);
/* Destroy one object (unmounting a filesystem first); gone is success. */
int zfs_destroy_object(struct zfs_sr *z, const char *name);
int zfs_vol_list(struct zl_sr *sr, zl_vol_cb cb, void *opaque);
/* backend.h sr_foreign */
int zfs_sr_foreign(struct zl_sr *sr, zl_foreign_cb cb, void *opaque);
int zfs_vol_get(struct zl_sr *sr, const char *key, json_t **meta,
                struct zl_vol_info *info);
int zfs_vol_create(struct zl_sr *sr, const char *key, int64_t size, bool thick,
                   const json_t *meta, struct zl_vol_info *out);
int zfs_vol_copy(struct zl_sr *sr, const char *src, const char *dst,
                 enum zl_copy_kind kind, bool thick, const json_t *meta,
                 const struct zl_vol_info *src_info, struct zl_vol_info *out);
int zfs_vol_discard(struct zl_sr *sr, const char *key);
int zfs_vol_destroy(struct zl_sr *sr, const char *key);
int zfs_vol_resize(struct zl_sr *sr, const char *key, int64_t size, bool thick);
int zfs_vol_revert(struct zl_sr *sr, const char *key, const char *snap, bool thick);
int zfs_vol_set_meta(struct zl_sr *sr, const char *key, const json_t *meta);
int zfs_vol_open(struct zl_sr *sr, const char *key, int flags);
/* zfs-adopt.c */
/* /dev/zvol/<sr dataset>/<key>, or for a snapshot its read clone's device
 * /dev/zvol/<sr dataset>/_zl-ro-<key> (pure: unit-tested). */
void zfs_zvol_device(const char *sr_dataset, const char *key, bool snap, char *out,
                     size_t len);
int zfs_vol_device(struct zl_sr *sr, const char *key, char *out, size_t len);
int zfs_vol_adopt(struct zl_sr *sr, const char *key, const char *source,
                  const json_t *meta, struct zl_vol_info *out);
int zfs_vol_adopt_recover(struct zl_sr *sr, const char *key, const char *source,
                          bool committed);
/* zfs-data.c: is <mnt>/<comp> a mounted dataset (not the SR's directory)? */
bool zfs_is_mounted(struct zl_sr *sr, const char *comp);
int zfs_vol_dependents(struct zl_sr *sr, const char *key);
bool zfs_cbt_snapshot_stale(const char *snap); /* "_zl-cbt-..." */
int zfs_vol_changes(struct zl_sr *sr, const char *from, const char *to, zl_range_fn cb,
                    void *opaque);
int zfs_vol_tune(struct zl_sr *sr, const char *key, const char *prop, const char *value);
/* Remove internal objects left in the SR (before the SR dataset goes). */
int zfs_sr_clear_internal(struct zl_sr *sr);
/* After a reboot (runtime state gone): finish or undo what the ZFS objects
 * say was cut off, remove orphaned internal objects, rebuild the snapshot
 * index.  One zfs process when there is nothing to do. */
int zfs_boot_recovery(struct zl_sr *sr);

#endif
