/* volume.c: the Volume.* methods.  Translate, call the core, render. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "smapi/smapi.h"
#include "util/error.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

/* The volume v as a v5 record if r is 0, freeing v; NULL otherwise. */
static json_t *
render(struct smapi_call *c, struct zl_volume *v, int r)
{
  if (r == -1)
    return NULL;
  struct zl_platform p;
  zl_platform_detect(&p);
  json_t *j = smapi_volume_record(c, v, &p);
  zl_volume_free(v);
  return j;
}

/* A unit result. */
static json_t *
unit(int r)
{
  return r == 0 ? json_null() : NULL;
}

/* The handlers run with c->sr open and, for methods on a volume, c->key
 * read: the dispatch table's SR and KEY flags (commands.c, rpc.c). */

json_t *
smapi_vol_create(struct smapi_call *c)
{
  struct zl_create_args a = {.provisioning = ZL_PROV_DEFAULT};
  struct zl_volume v;

  if (smapi_str(c, "name", &a.name) == -1 ||
      smapi_str(c, "description", &a.description) == -1 ||
      smapi_int(c, "size", &a.size) == -1 || smapi_bool(c, "sharable", &a.sharable) == -1)
    return NULL;
  return render(c, &v, zl_vol_create(c->sr, &a, &v));
}

/* CA-412420: a daemon without the fix does not set vdi-type on a
 * snapshot, and migration preparation then fails ("Unknown tag/contents").
 * Give the snapshot its parent's, as the fixed daemon does.  A failure
 * here leaves the snapshot as an unfixed daemon would: logged, not fatal
 * (the snapshot is made). */
static void
shim_vdi_type(struct smapi_call *c, struct zl_volume *snap)
{
  struct zl_volume parent;

  if (json_object_get(snap->keys, "vdi-type"))
    return; /* never the case today: keys are not copied */
  if (zl_vol_stat(c->sr, c->key, &parent) == -1) {
    zl_warn("snapshot %s: vdi-type not copied: %s", snap->key, zl_error_msg());
    return;
  }
  const char *vt = json_string_value(json_object_get(parent.keys, "vdi-type"));
  if (vt && zl_vol_set(c->sr, snap->key, "vdi-type", vt) == -1)
    zl_warn("snapshot %s: vdi-type not copied: %s", snap->key, zl_error_msg());
  else if (vt)
    json_object_set_new(snap->keys, "vdi-type", json_string(vt));
  zl_volume_free(&parent);
}

json_t *
smapi_vol_snapshot(struct smapi_call *c)
{
  struct zl_volume v;
  struct zl_platform p;

  if (zl_vol_snapshot(c->sr, c->key, NULL, &v) == -1)
    return NULL;
  zl_platform_detect(&p);
  if (zl_platform_shim_vdi_type(&p))
    shim_vdi_type(c, &v);
  return render(c, &v, 0);
}

json_t *
smapi_vol_clone(struct smapi_call *c)
{
  struct zl_volume v;
  return render(c, &v, zl_vol_clone(c->sr, c->key, NULL, &v));
}

json_t *
smapi_vol_stat(struct smapi_call *c)
{
  struct zl_volume v;
  return render(c, &v, zl_vol_stat(c->sr, c->key, &v));
}

json_t *
smapi_vol_destroy(struct smapi_call *c)
{
  return unit(zl_vol_destroy(c->sr, c->key));
}

json_t *
smapi_vol_set_name(struct smapi_call *c)
{
  const char *name;
  if (smapi_str(c, "new_name", &name) == -1)
    return NULL;
  return unit(zl_vol_set_name(c->sr, c->key, name));
}

json_t *
smapi_vol_set_description(struct smapi_call *c)
{
  const char *d;
  if (smapi_str(c, "new_description", &d) == -1)
    return NULL;
  return unit(zl_vol_set_description(c->sr, c->key, d));
}

json_t *
smapi_vol_set(struct smapi_call *c)
{
  const char *k, *v;
  if (smapi_str(c, "k", &k) == -1 || smapi_str(c, "v", &v) == -1)
    return NULL;
  return unit(zl_vol_set(c->sr, c->key, k, v));
}

