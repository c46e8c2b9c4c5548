/* escape.h: one name from a path, for a file of a flat directory.
 *
 * Export names ("<sr uuid>/<key>") and SR keys (paths) name files in the
 * runtime directory: '/' becomes "%2F" (the names' alphabets never hold
 * '%'), then suffix is appended. */
#ifndef ZL_ESCAPE_H
#define ZL_ESCAPE_H

#include <stddef.h>

/* 0, or -1 with ENAMETOOLONG (error set) when the result does not fit in
 * out (len bytes, a file name: at most NAME_MAX) -- never a truncated
 * name, which could be another's. */
int zl_escape_name(const char *in, const char *suffix, char *out, size_t len);

#endif
