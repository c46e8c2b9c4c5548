/* run.c: run built commands; read `zfs get` output; encode the
 * metadata object as user properties. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/zfs/zfs.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/log.h"
#include "util/strbuf.h"

#include "util/banned.h" /* last: after every declaration */

static bool
busy(const struct zl_exec_result *r)
{
  return strstr(r->err, "dataset is busy") || strstr(r->err, "resource busy") ||
         strstr(r->err, "Device or resource busy");
}

int
zrun(struct zargv *a, const char *what, struct zl_exec_result *res)
{
  struct zl_exec_result local;
  struct zl_exec_result *r = res ? res : &local;
  bool retryable =
      a->n > 1 && (strcmp(a->v[1], "destroy") == 0 || strcmp(a->v[1], "rename") == 0 ||
                   strcmp(a->v[1], "umount") == 0);

  /* zfs-fuse and udev keep datasets busy for a moment after use (zfs.md
   * §4, §7): retry "busy" for up to ~3 s, for destructive verbs only. */
  for (int attempt = 0;; attempt++) {
    if (zl_exec(a->v, NULL, r) == -1)
      return -1;
    if (r->status == 0) {
      if (!res)
        zl_exec_result_free(r);
      return 0;
    }
    if (!retryable || !busy(r) || attempt >= 12)
      break;
    zl_exec_result_free(r);
    struct timespec ts = {0, (long)(25 + attempt * 25) * 1000000L};
    nanosleep(&ts, NULL);
  }
  /* OpenZFS says of a snapshot that is gone "could not find any snapshots
   * to destroy", of a bookmark made before "bookmark exists" */
  int e = strstr(r->err, "does not exist")                            ? ENOENT
          : strstr(r->err, "could not find any snapshots to destroy") ? ENOENT
          : strstr(r->err, "bookmark exists")                         ? EEXIST
          : busy(r)                                                   ? EBUSY
          : strstr(r->err, "out of space")                            ? ENOSPC
          /* a reservation larger than the pool (zfs set refreservation) */
          : strstr(r->err, "greater than available space") ? ENOSPC
          : strstr(r->err, "already exists")               ? EEXIST
                                                           : EIO;
  zl_error(e, "%s: %s", what, zl_exec_reason(r));
  if (!res)
    zl_exec_result_free(r);
  return -1;
}

int
zrun_free(struct zargv *a, const char *what)
{
  int rc = zrun(a, what, NULL);
  za_free(a);
  return rc;
}

json_t *
zb_parse_get(const char *out)
{
  json_t *objs = json_object();
  const char *line = out;

  while (objs && line && *line) {
    const char *nl = strchr(line, '\n');
    size_t len = nl ? (size_t)(nl - line) : strlen(line);
    /* name \t property \t value \t source; the value may be empty but never
     * holds a tab (our metadata is JSON with escapes) */
    const char *t1 = memchr(line, '\t', len);
    const char *t2 = t1 ? memchr(t1 + 1, '\t', len - (size_t)(t1 + 1 - line)) : NULL;
    const char *t3 = NULL;
    for (const char *p = line + len; t2 && p > t2; p--) {
      if (p[-1] == '\t') {
        t3 = p - 1;
        break;
      }
    }
    if (t1 && t2 && t3 && t3 > t2) {
      CLEANUP_FREE char *name = strndup(line, (size_t)(t1 - line));
      CLEANUP_FREE char *prop = strndup(t1 + 1, (size_t)(t2 - t1 - 1));
      json_t *o = json_object_get(objs, name);
      if (!o) {
        o = json_object();
        json_object_set_new(objs, name, o);
      }
      json_object_set_new(o, prop,
                          json_pack("[s#, s#]", t2 + 1, (int)(t3 - t2 - 1), t3 + 1,
                                    (int)(line + len - t3 - 1)));
    }
    line = nl ? nl + 1 : NULL;
  }
  return objs;
}

const char *
zb_obj_value(const json_t *obj, const char *prop)
{
  const char *v = json_string_value(json_array_get(json_object_get(obj, prop), 0));
  return v && strcmp(v, "-") != 0 ? v : NULL;
}

const char *
zb_obj_source(const json_t *obj, const char *prop)
{
  return json_string_value(json_array_get(json_object_get(obj, prop), 1));
}

