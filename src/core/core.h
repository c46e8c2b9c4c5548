/* core.h: the meaning of things — SRs, volumes, snapshots, clones, keys,
 * provisioning, locking and recovery — independent of who calls (SMAPIv3,
 * Ganeti, CLI) and of the storage behind (file, zfs).
 *
 * Error convention: functions return -1 (or NULL) with errno set and a
 * thread-local message (util/error.h).  Nothing here prints.
 *
 * Front ends validate the *shape* of their input (types, presence); the core
 * validates the *meaning* (key syntax, sizes, names, read-only rules) so that
 * every front end gets the same answers.
 */
#ifndef ZL_CORE_H
#define ZL_CORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/bitmap.h"
#include "util/fault.h"
#include "util/keys.h"
#include "util/progress.h"
#include "util/rundir.h"

struct zl_sr; /* an open SR: see zl_sr_open */

enum zl_provisioning { ZL_PROV_DEFAULT = -1, ZL_PROV_THIN = 0, ZL_PROV_THICK = 1 };

/* A volume as the user sees it.  All strings owned; free with
 * zl_volume_free. */
struct zl_volume {
  char *key; /* unique in the SR; the VDI location */
  char *uuid;
  char *name;
  char *description;
  bool read_only; /* snapshots are read-only */
  bool sharable;
  enum zl_provisioning provisioning;
  int64_t virtual_size;         /* bytes, from the storage */
  int64_t physical_utilisation; /* bytes allocated, from the storage */
  char *snapshot_of;            /* key this is a snapshot of, or NULL */
  char *clone_of;               /* key this was cloned from, or NULL */
  char *created;                /* RFC 3339 UTC */
  json_t *keys;                 /* the SMAPIv3 "keys" map, exactly as set */
  json_t *storage;              /* facts from the storage (tunables and their
                                 * sources, layout), or NULL */
  bool cbt_enabled;             /* changed block tracking is on */
  bool data_destroyed;          /* a snapshot reduced to its CBT metadata */
  char *health;                 /* NULL, or why the volume cannot be used (its
                                 * metadata cannot be read): listed and
                                 * stat-able, never acted on */
};

void zl_volume_free(struct zl_volume *v); /* frees members, not v */
void zl_volume_list_free(struct zl_volume *v, size_t n);

struct zl_sr_stat {
  char *sr;   /* the SR key */
  char *type; /* "file-live", "zfs-live" */
  char *uuid;
  char *name;
  char *description;
  int64_t total_space;
  int64_t free_space;
  enum zl_provisioning provisioning; /* SR default */
  bool clustered; /* several hosts use it at once: a shared filesystem, or a
                   * zfs-live pool its storage host serves to others */
  bool healthy;
  char *health_msg; /* capability summary or what is wrong */
};
void zl_sr_stat_free(struct zl_sr_stat *s);
/* Do several hosts use the SR at once (SR.stat's clustered)? */
bool zl_sr_clustered(struct zl_sr *sr);

/* --- export and import of images (core/model/image.c, import.c) ---------- */

enum zl_image_format { ZL_IMG_RAW, ZL_IMG_QCOW2, ZL_IMG_VHD };
/* "raw", "qcow2", "vhd" (also "vpc", qemu's name for VHD). */
int zl_image_format_parse(const char *s, enum zl_image_format *out);
const char *zl_image_format_name(enum zl_image_format f);

/* The largest virtual size import accepts unless told a smaller limit. */
#define ZL_IMPORT_MAX_SIZE (INT64_C(64) << 40)

struct zl_export_args {
  enum zl_image_format format;
  const char *path; /* the image file to write (replaced atomically), or NULL:
                     * the image goes to out_fd, a stream (a pipe) */
  int out_fd;
  bool no_checksum; /* no SHA-256 (sha256 ""): hashing reads the holes too,
                     * as zeros, so it costs time in proportion to the size
                     * (about 1 s per GiB here), not to the data */
};
/* Write key's data as an image: raw is sparse in a file (holes, never
 * zeros written) and every byte on a stream; qcow2 and VHD dynamic are
 * made by qemu-img (see image.c for why), to a stream through a temporary
 * file.  sha256: the SHA-256 of the virtual disk data (size bytes, holes as
 * zeros), *size its length.  Takes no lock: export a snapshot for a
 * consistent image of a volume in use.  A failure leaves no file at path. */