json_t *
smapi_vol_unset(struct smapi_call *c)
{
  const char *k;
  if (smapi_str(c, "k", &k) == -1)
    return NULL;
  return unit(zl_vol_unset(c->sr, c->key, k));
}

json_t *
smapi_vol_resize(struct smapi_call *c)
{
  int64_t size;
  if (smapi_int(c, "new_size", &size) == -1)
    return NULL;
  return unit(zl_vol_resize(c->sr, c->key, size));
}

json_t *
smapi_vol_revert(struct smapi_call *c)
{
  const char *snapshot;
  if (smapi_str(c, "snapshot", &snapshot) == -1)
    return NULL;
  return unit(zl_vol_revert(c->sr, snapshot, c->key));
}

json_t *
smapi_vol_enable_cbt(struct smapi_call *c)
{
  return unit(zl_vol_enable_cbt(c->sr, c->key));
}

json_t *
smapi_vol_disable_cbt(struct smapi_call *c)
{
  return unit(zl_vol_disable_cbt(c->sr, c->key));
}

json_t *
smapi_vol_data_destroy(struct smapi_call *c)
{
  return unit(zl_vol_data_destroy(c->sr, c->key));
}

/* Blocks [first, first + n) of m as the SMAPIv3 base64 bitmap, padded to
 * whole 32-bit words for Xen Orchestra (see zl_bitmap_base64). */
static json_t *
bitmap_b64(const struct zl_bitmap *m, uint64_t first, uint64_t n)
{
  char *b64 = zl_bitmap_base64(m, first, n);
  /* base64 is ASCII: no UTF-8 check (one copy, into jansson's string) */
  json_t *j = b64 ? json_string_nocheck(b64) : NULL;
  if (b64 && !j)
    zl_error(ENOMEM, "out of memory");
  free(b64);
  return j;
}

json_t *
smapi_vol_list_changed_blocks(struct smapi_call *c)
{
  struct zl_bitmap m;
  const char *key2;
  int64_t offset, length;
  json_t *res = NULL;

  if (smapi_str(c, "key2", &key2) == -1 || smapi_int(c, "offset", &offset) == -1 ||
      smapi_int(c, "length", &length) == -1 ||
      zl_vol_changed_blocks(c->sr, c->key, key2, &m) == -1)
    return NULL;
  /* offset and length select whole blocks of the result; a negative
   * length means to the end */
  int64_t size = (int64_t)m.size;
  if (offset < 0 || offset % ZL_CBT_GRANULARITY || offset > size ||
      (length >= 0 && length % ZL_CBT_GRANULARITY && length < size - offset)) {
    zl_error(EINVAL,
             "offset %lld and length %lld must be multiples of %d within the volume "
             "(%lld bytes)",
             (long long)offset, (long long)length, ZL_CBT_GRANULARITY, (long long)size);
    goto out_map;
  }
  uint64_t first = (uint64_t)offset / ZL_CBT_GRANULARITY;
  uint64_t n = m.nblocks - first;
  if (length >= 0) {
    uint64_t want = ((uint64_t)length + ZL_CBT_GRANULARITY - 1) / ZL_CBT_GRANULARITY;
    if (want < n)
      n = want;
  }
  json_t *b = bitmap_b64(&m, first, n);
  if (b)
    res = json_pack("{s:i, s:o}", "granularity", ZL_CBT_GRANULARITY, "bitmap", b);
out_map:
  zl_bitmap_free(&m);
  return res;
}

json_t *
smapi_vol_compare(struct smapi_call *c)
{
  struct zl_bitmap m;
  const char *key2;
  json_t *ranges = NULL, *res = NULL;

  if (smapi_str(c, "key2", &key2) == -1 ||
      zl_vol_changed_blocks(c->sr, c->key, key2, &m) == -1)
    return NULL;
  ranges = json_array();
  uint64_t pos = 0, first, count;
  while (ranges && zl_bitmap_next_run(&m, &pos, &first, &count))
    json_array_append_new(ranges,
                          json_pack("[I, I]", (json_int_t)first, (json_int_t)count));
  if (ranges)
    res = json_pack("{s:i, s:O}", "blocksize", ZL_CBT_GRANULARITY, "ranges", ranges);
  json_decref(ranges);
  zl_bitmap_free(&m);
  return res;
}
