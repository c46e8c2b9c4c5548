/* rundir.c: see rundir.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "beneath.h"
#include "cleanup.h"
#include "error.h"
#include "rundir.h"

#include "util/banned.h" /* last: after every declaration */

const char *
zl_run_dir(void)
{
  const char *d = getenv("ZFS_LIVE_RUN");
  return d && d[0] == '/' ? d : "/run/zfs-live";
}

int
zl_run_dirfd(bool create)
{
  const char *path = zl_run_dir();

  if (create && mkdir(path, 0700) == -1 && errno != EEXIST) {
    zl_error_sys(errno, "%s", path);
    return -1;
  }
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd == -1 && !(errno == ENOENT && !create))
    zl_error_sys(errno, "%s", path);
  return fd;
}

int
zl_run_subdir(const char *sub, bool create)
{
  CLEANUP_CLOSE int run = zl_run_dirfd(create);

  if (run == -1)
    return -1;
  int fd = zl_dir_beneath(run, sub, create);
  if (fd == -1 && !(errno == ENOENT && !create))
    zl_error_prefix("%s: ", zl_run_dir());
  return fd;
}

int
zl_run_lock(const char *name)
{
  int dfd = zl_run_subdir("locks", true);
  if (dfd == -1)
    return -1;
  int fd = zl_file_beneath(dfd, name, O_RDWR | O_CREAT, 0600);
  int e = errno;
  close(dfd);
  if (fd == -1 || flock(fd, LOCK_EX) == -1) {
    e = fd == -1 ? e : errno;
    zl_error_sys(e, "lock %s/locks/%s", zl_run_dir(), name);
    if (fd >= 0)
      close(fd);
    return -1;
  }
  return fd;
}
