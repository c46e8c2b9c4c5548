/* cli.c: helpers shared by the CLI subcommands, and the one place where
 * errors become CLI output (a line on stderr and exit status 1). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "util/error.h"

#include "util/banned.h" /* last: after every declaration */

bool cli_json;

int
cli_fail(void)
{
  fprintf(stderr, "zfs-live: %s\n", zl_error_msg());
  return 1;
}

int
cli_usage(const char *usage, const char *fmt, ...)
{
  va_list ap;

  fputs("zfs-live: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nusage: %s\n", usage);
  return 2;
}

int
cli_parse_size(const char *s, int64_t *out)
{
  char *end;
  int64_t mult = 1;

  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || v < 0) {
    zl_error(EINVAL, "'%s' is not a size (a number of bytes, or with K, M, G, T)", s);
    return -1;
  }
  if (*end) {
    static const char *const units = "KMGTP";
    const char *u = strchr(units, *end >= 'a' ? *end - 32 : *end);
    if (!u ||
        (end[1] && strcasecmp(end + 1, "iB") != 0 && strcasecmp(end + 1, "B") != 0)) {
      zl_error(EINVAL, "'%s' is not a size (unknown unit '%s')", s, end);
      return -1;
    }
    for (const char *p = units; p <= u; p++)
      mult *= 1024;
  }
  if (v > INT64_MAX / mult) {
    zl_error(EINVAL, "size '%s' is too large", s);
    return -1;
  }
  *out = v * mult;
  return 0;
}

void
cli_human(int64_t bytes, char *buf, size_t len)
{
  static const char *const u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = (double)bytes;
  int i = 0;

  while (v >= 1024 && i < 6) {
    v /= 1024;
    i++;
  }
  if (i == 0)
    snprintf(buf, len, "%lld B", (long long)bytes);
  else
    snprintf(buf, len, "%.1f %s", v, u[i]);
}

int
cli_print_json(json_t *j)
{
  if (!j) {
    zl_error(ENOMEM, "out of memory");
    return cli_fail();
  }
  json_dumpf(j, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY);
  fputc('\n', stdout);
  json_decref(j);
  return fflush(stdout) == 0 ? 0 : 1;
}

struct zl_sr *
cli_open_sr(const char *type, const char *key)
{
  return zl_sr_open(type, key);
}

int
cli_run_sr(cli_sr_fn fn, int nargs, const char *usage, int argc, char **argv)
{
  const char *type = NULL;

  argc = cli_common_opts(argc, argv, &type);
  if (nargs >= 0) {
    if (cli_no_more_options(argc, argv) == -1)
      return cli_fail();
    if (argc != nargs + 1)
      return cli_usage(usage, "wrong number of arguments");
  } else if (argc < 1 || strncmp(argv[0], "--", 2) == 0) {
    return cli_usage(usage, "missing SR");
  }
  struct zl_sr *sr = cli_open_sr(type, argv[0]);
  if (!sr)
    return cli_fail();
  int r = fn(sr, argc - 1, argv + 1);
  zl_sr_close(sr);
  return r;
}

int
cli_common_opts(int argc, char **argv, const char **type)
{
  int out = 0;

  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--json") == 0) {
      cli_json = true;
    } else if (strcmp(argv[i], "--type") == 0 && i + 1 < argc) {
      *type = argv[++i];
    } else if (strncmp(argv[i], "--type=", 7) == 0) {
      *type = argv[i] + 7;
    } else {
      argv[out++] = argv[i];
    }
  }
  argv[out] = NULL;
  return out;
}

static void
drop(int *argc, char **argv, int i, int n)
{
  memmove(argv + i, argv + i + n, (size_t)(*argc - i - n + 1) * sizeof *argv);
  *argc -= n;
}

int
cli_take(int *argc, char **argv, const char *flag, const char **value)
{
  size_t fl = strlen(flag);

  for (int i = 0; i < *argc; i++) {
    if (strcmp(argv[i], flag) == 0) {
      if (i + 1 >= *argc) {
        zl_error(EINVAL, "option %s needs a value", flag);
        return -1;
      }
      *value = argv[i + 1];
      drop(argc, argv, i, 2);
      return 1;
    }
    if (strncmp(argv[i], flag, fl) == 0 && argv[i][fl] == '=') {
      *value = argv[i] + fl + 1;
      drop(argc, argv, i, 1);
      return 1;
    }
  }
  return 0;
}

bool
cli_flag(int *argc, char **argv, const char *flag)
{
  for (int i = 0; i < *argc; i++) {
    if (strcmp(argv[i], flag) == 0) {
      drop(argc, argv, i, 1);
      return true;
    }
  }
  return false;
}

int
cli_no_more_options(int argc, char **argv)
{
  for (int i = 0; i < argc; i++) {
    if (strncmp(argv[i], "--", 2) == 0 && argv[i][2]) {
      zl_error(EINVAL, "unknown option %s", argv[i]);
      return -1;
    }
  }
  return 0;
}
