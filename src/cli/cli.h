/* cli.h: the operator's command line.  Private header, by source file. */
#ifndef ZL_CLI_H
#define ZL_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/core.h"

/* cli.c */
extern bool cli_json;         /* --json given */
extern bool cli_json_written; /* a JSON value went to stdout */
/* The command running (its name and the usage text of its row), for
 * usage errors. */
void cli_set_command(const char *name, const char *usage);
/* Report the current error (util/error.h) on stderr, and with --json as
 * {"error": {"code", "message", "status", "errno"}} on stdout; returns 1. */
int cli_fail(void);
/* Usage error: the message and the command's usage on stderr (usage: the
 * text to show when the command has none of its own), with --json the
 * error object with code "usage"; returns 2. */
int cli_usage(const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A size as qemu-img and nbdkit take it: "4096", "1.5G", "512M", "10GiB",
 * "4k"; units b k M G T P E (powers of 1024, case-insensitive, optional
 * "B"/"iB").  -1 with error set if malformed, negative or too large. */
int cli_parse_size(const char *s, int64_t *out);
/* Human form "10.0 GiB". */
void cli_human(int64_t bytes, char *buf, size_t len);
/* Print a JSON value on stdout. */
int cli_print_json(json_t *j);
/* Open the SR named by key (type guessed when NULL). */
struct zl_sr *cli_open_sr(const char *type, const char *key);
/* Parse common options: consumes --json and --type T; returns remaining
 * argc with argv compacted. */
int cli_common_opts(int argc, char **argv, const char **type);

/* A command on an SR: argv[0] names it (after the common options); the
 * handler runs with it open and argv holding what follows.  nargs >= 0:
 * exactly that many arguments follow and no other option is allowed;
 * -1: the handler takes its own options and checks its arguments. */
typedef int (*cli_sr_fn)(struct zl_sr *sr, int argc, char **argv);
int cli_run_sr(cli_sr_fn fn, int nargs, const char *usage, int argc, char **argv);
extern const char cli_sr_usage[], cli_vol_usage[];

/* Remove "--flag VALUE" / "--flag=VALUE" from argv: 1 found, 0 not, -1
 * without a value.  cli_flag removes a bare "--flag". */
int cli_take(int *argc, char **argv, const char *flag, const char **value);
bool cli_flag(int *argc, char **argv, const char *flag);
/* -1 (error set) if an unknown "--option" remains. */
int cli_no_more_options(int argc, char **argv);

/* opts.c: options read from a command's usage text (see there).
 * Parse argv (argv[0] is not an operand) with getopt_long: operands in
 * order, then each option as "--name=value" or "--flag", into *out (free
 * with cli_argv_free); -h/--help set *help.  0, or the exit status of the
 * usage error reported (2). */
int cli_parse_options(const char *usage, int argc, char **argv, char ***out, bool *help);
void cli_argv_free(char **argv);
/* The options of a usage text as JSON [{option, value}]. */
json_t *cli_usage_options(const char *usage);
/* Does the usage text take an SR (and so --type)? */
bool cli_usage_takes_sr(const char *usage);

/* sr.c, vol.c, misc.c: subcommands (rows of commands.c) */
int cli_sr_create(int argc, char **argv);
int cli_sr_probe(int argc, char **argv);
int cli_sr_stat(struct zl_sr *sr, int argc, char **argv);
int cli_sr_destroy(struct zl_sr *sr, int argc, char **argv);
int cli_sr_set_name(struct zl_sr *sr, int argc, char **argv);
int cli_sr_set_description(struct zl_sr *sr, int argc, char **argv);
int cli_vol_list(struct zl_sr *sr, int argc, char **argv);
int cli_vol_create(struct zl_sr *sr, int argc, char **argv);
int cli_vol_stat(struct zl_sr *sr, int argc, char **argv);
int cli_vol_snapshot(struct zl_sr *sr, int argc, char **argv);
int cli_vol_clone(struct zl_sr *sr, int argc, char **argv);
int cli_vol_destroy(struct zl_sr *sr, int argc, char **argv);
int cli_vol_resize(struct zl_sr *sr, int argc, char **argv);
int cli_vol_revert(struct zl_sr *sr, int argc, char **argv);
int cli_vol_rename(struct zl_sr *sr, int argc, char **argv);
int cli_vol_set_description(struct zl_sr *sr, int argc, char **argv);
int cli_vol_set(struct zl_sr *sr, int argc, char **argv);
int cli_vol_unset(struct zl_sr *sr, int argc, char **argv);
int cli_vol_write(struct zl_sr *sr, int argc, char **argv);
int cli_vol_read(struct zl_sr *sr, int argc, char **argv);
int cli_vol_share(int argc, char **argv);
/* vol-ganeti.c: the file-storage workflows of Ganeti's design */
int cli_vol_adopt(int argc, char **argv);
int cli_vol_xen_disk(int argc, char **argv);
int cli_vol_takeover(int argc, char **argv);
int cli_relay(int argc, char **argv);
int cli_vol_unshare(struct zl_sr *sr, int argc, char **argv);
int cli_vol_cbt_enable(struct zl_sr *sr, int argc, char **argv);
int cli_vol_cbt_disable(struct zl_sr *sr, int argc, char **argv);
int cli_vol_data_destroy(struct zl_sr *sr, int argc, char **argv);
int cli_vol_changed_blocks(struct zl_sr *sr, int argc, char **argv);
int cli_fault_points(int argc, char **argv);
int cli_doctor(int argc, char **argv);
/* checks.c: the host's checks for doctor: [{check, status: ok|warn|problem,
 * message}]; rep is zl_host_report's, root the install root or NULL (found
 * from this binary's place). */
json_t *cli_doctor_checks(json_t *rep, const char *pool, const char *root);
int cli_serve(int argc, char **argv);
const char *nbd_default_socket(void);
/* Print a volume (a table, or JSON with --json). */
int cli_vol_show(struct zl_sr *sr, struct zl_volume *v);
/* copy.c */
int cli_vol_copy(struct zl_sr *sr, int argc, char **argv);
/* replicate.c: replicate, and vol copy --to-host */
int cli_replicate(struct zl_sr *sr, int argc, char **argv);
int cli_vol_copy_remote(struct zl_sr *sr, const char *key, const char *host,
                        const char *to, const char *to_type, const char *psk,
                        const char *name, const char *description);

/* transfer.c: images out of and into volumes; the old spelling of
 * share/unshare (export without --format, unexport) with a note */
int cli_vol_export(int argc, char **argv);
int cli_vol_import(struct zl_sr *sr, int argc, char **argv);
int cli_vol_unexport(struct zl_sr *sr, int argc, char **argv);

/* progress.c: how long operations show their progress (core.h struct
 * zl_progress).  On a terminal (stderr a TTY, no --json): one line on
 * stderr redrawn with \r -- what, percent, rate in MiB/s, ETA -- ended by
 * cli_progress_done.  With --json: JSON lines on stderr (stdout keeps the
 * command's one result, or the data), at most 4 a second and the last,
 *   {"progress": {"what": W, "done": N, "total": N, "rate": B/s, "eta_s": S}}
 * Otherwise nothing.  Use:
 *   struct cli_progress st; struct zl_progress p;
 *   cli_progress_init(&p, &st, "export");
 *   ... core call with &p ...
 *   cli_progress_done(&st);   (also after a failure: ends the line) */
struct cli_progress {
  const char *what;
  int mode; /* 0 nothing, 1 a bar, 2 JSON lines */
  long long start_ns;
  long long last_ns; /* the last line shown: at most 4 a second */
  bool drawn;
};
void cli_progress_init(struct zl_progress *p, struct cli_progress *st, const char *what);
void cli_progress_done(struct cli_progress *st);

#endif
