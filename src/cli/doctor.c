/* doctor.c: `zfs-live doctor [--pool POOL] [--root DIR]`: the host's checks
 * (checks.c; exit 1 when any is a problem), and what this host offers,
 * as detected (the same detection the SRs use and cache), and which way
 * this process takes where the kernel may be older than the code (JSON
 * key "host": Linux 4.19 on XCP-ng 8.3 has no io_uring, LOOP_CONFIGURE,
 * close_range, openat2).  Each is probed with a call that changes
 * nothing: a ring of one entry, LOOP_CONFIGURE naming no file, the
 * system calls with arguments they refuse. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "cli/cli.h"
#include "core/io/io.h"
#include "util/compat.h"
#include "util/error.h"
#include "util/loop.h"

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

/* One row of the host's paths: what it is used for, the fallback. */
static const struct {
  const char *name, *use, *fallback;
} paths[] = {
    {"io_uring", "NBD server and datapath I/O", "pread/pwrite"},
    {"loop", "block devices for XenDisk/Ganeti", "LOOP_SET_FD"},
    {"copy_file_range", "volume copies", "read/write"},
    {"getrandom", "UUIDs, temporary names", "/dev/urandom"},
    {"memfd_create", "zeros of unmade volumes", "O_TMPFILE"},
    {"close_range", "no fd leaks into children", "/proc/self/fd"},
    {"openat2", "paths beneath a directory", "O_NOFOLLOW walk"},
};

static json_t *
host_paths(void)
{
  struct zl_compat_paths c;
  struct utsname u;
  const char *loop;

  zl_compat_probe(&c);
  int lp = zl_loop_probe_configure();
  loop = lp == 1 ? "LOOP_CONFIGURE" : lp == 0 ? "LOOP_SET_FD" : "unknown";
  json_t *h =
      json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "io_uring",
                zl_io_uring_available() ? "io_uring" : "pread/pwrite", "loop", loop,
                "copy_file_range", c.copy_file_range ? "syscall" : "fallback",
                "getrandom", c.getrandom ? "syscall" : "fallback", "memfd_create",
                c.memfd_create ? "syscall" : "fallback", "close_range",
                c.close_range ? "syscall" : "fallback", "openat2",
                c.openat2 ? "syscall" : "fallback");
  if (h && lp == -1)
    json_object_set_new(h, "loop_reason", json_string(zl_error_msg()));
  if (h && uname(&u) == 0)
    json_object_set_new(h, "kernel", json_string(u.release));
  zl_error_clear();
  return h;
}

static void
print_host(json_t *h)
{
  printf("\nhost: Linux %s\n\n", json_string_value(json_object_get(h, "kernel")));
  printf("  %-16s %-15s  %-33s %s\n", "CALL", "THIS HOST", "USED FOR", "ELSE");
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    printf("  %-16s %-15s  %-33s %s\n", paths[i].name,
           json_string_value(json_object_get(h, paths[i].name)), paths[i].use,
           paths[i].fallback);
  }
}

/* The checks, one line each; the number of problems. */
static int
print_checks(json_t *checks)
{
  size_t i;
  json_t *c;
  int problems = 0, warnings = 0;

  printf("\nchecks:\n");
  json_array_foreach(checks, i, c)
  {
    const char *st = json_string_value(json_object_get(c, "status"));
    problems += strcmp(st, "problem") == 0;
    warnings += strcmp(st, "warn") == 0;
    printf("  %-8s %-20s %s\n", strcmp(st, "problem") == 0 ? "PROBLEM" : st,
           json_string_value(json_object_get(c, "check")),
           json_string_value(json_object_get(c, "message")));
  }
  printf("\n%d problem%s, %d warning%s\n", problems, problems == 1 ? "" : "s", warnings,
         warnings == 1 ? "" : "s");
  return problems;
}

static int
count_problems(json_t *checks)
{
  size_t i;
  json_t *c;
  int n = 0;
  json_array_foreach(checks, i, c)
  {
    n += strcmp(json_string_value(json_object_get(c, "status")), "problem") == 0;
  }
  return n;
}

int
cli_doctor(int argc, char **argv)
{
  const char *type = NULL, *pool = NULL, *root = NULL;
  json_t *rep, *checks;

  argc = cli_common_opts(argc, argv, &type);
  if (cli_take(&argc, argv, "--pool", &pool) == -1 ||
      cli_take(&argc, argv, "--root", &root) == -1 ||
      cli_no_more_options(argc, argv) == -1)
    return cli_fail();
  if (argc != 0)
    return cli_usage("zfs-live doctor [--pool POOL] [--root DIR]", "unexpected argument");
  if (!(rep = zl_host_report(pool)))
    return cli_fail();
  if (!(checks = cli_doctor_checks(rep, pool, root))) {
    json_decref(rep);
    zl_error(ENOMEM, "out of memory");
    return cli_fail();
  }
  int problems = count_problems(checks);
  struct zl_platform platform;
  zl_platform_detect(&platform);
  json_t *host = host_paths();
  if (!host) {
    json_decref(rep);
    json_decref(checks);
    zl_error(ENOMEM, "out of memory");
    return cli_fail();
  }
  if (cli_json) {
    json_object_set_new(rep, "xapi", zl_platform_json(&platform));
    json_object_set_new(rep, "host", host);
    json_object_set_new(rep, "checks", checks);
    json_object_set_new(rep, "problems", json_integer(problems));
    int r = cli_print_json(rep);
    return r ? r : problems ? 1 : 0;
  }

  printf("zfs-live %s\n", ZFS_LIVE_VERSION);
  print_platform(&platform);
  print_host(host);
  json_decref(host);
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
  print_checks(checks);
  json_decref(checks);
  return problems ? 1 : 0;
}
