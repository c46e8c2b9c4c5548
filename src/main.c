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

#include "cli/cli.h"
#include "commands.h"
#include "smapi/smapi.h"
#include "util/error.h"
#include "util/log.h"

#define VOLUME_DIR_PREFIX "org.xen.xapi.storage."

/* From argv[0] = ".../<dir>/<Method>", tell the plugin kind and SR type. */
static enum plugin_kind
plugin_of(const char *argv0, char *type, size_t typelen)
{
  char path[PATH_MAX], parent[PATH_MAX];

  snprintf(path, sizeof path, "%s", argv0);
  if (!strchr(path, '/'))
    return PLUGIN_NONE;
  char *dir = basename(dirname(path));
  if (strncmp(dir, VOLUME_DIR_PREFIX, strlen(VOLUME_DIR_PREFIX)) == 0) {
    snprintf(type, typelen, "%s", strrchr(dir, '.') + 1);
    return PLUGIN_VOLUME;
  }
  snprintf(parent, sizeof parent, "%s", argv0);
  char *gp = basename(dirname(dirname(parent)));
  if (strcmp(gp, "datapath") == 0) {
    snprintf(type, typelen, "%s", dir);
    return PLUGIN_DATAPATH;
  }
  return PLUGIN_NONE;
}

/* Is argv[0] a script of a Ganeti ExtStorage provider directory: the
 * directory's parent is "extstorage" (Ganeti's search path) or it holds
 * parameters.list? */
static bool
ganeti_provider(const char *argv0)
{
  char path[PATH_MAX], parent[PATH_MAX];

  if (!strchr(argv0, '/'))
    return false;
  snprintf(path, sizeof path, "%s", argv0);
  char *dir = dirname(path);
  snprintf(parent, sizeof parent, "%s", dir);
  if (strcmp(basename(dirname(parent)), "extstorage") == 0)
    return true;
  strncat(dir, "/parameters.list", sizeof path - strlen(dir) - 1);
  return access(dir, F_OK) == 0;
}

static int
smapi_main(int argc, char **argv, const char *method)
{
  char type[NAME_MAX + 1] = "";
  enum plugin_kind kind = plugin_of(argv[0], type, sizeof type);
  const struct command *cmd;

  zl_log_init("zfs-live", LOG_INFO);
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--json") != 0)
      zl_warn("%s: ignoring unexpected argument '%s'", method, argv[i]);
  }
  if (kind == PLUGIN_NONE) {
    zl_error(EINVAL,
             "%s must be run from a plugin directory (volume/" VOLUME_DIR_PREFIX
             "<type>/ or datapath/<scheme>/), not as %s",
             method, argv[0]);
  } else if (!(cmd = command_find(method,
                                  kind == PLUGIN_VOLUME ? IN_VOLUME : IN_DATAPATH))) {
    zl_error_kind(ZL_ERR_UNSUPPORTED, ENOSYS, "%s is not implemented by this plugin",
                  method);
  } else if (kind == PLUGIN_VOLUME && !zl_sr_type_known(type)) {
    zl_error(EINVAL, "unknown SR type '%s' (plugin directory " VOLUME_DIR_PREFIX "%s)",
             type, type);
  } else {
    return smapi_run(cmd, kind, type);
  }
  /* Could not even start: still answer in the protocol. */
  smapi_emit_error(stdout);
  zl_err("%s", zl_error_msg());
  return 1;
}

int
main(int argc, char **argv)
{
  char self[PATH_MAX];
  const struct command *cmd = NULL;
  int skip = 1;

  snprintf(self, sizeof self, "%s", argc > 0 ? argv[0] : "zfs-live");
  const char *base = basename(self);

  if ((cmd = command_find(base, IN_GANETI)) && ganeti_provider(argv[0]))
    return cmd->cli(argc, argv);

  /* Method names always contain a dot ("SR.create"); ours never does. */
  if (strchr(base, '.') && strcmp(base, "zfs-live") != 0)
    return smapi_main(argc, argv, base);

  zl_log_init("zfs-live", LOG_WARNING);
  if (argc < 2)
    return cli_help(0, NULL) == 0 ? 2 : 1;
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
    return cli_help(0, NULL);
  if (strcmp(argv[1], "--version") == 0)
    return cli_version(0, NULL);
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
  return cmd->cli(argc - skip, argv + skip);
}
