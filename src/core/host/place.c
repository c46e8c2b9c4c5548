/* place.c: the SR of a place -- an SR type and the device-config that says
 * where (a directory, a parent dataset) -- found, or made by the first use
 * that needs one.  For front ends that address disks by place rather than
 * by SR (Ganeti's EXTP_DIR and EXTP_POOL): what an SR at a place is, how
 * it is found and when one may be made is the core's business. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/model/model.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/log.h"
#include "util/rundir.h"
#include "util/uuid.h"

#include "util/banned.h" /* last: after every declaration */

char *
zl_place_find(const char *type, const json_t *config)
{
  return zl_sr_attach(type, config);
}

int
zl_place_can_make(const char *type, const json_t *config, char **why)
{
  CLEANUP_JSON json_t *probe = zl_sr_probe(type, config);

  *why = NULL;
  if (!probe)
    return -1;
  json_t *last = json_array_get(probe, json_array_size(probe) - 1);
  json_t *extra = json_object_get(last, "extra_info");
  const char *can = json_string_value(json_object_get(extra, "can_create"));
  const char *reason = json_string_value(json_object_get(extra, "reason"));
  if (reason && !(*why = strdup(reason))) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  return can && strcmp(can, "true") == 0;
}

/* Can an SR be made at the place?  An error (NO_SR) saying why not. */
static int
can_create(const char *type, const json_t *config)
{
  CLEANUP_FREE char *why = NULL;
  int r = zl_place_can_make(type, config, &why);

  if (r == 0)
    zl_error_kind(ZL_ERR_NO_SR, ENOENT, "no SR there, and none can be made: %s",
                  why ? why : "unknown reason");
  return r == 1 ? 0 : -1;
}

char *
zl_place_make(const char *type, const json_t *config, const json_t *create_config,
              const char *name, const char *description)
{
  CLEANUP_JSON json_t *out = NULL;
  char uuid[ZL_UUID_LEN + 1];
  char *key;

  /* one first use at a time on this host; a second host racing on a shared
   * directory finds the SR made (SR.create publishes sr.json only once) */
  CLEANUP_CLOSE int lock = zl_run_lock("place-first-use");
  if (lock == -1)
    return NULL;
  if ((key = zl_place_find(type, config)) || zl_error_get_kind() != ZL_ERR_NO_SR)
    return key;
  if (can_create(type, config) == -1 || zl_uuid_generate(uuid) == -1 ||
      zl_sr_create(type, uuid, create_config, name, description, &out) == -1)
    return NULL;
  zl_info("made %s SR %s at its place's first use", type, uuid);
  return zl_sr_attach(type, out);
}
