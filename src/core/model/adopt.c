/* adopt.c: take an existing raw image into an SR without copying it
 * (Ganeti's file-storage design: reuse existing image files).  The backend
 * does the moving (backend.h vol_adopt); the core validates, picks the
 * identity and serialises with the SR's other changes. */
#include <errno.h>
#include <sys/file.h>
#include <unistd.h>

#include "core/model/model.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/log.h"
#include "util/uuid.h"

#include "util/banned.h" /* last: after every declaration */

int
zl_adopt_recover(struct zl_sr *sr, const char *key, const char *source)
{
  int got = sr->st.be->vol_get(&sr->st, key, NULL, NULL);

  if (got == -1 && errno != ENOENT)
    return -1;
  zl_error_clear();
  if (!sr->st.be->vol_adopt_recover)
    return 0;
  zl_info("recovery: adopt of %s as %s %s", source, key,
          got == 0 ? "was committed; finishing it" : "was not complete; undoing it");
  return sr->st.be->vol_adopt_recover(&sr->st, key, source, got == 0);
}

int
zl_vol_adopt(struct zl_sr *sr, const char *source, const char *key, const char *name,
             const char *description, struct zl_volume *out)
{
  char uuid[ZL_UUID_LEN + 1];
  CLEANUP_JSON json_t *meta = NULL;
  CLEANUP_JSON json_t *rec = NULL;
  struct zl_vol_info info;
  struct zl_intent in;

  if (!source || !*source) {
    zl_error(EINVAL, "adopt: no source given");
    return -1;
  }
  if (zl_check_name(name, "volume name") == -1 ||
      zl_check_description(description, "volume description") == -1 ||
      zl_uuid_generate(uuid) == -1)
    return -1;
  if (!key)
    key = uuid;
  if (zl_check_key(key) == -1)
    return -1;
  if (key != uuid && zl_uuid_valid(key)) /* a volume named by its UUID keeps it */
    snprintf(uuid, sizeof uuid, "%s", key);
  if (!sr->st.be->vol_adopt) {
    zl_error_kind(ZL_ERR_UNSUPPORTED, ENOTSUP, "%s SRs cannot adopt existing images",
                  sr->st.be->sr_type);
    return -1;
  }
  CLEANUP_SR_UNLOCK struct zl_sr *held = zl_sr_hold(sr, LOCK_EX);
  if (!held)
    return -1;
  if (sr->st.be->vol_get(&sr->st, key, NULL, NULL) == 0) {
    zl_error_kind(ZL_ERR_EXISTS, EEXIST, "volume %s already exists in SR %s", key,
                  sr->st.key);
    return -1;
  }
  zl_error_clear();
  meta =
      zl_meta_new(key, uuid, name, description, false, false, ZL_PROV_THIN, NULL, NULL);
  rec = json_pack("{s:s, s:s, s:s}", "op", "adopt", "key", key, "source", source);
  if (!meta || !rec) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  if (zl_intent_begin(sr, rec, &in) == -1) {
    return -1;
  }
  if (sr->st.be->vol_adopt(&sr->st, key, source, meta, &info) == -1) {
    zl_error_prefix("adopt %s: ", source);
    struct zl_error_saved saved;
    zl_error_save(&saved);
    if (zl_adopt_recover(sr, key, source) == 0)
      zl_intent_end(&in);
    else
      close(in.fd); /* the next call undoes what was done */
    zl_error_restore(&saved);
    return -1;
  }
  zl_intent_end(&in);
  zl_info("adopted %s as volume %s (%lld bytes) in SR %s", source, key,
          (long long)info.virtual_size, sr->st.key);
  return zl_meta_to_volume(key, meta, &info, out);
}

/* --- recovery (registered in recover.c) ------------------------------------- */

static int
recover_adopt(struct zl_sr *sr, const json_t *rec, const char *key)
{
  const char *source = zl_meta_str(rec, "source");
  if (!source) {
    zl_error(EINVAL, "adopt record without a source");
    return -1;
  }
  return zl_adopt_recover(sr, key, source);
}

static const struct zl_recovery recoveries[] = {{"adopt", recover_adopt}, {NULL, NULL}};

__attribute__((constructor)) static void
register_recoveries(void)
{
  zl_recover_register(recoveries);
}
