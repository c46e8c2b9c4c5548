/* escape.c: see escape.h. */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "error.h"
#include "escape.h"

#include "util/banned.h" /* last: after every declaration */

int
zl_escape_name(const char *in, const char *suffix, char *out, size_t len)
{
  size_t n = 0, sl = strlen(suffix);
  size_t max = len < NAME_MAX + 1 ? len : NAME_MAX + 1;

  for (const char *p = in; *p; p++) {
    size_t need = *p == '/' ? 3 : 1;
    if (n + need + sl + 1 > max)
      goto too_long;
    if (*p == '/') {
      memcpy(out + n, "%2F", 3);
    } else {
      out[n] = *p;
    }
    n += need;
  }
  if (n + sl + 1 > max)
    goto too_long;
  memcpy(out + n, suffix, sl + 1);
  return 0;

too_long:
  zl_error(ENAMETOOLONG, "'%.64s...' is too long to name a file", in);
  return -1;
}
