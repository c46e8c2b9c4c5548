/* psk.c: a psktool key file ("identity:hex key" per line). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/psk.h"

#include "util/banned.h" /* last: after every declaration */

int
zl_psk_read(const char *file, char *id, size_t idlen, char *hex, size_t hexlen)
{
  CLEANUP_FREE char *buf = NULL;

  if (zl_read_file_at(AT_FDCWD, file, 4096, &buf, NULL) == -1)
    return -1;
  size_t line = strcspn(buf, "\n");
  buf[line] = '\0';
  char *colon = strchr(buf, ':');
  if (!colon || colon == buf || (size_t)(colon - buf) >= idlen ||
      strlen(colon + 1) >= hexlen || !colon[1]) {
    explicit_bzero(buf, line);
    zl_error(EINVAL, "TLS PSK file %s: the first line is not 'identity:hex key'", file);
    return -1;
  }
  snprintf(id, idlen, "%.*s", (int)(colon - buf), buf);
  snprintf(hex, hexlen, "%s", colon + 1);
  explicit_bzero(buf, line);
  return 0;
}
