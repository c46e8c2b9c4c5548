/* cli.c: helpers shared by the CLI subcommands, and the one place where
 * errors become CLI output (a line on stderr and exit status 1). */
#include <ctype.h>
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
bool cli_json_written;
static const char *cmd_name, *cmd_usage;
/* The current error is the command line's (a bad size, an unknown
 * option): cli_fail reports it as a usage error. */
static bool usage_error;

void
cli_set_command(const char *name, const char *usage)
{
  cmd_name = name;
  cmd_usage = usage;
}

/* The one place where CLI errors become output: a line on stderr, and with
 * --json the object {"error": {"code", "message", "status"}} on stdout.
 * code is "usage" for a usage error (status 2), else the failure's kind. */
static const char *
error_code(enum zl_errkind k)
{
  static const char *const codes[] = {
      [ZL_ERR_NONE] = "internal",
      [ZL_ERR_INTERNAL] = "internal",
      [ZL_ERR_INVALID] = "invalid",
      [ZL_ERR_NO_VOLUME] = "no-volume",
      [ZL_ERR_NO_SR] = "no-sr",
      [ZL_ERR_EXISTS] = "exists",
      [ZL_ERR_BUSY] = "busy",
      [ZL_ERR_NO_SPACE] = "no-space",
      [ZL_ERR_READ_ONLY] = "read-only",
      [ZL_ERR_SIZE] = "size",
      [ZL_ERR_UNSUPPORTED] = "unsupported",
      [ZL_ERR_ACTIVE_ELSEWHERE] = "active-elsewhere",
      [ZL_ERR_DAMAGED] = "damaged",
  };
  return (unsigned)k < sizeof codes / sizeof codes[0] && codes[k] ? codes[k] : "internal";
}

static int
report(const char *code, const char *msg, int status)
{
  fprintf(stderr, "zfs-live: %s\n", msg);
  if (status == 2 && cmd_usage)
    fprintf(stderr, "usage: zfs-live %s %s\n(zfs-live %s --help for more)\n", cmd_name,
            cmd_usage, cmd_name);
  if (cli_json) {
    json_t *e = json_pack("{s:{s:s, s:s, s:i}}", "error", "code", code, "message", msg,
                          "status", status);
    if (e && !(zl_error_errno() == 0 || strcmp(code, "usage") == 0))
      json_object_set_new(json_object_get(e, "error"), "errno",
                          json_integer(zl_error_errno()));
    if (e)
      json_dumpf(e, stdout, JSON_INDENT(2));
    fputc('\n', stdout);
    fflush(stdout);
    json_decref(e);
    cli_json_written = true;
  }
  return status;
}

int
cli_fail(void)
{
  if (usage_error)
    return report("usage", zl_error_msg(), 2);
  return report(error_code(zl_error_get_kind()), zl_error_msg(), 1);
}

int
cli_usage(const char *usage, const char *fmt, ...)
{
  char msg[1024];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  report("usage", msg, 2);
  if (!cmd_usage && usage)
    fprintf(stderr, "usage: %s\n", usage);
  return 2;
}

/* The multiplier of a size's unit (qemu-img and nbdkit's: powers of 1024;
 * "b" bytes; "K", "KB", "KiB" alike), or 0 if it is none. */
static int64_t
unit_of(const char *u)
{
  static const char units[] = "bkmgtpe";
  const char *p = *u ? strchr(units, tolower((unsigned char)*u)) : units;
  int64_t m = 1;

  if (!p ||
      (*u && u[1] &&
       (p == units || (strcasecmp(u + 1, "iB") != 0 && strcasecmp(u + 1, "B") != 0))))
    return 0;
  for (const char *q = units; q < p; q++)
    m *= 1024;
  return m;
}

int
cli_parse_size(const char *s, int64_t *out)
{
  const char *p = s;
  uint64_t whole = 0, frac = 0, scale = 1;

  if (!isdigit((unsigned char)*p) && !(*p == '.' && isdigit((unsigned char)p[1])))
    goto bad;
  for (; isdigit((unsigned char)*p); p++) {
    if (__builtin_mul_overflow(whole, 10, &whole) ||
        __builtin_add_overflow(whole, (uint64_t)(*p - '0'), &whole))
      goto big;
  }
  if (*p == '.') {
    for (p++; isdigit((unsigned char)*p); p++) {
      if (scale < UINT64_C(1000000000000000000)) {
        frac = frac * 10 + (uint64_t)(*p - '0');
        scale *= 10;
      }
    }
  }
  int64_t mult = unit_of(p);
  if (!mult)
    goto bad;
  if (scale > 1 && mult == 1) {
    usage_error = true;
    zl_error(EINVAL, "'%s' is not a size (a fraction of a byte)", s);
    return -1;
  }
  uint64_t v;
  if (__builtin_mul_overflow(whole, (uint64_t)mult, &v) ||
      __builtin_add_overflow(
          v, (uint64_t)((unsigned __int128)frac * (uint64_t)mult / scale), &v) ||
      v > INT64_MAX)
    goto big;
  *out = (int64_t)v;
  return 0;
big:
  usage_error = true;
  zl_error_kind(ZL_ERR_SIZE, EINVAL, "size '%s' is too large", s);
  return -1;
bad:
  usage_error = true;
  zl_error_kind(
      ZL_ERR_SIZE, EINVAL,
      "'%s' is not a size (bytes, or a number with a unit: 1.5G, 512M, 10GiB, 4k;"
      " units b k M G T P E)",
      s);
  return -1;
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
  cli_json_written = true;
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
        usage_error = true;
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
      usage_error = true;
      zl_error(EINVAL, "unknown option %s", argv[i]);
      return -1;
    }
  }
  return 0;
}