int zl_vol_export_image(struct zl_sr *sr, const char *key, const struct zl_export_args *a,
                        const struct zl_progress *p, char sha256[65], int64_t *size);

struct zl_import_args {
  enum zl_image_format format;
  const char *path; /* the image, or NULL: raw from the stream in_fd */
  int in_fd;
  const char *key;    /* NULL: a new uuid */
  const char *name;   /* "" if NULL */
  int64_t size;       /* raw stream: its exact length (required); files: the
                       * largest virtual size accepted (0: ZL_IMPORT_MAX_SIZE) */
  const char *sha256; /* the expected SHA-256 of the data (hex), or NULL */
  bool no_checksum;   /* none computed (sha256 ""); not with sha256 */
};
/* A new volume holding the image's data, visible only once it is complete
 * and verified: it is made hidden under an intent record ("import"), so a
 * failure or a crash at any point leaves no volume (recovery removes it).
 * qcow2/VHD are read by qemu-img with the format forced, never probed;
 * images with a backing or data file, truncated or failing qemu-img's
 * check are refused.  sha256 receives the digest of the data stored. */
int zl_vol_import_image(struct zl_sr *sr, const struct zl_import_args *a,
                        const struct zl_progress *p, struct zl_volume *out,
                        char sha256[65]);

/* --- SR types and backends (backend/registry.c) -------------------------- */

/* The SR types this binary knows, NULL-terminated ("file-live", ...). */
const char *const *zl_sr_types(void);
bool zl_sr_type_known(const char *type);
/* Human-readable title, description, device-config keys of a type. */
const char *zl_sr_type_title(const char *type);
const char *zl_sr_type_description(const char *type);
json_t *zl_sr_type_config_help(const char *type); /* new reference */
/* Feature strings this SR type supports beyond the per-method ones. */
json_t *zl_sr_type_features(const char *type); /* new reference */
/* Guess the SR type from an SR key ("/dir" -> file-live). NULL if none. */
const char *zl_sr_type_of_key(const char *sr_key);

/* What this host offers each SR type: {type: report} (for doctor).  arg
 * names a place to look (a ZFS pool), or NULL. */
json_t *zl_host_report(const char *arg);

/* --- SR lifecycle (core/sr.c) --------------------------------------------- */

/* Create an SR of type with this uuid from device-config.  On success
 * *config_out (new reference) is the configuration to keep (canonical
 * paths, sr_uuid added).  Refuses nested SRs and an SR already there. */
int zl_sr_create(const char *type, const char *uuid, const json_t *config,
                 const char *name, const char *description, json_t **config_out);

/* Find the SR that config describes; returns its key (malloc()ed). */
char *zl_sr_attach(const char *type, const json_t *config);

/* Idempotent: an unknown SR succeeds. */
int zl_sr_detach(const char *type, const char *sr_key);

/* Probe: an array of {sr_key?, configuration, complete, uuid?, reason} found
 * at or below config's location, plus whether a new SR can be created. */
json_t *zl_sr_probe(const char *type, const json_t *config);

/* Open an existing SR.  type may be NULL (guessed from the key).  Runs crash
 * recovery for the SR first if an earlier call died part-way. */
struct zl_sr *zl_sr_open(const char *type, const char *sr_key);
void zl_sr_close(struct zl_sr *sr);

const char *zl_sr_key(const struct zl_sr *sr);
const char *zl_sr_type(const struct zl_sr *sr);

/* Destroy: every volume must already be destroyed by the user (hidden ones
 * awaiting collection are removed here).  The handle stays valid only for
 * zl_sr_close. */
