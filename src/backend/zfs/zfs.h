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
 *                                     the ZFS objects (zb_boot_recovery)
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

#include "backend/backend.h"
#include "util/fault.h"
#include "util/keys.h"
#include "util/rundir.h"
#include "util/exec.h"

#define ZB_SR_PROP         "zfs-live:sr"
#define ZB_META_PROP       "zfs-live:meta"
#define ZB_META_CHUNKS     8
#define ZB_META_CHUNK      7900
#define ZB_REVERT_OLD      "zfs-live:revert-old"
#define ZB_SIZE_PROP       "zfs-live:size" /* dataset layout: the volume size */
#define ZB_INTERNAL        "_zl-"
#define ZB_ORIGIN_PREFIX   "_zl-origin-"
#define ZB_RO_PREFIX       "_zl-ro-"
#define ZB_RV_PREFIX       "_zl-rv-"
#define ZB_CBT_PREFIX      "_zl-cbt-" /* temporary snapshot of a comparison */
#define ZB_BOOKMARK_PREFIX "zl-"      /* <vol>#zl-<key>: a data-destroyed snapshot */
#define ZB_DISK            "disk.img"
#define ZB_MOUNT_BASE      "/run/sr-mount"
#define ZB_STATE           "zfs.json"

/* --- caps.c: what the host's ZFS can do ------------------------------ */

enum zb_flavour { ZB_UNKNOWN = 0, ZB_OPENZFS, ZB_FUSE };

