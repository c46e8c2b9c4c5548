/* store.c: what every backend shares about an SR's layout (backend.h). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/backend.h"
#include "util/beneath.h"
#include "util/error.h"

#include "util/banned.h" /* last: after every declaration */

int
zl_store_scratch_for(const struct zl_store *st, int targetfd)
{
  struct stat a, b;
  int j = zl_dir_beneath(st->statefd, ZL_JOURNAL_DIR, true);

  if (j >= 0 && fstat(j, &a) == 0 && fstat(targetfd, &b) == 0 && a.st_dev == b.st_dev)
    return j;
  if (j >= 0)
    close(j);
  zl_error_clear();
  int fd = fcntl(targetfd, F_DUPFD_CLOEXEC, 0);
  if (fd == -1)
    zl_error_sys(errno, "scratch directory");
  return fd;
}
