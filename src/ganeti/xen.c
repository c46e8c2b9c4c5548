/* xen.c: Xen disk specs as Ganeti's hv_xen writes them (reference §2.9):
 *   phy:<dev>,<vdev>,w   file:<file>,..   tap:aio:<file>,..
 *   tap2:tapdisk:aio:<file>,..           (w becomes r when read-only) */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ganeti/ganeti.h"
#include "util/error.h"

#include "util/banned.h" /* last: after every declaration */

static const struct {
  const char *driver, *alias, *prefix;
} drivers[] = {
    {"phy", "blockdev", "phy:"},
    {"file", "loop", "file:"},
    {"tap", "blktap", "tap:aio:"},
    {"tap2", "blktap2", "tap2:tapdisk:aio:"},
};

static int
find(const char *driver)
{
  for (size_t i = 0; i < sizeof drivers / sizeof drivers[0]; i++) {
    if (strcmp(driver, drivers[i].driver) == 0 || strcmp(driver, drivers[i].alias) == 0)
      return (int)i;
  }
  return -1;
}

bool
gnt_xen_driver_is_phy(const char *driver)
{
  return find(driver) == 0;
}

int
gnt_xen_disk_spec(const char *driver, const char *path, const char *vdev, bool readonly,
                  char *out, size_t len)
{
  int d = find(driver);

  if (d < 0) {
    zl_error(EINVAL, "unknown Xen disk driver '%s' (phy, file, tap, tap2)", driver);
    return -1;
  }
  if (!*vdev || strspn(vdev, "abcdefghijklmnopqrstuvwxyz0123456789:") != strlen(vdev)) {
    zl_error(EINVAL, "'%s' is not a Xen virtual device name (e.g. xvda, sda, hdb)", vdev);
    return -1;
  }
  if (!path || path[0] != '/' || strchr(path, ',')) {
    zl_error(EINVAL, "'%s' cannot be given to Xen (absolute, without ',')",
             path ? path : "");
    return -1;
  }
  if ((size_t)snprintf(out, len, "%s%s,%s,%s", drivers[d].prefix, path, vdev,
                       readonly ? "r" : "w") >= len) {
    zl_error(ENAMETOOLONG, "disk spec too long");
    return -1;
  }
  return 0;
}
