/* json.h: jansson helpers shared by the core and the front ends. */
#ifndef ZL_JSON_H
#define ZL_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* Load one JSON value from dirfd/name (at most max bytes).  NULL with errno
 * ENOENT if missing, EINVAL if malformed (error message set). */
json_t *zl_json_load_at(int dirfd, const char *name, size_t max);

/* Save compactly and atomically (fsutil.h's zl_write_file_atomic). */
int zl_json_save_at(int dirfd, const char *name, const json_t *j, bool durable);
/* The same with the temporary in tmpdir (see zl_write_file_atomic_via). */
int zl_json_save_via(int tmpdir, int dirfd, const char *name, const json_t *j,
                     bool durable);
/* Save durably only if dirfd/name does not exist (zl_write_file_new). */
int zl_json_save_new_at(int dirfd, const char *name, const json_t *j);

/* Typed field access for objects that came from outside (stdin, files).
 * Each returns 0 and stores the value, or -1 with an EINVAL error naming
 * what: "<what> 'name' is missing" / "... must be a string". */
int zl_json_string(const json_t *obj, const char *name, const char *what,
                   const char **out);
int zl_json_int64(const json_t *obj, const char *name, const char *what, int64_t *out);
int zl_json_bool(const json_t *obj, const char *name, const char *what, bool *out);
/* An object whose values are all strings (a (string * string) list). */
int zl_json_strmap(const json_t *obj, const char *name, const char *what,
                   json_t **out /* borrowed */);
int zl_json_is_strmap(const json_t *j);

#endif
