/* volume.c: the Volume.* methods.  Translate, call the core, render. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "smapi/smapi.h"
#include "util/error.h"

/* Open the SR and read "key"; on success the caller closes *srp. */
static int
open_key(struct smapi_call *c, const char *name, struct zl_sr **srp, const char **key)
{
  if (smapi_str(c, name, key) == -1)
    return -1;
  *srp = smapi_open_sr(c);
  return *srp ? 0 : -1;
}

static json_t *
render(struct zl_sr *sr, struct zl_volume *v, int r)
{
  json_t *j = NULL;

  if (r == 0) {
    j = smapi_volume(v, zl_sr_type(sr), zl_sr_key(sr));
    zl_volume_free(v);
    if (!j)
      zl_error(ENOMEM, "out of memory");
  }
  zl_sr_close(sr);
  return j;
}

json_t *
smapi_vol_create(struct smapi_call *c)
{
  struct zl_create_args a = {.provisioning = ZL_PROV_DEFAULT};
  struct zl_volume v;
  struct zl_sr *sr;

  if (smapi_str(c, "name", &a.name) == -1 ||
      smapi_str(c, "description", &a.description) == -1 ||
      smapi_int(c, "size", &a.size) == -1 ||
      smapi_bool(c, "sharable", &a.sharable) == -1 || !(sr = smapi_open_sr(c)))
    return NULL;
  return render(sr, &v, zl_vol_create(sr, &a, &v));
}

static json_t *
copy_m(struct smapi_call *c,
       int (*fn)(struct zl_sr *, const char *, const char *, struct zl_volume *))
{
  struct zl_volume v;
  struct zl_sr *sr;
  const char *key;

  if (open_key(c, "key", &sr, &key) == -1)
    return NULL;
  return render(sr, &v, fn(sr, key, NULL, &v));
}

json_t *
smapi_vol_snapshot(struct smapi_call *c)
{
  return copy_m(c, zl_vol_snapshot);
}

json_t *
smapi_vol_clone(struct smapi_call *c)
{
  return copy_m(c, zl_vol_clone);
}

json_t *
smapi_vol_stat(struct smapi_call *c)
{
  struct zl_volume v;
  struct zl_sr *sr;
  const char *key;

  if (open_key(c, "key", &sr, &key) == -1)
    return NULL;
  return render(sr, &v, zl_vol_stat(sr, key, &v));
}

static json_t *
unit(struct zl_sr *sr, int r)
{
  zl_sr_close(sr);
  return r == 0 ? json_null() : NULL;
}

json_t *
smapi_vol_destroy(struct smapi_call *c)
{
  struct zl_sr *sr;
  const char *key;

  if (open_key(c, "key", &sr, &key) == -1)
    return NULL;
  return unit(sr, zl_vol_destroy(sr, key));
}

json_t *
smapi_vol_set_name(struct smapi_call *c)
{
  struct zl_sr *sr;
  const char *key, *name;

  if (smapi_str(c, "new_name", &name) == -1 || open_key(c, "key", &sr, &key) == -1)
    return NULL;
  return unit(sr, zl_vol_set_name(sr, key, name));
}

json_t *
smapi_vol_set_description(struct smapi_call *c)
{
  struct zl_sr *sr;
  const char *key, *d;

  if (smapi_str(c, "new_description", &d) == -1 || open_key(c, "key", &sr, &key) == -1)
    return NULL;
  return unit(sr, zl_vol_set_description(sr, key, d));
}

json_t *
smapi_vol_set(struct smapi_call *c)
{
  struct zl_sr *sr;
  const char *key, *k, *v;

  if (smapi_str(c, "k", &k) == -1 || smapi_str(c, "v", &v) == -1 ||
      open_key(c, "key", &sr, &key) == -1)
    return NULL;
  return unit(sr, zl_vol_set(sr, key, k, v));
}

