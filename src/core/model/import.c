/* import.c: a new volume from an image (raw, qcow2, VHD dynamic).
 *
 * The new volume is a zl_recv (copy.c): transient, under the intent
 * record "receive", until the one metadata write that commits it; a
 * failure removes it at once, a crash leaves it to the next call on the
 * SR, whose recovery removes it (kept once committed).  Steps, each a
 * fault point: receive:journaled, receive:made, then
 *   import:created    the volume made (transient), empty
 *   import:filled     the data written, not yet verified
 * then receive:tuned, receive:committed.  The SR lock is held only to make
 * and to publish the volume, not while the data flows.
 *
 * Untrusted images: qcow2 and VHD are read by qemu-img with the format
 * forced (-f, never probed), after `qemu-img info` (its virtual size within
 * the limit, no backing or external data file) and, for qcow2, `qemu-img
 * check` (a truncated qcow2 converts "successfully" with zeros where its
 * clusters were; check reports them as corruptions; qemu's VHD reader
 * refuses a truncated file by itself).  The SHA-256 is of the virtual
 * disk data (as `vol export` prints it): raw, of the input's bytes as they
 * are read; qcow2/VHD, of the data stored, read back (the image's virtual
 * size).  One given is compared with it; a mismatch refuses the import.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/model/model.h"
#include "util/cleanup.h"
#include "util/digest.h"
#include "util/error.h"
#include "util/exec.h"
#include "util/log.h"
#include "util/uuid.h"

#include "util/banned.h" /* last: after every declaration */

/* What the image says about itself (qemu-img info), checked. */
static int
probe_image(int fd, const struct zl_import_args *a, int64_t limit, int64_t *size)
{
  char src[64];
  CLEANUP_FREE char *out = NULL;
  const char *fmt = zl_image_qemu_format(a->format);

  zl_fd_path(fd, src, sizeof src);
  const char *info[] = {"qemu-img", "info", "--output=json", "-f", fmt, src, NULL};
  if (zl_qemu_img(info, NULL, 0, 0, &out) == -1)
    return -1;
  CLEANUP_JSON json_t *j = json_loads(out, 0, NULL);
  json_t *vs = json_object_get(j, "virtual-size");
  if (!json_is_integer(vs) || json_integer_value(vs) <= 0) {
    zl_error_kind(ZL_ERR_INVALID, EINVAL, "qemu-img info gave no virtual size");
    return -1;
  }
  json_t *data = json_object_get(
      json_object_get(json_object_get(j, "format-specific"), "data"), "data-file");
  if (json_object_get(j, "backing-filename") ||
      json_object_get(j, "full-backing-filename") || data) {
    zl_error_kind(ZL_ERR_INVALID, EINVAL,
                  "the image refers to another file (a backing or data file); only "
                  "self-contained images are imported");
    return -1;
  }
  *size = json_integer_value(vs);
  if (*size > limit) {
    zl_error_kind(ZL_ERR_SIZE, EFBIG,
                  "the image's virtual size %" PRId64 " is over the limit %" PRId64,
                  *size, limit);
    return -1;
  }
  if (a->format != ZL_IMG_QCOW2)
    return 0;
  /* exit 0: clean; 3: leaked clusters only (harmless); else refused */
  const char *check[] = {"qemu-img", "check", "-f", fmt, src, NULL};
  struct zl_exec_result res;
  if (zl_exec(check, NULL, &res) == -1)
    return -1;
  int st = res.status;
  if (st != 0 && st != 3) {
    zl_error_kind(ZL_ERR_INVALID, EIO,
                  "the image is corrupt or truncated (qemu-img check: %s)",
                  zl_exec_reason(&res));
    zl_exec_result_free(&res);
    return -1;
  }
  zl_exec_result_free(&res);
  return 0;
}

