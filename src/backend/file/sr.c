/* sr.c: SRs of the file backend, and its ops table. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "backend/file/file.h"
#include "util/beneath.h"
#include "util/cleanup.h"
#include "util/compat.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/paths.h"

#include "util/banned.h" /* last: after every declaration */

static bool collect_gone(int dfd);

static int
file_sr_prepare(const char *uuid, json_t *config, char **sr_key)
{
  const char *path;
  char canon[PATH_MAX], why[PATH_MAX + 128];
  bool exists, made = false;
  CLEANUP_CLOSE int dfd = -1;
  (void)uuid;

  if (file_config_path(config, &path) == -1 || file_canonical(path, canon, &exists) == -1)
    return -1;
  if (file_why_not(canon, exists, why, sizeof why)) {
    zl_error_kind(strstr(why, "already an SR") ? ZL_ERR_EXISTS : ZL_ERR_INVALID,
                  strstr(why, "already an SR") ? EEXIST : EINVAL,
                  "cannot create an SR: %s", why);
    return -1;
  }
  if (!exists) {
    if (mkdir(canon, 0700) == -1 && errno != EEXIST) {
      zl_error_sys(errno, "cannot create %s", canon);
      return -1;
    }
    made = true;
  }
  dfd = open(canon, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (dfd == -1) {
    zl_error_sys(errno, "%s", canon);
    return -1;
  }
  /* an SR destroyed part-way here: its leftovers go, and if it had made
   * the directory, the new SR inherits that (its destroy removes it) */
  if (collect_gone(dfd))
    made = true;
  CLEANUP_CLOSE int pfd = zl_dir_beneath(dfd, ZL_PRIV_DIR, true);
  if (pfd == -1) {
    zl_error_prefix("cannot create %s/" ZL_PRIV_DIR ": ", canon);
    return -1;
  }
  if (made && zl_write_file_atomic(pfd, FILE_MADE_DIR, "", 0, false) == -1) {
    zl_error_prefix("cannot mark %s as made by us: ", canon);
    return -1;
  }
  json_object_set_new(config, "path", json_string(canon));
  if (!(*sr_key = strdup(canon))) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  return 0;
}

static int
file_sr_locate(const json_t *config, char **sr_key)
{
  const char *path;
  char canon[PATH_MAX];

  if (file_config_path(config, &path) == -1)
    return -1;
  if (!realpath(path, canon)) {
    zl_error_kind_sys(ZL_ERR_NO_SR, errno, "no SR at %s", path);
    return -1;
  }
  if (!(*sr_key = strdup(canon))) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  return 0;
}

static int
file_sr_open(struct zl_store *sr)
{
  struct file_sr *f = calloc(1, sizeof *f);

  if (!f) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  f->reflink = -1;
  sr->be_data = f;
  sr->dirfd = open(sr->key, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (sr->dirfd == -1) {
    zl_error_sys(errno, "SR %s", sr->key);
    return -1;
  }
  sr->privfd =
      openat(sr->dirfd, ZL_PRIV_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (sr->privfd == -1) {
    zl_error_sys(errno, "SR %s", sr->key);
    return -1;
  }
  return 0;
}

static void
file_sr_close(struct zl_store *sr)
{
  free(sr->be_data);
  sr->be_data = NULL;
}

#define GONE_PREFIX ZL_PRIV_DIR ".gone."

/* ".zfs-live.gone.*": the private area of an SR whose destruction was cut
 * off after it was renamed away.  Nothing reads it; the next SR.create or
 * SR.destroy at the place removes it. */
static bool
is_gone_area(const char *name)
{
  return strncmp(name, GONE_PREFIX, strlen(GONE_PREFIX)) == 0;
}

static bool
collect_gone(int dfd)
{
  CLEANUP_DIR DIR *d = NULL;
  struct dirent *de;
  int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  bool made = false;

  if (fd == -1 || !(d = fdopendir(fd))) {
    if (fd >= 0)
      close(fd);
    return false;
  }
  while ((de = readdir(d))) {
    if (!is_gone_area(de->d_name))
      continue;
    CLEANUP_CLOSE int g = zl_dir_beneath(dfd, de->d_name, false);
    if (g >= 0 && faccessat(g, FILE_MADE_DIR, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
      made = true;
    if (zl_remove_tree(dfd, de->d_name) == 0)
      zl_info("removed %s, left by a destroy that was cut off", de->d_name);
  }
  zl_error_clear();
  return made;
}

/* The SR stops existing in one step: its private area (sr.json, locks,
 * journal) is renamed away; then it is removed, and the directory too if
 * SR.create made it. */
static int
file_sr_remove(struct zl_store *sr)
{
  bool made = faccessat(sr->privfd, FILE_MADE_DIR, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
  char gone[NAME_MAX + 1];
  unsigned r = 0;

  if (zl_random_bytes(&r, sizeof r, true) == -1)
    r = (unsigned)getpid();
  snprintf(gone, sizeof gone, GONE_PREFIX "%08x", r);
  if (renameat(sr->dirfd, ZL_PRIV_DIR, sr->dirfd, gone) == -1) {
    zl_error_sys(errno, "SR %s: cannot remove " ZL_PRIV_DIR "", sr->key);
    return -1;
  }
  zl_fault("sr-destroy", "unmarked");
  if (zl_remove_tree(sr->dirfd, gone) == -1)
    zl_warn("SR %s: %s", sr->key, zl_error_msg());
  collect_gone(sr->dirfd);
  zl_error_clear();
  if (made && rmdir(sr->key) == -1)
    zl_info("SR %s: directory left in place: %s", sr->key, strerror(errno));
  return 0;
}

/* A temporary of ours: ".<name>.tmp.<pid>.<8 hex>" (zl_tmp_name) or
 * ".<key>.revert.tmp". */
static bool
is_temporary(const char *n)
{
  size_t len = strlen(n);
  const char *t = strstr(n, ".tmp.");

  if (n[0] != '.')
    return false;
  if (len > 11 && strcmp(n + len - 11, ".revert.tmp") == 0)
    return true;
  if (!t)
    return false;
  const char *dot = strrchr(n, '.');
  if (!dot || strlen(dot + 1) != 8 || strspn(dot + 1, "0123456789abcdef") != 8)
    return false;
  return true;
}

static bool
suffix_key(const char *n, const char *suffix)
{
  size_t len = strlen(n), sl = strlen(suffix);
  char key[NAME_MAX + 1];

  if (len <= sl || strcmp(n + len - sl, suffix) != 0)
    return false;
  snprintf(key, sizeof key, "%.*s", (int)(len - sl), n);
  return zl_key_valid(key);
}

/* Images without metadata (data of a volume whose sidecar was lost, or a
 * file someone put there under a volume's name) and volume-named files
 * that are not regular files. */
static int
file_sr_foreign(struct zl_store *sr, zl_foreign_cb cb, void *opaque)
{
  CLEANUP_DIR DIR *d = NULL;
  struct dirent *de;
  int fd = openat(sr->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  struct stat st;

  if (fd == -1 || !(d = fdopendir(fd))) {
    if (fd >= 0)
      close(fd);
    zl_error_sys(errno, "SR %s: cannot list", sr->key);
    return -1;
  }
  while ((de = readdir(d))) {
    const char *n = de->d_name;
    if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, ZL_PRIV_DIR))
      continue;
    if (is_gone_area(n)) {
      if (zl_remove_tree(sr->dirfd, n) == -1)
        return -1;
      continue;
    }
    if (is_temporary(n)) { /* a dead call's: no call is half-way now */
      if (unlinkat(sr->dirfd, n, 0) == -1 && errno != ENOENT) {
        zl_error_sys(errno, "SR %s: remove %s", sr->key, n);
        return -1;
      }
      zl_info("SR %s: removed %s, left by a call that died", sr->key, n);
      continue;
    }
    /* Only what looks like volume data is the SR's to account for: other
     * files in the directory were never the SR's, and SR.destroy leaves
     * them where they are. */
    size_t len = strlen(n), il = strlen(FILE_IMG_SUFFIX), ml = strlen(FILE_META_SUFFIX);
    if (!(len > il && !strcmp(n + len - il, FILE_IMG_SUFFIX)) &&
        !(len > ml && !strcmp(n + len - ml, FILE_META_SUFFIX)))
      continue;
    bool regular =
        fstatat(sr->dirfd, n, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
    if (regular && suffix_key(n, FILE_META_SUFFIX))
      continue; /* a volume, readable or not: vol_list reports it */
    if (regular && suffix_key(n, FILE_IMG_SUFFIX)) {
      char meta[NAME_MAX + 1];
      snprintf(meta, sizeof meta, "%.*s" FILE_META_SUFFIX,
               (int)(strlen(n) - strlen(FILE_IMG_SUFFIX)), n);
      if (faccessat(sr->dirfd, meta, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
        continue;
    }
    if (cb(opaque, n) == -1)
      return -1;
  }
  return 0;
}

static int
file_sr_space(struct zl_store *sr, int64_t *total, int64_t *free_)
{
  struct statvfs v;

  if (fstatvfs(sr->dirfd, &v) == -1) {
    zl_error_sys(errno, "SR %s: statvfs", sr->key);
    return -1;
  }
  *total = (int64_t)v.f_blocks * (int64_t)v.f_frsize;
  *free_ = (int64_t)v.f_bavail * (int64_t)v.f_frsize;
  return 0;
}

/* Does the filesystem under the SR share extents (FICLONE)? */
static bool
probe_reflink(struct zl_store *sr)
{
  struct file_sr *f = sr->be_data;
  char a[NAME_MAX + 1], b[NAME_MAX + 1];

  if (f->reflink >= 0)
    return f->reflink;
  zl_tmp_name(a, sizeof a, "probe-a");
  zl_tmp_name(b, sizeof b, "probe-b");
  int fa = openat(sr->privfd, a, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  int fb = openat(sr->privfd, b, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  f->reflink =
      fa >= 0 && fb >= 0 && zl_pwrite_all(fa, "x", 1, 0) == 0 && zl_reflink(fa, fb) == 0;
  if (fa >= 0)
    close(fa), unlinkat(sr->privfd, a, 0);
  if (fb >= 0)
    close(fb), unlinkat(sr->privfd, b, 0);
  zl_error_clear();
  return f->reflink;
}

static unsigned
file_caps(struct zl_store *sr)
{
  return ZL_CAP_THICK | ZL_CAP_SPARSE | (probe_reflink(sr) ? ZL_CAP_REFLINK : 0);
}

static const char *
fs_name(long type)
{
  switch ((unsigned long)type) {
  case BTRFS_SUPER_MAGIC:
    return "btrfs";
  case XFS_SUPER_MAGIC:
    return "xfs";
  case EXT4_SUPER_MAGIC:
    return "ext4";
  case TMPFS_MAGIC:
    return "tmpfs";
  case NFS_SUPER_MAGIC:
    return "nfs";
  case 0x65735546:
    return "fuse";
  case 0x2fc12fc1:
    return "zfs";
  case 0x01021997:
    return "v9fs";
  case OVERLAYFS_SUPER_MAGIC:
    return "overlay";
  default:
    return "other";
  }
}

/* On a network or cluster filesystem, as this host mounts the SR's
 * directory.  Unknown (no mount found): local. */
static bool
file_sr_clustered(struct zl_store *sr)
{
  char fstype[64];
  bool shared =
      zl_fd_fstype(sr->dirfd, "/proc/self/mountinfo", fstype, sizeof fstype) == 0 &&
      zl_fstype_shared(fstype);

  zl_error_clear();
  return shared;
}

static char *
file_sr_summary(struct zl_store *sr)
{
  struct statfs s;
  char *out = NULL;
  const char *fs = fstatfs(sr->dirfd, &s) == 0 ? fs_name(s.f_type) : "unknown";

  if (asprintf(&out, "filesystem=%s reflink=%s", fs, probe_reflink(sr) ? "yes" : "no") <
      0)
    return NULL;
  return out;
}

static json_t *
file_config_help(void)
{
  return json_pack("{s:s, s:s}", "path",
                   "absolute path of the directory that holds the volumes (created if "
                   "missing; any local or shared filesystem)",
                   "provisioning",
                   "thin (sparse files, the default) or thick (space reserved with "
                   "fallocate)");
}

static json_t *
file_features(void)
{
  return json_pack("[s, s]", "THIN_PROVISIONING", "LARGE_VDI");
}

const struct zl_backend zl_backend_file = {
    .name = "file",
    .sr_type = "file-live",
    .title = "zfs-live file SR",
    .description = "VM disks as raw sparse files in a directory on any filesystem; "
                   "reflink snapshots and clones where the filesystem can (btrfs, XFS), "
                   "hole-preserving copies elsewhere",
    .size_granularity = 1 << 20,
    .config_help = file_config_help,
    .features = file_features,
    .caps = file_caps,
    .sr_key_valid = zl_path_key_valid,
    .sr_prepare = file_sr_prepare,
    .sr_locate = file_sr_locate,
    .sr_open = file_sr_open,
    .sr_close = file_sr_close,
    .sr_remove = file_sr_remove,
    .sr_foreign = file_sr_foreign,
    .sr_space = file_sr_space,
    .sr_probe = file_sr_probe,
    .sr_clustered = file_sr_clustered,
    .sr_summary = file_sr_summary,
    .vol_list = file_vol_list,
    .vol_get = file_vol_get,
    .vol_create = file_vol_create,
    .vol_copy = file_vol_copy,
    .vol_discard = file_vol_discard,
    .vol_destroy = file_vol_destroy,
    .vol_resize = file_vol_resize,
    .vol_revert = file_vol_revert,
    .vol_set_meta = file_vol_set_meta,
    .vol_open = file_vol_open,
    .vol_changes = file_vol_changes,
    .vol_data_destroy = file_vol_data_destroy,
    .vol_dependents = NULL, /* copies and reflinks are independent files */
    .vol_adopt = file_vol_adopt,
    .vol_adopt_recover = file_vol_adopt_recover,
};
