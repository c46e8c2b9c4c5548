/* adopt.c: adopt an existing raw file into a file SR (backend.h
 * vol_adopt) without copying: a hard link as <key>.img, then the
 * metadata (which commits the volume), then the old name goes.
 *
 * Crash safety: an image without metadata is never a volume and never
 * removed (vol.c), so a crash after the link leaves the data under
 * both names; adopting the same file again as the same key finds its own
 * link and completes. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/file/file.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/log.h"
#include "util/paths.h"

#include "util/banned.h" /* last: after every declaration */

/* The SR directory at or above the directory of canon (a directory
 * holding .zfs-live: an SR, or one half made or half destroyed), into out. */
static bool
in_an_sr(const char *canon, char *out, size_t len)
{
  char p[PATH_MAX], priv[PATH_MAX + 16];

  snprintf(p, sizeof p, "%s", canon);
  for (char *slash = strrchr(p, '/'); slash; slash = strrchr(p, '/')) {
    *slash = '\0';
    snprintf(priv, sizeof priv, "%s/" ZL_PRIV_DIR, p);
    if (faccessat(AT_FDCWD, priv, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
      snprintf(out, len, "%s", p[0] ? p : "/");
      return true;
    }
  }
  return false;
}

int
file_vol_adopt_recover(struct zl_store *sr, const char *key, const char *source,
                       bool committed)
{
  char img[NAME_MAX + 1];
  struct stat s, i;

  file_img_name(img, sizeof img, key);
  if (lstat(source, &s) == -1 || fstatat(sr->dirfd, img, &i, AT_SYMLINK_NOFOLLOW) == -1 ||
      s.st_dev != i.st_dev || s.st_ino != i.st_ino)
    return 0; /* one name already (or not ours to touch) */
  if (committed) {
    if (unlink(source) == -1 && errno != ENOENT) {
      zl_error_sys(errno, "adopt: remove the old name %s", source);
      return -1;
    }
    return 0;
  }
  /* not committed: the source still holds the data; our link goes */
  if (unlinkat(sr->dirfd, img, 0) == -1 && errno != ENOENT) {
    zl_error_sys(errno, "adopt: remove %s", img);
    return -1;
  }
  return 0;
}

int
file_vol_adopt(struct zl_store *sr, const char *key, const char *source,
               const json_t *meta, struct zl_vol_info *out)
{
  char owner[PATH_MAX];
  char canon[PATH_MAX], parent[PATH_MAX], img[NAME_MAX + 1];
  struct stat st, pst, sst, ist;
  const char *f;

  if (source[0] != '/' || !realpath(source, canon)) {
    zl_error(source[0] != '/' ? EINVAL : errno, "%s: %s", source,
             source[0] != '/' ? "not an absolute path" : strerror(errno));
    return -1;
  }
  if ((f = zl_forbidden_prefix(canon))) {
    zl_error_kind(ZL_ERR_INVALID, EACCES, "%s is in a system directory (%s)", canon, f);
    return -1;
  }
  if (in_an_sr(canon, owner, sizeof owner)) {
    struct stat o, me;
    bool mine = stat(owner, &o) == 0 && fstat(sr->dirfd, &me) == 0 &&
                o.st_dev == me.st_dev && o.st_ino == me.st_ino;
    if (!mine) { /* this SR's own files are refused below */
      zl_error_kind(ZL_ERR_INVALID, EINVAL,
                    "%s belongs to the SR at %s: adopt takes no file of an SR (clone or "
                    "copy the volume instead)",
                    canon, owner);
      return -1;
    }
  }
  if (lstat(source, &st) == -1 || !S_ISREG(st.st_mode)) {
    zl_error(EINVAL, "%s is not a regular file (a raw image)", source);
    return -1;
  }
  if (st.st_size == 0 || st.st_size % 512 != 0) {
    zl_error(EINVAL, "%s is %lld bytes: a raw image is a non-zero multiple of 512 bytes",
             source, (long long)st.st_size);
    return -1;
  }
  snprintf(parent, sizeof parent, "%s", canon);
  if (stat(dirname(parent), &pst) == -1 || fstat(sr->dirfd, &sst) == -1) {
    zl_error_sys(errno, "%s", source);
    return -1;
  }
  if (pst.st_dev == sst.st_dev && pst.st_ino == sst.st_ino) {
    zl_error(EINVAL, "%s is in the SR's directory already (its files belong to the SR)",
             source);
    return -1;
  }
  file_img_name(img, sizeof img, key);
  bool ours = fstatat(sr->dirfd, img, &ist, AT_SYMLINK_NOFOLLOW) == 0 &&
              ist.st_dev == st.st_dev && ist.st_ino == st.st_ino;
  if (!ours && st.st_nlink != 1) {
    zl_error(EINVAL, "%s has %lu names (hard links); adopt takes files with one", source,
             (unsigned long)st.st_nlink);
    return -1;
  }
  if (!ours && linkat(AT_FDCWD, canon, sr->dirfd, img, 0) == -1) {
    if (errno == EXDEV)
      zl_error(EXDEV,
               "%s is on another filesystem than the SR %s: adopting moves no data; "
               "move the file onto that filesystem first",
               source, sr->key);
    else
      zl_error_sys(errno, "%s: cannot link it into the SR as %s", source, img);
    return -1;
  }
  zl_fault("adopt", "linked");
  if (file_vol_set_meta(sr, key, meta) == -1) {
    struct zl_error_saved s;
    zl_error_save(&s);
    if (!ours)
      unlinkat(sr->dirfd, img, 0); /* the source still holds the data */
    zl_error_restore(&s);
    return -1;
  }
  zl_fault("adopt", "committed");
  if (unlink(canon) == -1)
    zl_warn("adopted %s, but its old name stays: %s", canon, strerror(errno));
  out->virtual_size = st.st_size;
  out->physical_utilisation = (int64_t)st.st_blocks * 512;
  return 0;
}