int zl_sr_destroy(struct zl_sr *sr);
int zl_sr_stat(struct zl_sr *sr, struct zl_sr_stat *out);
int zl_sr_set_name(struct zl_sr *sr, const char *name);
int zl_sr_set_description(struct zl_sr *sr, const char *description);

/* Every volume the user can see, sorted by key. */
int zl_sr_ls(struct zl_sr *sr, struct zl_volume **vols, size_t *n);

/* --- volumes (core/volume.c, core/snapshot.c) ----------------------------- */

struct zl_create_args {
  const char *key; /* NULL: a new uuid */
  const char *name;
  const char *description;
  int64_t size; /* minimum; rounded up to the backend's granularity */
  bool sharable;
  enum zl_provisioning provisioning; /* ZL_PROV_DEFAULT: the SR's */
};

int zl_vol_create(struct zl_sr *sr, const struct zl_create_args *a,
                  struct zl_volume *out);
/* new_key NULL: a new uuid. */
int zl_vol_snapshot(struct zl_sr *sr, const char *key, const char *new_key,
                    struct zl_volume *out);
int zl_vol_clone(struct zl_sr *sr, const char *key, const char *new_key,
                 struct zl_volume *out);
/* Idempotent: a missing key succeeds. */
int zl_vol_destroy(struct zl_sr *sr, const char *key);
int zl_vol_stat(struct zl_sr *sr, const char *key, struct zl_volume *out);
/* Grow only; new_size is rounded up. */
int zl_vol_resize(struct zl_sr *sr, const char *key, int64_t new_size);
/* key takes snapshot's content (snapshot must be a snapshot of key). */
int zl_vol_revert(struct zl_sr *sr, const char *snapshot, const char *key);
/* The same, reporting the progress of a copy where the storage copies (a
 * file SR without reflinks); nothing where it does not. */
int zl_vol_revert_progress(struct zl_sr *sr, const char *snapshot, const char *key,
                           const struct zl_progress *p);
int zl_vol_set_name(struct zl_sr *sr, const char *key, const char *name);
int zl_vol_set_description(struct zl_sr *sr, const char *key, const char *description);
/* The SMAPIv3 keys map. */
int zl_vol_set(struct zl_sr *sr, const char *key, const char *k, const char *v);
int zl_vol_unset(struct zl_sr *sr, const char *key, const char *k);

/* Open the volume's data for I/O (O_RDONLY or O_RDWR); writes to read-only
 * volumes are refused.  Returns an fd (O_CLOEXEC) or -1. */
int zl_vol_open(struct zl_sr *sr, const char *key, int flags);

/* --- copies and receiving (core/model/copy.c) ------------------------------ */

/* A volume being filled that nobody sees until zl_recv_commit (import,
 * replication): made like zl_vol_create (a->key NULL: a new uuid), with
 * keys (may be NULL) as its keys map.  If the process dies before the
 * commit, the next call on the SR removes it.  Fields are private. */
struct zl_recv;
struct zl_recv *zl_recv_begin(struct zl_sr *sr, const struct zl_create_args *a,
                              const json_t *keys);
const char *zl_recv_key(const struct zl_recv *r);
int zl_recv_open(struct zl_recv *r); /* its data, O_RDWR: an fd or -1 */
/* Make it visible (its storage tunables applied); out may be NULL.  Both
 * end r (freed), whatever happens. */
int zl_recv_commit(struct zl_recv *r, struct zl_volume *out);
void zl_recv_abort(struct zl_recv *r); /* remove what was made */

/* --- replication (core/model/replica.c; the transport: nbd/replicate.c) -- */

/* The sending side.  zl_repl_prepare takes a point of key (a snapshot,
 * marked as this replication's when dest is not NULL; a snapshot key is
 * read as it is when dest is NULL: a one-off copy) and describes it:
 * source {"uuid", "point", "name", "description", "size", "keys"}, points
 * (uuid -> key) the earlier points for dest the destination may hold.
 * zl_repl_changes: the blocks that differ between one of those and the
 * new point.  zl_repl_finish(ok): the other points for dest go (ok), or
 * the new one (not ok); s is freed either way. */
