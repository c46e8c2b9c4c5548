/* progress.h: how long operations report how far they are.
 *
 * Copy, replication, export, import, adopt and revert by copy report done
 * of total bytes (total 0: unknown).  They call back from the operating
 * thread, at most a few times a second and once at the end (done ==
 * total); the front end decides what to show (cli/progress.c: a bar on a
 * TTY, JSON lines with --json, nothing otherwise).  A NULL struct or fn:
 * nobody listens.  Here, below core and backends, so both can report.
 */
#ifndef ZL_PROGRESS_H
#define ZL_PROGRESS_H

#include <stdint.h>

typedef void (*zl_progress_fn)(void *opaque, uint64_t done, uint64_t total);
struct zl_progress {
  zl_progress_fn fn;
  void *opaque;
};

static inline void
zl_progress_report(const struct zl_progress *p, uint64_t done, uint64_t total)
{
  if (p && p->fn)
    p->fn(p->opaque, done, total);
}

#endif
