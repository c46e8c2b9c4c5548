/* smapi-check.c: what a reply of the SMAPIv3 plugin must look like, for
 * the fuzzer (fuzz-smapi.c).  The same rules as tests/integration/v5.py:
 * xapi-storage-script parses stdout strictly as one JSON value and
 * unmarshals it with rpclib (reference smapiv3.md 1.5-1.7, 2): required
 * fields present with exact types, no null inside a result (optional
 * fields are omitted), string maps are objects of strings, an error is
 * exactly {code, params, backtrace}.  Each check returns NULL or a
 * description of what is wrong (static storage). */
#include <nettle/base64.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/smapi-check.h"

#include "util/banned.h" /* last: after every declaration */

static char why[512];

#define BAD(...) (snprintf(why, sizeof why, __VA_ARGS__), why)

static bool
is_strmap(const json_t *v)
{
  const char *k;
  json_t *x;

  if (!json_is_object(v))
    return false;
  json_object_foreach((json_t *)v, k, x)
  {
    if (!json_is_string(x))
      return false;
  }
  return true;
}

static bool
is_strlist(const json_t *v)
{
  size_t i;
  json_t *x;

  if (!json_is_array(v))
    return false;
  json_array_foreach(v, i, x)
  {
    if (!json_is_string(x))
      return false;
  }
  return true;
}

static bool
has_null(const json_t *v)
{
  const char *k;
  size_t i;
  json_t *x;

  if (json_is_null(v))
    return true;
  if (json_is_object(v)) {
    json_object_foreach((json_t *)v, k, x)
    {
      if (has_null(x))
        return true;
    }
  } else if (json_is_array(v)) {
    json_array_foreach(v, i, x)
    {
      if (has_null(x))
        return true;
    }
  }
  return false;
}

enum type { T_STR, T_INT, T_BOOL, T_STRMAP, T_STRLIST, T_HEALTH, T_VOLTYPE };

struct field {
  const char *name;
  enum type type;
  bool required;
};

static bool
type_ok(const json_t *v, enum type t)
{
  switch (t) {
  case T_STR:
    return json_is_string(v);
  case T_INT:
    return json_is_integer(v);
  case T_BOOL:
    return json_is_boolean(v);
  case T_STRMAP:
    return is_strmap(v);
  case T_STRLIST:
    return is_strlist(v);
  case T_HEALTH: {
    const char *tag = json_string_value(json_array_get(v, 0));
    return json_array_size(v) == 2 && tag && json_is_string(json_array_get(v, 1)) &&
           (!strcmp(tag, "Healthy") || !strcmp(tag, "Recovering") ||
            !strcmp(tag, "Unreachable") || !strcmp(tag, "Unavailable"));
  }
  case T_VOLTYPE: {
    const char *s = json_string_value(v);
    return s && (!strcmp(s, "Data") || !strcmp(s, "CBT_Metadata") ||
                 !strcmp(s, "Data_and_CBT_Metadata"));
  }
  }
  return false;
}

static const char *
record(const json_t *v, const struct field *fields, const char *what)
{
  if (!json_is_object(v))
    return BAD("%s is not an object", what);
  if (has_null(v))
    return BAD("%s holds a null", what);
  for (const struct field *f = fields; f->name; f++) {
    json_t *x = json_object_get(v, f->name);
    if (!x && f->required)
      return BAD("%s: required field %s is missing", what, f->name);
    if (x && !type_ok(x, f->type))
      return BAD("%s: field %s has the wrong type", what, f->name);
  }
  return NULL;
}

static const struct field volume_fields[] = {
    {"key", T_STR, true},
    {"name", T_STR, true},
    {"description", T_STR, true},
    {"read_write", T_BOOL, true},
    {"sharable", T_BOOL, true},
    {"virtual_size", T_INT, true},
    {"physical_utilisation", T_INT, true},
    {"uri", T_STRLIST, true},
    {"keys", T_STRMAP, true},
    {"uuid", T_STR, false},
    {"volume_type", T_VOLTYPE, false},
    {"cbt_enabled", T_BOOL, false},
    {NULL, 0, false},
};

static const struct field sr_stat_fields[] = {
    {"sr", T_STR, true},          {"name", T_STR, true},
    {"description", T_STR, true}, {"free_space", T_INT, true},
    {"total_space", T_INT, true}, {"datasources", T_STRLIST, true},
    {"clustered", T_BOOL, true},  {"health", T_HEALTH, true},
    {"uuid", T_STR, false},       {NULL, 0, false},
};