struct zl_repl_source {
  char *of;           /* the volume */
  char *point;        /* key of what is sent */
  bool own_point;     /* a snapshot taken for this */
  bool keep_point;    /* a replication's: kept for the next one */
  bool cbt_turned_on; /* this call turned CBT on (file SRs) */
  int64_t size;
  json_t *source;
  json_t *points;
};
int zl_repl_prepare(struct zl_sr *sr, const char *key, const char *dest,
                    struct zl_repl_source *out);
int zl_repl_changes(struct zl_sr *sr, const struct zl_repl_source *s,
                    const char *from_uuid, struct zl_bitmap *out);
void zl_repl_finish(struct zl_sr *sr, struct zl_repl_source *s, bool ok);
void zl_repl_source_free(struct zl_repl_source *s);

/* The receiving side.  A volume of another host (host: its identity)
 * arrives, described by source (above); points (array of uuids, may be
 * NULL) the points the sender can send changes from.  replica: keep it as
 * a replica of the source that later replications update; false: a plain
 * copy (a new volume).  *plan (new reference) answers {"mode":
 * "full"|"incremental", "from"?: the point changes are sent from,
 * "replica": the key written}; the sender's data then goes into
 * zl_replica_fd: every block of the source (full; the volume starts
 * zeroed) or the changed ones (incremental).  Nothing of it is seen until
 * zl_replica_commit; zl_replica_abort, or the death of the process, leaves
 * the destination as it was.  Both end r. */
struct zl_replica;
struct zl_replica *zl_replica_begin(struct zl_sr *sr, const char *host,
                                    const json_t *source, const json_t *points,
                                    bool replica, json_t **plan);
int zl_replica_fd(struct zl_replica *r);
int zl_replica_commit(struct zl_replica *r, struct zl_volume *out);
void zl_replica_abort(struct zl_replica *r);

struct zl_copy_args {
  const char *key;         /* the copy's key; NULL: a new uuid */
  const char *name;        /* NULL: the source's */
  const char *description; /* NULL: the source's */
};
/* Copy key of src into dst (src itself allowed), the cheapest correct way
 * (see copy.c); p may be NULL. */
int zl_vol_copy(struct zl_sr *src, const char *key, struct zl_sr *dst,
                const struct zl_copy_args *a, const struct zl_progress *p,
                struct zl_volume *out);

/* --- the export registry (core/exports.c) --------------------------------- */

struct zl_export_info {
  char *name;
  char *sr_type;
  char *sr_key;
  char *vol_key;
  bool readonly;
};
bool zl_export_name_valid(const char *name);
char *zl_export_name(struct zl_sr *sr, const char *key); /* "<sr uuid>/<key>" */
int zl_export_register(const struct zl_export_info *e);
int zl_export_unregister(const char *name);
int zl_export_lookup(const char *name, struct zl_export_info *out); /* ENOENT */
void zl_export_info_free(struct zl_export_info *e);
char **zl_export_names(void); /* NULL-terminated, malloc()ed */

/* Attach key as an NBD export of this host's server (read-only for
 * snapshots or when asked); returns the export name (malloc()ed). */
char *zl_vol_export(struct zl_sr *sr, const char *key, bool readonly);
/* Idempotent: a volume not exported succeeds. */
int zl_vol_unexport(struct zl_sr *sr, const char *key);

/* --- data path on this host (core/datapath.c) ----------------------------- */

const char *zl_host_uuid(void);
const char *zl_nbd_socket(void); /* <run>/nbd.sock */

struct zl_attach_result {
  char *export_name; /* NBD export (malloc()ed) */
  char nbd_socket[256];
  char blockdev[128]; /* "" when the host cannot give one */
  bool direct_io;
  bool readonly;
};
int zl_dp_attach(struct zl_sr *sr, const char *key, const char *domain,
                 struct zl_attach_result *out);
