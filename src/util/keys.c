/* keys.c: see keys.h. */
#include <stdbool.h>
#include <string.h>

#include "keys.h"

#include "util/banned.h" /* last: after every declaration */

#define ZL_KEY_MAX  200
#define SR_PATH_MAX 1024

static bool
key_char(char c, bool first)
{
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
    return true;
  return !first && (c == '.' || c == '_' || c == '+' || c == '-');
}

bool
zl_key_valid(const char *key)
{
  size_t len = key ? strlen(key) : 0;

  if (len == 0 || len > ZL_KEY_MAX)
    return false;
  for (size_t i = 0; i < len; i++) {
    if (!key_char(key[i], i == 0))
      return false;
  }
  return true;
}

/* SR keys that are paths (file SRs, mounted zfs SRs). */
static bool
path_char(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '/' || c == '.' || c == '_' || c == '-' || c == '+' || c == '@' ||
         c == ',' || c == '=';
}

/* Absolute, canonical in form (no "//", no "." or ".." components, no
 * trailing '/'), from a safe alphabet.  Symlinks are resolved separately. */
bool
zl_path_key_valid(const char *key)
{
  size_t len = key ? strlen(key) : 0;

  if (len < 2 || len > SR_PATH_MAX || key[0] != '/' || key[len - 1] == '/')
    return false;
  for (size_t i = 0; i < len; i++) {
    if (!path_char(key[i]))
      return false;
    if (key[i] == '/') {
      const char *c = key + i + 1;
      if (*c == '/' || (c[0] == '.' && (c[1] == '/' || c[1] == '\0')) ||
          (c[0] == '.' && c[1] == '.' && (c[2] == '/' || c[2] == '\0')))
        return false;
    }
  }
  return true;
}
