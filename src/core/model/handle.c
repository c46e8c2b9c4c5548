/* handle.c: an open SR (struct zl_sr): its storage opened through its
 * backend, sr.json read (its presence makes the SR exist: SR.create writes
 * it last, SR.destroy's commit removes it) and cached beside host-local
 * runtime state, and what the handle tells.  No locking, no recovery:
 * zl_sr_open (recover.c) adds those. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/model/model.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"
#include "util/uuid.h"

#include "util/banned.h" /* last: after every declaration */

const struct zl_backend *
zl_backend_or_error(const char *type)
{
  const struct zl_backend *be = zl_backend_find(type);

  if (!be) {
    zl_error_kind(ZL_ERR_INVALID, EINVAL, "unknown SR type '%s'", type ? type : "");
    return NULL;
  }
  return be;
}

static struct zl_sr *
sr_new(const struct zl_backend *be, const char *key)
{
  struct zl_sr *sr = calloc(1, sizeof *sr);

  if (!sr || !(sr->st.key = strdup(key))) {
    free(sr);
    zl_error(ENOMEM, "out of memory");
    return NULL;
  }
  sr->st.be = be;
  sr->st.dirfd = sr->st.privfd = sr->st.statefd = sr->lockfd = -1;
  return sr;
}

void
zl_sr_close(struct zl_sr *sr)
{
  if (!sr)
    return;
  zl_sr_unlock(sr);
  if (sr->st.be && sr->st.be_data)
    sr->st.be->sr_close(&sr->st);
  if (sr->lockfd >= 0)
    close(sr->lockfd);
  if (sr->st.privfd >= 0)
    close(sr->st.privfd);
  if (sr->st.statefd >= 0)
    close(sr->st.statefd);
  if (sr->st.dirfd >= 0)
    close(sr->st.dirfd);
  json_decref(sr->info);
  free(sr->st.key);
  free(sr);
}

/* Open storage and private area, without requiring sr.json. */
struct zl_sr *
zl_sr_open_storage(const struct zl_backend *be, const char *key)
{
  struct zl_sr *sr;

  if (!be->sr_key_valid(key)) {
    zl_error_kind(ZL_ERR_NO_SR, EINVAL, "'%s' is not a valid %s SR", key, be->sr_type);
    zl_error_subject(key);
    return NULL;
  }
  if (!(sr = sr_new(be, key)))
    return NULL;
  if (be->sr_open(&sr->st) == -1) {
    if (errno == ENOENT || errno == ENOTDIR)
      zl_error_kind(ZL_ERR_NO_SR, ENOENT, "%s SR %s does not exist", be->sr_type, key);
    zl_error_subject(key);
    zl_sr_close(sr);
    return NULL;
  }
  if (sr->st.statefd < 0 &&
      (sr->st.statefd = fcntl(sr->st.privfd, F_DUPFD_CLOEXEC, 0)) == -1) {
    zl_error_sys(errno, "SR %s", key);
    zl_sr_close(sr);
    return NULL;
  }
  return sr;
}

/* Where runtime state lives apart from the private area (host-local
 * backends), sr.json is copied there: every call reads it, and reading the
 * storage's copy can cost a round trip (FUSE) where the runtime copy does
 * not.  Changes write the storage's copy first, then the runtime one. */
bool
zl_sr_state_apart(const struct zl_sr *sr)
{
  struct stat a, b;
  return fstat(sr->st.privfd, &a) == 0 && fstat(sr->st.statefd, &b) == 0 &&
         (a.st_dev != b.st_dev || a.st_ino != b.st_ino);
}

int
zl_sr_save_info(struct zl_sr *sr, const json_t *info)
{
  CLEANUP_CLOSE int scratch = zl_store_scratch_for(&sr->st, sr->st.privfd);
  if (scratch == -1 ||
      zl_json_save_via(scratch, sr->st.privfd, ZL_SR_INFO, info, true) == -1)
    return -1;
  if (zl_sr_state_apart(sr) &&
      zl_json_save_at(sr->st.statefd, ZL_SR_INFO, info, false) == -1)
    return -1;
  return 0;
}

int
zl_sr_load_info(struct zl_sr *sr)
{
  json_decref(sr->info);
  sr->info = zl_json_load_at(sr->st.statefd, ZL_SR_INFO, 1 << 20);
  if (!sr->info && zl_sr_state_apart(sr)) {
    sr->info = zl_json_load_at(sr->st.privfd, ZL_SR_INFO, 1 << 20);
    if (sr->info && zl_json_save_at(sr->st.statefd, ZL_SR_INFO, sr->info, false) == -1)
      zl_warn("SR %s: cannot cache %s: %s", sr->st.key, ZL_SR_INFO, zl_error_msg());
  }
  if (!sr->info) {
    if (errno == ENOENT)
      zl_error_kind(ZL_ERR_NO_SR, ENOENT, "%s SR %s does not exist", sr->st.be->sr_type,
                    sr->st.key);
    zl_error_subject(sr->st.key);
    return -1;
  }
  const char *type = zl_meta_str(sr->info, "type");
  if (!type || strcmp(type, sr->st.be->sr_type) != 0) {
    zl_error_kind(ZL_ERR_NO_SR, EINVAL, "%s is a %s SR, not a %s SR", sr->st.key,
                  type ? type : "corrupt", sr->st.be->sr_type);
    zl_error_subject(sr->st.key);
    return -1;
  }
  return 0;
}

struct zl_sr *
zl_sr_open_handle(const char *type, const char *sr_key)
{
  const struct zl_backend *be;
  struct zl_sr *sr;

  if (!type && !(type = zl_sr_type_of_key(sr_key))) {
    zl_error_kind(ZL_ERR_NO_SR, EINVAL, "'%s' does not name an SR of any known type",
                  sr_key);
    zl_error_subject(sr_key);
    return NULL;
  }
  if (!(be = zl_backend_or_error(type)) || !(sr = zl_sr_open_storage(be, sr_key)))
    return NULL;
  if (zl_sr_load_info(sr) == -1) {
    zl_sr_close(sr);
    return NULL;
  }
  return sr;
}

const char *
zl_sr_key(const struct zl_sr *sr)
{
  return sr->st.key;
}

const char *
zl_sr_type(const struct zl_sr *sr)
{
  return sr->st.be->sr_type;
}

bool
zl_sr_thick_default(const struct zl_sr *sr)
{
  const char *p = zl_meta_str(sr->info, "provisioning");
  return p && strcmp(p, "thick") == 0;
}
