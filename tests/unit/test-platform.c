/* test-platform.c: XAPI detection (core/host/platform.c) against the
 * inventories of XCP-ng 8.2 and 8.3, XenServer 8.4 and 7.1 and a malformed
 * one (tests/unit/data/inventory/), the features Plugin.Query declares to
 * each daemon version, and the shims. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "smapi/smapi.h"
#include "util/error.h"

#define INV(name) UNIT_DATA_DIR "/inventory/" name

/* Detect under this inventory and xapi version (NULL: unset). */
static void
detect(const char *inventory, const char *xapi, struct zl_platform *p)
{
  setenv("ZFS_LIVE_INVENTORY", inventory, 1);
  if (xapi)
    setenv("ZFS_LIVE_XAPI_VERSION", xapi, 1);
  else
    unsetenv("ZFS_LIVE_XAPI_VERSION");
  zl_platform_detect(p);
}

static void
test_inventories(void **state)
{
  struct zl_platform p;
  (void)state;

  detect(INV("xcp-ng-8.2"), NULL, &p);
  assert_true(p.xapi_host);
  assert_string_equal(p.inventory, INV("xcp-ng-8.2"));
  assert_string_equal(p.brand, "XCP-ng");
  assert_string_equal(p.product_version, "8.2.1");
  assert_string_equal(p.platform_name, "XCP");
  assert_string_equal(p.platform_version, "3.2.1");
  assert_string_equal(p.build, "release/yangtze/master/58");
  assert_int_equal(p.platform.major, 3);
  assert_int_equal(p.platform.minor, 2);
  assert_int_equal(p.platform.patch, 1);
  /* not in the inventory: what platform 3.2 (XCP-ng 8.2) ships */
  assert_int_equal(p.xapi.major, 1);
  assert_int_equal(p.xapi.minor, 249);
  assert_string_equal(p.xapi_source, "assumed for platform 3.2.1");

  detect(INV("xcp-ng-8.3"), NULL, &p);
  assert_string_equal(p.brand, "XCP-ng");
  assert_string_equal(p.product_version, "8.3.0");
  assert_string_equal(p.platform_version, "3.4.0");

  detect(INV("xenserver-8.4"), NULL, &p);
  assert_string_equal(p.brand, "XenServer");
  assert_string_equal(p.product_version, "8.4.0");
  assert_string_equal(p.platform_version, "3.4.2");
  assert_int_equal(p.platform.minor, 4);
}

static void
test_malformed_inventory(void **state)
{
  struct zl_platform p;
  (void)state;

  detect(INV("malformed"), NULL, &p);
  assert_true(p.xapi_host);
  /* blanks around the key, double quotes, `export`, a trailing comment,
   * an unterminated quote; not the commented-out or longer keys */
  assert_string_equal(p.brand, "XCP-ng");
  assert_string_equal(p.product_version, "8.3.0");
  assert_string_equal(p.platform_version, "3.4.0");
  assert_string_equal(p.build, "unterminated");
  assert_string_equal(p.platform_name, ""); /* missing */

  memset(&p, 0, sizeof p);
  zl_platform_parse("", &p);
  assert_string_equal(p.brand, "");
  zl_platform_parse("PRODUCT_BRAND='x'", &p); /* no newline at the end */
  assert_string_equal(p.brand, "x");
  zl_platform_parse(
      "PRODUCT_BRAND='" /* longer than the field */
      "0123456789012345678901234567890123456789012345678901234567890123456789'",
      &p);
  assert_int_equal(strlen(p.brand), sizeof p.brand - 1);
  zl_platform_parse("PLATFORM_VERSION='three'\n", &p);
  assert_int_equal(p.platform.major, 0);
}

