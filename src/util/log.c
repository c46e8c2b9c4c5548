/* log.c: see log.h.  ZFS_LIVE_DEBUG=1 enables LOG_DEBUG lines. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#include "util/banned.h" /* last: after every declaration */

static int stderr_level = LOG_WARNING;
static bool debug_enabled;
static bool opened;
static char tag[128];

void
zl_log_init(const char *ident, int stderr_min)
{
  const char *d = getenv("ZFS_LIVE_DEBUG");

  debug_enabled = d && *d && strcmp(d, "0") != 0;
  stderr_level = debug_enabled && stderr_min >= 0 ? LOG_DEBUG : stderr_min;
  opened = ident != NULL;
  if (opened)
    openlog(ident, LOG_PID | LOG_NDELAY, LOG_LOCAL2);
}

void
zl_log_set_tag(const char *t)
{
  snprintf(tag, sizeof tag, "%s", t ? t : "");
}

bool
zl_log_enabled(int level)
{
  return level != LOG_DEBUG || debug_enabled;
}

void
zl_log(int level, const char *fmt, ...)
{
  char line[4096];
  va_list ap;
  int saved = errno;

  if (level == LOG_DEBUG && !debug_enabled)
    return;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);

  if (opened)
    syslog(LOG_LOCAL2 | level, "%s%s%s", tag, tag[0] ? ": " : "", line);
  if (stderr_level >= 0 && level <= stderr_level)
    fprintf(stderr, "zfs-live[%d]: %s%s%s\n", (int)getpid(), tag, tag[0] ? ": " : "",
            line);
  errno = saved;
}
