/* blockdev.c: a volume as a block device on this host, without NBD (see
 * core.h): what Ganeti's attach prints and its detach releases.
 *
 *   zvol        the device itself, by its stable path (/dev/zvol/...);
 *               nothing to set up or release
 *   file        a loop device over the volume's file (the file SR's image,
 *               the dataset layout's disk.img), direct I/O where the
 *               filesystem allows, read-only for snapshots
 *
 * Loop devices made here are recorded in <run>/blockdev/<sr uuid>.<key> =
 * {"dev", "st_dev", "st_ino"}: the file they serve.  Attach reuses the
 * recorded device only while it is right for the volume as it is now (its
 * file, its size, read-only for snapshots: util/loop.c zl_loop_fits), and
 * otherwise replaces it; release frees the recorded device only while it
 * still serves the file it was recorded for.  Devices are never found by
 * scanning: two nodes sharing one kernel (tests in network namespaces,
 * each with its own run directory) then never take or free each other's
 * device, and a host's own attachments stay its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/model/model.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"
#include "util/loop.h"

#include "util/banned.h" /* last: after every declaration */

/* The records' directory, locked for this host's changes to them (flock on
 * the directory, released when the fd is closed): the check of a record,
 * the device it leads to and the record written are one step, so attaches
 * of one volume running at once agree on one device and none is left
 * bound and unrecorded. */
static int
records_locked(bool create)
{
  int dfd = zl_run_subdir("blockdev", create);

  if (dfd >= 0 && flock(dfd, LOCK_EX) == -1) {
    zl_error_sys(errno, "lock %s/blockdev", zl_run_dir());
    close(dfd);
    return -1;
  }
  return dfd;
}

static void
record_name(struct zl_sr *sr, const char *key, char *out, size_t len)
{
  const char *uuid = zl_meta_str(sr->info, "uuid");
  snprintf(out, len, "%s.%s.json", uuid ? uuid : "sr", key);
}

/* The recorded loop device of key, if it is still bound to the file it was
 * recorded for: 1 (dev filled), 0 none.  A device bound to anything else
 * now was released and taken by someone else: not ours to use or free. */
static int
recorded(struct zl_sr *sr, const char *key, int dfd, char *dev, size_t len)
{
  char file[NAME_MAX + 1];
  CLEANUP_JSON json_t *rec = NULL;

  record_name(sr, key, file, sizeof file);
  if (!(rec = zl_json_load_at(dfd, file, 1 << 16))) {
    zl_error_clear();
    return 0;
  }
  const char *d = zl_meta_str(rec, "dev");
  dev_t sd = (dev_t)json_integer_value(json_object_get(rec, "st_dev"));
  ino_t si = (ino_t)json_integer_value(json_object_get(rec, "st_ino"));
  if (!d || !zl_loop_serves(d, sd, si))
    return 0;
  snprintf(dev, len, "%s", d);
  return 1;
}

static int
device_path(struct zl_sr *sr, const char *key, int fd, const struct stat *st, char *out,
            size_t len)
{
  struct stat ds;

  /* the stable name where the backend has one and it is this device */
  if (sr->st.be->vol_device && sr->st.be->vol_device(&sr->st, key, out, len) == 0 &&
      stat(out, &ds) == 0 && S_ISBLK(ds.st_mode) && ds.st_rdev == st->st_rdev)
    return 0;
  zl_error_clear();
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, out, len - 1);
  if (n <= 0) {
    zl_error_sys(errno, "volume %s: cannot name its device", key);
    return -1;
  }
  out[n] = '\0';
  return 0;
}

