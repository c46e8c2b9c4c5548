/* keys.h: what a volume key and a path-shaped SR key may be -- the
 * contract between the core, which checks them at the entry, and the
 * backends, which make file and dataset names of them.
 *
 * Volume keys: 1 to 200 characters of letters, digits and "._+-",
 * starting with a letter or digit (never '.', so no temporary file and no
 * "..", never '-', so never an option).  SR keys that are paths: absolute,
 * canonical in form (no "//", "." or ".." components, no trailing '/'),
 * from a shell- and URI-safe alphabet.  Neither sets an error. */
#ifndef ZL_KEYS_H
#define ZL_KEYS_H

#include <stdbool.h>

bool zl_key_valid(const char *key);
bool zl_path_key_valid(const char *key);

#endif
