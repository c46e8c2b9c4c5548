/* test-core.c: the core through its API, on a file SR in a temporary
 * directory; and the hide-and-collect destroy rules with a stand-in backend.
 *
 * STAND-IN: `pinning` is the file backend with a vol_dependents() that
 * counts the volumes made from a volume (its snapshots and clones), the way
 * ZFS clones pin their origin snapshot and snapshots pin their dataset.
 * File SRs have no such dependencies, so this is how the core rules are
 * exercised here; the ZFS suite exercises them on real zfs-fuse datasets.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/model/model.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/uuid.h"

static char base[] = "/var/tmp/zl-core-XXXXXX";
static char srpath[128];

struct dep_ctx {
  const char *key;
  int n;
};

static int
dep_cb(void *opaque, const char *key, json_t *meta, const struct zl_vol_info *info)
{
  struct dep_ctx *c = opaque;
  const char *of = zl_meta_str(meta, "snapshot_of");
  const char *cl = zl_meta_str(meta, "clone_of");
  (void)key, (void)info;
  if ((of && !strcmp(of, c->key)) || (cl && !strcmp(cl, c->key)))
    c->n++;
  return 0;
}

static int
pinning_dependents(struct zl_store *sr, const char *key)
{
  struct dep_ctx c = {key, 0};
  if (zl_backend_file.vol_list(sr, dep_cb, &c) == -1)
    return -1;
  return c.n;
}

static struct zl_backend pinning;

static struct zl_sr *
open_sr(void)
{
  struct zl_sr *sr = zl_sr_open("file-live", srpath);
  assert_non_null(sr);
  return sr;
}

static int
setup(void **state)
{
  char uuid[ZL_UUID_LEN + 1];
  json_t *out = NULL;
  (void)state;
  if (!mkdtemp(base))
    return -1;
  snprintf(srpath, sizeof srpath, "%s/sr", base);
  json_t *cfg = json_pack("{s:s}", "path", srpath);
  zl_uuid_generate(uuid);
  int r = zl_sr_create("file-live", uuid, cfg, "unit", "", &out);
  json_decref(cfg);
  json_decref(out);
  pinning = zl_backend_file;
  pinning.vol_dependents = pinning_dependents;
  return r;
}

static int
teardown(void **state)
{
  (void)state;
  struct zl_sr *sr = open_sr();
  struct zl_volume *v;
  size_t n;
  assert_int_equal(zl_sr_ls(sr, &v, &n), 0);
  for (size_t i = 0; i < n; i++)
    zl_vol_destroy(sr, v[i].key);
  zl_volume_list_free(v, n);
  int r = zl_sr_destroy(sr);
  zl_sr_close(sr);
  rmdir(base);
  return r;
}

static char *
make(struct zl_sr *sr, const char *name)
{
  struct zl_create_args a = {
      .name = name, .description = "", .size = 1 << 20, .provisioning = ZL_PROV_DEFAULT};
  struct zl_volume v;
  assert_int_equal(zl_vol_create(sr, &a, &v), 0);
  char *k = strdup(v.key);
  zl_volume_free(&v);
  return k;
}

static size_t
count_visible(struct zl_sr *sr)
{
  struct zl_volume *v;
  size_t n;
  assert_int_equal(zl_sr_ls(sr, &v, &n), 0);
  zl_volume_list_free(v, n);
  return n;
}

static bool
has_files(const char *key)
{
  char p[256];
  snprintf(p, sizeof p, "%s/%s.img", srpath, key);
  return access(p, F_OK) == 0;
}

static void
test_hide_and_collect(void **state)
{
  struct zl_sr *sr = open_sr();
  struct zl_volume s, c, tmp;
  (void)state;

  sr->st.be = &pinning; /* the stand-in: clones pin snapshots, snapshots volumes */
  char *v = make(sr, "base");
  assert_int_equal(zl_vol_snapshot(sr, v, NULL, &s), 0);
  assert_int_equal(zl_vol_clone(sr, s.key, NULL, &c), 0);
  assert_int_equal(count_visible(sr), 3);

  /* the snapshot has a clone: hidden, not removed, not listed */
  assert_int_equal(zl_vol_destroy(sr, s.key), 0);
  assert_int_equal(count_visible(sr), 2);
  assert_true(has_files(s.key));
  assert_int_equal(zl_vol_stat(sr, s.key, &tmp), -1);
  assert_int_equal(zl_error_get_kind(), ZL_ERR_NO_VOLUME);
  assert_int_equal(zl_vol_destroy(sr, s.key), 0);            /* again: fine */
  assert_int_equal(zl_vol_clone(sr, s.key, NULL, &tmp), -1); /* not usable */

  /* the volume has a (hidden) snapshot: hidden too; no volume invented */
  assert_int_equal(zl_vol_destroy(sr, v), 0);
  assert_int_equal(count_visible(sr), 1);
  assert_true(has_files(v));

  /* the last dependent goes: the whole hidden chain is collected */
  assert_int_equal(zl_vol_destroy(sr, c.key), 0);
  assert_int_equal(count_visible(sr), 0);
  assert_false(has_files(c.key));
  assert_false(has_files(s.key));
  assert_false(has_files(v));

  zl_volume_free(&s);
  zl_volume_free(&c);
  free(v);
  zl_sr_close(sr);
}

