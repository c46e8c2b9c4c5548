/* commands.c: the dispatch table (see commands.h), its own commands
 * (install-layout, help, version) and the CLI front end over it. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "commands.h"
#include "ganeti/ganeti.h"
#include "smapi/smapi.h"
#include "util/log.h"

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
  { "vol copy", C | SR, NULL, NULL, NULL, "copy a volume into an SR (--to SR2)",
    ON_VOL(cli_vol_copy, -1, "SR KEY --to SR2 [--to-type TYPE] [--name NAME]\n"
    "                [--description TEXT] [--key NEW]\n"
    "                [--to-host HOST:PORT [--tls-psk FILE]]\n"
    "  the cheapest correct way: a clone in one ZFS pool, zfs send | receive\n"
    "  across pools, else a sparse copy of the data only; --to-host: into SR2\n"
    "  on that host, through its NBD server over TLS with this host's PSK") },
  { "replicate", C | SR, NULL, NULL, NULL,
    "keep a replica of a volume on another host (--to-host, --to)",
    ON_VOL(cli_replicate, -1, "SR KEY --to-host HOST:PORT --to SR2 [--to-type TYPE]\n"
    "                [--tls-psk FILE]\n"
    "  the first run copies the volume; each later run sends only the blocks\n"
    "  changed since the last one (ZFS: zfs send -i between the points; file\n"
    "  SRs: CBT, turned on by the first run).  Over the destination's NBD server\n"
    "  with TLS and this host's PSK; an interrupted run leaves the replica as\n"
    "  the last complete run made it") },
  { "vol write", C | SR, NULL, NULL, NULL, "write stdin into a volume (--offset)", ON_VOL(cli_vol_write, -1, "SR KEY [--offset OFFSET] < DATA") },
  { "vol read", C | SR, NULL, NULL, NULL, "read a volume to stdout", ON_VOL(cli_vol_read, -1, "SR KEY [--offset OFFSET] [--length LENGTH] > DATA") },
  { "serve", C, NULL, cli_serve, NULL, "the NBD server (--socket, --tcp, --tls...)",
    U("[--socket PATH] [--tcp [HOST]:PORT] [--tls=off|on|require]\n"
    "                [--tls-psk FILE] [--tls-certificates DIR] [--daemon]\n"
    "                [--pidfile FILE] [--no-uring] [--control PATH]\n"
    "                [--handshake-timeout SECONDS] [--idle-timeout SECONDS]\n"
    "                [--max-handshakes N] [--max-handshakes-per-address N]") },
  /* internal: Datapath.attach of a remote volume starts it (nbd/relay.c) */
  { "relay", C | HIDDEN, NULL, cli_relay, NULL, NULL,
    U("--listen SOCKET --to HOST:PORT --psk FILE [--pidfile FILE]") },
  { "doctor", C, NULL, cli_doctor, NULL, "check the host: plugins, provider, NBD, TLS, kernel, ZFS",
    U("[--pool POOL] [--root DIR]") },
  { "vol share", C, NULL, cli_vol_share, NULL, "serve a volume over NBD (--readonly)",
    U("SR KEY [--readonly]") },
  { "vol unshare", C | SR, NULL, NULL, NULL, "stop serving a volume", ON_VOL(cli_vol_unshare, 1, "SR KEY") },
  { "vol export", C, NULL, cli_vol_export, NULL,
    "write a volume as an image (--format raw|qcow2|vhd -o FILE|-)",
    U("SR KEY --format raw|qcow2|vhd --output FILE [--no-checksum] [--readonly]\n"
    "  -o FILE is --output FILE; -o - writes the image on stdout.  Without --format:\n"
    "  the old spelling of vol share (deprecated, one release)") },
  { "vol import", C | SR, NULL, NULL, NULL, "a new volume from an image (--format)",
    ON_VOL(cli_vol_import, -1, "SR FILE --format raw|qcow2|vhd [--name NAME] [--key KEY]\n"
    "                [--size SIZE] [--sha256 HEX] [--no-checksum]\n"
    "  FILE - reads a raw image from stdin (--size: its exact length)") },
  /* the old spelling of share/unshare, with a note, for one release */
  { "vol unexport", C | SR, NULL, NULL, NULL, "deprecated: vol unshare", ON_VOL(cli_vol_unexport, 1, "SR KEY") },
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

