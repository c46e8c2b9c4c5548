/* commands.h: the one dispatch table.
 *
 * Every entry point of the binary is one row: SMAPIv3 methods (found by
 * argv[0] basename, case-insensitively, in a plugin directory) and CLI
 * commands (`zfs-live <name> ...`) and Ganeti ExtStorage scripts (found by
 * argv[0] basename in an extstorage/<provider>/ directory).  The install layout (the
 * plugin directories of symlinks) and Plugin.Query's feature list are generated from the
 * same rows, so a symlink exists only for an implemented method.
 */
#ifndef ZL_COMMANDS_H
#define ZL_COMMANDS_H

#include "cli/cli.h"
#include "smapi/smapi.h"

/* CLI handlers return an exit status. */
typedef int (*cli_fn)(int argc, char **argv);

#define IN_VOLUME   (1u << 0) /* a method of the volume plugin */
#define IN_DATAPATH (1u << 1) /* a method of the datapath plugin */
#define IN_CLI      (1u << 2) /* a CLI command */
#define IN_GANETI                                                                        \
  (1u << 3) /* a Ganeti ExtStorage script; its handler is in the                         \
             * cli field (an exit status; the request is in                              \
             * the environment) */

/* What a row's handler needs before it runs (git's RUN_SETUP): SMAPIv3
 * methods get the "sr" parameter's SR open (and closed after) and the
 * "key" parameter read (struct smapi_call's sr and key); CLI commands get
 * the SR their first argument names open (cli_sr, cli_run_sr). */
#define NEEDS_SR  (1u << 4)
#define NEEDS_KEY (1u << 5)
/* The row's feature is declared by the volume plugins, not by the plugin
 * whose method it is (Data.mirror: xapi reads VDI_MIRROR from the SR's
 * volume plugin, the method is the datapath's). */
#define FEATURE_OF_VOLUME (1u << 6)
/* An internal CLI command (run by zfs-live itself or its tests): not in
 * the help list. */
#define CLI_HIDDEN (1u << 7)

struct command {
  const char *name;
  unsigned where;
  smapi_fn smapi;
  cli_fn cli;
  const char *feature; /* SMAPIv3 feature the method provides, or NULL */
  const char *summary; /* one line, for help */
  /* NEEDS_SR CLI rows: the handler instead of cli, the number of
   * arguments after the SR (-1: its own options) */
  cli_sr_fn cli_sr;
  int nargs;
  /* CLI rows: the synopsis after the name ("SR KEY [--key NEW]"); the
   * options the command accepts are read from it (cli/opts.c), and help
   * prints it.  NULL: the handler parses its own arguments. */
  const char *usage;
};

extern const struct command commands[];
const struct command *command_find(const char *name, unsigned where);
/* The table's own CLI commands: help lists it, version. */
int command_help(int argc, char **argv);
int command_version(int argc, char **argv);
/* The CLI front end: `zfs-live [--json] COMMAND [SUBCOMMAND] ARGS...`
 * with options anywhere; the exit status (0 ok, 1 failed, 2 usage). */
int command_cli_main(int argc, char **argv);
/* What the SMAPIv3 front end needs to run method in a plugin of that kind
 * (an smapi_lookup_fn); -1 if that plugin has no such method. */
int command_smapi_target(const char *method, enum plugin_kind kind,
                         struct smapi_target *t);

#endif
