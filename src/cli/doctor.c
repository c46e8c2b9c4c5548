/* doctor.c: `zfs-live doctor [--pool POOL] [--json]`: what this host offers,
 * as detected (the same detection the SRs use and cache). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/error.h"

#include "util/banned.h" /* last: after every declaration */

/* The XAPI platform, the daemon's version and the shims on (platform.c). */
static void
print_platform(const struct zl_platform *p)
{
  char *s = zl_platform_summary(p);
  char why[512];

  printf("XAPI: %s\n", s ? s : "?");
  if (!zl_platform_supported(p, why, sizeof why))
    printf("  %s\n", why);
  free(s);
}

int
cli_doctor(int argc, char **argv)
{
  const char *type = NULL, *pool = NULL;
  json_t *rep;

  argc = cli_common_opts(argc, argv, &type);
  if (cli_take(&argc, argv, "--pool", &pool) == -1 ||
      cli_no_more_options(argc, argv) == -1)
    return cli_fail();
  if (argc != 0)
    return cli_usage("zfs-live doctor [--pool POOL] [--json]", "unexpected argument");
  if (!(rep = zl_host_report(pool)))
    return cli_fail();
  struct zl_platform platform;
  zl_platform_detect(&platform);
  if (cli_json) {
    json_object_set_new(rep, "xapi", zl_platform_json(&platform));
    return cli_print_json(rep);
  }

  printf("zfs-live %s\n", ZFS_LIVE_VERSION);
  print_platform(&platform);
  const char *t;
  json_t *r;
  json_object_foreach(rep, t, r)
  {
    if (!json_is_true(json_object_get(r, "present"))) {
      printf("\n%s: not available: %s\n", t,
             json_string_value(json_object_get(r, "reason")));
      continue;
    }
    printf("\n%s: %s %s, pool version %lld%s%s\n", t,
           json_string_value(json_object_get(r, "flavour")),
           json_string_value(json_object_get(r, "version")),
           (long long)json_integer_value(json_object_get(r, "pool_version")),
           json_object_get(r, "pool") ? ", pool "
                                      : " (no pool given: --pool for "
                                        "pool features)",
           json_object_get(r, "pool") ? json_string_value(json_object_get(r, "pool"))
                                      : "");
    printf("  default compression %s, default volblocksize %lld, libzfs_core %s\n\n",
           json_string_value(json_object_get(r, "default_compression")),
           (long long)json_integer_value(json_object_get(r, "default_volblocksize")),
           json_is_true(json_object_get(r, "lzc")) ? "yes" : "no");
    printf("  %-16s %-5s  %s\n", "CAPABILITY", "HOST", "USED FOR");
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(r, "capabilities"), i, row)
    {
      printf("  %-16s %-5s  %s\n", json_string_value(json_object_get(row, "capability")),
             json_is_true(json_object_get(row, "value")) ? "yes" : "no",
             json_string_value(json_object_get(row, "use")));
    }
  }
  json_decref(rep);
  return 0;
}
