/* vol-ganeti.c: `zfs-live vol adopt | xen-disk | takeover`, the workflows
 * of Ganeti's file-storage design that an operator runs by hand. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "ganeti/ganeti.h"
#include "smapi/smapi.h"
#include "util/error.h"

#include "util/banned.h" /* last: after every declaration */

#define ADOPT_USAGE                                                                      \
  "zfs-live vol adopt SR SOURCE [--key K] [--name N] [--description D]\n"                \
  "  SOURCE: a raw file on the file SR's filesystem (moved in, not copied), or a\n"      \
  "  zvol or dataset (holding disk.img) of the ZFS SR's pool (renamed into it)"
#define XEN_USAGE                                                                        \
  "zfs-live vol xen-disk SR KEY [--driver phy|file|tap|tap2] [--vdev xvda] [--readonly]"
#define TAKEOVER_USAGE                                                                   \
  "zfs-live vol takeover SR KEY [--node NAME] [--domain D]\n"                            \
  "  for a node or host that died with the volume in use: drops other Ganeti nodes'\n"   \
  "  opens, and takes over an XAPI activation held by another host (a new\n"             \
  "  generation; that host's server fences itself within the lease)"

int
cli_vol_adopt(int argc, char **argv)
{
  const char *type = NULL, *key = NULL, *name = NULL, *desc = "";
  struct zl_volume v;

  argc = cli_common_opts(argc, argv, &type);
  if (cli_take(&argc, argv, "--key", &key) == -1 ||
      cli_take(&argc, argv, "--name", &name) == -1 ||
      cli_take(&argc, argv, "--description", &desc) == -1 ||
      cli_no_more_options(argc, argv) == -1)
    return cli_fail();
  if (argc != 2)
    return cli_usage(ADOPT_USAGE, "vol adopt needs SR and SOURCE");
  struct zl_sr *sr = cli_open_sr(type, argv[0]);
  if (!sr)
    return cli_fail();
  const char *base = strrchr(argv[1], '/') ? strrchr(argv[1], '/') + 1 : argv[1];
  int r = zl_vol_adopt(sr, argv[1], key, name ? name : base, desc, &v);
  if (r == -1) {
    zl_sr_close(sr);
    return cli_fail();
  }
  if (cli_json) {
    json_t *j = json_pack("{s:s, s:s, s:I}", "key", v.key, "name", v.name, "virtual_size",
                          (json_int_t)v.virtual_size);
    r = cli_print_json(j);
  } else {
    printf("%s\n", v.key);
  }
  zl_volume_free(&v);
  zl_sr_close(sr);
  return r;
}

int
cli_vol_xen_disk(int argc, char **argv)
{
  const char *type = NULL, *driver = "phy", *vdev = "xvda";
  char path[512], spec[700];
  struct zl_volume v;
  bool ro;

  argc = cli_common_opts(argc, argv, &type);
  ro = cli_flag(&argc, argv, "--readonly");
  if (cli_take(&argc, argv, "--driver", &driver) == -1 ||
      cli_take(&argc, argv, "--vdev", &vdev) == -1 ||
      cli_no_more_options(argc, argv) == -1)
    return cli_fail();
  if (argc != 2)
    return cli_usage(XEN_USAGE, "vol xen-disk needs SR and KEY");
  /* refuse a bad driver or vdev before anything is set up */
  if (gnt_xen_disk_spec(driver, "/", vdev, ro, spec, sizeof spec) == -1)
    return cli_fail();
  struct zl_sr *sr = cli_open_sr(type, argv[0]);
  if (!sr)
    return cli_fail();
  int r = zl_vol_stat(sr, argv[1], &v);
  if (r == 0) {
    ro |= v.read_only;
    zl_volume_free(&v);
    if (gnt_xen_driver_is_phy(driver)) {
      /* phy: wants a block device: the zvol, or a loop device (set up as
       * Ganeti's attach does, released by its detach) */
      struct zl_blockdev b;
      r = zl_vol_blockdev(sr, argv[1], &b);
      snprintf(path, sizeof path, "%s", b.path);
    } else {
      r = zl_vol_data_path(sr, argv[1], path, sizeof path);
      if (r == 0 && strncmp(path, "/dev/", 5) == 0) {
        zl_error(EINVAL, "volume %s is a block device (%s): use --driver phy", argv[1],
                 path);
        r = -1;
      }
    }
  }
  if (r == 0)
    r = gnt_xen_disk_spec(driver, path, vdev, ro, spec, sizeof spec);
  zl_sr_close(sr);
  if (r == -1)
    return cli_fail();
  if (cli_json)
    return cli_print_json(json_pack("{s:s}", "disk", spec));
  printf("%s\n", spec);
  return 0;
}

int
cli_vol_takeover(int argc, char **argv)
{
  const char *type = NULL, *node = NULL, *domain = "takeover", *as_host = NULL;
  char from[128];
  int dropped = 0;

  argc = cli_common_opts(argc, argv, &type);
  if (cli_take(&argc, argv, "--node", &node) == -1 ||
      cli_take(&argc, argv, "--domain", &domain) == -1 ||
      cli_take(&argc, argv, "--as-host", &as_host) == -1 ||
      cli_no_more_options(argc, argv) == -1)
    return cli_fail();
  if (argc != 2)
    return cli_usage(TAKEOVER_USAGE, "vol takeover needs SR and KEY");
  /* a shared SR whose pool is on another host: done there, for this host */
  int remote = as_host ? 0 : smapi_remote_takeover(argv[0], argv[1], domain);
  if (remote != 0)
    return remote == 1 ? 0 : cli_fail();
  zl_dp_set_peer(as_host); /* the storage host, running it for that host */
  struct zl_sr *sr = cli_open_sr(type, argv[0]);
  if (!sr)
    return cli_fail();
  if (!node)
    node = zl_node_name();
  /* an XAPI activation (another host's is taken over), else Ganeti's opens */
  int r = zl_dp_takeover(sr, argv[1], domain, from, sizeof from);
  if (r == 0)
    r = zl_vol_takeover(sr, argv[1], node, &dropped);
  zl_sr_close(sr);
  if (r == -1)
    return cli_fail();
  if (from[0]) {
    fprintf(stderr, "zfs-live: volume %s: activation taken over from host %s\n", argv[1],
            from);
    return 0;
  }
  if (r == 1) {
    fprintf(stderr, "zfs-live: volume %s: no other host holds its activation\n", argv[1]);
    return 0;
  }
  fprintf(stderr,
          "zfs-live: volume %s is open exclusively on %s (%d other open%s dropped)\n",
          argv[1], node, dropped, dropped == 1 ? "" : "s");
  return 0;
}
