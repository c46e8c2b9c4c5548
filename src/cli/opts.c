/* opts.c: a command's options, read from its usage text, and parsed with
 * getopt_long (glibc and musl alike).
 *
 * The usage text of a row of commands.c is the one statement of what the
 * command accepts: every "--word" in it is an option, which takes a value
 * when "=" or a space and a metavariable follow it ("--size SIZE",
 * "--tls=off|on|require", "--tcp [HOST]:PORT", "--driver phy|file");
 * otherwise it is a flag ("[--thin|--thick]", "[--readonly]").  So a new
 * command gets option checking, any-order parsing and --help from its
 * usage line alone, and help cannot disagree with the parser. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/error.h"

#include "util/banned.h" /* last: after every declaration */

enum { MAX_OPTS = 48, NAME_MAX_LEN = 40, VAL_BASE = 256 };

struct spec {
  int n;
  char names[MAX_OPTS][NAME_MAX_LEN];
  struct option opts[MAX_OPTS + 1];
};

static bool
is_name_char(char c)
{
  return islower((unsigned char)c) || isdigit((unsigned char)c) || c == '-';
}

/* Does the text after "--name " start a metavariable (a value)? */
static bool
starts_value(const char *p)
{
  if (*p == '[')
    p++;
  if (isupper((unsigned char)*p))
    return true;
  /* "thin|thick": lower-case alternatives */
  if (!islower((unsigned char)*p))
    return false;
  for (; *p && *p != ' ' && *p != ']' && *p != '\n'; p++) {
    if (*p == '|')
      return p[1] != '-';
  }
  return false;
}

static void
add(struct spec *s, const char *name, size_t len, int has_arg)
{
  if (s->n >= MAX_OPTS || len == 0 || len >= NAME_MAX_LEN)
    return;
  for (int i = 0; i < s->n; i++) {
    if (strlen(s->names[i]) == len && memcmp(s->names[i], name, len) == 0)
      return;
  }
  memcpy(s->names[s->n], name, len);
  s->names[s->n][len] = '\0';
  s->opts[s->n] = (struct option){s->names[s->n], has_arg, NULL, VAL_BASE + s->n};
  s->n++;
}

bool
cli_usage_takes_sr(const char *usage)
{
  return usage && (strncmp(usage, "SR", 2) == 0 || strstr(usage, " SR ") ||
                   strstr(usage, " SR\n") || strstr(usage, "[SR]"));
}

static void
build(struct spec *s, const char *usage)
{
  s->n = 0;
  for (const char *p = usage; p && (p = strstr(p, "--"));) {
    bool word_start = p == usage || strchr(" [|(\n", p[-1]);
    p += 2;
    const char *name = p;
    while (is_name_char(*p))
      p++;
    if (!word_start || p == name)
      continue;
    int arg = *p == '=' || (*p == ' ' && starts_value(p + 1));
    add(s, name, (size_t)(p - name), arg ? required_argument : no_argument);
  }
  add(s, "json", 4, no_argument);
  add(s, "help", 4, no_argument);
  if (cli_usage_takes_sr(usage))
    add(s, "type", 4, required_argument);
  s->opts[s->n] = (struct option){0};
}

json_t *
cli_usage_options(const char *usage)
{
  struct spec s;
  json_t *a = json_array();

  build(&s, usage);
  for (int i = 0; a && i < s.n; i++) {
    json_array_append_new(a, json_pack("{s:s+, s:b}", "option", "--", s.names[i], "value",
                                       s.opts[i].has_arg == required_argument));
  }
  return a;
}

static char *
option_arg(const char *name, const char *value)
{
  size_t n = strlen(name) + (value ? strlen(value) + 1 : 0) + 3;
  char *s = malloc(n);
  if (s)
    snprintf(s, n, "--%s%s%s", name, value ? "=" : "", value ? value : "");
  return s;
}

void
cli_argv_free(char **argv)
{
  for (char **p = argv; p && *p; p++)
    free(*p);
  free(argv);
}

/* Report a usage error found by getopt_long; returns 2. */
static int
bad_option(const struct spec *s, int c, const char *arg)
{
  int i = optopt - VAL_BASE;

  if (c == ':' || (c == '?' && i >= 0 && i < s->n)) {
    if (s->opts[i].has_arg == required_argument)
      return cli_usage(NULL, "option --%s needs a value", s->names[i]);
    return cli_usage(NULL, "option --%s takes no value", s->names[i]);
  }
  if (optopt > 0 && optopt < VAL_BASE)
    return cli_usage(NULL, "unknown option -%c", optopt);
  return cli_usage(NULL, "unknown option %s", arg ? arg : "?");
}

int
cli_parse_options(const char *usage, int argc, char **argv, char ***out, bool *help)
{
  struct spec s;
  char **pos = calloc((size_t)argc + 1, sizeof *pos);
  char **opt = calloc((size_t)argc + 1, sizeof *opt);
  int np = 0, no = 0, r = 0;

  build(&s, usage);
  *out = NULL;
  if (!pos || !opt) {
    free(pos), free(opt);
    zl_error(ENOMEM, "out of memory");
    return cli_fail();
  }
  /* "-" first: operands come back in place as option 1, so their order
   * is kept and options may stand anywhere; ":" reports a missing value */
  opterr = 0;
  optind = 0;
  for (;;) {
    /* one short option: -o FILE, the output file of qemu-img and cp alike,
     * where the usage names --output */
    bool short_o = false;
    for (int i = 0; i < s.n; i++)
      short_o = short_o || strcmp(s.names[i], "output") == 0;
    int c = getopt_long(argc, argv, short_o ? "-:ho:" : "-:h", s.opts, NULL);
    if (c == -1)
      break;
    if (c == 1) {
      pos[np++] = strdup(optarg);
    } else if (c == 'h') {
      *help = true;
    } else if (c == 'o' && short_o) {
      opt[no++] = option_arg("output", optarg);
    } else if (c >= VAL_BASE && c < VAL_BASE + s.n) {
      if (strcmp(s.names[c - VAL_BASE], "help") == 0)
        *help = true;
      else
        opt[no++] = option_arg(s.names[c - VAL_BASE], optarg);
    } else {
      r = bad_option(&s, c, optind > 0 && optind <= argc ? argv[optind - 1] : NULL);
      break;
    }
    if ((c == 1 && !pos[np - 1]) || (c >= VAL_BASE && no && !opt[no - 1])) {
      zl_error(ENOMEM, "out of memory");
      r = cli_fail();
      break;
    }
  }
  /* after "--": operands only */
  while (r == 0 && optind < argc && optind > 0) {
    if (!(pos[np++] = strdup(argv[optind++]))) {
      zl_error(ENOMEM, "out of memory");
      r = cli_fail();
    }
  }
  if (r == 0) { /* operands first (the SR at argv[0]), then the options */
    memcpy(pos + np, opt, (size_t)no * sizeof *opt);
    free(opt);
    *out = pos;
    return 0;
  }
  cli_argv_free(opt);
  cli_argv_free(pos);
  return r;
}
