/* names.c: the ZFS name of a volume key, and the snapshot index (a cache
 * of which dataset each snapshot key belongs to). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/zfs/stream.h"
#include "backend/zfs/zfs.h"
#include "util/beneath.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"
#include "util/uuid.h"

#include "util/banned.h" /* last: after every declaration */

#define SNAPIDX "snapidx"

/* The snapshot index: snapidx/<key> holds the dataset component the
 * snapshot belongs to.  A cache: when wrong, a scan finds the snapshot and
 * the entry is rewritten. */
int
zb_index_read(struct zl_store *sr, const char *key, char *parent, size_t len)
{
  char name[NAME_MAX + 1];
  CLEANUP_FREE char *buf = NULL;

  snprintf(name, sizeof name, SNAPIDX "/%s", key);
  if (zl_read_file_at(sr->statefd, name, 512, &buf, NULL) == -1)
    return -1;
  snprintf(parent, len, "%.*s", (int)strcspn(buf, "\n"), buf);
  return parent[0] ? 0 : (errno = ENOENT, -1);
}

int
zb_index_write(struct zl_store *sr, const char *key, const char *parent)
{
  CLEANUP_CLOSE int dfd = zl_dir_beneath(sr->statefd, SNAPIDX, true);

  if (dfd == -1) {
    zl_error_prefix("snapshot index: ");
    return -1;
  }
  return zl_write_file_atomic(dfd, key, parent, strlen(parent), false);
}

void
zb_index_remove(struct zl_store *sr, const char *key)
{
  CLEANUP_CLOSE int dfd = zl_dir_beneath(sr->statefd, SNAPIDX, false);

  if (dfd >= 0)
    unlinkat(dfd, key, 0);
  zl_error_clear();
}

/* The ZFS name of key: <sr>/<parent>@<key> for a snapshot in the index,
 * <sr>/<key> otherwise.  *is_snap tells which. */
int
zb_name_of(struct zl_store *sr, const char *key, char *out, size_t len, bool *is_snap)
{
  struct zb_sr *z = zb_of(sr);
  char parent[256];

  int n;

  if (zb_index_read(sr, key, parent, sizeof parent) == 0) {
    n = snprintf(out, len, "%s/%s@%s", z->dataset, parent, key);
    *is_snap = true;
  } else {
    n = snprintf(out, len, "%s/%s", z->dataset, key);
    *is_snap = false;
  }
  zl_error_clear();
  if (n < 0 || (size_t)n >= len) { /* never a truncated name: it could be another's */
    zl_error(ENAMETOOLONG, "volume %s: its ZFS name is longer than %zu bytes", key, len);
    return -1;
  }
  return 0;
}

/* The part of a ZFS name after the SR dataset: "<comp>" or "<comp>@<snap>". */
const char *
zb_rel_name(const struct zb_sr *z, const char *name)
{
  size_t n = strlen(z->dataset);
  return strncmp(name, z->dataset, n) == 0 && name[n] == '/' ? name + n + 1 : NULL;
}

const char *
zb_props_to_get(const struct zb_sr *z)
{
  static char buf[768];
  snprintf(buf, sizeof buf,
           "type,used,volsize,refreservation,origin,compression,copies,primarycache,"
           "secondarycache,logbias,recordsize,volblocksize," ZB_SIZE_PROP "%s,%s",
           z->caps.sync_prop ? ",sync" : "", zb_meta_prop_list());
  return buf;
}

/* The temporary snapshot a comparison with the volume itself takes is named
 * _zl-cbt-<pid>-<first 8 of the boot id>-<random>: one whose process is gone
 * (or of an earlier boot) is stale. */
void
zb_boot8(char *out)
{
  char id[64];
  zl_boot_id(id, sizeof id);
  snprintf(out, 9, "%.8s", strlen(id) >= 8 ? id : "00000000");
}

bool
zb_cbt_snapshot_stale(const char *snap)
{
  char boot[9], theirs[9] = "";
  long pid = 0;
  if (sscanf(snap + strlen(ZB_CBT_PREFIX), "%ld-%8[0-9a-f]", &pid, theirs) != 2 ||
      pid <= 0)
    return false; /* not ours to judge */
  zb_boot8(boot);
  return strcmp(boot, theirs) != 0 || (kill((pid_t)pid, 0) == -1 && errno == ESRCH);
}
