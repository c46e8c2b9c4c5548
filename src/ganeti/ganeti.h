/* ganeti.h: the Ganeti ExtStorage front end.  Private header, by source
 * file.
 *
 * noded runs a provider's scripts with no arguments, cwd = the provider
 * directory, stdin at EOF, and the request in the environment: VOL_NAME,
 * VOL_SIZE / VOL_NEW_SIZE (MiB), VOL_METADATA, VOL_SNAPSHOT_NAME,
 * VOL_OPEN_EXCLUSIVE, VOL_CNAME, VOL_UUID, and EXTP_<PARAM> for every disk
 * parameter (see reference/ganeti-extstorage.md).  Only attach writes to
 * stdout (the block device); everything else goes to stderr, which Ganeti
 * keeps in /var/log/ganeti/extstorage.
 */
#ifndef ZL_GANETI_H
#define ZL_GANETI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum gnt_action {
  GNT_CREATE,
  GNT_ATTACH,
  GNT_DETACH,
  GNT_REMOVE,
  GNT_GROW,
  GNT_SETINFO,
  GNT_VERIFY,
  GNT_SNAPSHOT,
  GNT_OPEN,
  GNT_CLOSE,
  GNT_NACTIONS
};

#define GNT_MAX_TUNE 8

/* One request, as parsed from the environment (strings borrowed from it). */
struct gnt_req {
  enum gnt_action action;
  const char *vol_name;  /* the volume key */
  const char *cname;     /* VOL_CNAME or NULL */
  const char *metadata;  /* setinfo */
  const char *snap_name; /* snapshot */
  int64_t size;          /* VOL_SIZE in bytes, -1 if not given */
  int64_t new_size;      /* VOL_NEW_SIZE in bytes, -1 if not given */
  int exclusive;         /* VOL_OPEN_EXCLUSIVE: 1, 0, -1 not given */
  /* EXTP_* */
  const char *dir;        /* file SR directory */
  const char *pool;       /* ZFS SR place: <pool>[/<dataset>] */
  const char *mountpoint; /* file SR: "yes" or the mount point dir must be on */
  const char *provisioning, *layout, *volblocksize;
  const char *tune[GNT_MAX_TUNE][2]; /* ZFS per-volume tunables: prop, value */
  int ntune;
};

/* env.c */
extern const char *const gnt_action_names[GNT_NACTIONS];
/* The action named name, or -1. */
int gnt_action_of(const char *name);
/* Parse and validate envp for action (shape and values; nothing is
 * touched).  -1 with a clear error (util/error.h) on bad input. */
int gnt_parse(enum gnt_action action, char *const *envp, struct gnt_req *out);
/* "name description" lines of parameters.list (malloc()ed). */
char *gnt_parameters_list(void);
/* The file naming the directories EXTP_DIR may be in or below:
 * $ZFS_LIVE_FILE_STORAGE_PATHS, else Ganeti's /etc/ganeti/file-storage-paths. */
const char *gnt_allowed_paths_file(void);

/* provider.c: is dir a complete provider directory (every script Ganeti
 * requires, each a regular file with the owner-execute bit, and a readable
 * parameters.list)?  0, or -1 naming what is missing. */
int gnt_check_provider_dir(const char *dir);
/* Is argv0 the path of a script in a Ganeti ExtStorage provider directory
 * (its parent is named "extstorage", Ganeti's search path, or it holds a
 * parameters.list)? */
bool gnt_is_provider_script(const char *argv0);

/* extstorage.c: run one action (argv[0] is the script's path). */
int gnt_main(enum gnt_action action, int argc, char **argv);
/* The scripts, as rows of commands.c (IN_GANETI). */
int gnt_create(int argc, char **argv);
int gnt_attach(int argc, char **argv);
int gnt_detach(int argc, char **argv);
int gnt_remove(int argc, char **argv);
int gnt_grow(int argc, char **argv);
int gnt_setinfo(int argc, char **argv);
int gnt_verify(int argc, char **argv);
int gnt_snapshot(int argc, char **argv);
int gnt_open(int argc, char **argv);
int gnt_close(int argc, char **argv);

/* xen.c: the Xen disk spec Ganeti writes for a disk, for a driver: "phy"
 * (block device), "file" (Ganeti's loop driver), "tap" (blktap: tap:aio:),
 * "tap2" (blktap2: tap2:tapdisk:aio:).  0, or -1 on an unknown driver or a
 * bad vdev. */
int gnt_xen_disk_spec(const char *driver, const char *path, const char *vdev,
                      bool readonly, char *out, size_t len);
/* Does driver want a block device (phy) rather than a file? */
bool gnt_xen_driver_is_phy(const char *driver);

#endif
