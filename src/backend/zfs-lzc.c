/* zfs-lzc.c: libzfs_core through dlopen, for snapshots and their removal
 * without a zfs process (OpenZFS 2.0+: libzfs_core.so.3 and libnvpair.so.3,
 * reference zfs.md §2.5).  Nothing here is needed at build time; where the
 * libraries or /dev/zfs are missing (zfs-fuse) every caller falls back to
 * the CLI.  lzc is used only where it does what the CLI does: snapshots
 * (user properties only) and destroying snapshots.  Creating and cloning
 * filesystems stay on the CLI because libzfs_core does not mount them, and
 * zvol size changes stay on the CLI so libzfs keeps thick reservations.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "backend/zfs.h"
#include "util/error.h"
#include "util/log.h"

typedef struct nvlist nvlist_t;

static struct {
  bool tried, ok;
  int (*init)(void);
  int (*snapshot)(nvlist_t *, nvlist_t *, nvlist_t **);
  int (*destroy_snaps)(nvlist_t *, int, nvlist_t **);
  nvlist_t *(*nv_alloc)(void);
  void (*nv_free)(nvlist_t *);
  void (*nv_add_boolean)(nvlist_t *, const char *);
  void (*nv_add_string)(nvlist_t *, const char *, const char *);
} lzc;

static bool
load(void)
{
  void *core, *nv;

  if (lzc.tried)
    return lzc.ok;
  lzc.tried = true;
  if (getenv("ZFS_LIVE_NO_LZC") || access("/dev/zfs", F_OK) != 0)
    return false;
  if (!(core = dlopen("libzfs_core.so.3", RTLD_NOW | RTLD_LOCAL)) ||
      !(nv = dlopen("libnvpair.so.3", RTLD_NOW | RTLD_LOCAL))) {
    zl_debug("libzfs_core.so.3 not available: using the zfs command");
    return false;
  }
  *(void **)&lzc.init = dlsym(core, "libzfs_core_init");
  *(void **)&lzc.snapshot = dlsym(core, "lzc_snapshot");
  *(void **)&lzc.destroy_snaps = dlsym(core, "lzc_destroy_snaps");
  *(void **)&lzc.nv_alloc = dlsym(nv, "fnvlist_alloc");
  *(void **)&lzc.nv_free = dlsym(nv, "fnvlist_free");
  *(void **)&lzc.nv_add_boolean = dlsym(nv, "fnvlist_add_boolean");
  *(void **)&lzc.nv_add_string = dlsym(nv, "fnvlist_add_string");
  if (!lzc.init || !lzc.snapshot || !lzc.destroy_snaps || !lzc.nv_alloc || !lzc.nv_free ||
      !lzc.nv_add_boolean || !lzc.nv_add_string || lzc.init() != 0) {
    zl_warn("libzfs_core.so.3 is incomplete or fails to start: using the zfs command");
    return false;
  }
  lzc.ok = true;
  return true;
}

bool
zfs_lzc_available(void)
{
  return load();
}

int
zfs_lzc_snapshot(const char *snap, const struct zprop *props, int nprops)
{
  nvlist_t *snaps = lzc.nv_alloc(), *p = lzc.nv_alloc(), *errs = NULL;
  int r;

  lzc.nv_add_boolean(snaps, snap);
  for (int i = 0; i < nprops; i++)
    lzc.nv_add_string(p, props[i].name, props[i].value);
  r = lzc.snapshot(snaps, p, &errs);
  lzc.nv_free(snaps);
  lzc.nv_free(p);
  if (errs)
    lzc.nv_free(errs);
  if (r != 0) {
    zl_error(r, "snapshot %s: %s", snap, strerror(r));
    return -1;
  }
  return 0;
}

int
zfs_lzc_destroy_snapshot(const char *snap)
{
  nvlist_t *snaps = lzc.nv_alloc(), *errs = NULL;
  int r;

  lzc.nv_add_boolean(snaps, snap);
  r = lzc.destroy_snaps(snaps, 0, &errs);
  lzc.nv_free(snaps);
  if (errs)
    lzc.nv_free(errs);
  if (r != 0 && r != ENOENT) {
    zl_error(r, "destroy %s: %s", snap, strerror(r));
    return -1;
  }
  return 0;
}