static void
test_no_inventory_and_overrides(void **state)
{
  struct zl_platform p;
  (void)state;

  detect(INV("no-such-file"), NULL, &p);
  assert_false(p.xapi_host);
  assert_string_equal(p.brand, "");
  assert_int_equal(zl_error_get_kind(), ZL_ERR_NONE); /* not an error */

  detect(INV("no-such-file"), "25.20.1", &p);
  assert_true(p.xapi_host); /* a version says XAPI */
  assert_int_equal(p.xapi.major, 25);
  assert_int_equal(p.xapi.minor, 20);
  assert_int_equal(p.xapi.patch, 1);
  assert_string_equal(p.xapi_source, "ZFS_LIVE_XAPI_VERSION");

  detect(INV("xcp-ng-8.3"), "not a version", &p);
  assert_int_equal(p.xapi.major, 0);
  assert_string_equal(p.xapi_source, "ZFS_LIVE_XAPI_VERSION (not a version)");

  unsetenv("ZFS_LIVE_INVENTORY");
  assert_string_equal(zl_platform_inventory_path(), "/etc/xensource-inventory");
  setenv("ZFS_LIVE_INVENTORY", "", 1);
  assert_string_equal(zl_platform_inventory_path(), "/etc/xensource-inventory");
}

static void
test_versions(void **state)
{
  static const struct {
    const char *s;
    bool ok;
    unsigned v[3];
  } cases[] = {
      {"25.3.0", true, {25, 3, 0}},
      {"v24.19.2", true, {24, 19, 2}},
      {"xapi-core-25.33.1-1.xs8", true, {25, 33, 1}},
      {"1.249.37", true, {1, 249, 37}},
      {"26", true, {26, 0, 0}},
      {"26.16.0.4", true, {26, 16, 0}},
      {" 25.20.0\n", true, {25, 20, 0}},
      {"", false, {0, 0, 0}},
      {"abc", false, {0, 0, 0}},
      {"0.0.0", false, {0, 0, 0}},
      {"99999999999999999999.1", false, {0, 0, 0}},
  };
  (void)state;

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct zl_version v;
    assert_int_equal(zl_version_parse(cases[i].s, &v), cases[i].ok);
    assert_int_equal(v.major, cases[i].v[0]);
    assert_int_equal(v.minor, cases[i].v[1]);
    assert_int_equal(v.patch, cases[i].v[2]);
  }
  /* 1.x (before 2022) is older than every year release */
  assert_int_equal(
      zl_version_cmp((struct zl_version){1, 249, 37}, (struct zl_version){22, 21, 0}),
      -1);
  assert_int_equal(
      zl_version_cmp((struct zl_version){25, 20, 0}, (struct zl_version){25, 3, 0}), 1);
  assert_int_equal(
      zl_version_cmp((struct zl_version){25, 3, 1}, (struct zl_version){25, 3, 1}), 0);
}

