/* copy.c: `zfs-live vol copy SR KEY --to SR2 [--name N] [--description D]
 * [--key K]` (with --to-host HOST:PORT: into an SR of another host,
 * replicate.c): a copy of a volume into another SR (or its own), by the
 * cheapest correct path the core finds (core/model/copy.c), with progress
 * (progress.c) and the new volume printed as `vol stat` prints one. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

#include "util/banned.h" /* last: after every declaration */

int
cli_vol_copy(struct zl_sr *sr, int argc, char **argv)
{
  const char *to = NULL, *to_type = NULL, *to_host = NULL, *psk = NULL;
  struct zl_copy_args a = {0};
  struct zl_volume v;

  if (cli_take(&argc, argv, "--to", &to) == -1 ||
      cli_take(&argc, argv, "--to-type", &to_type) == -1 ||
      cli_take(&argc, argv, "--name", &a.name) == -1 ||
      cli_take(&argc, argv, "--description", &a.description) == -1 ||
      cli_take(&argc, argv, "--key", &a.key) == -1 ||
      cli_take(&argc, argv, "--to-host", &to_host) == -1 ||
      cli_take(&argc, argv, "--tls-psk", &psk) == -1 ||
      cli_no_more_options(argc, argv) == -1)
    return cli_fail();
  if (argc != 1 || !to)
    return cli_usage(cli_vol_usage, "vol copy SR KEY --to SR2 [--name N] "
                                    "[--description D] [--key K]");
  if (to_host && a.key)
    return cli_usage(cli_vol_usage, "vol copy --to-host: the destination names the copy "
                                    "(--key is for copies on this host)");
  if (to_host)
    return cli_vol_copy_remote(sr, argv[0], to_host, to, to_type, psk, a.name,
                               a.description);
  if (psk)
    return cli_usage(cli_vol_usage, "vol copy: --tls-psk goes with --to-host");
  struct zl_sr *dst = strcmp(to, zl_sr_key(sr)) == 0 ? sr : cli_open_sr(to_type, to);
  if (!dst)
    return cli_fail();
  struct cli_progress st;
  struct zl_progress p;
  cli_progress_init(&p, &st, "copy");
  int r = zl_vol_copy(sr, argv[0], dst, &a, &p, &v);
  cli_progress_done(&st);
  if (r == 0) {
    r = cli_vol_show(dst, &v);
    zl_volume_free(&v);
  } else {
    r = cli_fail();
  }
  if (dst != sr)
    zl_sr_close(dst);
  return r;
}
