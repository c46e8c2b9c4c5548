/* beneath.c: see beneath.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#define HAVE_OPENAT2_H 1
#endif
#endif

#include "beneath.h"
#include "error.h"

#include "util/banned.h" /* last: after every declaration */

bool
zl_path_relative_ok(const char *path)
{
  if (!path || !*path || path[0] == '/')
    return false;
  for (const char *p = path; *p;) {
    const char *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    if (n == 0 || n > NAME_MAX || (n == 1 && p[0] == '.') ||
        (n == 2 && p[0] == '.' && p[1] == '.'))
      return false;
    p += n + (slash ? 1 : 0);
    if (slash && !*p)
      return false; /* trailing '/' */
  }
  return true;
}

static int
bad_path(const char *path)
{
  zl_error(EINVAL, "'%s' is not a relative path of plain names", path ? path : "");
  return -1;
}

/* The kernel's walk: no symlinks, no escape.  -2 when unavailable. */
static int
openat2_dir(int dirfd, const char *path)
{
#if defined(HAVE_OPENAT2_H) && defined(SYS_openat2)
  static int unavailable;
  if (unavailable)
    return -2;
  struct open_how how = {
      .flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW,
      .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
  };
  long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
  if (fd >= 0)
    return (int)fd;
  if (errno == ENOSYS || errno == EPERM || errno == E2BIG) {
    unavailable = 1; /* old kernel, or a seccomp filter: walk ourselves */
    return -2;
  }
  return -1;
#else
  (void)dirfd;
  (void)path;
  return -2;
#endif
}

/* One component at a time, each O_NOFOLLOW | O_DIRECTORY. */
static int
walk_dir(int dirfd, const char *path, bool create)
{
  char comp[NAME_MAX + 1];
  int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);

  if (fd == -1)
    return -1;
  for (const char *p = path; *p;) {
    const char *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    memcpy(comp, p, n);
    comp[n] = '\0';
    p += n + (slash ? 1 : 0);
    if (create && mkdirat(fd, comp, 0700) == -1 && errno != EEXIST) {
      int e = errno;
      close(fd);
      errno = e;
      return -1;
    }
    int next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    int e = errno;
    close(fd);
    if (next == -1) {
      errno = e;
      return -1;
    }
    fd = next;
  }
  return fd;
}

static const char *
why(int e)
{
  /* O_NOFOLLOW | O_DIRECTORY on a symlink gives ENOTDIR or ELOOP */
  if (e == ELOOP)
    return "a symlink is in the way (refused)";
  if (e == ENOTDIR)
    return "not a directory (a symlink or another file is in the way; refused)";
  if (e == EXDEV)
    return "it leads outside (refused)";
  return strerror(e);
}

int
zl_dir_beneath(int dirfd, const char *path, bool create)
{
  int fd;

  if (!zl_path_relative_ok(path))
    return bad_path(path);
  fd = create ? -2 : openat2_dir(dirfd, path);
  if (fd == -2)
    fd = walk_dir(dirfd, path, create);
  if (fd == -1) {
    int e = errno;
    if (e == ENOENT && !create)
      zl_error(ENOENT, "%s: no such directory", path);
    else
      zl_error(e, "%s: %s", path, why(e));
    errno = e;
  }
  return fd;
}

int
zl_parent_beneath(int dirfd, const char *path, bool create, const char **last)
{
  char parent[PATH_MAX];

  if (!zl_path_relative_ok(path))
    return bad_path(path);
  const char *slash = strrchr(path, '/');
  *last = slash ? slash + 1 : path;
  if (!slash) {
    int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    if (fd == -1)
      zl_error_sys(errno, "%s", path);
    return fd;
  }
  size_t n = (size_t)(slash - path);
  if (n >= sizeof parent)
    return bad_path(path);
  memcpy(parent, path, n);
  parent[n] = '\0';
  return zl_dir_beneath(dirfd, parent, create);
}

int
zl_file_beneath(int dirfd, const char *path, int flags, mode_t mode)
{
  const char *name;
  struct stat st;
  int e, pfd = zl_parent_beneath(dirfd, path, false, &name);

  if (pfd == -1)
    return -1;
  int fd =
      openat(pfd, name, flags | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, mode);
  e = errno;
  close(pfd);
  if (fd == -1) {
    zl_error(e, "%s: %s", path, why(e));
    errno = e;
    return -1;
  }
  if (fstat(fd, &st) == -1) {
    e = errno;
    close(fd);
    zl_error_sys(e, "%s", path);
    errno = e;
    return -1;
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    zl_error(EINVAL, "%s: not a regular file (refused)", path);
    return -1;
  }
  int fl = fcntl(fd, F_GETFL);
  if (!(flags & O_NONBLOCK) && (fl == -1 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == -1)) {
    e = errno;
    close(fd);
    zl_error_sys(e, "%s", path);
    errno = e;
    return -1;
  }
  return fd;
}

static int
remove_tree_at(int parent, const char *name, int depth)
{
  if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
    return 0;
  if (errno != EISDIR && errno != EPERM) /* EPERM: some kernels for a dir */
    return -1;
  if (depth > 16) {
    errno = ELOOP;
    return -1;
  }
  int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd == -1)
    return -1;
  DIR *d = fdopendir(fd);
  if (!d) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  struct dirent *de;
  int r = 0;
  while (r == 0 && (de = readdir(d))) {
    if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
      r = remove_tree_at(fd, de->d_name, depth + 1);
  }
  int e = errno;
  closedir(d);
  if (r == -1) {
    errno = e;
    return -1;
  }
  return unlinkat(parent, name, AT_REMOVEDIR) == -1 && errno != ENOENT ? -1 : 0;
}

int
zl_remove_tree(int parent, const char *name)
{
  if (!zl_path_relative_ok(name) || strchr(name, '/'))
    return bad_path(name);
  if (remove_tree_at(parent, name, 0) == -1) {
    int e = errno;
    zl_error_sys(e, "remove %s", name);
    errno = e;
    return -1;
  }
  return 0;
}
