/* log.h: logging to syslog (facility LOCAL2, as SMlog expects) and stderr.
 * Never to stdout: stdout belongs to the protocol.
 *
 * Front ends call zl_log_init once.  Below the front ends, code may log
 * (it is not printing a reply) but reports failures through error.h.
 */
#ifndef ZL_LOG_H
#define ZL_LOG_H

#include <stdbool.h>
#include <syslog.h>

/* The level written is the configuration's log_level (util/config.h;
 * default LOG_INFO; ZFS_LIVE_DEBUG=1: LOG_DEBUG); a bad configuration
 * file is logged as a warning and ignored.
 * stderr_min: the least severe level also copied to stderr (LOG_DEBUG = all,
 * LOG_WARNING = warnings and errors only, -1 = never).  ident NULL: no
 * syslog (in-process harnesses; lines are still formatted). */
void zl_log_init(const char *ident, int stderr_min);

/* Attach a per-call tag (e.g. the method name) to every following line. */
void zl_log_set_tag(const char *tag);

/* Attach the call's dbg (SMAPIv3's opaque request id; NULL: none) to
 * every following line as " dbg=<it, on one line>". */
void zl_log_set_dbg(const char *dbg);

/* Would a line of this level be written anywhere? */
bool zl_log_enabled(int level);

void zl_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define zl_debug(...) zl_log(LOG_DEBUG, __VA_ARGS__)
#define zl_info(...)  zl_log(LOG_INFO, __VA_ARGS__)
#define zl_warn(...)  zl_log(LOG_WARNING, __VA_ARGS__)
#define zl_err(...)   zl_log(LOG_ERR, __VA_ARGS__)

#endif
