/* record.c: the core's records as JSON: the shapes of SMAPIv3's v5
 * records (reference smapiv3.md §2), which XAPI reads and the CLI's --json
 * prints.  int64 as JSON integers, variants as ["Tag", value], optional
 * fields omitted (never null), string maps as objects. */
#include <stdio.h>
#include <stdlib.h>

#include "core/core.h"

#include "util/banned.h" /* last: after every declaration */

char *
zl_volume_uri(const char *sr_type, const char *sr_key, const char *key)
{
  char *uri = NULL;

  /* <scheme>://<volume plugin type>/<sr key>|<volume key>, the XCP-ng
   * convention; the datapath plugin for scheme "zfs-live" parses it. */
  if (asprintf(&uri, "zfs-live://%s/%s|%s", sr_type, sr_key, key) < 0)
    return NULL;
  return uri;
}

json_t *
zl_volume_json(const struct zl_volume *v, const char *sr_type, const char *sr_key)
{
  char *uri = zl_volume_uri(sr_type, sr_key, v->key);
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
zl_volume_json_xapi(const struct zl_volume *v, const char *sr_type, const char *sr_key,
                    bool snapshots_read_write)
{
  json_t *j = zl_volume_json(v, sr_type, sr_key);

  /* CA-431606: a daemon without the fix refuses cross-pool migration of
   * read-only snapshots (VDI_READONLY).  Reported read_write as the Citrix
   * COW plugins do; the data stays read-only (the datapath exports
   * snapshots read-only whatever xapi asks). */
  if (j && snapshots_read_write && v->read_only && v->snapshot_of)
    json_object_set_new(j, "read_write", json_true());
  return j;
}

json_t *
zl_sr_stat_json(const struct zl_sr_stat *s)
{
  return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:[], s:b, s:[s, s]}", "sr", s->sr,
                   "name", s->name, "uuid", s->uuid, "description", s->description,
                   "free_space", (json_int_t)s->free_space, "total_space",
                   (json_int_t)s->total_space, "datasources", "clustered", s->clustered,
                   "health", s->healthy ? "Healthy" : "Unavailable", s->health_msg);
}
