/* test-rpc.c: the SMAPIv3 rendering: error objects, records, Query. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "commands.h"
#include "smapi/smapi.h"
#include "util/error.h"
#include "util/json.h"

static void
check_error(const char *code, const char *p0, const char *p1)
{
  json_t *e = smapi_error_object();
  assert_non_null(e);
  assert_int_equal(json_object_size(e), 3);
  assert_string_equal(json_string_value(json_object_get(e, "code")), code);
  json_t *params = json_object_get(e, "params");
  assert_string_equal(json_string_value(json_array_get(params, 0)), p0);
  if (p1)
    assert_string_equal(json_string_value(json_array_get(params, 1)), p1);
  json_t *bt = json_object_get(e, "backtrace");
  assert_true(json_is_string(json_object_get(bt, "error")));
  assert_true(json_is_array(json_object_get(bt, "files")));
  assert_true(json_is_array(json_object_get(bt, "lines")));
  json_decref(e);
}

static void
test_error_objects(void **state)
{
  (void)state;
  zl_error_kind(ZL_ERR_SIZE, EINVAL, "shrinking not allowed");
  check_error("SR_BACKEND_FAILURE_79", "VDI Invalid size", "shrinking not allowed");
  zl_error_kind(ZL_ERR_NO_VOLUME, ENOENT, "volume k does not exist");
  check_error("SR_BACKEND_FAILURE", "Volume_does_not_exist", "volume k does not exist");
  zl_error_kind(ZL_ERR_ACTIVE_ELSEWHERE, EBUSY, "active on host h");
  zl_error_subject("5e9c4a4f-0000-4000-8000-000000000001");
  /* xapi redirects on exactly this pair, whatever the code */
  check_error("SR_BACKEND_FAILURE", "Activated_on_another_host",
              "5e9c4a4f-0000-4000-8000-000000000001");
  zl_error(EBUSY, "in use");
  check_error("SR_BACKEND_FAILURE_24", "VDIInUse", "in use");
  zl_error(EIO, "disk on fire");
  check_error("SR_BACKEND_FAILURE", "Internal_error", "disk on fire");
  zl_error_clear();
  check_error("SR_BACKEND_FAILURE", "Internal_error", "unknown error");
  /* messages quote input and are cut at any byte: JSON needs UTF-8 (found
   * by fuzz/fuzz-smapi.c: jansson's parse error quoted half a character,
   * the error object could not be made and stdout stayed empty) */
  zl_error(EINVAL, "near '\\u00e\xc7' \xed\xa0\x80 \xc3\xa9t\xc3\xa9 \xf4\x90\x80\x80.");
  check_error("SR_BACKEND_FAILURE", "Invalid_argument",
              "near '\\u00e?' ??? \xc3\xa9t\xc3\xa9 ????.");
  zl_error_kind(ZL_ERR_ACTIVE_ELSEWHERE, EBUSY, "active elsewhere");
  zl_error_subject("host-\xff");
  check_error("SR_BACKEND_FAILURE", "Activated_on_another_host", "host-?");
}

static void
test_volume_record(void **state)
{
  (void)state;
  char k1[] = "k1", u1[] = "u1", n[] = "n", empty[] = "";
  struct zl_volume v = {
      .key = k1,
      .uuid = u1,
      .name = n,
      .description = empty,
      .read_only = true,
      .virtual_size = INT64_MAX,
      .physical_utilisation = 0,
      .keys = json_pack("{s:s}", "vdi-type", "user"),
  };
  json_t *r = zl_volume_json(&v, "file-live", "/srv/sr");
  assert_non_null(r);
  assert_true(json_is_false(json_object_get(r, "read_write")));
  assert_true(json_is_integer(json_object_get(r, "virtual_size")));
  assert_int_equal(json_integer_value(json_object_get(r, "virtual_size")), INT64_MAX);
  assert_string_equal(json_string_value(json_array_get(json_object_get(r, "uri"), 0)),
                      "zfs-live://file-live//srv/sr|k1");
  const char *k;
  json_t *val;
  json_object_foreach(r, k, val) assert_false(json_is_null(val));
  json_decref(r);
  json_decref(v.keys);
}

static void
test_query_features_come_from_the_table(void **state)
{
  (void)state;
  struct smapi_target t;
  assert_int_equal(command_smapi_target("Plugin.Query", PLUGIN_VOLUME, &t), 0);
  json_t *q = smapi_query(PLUGIN_VOLUME, "file-live", t.features);
  json_t *f = json_object_get(q, "features");
  size_t i;
  json_t *x;
  int snapshot = 0, revert = 0, cbt = 0;
  json_array_foreach(f, i, x)
  {
    snapshot += !strcmp(json_string_value(x), "VDI_SNAPSHOT");
    revert += !strcmp(json_string_value(x), "VDI_REVERT");
    cbt += !strcmp(json_string_value(x), "VDI_CONFIG_CBT");
  }
  assert_int_equal(snapshot, 1);
  assert_int_equal(revert, 1);
  assert_int_equal(cbt, 1); /* once, for all five CBT methods */
  assert_string_equal(json_string_value(json_object_get(q, "plugin")), "file-live");
  assert_string_equal(json_string_value(json_object_get(q, "required_api_version")),
                      "5.0");
  assert_true(zl_json_is_strmap(json_object_get(q, "configuration")));
  json_decref(q);
}

static void
test_param_errors_name_the_parameter(void **state)
{
  (void)state;
  json_t *p = json_pack("{s:s, s:i, s:b}", "s", "x", "i", 5, "b", 1);
  const char *s;
  int64_t i;
  bool b;
  assert_int_equal(zl_json_string(p, "i", "parameter", &s), -1);
  assert_string_equal(zl_error_msg(), "parameter 'i' must be a string");
  assert_int_equal(zl_json_int64(p, "s", "parameter", &i), -1);
  assert_string_equal(zl_error_msg(), "parameter 's' must be an integer");
  assert_int_equal(zl_json_bool(p, "nope", "parameter", &b), -1);
  assert_string_equal(zl_error_msg(), "parameter 'nope' is missing");
  assert_int_equal(zl_json_bool(p, "b", "parameter", &b), 0);
  assert_true(b);
  json_decref(p);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_error_objects),
      cmocka_unit_test(test_volume_record),
      cmocka_unit_test(test_query_features_come_from_the_table),
      cmocka_unit_test(test_param_errors_name_the_parameter),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
