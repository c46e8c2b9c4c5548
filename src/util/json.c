/* json.c: see json.h. */
#include <errno.h>
#include <string.h>

#include "cleanup.h"
#include "error.h"
#include "fsutil.h"
#include "json.h"

#include "util/banned.h" /* last: after every declaration */

json_t *
zl_json_load_at(int dirfd, const char *name, size_t max)
{
  CLEANUP_FREE char *buf = NULL;
  size_t len;
  json_error_t jerr;
  json_t *j;

  if (zl_read_file_at(dirfd, name, max, &buf, &len) == -1)
    return NULL;
  j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!j) {
    zl_error(EINVAL, "%s: malformed JSON: %s (line %d)", name, jerr.text, jerr.line);
    return NULL;
  }
  return j;
}

int
zl_json_save_at(int dirfd, const char *name, const json_t *j, bool durable)
{
  return zl_json_save_via(-1, dirfd, name, j, durable);
}

static int
save(int tmpdir, int dirfd, const char *name, const json_t *j, bool durable, bool replace)
{
  CLEANUP_FREE char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
  if (!s) {
    zl_error(ENOMEM, "%s: cannot serialise JSON", name);
    return -1;
  }
  size_t len = strlen(s);
  s[len] = '\n'; /* replace the NUL: the buffer is not used as a string after */
  if (!replace)
    return zl_write_file_new(dirfd, name, s, len + 1);
  if (tmpdir >= 0)
    return zl_write_file_atomic_via(tmpdir, dirfd, name, s, len + 1, durable);
  return zl_write_file_atomic(dirfd, name, s, len + 1, durable);
}

int
zl_json_save_via(int tmpdir, int dirfd, const char *name, const json_t *j, bool durable)
{
  return save(tmpdir, dirfd, name, j, durable, true);
}

int
zl_json_save_new_at(int dirfd, const char *name, const json_t *j)
{
  return save(-1, dirfd, name, j, true, false);
}

static json_t *
field(const json_t *obj, const char *name)
{
  return json_is_object(obj) ? json_object_get(obj, name) : NULL;
}

int
zl_json_string(const json_t *obj, const char *name, const char *what, const char **out)
{
  json_t *v = field(obj, name);
  if (!v) {
    zl_error(EINVAL, "%s '%s' is missing", what, name);
    return -1;
  }
  if (!json_is_string(v)) {
    zl_error(EINVAL, "%s '%s' must be a string", what, name);
    return -1;
  }
  *out = json_string_value(v);
  return 0;
}

int
zl_json_int64(const json_t *obj, const char *name, const char *what, int64_t *out)
{
  json_t *v = field(obj, name);
  if (!v) {
    zl_error(EINVAL, "%s '%s' is missing", what, name);
    return -1;
  }
  if (!json_is_integer(v)) {
    zl_error(EINVAL, "%s '%s' must be an integer", what, name);
    return -1;
  }
  *out = (int64_t)json_integer_value(v);
  return 0;
}

int
zl_json_bool(const json_t *obj, const char *name, const char *what, bool *out)
{
  json_t *v = field(obj, name);
  if (!v) {
    zl_error(EINVAL, "%s '%s' is missing", what, name);
    return -1;
  }
  if (!json_is_boolean(v)) {
    zl_error(EINVAL, "%s '%s' must be a boolean", what, name);
    return -1;
  }
  *out = json_is_true(v);
  return 0;
}

int
zl_json_is_strmap(const json_t *j)
{
  const char *k;
  json_t *v;

  if (!json_is_object(j))
    return 0;
  json_object_foreach((json_t *)j, k, v)
  {
    if (!json_is_string(v))
      return 0;
  }
  return 1;
}

int
zl_json_strmap(const json_t *obj, const char *name, const char *what, json_t **out)
{
  json_t *v = field(obj, name);
  if (!v) {
    zl_error(EINVAL, "%s '%s' is missing", what, name);
    return -1;
  }
  if (!zl_json_is_strmap(v)) {
    zl_error(EINVAL, "%s '%s' must be an object of strings", what, name);
    return -1;
  }
  *out = v;
  return 0;
}
