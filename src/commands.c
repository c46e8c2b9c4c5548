/* commands.c: the dispatch table (see commands.h). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "commands.h"
#include "ganeti/ganeti.h"
#include "smapi/smapi.h"

#include "util/banned.h" /* last: after every declaration */

/* The table's own commands (below the table: they read it). */
static int install_layout(int argc, char **argv);

#define V   IN_VOLUME
#define D   IN_DATAPATH
#define C   IN_CLI
#define G   IN_GANETI
#define SR  NEEDS_SR
#define KEY NEEDS_KEY
/* CLI rows on an SR: the handler, how many arguments follow the SR (-1:
 * the handler takes its own options) and the usage text (cli_run_sr). */
#define ON_SR(fn, n, u) .cli_sr = fn, .nargs = n, .usage = u
#define ON_VOL          ON_SR
/* A CLI row's usage: what follows its name; its options are read from it
 * (cli/opts.c). */
#define U(u)   .usage = u
#define HIDDEN CLI_HIDDEN

/* Rows name the fields they use; the rest are zero. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
/* clang-format off */
const struct command commands[] = {
  /* name, where, SMAPIv3 handler, CLI handler, feature, summary */
  { "Plugin.Query", V | D, smapi_plugin_query, NULL, NULL, NULL },
  { "Plugin.diagnostics", V | D, smapi_plugin_diagnostics, NULL, NULL, NULL },
  { "SR.probe", V, smapi_sr_probe, NULL, "SR_PROBE", NULL },
  { "SR.create", V, smapi_sr_create, NULL, NULL, NULL },
  { "SR.attach", V, smapi_sr_attach, NULL, NULL, NULL },
  { "SR.detach", V, smapi_sr_detach, NULL, NULL, NULL },
  { "SR.destroy", V | SR, smapi_sr_destroy, NULL, NULL, NULL },
  { "SR.stat", V | SR, smapi_sr_stat_m, NULL, NULL, NULL },
  { "SR.set_name", V | SR, smapi_sr_set_name, NULL, NULL, NULL },
  { "SR.set_description", V | SR, smapi_sr_set_description, NULL, NULL, NULL },
  { "SR.ls", V | SR, smapi_sr_ls, NULL, NULL, NULL },
  { "Volume.create", V | SR, smapi_vol_create, NULL, "VDI_CREATE", NULL },
  { "Volume.snapshot", V | SR | KEY, smapi_vol_snapshot, NULL, "VDI_SNAPSHOT", NULL },
  { "Volume.clone", V | SR | KEY, smapi_vol_clone, NULL, "VDI_CLONE", NULL },
  { "Volume.destroy", V | SR | KEY, smapi_vol_destroy, NULL, "VDI_DESTROY", NULL },
  { "Volume.set_name", V | SR | KEY, smapi_vol_set_name, NULL, NULL, NULL },
  { "Volume.set_description", V | SR | KEY, smapi_vol_set_description, NULL, NULL, NULL },
  { "Volume.set", V | SR | KEY, smapi_vol_set, NULL, NULL, NULL },
  { "Volume.unset", V | SR | KEY, smapi_vol_unset, NULL, NULL, NULL },
  { "Volume.resize", V | SR | KEY, smapi_vol_resize, NULL, "VDI_RESIZE", NULL },
  { "Volume.stat", V | SR | KEY, smapi_vol_stat, NULL, NULL, NULL },
  { "Volume.revert", V | SR | KEY, smapi_vol_revert, NULL, "VDI_REVERT", NULL },
  /* changed block tracking: VDI_CONFIG_CBT stands for all five */
  { "Volume.enable_cbt", V | SR | KEY, smapi_vol_enable_cbt, NULL, "VDI_CONFIG_CBT", NULL },
  { "Volume.disable_cbt", V | SR | KEY, smapi_vol_disable_cbt, NULL, NULL, NULL },
  { "Volume.list_changed_blocks", V | SR | KEY, smapi_vol_list_changed_blocks, NULL, NULL, NULL },
  { "Volume.data_destroy", V | SR | KEY, smapi_vol_data_destroy, NULL, NULL, NULL },
  { "Volume.compare", V | SR | KEY, smapi_vol_compare, NULL, NULL, NULL },

  { "Datapath.open", D, smapi_dp_open, NULL, "NONPERSISTENT", NULL },
  { "Datapath.attach", D, smapi_dp_attach, NULL, NULL, NULL },
  { "Datapath.activate", D, smapi_dp_activate, NULL, NULL, NULL },
  { "Datapath.activate_readonly", D, smapi_dp_activate_readonly, NULL, NULL, NULL },
  { "Datapath.deactivate", D, smapi_dp_deactivate, NULL, NULL, NULL },
  { "Datapath.detach", D, smapi_dp_detach, NULL, NULL, NULL },
  { "Datapath.close", D, smapi_dp_close, NULL, NULL, NULL },
  { "Datapath.import_activate", D, smapi_dp_import_activate, NULL, "VDI_MIRROR_IN", NULL },
  /* SXM (smapi/data.c) */
  { "Data.mirror", D | FEATURE_OF_VOLUME, smapi_data_mirror, NULL, "VDI_MIRROR", NULL },
  { "Data.stat", D, smapi_data_stat, NULL, NULL, NULL },
  { "Data.cancel", D, smapi_data_cancel, NULL, NULL, NULL },
  { "Data.destroy", D, smapi_data_destroy, NULL, NULL, NULL },
  { "Data.ls", D, smapi_data_ls, NULL, NULL, NULL },

  /* Ganeti ExtStorage: the provider's scripts (ganeti/extstorage.c) */
  { "create", G, NULL, gnt_create, NULL, NULL },
  { "attach", G, NULL, gnt_attach, NULL, NULL },
  { "detach", G, NULL, gnt_detach, NULL, NULL },
  { "remove", G, NULL, gnt_remove, NULL, NULL },
  { "grow", G, NULL, gnt_grow, NULL, NULL },
  { "setinfo", G, NULL, gnt_setinfo, NULL, NULL },
  { "verify", G, NULL, gnt_verify, NULL, NULL },
  { "snapshot", G, NULL, gnt_snapshot, NULL, NULL },
  { "open", G, NULL, gnt_open, NULL, NULL },
  { "close", G, NULL, gnt_close, NULL, NULL },

  { "sr create", C, NULL, cli_sr_create, NULL, "create an SR (--type, --path)",
    U("--type TYPE --path DIR [--name N] [--description D] [--uuid UUID]\n"
    "                   [--provisioning thin|thick]") },
  { "sr probe", C, NULL, cli_sr_probe, NULL, "look for SRs at a place (--type, --path)",
    U("--type TYPE --path DIR") },
  { "sr stat", C | SR, NULL, NULL, NULL, "show an SR", ON_SR(cli_sr_stat, 0, "SR") },
  { "sr ls", C | SR, NULL, NULL, NULL, "list an SR's volumes", ON_VOL(cli_vol_list, 0, "SR") },
  { "sr set-name", C | SR, NULL, NULL, NULL, "rename an SR", ON_SR(cli_sr_set_name, 1, "SR NAME") },
  { "sr set-description", C | SR, NULL, NULL, NULL, "describe an SR", ON_SR(cli_sr_set_description, 1, "SR TEXT") },
  { "sr destroy", C | SR, NULL, NULL, NULL, "destroy an empty SR", ON_SR(cli_sr_destroy, 0, "SR") },
  { "vol create", C | SR, NULL, NULL, NULL, "create a volume (--name, --size)", ON_VOL(cli_vol_create, -1, "SR --name N --size SIZE [--description D] [--key K]\n"
    "                       [--thin|--thick] [--sharable]") },
  { "vol list", C | SR, NULL, NULL, NULL, "list volumes", ON_VOL(cli_vol_list, 0, "SR") },
  { "vol stat", C | SR, NULL, NULL, NULL, "show a volume", ON_VOL(cli_vol_stat, 1, "SR KEY") },
  { "vol snapshot", C | SR, NULL, NULL, NULL, "snapshot a volume (read-only)", ON_VOL(cli_vol_snapshot, -1, "SR KEY [--key NEW]") },
  { "vol clone", C | SR, NULL, NULL, NULL, "clone a volume (writable)", ON_VOL(cli_vol_clone, -1, "SR KEY [--key NEW]") },
  { "vol destroy", C | SR, NULL, NULL, NULL, "destroy a volume", ON_VOL(cli_vol_destroy, 1, "SR KEY") },
  { "vol resize", C | SR, NULL, NULL, NULL, "grow a volume", ON_VOL(cli_vol_resize, 2, "SR KEY SIZE") },
  { "vol revert", C | SR, NULL, NULL, NULL, "revert a volume to a snapshot (--to)", ON_VOL(cli_vol_revert, -1, "SR KEY --to SNAPSHOT") },
  { "vol rename", C | SR, NULL, NULL, NULL, "set a volume's name", ON_VOL(cli_vol_rename, 2, "SR KEY NAME") },
  { "vol set-description", C | SR, NULL, NULL, NULL, "set a volume's description", ON_VOL(cli_vol_set_description, 2, "SR KEY TEXT") },
  { "vol set", C | SR, NULL, NULL, NULL, "set a key (as XAPI's Volume.set)", ON_VOL(cli_vol_set, 3, "SR KEY NAME VALUE") },
  { "vol unset", C | SR, NULL, NULL, NULL, "remove a key", ON_VOL(cli_vol_unset, 2, "SR KEY NAME") },
  { "vol adopt", C, NULL, cli_vol_adopt, NULL,
    "take an existing raw file, zvol or dataset into an SR (no copy)",
    U("SR SOURCE [--key K] [--name N] [--description D]\n"
    "  SOURCE: a raw file on the file SR's filesystem (moved in, not copied), or a\n"
    "  zvol or dataset (holding disk.img) of the ZFS SR's pool (renamed into it)") },
  { "vol xen-disk", C, NULL, cli_vol_xen_disk, NULL,
    "print a volume's Xen disk spec (--driver phy|file|tap|tap2)",
    U("SR KEY [--driver phy|file|tap|tap2] [--vdev VDEV] [--readonly]") },
  { "vol takeover", C, NULL, cli_vol_takeover, NULL,
    "open a volume exclusively on this node, dropping other nodes' opens",
    U("SR KEY [--node NAME] [--domain D] [--as-host UUID]\n"
    "  for a node or host that died with the volume in use: drops other Ganeti nodes'\n"
    "  opens, and takes over an XAPI activation held by another host (a new\n"
    "  generation; that host's server fences itself within the lease)") },
  { "vol write", C | SR, NULL, NULL, NULL, "write stdin into a volume (--offset)", ON_VOL(cli_vol_write, -1, "SR KEY [--offset OFFSET] < DATA") },
  { "vol read", C | SR, NULL, NULL, NULL, "read a volume to stdout", ON_VOL(cli_vol_read, -1, "SR KEY [--offset OFFSET] [--length LENGTH] > DATA") },
  { "serve", C, NULL, cli_serve, NULL, "the NBD server (--socket, --tcp, --tls...)",
    U("[--socket PATH] [--tcp [HOST]:PORT] [--tls=off|on|require]\n"
    "                [--tls-psk FILE] [--tls-certificates DIR] [--daemon]\n"
    "                [--pidfile FILE] [--no-uring] [--control PATH]") },
  /* internal: Datapath.attach of a remote volume starts it (nbd/relay.c) */
  { "relay", C | HIDDEN, NULL, cli_relay, NULL, NULL,
    U("--listen SOCKET --to HOST:PORT --psk FILE [--pidfile FILE]") },
  { "doctor", C, NULL, cli_doctor, NULL, "check the host: plugins, provider, NBD, TLS, kernel, ZFS",
    U("[--pool POOL] [--root DIR]") },
  { "vol export", C, NULL, cli_vol_export, NULL, "serve a volume over NBD (--readonly)",
    U("SR KEY [--readonly]") },
  { "vol unexport", C | SR, NULL, NULL, NULL, "stop serving a volume", ON_VOL(cli_vol_unexport, 1, "SR KEY") },
  { "vol cbt-enable", C | SR, NULL, NULL, NULL, "track a volume's changed blocks", ON_VOL(cli_vol_cbt_enable, 1, "SR KEY") },
  { "vol cbt-disable", C | SR, NULL, NULL, NULL, "stop tracking changed blocks", ON_VOL(cli_vol_cbt_disable, 1, "SR KEY") },
  { "vol changed-blocks", C | SR, NULL, NULL, NULL, "byte ranges changed between two snapshots (FROM TO)", ON_VOL(cli_vol_changed_blocks, 2, "SR FROM TO") },
  { "vol data-destroy", C | SR, NULL, NULL, NULL, "keep only a snapshot's CBT metadata", ON_VOL(cli_vol_data_destroy, 1, "SR SNAPSHOT") },
  { "fault-points", C | HIDDEN, NULL, cli_fault_points, NULL, "list fault-injection points",
    U("") },
  { "install-layout", C | HIDDEN, NULL, install_layout, NULL,
    "list the plugin links to install",
    U("[--ganeti | --ganeti-parameters]") },
  { "version", C, NULL, command_version, NULL, "print the version",
    U("") },
  { "help", C, NULL, command_help, NULL, "this list",
    U("[COMMAND]") },
{ NULL, 0, NULL, NULL, NULL, NULL },
};
/* clang-format on */
#pragma GCC diagnostic pop

