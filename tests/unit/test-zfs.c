/* test-zfs.c: the ZFS backend's decisions and command lines, per version
 * row of the matrix in reference/zfs.md (OpenZFS 0.8, 2.0, 2.1, 2.2, 2.3,
 * 2.4 and zfs-fuse 0.7 / pool v23).
 *
 * STAND-IN: the probe outputs below are what each version prints (from
 * the reference's reading of the sources at each tag; the zfs-fuse ones as
 * probed on this machine).  OpenZFS cannot run here (no kernel module), so
 * its rows are checked as decisions and exact command lines; the zvol
 * integration suite (tests/integration/test_zvol.py) runs them for real on
 * a host with /dev/zfs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "backend/zfs/zfs.h"
#include "util/error.h"

#define FEATURES_08                                                                      \
  "size\t1073741824\nfeature@async_destroy\tenabled\nfeature@lz4_compress\tactive\n"     \
  "feature@bookmarks\tenabled\nfeature@large_blocks\tenabled\n"
#define FEATURES_20 FEATURES_08 "feature@zstd_compress\tenabled\n"
#define FEATURES_22 FEATURES_20 "feature@block_cloning\tenabled\n"

struct row {
  const char *name;
  struct zb_probe probe;
  /* expected decisions */
  enum zb_flavour flavour;
  bool zvols, list_p, get_t, rename_u, create_u, json, zstd, lz4, sync_prop, dot_zfs;
  int64_t volblocksize;
};

static const struct row rows[] = {
    {"OpenZFS 0.8",
     {0, "zfs-0.8.6-1\nzfs-kmod-0.8.6-1\n", NULL, NULL, FEATURES_08, true},
     ZB_OPENZFS,
     true,
     true,
     true,
     false,
     false,
     false,
     false,
     true,
     true,
     true,
     8192},
    {"OpenZFS 2.0",
     {0, "zfs-2.0.7-1\nzfs-kmod-2.0.7-1\n", NULL, NULL, FEATURES_20, true},
     ZB_OPENZFS,
     true,
     true,
     true,
     true,
     false,
     false,
     true,
     true,
     true,
     true,
     8192},
    {"OpenZFS 2.1",
     {0, "zfs-2.1.15-1\nzfs-kmod-2.1.15-1\n", NULL, NULL, FEATURES_20, true},
     ZB_OPENZFS,
     true,
     true,
     true,
     true,
     true,
     false,
     true,
     true,
     true,
     true,
     8192},
    {"OpenZFS 2.2",
     {0, "zfs-2.2.2-1\nzfs-kmod-2.2.2-1\n", NULL, NULL, FEATURES_22, true},
     ZB_OPENZFS,
     true,
     true,
     true,
     true,
     true,
     false,
     true,
     true,
     true,
     true,
     16384},
    {"OpenZFS 2.3",
     {0, "zfs-2.3.1-1\nzfs-kmod-2.3.1-1\n", NULL, NULL, FEATURES_22, true},
     ZB_OPENZFS,
     true,
     true,
     true,
     true,
     true,
     true,
     true,
     true,
     true,
     true,
     16384},
    {"OpenZFS 2.4",
     {0, "zfs-2.4.4-1\nzfs-kmod-2.4.4-1\n", NULL, NULL, FEATURES_22, true},
     ZB_OPENZFS,
     true,
     true,
     true,
     true,
     true,
     true,
     true,
     true,
     true,
     true,
     16384},
    /* module loaded but an old userland without `zfs version` */
    {"OpenZFS 0.8 via sysfs",
     {2, "unrecognized command", "0.8.3-1\n", NULL, FEATURES_08, true},
     ZB_OPENZFS,
     true,
     true,
     true,
     false,
     false,
     false,
     false,
     true,
     true,
     true,
     8192},
    /* OpenZFS userland in a container without /dev/zfs: no zvols */
    {"OpenZFS 2.2, no /dev/zfs",
     {0, "zfs-2.2.2-1\n", NULL, NULL, FEATURES_22, false},
     ZB_OPENZFS,
     false,
     true,
     true,
     true,
     true,
     false,
     true,
     true,
     true,
     true,
     16384},
    {"zfs-fuse 0.7 (pool v23)",
     {2, "unrecognized command 'version'\n", NULL,
      "This system is currently running ZFS pool version 23.\n", NULL, false},
     ZB_FUSE,
     false,
     false,
     false,
     false,
     false,
     false,
     false,
     false,
     false,
     false,
     8192},
};

