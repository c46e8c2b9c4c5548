/* dispatch.c: the CLI front end over the dispatch table (commands.h):
 * finding the command, help, and the options every command shares.
 *
 *   zfs-live [--json] COMMAND [SUBCOMMAND] [ARGS and OPTIONS in any order]
 *
 * Exit status: 0 done, 1 the operation failed, 2 usage error (unknown
 * command or option, missing value or argument).  --json anywhere: output
 * as JSON, errors as {"error": {...}} on stdout (cli/cli.c).  -h/--help
 * anywhere, or `zfs-live help COMMAND`: that command's help, exit 0. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "commands.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

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