const struct command *
command_find(const char *name, unsigned where)
{
  for (const struct command *c = commands; c->name; c++) {
    if ((c->where & where) && strcasecmp(c->name, name) == 0)
      return c;
  }
  return NULL;
}

int
command_smapi_target(const char *method, enum plugin_kind kind, struct smapi_target *t)
{
  enum { MAX_FEATURES = 32 };
  static const char *features[2][MAX_FEATURES + 1];
  unsigned where = kind == PLUGIN_VOLUME ? IN_VOLUME : IN_DATAPATH;
  const char **f = features[kind == PLUGIN_VOLUME ? 0 : 1];
  const struct command *cmd = command_find(method, where);

  if (!cmd || !cmd->smapi)
    return -1;
  /* The plugin's features, from its rows, less those this host's XAPI
   * cannot call (core/host/platform.c). */
  struct zl_platform p;
  size_t n = 0;
  zl_platform_detect(&p);
  for (const struct command *c = commands; c->name && n < MAX_FEATURES; c++) {
    unsigned declared_in = (c->where & FEATURE_OF_VOLUME) ? IN_VOLUME : c->where;
    if (c->feature && (declared_in & where) && zl_platform_feature_ok(&p, c->feature))
      f[n++] = c->feature;
  }
  f[n] = NULL;
  t->method = cmd->name;
  t->fn = cmd->smapi;
  t->needs = ((cmd->where & NEEDS_SR) ? SMAPI_NEEDS_SR : 0) |
             ((cmd->where & NEEDS_KEY) ? SMAPI_NEEDS_KEY : 0);
  t->features = f;
  return 0;
}

