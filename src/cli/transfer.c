/* transfer.c: `zfs-live vol export` and `vol import`: images out of and
 * into volumes (core/model/image.c, import.c), with progress
 * (progress.c).  `vol export` without --format and `vol unexport` are the
 * old spellings of `vol share`/`vol unshare`, kept for one release with a
 * note on stderr.
 *
 * Output.  export: the SHA-256 of the virtual disk data, "sha256 HEX" (or
 * with --json {"sha256", "size", "format", "file"}) on stdout -- on stderr
 * when stdout is the image (-o -).  import: the new volume as `vol stat`
 * shows it, then "sha256 HEX" (--json: the volume's record with "sha256"
 * added).  The checksum is verified on import when given with --sha256. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/error.h"

#include "util/banned.h" /* last: after every declaration */

#define EXPORT_USAGE                                                                     \
  "zfs-live vol export SR KEY --format raw|qcow2|vhd -o FILE|- [--no-checksum] "         \
  "[--json]\n"                                                                           \
  "  (-o -: the image on stdout; --no-checksum: no SHA-256, which reads the\n"           \
  "   holes too and so costs time in proportion to the size)"
#define IMPORT_USAGE                                                                     \
  "zfs-live vol import SR FILE|- --format raw|qcow2|vhd [--name N] [--key K]\n"          \
  "                    [--size S] [--sha256 HEX | --no-checksum] [--json]\n"             \
  "  (-: raw from stdin, --size its exact length; for a file --size is the\n"            \
  "   largest virtual size accepted)"

static void
deprecated(const char *old, const char *new)
{
  fprintf(stderr, "zfs-live: note: `vol %s` is deprecated (one release); use `vol %s`\n",
          old, new);
}

int
cli_vol_unexport(struct zl_sr *sr, int argc, char **argv)
{
  deprecated("unexport", "unshare");
  return cli_vol_unshare(sr, argc, argv);
}

static bool
has_format(int argc, char **argv)
{
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--format") == 0 || strncmp(argv[i], "--format=", 9) == 0)
      return true;
  }
  return false;
}

static int
print_sha(const char *sha, int64_t size, const char *format, const char *file, FILE *to)
{
  if (!cli_json) {
    if (*sha)
      fprintf(to, "sha256 %s\n", sha);
    return 0;
  }
  json_t *j =
      json_pack("{s:o, s:I, s:s, s:s}", "sha256", *sha ? json_string(sha) : json_null(),
                "size", (json_int_t)size, "format", format, "file", file);
  char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
  if (s)
    fprintf(to, "%s\n", s);
  /* the result is said (on stderr when stdout is the image): the front
   * end adds nothing to stdout */
  cli_json_written = true;
  free(s);
  json_decref(j);
  return s ? 0 : 1;
}

int
cli_vol_export(int argc, char **argv)
{
  const char *type = NULL, *format = NULL, *out = NULL;
  struct zl_export_args a = {.out_fd = STDOUT_FILENO};
  char sha[65];
  int64_t size;

  if (!has_format(argc, argv)) {
    deprecated("export SR KEY (without --format)", "share");
    return cli_vol_share(argc, argv);
  }
  argc = cli_common_opts(argc, argv, &type);
  a.no_checksum = cli_flag(&argc, argv, "--no-checksum");
  if (cli_take(&argc, argv, "--format", &format) == -1 ||
      cli_take(&argc, argv, "--output", &out) == -1 ||
      cli_no_more_options(argc, argv) == -1)
    return cli_fail();
  if (argc != 2 || !out)
    return cli_usage(EXPORT_USAGE, "vol export needs SR, KEY, --format and -o");
  if (zl_image_format_parse(format, &a.format) == -1)
    return cli_fail();
  bool to_stdout = strcmp(out, "-") == 0;
  if (to_stdout && isatty(STDOUT_FILENO)) {
    zl_error(EINVAL, "refusing to write an image to a terminal (redirect stdout)");
    return cli_fail();
  }
  a.path = to_stdout ? NULL : out;
  struct zl_sr *sr = cli_open_sr(type, argv[0]);
  if (!sr)
    return cli_fail();
  struct cli_progress st;
  struct zl_progress p;
  cli_progress_init(&p, &st, "export");
  int r = zl_vol_export_image(sr, argv[1], &a, &p, sha, &size);
  cli_progress_done(&st);
  zl_sr_close(sr);
  if (r == -1)
    return cli_fail();
  if (to_stdout && fflush(stdout) != 0) {
    zl_error_sys(errno, "write stdout");
    return cli_fail();
  }
  return print_sha(sha, size, zl_image_format_name(a.format), out,
                   to_stdout ? stderr : stdout);
}

int
cli_vol_import(struct zl_sr *sr, int argc, char **argv)
{
  const char *format = NULL, *size = NULL;
  struct zl_import_args a = {.in_fd = STDIN_FILENO};
  struct zl_volume v;
  char sha[65];

  a.no_checksum = cli_flag(&argc, argv, "--no-checksum");
  if (cli_take(&argc, argv, "--format", &format) == -1 ||
      cli_take(&argc, argv, "--name", &a.name) == -1 ||
      cli_take(&argc, argv, "--key", &a.key) == -1 ||
      cli_take(&argc, argv, "--size", &size) == -1 ||
      cli_take(&argc, argv, "--sha256", &a.sha256) == -1 ||
      cli_no_more_options(argc, argv) == -1)
    return cli_fail();
  if (argc != 1 || !format)
    return cli_usage(IMPORT_USAGE, "vol import needs SR, FILE (or -) and --format");
  if (zl_image_format_parse(format, &a.format) == -1 ||
      (size && cli_parse_size(size, &a.size) == -1))
    return cli_fail();
  a.path = strcmp(argv[0], "-") == 0 ? NULL : argv[0];
  struct cli_progress st;
  struct zl_progress p;
  cli_progress_init(&p, &st, "import");
  int r = zl_vol_import_image(sr, &a, &p, &v, sha);
  cli_progress_done(&st);
  if (r == -1)
    return cli_fail();
  if (cli_json) {
    json_t *j = zl_volume_json(&v, zl_sr_type(sr), zl_sr_key(sr));
    json_object_set_new(j, "sha256", *sha ? json_string(sha) : json_null());
    zl_volume_free(&v);
    return cli_print_json(j);
  }
  printf("key          %s\nsize         %lld bytes\n", v.key, (long long)v.virtual_size);
  if (*sha)
    printf("sha256       %s\n", sha);
  zl_volume_free(&v);
  return 0;
}
