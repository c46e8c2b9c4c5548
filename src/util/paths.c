/* paths.c: see paths.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/paths.h"

static const char *const forbidden[] = {
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/proc",
    "/root",
    "/sys",
    "/bin",
    "/lib",
    "/lib32",
    "/lib64",
    "/sbin",
    "/usr/bin",
    "/usr/lib",
    "/usr/lib32",
    "/usr/lib64",
    "/usr/sbin",
    "/usr/local/bin",
    "/usr/local/lib",
    "/usr/local/lib32",
    "/usr/local/lib64",
    "/usr/local/sbin",
    NULL,
};

bool
zl_path_within(const char *path, const char *dir)
{
  size_t n = strlen(dir);

  if (strcmp(dir, "/") == 0)
    return path[0] == '/';
  return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

const char *
zl_forbidden_prefix(const char *path)
{
  for (const char *const *f = forbidden; *f; f++) {
    if (zl_path_within(path, *f))
      return *f;
  }
  return NULL;
}

int
zl_path_canonical(const char *path, char *out, size_t len)
{
  char head[PATH_MAX], rp[PATH_MAX];
  size_t cut;

  if (!path || path[0] != '/' || strlen(path) >= sizeof head) {
    zl_error(EINVAL, "'%s' is not an absolute path", path ? path : "");
    return -1;
  }
  snprintf(head, sizeof head, "%s", path);
  /* strip components until what is left exists */
  for (;;) {
    if (realpath(head[0] ? head : "/", rp))
      break;
    if (errno != ENOENT && errno != ENOTDIR) {
      zl_error(errno, "%s: %s", head, strerror(errno));
      return -1;
    }
    char *slash = strrchr(head, '/');
    if (!slash) {
      zl_error(EINVAL, "'%s' is not an absolute path", path);
      return -1;
    }
    *slash = '\0';
  }
  cut = strlen(head);
  const char *rest = path + cut; /* "" or "/a/b" */
  for (const char *c = rest; *c;) {
    c += *c == '/';
    size_t n = strcspn(c, "/");
    if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.')) {
      zl_error(EINVAL, "'%s': '.' and '..' are not allowed in a path that does not exist",
               path);
      return -1;
    }
    c += n;
  }
  if ((size_t)snprintf(out, len, "%s%s", strcmp(rp, "/") ? rp : (rest[0] ? "" : "/"),
                       rest) >= len) {
    zl_error(ENAMETOOLONG, "'%s' is too long", path);
    return -1;
  }
  /* "a//b" and a trailing '/' */
  char *w = out;
  for (const char *r = out; *r; r++) {
    if (*r == '/' && r[1] == '/')
      continue;
    *w++ = *r;
  }
  *w = '\0';
  if (w - out > 1 && w[-1] == '/')
    w[-1] = '\0';
  return 0;
}

int
zl_path_allowed(const char *path, const char *allowed_file)
{
  CLEANUP_FREE char *buf = NULL;
  const char *f = zl_forbidden_prefix(path);
  int valid = 0;

  if (f || strcmp(path, "/") == 0) {
    zl_error_kind(ZL_ERR_INVALID, EACCES, "%s is a system directory (%s): never allowed",
                  path, f ? f : "/");
    return -1;
  }
  if (zl_read_file_at(AT_FDCWD, allowed_file, 1 << 20, &buf, NULL) == -1) {
    zl_error_kind(ZL_ERR_INVALID, EACCES,
                  "%s is not allowed: the allowed-paths file %s cannot be read (%s); "
                  "list the directories that may hold volumes there, one per line",
                  path, allowed_file, strerror(errno));
    return -1;
  }
  for (char *save = NULL, *line = strtok_r(buf, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    line += strspn(line, " \t");
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '\r'))
      line[--n] = '\0';
    if (!n || line[0] == '#' || line[0] != '/')
      continue;
    char canon[PATH_MAX];
    if (zl_path_canonical(line, canon, sizeof canon) == -1 || zl_forbidden_prefix(canon))
      continue;
    valid++;
    if (zl_path_within(path, canon)) {
      zl_error_clear();
      return 0;
    }
  }
  zl_error_kind(ZL_ERR_INVALID, EACCES,
                valid ? "%s is outside every directory allowed in %s"
                      : "%s is not allowed: %s names no valid directory",
                path, allowed_file);
  return -1;
}