int
zl_vol_blockdev(struct zl_sr *sr, const char *key, struct zl_blockdev *out)
{
  CLEANUP_JSON json_t *meta = NULL;
  CLEANUP_CLOSE int fd = -1;
  CLEANUP_CLOSE int dfd = -1;
  struct stat st;
  char file[NAME_MAX + 1];

  memset(out, 0, sizeof *out);
  if (zl_vol_lookup(sr, key, &meta, NULL) == -1)
    return -1;
  out->readonly = zl_meta_read_only(meta);
  if ((fd = zl_vol_open(sr, key, out->readonly ? O_RDONLY : O_RDWR)) == -1)
    return -1;
  if (fstat(fd, &st) == -1) {
    zl_error_sys(errno, "volume %s", key);
    return -1;
  }
  if (S_ISBLK(st.st_mode))
    return device_path(sr, key, fd, &st, out->path, sizeof out->path);
  if (!S_ISREG(st.st_mode) || st.st_nlink == 0) {
    zl_error_kind(ZL_ERR_UNSUPPORTED, ENOTSUP,
                  "volume %s has no file to back a block device (a snapshot of a volume "
                  "never written reads as zeros)",
                  key);
    return -1;
  }
  if ((dfd = records_locked(true)) == -1)
    return -1;
  out->loop = true;
  /* the recorded device, checked at every attach: it may have been made
   * before the volume was resized (on another node: Ganeti's grow-disk
   * after a migrate --cleanup left it here), or for another file */
  char old[sizeof out->path] = "";
  if (recorded(sr, key, dfd, old, sizeof old) == 1) {
    if (zl_loop_fits(old, &st, out->readonly) == 1) {
      snprintf(out->path, sizeof out->path, "%s", old);
      out->direct_io = zl_loop_direct(out->path);
      return 0;
    }
    zl_info("volume %s: %s no longer fits it (file, size or read-only): replaced", key,
            old);
  }
  if (zl_loop_setup(fd, out->readonly, out->path, sizeof out->path, &out->direct_io) ==
      -1) {
    zl_error_prefix("volume %s: ", key);
    return -1;
  }
  CLEANUP_JSON json_t *rec =
      json_pack("{s:s, s:s, s:s, s:I, s:I}", "dev", out->path, "sr", sr->st.key, "key",
                key, "st_dev", (json_int_t)st.st_dev, "st_ino", (json_int_t)st.st_ino);
  record_name(sr, key, file, sizeof file);
  if (!rec || zl_json_save_at(dfd, file, rec, false) == -1) {
    struct zl_error_saved s;
    zl_error_save(&s);
    zl_loop_detach(out->path);
    zl_error_restore(&s);
    return -1;
  }
  /* the old device goes (the kernel keeps it for whoever still has it open) */
  if (old[0] && zl_loop_detach(old) == -1) {
    zl_warn("volume %s: %s", key, zl_error_msg());
    zl_error_clear();
  }
  zl_info("volume %s: attached as %s%s%s", key, out->path,
          out->direct_io ? " (direct I/O)" : "", out->readonly ? " (read-only)" : "");
  return 0;
}

int
zl_vol_blockdev_release(struct zl_sr *sr, const char *key)
{
  CLEANUP_CLOSE int dfd = records_locked(false);
  char dev[256], file[NAME_MAX + 1];

  if (zl_check_key(key) == -1)
    return -1;
  if (dfd == -1) {
    if (errno != ENOENT)
      return -1;
    zl_error_clear();
    return 0;
  }
  if (recorded(sr, key, dfd, dev, sizeof dev) == 1) {
    if (zl_loop_detach(dev) == -1)
      return -1;
    zl_info("volume %s: released %s", key, dev);
  }
  record_name(sr, key, file, sizeof file);
  if (unlinkat(dfd, file, 0) == -1 && errno != ENOENT) {
    zl_error_sys(errno, "%s", file);
    return -1;
  }
  return 0;
}

int
zl_vol_blockdev_refresh(struct zl_sr *sr, const char *key)
{
  CLEANUP_CLOSE int dfd = records_locked(false);
  char dev[256];

  if (dfd == -1) {
    zl_error_clear();
    return 0;
  }
  if (recorded(sr, key, dfd, dev, sizeof dev) != 1)
    return 0;
  return zl_loop_refresh(dev);
}

int
zl_vol_data_path(struct zl_sr *sr, const char *key, char *out, size_t len)
{
  CLEANUP_JSON json_t *meta = NULL;
  CLEANUP_CLOSE int fd = -1;
  struct stat st;

  if (zl_vol_lookup(sr, key, &meta, NULL) == -1)
    return -1;
  if ((fd = zl_vol_open(sr, key, zl_meta_read_only(meta) ? O_RDONLY : O_RDWR)) == -1 ||
      fstat(fd, &st) == -1)
    return -1;
  if (S_ISBLK(st.st_mode))
    return device_path(sr, key, fd, &st, out, len);
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, out, len - 1);
  if (!S_ISREG(st.st_mode) || st.st_nlink == 0 || n <= 0 || out[0] != '/') {
    zl_error_kind(ZL_ERR_UNSUPPORTED, ENOTSUP,
                  "volume %s has no file on this host (a snapshot of a volume never "
                  "written reads as zeros)",
                  key);
    return -1;
  }
  out[n] = '\0';
  return 0;
}