static void
test_feature_gates(void **state)
{
  struct zl_platform p;
  (void)state;

  /* not a XAPI host: nothing withheld */
  detect(INV("no-such-file"), NULL, &p);
  assert_true(zl_platform_feature_ok(&p, "VDI_REVERT"));
  assert_true(zl_platform_feature_ok(&p, "VDI_MIRROR"));

  /* daemon not given on platform 3.4: assumed 26.1 (the field's) */
  detect(INV("xcp-ng-8.3"), NULL, &p);
  assert_true(zl_platform_feature_ok(&p, "VDI_SNAPSHOT"));
  assert_true(zl_platform_feature_ok(&p, "VDI_RESET_ON_BOOT/2"));
  assert_true(zl_platform_feature_ok(&p, "VDI_CONFIG_CBT"));
  assert_false(zl_platform_feature_ok(&p, "VDI_REVERT"));
  assert_true(zl_platform_feature_ok(&p, "VDI_MIRROR_IN"));
  /* a XAPI host whose daemon and platform are both unknown: only what
   * every v5 daemon honours */
  struct zl_platform q = {.xapi_host = true};
  zl_platform_parse("PRODUCT_BRAND='XCP-ng'\n", &q);
  assert_false(zl_platform_feature_ok(&q, "VDI_CONFIG_CBT"));
  assert_false(zl_platform_feature_ok(&q, "VDI_REVERT"));
  assert_true(zl_platform_feature_ok(&q, "VDI_SNAPSHOT"));

  /* the boundaries of smapiv3.md §0 */
  detect(INV("xcp-ng-8.3"), "25.2.99", &p);
  assert_true(zl_platform_feature_ok(&p, "VDI_CONFIG_CBT"));
  assert_false(zl_platform_feature_ok(&p, "VDI_MIRROR_IN")); /* import_activate */
  detect(INV("xcp-ng-8.3"), "25.3.0", &p);
  assert_true(zl_platform_feature_ok(&p, "VDI_MIRROR_IN"));
  assert_true(zl_platform_feature_ok(&p, "VDI_COMPOSE"));
  assert_false(zl_platform_feature_ok(&p, "VDI_MIRROR")); /* Data.mirror */
  detect(INV("xcp-ng-8.3"), "25.20.0", &p);
  assert_true(zl_platform_feature_ok(&p, "VDI_MIRROR"));
  assert_false(zl_platform_feature_ok(&p, "VDI_REVERT"));
  detect(INV("xenserver-8.4"), "26.16.0", &p);
  assert_true(zl_platform_feature_ok(&p, "VDI_REVERT"));
  detect(INV("xcp-ng-8.2"), "1.249.37", &p);
  assert_false(zl_platform_feature_ok(&p, "VDI_CONFIG_CBT"));
  assert_false(zl_platform_feature_ok(&p, "VDI_ACTIVATE_READONLY"));
  detect(INV("xcp-ng-8.2"), "24.16.9", &p);
  assert_false(zl_platform_feature_ok(&p, "VDI_CONFIG_CBT"));
  detect(INV("xcp-ng-8.2"), "24.17.0", &p);
  assert_true(zl_platform_feature_ok(&p, "VDI_CONFIG_CBT"));
}

static void
test_shims(void **state)
{
  struct zl_platform p;
  (void)state;

  detect(INV("no-such-file"), NULL, &p);
  assert_false(zl_platform_shim_vdi_type(&p));
  assert_false(zl_platform_shim_read_write(&p));
  detect(INV("xcp-ng-8.2"), NULL, &p); /* unknown: assume the oldest */
  assert_true(zl_platform_shim_vdi_type(&p));
  assert_true(zl_platform_shim_read_write(&p));
  detect(INV("xcp-ng-8.3"), "25.33.1", &p); /* any 2025 release may lack CA-412420 */
  assert_true(zl_platform_shim_vdi_type(&p));
  assert_true(zl_platform_shim_read_write(&p));
  detect(INV("xcp-ng-8.3"), "26.1.11", &p);
  assert_false(zl_platform_shim_vdi_type(&p));
  assert_true(zl_platform_shim_read_write(&p)); /* CA-431606 is a 2026 fix */
  detect(INV("xenserver-8.4"), "27.0.0", &p);
  assert_false(zl_platform_shim_vdi_type(&p));
  assert_false(zl_platform_shim_read_write(&p));
}

static void
test_read_write_shim_in_the_record(void **state)
{
  struct zl_platform p;
  json_t *keys = json_object();
  char k[] = "s", n[] = "n", d[] = "", parent[] = "v";
  struct zl_volume snap = {.key = k,
                           .uuid = k,
                           .name = n,
                           .description = d,
                           .read_only = true,
                           .snapshot_of = parent,
                           .keys = keys};
  struct zl_volume broken = snap; /* metadata unreadable: read-only, no parent */
  (void)state;
  broken.snapshot_of = NULL;

  detect(INV("xcp-ng-8.3"), "26.1.11", &p);
  json_t *j =
      zl_volume_json_xapi(&snap, "file-live", "/sr", zl_platform_shim_read_write(&p));
  assert_true(json_is_true(json_object_get(j, "read_write")));
  json_decref(j);
  j = zl_volume_json_xapi(&broken, "file-live", "/sr", zl_platform_shim_read_write(&p));
  assert_true(json_is_false(json_object_get(j, "read_write")));
  json_decref(j);
  j = zl_volume_json(&snap, "file-live", "/sr"); /* the CLI's */
  assert_true(json_is_false(json_object_get(j, "read_write")));
  json_decref(j);
  detect(INV("xcp-ng-8.3"), "27.0.0", &p);
  j = zl_volume_json_xapi(&snap, "file-live", "/sr", zl_platform_shim_read_write(&p));
  assert_true(json_is_false(json_object_get(j, "read_write")));
  json_decref(j);
  json_decref(keys);
}