static const struct field query_fields[] = {
    {"plugin", T_STR, true},
    {"name", T_STR, true},
    {"description", T_STR, true},
    {"vendor", T_STR, true},
    {"copyright", T_STR, true},
    {"version", T_STR, true},
    {"required_api_version", T_STR, true},
    {"features", T_STRLIST, true},
    {"configuration", T_STRMAP, true},
    {"required_cluster_stack", T_STRLIST, true},
    {NULL, 0, false},
};

static const struct field probe_fields[] = {
    {"configuration", T_STRMAP, true},
    {"complete", T_BOOL, true},
    {"extra_info", T_STRMAP, true},
    {NULL, 0, false},
};

static const char *
volume(const json_t *v)
{
  const char *e = record(v, volume_fields, "volume");
  if (e)
    return e;
  if (json_integer_value(json_object_get(v, "virtual_size")) < 0 ||
      json_integer_value(json_object_get(v, "physical_utilisation")) < 0)
    return BAD("volume: a negative size");
  if (json_array_size(json_object_get(v, "uri")) == 0)
    return BAD("volume: no uri (no datapath could be chosen)");
  return NULL;
}

static const char *
probe_result(const json_t *v)
{
  const char *e = record(v, probe_fields, "probe_result");
  if (e)
    return e;
  json_t *sr = json_object_get(v, "sr");
  if (sr && (e = record(sr, sr_stat_fields, "probe_result.sr")))
    return e;
  bool uuid = json_object_get(json_object_get(v, "configuration"), "sr_uuid");
  if (json_is_false(json_object_get(v, "complete")) && uuid)
    return BAD("probe_result: incomplete with an sr_uuid");
  if (sr && !uuid)
    return BAD("probe_result: an sr without sr_uuid");
  return NULL;
}

/* {"granularity": 65536, "bitmap": base64}; Xen Orchestra reads the bitmap
 * as 32-bit words */
static const char *
cbt_bitmap(const json_t *v)
{
  const char *b64 = json_string_value(json_object_get(v, "bitmap"));

  if (!json_is_object(v) || json_object_size(v) != 2 ||
      json_integer_value(json_object_get(v, "granularity")) != 65536 || !b64)
    return BAD("changed blocks: not {granularity: 65536, bitmap: string}");
  size_t len = strlen(b64), n = BASE64_DECODE_LENGTH(len);
  uint8_t *out = malloc(n ? n : 1);
  struct base64_decode_ctx ctx;
  base64_decode_init(&ctx);
  bool ok =
      out && base64_decode_update(&ctx, &n, out, len, b64) && base64_decode_final(&ctx);
  free(out);
  if (!ok)
    return BAD("changed blocks: the bitmap is not base64");
  if (n % 4)
    return BAD("changed blocks: %zu bytes, not whole 32-bit words", n);
  return NULL;
}

/* {"blocksize": n, "ranges": [[start, length], ...]}, in order, apart */
static const char *
blocklist(const json_t *v)
{
  json_t *ranges = json_object_get(v, "ranges"), *r;
  json_int_t end = 0;
  size_t i;

  if (!json_is_object(v) || json_integer_value(json_object_get(v, "blocksize")) <= 0 ||
      !json_is_array(ranges))
    return BAD("blocklist: not {blocksize, ranges}");
  json_array_foreach(ranges, i, r)
  {
    json_t *s = json_array_get(r, 0), *l = json_array_get(r, 1);
    if (json_array_size(r) != 2 || !json_is_integer(s) || !json_is_integer(l))
      return BAD("blocklist: range %zu is not [int, int]", i);
    if (json_integer_value(s) < end || json_integer_value(l) <= 0)
      return BAD("blocklist: range %zu out of order or empty", i);
    end = json_integer_value(s) + json_integer_value(l);
  }
  return NULL;
}