/* --- the CLI front end over the table: finding the command, help, and the
 * options every command shares.
 *
 *   zfs-live [--json] COMMAND [SUBCOMMAND] [ARGS and OPTIONS in any order]
 *
 * Exit status: 0 done, 1 the operation failed, 2 usage error (unknown
 * command or option, missing value or argument).  --json anywhere: output
 * as JSON, errors as {"error": {...}} on stdout (cli/cli.c).  -h/--help
 * anywhere, or `zfs-live help COMMAND`: that command's help, exit 0. */
static bool
listed(const struct command *c)
{
  return (c->where & IN_CLI) && !(c->where & CLI_HIDDEN);
}

/* Is word the first word of a two-word command ("sr", "vol")? */
static bool
is_group(const char *word)
{
  size_t n = strlen(word);
  for (const struct command *c = commands; c->name; c++) {
    if ((c->where & IN_CLI) && strncmp(c->name, word, n) == 0 && c->name[n] == ' ')
      return true;
  }
  return false;
}

/* The command that argv names (one or two words), and how many words. */
static const struct command *
find(int argc, char **argv, int *words)
{
  const struct command *c = NULL;
  if (argc >= 2) {
    char two[128];
    snprintf(two, sizeof two, "%s %s", argv[0], argv[1]);
    if ((c = command_find(two, IN_CLI))) {
      *words = 2;
      return c;
    }
  }
  *words = 1;
  return argc >= 1 ? command_find(argv[0], IN_CLI) : NULL;
}

static json_t *
command_json(const struct command *c)
{
  char usage[1024];
  snprintf(usage, sizeof usage, "zfs-live %s%s%s", c->name,
           c->usage && c->usage[0] ? " " : "", c->usage ? c->usage : "");
  json_t *j = json_pack("{s:s, s:s?, s:s}", "command", c->name, "summary", c->summary,
                        "usage", usage);
  if (j && c->usage)
    json_object_set_new(j, "options", cli_usage_options(c->usage));
  return j;
}

/* The list of commands (of one group, or all), on out. */
static int
list(FILE *out, const char *group)
{
  size_t n = group ? strlen(group) : 0;

  if (cli_json && out == stdout) {
    json_t *a = json_array();
    for (const struct command *c = commands; a && c->name; c++) {
      if (listed(c) && (!group || (strncmp(c->name, group, n) == 0 && c->name[n] == ' ')))
        json_array_append_new(a, command_json(c));
    }
    return cli_print_json(json_pack("{s:s, s:o}", "version", ZFS_LIVE_VERSION, "commands",
                                    a ? a : json_null()));
  }
  if (group)
    fprintf(out,
            "usage: zfs-live %s SUBCOMMAND ...   (zfs-live %s SUBCOMMAND --help)\n\n",
            group, group);
  else
    fprintf(out,
            "zfs-live %s: storage driver for Xen toolstacks (XAPI SMAPIv3, Ganeti)\n\n"
            "usage: zfs-live COMMAND [ARGS...] [--json]   (zfs-live help COMMAND)\n\n",
            ZFS_LIVE_VERSION);
  for (const struct command *c = commands; c->name; c++) {
    if (listed(c) && (!group || (strncmp(c->name, group, n) == 0 && c->name[n] == ' ')))
      fprintf(out, "  %-22s %s\n", c->name, c->summary ? c->summary : "");
  }
  if (!group)
    fprintf(out, "\nExit status: 0 done, 1 failed, 2 usage error.  As an XAPI plugin it\n"
                 "runs under the method names (SR.create, ...); see zfs-live(8).\n");
  return 0;
}

static void
common_options(const struct command *c)
{
  printf("\noptions of every command:\n");
  if (cli_usage_takes_sr(c->usage))
    printf("  --type TYPE    the SR's type where SR alone does not tell (file-live,\n"
           "                 zfs-live, ...)\n");
  printf("  --json         output as JSON; errors as {\"error\": {\"code\": ...,\n"
         "                 \"message\": ..., \"status\": 1|2}} on stdout\n"
         "  -h, --help     this help\n");
  if (c->usage && (strstr(c->usage, "SIZE") || strstr(c->usage, "OFFSET")))
    printf("\nSIZE, OFFSET, LENGTH: bytes, or with a unit as qemu-img takes them: 1.5G,\n"
           "512M, 10GiB, 4k (b k M G T P E, powers of 1024)\n");
}

