/* fake-lzc.c: STAND-IN for libzfs_core.so.3 and libnvpair.so.3, which need
 * OpenZFS's kernel module and cannot run here.  Built twice under those
 * names for test-zfs-lzc: it records every call, with each property's name
 * and the type it was given to the "kernel" in, as lines appended to the
 * file named by $FAKE_LZC_LOG, and succeeds (or fails as $FAKE_LZC_FAIL
 * says).  The real libraries are exercised by test_zvol.py on a host with
 * /dev/zfs. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct nvlist {
  char text[8192];
} nvlist_t;

static void
logf_(const char *verb, const char *a, const char *b, const nvlist_t *nv)
{
  const char *path = getenv("FAKE_LZC_LOG");
  FILE *f = path ? fopen(path, "a") : NULL;
  if (!f)
    return;
  fprintf(f, "%s %s%s%s [%s]\n", verb, a, b ? " " : "", b ? b : "", nv ? nv->text : "");
  fclose(f);
}

static int
fail_for(const char *call)
{
  const char *f = getenv("FAKE_LZC_FAIL");
  return f && strcmp(f, call) == 0 ? EBUSY : 0;
}

int libzfs_core_init(void);
int lzc_create(const char *, int, nvlist_t *, uint8_t *, unsigned);
int lzc_clone(const char *, const char *, nvlist_t *);
int lzc_destroy(const char *);
int lzc_snapshot(nvlist_t *, nvlist_t *, nvlist_t **);
int lzc_destroy_snaps(nvlist_t *, int, nvlist_t **);
nvlist_t *fnvlist_alloc(void);
void fnvlist_free(nvlist_t *);
void fnvlist_add_boolean(nvlist_t *, const char *);
void fnvlist_add_string(nvlist_t *, const char *, const char *);
void fnvlist_add_uint64(nvlist_t *, const char *, uint64_t);

int
libzfs_core_init(void)
{
  return 0;
}

int
lzc_create(const char *name, int type, nvlist_t *props, uint8_t *k, unsigned kl)
{
  (void)k, (void)kl;
  logf_("create", name, type == 3 ? "zvol" : type == 2 ? "fs" : "?", props);
  return fail_for("create");
}

int
lzc_clone(const char *name, const char *origin, nvlist_t *props)
{
  logf_("clone", name, origin, props);
  return fail_for("clone");
}

int
lzc_destroy(const char *name)
{
  logf_("destroy", name, NULL, NULL);
  return fail_for("destroy");
}

int
lzc_snapshot(nvlist_t *snaps, nvlist_t *props, nvlist_t **errs)
{
  *errs = NULL;
  logf_("snapshot", snaps->text, NULL, props);
  return fail_for("snapshot");
}

int
lzc_destroy_snaps(nvlist_t *snaps, int defer, nvlist_t **errs)
{
  *errs = NULL;
  logf_("destroy_snaps", snaps->text, defer ? "defer" : NULL, NULL);
  return fail_for("destroy_snaps");
}

nvlist_t *
fnvlist_alloc(void)
{
  return calloc(1, sizeof(nvlist_t));
}

void
fnvlist_free(nvlist_t *nv)
{
  free(nv);
}

static void
add(nvlist_t *nv, const char *s)
{
  size_t n = strlen(nv->text);
  snprintf(nv->text + n, sizeof nv->text - n, "%s%s", n ? " " : "", s);
}

void
fnvlist_add_boolean(nvlist_t *nv, const char *name)
{
  add(nv, name);
}

void
fnvlist_add_string(nvlist_t *nv, const char *name, const char *v)
{
  char buf[4096];
  snprintf(buf, sizeof buf, "%s=string:%.4000s", name, v);
  add(nv, buf);
}

void
fnvlist_add_uint64(nvlist_t *nv, const char *name, uint64_t v)
{
  char buf[256];
  snprintf(buf, sizeof buf, "%s=uint64:%llu", name, (unsigned long long)v);
  add(nv, buf);
}