static void
test_decisions_per_row(void **state)
{
  (void)state;
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    const struct row *r = &rows[i];
    struct zb_caps c;
    print_message("row: %s\n", r->name);
    assert_int_equal(zb_caps_decide(&r->probe, &c), 0);
    assert_int_equal(c.flavour, r->flavour);
    assert_int_equal(c.zvols, r->zvols);
    assert_int_equal(c.list_p, r->list_p);
    assert_int_equal(c.get_t, r->get_t);
    assert_int_equal(c.rename_u, r->rename_u);
    assert_int_equal(c.create_u, r->create_u);
    assert_int_equal(c.json, r->json);
    assert_int_equal(c.zstd, r->zstd);
    assert_int_equal(c.lz4, r->lz4);
    assert_int_equal(c.sync_prop, r->sync_prop);
    assert_int_equal(c.dot_zfs, r->dot_zfs);
    assert_int_equal(c.default_volblocksize, r->volblocksize);
    /* the cache round-trips every decision */
    struct zb_caps back;
    json_t *j = zb_caps_to_json(&c);
    assert_int_equal(zb_caps_from_json(j, &back), 0);
    json_decref(j);
    assert_memory_equal(&c, &back, sizeof c);
  }
}

static void
test_unknown_zfs_is_refused(void **state)
{
  struct zb_probe p = {127, "", NULL, "", NULL, false};
  struct zb_caps c;
  (void)state;
  assert_int_equal(zb_caps_decide(&p, &c), -1);
  assert_non_null(strstr(zl_error_msg(), "cannot tell which ZFS"));
}

static struct zb_caps
caps_of(const char *name)
{
  struct zb_caps c = {0};
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    if (strcmp(rows[i].name, name) == 0) {
      assert_int_equal(zb_caps_decide(&rows[i].probe, &c), 0);
      return c;
    }
  }
  fail();
  return c;
}

static void
test_tunables_per_row(void **state)
{
  (void)state;
  const struct zb_caps fuse_c = caps_of("zfs-fuse 0.7 (pool v23)"), *fuse = &fuse_c;
  const struct zb_caps z08_c = caps_of("OpenZFS 0.8"), *z08 = &z08_c;
  struct zb_caps z22 = caps_of("OpenZFS 2.2");

  assert_int_equal(zb_tunable_check(fuse, "compression", "lz4", true), -1);
  assert_non_null(strstr(zl_error_msg(), "supported: on, off, lzjb, gzip"));
  assert_null(strstr(strstr(zl_error_msg(), "supported:"), "lz4"));
  assert_int_equal(zb_tunable_check(fuse, "compression", "gzip-9", true), 0);
  assert_int_equal(zb_tunable_check(fuse, "compression", "gzip-10", true), -1);
  assert_string_equal(zb_default_compression(fuse), "on");
  assert_int_equal(zb_tunable_check(fuse, "sync", "always", false), -1);
  assert_non_null(strstr(zl_error_msg(), "zfs-fuse"));

  assert_int_equal(zb_tunable_check(z08, "compression", "lz4", false), 0);
  assert_int_equal(zb_tunable_check(z08, "compression", "zstd", false), -1);
  assert_string_equal(zb_default_compression(z08), "lz4");
  assert_int_equal(zb_tunable_check(z08, "sync", "always", false), 0);
  assert_int_equal(zb_tunable_check(z08, "sync", "sometimes", false), -1);

  assert_int_equal(zb_tunable_check(&z22, "compression", "zstd-19", false), 0);
  assert_int_equal(zb_tunable_check(&z22, "compression", "zstd-20", false), -1);
  assert_int_equal(zb_tunable_check(&z22, "compression", "zstd-fast-1000", false), 0);
  assert_int_equal(zb_tunable_check(&z22, "compression", "zstd-fast-11", false), -1);
  assert_int_equal(zb_tunable_check(&z22, "copies", "3", false), 0);
  assert_int_equal(zb_tunable_check(&z22, "copies", "0", false), -1);
  assert_int_equal(zb_tunable_check(&z22, "logbias", "throughput", false), 0);
  assert_int_equal(zb_tunable_check(&z22, "primarycache", "metadata", false), 0);
  assert_int_equal(zb_tunable_check(&z22, "secondarycache", "some", false), -1);
  /* block size: only at create, powers of two, >128K needs large_blocks */
  assert_int_equal(zb_tunable_check(&z22, "volblocksize", "16K", true), 0);
  assert_int_equal(zb_tunable_check(&z22, "volblocksize", "16K", false), -1);
  assert_non_null(strstr(zl_error_msg(), "fixed when a volume is created"));
  assert_int_equal(zb_tunable_check(&z22, "volblocksize", "24K", true), -1);
  z22.large_blocks = false;
  assert_int_equal(zb_tunable_check(&z22, "volblocksize", "1M", true), -1);
  z22.large_blocks = true;
  assert_int_equal(zb_tunable_check(&z22, "volblocksize", "1M", true), 0);
  assert_int_equal(zb_tunable_check(&z22, "dedup", "on", false), -1);
  assert_false(zb_is_tunable("mountpoint"));
}