/* The input, its size and what must be checked first. */
static int
open_input(const struct zl_import_args *a, int *fd, bool *stream, int64_t *size)
{
  int64_t limit = a->size > 0 ? a->size : ZL_IMPORT_MAX_SIZE;
  struct stat st;

  if (!a->path) {
    if (a->format != ZL_IMG_RAW) {
      zl_error_kind(ZL_ERR_INVALID, EINVAL,
                    "%s cannot be imported from a stream (its reader seeks): give a file",
                    zl_image_format_name(a->format));
      return -1;
    }
    if (a->size <= 0) {
      zl_error_kind(ZL_ERR_SIZE, EINVAL, "a raw stream needs its size (--size)");
      return -1;
    }
    *fd = a->in_fd, *stream = true, *size = a->size;
    return 0;
  }
  if ((*fd = open(a->path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1 ||
      fstat(*fd, &st) == -1) {
    zl_error_sys(errno, "%s", a->path);
    return -1;
  }
  *stream = false;
  if (!S_ISREG(st.st_mode)) {
    zl_error_kind(ZL_ERR_INVALID, EINVAL, "%s is not a regular file", a->path);
    return -1;
  }
  if (a->format != ZL_IMG_RAW)
    return probe_image(*fd, a, limit, size);
  *size = st.st_size;
  if (*size <= 0 || *size > limit) {
    zl_error_kind(ZL_ERR_SIZE, EFBIG, "%s: size %" PRId64 " is %s", a->path, *size,
                  *size <= 0 ? "empty" : "over the limit");
    return -1;
  }
  return 0;
}

/* A volume an older version was importing ("hidden" and "importing" in
 * its metadata, intent record "import"): removed by recovery. */
static int
remove_importing(struct zl_sr *sr, const char *key)
{
  if (sr->st.be->vol_destroy(&sr->st, key) == -1 && errno != ENOENT)
    return -1;
  return sr->st.be->vol_discard(&sr->st, key);
}

/* qemu-img convert of the image into the volume's fd, then its hash. */
static int
convert_in(int in, int vfd, const struct zl_import_args *a, int64_t size,
           struct zl_meter *m, char sha[65])
{
  char src[64], dst[64];
  zl_fd_path(in, src, sizeof src);
  zl_fd_path(vfd, dst, sizeof dst);
  const char *argv[] = {"qemu-img",
                        "convert",
                        "-p",
                        "-n",
                        "--target-is-zero",
                        "-f",
                        zl_image_qemu_format(a->format),
                        "-O",
                        "raw",
                        src,
                        dst,
                        NULL};
  if (zl_qemu_img(argv, m, 0, (uint64_t)size, NULL) == -1)
    return -1;
  zl_meter_set(m, (uint64_t)size);
  sha[0] = '\0';
  return a->no_checksum ? 0 : zl_image_hash_fd(vfd, size, m, sha);
}

static int
fill(struct zl_recv *recv, int in, bool stream, const struct zl_import_args *a,
     int64_t size, struct zl_meter *m, char sha[65])
{
  CLEANUP_CLOSE int vfd = zl_recv_open(recv);
  if (vfd == -1)
    return -1;
  if (a->format != ZL_IMG_RAW)
    return convert_in(in, vfd, a, size, m, sha);
  bool failed;
  struct zl_sha256 *h = zl_digest_start(!a->no_checksum, &failed);
  struct zl_raw_copy c = {.in = in,
                          .in_stream = stream,
                          .size = size,
                          .out = vfd,
                          .out_volume = true,
                          .hash = h,
                          .meter = m};
  int r = failed || zl_raw_copy(&c) == -1 || fsync(vfd) == -1 ? -1 : 0;
  if (zl_digest_finish(h, sha) == -1)
    r = -1;
  return r;
}

static int
check_sha(const char *want)
{
  size_t n = want ? strlen(want) : 0;
  if (!want)
    return 0;
  if (n != 64 || strspn(want, "0123456789abcdefABCDEF") != 64) {
    zl_error_kind(ZL_ERR_INVALID, EINVAL, "not a SHA-256 (64 hex digits): '%s'", want);
    return -1;
  }
  return 0;
}

int
zl_vol_import_image(struct zl_sr *sr, const struct zl_import_args *a,
                    const struct zl_progress *p, struct zl_volume *out, char sha256[65])
{
  const char *name = a->name ? a->name : "";
  int64_t size;
  bool stream;
  int fd = -1;
  struct zl_meter m;

  if (a->sha256 && a->no_checksum) {
    zl_error_kind(ZL_ERR_INVALID, EINVAL, "a checksum to verify, but none to compute");
    return -1;
  }
  if (check_sha(a->sha256) == -1 || zl_check_name(name, "volume name") == -1 ||
      (a->key && zl_check_key(a->key) == -1))
    return -1;
  int rc = open_input(a, &fd, &stream, &size);
  CLEANUP_CLOSE int own = a->path ? fd : -1;
  if (rc == -1) {
    zl_error_prefix("import %s: ", a->path ? a->path : "stdin");
    return -1;
  }
  struct zl_create_args ca = {.key = a->key,
                              .name = name,
                              .description = "",
                              .size = size,
                              .provisioning = ZL_PROV_DEFAULT};
  struct zl_recv *r = zl_recv_begin(sr, &ca, NULL);
  if (!r) {
    zl_error_prefix("import %s: ", a->path ? a->path : "stdin");
    return -1;
  }
  zl_fault("import", "created");
  char key[256];
  snprintf(key, sizeof key, "%s", zl_recv_key(r));
  /* qcow2/VHD: qemu-img, then the data read back for its hash */
  bool twice = a->format != ZL_IMG_RAW && !a->no_checksum;
  zl_meter_init(&m, p, (uint64_t)size * (twice ? 2 : 1));
  if (fill(r, fd, stream, a, size, &m, sha256) == -1) {
    zl_error_prefix("import %s: ", a->path ? a->path : "stdin");
    zl_recv_abort(r);
    return -1;
  }
  zl_fault("import", "filled");
  if (a->sha256 && strcasecmp(a->sha256, sha256) != 0) {
    zl_error_kind(ZL_ERR_INVALID, EIO,
                  "import %s: the data does not match its checksum (sha256 %s, expected "
                  "%s): the image is corrupt or truncated",
                  a->path ? a->path : "stdin", sha256, a->sha256);
    zl_recv_abort(r);
    return -1;
  }
  if (zl_recv_commit(r, out) == -1) {
    zl_error_prefix("import: publish volume %s: ", key);
    return -1;
  }
  zl_meter_end(&m);
  zl_info("imported %s (%s) as volume %s of SR %s (sha256 %s)",
          a->path ? a->path : "stdin", zl_image_format_name(a->format), key, sr->st.key,
          *sha256 ? sha256 : "not computed");
  return 0;
}

/* --- recovery (registered in recover.c) ------------------------------------- */

/* import records of older versions (imports are zl_recv's now): visible
 * (committed) -> kept; still importing or partial -> removed */
static int
recover_import(struct zl_sr *sr, const json_t *rec, const char *key)
{
  CLEANUP_JSON json_t *meta = NULL;
  (void)rec;
  if (sr->st.be->vol_get(&sr->st, key, &meta, NULL) == 0 &&
      !json_is_true(json_object_get(meta, "importing"))) {
    zl_info("recovery: import of %s was complete; keeping it", key);
    return 0;
  }
  zl_error_clear();
  zl_info("recovery: import of %s was not complete; removing it", key);
  return remove_importing(sr, key);
}

static const struct zl_recovery recoveries[] = {{"import", recover_import}, {NULL, NULL}};

__attribute__((constructor)) static void
register_recoveries(void)
{
  zl_recover_register(recoveries);
}
