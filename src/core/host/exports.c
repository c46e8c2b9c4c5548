/* exports.c: the registry of attached volumes the NBD server may export.
 *
 * <run>/exports/<name, '/' as "%2F">.json = {"name", "sr_type", "sr", "key",
 * "readonly"}, written atomically by Datapath.attach and removed by
 * detach.  It lives in the runtime directory (default /run/zfs-live,
 * $ZFS_LIVE_RUN to move it), so a server that restarts finds every attached
 * export again, and a name not in it is refused.
 *
 * Export names are "<SR uuid>/<volume key>": unique on the host, and free of
 * ':' so the legacy "nbd:unix:<socket>:exportname=<name>" form parses.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/model/model.h"
#include "util/beneath.h"
#include "util/cleanup.h"
#include "util/escape.h"
#include "util/rundir.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

/* <run>/exports/<name with '/' as "%2F">.json */
static int
file_of(const char *name, char *out, size_t len)
{
  return zl_escape_name(name, ".json", out, len);
}

bool
zl_export_name_valid(const char *name)
{
  size_t len = name ? strlen(name) : 0;
  if (len == 0 || len > 255)
    return false;
  for (size_t i = 0; i < len; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '-' || c == '.' || c == '_' || c == '+' || c == '/'))
      return false;
  }
  return name[0] != '/' && !strstr(name, "..");
}

char *
zl_export_name(struct zl_sr *sr, const char *key)
{
  char *out = NULL;
  if (asprintf(&out, "%s/%s", zl_meta_str(sr->info, "uuid"), key) < 0) {
    zl_error(ENOMEM, "out of memory");
    return NULL;
  }
  return out;
}

int
zl_export_register(const struct zl_export_info *e)
{
  char file[NAME_MAX + 1];
  CLEANUP_CLOSE int dfd = zl_run_subdir("exports", true);
  CLEANUP_JSON json_t *j = NULL;

  if (dfd == -1)
    return -1;
  j = json_pack("{s:s, s:s, s:s, s:s, s:b}", "name", e->name, "sr_type", e->sr_type, "sr",
                e->sr_key, "key", e->vol_key, "readonly", e->readonly);
  if (!j) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  if (file_of(e->name, file, sizeof file) == -1)
    return -1;
  return zl_json_save_at(dfd, file, j, false);
}

int
zl_export_unregister(const char *name)
{
  char file[NAME_MAX + 1];
  CLEANUP_CLOSE int dfd = zl_run_subdir("exports", false);

  if (dfd == -1)
    return errno == ENOENT ? 0 : -1;
  if (file_of(name, file, sizeof file) == -1)
    return -1;
  if (unlinkat(dfd, file, 0) == -1 && errno != ENOENT) {
    zl_error_sys(errno, "unregister export %s", name);
    return -1;
  }
  return 0;
}

void
zl_export_info_free(struct zl_export_info *e)
{
  free(e->name);
  free(e->sr_type);
  free(e->sr_key);
  free(e->vol_key);
  memset(e, 0, sizeof *e);
}

int
zl_export_lookup(const char *name, struct zl_export_info *out)
{
  char file[NAME_MAX + 1];
  CLEANUP_CLOSE int dfd = -1;
  CLEANUP_JSON json_t *j = NULL;

  memset(out, 0, sizeof *out);
  if (!zl_export_name_valid(name)) {
    zl_error(ENOENT, "'%.64s' is not an export name", name);
    return -1;
  }
  if ((dfd = zl_run_subdir("exports", false)) == -1) {
    zl_error(ENOENT, "no volume is attached as %s", name);
    return -1;
  }
  if (file_of(name, file, sizeof file) == -1)
    return -1;
  if (!(j = zl_json_load_at(dfd, file, 65536))) {
    if (errno == ENOENT)
      zl_error(ENOENT, "no volume is attached as %s", name);
    return -1;
  }
  const char *t = zl_meta_str(j, "sr_type"), *sr = zl_meta_str(j, "sr"),
             *k = zl_meta_str(j, "key");
  if (!t || !sr || !k) {
    zl_error(EINVAL, "export %s: registry entry is malformed", name);
    return -1;
  }
  out->name = strdup(name);
  out->sr_type = strdup(t);
  out->sr_key = strdup(sr);
  out->vol_key = strdup(k);
  out->readonly = json_is_true(json_object_get(j, "readonly"));
  if (!out->name || !out->sr_type || !out->sr_key || !out->vol_key) {
    zl_export_info_free(out);
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  return 0;
}

char **
zl_export_names(void)
{
  CLEANUP_CLOSE int dfd = zl_run_subdir("exports", false);
  CLEANUP_DIR DIR *d = NULL;
  struct dirent *de;
  char **v = calloc(1, sizeof *v);
  size_t n = 0;

  if (!v || dfd == -1)
    return v;
  int dup_fd = dup(dfd);
  if (dup_fd == -1 || !(d = fdopendir(dup_fd)))
    return v;
  while ((de = readdir(d))) {
    size_t len = strlen(de->d_name);
    if (de->d_name[0] == '.' || len < 6 || strcmp(de->d_name + len - 5, ".json") != 0)
      continue;
    CLEANUP_JSON json_t *j = zl_json_load_at(dfd, de->d_name, 65536);
    const char *name = zl_meta_str(j, "name");
    char **nv = name ? realloc(v, (n + 2) * sizeof *nv) : NULL;
    if (!nv)
      continue;
    v = nv;
    v[n++] = strdup(name);
    v[n] = NULL;
  }
  zl_error_clear();
  return v;
}