/* The plugin directories and their links, relative to the
 * xapi-storage-script root, generated from the dispatch table:
 * "volume/org.xen.xapi.storage.<type>/<Method>" and
 * "datapath/<scheme>/<Method>".  With --ganeti: the scripts of the Ganeti
 * provider directory; with --ganeti-parameters: its parameters.list. */
static int
install_layout(int argc, char **argv)
{
  bool any_datapath = false;

  if (cli_json) /* internal: lines for scripts/install.sh */
    return cli_usage(NULL, "install-layout prints lines, not JSON");
  if (argc == 1 && strcmp(argv[0], "--ganeti") == 0) {
    for (const struct command *c = commands; c->name; c++) {
      if (c->where & IN_GANETI)
        printf("%s\n", c->name);
    }
    return 0;
  }

  if (argc == 1 && strcmp(argv[0], "--ganeti-parameters") == 0) {
    char *list = gnt_parameters_list();
    if (!list)
      return 1;
    fputs(list, stdout);
    free(list);
    return 0;
  }
  if (argc != 0)
    return cli_usage("zfs-live install-layout [--ganeti | --ganeti-parameters]",
                     "unexpected argument '%s'", argv[0]);

  for (const char *const *t = zl_sr_types(); *t; t++) {
    for (const struct command *c = commands; c->name; c++) {
      if (c->where & IN_VOLUME)
        printf("volume/org.xen.xapi.storage.%s/%s\n", *t, c->name);
    }
  }
  for (const struct command *c = commands; c->name; c++)
    any_datapath |= (c->where & IN_DATAPATH) && strncmp(c->name, "Plugin.", 7) != 0;
  for (const struct command *c = commands; any_datapath && c->name; c++) {
    if (c->where & IN_DATAPATH)
      printf("datapath/zfs-live/%s\n", c->name);
  }
  return 0;
}