/* One command's help on stdout. */
static int
help_one(const struct command *c)
{
  if (cli_json)
    return cli_print_json(command_json(c));
  printf("usage: zfs-live %s%s%s\n", c->name, c->usage && c->usage[0] ? " " : "",
         c->usage ? c->usage : "[ARGS...]");
  if (c->summary)
    printf("\n%s.\n", c->summary);
  common_options(c);
  printf("\nExit status: 0 done, 1 failed, 2 usage error.  See zfs-live(8).\n");
  return 0;
}

/* `zfs-live help [COMMAND...]`, `zfs-live CMD --help`, `zfs-live GROUP`. */
static int
help_for(int argc, char **argv, bool asked)
{
  int words;
  const struct command *c = find(argc, argv, &words);

  if (argc == 0)
    return asked ? list(stdout, NULL) : (list(stderr, NULL), 2);
  if (c && words == argc)
    return help_one(c);
  if (argc == 1 && is_group(argv[0])) {
    if (asked)
      return list(stdout, argv[0]);
    cli_set_command(argv[0], NULL);
    list(stderr, argv[0]);
    return cli_usage(NULL, "%s needs a subcommand", argv[0]);
  }
  return cli_usage(NULL, "unknown command '%s%s%s'; try 'zfs-live help'", argv[0],
                   argc > 1 ? " " : "", argc > 1 ? argv[1] : "");
}

int
command_help(int argc, char **argv)
{
  return help_for(argc, argv, true);
}

int
command_version(int argc, char **argv)
{
  (void)argc, (void)argv;
  if (cli_json)
    return cli_print_json(json_pack("{s:s}", "version", ZFS_LIVE_VERSION));
  printf("zfs-live %s\n", ZFS_LIVE_VERSION);
  return 0;
}

/* Take --json, -h and --help out of argv wherever they stand (before
 * "--"); the rest stays in order.  Returns the new argc. */
static int
take_global(int argc, char **argv, bool *help)
{
  int out = 0, i = 0;

  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    if (strcmp(argv[i], "--json") == 0)
      cli_json = true;
    else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
      *help = true;
    else
      argv[out++] = argv[i];
  }
  for (; i < argc; i++)
    argv[out++] = argv[i];
  argv[out] = NULL;
  return out;
}

static int
run(const struct command *c, int argc, char **argv)
{
  if (c->where & NEEDS_SR)
    return cli_run_sr(c->cli_sr, c->nargs, c->usage, argc, argv);
  return c->cli(argc, argv);
}

int
command_cli_main(int argc, char **argv)
{
  bool help = false;
  int words, r;

  argc = take_global(argc - 1, argv + 1, &help);
  argv++;
  if (argc >= 1 && strcmp(argv[0], "--version") == 0)
    return command_version(0, NULL);
  const struct command *c = find(argc, argv, &words);
  if (!c || help)
    return help_for(c ? words : argc, argv, help);

  zl_log_set_tag(c->name);
  cli_set_command(c->name, c->usage);
  if (!c->usage) /* the handler parses its own arguments */
    return run(c, argc - words, argv + words);
  /* getopt_long's argv[0] is the command; options may stand anywhere */
  char **args;
  r = cli_parse_options(c->usage, argc - words + 1, argv + words - 1, &args, &help);
  if (r != 0)
    return r;
  int n = 0;
  while (args[n])
    n++;
  /* handlers may reorder and drop entries (cli_take): give them a copy
   * of the array and free what args holds */
  char **view = calloc((size_t)n + 1, sizeof *view);
  if (!view) {
    cli_argv_free(args);
    return 1;
  }
  memcpy(view, args, (size_t)n * sizeof *view);
  r = help ? help_one(c) : run(c, n, view);
  free(view);
  cli_argv_free(args);
  /* --json: a command that succeeded says so in JSON even with nothing to
   * report */
  if (r == 0 && cli_json && !cli_json_written)
    cli_print_json(json_object());
  return r;
}
