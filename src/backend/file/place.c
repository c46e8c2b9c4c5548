/* place.c: where a file SR may be (the directory of device-config:path):
 * its canonical form, what forbids an SR there, and SR.probe. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/file/file.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/paths.h"

#include "util/banned.h" /* last: after every declaration */

#define SR_PATH_MAX 1024

/* Never an SR in or below a system directory (util/paths.c: Ganeti's
 * forbidden file-storage paths), nor at the root itself. */
static const char *
forbidden_prefix(const char *path)
{
  return zl_forbidden_prefix(path);
}

int
file_config_path(const json_t *config, const char **path)
{
  *path = json_string_value(json_object_get(config, "path"));
  if (!*path) {
    zl_error(EINVAL, "device-config:path is required (the directory to keep volumes in)");
    return -1;
  }
  if (strcmp(*path, "/") == 0) {
    zl_error(EINVAL, "device-config:path '/' is a system directory");
    return -1;
  }
  if (!zl_path_key_valid(*path)) {
    zl_error(EINVAL,
             "device-config:path '%s' must be an absolute path without '.', '..' or "
             "'//' components, made of letters, digits and '/._-+@,='",
             *path);
    return -1;
  }
  return 0;
}

static bool
is_sr_dir(int parentfd, const char *dir)
{
  char p[PATH_MAX];
  if (snprintf(p, sizeof p, "%s/" ZL_PRIV_DIR "/" ZL_SR_INFO, dir) >= (int)sizeof p)
    return false; /* no path that long names an SR */
  return faccessat(parentfd, p, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

/* The SR at an ancestor of canon, if any (into out). */
static bool
ancestor_sr(const char *canon, char *out, size_t outlen)
{
  char p[PATH_MAX];

  snprintf(p, sizeof p, "%s", canon);
  for (char *slash = strrchr(p, '/'); slash; slash = strrchr(p, '/')) {
    *slash = '\0';
    if (is_sr_dir(AT_FDCWD, p[0] ? p : "/")) {
      snprintf(out, outlen, "%s", p[0] ? p : "/");
      return true;
    }
    if (!p[0])
      break;
  }
  return false;
}

/* An SR below dirfd, up to depth levels down (bounded work). */
static bool
descendant_sr(int dirfd, int depth, char *out, size_t outlen, int *budget)
{
  CLEANUP_DIR DIR *d = NULL;
  struct dirent *de;
  int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  if (fd == -1 || !(d = fdopendir(fd))) {
    if (fd >= 0)
      close(fd);
    return false;
  }
  while ((de = readdir(d)) && (*budget)-- > 0) {
    if (de->d_name[0] == '.' || de->d_type != DT_DIR)
      continue;
    if (is_sr_dir(dirfd, de->d_name)) {
      snprintf(out, outlen, "%s", de->d_name);
      return true;
    }
    if (depth > 1) {
      CLEANUP_CLOSE int sub =
          openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
      if (sub >= 0 && descendant_sr(sub, depth - 1, out, outlen, budget))
        return true;
    }
  }
  return false;
}

/* Canonical form of path: realpath of it, or of its parent + last name
 * when it does not exist yet (*exists tells which). */
int
file_canonical(const char *path, char *out, bool *exists)
{
  char parent[PATH_MAX], rp[PATH_MAX];
  const char *slash = strrchr(path, '/');

  if (realpath(path, out)) {
    *exists = true;
    return 0;
  }
  if (errno != ENOENT) {
    zl_error_sys(errno, "%s", path);
    return -1;
  }
  *exists = false;
  snprintf(parent, sizeof parent, "%.*s", (int)(slash - path), path);
  if (!realpath(parent[0] ? parent : "/", rp)) {
    zl_error_kind_sys(ZL_ERR_INVALID, errno, "parent directory of %s", path);
    return -1;
  }
  snprintf(out, PATH_MAX, "%s%s", strcmp(rp, "/") ? rp : "", slash);
  return 0;
}

/* Why an SR cannot be made at canon, or NULL if it can. */
const char *
file_why_not(const char *canon, bool exists, char *why, size_t len)
{
  char other[PATH_MAX];
  const char *f = forbidden_prefix(canon);
  int budget = 20000;

  if (strcmp(canon, "/") == 0 || f) {
    snprintf(why, len, "%s is a system directory (%s)", canon, f ? f : "/");
    return why;
  }
  if (!zl_path_key_valid(canon)) {
    snprintf(why, len, "%s resolves to a path with characters SR paths may not have",
             canon);
    return why;
  }
  /* a mount point declared but not mounted: an SR in the directory beneath
   * would be hidden once the filesystem is back */
  if (zl_path_mount_check(canon, zl_host_fstab(), zl_host_mount_units()) == -1) {
    snprintf(why, len, "%s", zl_error_msg());
    zl_error_clear();
    return why;
  }
  if (ancestor_sr(canon, other, sizeof other)) {
    snprintf(why, len, "%s is inside the SR at %s (nested SRs are refused)", canon,
             other);
    return why;
  }
  if (exists) {
    struct stat st;
    CLEANUP_CLOSE int fd = -1;
    if (stat(canon, &st) == -1 || !S_ISDIR(st.st_mode)) {
      snprintf(why, len, "%s is not a directory", canon);
      return why;
    }
    if (is_sr_dir(AT_FDCWD, canon)) {
      snprintf(why, len, "there is already an SR at %s", canon);
      return why;
    }
    fd = open(canon, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0 && descendant_sr(fd, 2, other, sizeof other, &budget)) {
      snprintf(why, len, "%s contains the SR %s/%s (nested SRs are refused)", canon,
               canon, other);
      return why;
    }
  }
  return NULL;
}

int
file_sr_probe(const json_t *config, json_t *results)
{
  const char *path;
  char canon[PATH_MAX], why[PATH_MAX + 128];
  bool exists;
  CLEANUP_DIR DIR *d = NULL;
  struct dirent *de;
  int budget = 10000;

  if (file_config_path(config, &path) == -1 || file_canonical(path, canon, &exists) == -1)
    return -1;
  if (exists && is_sr_dir(AT_FDCWD, canon))
    json_array_append_new(results, json_pack("{s:s, s:{s:s}}", "sr_key", canon,
                                             "configuration", "path", canon));
  if (exists && (d = opendir(canon))) {
    while ((de = readdir(d)) && budget-- > 0) {
      char sub[PATH_MAX];
      if (de->d_name[0] == '.' || de->d_type != DT_DIR ||
          !is_sr_dir(dirfd(d), de->d_name))
        continue;
      int n =
          snprintf(sub, sizeof sub, "%s/%s", strcmp(canon, "/") ? canon : "", de->d_name);
      if (n < (int)sizeof sub && zl_path_key_valid(sub))
        json_array_append_new(results, json_pack("{s:s, s:{s:s}}", "sr_key", sub,
                                                 "configuration", "path", sub));
    }
  }
  const char *no = file_why_not(canon, exists, why, sizeof why);
  json_array_append_new(results,
                        json_pack("{s:{s:s}, s:b, s:s}", "configuration", "path", canon,
                                  "can_create", no == NULL, "reason",
                                  no ? no
                                     : (exists ? "an SR can be created in this "
                                                 "directory"
                                               : "the directory will be created")));
  return 0;
}