static void
test_supported(void **state)
{
  struct zl_platform p;
  char why[512] = "";
  (void)state;

  detect(INV("xcp-ng-8.2"), NULL, &p);
  assert_true(zl_platform_supported(&p, why, sizeof why));
  detect(INV("xcp-ng-8.3"), NULL, &p);
  assert_true(zl_platform_supported(&p, why, sizeof why));
  detect(INV("xenserver-8.4"), NULL, &p);
  assert_true(zl_platform_supported(&p, why, sizeof why));
  detect(INV("malformed"), NULL, &p);
  assert_true(zl_platform_supported(&p, why, sizeof why));
  detect(INV("no-such-file"), NULL, &p);
  assert_true(zl_platform_supported(&p, why, sizeof why));
  detect(INV("xenserver-7.1"), NULL, &p);
  assert_false(zl_platform_supported(&p, why, sizeof why));
  assert_non_null(strstr(why, "XenServer 7.1.2 (platform 2.2.2) is not supported"));

  json_t *j = zl_platform_json(&p);
  assert_false(json_is_true(json_object_get(j, "supported")));
  assert_string_equal(json_string_value(json_object_get(j, "why")), why);
  json_decref(j);
}

static void
test_reports(void **state)
{
  struct zl_platform p;
  (void)state;

  detect(INV("xcp-ng-8.3"), "25.3.0", &p);
  json_t *j = zl_platform_json(&p);
  assert_string_equal(json_string_value(json_object_get(j, "brand")), "XCP-ng");
  assert_string_equal(json_string_value(json_object_get(j, "xapi_version")), "25.3.0");
  json_t *w = json_object_get(j, "features_withheld");
  assert_int_equal(json_array_size(w), 2);
  assert_string_equal(json_string_value(json_array_get(w, 0)), "VDI_MIRROR");
  assert_string_equal(json_string_value(json_array_get(w, 1)), "VDI_REVERT");
  assert_true(json_is_true(
      json_object_get(json_object_get(j, "shims"), "vdi_type_on_snapshots")));
  json_decref(j);
  char *s = zl_platform_summary(&p);
  assert_non_null(strstr(s, "XCP-ng 8.3.0 (platform XCP 3.4.0"));
  assert_non_null(strstr(s, "xapi 25.3.0 (ZFS_LIVE_XAPI_VERSION)"));
  assert_non_null(strstr(s, "vdi-type on snapshots on"));
  free(s);

  detect(INV("no-such-file"), NULL, &p);
  s = zl_platform_summary(&p);
  assert_non_null(strstr(s, "not a XAPI host"));
  free(s);
}

/* Plugin.Query's features as the volume plugin renders them under this
 * inventory and xapi version, joined with ' '. */
static char *
query_features(const char *inventory, const char *xapi)
{
  struct zl_platform p;
  struct smapi_target t;
  char buf[1024] = "";

  detect(inventory, xapi, &p);
  assert_int_equal(command_smapi_target("Plugin.Query", PLUGIN_VOLUME, &t), 0);
  json_t *q = smapi_query(PLUGIN_VOLUME, "file-live", t.features);
  assert_non_null(q);
  size_t i;
  json_t *f;
  json_array_foreach(json_object_get(q, "features"), i, f)
  {
    strcat(buf, i ? " " : "");
    strcat(buf, json_string_value(f));
  }
  json_decref(q);
  return strdup(buf);
}