json_t *
smapi_vol_unset(struct smapi_call *c)
{
  struct zl_sr *sr;
  const char *key, *k;

  if (smapi_str(c, "k", &k) == -1 || open_key(c, "key", &sr, &key) == -1)
    return NULL;
  return unit(sr, zl_vol_unset(sr, key, k));
}

json_t *
smapi_vol_resize(struct smapi_call *c)
{
  struct zl_sr *sr;
  const char *key;
  int64_t size;

  if (smapi_int(c, "new_size", &size) == -1 || open_key(c, "key", &sr, &key) == -1)
    return NULL;
  return unit(sr, zl_vol_resize(sr, key, size));
}

json_t *
smapi_vol_revert(struct smapi_call *c)
{
  struct zl_sr *sr;
  const char *key, *snapshot;

  if (smapi_str(c, "snapshot", &snapshot) == -1 || open_key(c, "key", &sr, &key) == -1)
    return NULL;
  return unit(sr, zl_vol_revert(sr, snapshot, key));
}

json_t *
smapi_vol_enable_cbt(struct smapi_call *c)
{
  struct zl_sr *sr;
  const char *key;

  if (open_key(c, "key", &sr, &key) == -1)
    return NULL;
  return unit(sr, zl_vol_enable_cbt(sr, key));
}

json_t *
smapi_vol_disable_cbt(struct smapi_call *c)
{
  struct zl_sr *sr;
  const char *key;

  if (open_key(c, "key", &sr, &key) == -1)
    return NULL;
  return unit(sr, zl_vol_disable_cbt(sr, key));
}

json_t *
smapi_vol_data_destroy(struct smapi_call *c)
{
  struct zl_sr *sr;
  const char *key;

  if (open_key(c, "key", &sr, &key) == -1)
    return NULL;
  return unit(sr, zl_vol_data_destroy(sr, key));
}

/* Blocks [first, first + n) of m as the SMAPIv3 base64 bitmap, padded to
 * whole 32-bit words for Xen Orchestra (see zl_bitmap_base64). */
static json_t *
bitmap_b64(const struct zl_bitmap *m, uint64_t first, uint64_t n)
{
  char *b64 = zl_bitmap_base64(m, first, n);
  json_t *j = b64 ? json_string(b64) : NULL;
  if (b64 && !j)
    zl_error(ENOMEM, "out of memory");
  free(b64);
  return j;
}

json_t *
smapi_vol_list_changed_blocks(struct smapi_call *c)
{
  struct zl_bitmap m;
  struct zl_sr *sr;
  const char *key, *key2;
  int64_t offset, length;
  json_t *res = NULL;

  if (smapi_str(c, "key2", &key2) == -1 || smapi_int(c, "offset", &offset) == -1 ||
      smapi_int(c, "length", &length) == -1 || open_key(c, "key", &sr, &key) == -1)
    return NULL;
  if (zl_vol_changed_blocks(sr, key, key2, &m) == -1)
    goto out;
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
out:
  zl_sr_close(sr);
  return res;
}

json_t *
smapi_vol_compare(struct smapi_call *c)
{
  struct zl_bitmap m;
  struct zl_sr *sr;
  const char *key, *key2;
  json_t *ranges = NULL, *res = NULL;

  if (smapi_str(c, "key2", &key2) == -1 || open_key(c, "key", &sr, &key) == -1)
    return NULL;
  if (zl_vol_changed_blocks(sr, key, key2, &m) == -1)
    goto out;
  ranges = json_array();
  uint64_t pos = 0, first, count;
  while (ranges && zl_bitmap_next_run(&m, &pos, &first, &count))
    json_array_append_new(ranges,
                          json_pack("[I, I]", (json_int_t)first, (json_int_t)count));
  if (ranges)
    res = json_pack("{s:i, s:O}", "blocksize", ZL_CBT_GRANULARITY, "ranges", ranges);
  json_decref(ranges);
  zl_bitmap_free(&m);
out:
  zl_sr_close(sr);
  return res;
}
