/* misc.c: version, help, fault-points, install-layout. */
#include <stdio.h>
#include <string.h>

#include <stdlib.h>

#include "cli/cli.h"
#include "commands.h"
#include "ganeti/ganeti.h"

int
cli_version(int argc, char **argv)
{
  (void)argc, (void)argv;
  printf("zfs-live %s\n", ZL_VERSION_STRING);
  return 0;
}

int
cli_help(int argc, char **argv)
{
  (void)argc, (void)argv;
  printf("zfs-live %s: storage driver for Xen toolstacks (XAPI SMAPIv3, Ganeti)\n\n"
         "usage: zfs-live COMMAND [ARGS...]   (--json for JSON output)\n\n",
         ZL_VERSION_STRING);
  for (const struct command *c = commands; c->name; c++) {
    if (c->where & IN_CLI)
      printf("  %-22s %s\n", c->name, c->summary);
  }
  printf("\nAs an XAPI plugin it runs under the method names (SR.create, ...);\n"
         "see zfs-live(8).\n");
  return 0;
}

int
cli_fault_points(int argc, char **argv)
{
  (void)argc, (void)argv;
  for (const char *const *p = zl_fault_points(); *p; p++)
    printf("%s\n", *p);
  return 0;
}

/* The plugin directories and their links, relative to the
 * xapi-storage-script root, generated from the dispatch table:
 * "volume/org.xen.xapi.storage.<type>/<Method>" and
 * "datapath/<scheme>/<Method>".  With --ganeti: the scripts of the Ganeti
 * provider directory; with --ganeti-parameters: its parameters.list. */
int
cli_install_layout(int argc, char **argv)
{
  bool any_datapath = false;

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