void zl_attach_result_free(struct zl_attach_result *r);
int zl_dp_detach(struct zl_sr *sr, const char *key, const char *domain);
/* ZL_ERR_ACTIVE_ELSEWHERE (subject: the host) when another host holds it. */
int zl_dp_activate(struct zl_sr *sr, const char *key, const char *domain, bool readonly);
int zl_dp_deactivate(struct zl_sr *sr, const char *key, const char *domain);
/* Datapath calls of this process act for host (a storage host running a
 * call forwarded by another host of a shared SR, smapi/remote.c): they
 * activate, deactivate and attach for it, not for this host.  NULL: this
 * host. */
void zl_dp_set_peer(const char *host);
/* Activate over another host's claim, if there is one: for a host that
 * died while active (an operator's explicit act).  Waits ZL_LEASE_MS
 * first, the longest a live but cut-off server of the old host writes
 * after the takeover.  from: the host it was taken from ("" if no other
 * host held it: then nothing is done).  1: a volume activated through a
 * toolstack (taken over if another host held it); 0: never activated (a
 * Ganeti volume: its opens are what to take over); -1 on error. */
int zl_dp_takeover(struct zl_sr *sr, const char *key, const char *domain, char *from,
                   size_t len);
#define ZL_LEASE_MS 3000
/* The NBD server, once a second (ZL_LEASE_MS covers it): if this host's
 * fence lets it write a volume whose activation record now names another
 * host or generation (a takeover), fence this host.  0 or -1. */
int zl_dp_recheck(struct zl_sr *sr, const char *key);
int zl_dp_open(struct zl_sr *sr, const char *key, bool persistent);
int zl_dp_close(struct zl_sr *sr, const char *key);

bool zl_dp_in_use(struct zl_sr *sr, const char *key); /* attached on this host */
bool zl_dp_blockdev_attached(struct zl_sr *sr, const char *key);
/* --- changed block tracking (core/cbt.c) ------------------------------------ */
#define ZL_CBT_GRANULARITY 65536
#define ZL_CBT_MAX_SIZE    (INT64_C(64) << 40)
int zl_vol_enable_cbt(struct zl_sr *sr, const char *key);
int zl_vol_disable_cbt(struct zl_sr *sr, const char *key);
/* Drop a CBT-enabled snapshot's data, keeping what CBT needs of it. */
int zl_vol_data_destroy(struct zl_sr *sr, const char *key);
/* Blocks that differ between from and to (snapshots of one volume, or
 * the volume itself): out is a map (util/bitmap.h) of ZL_CBT_GRANULARITY
 * blocks covering to's size, the caller's to zl_bitmap_free.  Never misses
 * a change. */
int zl_vol_changed_blocks(struct zl_sr *sr, const char *from, const char *to,
                          struct zl_bitmap *out);
/* Writers of a volume (the NBD server, `vol write`) go through its write
 * path, which tracks what they change: core/io/io.h. */
/* --- block devices without NBD (core/blockdev.c) ------------------------- */

/* A volume as a block device on this host, for Ganeti's attach: the zvol
 * device itself, or a loop device (direct I/O where the filesystem
 * allows) over the volume's file, read-only for snapshots.  Loop devices
 * made here are recorded in <run>/blockdev/ and reused while they serve
 * the same file, so attach is idempotent and cheap. */
struct zl_blockdev {
  char path[256];
  bool loop;      /* a loop device this host set up */
  bool direct_io; /* loop: direct I/O on */
  bool readonly;
};
int zl_vol_blockdev(struct zl_sr *sr, const char *key, struct zl_blockdev *out);
/* Release the loop device recorded for key on this host (it may be gone
 * already, and so may the volume).  Idempotent. */
int zl_vol_blockdev_release(struct zl_sr *sr, const char *key);
/* Does this host have a loop device for key set up here? */
bool zl_vol_blockdev_active(struct zl_sr *sr, const char *key);
/* After a resize: make this host's loop device for key take the new size
 * (nothing to do for zvols or when none is set up). */
