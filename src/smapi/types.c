/* types.c: core structs -> SMAPIv3 v5 records (reference smapiv3.md §2).
 * int64 as JSON integers, variants as ["Tag", value], optional fields
 * omitted (never null), string maps as objects. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smapi/smapi.h"
#include "util/error.h"

#define VENDOR    "the zfs-live project"
#define COPYRIGHT "Copyright (C) 2026 the zfs-live authors; BSD-2-Clause"

char *
smapi_volume_uri(const char *sr_type, const char *sr_key, const char *key)
{
  char *uri = NULL;

  /* <scheme>://<volume plugin type>/<sr key>|<volume key>, the XCP-ng
   * convention; the datapath plugin for scheme "zfs-live" parses it. */
  if (asprintf(&uri, "zfs-live://%s/%s|%s", sr_type, sr_key, key) < 0)
    return NULL;
  return uri;
}

json_t *
smapi_volume(const struct zl_volume *v, const char *sr_type, const char *sr_key)
{
  char *uri = smapi_volume_uri(sr_type, sr_key, v->key);
  json_t *j;

  if (!uri)
    return NULL;
  j = json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:I, s:I, s:[s], s:O, s:s, s:b}", "key",
                v->key, "uuid", v->uuid, "name", v->name, "description", v->description,
                "read_write", !v->read_only, "sharable", v->sharable, "virtual_size",
                (json_int_t)v->virtual_size, "physical_utilisation",
                (json_int_t)v->physical_utilisation, "uri", uri, "keys", v->keys,
                "volume_type", v->data_destroyed ? "CBT_Metadata" : "Data", "cbt_enabled",
                v->cbt_enabled);
  free(uri);
  if (j && !v->uuid[0]) /* optional; unknown when the metadata is unreadable */
    json_object_del(j, "uuid");
  /* Extra fields: xapi ignores fields the v5 record does not have; the
   * CLI and operators read them. */
  if (j && v->health)
    json_object_set_new(j, "health", json_pack("[s, s]", "Unavailable", v->health));
  if (j && v->storage)
    json_object_set(j, "storage", v->storage);
  json_object_set_new(j, "provisioning",
                      json_string(v->provisioning == ZL_PROV_THICK ? "thick" : "thin"));
  return j;
}

json_t *
smapi_sr_stat(const struct zl_sr_stat *s)
{
  return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:[], s:b, s:[s, s]}", "sr", s->sr,
                   "name", s->name, "uuid", s->uuid, "description", s->description,
                   "free_space", (json_int_t)s->free_space, "total_space",
                   (json_int_t)s->total_space, "datasources", "clustered", 0, "health",
                   s->healthy ? "Healthy" : "Unavailable", s->health_msg);
}

json_t *
smapi_query(enum plugin_kind kind, const char *sr_type)
{
  if (kind == PLUGIN_DATAPATH) {
    json_t *f = json_array();
    for (const struct command *c = commands; c->name; c++) {
      if (c->feature && (c->where & IN_DATAPATH))
        json_array_append_new(f, json_string(c->feature));
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:{}, s:[]}", "plugin",
                     sr_type, "name", "zfs-live datapath", "description",
                     "zfs-live volumes to guests: a local block device for blkback "
                     "(zvol, or a loop device with direct I/O) and an NBD export served "
                     "by zfs-live serve",
                     "vendor", VENDOR, "copyright", COPYRIGHT, "version",
                     ZL_VERSION_STRING, "required_api_version", "5.0", "features", f,
                     "configuration", "required_cluster_stack");
  }
  json_t *features = json_array();
  json_t *extra = zl_sr_type_features(sr_type);
  size_t i;
  json_t *f;

  for (const struct command *c = commands; c->name; c++) {
    if (c->feature && (c->where & (kind == PLUGIN_DATAPATH ? IN_DATAPATH : IN_VOLUME)))
      json_array_append_new(features, json_string(c->feature));
  }
  if (kind == PLUGIN_VOLUME) {
    json_array_foreach(extra, i, f) json_array_append(features, f);
  }
  json_decref(extra);

  return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:[]}", "plugin",
                   sr_type, "name", zl_sr_type_title(sr_type), "description",
                   zl_sr_type_description(sr_type), "vendor", VENDOR, "copyright",
                   COPYRIGHT, "version", ZL_VERSION_STRING, "required_api_version", "5.0",
                   "features", features, "configuration", zl_sr_type_config_help(sr_type),
                   "required_cluster_stack");
}