static void
expect(struct zargv *a, const char *want)
{
  char *got = za_join(a);
  assert_string_equal(got, want);
  free(got);
  za_free(a);
}

static void
test_command_lines(void **state)
{
  (void)state;
  const struct zb_caps fuse_c = caps_of("zfs-fuse 0.7 (pool v23)"), *fuse = &fuse_c;
  const struct zb_caps z22_c = caps_of("OpenZFS 2.2"), *z22 = &z22_c;
  struct zargv a;
  struct zprop meta[] = {{"zfs-live:meta", "v1:1:0:{}"}};
  struct zprop comp[] = {{"zfs-live:sr", "U"}, {"compression", "lz4"}};
  const char *one[] = {"tank/sr/k", NULL};

  zcmd_create_sr(&a, z22, "tank/sr/U", "/run/sr-mount/U", comp, 2);
  expect(&a, "zfs create -o mountpoint=/run/sr-mount/U -o zfs-live:sr=U "
             "-o compression=lz4 tank/sr/U");
  zcmd_create_parent(&a, fuse, "tank/vms");
  expect(&a, "zfs create -p -o mountpoint=none tank/vms");

  /* zvol layout: thin is sparse, thick lets ZFS compute refreservation */
  zcmd_create_volume(&a, z22, LAYOUT_ZVOL, "tank/sr/k", 1 << 30, 16384, false, 1, meta,
                     1);
  expect(&a, "zfs create -s -b 16384 -V 1073741824 -o zfs-live:meta=v1:1:0:{} tank/sr/k");
  zcmd_create_volume(&a, z22, LAYOUT_ZVOL, "tank/sr/k", 1 << 30, 16384, true, 1, meta, 1);
  expect(&a, "zfs create -b 16384 -V 1073741824 -o zfs-live:meta=v1:1:0:{} tank/sr/k");
  /* dataset layout: recordsize as block size, refreservation explicit */
  zcmd_create_volume(&a, fuse, LAYOUT_DATASET, "tank/sr/k", 1 << 30, 8192, false, 1, meta,
                     1);
  expect(&a, "zfs create -o canmount=noauto -o zfs-live:size=1073741824 "
             "-o recordsize=8192 -o refreservation=none -o zfs-live:meta=v1:1:0:{} "
             "tank/sr/k");
  zcmd_create_volume(&a, fuse, LAYOUT_DATASET, "tank/sr/k", 1 << 30, 8192, true, 1, meta,
                     1);
  expect(&a, "zfs create -o canmount=noauto -o zfs-live:size=1073741824 "
             "-o recordsize=8192 -o refreservation=1109393408 "
             "-o zfs-live:meta=v1:1:0:{} tank/sr/k");

  zcmd_snapshot(&a, fuse, "tank/sr/k@s", meta, 1);
  expect(&a, "zfs snapshot -o zfs-live:meta=v1:1:0:{} tank/sr/k@s");
  zcmd_clone(&a, z22, "tank/sr/k@s", "tank/sr/c", meta, 1);
  expect(&a, "zfs clone -o zfs-live:meta=v1:1:0:{} tank/sr/k@s tank/sr/c");
  zcmd_destroy(&a, z22, "tank/sr/k@s");
  expect(&a, "zfs destroy tank/sr/k@s");

  /* zfs-fuse has no get -t; OpenZFS lists only what we can use */
  zcmd_get(&a, fuse, true, "type,used", one);
  expect(&a, "zfs get -Hpr -o name,property,value,source type,used tank/sr/k");
  zcmd_get(&a, z22, true, "type,used", one);
  expect(&a, "zfs get -Hpr -t filesystem,volume,snapshot -o name,property,value,source "
             "type,used tank/sr/k");
  zcmd_get(&a, z22, false, "type", one);
  expect(&a, "zfs get -Hp -o name,property,value,source type tank/sr/k");

  zcmd_set(&a, z22, "tank/sr/k", "compression", "zstd");
  expect(&a, "zfs set compression=zstd tank/sr/k");
  zcmd_inherit(&a, z22, "tank/sr/k", "compression");
  expect(&a, "zfs inherit compression tank/sr/k");
  zcmd_volsize(&a, z22, "tank/sr/k", 2LL << 30);
  expect(&a, "zfs set volsize=2147483648 tank/sr/k");
  zcmd_rollback(&a, z22, "tank/sr/k@s");
  expect(&a, "zfs rollback tank/sr/k@s");
  zcmd_rename(&a, z22, "tank/sr/k", "tank/sr/k.r1");
  expect(&a, "zfs rename tank/sr/k tank/sr/k.r1");
  zcmd_mount(&a, fuse, "tank/sr/k", false);
  expect(&a, "zfs umount tank/sr/k");
  zcmd_mount(&a, fuse, "tank/sr/k", true);
  expect(&a, "zfs mount tank/sr/k");
  zcmd_list_snapshots(&a, fuse, "tank/sr/k");
  expect(&a, "zfs list -H -t snapshot -o name -d 1 tank/sr/k");
  zcmd_list_snapshots(&a, z22, "tank/sr/k");
  expect(&a, "zfs list -H -p -t snapshot -o name -d 1 tank/sr/k");
  zcmd_pool_list(&a, "tank");
  expect(&a, "zpool list -H -o name tank");
  zcmd_pool_importable(&a);
  expect(&a, "zpool import");

  /* changed block tracking: the zvol's incremental stream, compressed
   * payloads and large and embedded blocks where the zfs has them */
  zcmd_send_incremental(&a, z22, "tank/sr/k@a", "tank/sr/k@b");
  expect(&a, "zfs send -c -L -e -i tank/sr/k@a tank/sr/k@b");
  zcmd_send_incremental(&a, fuse, "tank/sr/k@a", "tank/sr/k@_zl-cbt-U");
  expect(&a, "zfs send -i tank/sr/k@a tank/sr/k@_zl-cbt-U");

  /* vol copy to another pool: compressed, large and embedded blocks and a
   * resumable, unmounted receive where the tools have them */
  zcmd_send(&a, z22, "tank/sr/k@s", NULL);
  expect(&a, "zfs send -c -L -e tank/sr/k@s");
  zcmd_send(&a, z22, "tank/sr/k@s", "1-abc-def");
  expect(&a, "zfs send -t 1-abc-def");
  zcmd_send(&a, fuse, "tank/sr/k@s", NULL);
  expect(&a, "zfs send tank/sr/k@s");
  zcmd_receive(&a, z22, "pool2/sr/c");
  expect(&a, "zfs receive -u -s pool2/sr/c");
  zcmd_receive(&a, fuse, "pool2/sr/c");
  expect(&a, "zfs receive pool2/sr/c");
}