static const struct {
  const char *method;
  enum shape shape;
} shapes[] = {
    {"Plugin.Query", S_QUERY},
    {"Plugin.diagnostics", S_STRING},
    {"SR.probe", S_PROBE},
    {"SR.create", S_CONFIG},
    {"SR.attach", S_STRING},
    {"SR.detach", S_UNIT},
    {"SR.destroy", S_UNIT},
    {"SR.stat", S_SR_STAT},
    {"SR.set_name", S_UNIT},
    {"SR.set_description", S_UNIT},
    {"SR.ls", S_VOLUMES},
    {"Volume.create", S_VOLUME},
    {"Volume.snapshot", S_VOLUME},
    {"Volume.clone", S_VOLUME},
    {"Volume.destroy", S_UNIT},
    {"Volume.set_name", S_UNIT},
    {"Volume.set_description", S_UNIT},
    {"Volume.set", S_UNIT},
    {"Volume.unset", S_UNIT},
    {"Volume.resize", S_UNIT},
    {"Volume.stat", S_VOLUME},
    {"Volume.revert", S_UNIT},
    {"Volume.enable_cbt", S_UNIT},
    {"Volume.disable_cbt", S_UNIT},
    {"Volume.data_destroy", S_UNIT},
    {"Volume.list_changed_blocks", S_CBT_BITMAP},
    {"Volume.compare", S_BLOCKLIST},
    {"Datapath.open", S_UNIT},
    {"Datapath.attach", S_ANY},
    {"Datapath.activate", S_UNIT},
    {"Datapath.activate_readonly", S_UNIT},
    {"Datapath.deactivate", S_UNIT},
    {"Datapath.detach", S_UNIT},
    {"Datapath.close", S_UNIT},
};

enum shape
smapi_check_shape_of(const char *method)
{
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    if (strcmp(shapes[i].method, method) == 0)
      return shapes[i].shape;
  }
  return S_UNKNOWN;
}

const char *
smapi_check_result(enum shape shape, const json_t *v)
{
  size_t i;
  json_t *x;
  const char *e;

  if (shape == S_UNIT)
    return json_is_null(v) ? NULL : BAD("a unit method did not return null");
  if (has_null(v))
    return BAD("the result holds a null (optional fields are omitted)");
  switch (shape) {
  case S_STRING:
    return json_is_string(v) ? NULL : BAD("not a string");
  case S_CONFIG:
    if (!is_strmap(v) || !json_object_get(v, "sr_uuid"))
      return BAD("SR.create: not a configuration with sr_uuid");
    return NULL;
  case S_QUERY:
    return record(v, query_fields, "query_result");
  case S_SR_STAT:
    return record(v, sr_stat_fields, "sr_stat");
  case S_VOLUME:
    return volume(v);
  case S_VOLUMES:
    if (!json_is_array(v))
      return BAD("SR.ls: not an array");
    json_array_foreach(v, i, x)
    {
      if ((e = volume(x)))
        return e;
    }
    return NULL;
  case S_PROBE:
    if (!json_is_array(v))
      return BAD("SR.probe: not an array");
    json_array_foreach(v, i, x)
    {
      if ((e = probe_result(x)))
        return e;
    }
    return NULL;
  case S_CBT_BITMAP:
    return cbt_bitmap(v);
  case S_BLOCKLIST:
    return blocklist(v);
  default:
    return NULL;
  }
}

const char *
smapi_check_error(const json_t *v)
{
  json_t *params = json_object_get(v, "params"), *bt = json_object_get(v, "backtrace");
  const char *code = json_string_value(json_object_get(v, "code"));
  const char *kind = json_string_value(json_array_get(params, 0));
  const char *msg = json_string_value(json_array_get(params, 1));

  if (!json_is_object(v) || json_object_size(v) != 3 || !code || !*code ||
      !is_strlist(params) || !json_is_object(bt))
    return BAD("the error is not exactly {code, params: [string], backtrace}");
  if (json_object_size(bt) != 3 || !json_is_string(json_object_get(bt, "error")) ||
      !is_strlist(json_object_get(bt, "files")) ||
      !json_is_array(json_object_get(bt, "lines")))
    return BAD("the backtrace is not exactly {error, files: [string], lines: [int]}");
  json_t *lines = json_object_get(bt, "lines"), *l;
  size_t i;
  json_array_foreach(lines, i, l)
  {
    if (!json_is_integer(l))
      return BAD("backtrace.lines holds a non-integer");
  }
  if (strncmp(code, "SR_BACKEND_FAILURE", 18) != 0)
    return BAD("error code %s is not an SR_BACKEND_FAILURE", code);
  /* [kind, message]: the kind names the failure, the message says it */
  if (json_array_size(params) != 2 || !kind || !*kind || !msg || !*msg)
    return BAD("the error's params are not [kind, message] with both non-empty");
  if (!strcmp(kind, "None"))
    return BAD("an error reply without an error (kind None)");
  return NULL;
}
