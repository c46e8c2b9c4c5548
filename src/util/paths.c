/* paths.c: see paths.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "util/cleanup.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/paths.h"

#include "util/banned.h" /* last: after every declaration */

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
      zl_error_sys(errno, "%s", head);
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

/* One field of fstab or mountinfo, its octal escapes (\040 for a space)
 * decoded in place. */
static void
unescape(char *f)
{
  char *w = f;
  for (const char *r = f; *r; r++) {
    if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
        r[3] >= '0' && r[3] <= '7') {
      *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
      r += 3;
    } else {
      *w++ = *r;
    }
  }
  *w = '\0';
}

bool
zl_path_is_mountpoint(const char *dir)
{
  FILE *f = fopen("/proc/self/mountinfo", "re");
  CLEANUP_FREE char *line = NULL;
  size_t cap = 0;
  bool found = false;

  if (!f)
    return false;
  /* id parent major:minor root mountpoint ... */
  while (!found && getline(&line, &cap, f) > 0) {
    char *fs = NULL, *field = strtok_r(line, " \n", &fs);
    for (int i = 1; field && i < 5; i++)
      field = strtok_r(NULL, " \n", &fs);
    if (field) {
      unescape(field);
      found = strcmp(field, dir) == 0;
    }
  }
  fclose(f);
  return found;
}

int
zl_fd_fstype(int fd, const char *mountinfo, char *out, size_t len)
{
  struct stat st;
  CLEANUP_FREE char *line = NULL;
  size_t cap = 0;
  int found = -1;

  if (fstat(fd, &st) == -1) {
    zl_error_sys(errno, "fstat");
    return -1;
  }
  FILE *f = fopen(mountinfo, "re");
  if (!f) {
    zl_error_sys(errno, "%s", mountinfo);
    return -1;
  }
  /* id parent major:minor root mountpoint options [optional...] - fstype ... */
  while (found == -1 && getline(&line, &cap, f) > 0) {
    unsigned maj, min;
    char *fs = NULL, *field = strtok_r(line, " \n", &fs);
    for (int i = 1; field && i < 3; i++)
      field = strtok_r(NULL, " \n", &fs);
    if (!field || sscanf(field, "%u:%u", &maj, &min) != 2 || maj != major(st.st_dev) ||
        min != minor(st.st_dev))
      continue;
    while ((field = strtok_r(NULL, " \n", &fs)) && strcmp(field, "-") != 0)
      ;
    if (field && (field = strtok_r(NULL, " \n", &fs))) {
      unescape(field);
      snprintf(out, len, "%s", field);
      found = 0;
    }
  }
  fclose(f);
  if (found == -1)
    zl_error(ENOENT, "no mount of device %u:%u in %s", major(st.st_dev), minor(st.st_dev),
             mountinfo);
  return found;
}

bool
zl_fstype_shared(const char *fstype)
{
  static const char *const shared[] = {
      "nfs", "nfs4", "fuse.glusterfs", "ceph", "fuse.ceph-fuse", "ocfs2", "gfs2", NULL};
  for (size_t i = 0; shared[i]; i++) {
    if (strcmp(fstype, shared[i]) == 0)
      return true;
  }
  return false;
}

/* The deepest declared mount point at or above path so far. */
struct declared {
  char where[PATH_MAX];
  char what[PATH_MAX + 64];
};

static void
consider(struct declared *d, const char *path, const char *where, const char *what)
{
  char canon[PATH_MAX];

  if (where[0] != '/' || zl_path_canonical(where, canon, sizeof canon) == -1) {
    zl_error_clear();
    return;
  }
  if (strcmp(canon, "/") == 0 || !zl_path_within(path, canon) ||
      strlen(canon) <= strlen(d->where))
    return;
  snprintf(d->where, sizeof d->where, "%s", canon);
  snprintf(d->what, sizeof d->what, "%s", what);
}

static void
from_fstab(struct declared *d, const char *path, const char *fstab)
{
  CLEANUP_FREE char *buf = NULL;

  if (!fstab || zl_read_file_at(AT_FDCWD, fstab, 1 << 20, &buf, NULL) == -1) {
    zl_error_clear();
    return;
  }
  for (char *save = NULL, *line = strtok_r(buf, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    char *fs = NULL, *spec = strtok_r(line, " \t", &fs);
    char *file = spec ? strtok_r(NULL, " \t", &fs) : NULL;
    char *type = file ? strtok_r(NULL, " \t", &fs) : NULL;
    if (!file || spec[0] == '#')
      continue;
    unescape(spec);
    unescape(file);
    char what[PATH_MAX + 64];
    snprintf(what, sizeof what, "%.2048s, %s, in %s", spec, type ? type : "?", fstab);
    consider(d, path, file, what);
  }
}

static void
from_units(struct declared *d, const char *path, const char *units_dir)
{
  CLEANUP_DIR DIR *dir = units_dir ? opendir(units_dir) : NULL;
  struct dirent *de;

  while (dir && (de = readdir(dir))) {
    size_t n = strlen(de->d_name);
    bool mount = n > 6 && strcmp(de->d_name + n - 6, ".mount") == 0;
    bool automount = n > 10 && strcmp(de->d_name + n - 10, ".automount") == 0;
    CLEANUP_FREE char *buf = NULL;
    if (!(mount || automount) ||
        zl_read_file_at(dirfd(dir), de->d_name, 1 << 16, &buf, NULL) == -1) {
      zl_error_clear();
      continue;
    }
    for (char *save = NULL, *line = strtok_r(buf, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
      line += strspn(line, " \t");
      if (strncmp(line, "Where=", 6) != 0)
        continue;
      char *w = line + 6;
      w[strcspn(w, " \t\r")] = '\0';
      char what[PATH_MAX + 64];
      snprintf(what, sizeof what, "the unit %s/%s", units_dir, de->d_name);
      consider(d, path, w, what);
    }
  }
}

int
zl_path_mount_check(const char *path, const char *fstab, const char *units_dir)
{
  struct declared d = {"", ""};

  from_fstab(&d, path, fstab);
  from_units(&d, path, units_dir);
  if (!d.where[0] || zl_path_is_mountpoint(d.where))
    return 0;
  zl_error_kind(
      ZL_ERR_NO_SR, ENOENT,
      "%s should be on the filesystem mounted at %s (%s), which is not mounted: "
      "mount it; nothing is made or used on the filesystem beneath",
      path, d.where, d.what);
  return -1;
}

const char *
zl_host_fstab(void)
{
  const char *e = getenv("ZFS_LIVE_FSTAB");
  return e && *e ? e : "/etc/fstab";
}

const char *
zl_host_mount_units(void)
{
  const char *e = getenv("ZFS_LIVE_MOUNT_UNITS");
  return e && *e ? e : "/etc/systemd/system";
}
