/* cleanup.c: the functions behind the CLEANUP_* attributes. */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "cleanup.h"

#include "util/banned.h" /* last: after every declaration */

void
zl_cleanup_free(void *ptr)
{
  free(*(void **)ptr);
}

void
zl_cleanup_close(int *fd)
{
  if (*fd >= 0) {
    int saved = errno;
    close(*fd);
    errno = saved;
  }
}

void
zl_cleanup_json(json_t **j)
{
  json_decref(*j);
}

void
zl_cleanup_dir(DIR **d)
{
  if (*d) {
    int saved = errno;
    closedir(*d);
    errno = saved;
  }
}
