/* file-adopt.c: adopt an existing raw file into a file SR (backend.h
 * vol_adopt) without copying: a hard link as <key>.img, then the
 * metadata (which commits the volume), then the old name goes.
 *
 * Crash safety: an image without metadata is never a volume and never
 * removed (file-vol.c), so a crash after the link leaves the data under
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

#include "backend/file.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/log.h"
#include "util/paths.h"

int
file_vol_adopt(struct zl_sr *sr, const char *key, const char *source, const json_t *meta,
               struct zl_vol_info *out)
{
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
    zl_error(errno, "%s: %s", source, strerror(errno));
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
      zl_error(errno, "%s: cannot link it into the SR as %s: %s", source, img,
               strerror(errno));
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