/* data_destroy per version row: where the pool has bookmarks the
 * snapshot is bookmarked, then destroyed, and later changes are sent from
 * the bookmark; on zfs-fuse (pool v23) nothing runs: the snapshot and its
 * data stay, and doctor says so. */
static void
test_data_destroy_per_row(void **state)
{
  (void)state;
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    const struct row *r = &rows[i];
    struct zb_caps c;
    struct zargv cmds[2], a;
    print_message("row: %s\n", r->name);
    assert_int_equal(zb_caps_decide(&r->probe, &c), 0);
    int n = zb_data_destroy_plan(&c, "tank/sr/v@s1", cmds);
    if (r->flavour == ZB_FUSE) {
      assert_false(c.bookmarks);
      assert_int_equal(n, 0);
      assert_non_null(strstr(zb_bookmarks_use(&c), "keeps the snapshot's data"));
      continue;
    }
    assert_true(c.bookmarks);
    assert_int_equal(n, 2);
    expect(&cmds[0], "zfs bookmark tank/sr/v@s1 tank/sr/v#zl-s1");
    expect(&cmds[1], "zfs destroy tank/sr/v@s1");
    assert_non_null(strstr(zb_bookmarks_use(&c), "frees a snapshot's space"));
    /* the changes since s1 come from its bookmark */
    zcmd_send_incremental(&a, &c, "tank/sr/v#zl-s1", "tank/sr/v@s2");
    expect(&a, "zfs send -c -L -e -i tank/sr/v#zl-s1 tank/sr/v@s2");
    /* the bookmark goes with the snapshot's CBT metadata */
    zcmd_destroy(&a, &c, "tank/sr/v#zl-s1");
    expect(&a, "zfs destroy tank/sr/v#zl-s1");
  }
  /* an OpenZFS pool without the feature (a legacy pool) keeps the data */
  struct zb_probe legacy = {0, "zfs-2.2.2-1\n", NULL, NULL, "size\t1073741824\n", true};
  struct zb_caps c;
  struct zargv cmds[2];
  assert_int_equal(zb_caps_decide(&legacy, &c), 0);
  assert_false(c.bookmarks);
  assert_int_equal(zb_data_destroy_plan(&c, "tank/sr/v@s1", cmds), 0);
  char bm[64];
  zb_bookmark_name("tank/sr/v@s1", bm, sizeof bm);
  assert_string_equal(bm, "tank/sr/v#zl-s1");
}

