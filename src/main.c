/* main.c: one binary, many names.
 *
 *   <root>/volume/org.xen.xapi.storage.<type>/<Method> --json
 *       an SMAPIv3 volume-plugin call; the directory names the SR type
 *   <root>/datapath/<scheme>/<Method> --json
 *       an SMAPIv3 datapath-plugin call
 *   <search path>/extstorage/<provider>/<action>
 *       a Ganeti ExtStorage script (no arguments; the request is in the
 *       environment); also any directory holding parameters.list
 *   zfs-live <command> [<subcommand>] ...
 *       the CLI
 * Dispatch is one lookup in commands[] (commands.c).
 */
#include <errno.h>
#include <libgen.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "ganeti/ganeti.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

int
main(int argc, char **argv)
{
  char self[PATH_MAX];
  const struct command *cmd = NULL;
  int skip = 1;

  snprintf(self, sizeof self, "%s", argc > 0 ? argv[0] : "zfs-live");
  const char *base = basename(self);

  if ((cmd = command_find(base, IN_GANETI)) && gnt_is_provider_script(argv[0]))
    return cmd->cli(argc, argv);

  /* Method names always contain a dot ("SR.create"); ours never does. */
  if (strchr(base, '.') && strcmp(base, "zfs-live") != 0)
    return smapi_main(argc, argv, base, command_smapi_target);

  zl_log_init("zfs-live", LOG_WARNING);
  if (argc < 2)
    return command_help(0, NULL) == 0 ? 2 : 1;
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
    return command_help(0, NULL);
  if (strcmp(argv[1], "--version") == 0)
    return command_version(0, NULL);
  if (argc >= 3) {
    char two[128];
    snprintf(two, sizeof two, "%s %s", argv[1], argv[2]);
    if ((cmd = command_find(two, IN_CLI)))
      skip = 3;
  }
  if (!cmd && (cmd = command_find(argv[1], IN_CLI)))
    skip = 2;
  if (!cmd) {
    fprintf(stderr, "zfs-live: unknown command '%s'%s%s; try 'zfs-live help'\n", argv[1],
            argc >= 3 ? " " : "", argc >= 3 ? argv[2] : "");
    return 2;
  }
  zl_log_set_tag(cmd->name);
  if (cmd->where & NEEDS_SR)
    return cli_run_sr(cmd->cli_sr, cmd->nargs, cmd->usage, argc - skip, argv + skip);
  return cmd->cli(argc - skip, argv + skip);
}
