/* sr.c: the SR.* methods.  Translate, call the core, render. */
#include <errno.h>
#include <stdlib.h>

#include "smapi/smapi.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

json_t *
smapi_sr_probe(struct smapi_call *c)
{
  json_t *config, *found, *e, *out;
  size_t i;

  if (smapi_map(c, "configuration", &config) == -1 ||
      !(found = zl_sr_probe(c->sr_type, config)))
    return NULL;
  out = json_array();
  json_array_foreach(found, i, e)
  {
    const char *key = json_string_value(json_object_get(e, "sr"));
    json_t *r =
        json_pack("{s:O, s:O, s:O}", "configuration", json_object_get(e, "configuration"),
                  "complete", json_object_get(e, "complete"), "extra_info",
                  json_object_get(e, "extra_info"));
    if (key) {
      struct zl_sr *sr = zl_sr_open(c->sr_type, key);
      struct zl_sr_stat st;
      if (sr && zl_sr_stat(sr, &st) == 0) {
        json_object_set_new(r, "sr", zl_sr_stat_json(&st));
        zl_sr_stat_free(&st);
      } else {
        /* a complete result needs its sr: report it as a hint instead */
        json_object_set_new(r, "complete", json_false());
        json_object_del(json_object_get(r, "configuration"), "sr_uuid");
      }
      zl_sr_close(sr);
    }
    json_array_append_new(out, r);
  }
  json_decref(found);
  return out;
}

json_t *
smapi_sr_create(struct smapi_call *c)
{
  const char *uuid, *name, *description;
  json_t *config, *out = NULL;

  if (smapi_str(c, "uuid", &uuid) == -1 || smapi_map(c, "configuration", &config) == -1 ||
      smapi_str(c, "name", &name) == -1 ||
      smapi_str(c, "description", &description) == -1)
    return NULL;
  struct zl_platform p;
  char why[512];
  zl_platform_detect(&p);
  if (!zl_platform_supported(&p, why, sizeof why)) { /* say so before making anything */
    zl_error_kind(ZL_ERR_UNSUPPORTED, ENOTSUP, "%s", why);
    return NULL;
  }
  if (zl_sr_create(c->sr_type, uuid, config, name, description, &out) == -1)
    return NULL;
  return out;
}

json_t *
smapi_sr_attach(struct smapi_call *c)
{
  json_t *config;
  CLEANUP_FREE char *key = NULL;

  if (smapi_map(c, "configuration", &config) == -1 ||
      !(key = zl_sr_attach(c->sr_type, config)))
    return NULL;
  return json_string(key);
}

json_t *
smapi_sr_detach(struct smapi_call *c)
{
  const char *sr;

  if (smapi_str(c, "sr", &sr) == -1 || zl_sr_detach(c->sr_type, sr) == -1)
    return NULL;
  return json_null();
}

/* The handlers below run with c->sr open (the SR flag of their rows in
 * commands.c). */

json_t *
smapi_sr_destroy(struct smapi_call *c)
{
  return zl_sr_destroy(c->sr) == 0 ? json_null() : NULL;
}

json_t *
smapi_sr_stat_m(struct smapi_call *c)
{
  struct zl_sr_stat st;

  if (zl_sr_stat(c->sr, &st) == -1)
    return NULL;
  json_t *j = zl_sr_stat_json(&st);
  zl_sr_stat_free(&st);
  return j;
}

static json_t *
set_field(struct smapi_call *c, const char *param,
          int (*fn)(struct zl_sr *, const char *))
{
  const char *value;

  if (smapi_str(c, param, &value) == -1 || fn(c->sr, value) == -1)
    return NULL;
  return json_null();
}

json_t *
smapi_sr_set_name(struct smapi_call *c)
{
  return set_field(c, "new_name", zl_sr_set_name);
}

json_t *
smapi_sr_set_description(struct smapi_call *c)
{
  return set_field(c, "new_description", zl_sr_set_description);
}

json_t *
smapi_sr_ls(struct smapi_call *c)
{
  struct zl_volume *v = NULL;
  size_t n = 0;

  if (zl_sr_ls(c->sr, &v, &n) == -1)
    return NULL;
  struct zl_platform p;
  zl_platform_detect(&p);
  json_t *arr = json_array();
  for (size_t i = 0; arr && i < n; i++) {
    json_t *rec = smapi_volume_record(c, &v[i], &p);
    if (!rec || json_array_append_new(arr, rec) == -1) {
      json_decref(arr);
      arr = NULL;
      zl_error(ENOMEM, "out of memory");
    }
  }
  zl_volume_list_free(v, n);
  return arr;
}
