/* log.c: see log.h.  The level is the configuration's log_level
 * (util/config.h; default info); ZFS_LIVE_DEBUG=1 enables LOG_DEBUG lines
 * whatever the file says. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util/config.h"
#include "util/error.h"

#include "util/banned.h" /* last: after every declaration */

static int stderr_level = LOG_WARNING;
static int min_level = LOG_INFO; /* the least severe level written */
static bool opened;
static char tag[128];
static char dbg[300]; /* " dbg=..." or "" */

void
zl_log_init(const char *ident, int stderr_min)
{
  const char *d = getenv("ZFS_LIVE_DEBUG");
  struct zl_config c;
  bool bad = zl_config_load(&c) == -1;

  min_level = c.log_level >= 0 ? c.log_level : LOG_INFO;
  if (d && *d && strcmp(d, "0") != 0)
    min_level = LOG_DEBUG;
  stderr_level = min_level == LOG_DEBUG && stderr_min >= 0 ? LOG_DEBUG : stderr_min;
  opened = ident != NULL;
  if (opened)
    openlog(ident, LOG_PID | LOG_NDELAY, LOG_LOCAL2);
  if (bad) { /* logging goes on with the defaults; doctor and serve refuse it */
    zl_log(LOG_WARNING, "configuration ignored: %s", zl_error_msg());
    zl_error_clear();
  }
}

void
zl_log_set_tag(const char *t)
{
  snprintf(tag, sizeof tag, "%s", t ? t : "");
}

void
zl_log_set_dbg(const char *d)
{
  size_t n = 0;

  dbg[0] = '\0';
  if (!d)
    return;
  n = (size_t)snprintf(dbg, sizeof dbg, " dbg=");
  /* opaque, and may hold a newline and a trace context: one line, with
   * control characters escaped */
  for (const unsigned char *p = (const unsigned char *)d; *p && n + 5 < sizeof dbg; p++) {
    if (*p == '\n')
      n += (size_t)snprintf(dbg + n, sizeof dbg - n, "\\n");
    else if (*p < 0x20 || *p == 0x7f)
      n += (size_t)snprintf(dbg + n, sizeof dbg - n, "\\x%02x", *p);
    else
      dbg[n++] = (char)*p;
  }
  dbg[n] = '\0';
}

bool
zl_log_enabled(int level)
{
  return level <= min_level;
}

void
zl_log(int level, const char *fmt, ...)
{
  char line[4096];
  va_list ap;
  int saved = errno;

  if (level > min_level)
    return;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);

  if (opened)
    syslog(LOG_LOCAL2 | level, "%s%s%s%s", tag, dbg, tag[0] || dbg[0] ? ": " : "", line);
  if (stderr_level >= 0 && level <= stderr_level)
    fprintf(stderr, "zfs-live[%d]: %s%s%s%s\n", (int)getpid(), tag, dbg,
            tag[0] || dbg[0] ? ": " : "", line);
  errno = saved;
}