bool
zl_vol_blockdev_active(struct zl_sr *sr, const char *key)
{
  char dev[256];
  CLEANUP_CLOSE int dfd = zl_run_subdir("blockdev", false);
  bool r = dfd >= 0 && recorded(sr, key, dfd, dev, sizeof dev) == 1;
  zl_error_clear();
  return r;
}

/* Stand-ins: <run>/blockdev/standin.<key>.json = {"dev", "st_dev",
 * "st_ino", "why"}, the device bound read-only to the empty file
 * <run>/blockdev/standin.img (one file for all of them). */
#define STANDIN_FILE "standin.img"

static void
standin_name(const char *key, char *out, size_t len)
{
  snprintf(out, len, "standin.%s.json", key);
}

/* key's stand-in record, if its device is still bound to the empty file. */
static json_t *
standin_record(int dfd, const char *key)
{
  char file[NAME_MAX + 1];
  json_t *rec;

  standin_name(key, file, sizeof file);
  if (!(rec = zl_json_load_at(dfd, file, 1 << 16))) {
    zl_error_clear();
    return NULL;
  }
  const char *d = zl_meta_str(rec, "dev");
  dev_t sd = (dev_t)json_integer_value(json_object_get(rec, "st_dev"));
  ino_t si = (ino_t)json_integer_value(json_object_get(rec, "st_ino"));
  if (!d || !zl_loop_serves(d, sd, si)) {
    json_decref(rec);
    return NULL;
  }
  return rec;
}

int
zl_blockdev_standin(const char *key, const char *why, char *dev, size_t len)
{
  CLEANUP_CLOSE int dfd = -1;
  CLEANUP_CLOSE int fd = -1;
  CLEANUP_JSON json_t *rec = NULL;
  char file[NAME_MAX + 1];
  struct stat st;
  bool direct;

  if (zl_check_key(key) == -1 || (dfd = records_locked(true)) == -1)
    return -1;
  if ((rec = standin_record(dfd, key))) {
    snprintf(dev, len, "%s", zl_meta_str(rec, "dev"));
    return 0;
  }
  fd = openat(dfd, STANDIN_FILE, O_RDONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0400);
  if (fd == -1 || fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || st.st_size != 0) {
    zl_error(fd == -1 ? errno : EINVAL, "%s/blockdev/" STANDIN_FILE ": %s", zl_run_dir(),
             fd == -1 ? strerror(errno) : "not an empty file");
    return -1;
  }
  if (zl_loop_setup(fd, true, dev, len, &direct) == -1)
    return -1;
  rec = json_pack("{s:s, s:s, s:I, s:I, s:s}", "dev", dev, "key", key, "st_dev",
                  (json_int_t)st.st_dev, "st_ino", (json_int_t)st.st_ino, "why", why);
  standin_name(key, file, sizeof file);
  if (!rec || zl_json_save_at(dfd, file, rec, false) == -1) {
    struct zl_error_saved s;
    zl_error_save(&s);
    zl_loop_detach(dev);
    zl_error_restore(&s);
    return -1;
  }
  zl_info("volume %s: stand-in %s (%s)", key, dev, why);
  return 0;
}

char *
zl_blockdev_standin_reason(const char *key)
{
  CLEANUP_CLOSE int dfd = zl_run_subdir("blockdev", false);
  CLEANUP_JSON json_t *rec = NULL;

  zl_error_clear();
  if (dfd == -1 || zl_check_key(key) == -1 || !(rec = standin_record(dfd, key))) {
    zl_error_clear();
    return NULL;
  }
  const char *why = zl_meta_str(rec, "why");
  return strdup(why ? why : "unknown reason");
}

int
zl_blockdev_standin_release(const char *key)
{
  CLEANUP_CLOSE int dfd = records_locked(false);
  CLEANUP_JSON json_t *rec = NULL;
  char file[NAME_MAX + 1];

  if (zl_check_key(key) == -1)
    return -1;
  if (dfd == -1) {
    if (errno != ENOENT)
      return -1;
    zl_error_clear();
    return 0;
  }
  if ((rec = standin_record(dfd, key)) && zl_loop_detach(zl_meta_str(rec, "dev")) == -1)
    return -1;
  standin_name(key, file, sizeof file);
  if (unlinkat(dfd, file, 0) == -1 && errno != ENOENT) {
    zl_error_sys(errno, "%s", file);
    return -1;
  }
  return 0;
}