/* --- metadata as user properties -------------------------------------------
 *
 * zfs-live:meta      = "v2:<bank>:<chunks>:<fnv64 hex>:" + chunk 0 of the
 *                      JSON text (bank "a" or "b")
 * zfs-live:meta.N    = chunk N of bank a (N = 1 .. chunks-1)
 * zfs-live:meta.bN   = chunk N of bank b
 * User property values are limited to 8 KiB, so big objects (long XAPI
 * keys, descriptions) are split.  An update must be atomic whatever its
 * size, and one `zfs set` of one property is: so the chunks of a new
 * object go to the bank the header does not name, and the header, which
 * names the bank and carries chunk 0, the count and the checksum, is set
 * last, alone.  A crash before it leaves the old header naming the old,
 * untouched bank.  Objects of one chunk are the header alone.
 * "v1:<chunks>:<sum>:" (earlier versions: bank a, written header last but
 * in place) is still read. */

static uint64_t
fnv64(const char *s, size_t n)
{
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ULL;
  }
  return h;
}

static const char *const bank_a[ZB_META_CHUNKS] = {
    ZB_META_PROP,      ZB_META_PROP ".1", ZB_META_PROP ".2", ZB_META_PROP ".3",
    ZB_META_PROP ".4", ZB_META_PROP ".5", ZB_META_PROP ".6", ZB_META_PROP ".7",
};
static const char *const bank_b[ZB_META_CHUNKS] = {
    ZB_META_PROP,       ZB_META_PROP ".b1", ZB_META_PROP ".b2", ZB_META_PROP ".b3",
    ZB_META_PROP ".b4", ZB_META_PROP ".b5", ZB_META_PROP ".b6", ZB_META_PROP ".b7",
};

static const char *const *
bank_names(char bank)
{
  return bank == 'b' ? bank_b : bank_a;
}

const char *
zb_meta_prop_list(void)
{
  return ZB_META_PROP "," ZB_META_PROP ".1," ZB_META_PROP ".2," ZB_META_PROP
                      ".3," ZB_META_PROP ".4," ZB_META_PROP ".5," ZB_META_PROP
                      ".6," ZB_META_PROP ".7," ZB_META_PROP ".b1," ZB_META_PROP
                      ".b2," ZB_META_PROP ".b3," ZB_META_PROP ".b4," ZB_META_PROP
                      ".b5," ZB_META_PROP ".b6," ZB_META_PROP ".b7";
}

int
zb_meta_encode(const json_t *meta, char bank, struct zprop *props, int *nprops,
               char **bufp)
{
  CLEANUP_JSON json_t *copy = json_deep_copy(meta);
  CLEANUP_FREE char *text = NULL;
  const char *const *names = bank_names(bank);
  size_t len, nchunks;
  char head[64];

  if (!copy) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  json_object_del(copy, "_storage"); /* reported, never stored */
  text = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
  if (!text) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  len = strlen(text);
  nchunks = len / ZB_META_CHUNK + 1;
  if (nchunks > ZB_META_CHUNKS) {
    zl_error_kind(ZL_ERR_INVALID, EFBIG,
                  "volume metadata is %zu bytes; ZFS user properties hold at most %d",
                  len, ZB_META_CHUNKS * ZB_META_CHUNK - 64);
    return -1;
  }
  int hn = snprintf(head, sizeof head, "v2:%c:%zu:%016llx:", bank == 'b' ? 'b' : 'a',
                    nchunks, (unsigned long long)fnv64(text, len));
  /* one buffer: every chunk NUL-terminated, chunk 0 with its header */
  char *buf = malloc(len + (size_t)hn + nchunks + 1);
  if (!buf) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  char *p = buf;
  *nprops = 0;
  for (size_t i = 0; i < nchunks; i++) {
    size_t off = i * ZB_META_CHUNK;
    size_t n = len - off < ZB_META_CHUNK ? len - off : ZB_META_CHUNK;
    props[*nprops].name = names[i];
    props[*nprops].value = p;
    (*nprops)++;
    if (i == 0) {
      memcpy(p, head, (size_t)hn);
      p += hn;
    }
    memcpy(p, text + off, n);
    p += n;
    *p++ = '\0';
  }
  *bufp = buf;
  return 0;
}

/* Parse the header: 0 with bank, count, checksum and where chunk 0 starts;
 * -1 if it is not one of ours. */
