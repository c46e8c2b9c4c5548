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

  snprintf(self, sizeof self, "%s", argc > 0 ? argv[0] : "zfs-live");
  const char *base = basename(self);

  if ((cmd = command_find(base, IN_GANETI)) && gnt_is_provider_script(argv[0]))
    return cmd->cli(argc, argv);

  /* Method names always contain a dot ("SR.create"); ours never does. */
  if (strchr(base, '.') && strcmp(base, "zfs-live") != 0)
    return smapi_main(argc, argv, base, command_smapi_target);

  zl_log_init("zfs-live", LOG_WARNING);
  return command_cli_main(argc, argv);
}