static void
test_thick_reservation(void **state)
{
  (void)state;
  /* libzfs zvol_volsize_to_reservation: 1 GiB, 8K blocks, copies=1:
   * 131072 blocks -> 128 + 1 indirect levels + 7 metadnode = 136 blocks
   * of 128K metadata, doubled (copies + 1) */
  assert_int_equal(zb_thick_reservation(1 << 30, 8192, 1),
                   (1LL << 30) + 136LL * 2 * (1 << 17));
  /* copies multiply the data and cap the metadata copies at 3 */
  assert_int_equal(zb_thick_reservation(1 << 30, 8192, 3),
                   3 * (1LL << 30) + 136LL * 3 * (1 << 17));
  assert_true(zb_thick_reservation(0, 8192, 1) > 0);
  /* sizes near 2^63: more than any pool, never an overflow */
  for (int copies = 1; copies <= 3; copies++) {
    assert_true(zb_thick_reservation(INT64_MAX, 512, copies) == INT64_MAX);
    assert_true(zb_thick_reservation(INT64_MAX, 1, copies) == INT64_MAX);
    assert_true(zb_thick_reservation(INT64_MAX - (1 << 20), 131072, copies) == INT64_MAX);
    assert_true(zb_thick_reservation(INT64_MAX / 3, 8192, copies) > INT64_MAX / 3);
  }
}

