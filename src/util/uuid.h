/* uuid.h: random (version 4) UUIDs, lower-case text form. */
#ifndef ZL_UUID_H
#define ZL_UUID_H

#include <stdbool.h>

#define ZL_UUID_LEN 36

/* Fill out (at least ZL_UUID_LEN + 1 bytes).  Returns 0 or -1 (error set). */
int zl_uuid_generate(char *out);

/* True if s is 8-4-4-4-12 hexadecimal digits (either case). */
bool zl_uuid_valid(const char *s);

#endif
