/* smapi-oracle.c: what a successful SMAPIv3 call must have done, asked of
 * the plugin itself with follow-up calls (see smapi-oracle.h). */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "fuzz/smapi-oracle.h"

#include "util/banned.h" /* last: after every declaration */

static char why[512];

#define BAD(...) (snprintf(why, sizeof why, __VA_ARGS__), why)

static smapi_oracle_call call;

/* A follow-up call on the SR of params; its reply (new reference) and exit
 * status. */
static json_t *
follow(const char *method, const json_t *params, const char *k1, json_t *v1, int *rc)
{
  json_t *p =
      json_pack("{s:s, s:O}", "dbg", "oracle", "sr", json_object_get(params, "sr"));
  if (k1)
    json_object_set_new(p, k1, v1);
  json_t *r = call(method, p, rc);
  json_decref(p);
  return r;
}

static json_t *
stat_of(const json_t *params, json_t *key, int *rc)
{
  return follow("Volume.stat", params, "key", json_incref(key), rc);
}

/* Records equal but for what the storage may change on its own. */
static bool
same_volume(const json_t *a, const json_t *b)
{
  json_t *x = json_deep_copy(a), *y = json_deep_copy(b);
  json_object_del(x, "physical_utilisation");
  json_object_del(y, "physical_utilisation");
  bool eq = json_equal(x, y);
  json_decref(x);
  json_decref(y);
  return eq;
}

#define FIELD(o, k) json_object_get((o), (k))

/* Volume.create, snapshot, clone: the record is what stat says, with what
 * was asked. */
static const char *
made(const char *method, const json_t *params, const json_t *result)
{
  int rc;
  json_t *st = stat_of(params, FIELD(result, "key"), &rc);
  const char *e = NULL;

  if (rc != 0 || !same_volume(st, result))
    e = BAD("%s: Volume.stat of the new volume differs from the reply", method);
  else if (!strcmp(method, "Volume.create") &&
           (!json_equal(FIELD(result, "name"), FIELD(params, "name")) ||
            !json_equal(FIELD(result, "description"), FIELD(params, "description")) ||
            !json_equal(FIELD(result, "sharable"), FIELD(params, "sharable")) ||
            json_integer_value(FIELD(result, "virtual_size")) <
                json_integer_value(FIELD(params, "size")) ||
            !json_is_true(FIELD(result, "read_write"))))
    e = BAD("Volume.create: the volume is not what was asked");
  else if (!strcmp(method, "Volume.snapshot") &&
           !json_is_false(FIELD(result, "read_write")))
    e = BAD("Volume.snapshot: a writable snapshot");
  else if (!strcmp(method, "Volume.clone") && !json_is_true(FIELD(result, "read_write")))
    e = BAD("Volume.clone: a read-only clone");
  json_decref(st);
  return e;
}

/* Volume.set_name, set_description, set, unset, resize, enable_cbt,
 * disable_cbt: stat shows it. */
static const char *
changed(const char *method, const json_t *params)
{
  int rc;
  json_t *st = stat_of(params, FIELD(params, "key"), &rc);
  json_t *keys = FIELD(st, "keys");
  const char *k = json_string_value(FIELD(params, "k"));
  bool ok = rc == 0;

  if (!ok)
    ;
  else if (!strcmp(method, "Volume.set_name"))
    ok = json_equal(FIELD(st, "name"), FIELD(params, "new_name"));
  else if (!strcmp(method, "Volume.set_description"))
    ok = json_equal(FIELD(st, "description"), FIELD(params, "new_description"));
  else if (!strcmp(method, "Volume.set"))
    ok = k && json_equal(FIELD(keys, k), FIELD(params, "v"));
  else if (!strcmp(method, "Volume.unset"))
    ok = k && !FIELD(keys, k);
  else if (!strcmp(method, "Volume.resize"))
    ok = json_integer_value(FIELD(st, "virtual_size")) >=
         json_integer_value(FIELD(params, "new_size"));
  else if (!strcmp(method, "Volume.enable_cbt"))
    ok = json_is_true(FIELD(st, "cbt_enabled"));
  else if (!strcmp(method, "Volume.disable_cbt"))
    ok = json_is_false(FIELD(st, "cbt_enabled"));
  json_decref(st);
  return ok ? NULL : BAD("%s succeeded but Volume.stat does not show it", method);
}

static const char *
destroyed(const json_t *params)
{
  int rc;
  json_t *st = stat_of(params, FIELD(params, "key"), &rc);
  const char *kind = json_string_value(json_array_get(FIELD(st, "params"), 0));
  bool ok = rc == 1 && kind && !strcmp(kind, "Volume_does_not_exist");

  json_decref(st);
  return ok ? NULL : BAD("Volume.destroy succeeded but the volume is still there");
}

static const char *
sr_changed(const char *method, const json_t *params)
{
  int rc;
  json_t *st = follow("SR.stat", params, NULL, NULL, &rc);
  bool ok = rc == 0 && (!strcmp(method, "SR.set_name")
                            ? json_equal(FIELD(st, "name"), FIELD(params, "new_name"))
                            : json_equal(FIELD(st, "description"),
                                         FIELD(params, "new_description")));

  json_decref(st);
  return ok ? NULL : BAD("%s succeeded but SR.stat does not show it", method);
}

/* SR.create: the configuration it returns attaches to an SR with the uuid
 * and name asked for. */
static const char *
sr_made(const json_t *params, const json_t *result)
{
  int rc;
  json_t *p = json_pack("{s:s, s:O}", "dbg", "oracle", "configuration", result);
  json_t *key = call("SR.attach", p, &rc);
  const char *e = NULL;

  json_decref(p);
  if (rc != 0 || !json_is_string(key)) {
    e = BAD("SR.create: its configuration does not attach");
  } else {
    p = json_pack("{s:s, s:O}", "dbg", "oracle", "sr", key);
    json_t *st = call("SR.stat", p, &rc);
    if (rc != 0 || !json_equal(FIELD(st, "uuid"), FIELD(params, "uuid")) ||
        !json_equal(FIELD(st, "name"), FIELD(params, "name")) ||
        !json_equal(FIELD(st, "description"), FIELD(params, "description")))
      e = BAD("SR.create: SR.stat of the new SR is not what was asked");
    json_decref(st);
    json_decref(p);
  }
  json_decref(key);
  return e;
}

const char *
smapi_oracle(const char *method, const json_t *params, const json_t *result,
             smapi_oracle_call fn)
{
  call = fn;
  if (!strcmp(method, "Volume.create") || !strcmp(method, "Volume.snapshot") ||
      !strcmp(method, "Volume.clone"))
    return made(method, params, result);
  if (!strcmp(method, "Volume.stat"))
    return json_equal(FIELD(result, "key"), FIELD(params, "key"))
               ? NULL
               : BAD("Volume.stat: another volume's record");
  if (!strcmp(method, "Volume.set_name") || !strcmp(method, "Volume.set_description") ||
      !strcmp(method, "Volume.set") || !strcmp(method, "Volume.unset") ||
      !strcmp(method, "Volume.resize") || !strcmp(method, "Volume.enable_cbt") ||
      !strcmp(method, "Volume.disable_cbt"))
    return changed(method, params);
  if (!strcmp(method, "Volume.destroy"))
    return destroyed(params);
  if (!strcmp(method, "SR.set_name") || !strcmp(method, "SR.set_description"))
    return sr_changed(method, params);
  if (!strcmp(method, "SR.create"))
    return sr_made(params, result);
  return NULL;
}
