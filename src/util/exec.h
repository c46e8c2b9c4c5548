/* exec.h: the one way this program runs another program.
 *
 * argv-based (never a shell), the program found through PATH (a default
 * system PATH when unset), stdin from a buffer or /dev/null, stdout and
 * stderr captured, no descriptor of ours inherited.  Blocks until the child
 * exits.  Used for zfs/zpool; every call is logged at debug level with its
 * duration.
 */
#ifndef ZL_EXEC_H
#define ZL_EXEC_H

#include <stdbool.h>
#include <stddef.h>

struct zl_exec_result {
  int status; /* exit status 0..255, or 128 + signal number */
  char *out;  /* captured stdout, NUL-terminated (owned) */
  size_t outlen;
  char *err; /* captured stderr, NUL-terminated (owned) */
  size_t errlen;
  bool sink_failed; /* zl_exec_stream: the sink returned -1 (its error is set) */
};

/* Run argv.  Returns 0 when the program ran (whatever its exit status: look
 * at res->status), -1 with the error set when it could not be run.
 * stdin_data may be NULL. */
int zl_exec(const char *const *argv, const char *stdin_data, struct zl_exec_result *res);
/* Same, but stdout goes to sink in pieces as it arrives (nothing is kept:
 * res->out stays empty).  If the sink returns -1, stdout is closed (the
 * child sees EPIPE) and res->sink_failed is set; the sink's error stays
 * the current one. */
typedef int (*zl_exec_sink)(void *opaque, const void *data, size_t len);
int zl_exec_stream(const char *const *argv, const char *stdin_data, zl_exec_sink sink,
                   void *opaque, struct zl_exec_result *res);
/* A child that reads what we write: zl_exec_start runs argv with its
 * stdin a pipe (c->in, ours to write: a caller that may outlive the child
 * ignores SIGPIPE meanwhile and handles EPIPE), its stdout discarded and its stderr kept
 * for the result; zl_exec_finish closes c->in (if still open), waits, and fills res as
 * zl_exec does (out empty).  Used to feed one program from another (zfs send | zfs
 * receive through zl_exec_stream's sink). */
struct zl_exec_child {
  int pid;
  int in;  /* write end of the child's stdin, or -1 */
  int err; /* read end of its stderr */
  const char *name;
};
int zl_exec_start(const char *const *argv, struct zl_exec_child *c);
int zl_exec_finish(struct zl_exec_child *c, struct zl_exec_result *res);

void zl_exec_result_free(struct zl_exec_result *res);

/* The first line of res->err (or "exit status N"), for error messages. */
const char *zl_exec_reason(const struct zl_exec_result *res);

#endif
