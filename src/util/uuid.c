/* uuid.c: see uuid.h. */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "compat.h"
#include "error.h"
#include "uuid.h"

#include "util/banned.h" /* last: after every declaration */

int
zl_uuid_generate(char *out)
{
  uint8_t b[16];

  if (zl_random_bytes(b, sizeof b, false) == -1) {
    zl_error_sys(errno, "random bytes");
    return -1;
  }
  b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
  b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
  snprintf(out, ZL_UUID_LEN + 1,
           "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
           b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
           b[13], b[14], b[15]);
  return 0;
}

bool
zl_uuid_valid(const char *s)
{
  if (!s || strlen(s) != ZL_UUID_LEN)
    return false;
  for (int i = 0; i < ZL_UUID_LEN; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-')
        return false;
    } else if (!isxdigit((unsigned char)s[i])) {
      return false;
    }
  }
  return true;
}