struct zb_caps {
  enum zb_flavour flavour;
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

/* Raw outputs of the probe commands: what zb_caps_decide() reads. */
struct zb_probe {
  int version_rc; /* `zfs version` */
  const char *version_out;
  const char *sys_version;  /* /sys/module/zfs/version or NULL */
  const char *upgrade_out;  /* `zpool upgrade -v` */
  const char *features_out; /* `zpool get -H -o property,value all POOL` */
  bool dev_zfs;             /* /dev/zfs exists */
};

/* Decide capabilities from probe outputs (pure: unit-tested per version). */
int zb_caps_decide(const struct zb_probe *p, struct zb_caps *c);
/* Run the probe commands for pool (NULL: host only) and decide. */
int zb_caps_probe(const char *pool, struct zb_caps *c);
json_t *zb_caps_to_json(const struct zb_caps *c);
int zb_caps_from_json(const json_t *j, struct zb_caps *c);
/* Identity of the zfs tools now (binary, module version): caches are
 * re-probed when it changes.  Malloc()ed string. */
char *zb_tools_identity(void);

/* Tunables.  Returns 0 if value is valid for prop on this host, else -1
 * with an error naming the supported values.  create_only props
 * (volblocksize) are refused unless at_create. */
int zb_tunable_check(const struct zb_caps *c, const char *prop, const char *value,
                     bool at_create);
bool zb_is_tunable(const char *prop);
/* The compression an SR gets when none is asked for: lz4, or "on" (lzjb)
 * where lz4 is not available (pool v23). */
const char *zb_default_compression(const struct zb_caps *c);
/* Parse "16K", "16384" -> bytes (power of two, 512..1M). */
int zb_parse_blocksize(const char *s, int64_t *out);
/* Thick reservation for size bytes (libzfs's zvol_volsize_to_reservation
 * before pool-layout corrections). */
int64_t zb_thick_reservation(int64_t size, int64_t blocksize, int copies);

/* --- cmd.c: command lines (pure: unit-tested) ------------------------ */

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

enum zb_layout { LAYOUT_DATASET = 0, LAYOUT_ZVOL = 1 };

void za_init(struct zargv *a, const char *prog);
void za_add(struct zargv *a, const char *s);
void za_addf(struct zargv *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void za_free(struct zargv *a);
char *za_join(const struct zargv *a); /* for tests and logs */

void zcmd_create_sr(struct zargv *a, const struct zb_caps *c, const char *ds,
                    const char *mountpoint, const struct zprop *props, int nprops);
void zcmd_create_parent(struct zargv *a, const struct zb_caps *c, const char *ds);
void zcmd_create_volume(struct zargv *a, const struct zb_caps *c, enum zb_layout l,
                        const char *ds, int64_t size, int64_t blocksize, bool thick,
                        int copies, const struct zprop *props, int nprops);
void zcmd_snapshot(struct zargv *a, const struct zb_caps *c, const char *snap,
                   const struct zprop *props, int nprops);
void zcmd_send_incremental(struct zargv *a, const struct zb_caps *c, const char *from,
                           const char *to);
/* The full stream of snap (a copy to another pool), or the rest of one a
 * receive -s was cut off in (token). */
void zcmd_send(struct zargv *a, const struct zb_caps *c, const char *snap,
               const char *token);
/* zfs receive into ds: not mounted (-u) and resumable (-s) where the tools
 * have them. */
void zcmd_receive(struct zargv *a, const struct zb_caps *c, const char *ds);
void zcmd_clone(struct zargv *a, const struct zb_caps *c, const char *origin,
                const char *ds, const struct zprop *props, int nprops);
void zcmd_destroy(struct zargv *a, const struct zb_caps *c, const char *name);
void zcmd_bookmark(struct zargv *a, const struct zb_caps *c, const char *snap,
                   const char *bookmark);
void zcmd_get(struct zargv *a, const struct zb_caps *c, bool recursive, const char *props,
              const char *const *targets);
void zcmd_set(struct zargv *a, const struct zb_caps *c, const char *ds, const char *prop,
              const char *value);
void zcmd_inherit(struct zargv *a, const struct zb_caps *c, const char *ds,
                  const char *prop);
void zcmd_volsize(struct zargv *a, const struct zb_caps *c, const char *ds, int64_t size);
void zcmd_rollback(struct zargv *a, const struct zb_caps *c, const char *snap);
void zcmd_rename(struct zargv *a, const struct zb_caps *c, const char *from,
                 const char *to);
void zcmd_mount(struct zargv *a, const struct zb_caps *c, const char *ds, bool mount);
void zcmd_list_snapshots(struct zargv *a, const struct zb_caps *c, const char *ds);
void zcmd_pool_list(struct zargv *a, const char *pool);
void zcmd_pool_importable(struct zargv *a);

/* --- run.c: running commands, reading and writing properties ---------- */

/* Run a built command; on failure the error says "<what>: <zfs's reason>".
 * res may be NULL when only success matters.  Destroys and renames retry
 * "dataset is busy" for a short while (zfs-fuse, udev). */
int zrun(struct zargv *a, const char *what, struct zl_exec_result *res);
/* zrun, then za_free(a). */
int zrun_free(struct zargv *a, const char *what);

/* `zfs get` output -> {name: {prop: [value, source]}} (new reference). */
json_t *zb_parse_get(const char *out);
const char *zb_obj_value(const json_t *obj, const char *prop); /* "-" -> NULL */
const char *zb_obj_source(const json_t *obj, const char *prop);

/* The metadata properties (see run.c): encode meta as the header
 * zfs-live:meta and chunks of bank 'a' (zfs-live:meta.N) or 'b'
 * (zfs-live:meta.bN) (the strings in *buf, owned by the caller: free with
 * free()); decode (NULL with errno ENOENT when the object has no metadata,
 * EINVAL when it cannot be read); the bank a header names. */
int zb_meta_encode(const json_t *meta, char bank, struct zprop *props, int *nprops,
                   char **buf);
json_t *zb_meta_decode(const json_t *obj, const char *name);
char zb_meta_bank(const json_t *obj);
/* Replace the metadata of the existing object name atomically, whatever
 * its size (fault point set-meta:chunks between the chunks and the
 * header). */
int zb_meta_store(const struct zb_caps *c, const char *name, const json_t *meta);
/* The comma-separated list of meta property names (for zfs get). */
const char *zb_meta_prop_list(void);

/* zfs get on explicit targets.  *objs is always set (parsed output, even
 * when some targets do not exist: then -1 with errno ENOENT). */
int zget(const struct zb_caps *c, bool recursive, const char *props,
         const char *const *targets, json_t **objs, const char *what);

/* --- lzc.c: libzfs_core through dlopen (OpenZFS only) ----------------- */

bool zb_lzc_available(void);
/* Load from dir (NULL: the system's libraries); 0 if usable.  Tests load a
 * stand-in library this way. */
int zb_lzc_load_from(const char *dir);
/* -1 with errno ENOTSUP when a property cannot be given to the kernel
 * (a name libzfs would translate): the caller then uses the CLI. */
int zb_lzc_create(const char *name, bool zvol, const struct zprop *props, int n);
int zb_lzc_clone(const char *name, const char *origin, const struct zprop *props, int n);
int zb_lzc_destroy(const char *name);
int zb_lzc_snapshot(const char *snap, const struct zprop *props, int nprops);
int zb_lzc_destroy_snapshot(const char *snap);

/* --- the SR handle (sr.c) ------------------------------------------------------ */

struct zb_sr {
  char *dataset; /* <path>/<sr-uuid> */
  char *pool;
  enum zb_layout layout;
  int64_t blocksize; /* volblocksize / recordsize of new volumes */
  int copies;        /* the SR's copies (thick reservations) */
  struct zb_caps caps;
};

static inline struct zb_sr *
zb_of(struct zl_store *sr)
{
  return (struct zb_sr *)sr->be_data;
}

/* caps.c: what this host offers (zfs-live doctor) */
json_t *zb_host_report(const char *pool);
/* What bookmarks (or their absence) mean for data_destroy (doctor). */
const char *zb_bookmarks_use(const struct zb_caps *c);

/* --- place.c: where an SR is ---------------------------------------------------- */

int zb_config_path(const json_t *config, const char **path);
void zb_pool_of(const char *path, char *pool, size_t len);
int zb_check_pool(const char *pool);       /* imported? else a clear error */
const char *zb_sr_marker(const json_t *o); /* the zfs-live:sr set here, or NULL */
/* The objects directly in path (zfs get -d 1): *objs always set. */
int zb_place_children(const char *path, json_t **objs);
/* The SR uuid if name is an SR dataset directly in path, else NULL. */
const char *zb_direct_sr(const char *path, const char *name, const json_t *o);
/* 1 (and the SR into out) if path is inside an SR, 0 if not, -1. */
int zb_inside_sr(const struct zb_caps *caps, const char *path, char *out, size_t len);
int zb_sr_locate(const json_t *config, char **sr_key);
int zb_sr_probe(const json_t *config, json_t *results);

/* --- names.c: ZFS names of keys, the snapshot index --------------------------- */

/* The snapshot index (a cache: snapidx/<key> = the dataset component). */
int zb_index_read(struct zl_store *sr, const char *key, char *parent, size_t len);
int zb_index_write(struct zl_store *sr, const char *key, const char *parent);
void zb_index_remove(struct zl_store *sr, const char *key);
/* <sr>/<parent>@<key> for snapshots in the index, <sr>/<key> otherwise;
 * -1 with ENAMETOOLONG when it does not fit in out. */
int zb_name_of(struct zl_store *sr, const char *key, char *out, size_t len,
               bool *is_snap);
/* name relative to the SR dataset, or NULL when not below it. */
const char *zb_rel_name(const struct zb_sr *z, const char *name);
/* The properties one `zfs get` of volumes asks for. */
const char *zb_props_to_get(const struct zb_sr *z);
/* The first 8 characters of this boot's id (names of temporary snapshots). */
void zb_boot8(char *out);
/* Is the temporary snapshot "_zl-cbt-<pid>-<boot8>-<r>" of a process gone
 * or of an earlier boot? */
bool zb_cbt_snapshot_stale(const char *snap);

/* --- list.c: what the SR holds ------------------------------------------------ */

/* meta (with the storage facts) and info for one object: 0, 1 if it is not
 * a volume of ours, -1 on error. */
int zb_describe(struct zl_store *sr, const char *name, const json_t *o, json_t **metap,
                struct zl_vol_info *info);
int zb_vol_list(struct zl_store *sr, zl_vol_cb cb, void *opaque);
int zb_sr_foreign(struct zl_store *sr, zl_foreign_cb cb, void *opaque);
int zb_vol_get(struct zl_store *sr, const char *key, json_t **meta,
               struct zl_vol_info *info);
#define ZB_GET_MANY 4 /* most keys one zb_vol_get_many asks for */
int zb_vol_get_many(struct zl_store *sr, size_t n, const char *const *keys,
                    json_t **metas, struct zl_vol_info *infos);

/* --- vol.c: making, removing and changing volumes ------------------------------ */

int zb_vol_create(struct zl_store *sr, const char *key, int64_t size, bool thick,
                  const json_t *meta, struct zl_vol_info *out);
int zb_vol_copy(struct zl_store *sr, const char *src, const char *dst,
                enum zl_copy_kind kind, bool thick, const json_t *meta,
                const struct zl_vol_info *src_info, struct zl_vol_info *out);
int zb_vol_discard(struct zl_store *sr, const char *key);
int zb_vol_destroy(struct zl_store *sr, const char *key);
int zb_vol_resize(struct zl_store *sr, const char *key, int64_t size, bool thick);
int zb_vol_set_meta(struct zl_store *sr, const char *key, const json_t *meta);
int zb_vol_dependents(struct zl_store *sr, const char *key);
int zb_vol_tune(struct zl_store *sr, const char *key, const char *prop,
                const char *value);

/* --- data.c: the data of volumes ---------------------------------------------- */

int zb_vol_open(struct zl_store *sr, const char *key, int flags);

/* --- dataset.c: one ZFS object ------------------------------------------------- */

/* A snapshot through libzfs_core where present, else the CLI. */
int zb_snapshot_cmd(struct zb_sr *z, const char *snap, const struct zprop *props, int n);
/* Data written through a dataset-layout file reaches ZFS (before a snapshot). */
void zb_flush_file(struct zl_store *sr, const char *comp);
/* Destroy one object (unmounting a filesystem first); gone is success. */
int zb_destroy_object(struct zb_sr *z, const char *name);
/* Is <mnt>/<comp> a mounted dataset (not the SR's directory)? */
bool zb_is_mounted(struct zl_store *sr, const char *comp);
int zb_mount_comp(struct zl_store *sr, const char *comp);

/* --- recover.c: the backend's own leftovers ------------------------------------ */

/* Remove internal objects left in the SR (before the SR dataset goes). */
int zb_sr_clear_internal(struct zl_store *sr);
/* After a reboot (runtime state gone): finish or undo what the ZFS objects
 * say was cut off, remove orphaned internal objects, rebuild the snapshot
 * index.  One zfs process when there is nothing to do. */
int zb_boot_recovery(struct zl_store *sr);

/* --- revert.c ----------------------------------------------------------------- */

int zb_vol_revert(struct zl_store *sr, const char *key, const char *snap, bool thick);

/* --- changes.c: changed blocks from zfs send ----------------------------------- */

int zb_vol_changes(struct zl_store *sr, const char *from, const char *to, zl_range_fn cb,
                   void *opaque);

/* --- copy.c: copies between SRs of this backend (backend.h vol_copy_native) --- */

int zb_vol_copy_native(struct zl_store *sr, const char *dst, struct zl_store *src_sr,
                       const char *src, bool thick, const json_t *meta,
                       const struct zl_progress *p, struct zl_vol_info *out);

/* --- bookmark.c: data-destroyed snapshots: records, bookmarks
 * ------------------------------------ */

/* pool/ds@key -> pool/ds#zl-key (pure). */
void zb_bookmark_name(const char *snap, char *out, size_t len);
/* The commands data_destroy runs for snapshot snap on this ZFS, into
 * cmds[0..n) (the caller frees them): bookmark it, destroy it; none where
 * the pool has no bookmarks (its data stays).  Returns n (pure). */
int zb_data_destroy_plan(const struct zb_caps *c, const char *snap, struct zargv *cmds);
/* Write key's record: meta (its "_storage" dropped), the volume component
 * parent, the size. */
int zb_bm_record(struct zl_store *sr, const char *key, json_t *meta, const char *parent,
                 int64_t size);
/* Is key a snapshot reduced to its CBT metadata (a record, and a bookmark)? */
bool zb_bm_exists(struct zl_store *sr, const char *key);
/* Its bookmark's full name (the send source). */
int zb_bm_source(struct zl_store *sr, const char *key, char *out, size_t len);
int zb_bm_get(struct zl_store *sr, const char *key, json_t **meta,
              struct zl_vol_info *info);
/* cb for each such key not in seen (keys vol_list found in ZFS). */
int zb_bm_list(struct zl_store *sr, const json_t *seen, zl_vol_cb cb, void *opaque);
int zb_bm_set_meta(struct zl_store *sr, const char *key, const json_t *meta);
/* The bookmark and the record go (a gone bookmark is fine). */
int zb_bm_destroy(struct zl_store *sr, const char *key);

/* --- datadestroy.c ------------------------------------------------------------- */

int zb_vol_data_destroy(struct zl_store *sr, const char *key);

/* --- adopt.c ------------------------------------------------------------------ */

/* /dev/zvol/<sr dataset>/<key>, or for a snapshot its read clone's device
 * /dev/zvol/<sr dataset>/_zl-ro-<key> (pure: unit-tested). */
void zb_zvol_device(const char *sr_dataset, const char *key, bool snap, char *out,
                    size_t len);
int zb_vol_device(struct zl_store *sr, const char *key, char *out, size_t len);
int zb_vol_adopt(struct zl_store *sr, const char *key, const char *source,
                 const json_t *meta, struct zl_vol_info *out);
int zb_vol_adopt_recover(struct zl_store *sr, const char *key, const char *source,
                         bool committed);

#endif