int zl_vol_blockdev_refresh(struct zl_sr *sr, const char *key);
/* A stand-in block device for key, for when its volume cannot be reached
 * from this host and nothing is known about it (Ganeti's attach: a failed
 * attach makes Ganeti drop the disk, see ganeti/extstorage.c): a read-only
 * loop device of size 0, recorded on this host with why.  Idempotent. */
int zl_blockdev_standin(const char *key, const char *why, char *dev, size_t len);
/* The reason recorded with key's stand-in on this host (malloc()ed), or
 * NULL when it has none. */
char *zl_blockdev_standin_reason(const char *key);
/* Release key's stand-in on this host, if any.  Idempotent. */
int zl_blockdev_standin_release(const char *key);
/* The path of key's data on this host: its file (mounting a dataset if
 * needed) or its device.  ENOTSUP when its data is neither. */
int zl_vol_data_path(struct zl_sr *sr, const char *key, char *out, size_t len);

/* --- places (core/host/place.c) -------------------------------------------- */

/* The key of the SR at a place (its type and the device-config that says
 * where), or NULL (kind NO_SR when there is none). */
char *zl_place_find(const char *type, const json_t *config);
/* Could an SR be made at the place (what SR.probe says)?  1 or 0, with the
 * reason in *why (malloc()ed, NULL if none given); -1 on error. */
int zl_place_can_make(const char *type, const json_t *config, char **why);
/* The same, making the SR (name, description, create_config: SR.create's
 * device-config) when there is none and SR.probe says one can be made;
 * one first use at a time on this host. */
char *zl_place_make(const char *type, const json_t *config, const json_t *create_config,
                    const char *name, const char *description);

/* --- per-node opens (core/claims.c) ---------------------------------------- */

/* This node's name for opens: $ZFS_LIVE_NODE, else the host name. */
const char *zl_node_name(void);
/* Open key on node, exclusively or shared, recorded in the volume's
 * metadata (so every node sharing the storage sees it).  Exclusive: no
 * other node may hold it at all; shared: no other node may hold it
 * exclusively.  Again from the same node: the mode changes.  ZL_ERR_BUSY
 * (subject: the other node) on conflict. */
int zl_vol_claim(struct zl_sr *sr, const char *key, const char *node, bool exclusive);
/* Drop node's open; a missing volume or no open is fine. */
int zl_vol_unclaim(struct zl_sr *sr, const char *key, const char *node);
/* Make node the only, exclusive holder, dropping every other node's open
 * (the operator, after the other node died).  *dropped: how many. */
int zl_vol_takeover(struct zl_sr *sr, const char *key, const char *node, int *dropped);
/* 1 and the first other node's name in other if a node other than node
 * holds key open, 0 if none, -1 on error. */
int zl_vol_claimed_elsewhere(struct zl_sr *sr, const char *key, const char *node,
                             char *other, size_t len);

/* --- adoption (core/adopt.c) ------------------------------------------------- */

/* Take an existing raw file (file SR: on the SR's filesystem, moved in by
 * a hard link and no copy) or a zvol/dataset (zfs SR: renamed into the SR)
 * into the SR as a new volume key. */
int zl_vol_adopt(struct zl_sr *sr, const char *source, const char *key, const char *name,
                 const char *description, struct zl_volume *out);

/* --- validation (core/names.c) --------------------------------------------- */

int zl_check_key(const char *key); /* -1 with a clear error */
int zl_check_name(const char *name, const char *what);
int zl_check_description(const char *d, const char *what);
int zl_check_keys_entry(const char *k, const char *v); /* v NULL: for unset */
/* The length of the UTF-8 sequence at s (1-4), or 0 if it is not one:
 * no overlong forms, no surrogates, nothing past U+10FFFF (what JSON, and
 * so the metadata and both protocols, can carry). */
size_t zl_utf8_len(const unsigned char *s);
int zl_round_size(int64_t size, int64_t granularity, int64_t *out);
/* Does the SR at path key say it is of this type?  (True if there is no
 * SR there at all: the caller will find out.) */
