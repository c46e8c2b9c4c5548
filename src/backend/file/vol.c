/* vol.c: volumes of the file backend (see file.h for the layout). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/file/file.h"
#include "util/beneath.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fiemap.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

void
file_img_name(char *buf, size_t len, const char *key)
{
  snprintf(buf, len, "%s" FILE_IMG_SUFFIX, key);
}

void
file_meta_name(char *buf, size_t len, const char *key)
{
  snprintf(buf, len, "%s" FILE_META_SUFFIX, key);
}

static void
revert_tmp_name(char *buf, size_t len, const char *key)
{
  snprintf(buf, len, ".%s.revert.tmp", key);
}

static int
stat_img(struct zl_store *sr, const char *key, struct zl_vol_info *info)
{
  char img[NAME_MAX + 1];
  struct stat st;

  file_img_name(img, sizeof img, key);
  if (fstatat(sr->dirfd, img, &st, AT_SYMLINK_NOFOLLOW) == -1) {
    zl_error_sys(errno, "volume %s: %s", key, img);
    return -1;
  }
  if (!S_ISREG(st.st_mode)) {
    zl_error(EINVAL, "volume %s: %s is not a regular file", key, img);
    return -1;
  }
  if (info) {
    info->virtual_size = st.st_size;
    info->physical_utilisation = (int64_t)st.st_blocks * 512;
  }
  return 0;
}

static json_t *
load_meta(struct zl_store *sr, const char *key)
{
  char name[NAME_MAX + 1];
  json_t *m;

  file_meta_name(name, sizeof name, key);
  m = zl_json_load_at(sr->dirfd, name, ZL_META_MAX);
  if (!m)
    return NULL;
  const char *k = json_string_value(json_object_get(m, "key"));
  if (!json_is_object(m) || !k || strcmp(k, key) != 0) {
    json_decref(m);
    zl_error(EINVAL, "volume %s: %s does not describe this volume", key, name);
    return NULL;
  }
  return m;
}

/* {"key", "_broken"} for a volume whose metadata cannot be read. */
static json_t *
broken_meta(const char *key, const char *why)
{
  json_t *m = json_pack("{s:s, s:s}", "key", key, ZL_META_BROKEN, why);
  if (!m)
    zl_error(ENOMEM, "out of memory");
  return m;
}

/* The metadata of key, or a broken one when its sidecar exists and cannot
 * be read or its image is gone; NULL with errno ENOENT when key is not a
 * volume (no sidecar: destroyed, never committed, or not ours). */
