/* registry.c: the SR types this binary knows: one table of backends, found
 * by SR type. */
#include <string.h>
#include <strings.h>

#include "backend/backend.h"
#include "core/model/model.h"

#include "util/banned.h" /* last: after every declaration */

static const struct zl_backend *const backends[] = {
    &zl_backend_file,
    &zl_backend_zfs,
};

#define N_BACKENDS (sizeof backends / sizeof backends[0])

const struct zl_backend *
zl_backend_find(const char *sr_type)
{
  if (!sr_type)
    return NULL;
  for (size_t i = 0; i < N_BACKENDS; i++) {
    if (strcasecmp(backends[i]->sr_type, sr_type) == 0)
      return backends[i];
  }
  return NULL;
}

const char *const *
zl_sr_types(void)
{
  static const char *types[N_BACKENDS + 1];

  if (!types[0]) {
    for (size_t i = 0; i < N_BACKENDS; i++)
      types[i] = backends[i]->sr_type;
  }
  return types;
}

bool
zl_sr_type_known(const char *type)
{
  return zl_backend_find(type) != NULL;
}

const char *
zl_sr_type_title(const char *type)
{
  const struct zl_backend *be = zl_backend_find(type);
  return be ? be->title : NULL;
}

const char *
zl_sr_type_description(const char *type)
{
  const struct zl_backend *be = zl_backend_find(type);
  return be ? be->description : NULL;
}

json_t *
zl_sr_type_config_help(const char *type)
{
  const struct zl_backend *be = zl_backend_find(type);
  return be ? be->config_help() : json_object();
}

json_t *
zl_sr_type_features(const char *type)
{
  const struct zl_backend *be = zl_backend_find(type);
  return be && be->features ? be->features() : json_array();
}

const char *
zl_sr_type_of_key(const char *sr_key)
{
  /* Several types key SRs by path: the SR's own sr.json tells which. */
  for (size_t i = 0; i < N_BACKENDS; i++) {
    if (backends[i]->sr_key_valid(sr_key) &&
        zl_sr_key_type_is(sr_key, backends[i]->sr_type))
      return backends[i]->sr_type;
  }
  return NULL;
}

json_t *
zl_host_report(const char *arg)
{
  json_t *out = json_object();

  for (size_t i = 0; out && i < N_BACKENDS; i++) {
    if (!backends[i]->host_report)
      continue;
    json_t *rep = backends[i]->host_report(arg);
    if (!rep) {
      json_decref(out);
      return NULL;
    }
    json_object_set_new(out, backends[i]->sr_type, rep);
  }
  return out;
}
