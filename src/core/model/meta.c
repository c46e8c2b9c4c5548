/* meta.c: the metadata object the core keeps with each volume.
 *
 * Schema (format 1), stored by the backend with the volume's storage:
 *   {"format": 1, "key": k, "uuid": u, "name": n, "description": d,
 *    "sharable": bool, "read_only": bool, "provisioning": "thin"|"thick",
 *    "snapshot_of": k?, "clone_of": k?, "created": "RFC 3339",
 *    "hidden": bool?, "keys": {string: string}}
 * Sizes are not stored: the storage is the source of truth for them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/model/model.h"
#include "util/error.h"
#include "util/json.h"
#include "util/uuid.h"

#include "util/banned.h" /* last: after every declaration */

#define META_FORMAT 1

static void
now_rfc3339(char *buf, size_t len)
{
  time_t t = time(NULL);
  struct tm tm;

  gmtime_r(&t, &tm);
  strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

json_t *
zl_meta_new(const char *key, const char *uuid, const char *name, const char *description,
            bool sharable, bool read_only, enum zl_provisioning prov,
            const char *snapshot_of, const char *clone_of)
{
  char created[32];
  json_t *m;

  now_rfc3339(created, sizeof created);
  m = json_pack("{s:i, s:s, s:s, s:s, s:s, s:b, s:b, s:s, s:s, s:{}}", "format",
                META_FORMAT, "key", key, "uuid", uuid, "name", name, "description",
                description, "sharable", sharable, "read_only", read_only, "provisioning",
                prov == ZL_PROV_THICK ? "thick" : "thin", "created", created, "keys");
  if (!m) {
    zl_error(ENOMEM, "out of memory");
    return NULL;
  }
  if (snapshot_of)
    json_object_set_new(m, "snapshot_of", json_string(snapshot_of));
  if (clone_of)
    json_object_set_new(m, "clone_of", json_string(clone_of));
  return m;
}

const char *
zl_meta_str(const json_t *meta, const char *field)
{
  return json_string_value(json_object_get(meta, field));
}

const char *
zl_meta_broken(const json_t *meta)
{
  return zl_meta_str(meta, ZL_META_BROKEN);
}

int
zl_meta_broken_error(const char *key, const json_t *meta)
{
  zl_error_kind(ZL_ERR_DAMAGED, EUCLEAN,
                "volume %s cannot be used: its metadata cannot be read (%s); it is kept "
                "as it is, and nothing is done with it until an operator repairs or "
                "removes it (zfs-live(8), UNREADABLE METADATA)",
                key, zl_meta_broken(meta));
  zl_error_subject(key);
  return -1;
}

/* A volume whose metadata cannot be read: listed with its health, its
 * sizes from the storage, read-only, under its key. */
static int
broken_to_volume(const char *key, const json_t *meta, const struct zl_vol_info *info,
                 struct zl_volume *out)
{
  const char *why = zl_meta_broken(meta);

  out->key = strdup(key);
  out->uuid = strdup(zl_uuid_valid(key) ? key : "");
  out->name = strdup(key);
  if (asprintf(&out->description, "metadata unreadable: %s", why) < 0)
    out->description = NULL;
  out->health = strdup(why);
  out->read_only = true;
  out->virtual_size = info->virtual_size;
  out->physical_utilisation = info->physical_utilisation;
  out->keys = json_object();
  if (!out->key || !out->uuid || !out->name || !out->description || !out->health ||
      !out->keys) {
    zl_volume_free(out);
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  return 0;
}

bool
zl_meta_hidden(const json_t *meta)
{
  return json_is_true(json_object_get(meta, "hidden")) || zl_meta_transient(meta);
}

int
zl_meta_receiving_error(const char *key, const json_t *meta)
{
  json_t *r = json_object_get(meta, "replica");
  const char *host = json_string_value(json_object_get(r, "host"));

  if (!json_object_get(meta, ZL_META_RECEIVING))
    return 0;
  zl_error_kind(ZL_ERR_BUSY, EBUSY,
                "volume %s is a replica taking changes from host %s: try again when the "
                "replication has finished",
                key, host ? host : "?");
  zl_error_subject(key);
  return -1;
}

bool
zl_meta_transient(const json_t *meta)
{
  return json_is_true(json_object_get(meta, ZL_META_TRANSIENT));
}

bool
zl_meta_read_only(const json_t *meta)
{
  return json_is_true(json_object_get(meta, "read_only"));
}

bool
zl_meta_thick(const json_t *meta)
{
  const char *p = zl_meta_str(meta, "provisioning");
  return p && strcmp(p, "thick") == 0;
}

static char *
dup_or_null(const char *s)
{
  return s ? strdup(s) : NULL;
}

int
zl_meta_to_volume(const char *key, const json_t *meta, const struct zl_vol_info *info,
                  struct zl_volume *out)
{
  json_t *fmt = json_object_get(meta, "format");
  json_t *keys = json_object_get(meta, "keys");
  const char *name = zl_meta_str(meta, "name");
  const char *uuid = zl_meta_str(meta, "uuid");

  memset(out, 0, sizeof *out);
  if (zl_meta_broken(meta))
    return broken_to_volume(key, meta, info, out);
  if (!json_is_integer(fmt) || json_integer_value(fmt) != META_FORMAT || !name || !uuid ||
      !zl_json_is_strmap(keys)) {
    zl_error(EINVAL, "volume %s: metadata is not in format %d", key, META_FORMAT);
    return -1;
  }
  out->key = strdup(key);
  out->uuid = strdup(uuid);
  out->name = strdup(name);
  out->description = dup_or_null(zl_meta_str(meta, "description"));
  if (!out->description)
    out->description = strdup("");
  out->read_only = zl_meta_read_only(meta);
  out->sharable = json_is_true(json_object_get(meta, "sharable"));
  out->provisioning = zl_meta_thick(meta) ? ZL_PROV_THICK : ZL_PROV_THIN;
  out->virtual_size = info->virtual_size;
  out->physical_utilisation = info->physical_utilisation;
  out->snapshot_of = dup_or_null(zl_meta_str(meta, "snapshot_of"));
  out->clone_of = dup_or_null(zl_meta_str(meta, "clone_of"));
  out->created = dup_or_null(zl_meta_str(meta, "created"));
  out->keys = json_deep_copy(keys);
  out->cbt_enabled = zl_meta_cbt(meta);
  out->data_destroyed = zl_meta_data_destroyed(meta);
  out->storage = json_deep_copy(json_object_get(meta, ZL_META_STORAGE));
  if (!out->key || !out->uuid || !out->name || !out->description || !out->keys) {
    zl_volume_free(out);
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  return 0;
}

void
zl_volume_free(struct zl_volume *v)
{
  if (!v)
    return;
  free(v->key);
  free(v->uuid);
  free(v->name);
  free(v->description);
  free(v->snapshot_of);
  free(v->clone_of);
  free(v->created);
  json_decref(v->keys);
  json_decref(v->storage);
  free(v->health);
  memset(v, 0, sizeof *v);
}

void
zl_volume_list_free(struct zl_volume *v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    zl_volume_free(&v[i]);
  free(v);
}

bool
zl_meta_cbt(const json_t *meta)
{
  return json_is_true(json_object_get(meta, "cbt"));
}

bool
zl_meta_data_destroyed(const json_t *meta)
{
  return json_is_true(json_object_get(meta, "data_destroyed"));
}