static json_t *
meta_or_broken(struct zl_store *sr, const char *key, struct zl_vol_info *info)
{
  struct zl_vol_info local;
  json_t *m = load_meta(sr, key);

  if (!info)
    info = &local;
  info->virtual_size = info->physical_utilisation = 0;
  if (!m) {
    if (errno == ENOENT || errno == ENOMEM)
      return NULL;
    char why[512];
    snprintf(why, sizeof why, "%s", zl_error_msg());
    stat_img(sr, key, info); /* sizes where the image tells */
    zl_error_clear();
    return broken_meta(key, why);
  }
  if (stat_img(sr, key, info) == 0)
    return m;
  json_decref(m);
  if (errno != ENOENT)
    return NULL;
  /* destroyed while we looked (the sidecar goes first), or damaged */
  char name[NAME_MAX + 1];
  file_meta_name(name, sizeof name, key);
  if (faccessat(sr->dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == -1) {
    zl_error(ENOENT, "volume %s does not exist", key);
    return NULL;
  }
  return broken_meta(key, "its image " FILE_IMG_SUFFIX " file is missing");
}

int
file_vol_get(struct zl_store *sr, const char *key, json_t **meta,
             struct zl_vol_info *info)
{
  json_t *m = meta_or_broken(sr, key, info);

  if (!m)
    return -1;
  if (meta)
    *meta = m;
  else
    json_decref(m);
  return 0;
}

static bool
has_suffix(const char *s, size_t len, const char *suffix, size_t *stem)
{
  size_t sl = strlen(suffix);

  if (len <= sl || memcmp(s + len - sl, suffix, sl) != 0)
    return false;
  *stem = len - sl;
  return true;
}

static int
cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names of images with no metadata: partial creates (whose intent record
 * recovery handles) or files someone put there.  Reported, never removed. */
static void
report_orphans(struct zl_store *sr, char **imgs, size_t nimg, char **metas, size_t nmeta)
{
  size_t j = 0;

  if (nimg == 0)
    return;
  qsort(imgs, nimg, sizeof *imgs, cmp_str);
  if (nmeta)
    qsort(metas, nmeta, sizeof *metas, cmp_str);
  for (size_t i = 0; i < nimg; i++) {
    while (j < nmeta && strcmp(metas[j], imgs[i]) < 0)
      j++;
    if (j == nmeta || strcmp(metas[j], imgs[i]) != 0)
      zl_debug("SR %s: %s" FILE_IMG_SUFFIX " has no metadata; not a volume (left alone)",
               sr->key, imgs[i]);
  }
}

int
file_vol_list(struct zl_store *sr, zl_vol_cb cb, void *opaque)
{
  CLEANUP_DIR DIR *d = NULL;
  struct dirent *de;
  char **imgs = NULL, **metas = NULL;
  size_t nimg = 0, nmeta = 0, cap_img = 0, cap_meta = 0;
  int fd = openat(sr->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int r = 0;

  if (fd == -1 || !(d = fdopendir(fd))) {
    if (fd >= 0)
      close(fd);
    zl_error_sys(errno, "SR %s: cannot list", sr->key);
    return -1;
  }
  while (r == 0 && (de = readdir(d))) {
    size_t len = strlen(de->d_name), stem;
    char ***arr;
    size_t *n, *cap;

    if (de->d_name[0] == '.' || (de->d_type != DT_REG && de->d_type != DT_UNKNOWN))
      continue;
    if (has_suffix(de->d_name, len, FILE_META_SUFFIX, &stem)) {
      arr = &metas, n = &nmeta, cap = &cap_meta;
    } else if (has_suffix(de->d_name, len, FILE_IMG_SUFFIX, &stem)) {
      arr = &imgs, n = &nimg, cap = &cap_img;
    } else {
      continue;
    }
    if (*n == *cap) {
      *cap = *cap ? *cap * 2 : 256;
      char **na = realloc(*arr, *cap * sizeof *na);
      if (!na) {
        zl_error(ENOMEM, "out of memory");
        r = -1;
        break;
      }
      *arr = na;
    }
    if (!((*arr)[*n] = strndup(de->d_name, stem))) {
      zl_error(ENOMEM, "out of memory");
      r = -1;
      break;
    }
    (*n)++;
  }

  for (size_t i = 0; r == 0 && i < nmeta; i++) {
    struct zl_vol_info info;
    json_t *meta;

    if (!zl_key_valid(metas[i]))
      continue;
    if (!(meta = meta_or_broken(sr, metas[i], &info))) {
      if (errno != ENOENT) /* ENOENT: destroyed while we listed */
        zl_warn("SR %s: volume %s skipped: %s", sr->key, metas[i], zl_error_msg());
      zl_error_clear();
      continue;
    }
    r = cb(opaque, metas[i], meta, &info);
    json_decref(meta);
  }
  if (r == 0)
    report_orphans(sr, imgs, nimg, metas, nmeta);
  for (size_t i = 0; i < nimg; i++)
    free(imgs[i]);
  for (size_t i = 0; i < nmeta; i++)
    free(metas[i]);
  free(imgs);
  free(metas);
  return r;
}

static int
write_meta(struct zl_store *sr, const char *key, const json_t *meta)
{
  char name[NAME_MAX + 1];

  file_meta_name(name, sizeof name, key);
  CLEANUP_CLOSE int scratch = zl_store_scratch_for(sr, sr->dirfd);
  if (scratch == -1)
    return -1;
  return zl_json_save_via(scratch, sr->dirfd, name, meta, true);
}

/* Reserve [0, size) of fd.  keep_size: do not change the file size. */
static int
reserve(int fd, int64_t size, bool keep_size, const char *key)
{
  if (size == 0)
    return 0;
  if (fallocate(fd, keep_size ? FALLOC_FL_KEEP_SIZE : 0, 0, size) == -1) {
    int e = errno;
    if (e == EOPNOTSUPP || e == ENOSYS)
      zl_error_kind_sys(ZL_ERR_UNSUPPORTED, e,
                        "volume %s: this filesystem cannot reserve space (thick "
                        "provisioning)",
                        key);
    else
      zl_error_sys(e, "volume %s: cannot reserve %lld bytes", key, (long long)size);
    return -1;
  }
  return 0;
}

static int
sync_data(int fd, const char *key)
{
  if (fdatasync(fd) == -1) {
    zl_error_sys(errno, "volume %s: fsync", key);
    return -1;
  }
  return 0;
}

int
file_vol_create(struct zl_store *sr, const char *key, int64_t size, bool thick,
                const json_t *meta, struct zl_vol_info *out)
{
  struct stat st;
  char img[NAME_MAX + 1];
  CLEANUP_CLOSE int fd = -1;

  file_img_name(img, sizeof img, key);
  fd = openat(sr->dirfd, img, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd == -1) {
    zl_error_sys(errno, "%s", img);
    return -1;
  }
  if (ftruncate(fd, size) == -1) {
    zl_error_sys(errno, "%s: cannot set size %lld", img, (long long)size);
    return -1;
  }
  if (thick && reserve(fd, size, false, key) == -1)
    return -1;
  if (sync_data(fd, key) == -1 || fstat(fd, &st) == -1)
    return -1;
  out->virtual_size = st.st_size;
  out->physical_utilisation = (int64_t)st.st_blocks * 512;
  zl_fault("create", "data");
  return write_meta(sr, key, meta);
}

int
file_vol_copy(struct zl_store *sr, const char *src, const char *dst,
              enum zl_copy_kind kind, bool thick, const json_t *meta,
              const struct zl_vol_info *src_info, struct zl_vol_info *info)
{
  char in_name[NAME_MAX + 1], out_name[NAME_MAX + 1];
  CLEANUP_CLOSE int in = -1;
  CLEANUP_CLOSE int out = -1;
  struct stat st;
  bool reflinked = false;

  file_img_name(in_name, sizeof in_name, src);
  file_img_name(out_name, sizeof out_name, dst);
  in = openat(sr->dirfd, in_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (in == -1 || fstat(in, &st) == -1) {
    zl_error_sys(errno, "%s", in_name);
    return -1;
  }
  out = openat(sr->dirfd, out_name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
               0600);
  if (out == -1) {
    zl_error_sys(errno, "%s", out_name);
    return -1;
  }
  if (zl_clone_or_copy(in, out, st.st_size, &reflinked) == -1)
    return -1;
  if (thick && reserve(out, st.st_size, false, dst) == -1)
    return -1;
  if (sync_data(out, dst) == -1 || fstat(out, &st) == -1)
    return -1;
  (void)src_info;
  info->virtual_size = st.st_size;
  info->physical_utilisation = (int64_t)st.st_blocks * 512;
  zl_debug("%s %s -> %s by %s", kind == ZL_COPY_SNAPSHOT ? "snapshot" : "clone", src, dst,
           reflinked ? "reflink" : "sparse copy");
  zl_fault(kind == ZL_COPY_SNAPSHOT ? "snapshot" : "clone", "data");
  return write_meta(sr, dst, meta);
}

static int
unlink_quiet(struct zl_store *sr, const char *name)
{
  if (unlinkat(sr->dirfd, name, 0) == -1 && errno != ENOENT) {
    zl_error_sys(errno, "remove %s", name);
    return -1;
  }
  return 0;
}

/* Remove ".<prefix>.tmp.*" temporaries left by a dead writer. */
static int
remove_temporaries(struct zl_store *sr, const char *prefix)
{
  CLEANUP_DIR DIR *d = NULL;
  struct dirent *de;
  char want[NAME_MAX + 1];
  int fd = openat(sr->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  if (fd == -1 || !(d = fdopendir(fd))) {
    if (fd >= 0)
      close(fd);
    zl_error_sys(errno, "SR %s: cannot list", sr->key);
    return -1;
  }
  int n = snprintf(want, sizeof want, ".%s.tmp.", prefix);
  while ((de = readdir(d))) {
    if (strncmp(de->d_name, want, (size_t)n) == 0 && unlink_quiet(sr, de->d_name) == -1)
      return -1;
  }
  return 0;
}

int
file_vol_discard(struct zl_store *sr, const char *key)
{
  char name[NAME_MAX + 1];

  file_meta_name(name, sizeof name, key);
  if (unlink_quiet(sr, name) == -1 || remove_temporaries(sr, name) == -1)
    return -1;
  file_img_name(name, sizeof name, key);
  return unlink_quiet(sr, name);
}

int
file_vol_destroy(struct zl_store *sr, const char *key)
{
  char name[NAME_MAX + 1];

  /* Metadata first: from then on the volume is gone for every reader. */
  file_meta_name(name, sizeof name, key);
  if (unlink_quiet(sr, name) == -1)
    return -1;
  zl_fault("destroy", "unlisted");
  file_img_name(name, sizeof name, key);
  if (unlink_quiet(sr, name) == -1)
    return -1;
  revert_tmp_name(name, sizeof name, key);
  if (unlink_quiet(sr, name) == -1)
    return -1;
  zl_fault("destroy", "removed");
  return 0;
}

int
file_vol_resize(struct zl_store *sr, const char *key, int64_t size, bool thick)
{
  char img[NAME_MAX + 1];
  CLEANUP_CLOSE int fd = -1;
  struct stat st;

  file_img_name(img, sizeof img, key);
  fd = openat(sr->dirfd, img, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd == -1 || fstat(fd, &st) == -1) {
    zl_error_sys(errno, "%s", img);
    return -1;
  }
  if (size < st.st_size) { /* never shrink, even when asked to redo */
    zl_error_kind(ZL_ERR_SIZE, EINVAL, "%s is larger than %lld bytes", img,
                  (long long)size);
    return -1;
  }
  /* Reserve before growing, so a failure leaves the old size. */
  if (thick && reserve(fd, size, true, key) == -1) {
    int e = errno;
    if (ftruncate(fd, st.st_size) == -1) /* release blocks past the end */
      zl_warn("%s: cannot release space after a failed resize", img);
    errno = e;
    return -1;
  }
  zl_fault("resize", "reserved");
  if (ftruncate(fd, size) == -1) {
    zl_error_sys(errno, "%s: cannot set size %lld", img, (long long)size);
    return -1;
  }
  return sync_data(fd, key);
}

int
file_vol_revert(struct zl_store *sr, const char *key, const char *snap, bool thick)
{
  char in_name[NAME_MAX + 1], img[NAME_MAX + 1], tmp[NAME_MAX + 1];
  CLEANUP_CLOSE int in = -1;
  CLEANUP_CLOSE int out = -1;
  struct stat st;

  file_img_name(in_name, sizeof in_name, snap);
  file_img_name(img, sizeof img, key);
  revert_tmp_name(tmp, sizeof tmp, key);
  if (file_vol_get(sr, key, NULL, NULL) == -1) /* never resurrect a destroyed one */
    return -1;
  in = openat(sr->dirfd, in_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (in == -1 || fstat(in, &st) == -1) {
    zl_error_sys(errno, "%s", in_name);
    return -1;
  }
  /* what a dead revert left is replaced, never written through */
  if (unlinkat(sr->dirfd, tmp, 0) == -1 && errno != ENOENT) {
    zl_error_sys(errno, "%s", tmp);
    return -1;
  }
  out = zl_file_beneath(sr->dirfd, tmp, O_RDWR | O_CREAT | O_EXCL, 0600);
  if (out == -1)
    return -1;
  if (zl_clone_or_copy_progress(in, out, st.st_size, NULL, &sr->copy_progress) == -1 ||
      (thick && reserve(out, st.st_size, false, key) == -1) || sync_data(out, key) == -1)
    goto fail;
  zl_fault("revert", "copied");
  if (renameat(sr->dirfd, tmp, sr->dirfd, img) == -1) {
    zl_error_sys(errno, "replace %s", img);
    goto fail;
  }
  if (zl_fsync_dir(sr->dirfd) == -1)
    return -1;
  zl_fault("revert", "swapped");
  return 0;

fail:;
  int e = errno;
  unlinkat(sr->dirfd, tmp, 0);
  errno = e;
  return -1;
}

int
file_vol_set_meta(struct zl_store *sr, const char *key, const json_t *meta)
{
  return write_meta(sr, key, meta);
}

int
file_vol_open(struct zl_store *sr, const char *key, int flags)
{
  char img[NAME_MAX + 1];
  int fd;

  file_img_name(img, sizeof img, key);
  fd = openat(sr->dirfd, img, flags | O_CLOEXEC | O_NOFOLLOW);
  if (fd == -1)
    zl_error_sys(errno, "volume %s: %s", key, img);
  return fd;
}

int
file_vol_changes(struct zl_store *sr, const char *from, const char *to, zl_range_fn cb,
                 void *opaque)
{
  struct stat st;

  /* without reflinks, copies share nothing: the extent maps tell nothing */
  if (!(sr->be->caps(sr) & ZL_CAP_REFLINK)) {
    zl_error(ENOTSUP, "SR %s has no reflinks", sr->key);
    return -1;
  }
  CLEANUP_CLOSE int a = file_vol_open(sr, from, O_RDONLY);
  CLEANUP_CLOSE int b = a == -1 ? -1 : file_vol_open(sr, to, O_RDONLY);
  if (b == -1)
    return -1;
  if (fstat(b, &st) == -1) {
    zl_error_sys(errno, "volume %s", to);
    return -1;
  }
  if (zl_fiemap_diff(a, b, (uint64_t)st.st_size, cb, opaque) == -1) {
    zl_error_prefix("changes from %s to %s: ", from, to);
    return -1;
  }
  return 0;
}

int
file_vol_data_destroy(struct zl_store *sr, const char *key)
{
  struct stat st;
  CLEANUP_CLOSE int fd = file_vol_open(sr, key, O_RDWR);

  /* the image keeps its size (the volume's virtual size) and loses its
   * blocks: truncating to zero and back frees them on every filesystem */
  if (fd == -1 || fstat(fd, &st) == -1 || ftruncate(fd, 0) == -1 ||
      ftruncate(fd, st.st_size) == -1 || fsync(fd) == -1) {
    zl_error_sys(errno, "volume %s", key);
    return -1;
  }
  return 0;
}
