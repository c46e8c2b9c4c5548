/* lzc.c: libzfs_core through dlopen (OpenZFS 2.0+: libzfs_core.so.3 and
 * libnvpair.so.3, reference zfs.md §2.5), so create, snapshot, clone and
 * destroy cost no zfs process where it is present.  Nothing here is needed
 * at build time; where the libraries or /dev/zfs are missing (zfs-fuse)
 * every caller uses the CLI.
 *
 * What stays on the CLI, because libzfs (not the kernel) does it:
 *   thick zvols (libzfs computes the refreservation from the pool layout),
 *   volsize changes (libzfs keeps thick reservations), mounting, renames.
 * Filesystems of the dataset layout are canmount=noauto, so creating,
 * cloning and destroying them needs no mount handling.
 *
 * Properties go to the kernel in its own types: user properties (with a
 * ':') as strings, canmount as its index, the rest as numbers.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/zfs/zfs.h"
#include "util/error.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

typedef struct nvlist nvlist_t;

enum { LZC_TYPE_ZFS = 2, LZC_TYPE_ZVOL = 3 }; /* enum lzc_dataset_type */

static struct {
  bool tried, ok;
  int (*init)(void);
  int (*create)(const char *, int, nvlist_t *, uint8_t *, unsigned);
  int (*clone)(const char *, const char *, nvlist_t *);
  int (*destroy)(const char *);
  int (*snapshot)(nvlist_t *, nvlist_t *, nvlist_t **);
  int (*destroy_snaps)(nvlist_t *, int, nvlist_t **);
  nvlist_t *(*nv_alloc)(void);
  void (*nv_free)(nvlist_t *);
  void (*nv_add_boolean)(nvlist_t *, const char *);
  void (*nv_add_string)(nvlist_t *, const char *, const char *);
  void (*nv_add_uint64)(nvlist_t *, const char *, uint64_t);
} lzc;

#define SYM(lib, field, name) (*(void **)&lzc.field = dlsym(lib, name))

int
zb_lzc_load_from(const char *dir)
{
  char core_path[4096], nv_path[4096];
  void *core, *nv;

  memset(&lzc, 0, sizeof lzc);
  lzc.tried = true;
#ifdef ZL_STATIC
  (void)dir, (void)core_path, (void)nv_path, (void)core, (void)nv;
  zl_debug("a static binary does not load libzfs_core: using the zfs command");
  return -1;
#endif
  snprintf(core_path, sizeof core_path, "%s%slibzfs_core.so.3", dir ? dir : "",
           dir ? "/" : "");
  snprintf(nv_path, sizeof nv_path, "%s%slibnvpair.so.3", dir ? dir : "", dir ? "/" : "");
  if (!(core = dlopen(core_path, RTLD_NOW | RTLD_LOCAL)) ||
      !(nv = dlopen(nv_path, RTLD_NOW | RTLD_LOCAL))) {
    zl_debug("libzfs_core.so.3 not available: using the zfs command");
    return -1;
  }
  if (!SYM(core, init, "libzfs_core_init") || !SYM(core, create, "lzc_create") ||
      !SYM(core, clone, "lzc_clone") || !SYM(core, destroy, "lzc_destroy") ||
      !SYM(core, snapshot, "lzc_snapshot") ||
      !SYM(core, destroy_snaps, "lzc_destroy_snaps") ||
      !SYM(nv, nv_alloc, "fnvlist_alloc") || !SYM(nv, nv_free, "fnvlist_free") ||
      !SYM(nv, nv_add_boolean, "fnvlist_add_boolean") ||
      !SYM(nv, nv_add_string, "fnvlist_add_string") ||
      !SYM(nv, nv_add_uint64, "fnvlist_add_uint64") || lzc.init() != 0) {
    zl_warn("libzfs_core.so.3 is incomplete or fails to start: using the zfs command");
    return -1;
  }
  lzc.ok = true;
  return 0;
}