bool zl_sr_key_type_is(const char *key, const char *type);

/* --- the XAPI platform (core/host/platform.c) ------------------------------- */

/* A xen-api release, year.release.patch (1.x before 2022); 0.0.0: unknown. */
struct zl_version {
  unsigned major, minor, patch;
};
/* -1, 0, 1 */
int zl_version_cmp(struct zl_version a, struct zl_version b);
/* "25.3.0", "v25.3", "xapi-core-25.33.1-1.xs8": true and *out; else false
 * and 0.0.0. */
bool zl_version_parse(const char *s, struct zl_version *out);

/* What this host is, as far as XAPI goes.  Strings are "" when absent. */
struct zl_platform {
  bool xapi_host;             /* an inventory, or ZFS_LIVE_XAPI_VERSION */
  char inventory[256];        /* the path read */
  char brand[64];             /* PRODUCT_BRAND: XCP-ng, XenServer, ... */
  char product_version[32];   /* PRODUCT_VERSION: 8.2.1, 8.3.0, 8.4.0 */
  char platform_name[32];     /* PLATFORM_NAME: XCP */
  char platform_version[32];  /* PLATFORM_VERSION: 3.2.1, 3.4.0 */
  char build[64];             /* BUILD_NUMBER */
  struct zl_version platform; /* PLATFORM_VERSION parsed */
  struct zl_version xapi;     /* the storage daemon's xen-api release */
  char xapi_source[64];       /* where xapi came from, or "unknown" */
};
/* $ZFS_LIVE_INVENTORY, else /etc/xensource-inventory. */
const char *zl_platform_inventory_path(void);
/* Read the inventory and $ZFS_LIVE_XAPI_VERSION.  Never fails: a missing or
 * unreadable inventory is "not a XAPI host". */
void zl_platform_detect(struct zl_platform *out);
/* Fill out's inventory fields from an inventory's text (KEY='value' lines;
 * quotes, comments, blanks and unknown keys tolerated; a missing key stays
 * ""). */
void zl_platform_parse(const char *text, struct zl_platform *out);
/* May Plugin.Query declare feature ("VDI_REVERT", "X/2") to this daemon?
 * Not a XAPI host: always; an unknown daemon: only ungated features. */
bool zl_platform_feature_ok(const struct zl_platform *p, const char *feature);
/* Shims for daemons without CA-412420's fix (snapshots get no vdi-type:
 * copy the parent's) and without CA-431606's (read-only snapshots break
 * cross-pool migration: report them read_write). */
bool zl_platform_shim_vdi_type(const struct zl_platform *p);
bool zl_platform_shim_read_write(const struct zl_platform *p);
/* Can zfs-live serve this platform's daemon?  false with the reason in
 * why. */
bool zl_platform_supported(const struct zl_platform *p, char *why, size_t len);
/* For doctor and diagnostics: a JSON report (new reference) and a one-line
 * summary (malloc()ed); NULL when out of memory. */
json_t *zl_platform_json(const struct zl_platform *p);
char *zl_platform_summary(const struct zl_platform *p);

/* --- records as JSON (record.c): the shapes of SMAPIv3's v5 records ---------- */

/* zfs-live://<sr type>/<sr key>|<volume key>; NULL when out of memory. */
char *zl_volume_uri(const char *sr_type, const char *sr_key, const char *key);
/* A volume of the SR of that type and key; an SR's stat.  New references,
 * NULL when out of memory. */
json_t *zl_volume_json(const struct zl_volume *v, const char *sr_type,
                       const char *sr_key);
/* The same, with snapshots reported read_write if asked (the shim for
 * daemons without CA-431606's fix: zl_platform_shim_read_write). */
json_t *zl_volume_json_xapi(const struct zl_volume *v, const char *sr_type,
                            const char *sr_key, bool snapshots_read_write);
json_t *zl_sr_stat_json(const struct zl_sr_stat *s);

#endif