static int
parse_header(const char *v0, char *bank, unsigned *nchunks, unsigned long long *sum,
             int *used)
{
  *used = 0;
  *bank = 'a';
  if (strncmp(v0, "v1:", 3) == 0)
    return sscanf(v0, "v1:%u:%16llx:%n", nchunks, sum, used) == 2 && *used ? 0 : -1;
  if (sscanf(v0, "v2:%c:%u:%16llx:%n", bank, nchunks, sum, used) == 3 && *used &&
      (*bank == 'a' || *bank == 'b'))
    return 0;
  return -1;
}

char
zb_meta_bank(const json_t *obj)
{
  const char *v0 = zb_obj_value(obj, ZB_META_PROP);
  unsigned n;
  unsigned long long sum;
  int used;
  char bank;

  if (!v0 || parse_header(v0, &bank, &n, &sum, &used) == -1)
    return 'a';
  return bank;
}

json_t *
zb_meta_decode(const json_t *obj, const char *name)
{
  const char *v0 = zb_obj_value(obj, ZB_META_PROP);
  unsigned nchunks;
  unsigned long long sum;
  int used = 0;
  char bank;
  CLEANUP_FREE char *text = NULL;
  json_error_t jerr;

  if (!v0) {
    zl_error(ENOENT, "%s: no metadata", name);
    return NULL; /* not a volume of ours */
  }
  if (parse_header(v0, &bank, &nchunks, &sum, &used) == -1 || nchunks < 1 ||
      nchunks > ZB_META_CHUNKS) {
    zl_error(EINVAL, "%s: metadata property is not in format v1 or v2", name);
    return NULL;
  }
  const char *const *names = bank_names(bank);
  struct zl_sb b = ZL_SB_INIT;
  zl_sb_add(&b, v0 + used);
  for (unsigned i = 1; i < nchunks; i++) {
    const char *vi = zb_obj_value(obj, names[i]);
    if (!vi) {
      zl_sb_free(&b);
      zl_error(EINVAL, "%s: metadata chunk %u of %u (%s) is missing", name, i, nchunks,
               names[i]);
      return NULL;
    }
    zl_sb_add(&b, vi);
  }
  if (!(text = zl_sb_take(&b)))
    return NULL;
  if (fnv64(text, strlen(text)) != sum) {
    zl_error(EINVAL, "%s: metadata chunks do not match their checksum", name);
    return NULL;
  }
  json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
  if (!json_is_object(j)) {
    json_decref(j);
    zl_error(EINVAL, "%s: metadata is not a JSON object: %s", name, jerr.text);
    return NULL;
  }
  return j;
}

static int
set_one(const struct zb_caps *c, const char *name, const struct zprop *p)
{
  struct zargv a;
  zcmd_set(&a, c, name, p->name, p->value);
  int rc = zrun(&a, "store metadata", NULL);
  za_free(&a);
  return rc;
}

int
zb_meta_store(const struct zb_caps *c, const char *name, const json_t *meta)
{
  struct zprop props[ZB_META_CHUNKS];
  int n;
  CLEANUP_FREE char *buf = NULL;
  char bank = 'a';

  if (zb_meta_encode(meta, bank, props, &n, &buf) == -1)
    return -1;
  if (n > 1) {
    /* the chunks go to the bank the current header does not name */
    CLEANUP_JSON json_t *objs = NULL;
    const char *targets[] = {name, NULL};
    if (zget(c, false, ZB_META_PROP, targets, &objs, "read the metadata header") == -1)
      return -1;
    bank = zb_meta_bank(json_object_get(objs, name)) == 'a' ? 'b' : 'a';
    free(TAKE_PTR(buf));
    if (zb_meta_encode(meta, bank, props, &n, &buf) == -1)
      return -1;
    for (int i = 1; i < n; i++) {
      if (set_one(c, name, &props[i]) == -1)
        return -1;
    }
    zl_fault("set-meta", "chunks");
  }
  return set_one(c, name, &props[0]); /* the commit: one property */
}

int
zget(const struct zb_caps *c, bool recursive, const char *props,
     const char *const *targets, json_t **objs, const char *what)
{
  struct zargv a;
  struct zl_exec_result r;

  *objs = NULL;
  zcmd_get(&a, c, recursive, props, targets);
  int rc = zl_exec(a.v, NULL, &r);
  za_free(&a);
  if (rc == -1)
    return -1;
  *objs = zb_parse_get(r.out);
  if (r.status != 0) {
    zl_error(strstr(r.err, "does not exist") ? ENOENT : EIO, "%s: %s", what,
             zl_exec_reason(&r));
    rc = -1;
  }
  zl_exec_result_free(&r);
  if (!*objs) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  return rc;
}
