/* names.c: what a key, a name or a size may be.
 *
 * Volume keys become file and dataset names, so they are restricted to a
 * portable, shell- and URI-safe alphabet: they start with a letter or digit
 * (never '.', so temporary files and "..", never '-', so never an option)
 * and contain only letters, digits and "._+-"; at most ZL_KEY_MAX bytes.
 *
 * Display names and descriptions are data: they are stored and returned
 * byte for byte and never reach a path, a command line or a shell.  Both
 * are valid UTF-8 (what JSON carries).  Names may hold any character (Ganeti
 * disk names and xapi name labels are any string); descriptions may contain
 * newlines and tabs but no other control characters.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <fcntl.h>
#include <stdio.h>

#include "core/model/model.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/json.h"
#include "util/keys.h"

#include "util/banned.h" /* last: after every declaration */

#define ZL_KEY_MAX  200
#define ZL_NAME_MAX 1024
#define ZL_DESC_MAX 16384
#define ZL_K_MAX    255
#define ZL_V_MAX    65536

int
zl_check_key(const char *key)
{
  if (!zl_key_valid(key)) {
    zl_error_kind(ZL_ERR_INVALID, EINVAL,
                  "invalid volume key '%.64s%s': a key is 1 to %d characters of "
                  "letters, digits and '._+-', starting with a letter or digit",
                  key ? key : "", key && strlen(key) > 64 ? "..." : "", ZL_KEY_MAX);
    return -1;
  }
  return 0;
}

size_t
zl_utf8_len(const unsigned char *s)
{
  if (s[0] < 0x80)
    return 1;
  size_t n = s[0] >= 0xc2 && s[0] <= 0xdf   ? 2
             : s[0] >= 0xe0 && s[0] <= 0xef ? 3
             : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4
                                            : 0;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
  }
  if ((n == 3 && s[0] == 0xe0 && s[1] < 0xa0) ||
      (n == 3 && s[0] == 0xed && s[1] >= 0xa0) ||
      (n == 4 && s[0] == 0xf0 && s[1] < 0x90) || (n == 4 && s[0] == 0xf4 && s[1] >= 0x90))
    return 0;
  return n;
}

/* Which control characters a text may hold. */
enum controls {
  ANY,       /* names, values: a tab, a newline (Ganeti and xapi allow any) */
  MULTILINE, /* descriptions: newline and tab */
  NONE,      /* key names */
};

/* Text is data: valid UTF-8 of at most max bytes, with the control
 * characters (C0 and DEL) its kind allows. */
static int
check_text(const char *s, const char *what, size_t max, enum controls ctl)
{
  size_t len = strlen(s);

  if (len > max) {
    zl_error(EINVAL, "%s is too long (%zu bytes, at most %zu)", what, len, max);
    return -1;
  }
  for (size_t i = 0, n; i < len; i += n) {
    unsigned char c = (unsigned char)s[i];
    if (!(n = zl_utf8_len((const unsigned char *)s + i))) {
      zl_error(EINVAL, "%s is not valid UTF-8 (byte 0x%02x at %zu)", what, c, i);
      return -1;
    }
    if ((c < 0x20 || c == 0x7f) &&
        (ctl == NONE || (ctl == MULTILINE && c != '\n' && c != '\t'))) {
      zl_error(EINVAL, "%s contains a control character (0x%02x at byte %zu)", what, c,
               i);
      return -1;
    }
  }
  return 0;
}

int
zl_check_name(const char *name, const char *what)
{
  return check_text(name, what, ZL_NAME_MAX, ANY);
}

int
zl_check_description(const char *d, const char *what)
{
  return check_text(d, what, ZL_DESC_MAX, MULTILINE);
}

/* The keys XAPI's storage daemon sets itself (reference smapiv3.md §1.11). */
static const char *const reserved_keys[] = {
    "vdi-type",      "content_id", "snapshot_time", "is_a_snapshot", "snapshot_of",
    "clone-on-boot", NULL,
};
/* Families: "_sm_config_<k>" (sm-config) and "tags<tag>". */
static const char *const key_prefixes[] = {"_sm_config_", "tags", NULL};

int
zl_check_keys_entry(const char *k, const char *v)
{
  bool known = false;

  if (!*k) {
    zl_error(EINVAL, "key name is empty");
    return -1;
  }
  if (check_text(k, "key name", ZL_K_MAX, NONE) == -1)
    return -1;
  for (const char *const *r = reserved_keys; *r && !known; r++)
    known = strcmp(k, *r) == 0;
  for (const char *const *p = key_prefixes; *p && !known; p++)
    known = strncmp(k, *p, strlen(*p)) == 0 && k[strlen(*p)] != '\0';
  if (!known) {
    zl_error(EINVAL,
             "unknown key '%s': the keys that can be set are vdi-type, content_id, "
             "snapshot_time, is_a_snapshot, snapshot_of, clone-on-boot, "
             "_sm_config_<name> and tags<tag>",
             k);
    return -1;
  }
  if (!v)
    return 0;
  if (strlen(v) > ZL_V_MAX) {
    zl_error(EINVAL, "value of '%s' is too long (at most %d bytes)", k, ZL_V_MAX);
    return -1;
  }
  if (check_text(v, "value", ZL_V_MAX, ANY) == -1)
    return -1;
  if (strcmp(k, "is_a_snapshot") == 0 && strcmp(v, "true") != 0 &&
      strcmp(v, "false") != 0) {
    zl_error(EINVAL, "is_a_snapshot must be \"true\" or \"false\", not '%s'", v);
    return -1;
  }
  if (strcmp(k, "vdi-type") == 0) {
    for (const char *p = v; *p; p++) {
      if (!((*p >= 'a' && *p <= 'z') || *p == '_' || *p == '-')) {
        zl_error(EINVAL, "vdi-type '%s' is not a VDI type (lower-case letters and '_')",
                 v);
        return -1;
      }
    }
  }
  return 0;
}

/* Round size up to a multiple of gran (>= 1) without overflowing: what is
 * added is checked to fit before it is added (never size + gran - 1). */
int
zl_round_size(int64_t size, int64_t gran, int64_t *out)
{
  if (gran < 1) {
    zl_error_kind(ZL_ERR_SIZE, EINVAL, "size granularity %lld is not positive",
                  (long long)gran);
    return -1;
  }
  if (size < 0) {
    zl_error_kind(ZL_ERR_SIZE, EINVAL, "size %lld is negative", (long long)size);
    return -1;
  }
  int64_t rem = size % gran, up = rem ? gran - rem : 0;
  if (size > INT64_MAX - up) {
    zl_error_kind(ZL_ERR_SIZE, EFBIG, "size %lld is too large", (long long)size);
    return -1;
  }
  *out = size + up;
  return 0;
}

bool
zl_sr_key_type_is(const char *key, const char *type)
{
  char path[4200];
  CLEANUP_JSON json_t *info = NULL;

  snprintf(path, sizeof path, "%s/" ZL_PRIV_DIR "/" ZL_SR_INFO, key);
  info = zl_json_load_at(AT_FDCWD, path, 1 << 20);
  zl_error_clear();
  const char *t = json_string_value(json_object_get(info, "type"));
  /* no SR there (yet): any path-keyed type may claim it */
  return !info || (t && strcmp(t, type) == 0);
}