static void
test_sr_destroy_collects_hidden_but_refuses_visible(void **state)
{
  struct zl_sr *sr = open_sr();
  struct zl_volume s;
  (void)state;

  sr->st.be = &pinning;
  char *v = make(sr, "keep");
  assert_int_equal(zl_vol_snapshot(sr, v, NULL, &s), 0);
  assert_int_equal(zl_sr_destroy(sr), -1);
  assert_int_equal(zl_error_get_kind(), ZL_ERR_BUSY);
  assert_int_equal(zl_vol_destroy(sr, v), 0); /* hidden: s depends on it */
  assert_int_equal(count_visible(sr), 1);
  assert_int_equal(zl_vol_destroy(sr, s.key), 0); /* collects v too */
  assert_int_equal(count_visible(sr), 0);
  assert_false(has_files(v));
  zl_volume_free(&s);
  free(v);
  zl_sr_close(sr);
}

static void
test_dead_record_is_recovered_at_open(void **state)
{
  char jpath[256], img[256];
  (void)state;

  /* what a create killed after making its data leaves behind */
  snprintf(img, sizeof img, "%s/orphan-key.img", srpath);
  int fd = open(img, O_CREAT | O_WRONLY, 0600);
  assert_true(fd >= 0);
  close(fd);
  snprintf(jpath, sizeof jpath, "%s/.zfs-live/journal", srpath);
  mkdir(jpath, 0700);
  snprintf(jpath, sizeof jpath,
           "%s/.zfs-live/journal/0a0a0a0a-0000-4000-8000-000000000000", srpath);
  FILE *f = fopen(jpath, "w");
  assert_non_null(f);
  fputs("{\"op\":\"create\",\"key\":\"orphan-key\"}", f);
  fclose(f);

  struct zl_sr *sr = open_sr(); /* the next call on the SR */
  assert_int_equal(access(img, F_OK), -1);
  assert_int_equal(access(jpath, F_OK), -1);
  zl_sr_close(sr);
}

static void
test_unknown_record_is_kept_aside(void **state)
{
  char jpath[256], bad[256];
  (void)state;

  snprintf(jpath, sizeof jpath,
           "%s/.zfs-live/journal/0b0b0b0b-0000-4000-8000-000000000000", srpath);
  snprintf(bad, sizeof bad,
           "%s/.zfs-live/journal/bad.0b0b0b0b-0000-4000-8000-000000000000", srpath);
  FILE *f = fopen(jpath, "w");
  assert_non_null(f);
  fputs("{\"op\":\"teleport\",\"key\":\"x\"}", f);
  fclose(f);
  struct zl_sr *sr = open_sr();
  assert_int_equal(access(jpath, F_OK), -1);
  assert_int_equal(access(bad, F_OK), 0); /* reported, never acted on */
  unlink(bad);
  zl_sr_close(sr);
}

static void
test_create_with_given_key_refuses_duplicates(void **state)
{
  struct zl_sr *sr = open_sr();
  struct zl_create_args a = {.key = "inst1.ext.disk0",
                             .name = "g",
                             .description = "",
                             .size = 1,
                             .provisioning = ZL_PROV_THIN};
  struct zl_volume v;
  (void)state;
  assert_int_equal(zl_vol_create(sr, &a, &v), 0);
  assert_string_equal(v.key, "inst1.ext.disk0");
  assert_int_equal(v.virtual_size, 1 << 20);
  zl_volume_free(&v);
  assert_int_equal(zl_vol_create(sr, &a, &v), -1);
  assert_int_equal(zl_error_get_kind(), ZL_ERR_EXISTS);
  assert_int_equal(zl_vol_snapshot(sr, "inst1.ext.disk0", "inst1.ext.disk0.snap", &v), 0);
  assert_true(v.read_only);
  zl_volume_free(&v);
  assert_int_equal(zl_vol_destroy(sr, "inst1.ext.disk0.snap"), 0);
  assert_int_equal(zl_vol_destroy(sr, "inst1.ext.disk0"), 0);
  zl_sr_close(sr);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hide_and_collect),
      cmocka_unit_test(test_sr_destroy_collects_hidden_but_refuses_visible),
      cmocka_unit_test(test_dead_record_is_recovered_at_open),
      cmocka_unit_test(test_unknown_record_is_kept_aside),
      cmocka_unit_test(test_create_with_given_key_refuses_duplicates),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