static void
test_metadata_properties(void **state)
{
  (void)state;
  struct zprop props[ZB_META_CHUNKS];
  int n;
  char *buf = NULL;
  json_t *meta =
      json_pack("{s:s, s:s, s:{s:s}, s:{s:s}}", "key", "k", "name", "tab\there \xc3\xa9",
                "keys", "vdi-type", "user", "_storage", "x", "not stored");

  assert_int_equal(zb_meta_encode(meta, 'a', props, &n, &buf), 0);
  assert_int_equal(n, 1);
  assert_string_equal(props[0].name, "zfs-live:meta");
  assert_null(strchr(props[0].value, '\t')); /* zfs get -H stays parseable */
  assert_null(strstr(props[0].value, "_storage"));
  /* what `zfs get -Hp -o name,property,value,source` prints for it */
  char out[10000];
  snprintf(out, sizeof out,
           "tank/sr/k\tzfs-live:meta\t%s\tlocal\ntank/sr/k\tused\t4096\t-\n",
           props[0].value);
  json_t *objs = zb_parse_get(out);
  json_t *o = json_object_get(objs, "tank/sr/k");
  assert_string_equal(zb_obj_value(o, "used"), "4096");
  assert_string_equal(zb_obj_source(o, "zfs-live:meta"), "local");
  json_t *back = zb_meta_decode(o, "tank/sr/k");
  json_object_del(meta, "_storage");
  assert_true(json_equal(meta, back));
  json_decref(back);
  json_decref(objs);
  free(buf);

  /* big keys: split into chunks, reassembled, checksummed */
  char big[20000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  json_object_set_new(json_object_get(meta, "keys"), "tagsbig", json_string(big));
  assert_int_equal(zb_meta_encode(meta, 'a', props, &n, &buf), 0);
  assert_int_equal(n, 3);
  o = json_object();
  for (int i = 0; i < n; i++)
    json_object_set_new(o, props[i].name, json_pack("[s, s]", props[i].value, "local"));
  back = zb_meta_decode(o, "k");
  assert_true(json_equal(meta, back));
  json_decref(back);
  /* a chunk from another write: refused, never half-read */
  json_object_set_new(o, "zfs-live:meta.1", json_pack("[s, s]", "yyyy", "local"));
  assert_null(zb_meta_decode(o, "k"));
  assert_non_null(strstr(zl_error_msg(), "checksum"));
  json_decref(o);
  free(buf);

  /* an update writes the other bank, header last: cut off before the
   * header, the old object still reads whole */
  {
    char *buf_a = NULL, *buf_b = NULL;
    struct zprop pa[ZB_META_CHUNKS], pb[ZB_META_CHUNKS];
    int na, nb;
    json_t *old_meta = json_deep_copy(meta);
    assert_int_equal(zb_meta_encode(old_meta, 'a', pa, &na, &buf_a), 0);
    json_object_set_new(json_object_get(meta, "keys"), "tagsnew", json_string("new"));
    assert_int_equal(zb_meta_encode(meta, 'b', pb, &nb, &buf_b), 0);
    assert_int_equal(nb, 3);
    assert_string_equal(pb[1].name, "zfs-live:meta.b1");
    assert_non_null(strstr(pb[0].value, "v2:b:3:"));
    o = json_object();
    for (int i = 0; i < na; i++)
      json_object_set_new(o, pa[i].name, json_pack("[s, s]", pa[i].value, "local"));
    assert_int_equal(zb_meta_bank(o), 'a');
    for (int i = 1; i < nb; i++) /* the chunks, not yet the header */
      json_object_set_new(o, pb[i].name, json_pack("[s, s]", pb[i].value, "local"));
    back = zb_meta_decode(o, "k");
    assert_true(json_equal(old_meta, back));
    json_decref(back);
    json_object_set_new(o, pb[0].name, json_pack("[s, s]", pb[0].value, "local"));
    assert_int_equal(zb_meta_bank(o), 'b');
    back = zb_meta_decode(o, "k");
    assert_true(json_equal(meta, back));
    json_decref(back);
    /* v1 (earlier versions) still reads: bank a */
    json_object_set_new(o, "zfs-live:meta",
                        json_pack("[s, s]", "v1:1:0000000000000000:{}", "local"));
    assert_null(zb_meta_decode(o, "k")); /* checksum of "{}" is not 0 */
    json_decref(o);
    json_decref(old_meta);
    free(buf_a);
    free(buf_b);
  }

  /* too big for 8 chunks */
  char *huge = malloc(70000);
  memset(huge, 'y', 69999);
  huge[69999] = '\0';
  json_object_set_new(json_object_get(meta, "keys"), "tagshuge", json_string(huge));
  assert_int_equal(zb_meta_encode(meta, 'a', props, &n, &buf), -1);
  free(huge);
  json_decref(meta);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_decisions_per_row),
      cmocka_unit_test(test_unknown_zfs_is_refused),
      cmocka_unit_test(test_tunables_per_row),
      cmocka_unit_test(test_command_lines),
      cmocka_unit_test(test_data_destroy_per_row),
      cmocka_unit_test(test_thick_reservation),
      cmocka_unit_test(test_metadata_properties),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
