/* commands.c: the dispatch table (see commands.h). */
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "commands.h"
#include "ganeti/ganeti.h"
#include "smapi/smapi.h"

#define V IN_VOLUME
#define D IN_DATAPATH
#define C IN_CLI
#define G IN_GANETI

/* clang-format off */
const struct command commands[] = {
  /* name, where, SMAPIv3 handler, CLI handler, feature, summary */
  { "Plugin.Query", V | D, smapi_plugin_query, NULL, NULL, NULL },
  { "Plugin.diagnostics", V | D, smapi_plugin_diagnostics, NULL, NULL, NULL },
  { "SR.probe", V, smapi_sr_probe, NULL, "SR_PROBE", NULL },
  { "SR.create", V, smapi_sr_create, NULL, NULL, NULL },
  { "SR.attach", V, smapi_sr_attach, NULL, NULL, NULL },
  { "SR.detach", V, smapi_sr_detach, NULL, NULL, NULL },
  { "SR.destroy", V, smapi_sr_destroy, NULL, NULL, NULL },
  { "SR.stat", V, smapi_sr_stat_m, NULL, NULL, NULL },
  { "SR.set_name", V, smapi_sr_set_name, NULL, NULL, NULL },
  { "SR.set_description", V, smapi_sr_set_description, NULL, NULL, NULL },
  { "SR.ls", V, smapi_sr_ls, NULL, NULL, NULL },
  { "Volume.create", V, smapi_vol_create, NULL, "VDI_CREATE", NULL },
  { "Volume.snapshot", V, smapi_vol_snapshot, NULL, "VDI_SNAPSHOT", NULL },
  { "Volume.clone", V, smapi_vol_clone, NULL, "VDI_CLONE", NULL },
  { "Volume.destroy", V, smapi_vol_destroy, NULL, "VDI_DESTROY", NULL },
  { "Volume.set_name", V, smapi_vol_set_name, NULL, NULL, NULL },
  { "Volume.set_description", V, smapi_vol_set_description, NULL, NULL, NULL },
  { "Volume.set", V, smapi_vol_set, NULL, NULL, NULL },
  { "Volume.unset", V, smapi_vol_unset, NULL, NULL, NULL },
  { "Volume.resize", V, smapi_vol_resize, NULL, "VDI_RESIZE", NULL },
  { "Volume.stat", V, smapi_vol_stat, NULL, NULL, NULL },
  { "Volume.revert", V, smapi_vol_revert, NULL, "VDI_REVERT", NULL },
  /* changed block tracking: VDI_CONFIG_CBT stands for all five */
  { "Volume.enable_cbt", V, smapi_vol_enable_cbt, NULL, "VDI_CONFIG_CBT", NULL },
  { "Volume.disable_cbt", V, smapi_vol_disable_cbt, NULL, NULL, NULL },
  { "Volume.list_changed_blocks", V, smapi_vol_list_changed_blocks, NULL, NULL, NULL },
  { "Volume.data_destroy", V, smapi_vol_data_destroy, NULL, NULL, NULL },
  { "Volume.compare", V, smapi_vol_compare, NULL, NULL, NULL },

  { "Datapath.open", D, smapi_dp_open, NULL, "NONPERSISTENT", NULL },
  { "Datapath.attach", D, smapi_dp_attach, NULL, NULL, NULL },
  { "Datapath.activate", D, smapi_dp_activate, NULL, NULL, NULL },
  { "Datapath.activate_readonly", D, smapi_dp_activate_readonly, NULL, NULL, NULL },
  { "Datapath.deactivate", D, smapi_dp_deactivate, NULL, NULL, NULL },
  { "Datapath.detach", D, smapi_dp_detach, NULL, NULL, NULL },
  { "Datapath.close", D, smapi_dp_close, NULL, NULL, NULL },

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

  { "sr create", C, NULL, cli_sr_create, NULL, "create an SR (--type, --path)" },
  { "sr probe", C, NULL, cli_sr_probe, NULL, "look for SRs at a place (--type, --path)" },
  { "sr stat", C, NULL, cli_sr_stat, NULL, "show an SR" },
  { "sr ls", C, NULL, cli_vol_list_cmd, NULL, "list an SR's volumes" },
  { "sr set-name", C, NULL, cli_sr_set_name, NULL, "rename an SR" },
  { "sr set-description", C, NULL, cli_sr_set_description, NULL, "describe an SR" },
  { "sr destroy", C, NULL, cli_sr_destroy, NULL, "destroy an empty SR" },
  { "vol create", C, NULL, cli_vol_create, NULL, "create a volume (--name, --size)" },
  { "vol list", C, NULL, cli_vol_list_cmd, NULL, "list volumes" },
  { "vol stat", C, NULL, cli_vol_stat, NULL, "show a volume" },
  { "vol snapshot", C, NULL, cli_vol_snapshot, NULL, "snapshot a volume (read-only)" },
  { "vol clone", C, NULL, cli_vol_clone, NULL, "clone a volume (writable)" },
  { "vol destroy", C, NULL, cli_vol_destroy, NULL, "destroy a volume" },
  { "vol resize", C, NULL, cli_vol_resize, NULL, "grow a volume" },
  { "vol revert", C, NULL, cli_vol_revert, NULL, "revert a volume to a snapshot (--to)" },
  { "vol rename", C, NULL, cli_vol_rename, NULL, "set a volume's name" },
  { "vol set-description", C, NULL, cli_vol_set_description, NULL,
    "set a volume's description" },
  { "vol set", C, NULL, cli_vol_set, NULL, "set a key (as XAPI's Volume.set)" },
  { "vol unset", C, NULL, cli_vol_unset, NULL, "remove a key" },
  { "vol adopt", C, NULL, cli_vol_adopt, NULL,
    "take an existing raw file, zvol or dataset into an SR (no copy)" },
  { "vol xen-disk", C, NULL, cli_vol_xen_disk, NULL,
    "print a volume's Xen disk spec (--driver phy|file|tap|tap2)" },
  { "vol takeover", C, NULL, cli_vol_takeover, NULL,
    "open a volume exclusively on this node, dropping other nodes' opens" },
  { "vol write", C, NULL, cli_vol_write, NULL, "write stdin into a volume (--offset)" },
  { "vol read", C, NULL, cli_vol_read, NULL, "read a volume to stdout" },
  { "serve", C, NULL, cli_serve, NULL, "the NBD server (--socket, --tcp, --tls...)" },
  { "doctor", C, NULL, cli_doctor, NULL, "what this host offers (--pool P, --json)" },
  { "vol export", C, NULL, cli_vol_export, NULL, "serve a volume over NBD (--readonly)" },
  { "vol unexport", C, NULL, cli_vol_unexport, NULL, "stop serving a volume" },
  { "vol cbt-enable", C, NULL, cli_vol_cbt_enable, NULL, "track a volume's changed blocks" },
  { "vol cbt-disable", C, NULL, cli_vol_cbt_disable, NULL, "stop tracking changed blocks" },
  { "vol changed-blocks", C, NULL, cli_vol_changed_blocks, NULL,
    "byte ranges changed between two snapshots (FROM TO)" },
  { "vol data-destroy", C, NULL, cli_vol_data_destroy, NULL,
    "keep only a snapshot's CBT metadata" },
  { "fault-points", C, NULL, cli_fault_points, NULL, "list fault-injection points" },
  { "install-layout", C, NULL, cli_install_layout, NULL,
    "list the plugin links to install" },
  { "version", C, NULL, cli_version, NULL, "print the version" },
  { "help", C, NULL, cli_help, NULL, "this list" },
  { NULL, 0, NULL, NULL, NULL, NULL },
};/* clang-format on */

const struct command *
command_find(const char *name, unsigned where)
{
  for (const struct command *c = commands; c->name; c++) {
    if ((c->where & where) && strcasecmp(c->name, name) == 0)
      return c;
  }
  return NULL;
}