bool
zb_lzc_available(void)
{
  if (!lzc.tried && !getenv("ZFS_LIVE_NO_LZC") && access("/dev/zfs", F_OK) == 0)
    zb_lzc_load_from(NULL);
  lzc.tried = true;
  return lzc.ok;
}

/* A property in the kernel's type; -1 if it cannot be expressed. */
static int
add_prop(nvlist_t *nv, const struct zprop *p)
{
  char *end;

  if (strchr(p->name, ':')) {
    lzc.nv_add_string(nv, p->name, p->value);
    return 0;
  }
  if (strcmp(p->name, "canmount") == 0) {
    uint64_t v = strcmp(p->value, "off") == 0 ? 0 : strcmp(p->value, "on") == 0 ? 1 : 2;
    lzc.nv_add_uint64(nv, p->name, v);
    return 0;
  }
  if (strcmp(p->value, "none") == 0) {
    lzc.nv_add_uint64(nv, p->name, 0);
    return 0;
  }
  errno = 0;
  unsigned long long v = strtoull(p->value, &end, 10);
  if (errno || *end || end == p->value)
    return -1; /* e.g. compression=lz4: the CLI translates names */
  lzc.nv_add_uint64(nv, p->name, v);
  return 0;
}

static nvlist_t *
props_nvlist(const struct zprop *props, int n)
{
  nvlist_t *nv = lzc.nv_alloc();
  for (int i = 0; i < n; i++) {
    if (add_prop(nv, &props[i]) == -1) {
      lzc.nv_free(nv);
      return NULL;
    }
  }
  return nv;
}

static int
result(int r, const char *what, const char *name)
{
  if (r == 0)
    return 0;
  zl_error_sys(r, "%s %s", what, name);
  return -1;
}

int
zb_lzc_create(const char *name, bool zvol, const struct zprop *props, int n)
{
  nvlist_t *nv = props_nvlist(props, n);
  if (!nv) {
    errno = ENOTSUP;
    return -1; /* not expressible: the caller uses the CLI */
  }
  int r = lzc.create(name, zvol ? LZC_TYPE_ZVOL : LZC_TYPE_ZFS, nv, NULL, 0);
  lzc.nv_free(nv);
  return result(r, "create", name);
}

int
zb_lzc_clone(const char *name, const char *origin, const struct zprop *props, int n)
{
  nvlist_t *nv = props_nvlist(props, n);
  if (!nv) {
    errno = ENOTSUP;
    return -1;
  }
  int r = lzc.clone(name, origin, nv);
  lzc.nv_free(nv);
  return result(r, "clone", name);
}

int
zb_lzc_destroy(const char *name)
{
  int r = lzc.destroy(name);
  return r == ENOENT ? 0 : result(r, "destroy", name);
}

int
zb_lzc_snapshot(const char *snap, const struct zprop *props, int nprops)
{
  nvlist_t *snaps = lzc.nv_alloc(), *p = lzc.nv_alloc(), *errs = NULL;
  int r;

  lzc.nv_add_boolean(snaps, snap);
  for (int i = 0; i < nprops; i++) /* snapshots take user properties only */
    lzc.nv_add_string(p, props[i].name, props[i].value);
  r = lzc.snapshot(snaps, p, &errs);
  lzc.nv_free(snaps);
  lzc.nv_free(p);
  if (errs)
    lzc.nv_free(errs);
  return result(r, "snapshot", snap);
}

int
zb_lzc_destroy_snapshot(const char *snap)
{
  nvlist_t *snaps = lzc.nv_alloc(), *errs = NULL;
  int r;

  lzc.nv_add_boolean(snaps, snap);
  r = lzc.destroy_snaps(snaps, 0, &errs);
  lzc.nv_free(snaps);
  if (errs)
    lzc.nv_free(errs);
  return r == ENOENT ? 0 : result(r, "destroy", snap);
}