static void
test_query_features_per_version(void **state)
{
  static const struct {
    const char *inventory, *xapi, *features;
  } cases[] = {
      /* not a XAPI host (Debian, Ganeti): today's list, unchanged */
      {INV("no-such-file"), NULL,
       "SR_PROBE VDI_CREATE VDI_SNAPSHOT VDI_CLONE VDI_DESTROY VDI_RESIZE VDI_REVERT "
       "VDI_CONFIG_CBT VDI_MIRROR THIN_PROVISIONING LARGE_VDI"},
      /* daemon not given: what the platform ships (8.2: 1.249, 3.4: 26.1) */
      {INV("xcp-ng-8.2"), NULL,
       "SR_PROBE VDI_CREATE VDI_SNAPSHOT VDI_CLONE VDI_DESTROY VDI_RESIZE "
       "THIN_PROVISIONING LARGE_VDI"},
      {INV("xcp-ng-8.3"), NULL,
       "SR_PROBE VDI_CREATE VDI_SNAPSHOT VDI_CLONE VDI_DESTROY VDI_RESIZE "
       "VDI_CONFIG_CBT VDI_MIRROR THIN_PROVISIONING LARGE_VDI"},
      {INV("xenserver-8.4"), NULL,
       "SR_PROBE VDI_CREATE VDI_SNAPSHOT VDI_CLONE VDI_DESTROY VDI_RESIZE "
       "VDI_CONFIG_CBT VDI_MIRROR THIN_PROVISIONING LARGE_VDI"},
      /* XCP-ng 8.2's xapi 1.249: no CBT forwarding, no revert */
      {INV("xcp-ng-8.2"), "1.249.37",
       "SR_PROBE VDI_CREATE VDI_SNAPSHOT VDI_CLONE VDI_DESTROY VDI_RESIZE "
       "THIN_PROVISIONING LARGE_VDI"},
      /* CBT from 24.17.0 */
      {INV("xcp-ng-8.3"), "24.19.2",
       "SR_PROBE VDI_CREATE VDI_SNAPSHOT VDI_CLONE VDI_DESTROY VDI_RESIZE "
       "VDI_CONFIG_CBT THIN_PROVISIONING LARGE_VDI"},
      /* what 8.3 hosts reported in 2026: still no Volume.revert */
      {INV("xcp-ng-8.3"), "26.1.11",
       "SR_PROBE VDI_CREATE VDI_SNAPSHOT VDI_CLONE VDI_DESTROY VDI_RESIZE "
       "VDI_CONFIG_CBT VDI_MIRROR THIN_PROVISIONING LARGE_VDI"},
      /* revert from 26.16.0 */
      {INV("xenserver-8.4"), "26.16.0",
       "SR_PROBE VDI_CREATE VDI_SNAPSHOT VDI_CLONE VDI_DESTROY VDI_RESIZE VDI_REVERT "
       "VDI_CONFIG_CBT VDI_MIRROR THIN_PROVISIONING LARGE_VDI"},
  };
  (void)state;

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *got = query_features(cases[i].inventory, cases[i].xapi);
    if (strcmp(got, cases[i].features) != 0)
      fail_msg("%s, xapi %s:\n  got  %s\n  want %s", cases[i].inventory,
               cases[i].xapi ? cases[i].xapi : "unknown", got, cases[i].features);
    free(got);
  }
  /* the datapath's NONPERSISTENT is as old as v5 */
  struct smapi_target t;
  detect(INV("xcp-ng-8.2"), NULL, &(struct zl_platform){0});
  assert_int_equal(command_smapi_target("Plugin.Query", PLUGIN_DATAPATH, &t), 0);
  assert_string_equal(t.features[0], "NONPERSISTENT");
  assert_null(t.features[1]);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_inventories),
      cmocka_unit_test(test_malformed_inventory),
      cmocka_unit_test(test_no_inventory_and_overrides),
      cmocka_unit_test(test_versions),
      cmocka_unit_test(test_feature_gates),
      cmocka_unit_test(test_shims),
      cmocka_unit_test(test_read_write_shim_in_the_record),
      cmocka_unit_test(test_supported),
      cmocka_unit_test(test_reports),
      cmocka_unit_test(test_query_features_per_version),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
