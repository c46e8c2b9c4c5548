/* provider.c: the provider directory checked as Ganeti checks it on every
 * action (reference §1.1), so that an incomplete installation is reported
 * by the script that runs, not only by `gnt-storage diagnose`. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ganeti/ganeti.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/strbuf.h"

#include "util/banned.h" /* last: after every declaration */

int
gnt_check_provider_dir(const char *dir)
{
  char path[4096];
  struct stat st;
  struct zl_sb missing = ZL_SB_INIT;

  for (int i = 0; i < GNT_NACTIONS; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, gnt_action_names[i]);
    /* snapshot, open and close are optional for Ganeti: checked when present */
    bool optional = i == GNT_SNAPSHOT || i == GNT_OPEN || i == GNT_CLOSE;
    bool ok = stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & S_IXUSR);
    if (!ok && (!optional || lstat(path, &st) == 0)) {
      zl_sb_addf(&missing, " %s", gnt_action_names[i]);
    }
  }
  snprintf(path, sizeof path, "%s/parameters.list", dir);
  if (access(path, R_OK) == -1)
    zl_sb_add(&missing, " parameters.list");
  CLEANUP_FREE char *m = zl_sb_take(&missing);
  if (!m)
    return -1;
  if (m[0]) {
    zl_error(ENOENT,
             "the provider directory %s is incomplete: missing or not executable:%s "
             "(reinstall: make install)",
             dir, m);
    return -1;
  }
  return 0;
}

bool
gnt_is_provider_script(const char *argv0)
{
  char dir[PATH_MAX], parent[PATH_MAX], list[PATH_MAX + 32];

  if (!strchr(argv0, '/') || snprintf(dir, sizeof dir, "%s", argv0) >= (int)sizeof dir)
    return false;
  dirname(dir);
  snprintf(parent, sizeof parent, "%s", dir);
  if (strcmp(basename(dirname(parent)), "extstorage") == 0)
    return true;
  snprintf(list, sizeof list, "%s/parameters.list", dir);
  return access(list, F_OK) == 0;
}
