/* test-io.c: the write path (core/io) on a file SR in a temporary
 * directory: which layers a stack has, what the storage layer does with
 * each kind of request (io_uring and the system calls), that the tracking
 * layer marks what a batch changes in the volume's CBT record, and the
 * fault layer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/model/cbt.h"
#include "core/io/fence.h"
#include "core/io/io.h"
#include "util/error.h"
#include "util/uuid.h"

#define VOL_SIZE (4 << 20)

static char base[] = "/var/tmp/zl-io-XXXXXX";
static char srpath[128], rundir[128];

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
  /* the host's runtime state (cbt.gen) stays in the test's directory */
  snprintf(rundir, sizeof rundir, "%s/run", base);
  setenv("ZFS_LIVE_RUN", rundir, 1);
  unsetenv("ZFS_LIVE_TEST_WRITE_DELAY_US");
  unsetenv("ZFS_LIVE_TEST_IO_FAULT");
  snprintf(srpath, sizeof srpath, "%s/sr", base);
  json_t *cfg = json_pack("{s:s}", "path", srpath);
  zl_uuid_generate(uuid);
  int r = zl_sr_create("file-live", uuid, cfg, "unit", "", &out);
  json_decref(cfg);
  json_decref(out);
  return r;
}

static int
remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void)st, (void)flag, (void)ftw;
  return remove(path);
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
  nftw(rundir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
  if (rmdir(base) == -1)
    return -1; /* something was left behind */
  return r;
}

static char *
make(struct zl_sr *sr)
{
  struct zl_create_args a = {
      .name = "io", .description = "", .size = VOL_SIZE, .provisioning = ZL_PROV_THIN};
  struct zl_volume v;
  assert_int_equal(zl_vol_create(sr, &a, &v), 0);
  char *k = strdup(v.key);
  zl_volume_free(&v);
  return k;
}

/* The layers of a stack opened over key's data now. */
static void
assert_stack(struct zl_sr *sr, const char *key, bool readonly, const char *want)
{
  int fd = zl_vol_open(sr, key, readonly ? O_RDONLY : O_RDWR);
  assert_true(fd >= 0);
  struct zl_io *io = zl_io_open(sr, key, fd, readonly);
  assert_non_null(io);
  assert_string_equal(zl_io_describe(io), want);
  zl_io_close(io);
  close(fd);
}

static void
test_stack_has_test_layers_only_when_configured(void **state)
{
  struct zl_sr *sr = open_sr();
  char *key = make(sr);
  (void)state;

  assert_stack(sr, key, false, "fence>mirror>tracking>storage");
  assert_stack(sr, key, true, "passthrough>storage");
  setenv("ZFS_LIVE_TEST_WRITE_DELAY_US", "1000", 1);
  assert_stack(sr, key, false, "fence>mirror>tracking>delay>storage");
  setenv("ZFS_LIVE_TEST_IO_FAULT", "write:EIO", 1);
  assert_stack(sr, key, false, "fence>mirror>tracking>delay>fault>storage");
  assert_stack(sr, key, true, "passthrough>delay>fault>storage");
  for (const char *const *bad = (const char *const[]){"0", "-5", "2000000", "1x", NULL};
       *bad; bad++) {
    setenv("ZFS_LIVE_TEST_WRITE_DELAY_US", *bad, 1);
    assert_stack(sr, key, false, "fence>mirror>tracking>fault>storage");
  }
  unsetenv("ZFS_LIVE_TEST_WRITE_DELAY_US");
  unsetenv("ZFS_LIVE_TEST_IO_FAULT");
  assert_stack(sr, key, false, "fence>mirror>tracking>storage");

  /* a fault setting that cannot be understood fails the open */
  int fd = zl_vol_open(sr, key, O_RDWR);
  assert_true(fd >= 0);
  for (const char *const *bad = (const char *const[]){"write", "write:EWHAT",
                                                      "scribble:EIO", "write:EIO:", NULL};
       *bad; bad++) {
    setenv("ZFS_LIVE_TEST_IO_FAULT", *bad, 1);
    assert_null(zl_io_open(sr, key, fd, false));
    assert_int_equal(errno, EINVAL);
    assert_non_null(strstr(zl_error_msg(), "ZFS_LIVE_TEST_IO_FAULT"));
  }
  unsetenv("ZFS_LIVE_TEST_IO_FAULT");
  close(fd);
  zl_vol_destroy(sr, key);
  free(key);
  zl_sr_close(sr);
}

static void
run1(struct zl_io *io, struct zl_io_queue *q, struct zl_io_req r)
{
  zl_io_batch(io, q, &r, 1);
  assert_int_equal(r.result, 0);
}

/* Every kind of request, in one batch and alone, through a queue. */
static void
requests_through(bool no_uring)
{
  struct zl_sr *sr = open_sr();
  char *key = make(sr);
  static uint8_t data[3 * 65536], back[3 * 65536];
  int fd = zl_vol_open(sr, key, O_RDWR);
  assert_true(fd >= 0);
  struct zl_io *io = zl_io_open(sr, key, fd, false);
  struct zl_io_queue *q = zl_io_queue_new(4, no_uring);
  assert_non_null(io);
  assert_non_null(q);

  for (size_t i = 0; i < sizeof data; i++)
    data[i] = (uint8_t)(i * 7 + 1);
  /* a batch larger than the queue: writes, a flush behind them, reads */
  struct zl_io_req b[8] = {
      {.op = ZL_IO_WRITE, .buf = data, .off = 0, .len = 65536},
      {.op = ZL_IO_WRITE,
       .buf = data + 65536,
       .off = 65536,
       .len = 65536,
       .flags = ZL_IO_FUA},
      {.op = ZL_IO_WRITE, .buf = data + 131072, .off = 131072, .len = 65536},
      {.op = ZL_IO_FLUSH},
      {.op = ZL_IO_CACHE, .off = 0, .len = 65536},
      {.op = ZL_IO_READ, .buf = back + 131072, .off = 1 << 20, .len = 65536},
      {.op = ZL_IO_READ, .buf = back, .off = 1 << 20, .len = 65536},
      {.op = ZL_IO_READ, .buf = back + 65536, .off = 2 << 20, .len = 65536},
  };
  for (size_t i = 0; i < 8; i++)
    b[i].result = 12345;
  zl_io_batch(io, q, b, 8);
  for (size_t i = 0; i < 8; i++)
    assert_int_equal(b[i].result, 0);
  run1(io, q,
       (struct zl_io_req){.op = ZL_IO_READ, .buf = back, .off = 0, .len = sizeof back});
  assert_memory_equal(back, data, sizeof back);

  /* zero keeping the allocation, zero that may trim, trim (FUA on both) */
  run1(io, q, (struct zl_io_req){.op = ZL_IO_ZERO, .off = 100, .len = 1000});
  run1(io, q,
       (struct zl_io_req){.op = ZL_IO_ZERO,
                          .off = 65536,
                          .len = 65536,
                          .flags = ZL_IO_MAY_TRIM | ZL_IO_FUA});
  run1(io, q,
       (struct zl_io_req){
           .op = ZL_IO_TRIM, .off = 131072, .len = 65536, .flags = ZL_IO_FUA});
  run1(io, q,
       (struct zl_io_req){.op = ZL_IO_READ, .buf = back, .off = 0, .len = sizeof back});
  memset(data + 100, 0, 1000);
  memset(data + 65536, 0, 65536);
  assert_memory_equal(back, data, 131072);
  /* a trim is a hint: what reads back is the old data or zeroes */
  for (size_t i = 131072; i < sizeof back; i++)
    assert_true(back[i] == 0 || back[i] == data[i]);

  zl_io_queue_free(q);
  zl_io_close(io);
  close(fd);
  zl_vol_destroy(sr, key);
  free(key);
  zl_sr_close(sr);
}

static void
test_requests_uring(void **state)
{
  (void)state;
  requests_through(false);
}

static void
test_requests_system_calls(void **state)
{
  (void)state;
  requests_through(true);
}

/* Is block b marked in key's active CBT record (either slot)? */
static bool
marked(struct zl_sr *sr, const char *key, uint64_t b)
{
  int dfd = cbt_dir(sr, false);
  struct cbt_file f;
  assert_true(dfd >= 0);
  assert_int_equal(cbt_map(dfd, key, &f), 0);
  close(dfd);
  bool set = false;
  for (unsigned s = 0; s < f.h->nslots; s++)
    set |= (slot(&f, s)[b / 8] >> (7 - b % 8)) & 1;
  cbt_unmap(&f);
  return set;
}

static void
test_tracking_marks_what_a_batch_changes(void **state)
{
  struct zl_sr *sr = open_sr();
  char *key = make(sr);
  static uint8_t data[4096];
  (void)state;
  int fd = zl_vol_open(sr, key, O_RDWR);
  assert_true(fd >= 0);
  /* opened before CBT is enabled: the writer finds the record when the
   * host's generation moves */
  struct zl_io *io = zl_io_open(sr, key, fd, false);
  struct zl_io_queue *q = zl_io_queue_new(8, false);
  assert_non_null(io);
  assert_non_null(q);
  assert_int_equal(zl_vol_enable_cbt(sr, key), 0);

  struct zl_io_req b[] = {
      {.op = ZL_IO_WRITE, .buf = data, .off = 3 * G + 10, .len = sizeof data},
      {.op = ZL_IO_ZERO, .off = 5 * G, .len = 2 * G},
      {.op = ZL_IO_TRIM, .off = 9 * G - 1, .len = 2},
      {.op = ZL_IO_READ, .buf = data, .off = 20 * G, .len = sizeof data},
      {.op = ZL_IO_CACHE, .off = 21 * G, .len = G},
      {.op = ZL_IO_FLUSH},
  };
  zl_io_batch(io, q, b, sizeof b / sizeof *b);
  for (size_t i = 0; i < sizeof b / sizeof *b; i++)
    assert_int_equal(b[i].result, 0);
  bool want[24] = {[3] = true, [5] = true, [6] = true, [8] = true, [9] = true};
  for (uint64_t blk = 0; blk < 24; blk++)
    assert_int_equal(marked(sr, key, blk), want[blk]);

  zl_io_queue_free(q);
  zl_io_close(io);
  close(fd);
  assert_int_equal(zl_vol_disable_cbt(sr, key), 0);
  zl_vol_destroy(sr, key);
  free(key);
  zl_sr_close(sr);
}

static void
test_fault_layer_fails_the_named_kinds(void **state)
{
  struct zl_sr *sr = open_sr();
  char *key = make(sr);
  static uint8_t data[4096], back[4096];
  char trigger[256];
  (void)state;
  snprintf(trigger, sizeof trigger, "%s/fault-on", base);
  int fd = zl_vol_open(sr, key, O_RDWR);
  assert_true(fd >= 0);
  memset(data, 0xab, sizeof data);
  char spec[300];
  snprintf(spec, sizeof spec, "write,flush:ENOSPC:%s", trigger);
  setenv("ZFS_LIVE_TEST_IO_FAULT", spec, 1);
  struct zl_io *io = zl_io_open(sr, key, fd, false);
  unsetenv("ZFS_LIVE_TEST_IO_FAULT"); /* read at open only */
  struct zl_io_queue *q = zl_io_queue_new(8, false);
  assert_non_null(io);
  assert_non_null(q);

  /* the trigger file is not there: everything passes */
  run1(io, q, (struct zl_io_req){.op = ZL_IO_WRITE, .buf = data, .off = 0, .len = 4096});
  /* it is: writes and flushes fail, without reaching the storage; the
   * rest of the batch runs */
  int t = open(trigger, O_WRONLY | O_CREAT | O_EXCL, 0600);
  assert_true(t >= 0);
  close(t);
  memset(data, 0xcd, sizeof data);
  struct zl_io_req b[] = {
      {.op = ZL_IO_WRITE, .buf = data, .off = 0, .len = 4096},
      {.op = ZL_IO_ZERO, .off = 8192, .len = 4096},
      {.op = ZL_IO_FLUSH},
      {.op = ZL_IO_READ, .buf = back, .off = 0, .len = 4096},
  };
  zl_io_batch(io, q, b, 4);
  assert_int_equal(b[0].result, -ENOSPC);
  assert_int_equal(b[1].result, 0);
  assert_int_equal(b[2].result, -ENOSPC);
  assert_int_equal(b[3].result, 0);
  memset(data, 0xab, sizeof data);
  assert_memory_equal(back, data, sizeof back);
  unlink(trigger);
  run1(io, q, (struct zl_io_req){.op = ZL_IO_FLUSH});

  zl_io_queue_free(q);
  zl_io_close(io);
  close(fd);
  zl_vol_destroy(sr, key);
  free(key);
  zl_sr_close(sr);
}

/* The fence layer: a volume held by another host refuses this host's
 * writes with EPERM (and lets reads and flushes by); held by a peer, the
 * queue carrying that peer's writes passes; "open" passes everyone. */
static void
test_fence_refuses_writers_the_volume_is_not_active_for(void **state)
{
  (void)state;
  struct zl_sr *sr = open_sr();
  char *key = make(sr);
  static uint8_t buf[4096];
  int fd = zl_vol_open(sr, key, O_RDWR);
  assert_true(fd >= 0);
  struct zl_io *io = zl_io_open(sr, key, fd, false);
  struct zl_io_queue *q = zl_io_queue_new(4, true);
  assert_non_null(io);
  assert_non_null(q);
  struct zl_io_req w = {.op = ZL_IO_WRITE, .buf = buf, .off = 0, .len = 4096};
  struct zl_io_req b[3] = {
      w, {.op = ZL_IO_READ, .buf = buf, .off = 0, .len = 4096}, {.op = ZL_IO_FLUSH}};

  zl_io_batch(io, q, b, 1); /* no activation: open */
  assert_int_equal(b[0].result, 0);
  assert_int_equal(zl_fence_set(sr, key, "host-a", "host-b", 7, 1000), 0);
  b[0] = w;
  zl_io_batch(io, q, b, 3);
  assert_int_equal(b[0].result, -EPERM);
  assert_int_equal(b[1].result, 0);
  assert_int_equal(b[2].result, 0);
  assert_int_equal(zl_io_queue_set_peer(q, "host-b"), 0); /* host-b's own writes */
  b[0] = w;
  zl_io_batch(io, q, b, 1);
  assert_int_equal(b[0].result, 0);
  assert_int_equal(zl_io_queue_set_peer(q, NULL), 0);
  assert_int_equal(zl_fence_set(sr, key, "host-a", "", 8, 1000), 0); /* nobody */
  b[0] = w;
  zl_io_batch(io, q, b, 1);
  assert_int_equal(b[0].result, -EPERM);
  assert_int_equal(zl_fence_set(sr, key, "host-a", "host-a", 9, 1000), 0); /* us */
  b[0] = w;
  zl_io_batch(io, q, b, 1);
  assert_int_equal(b[0].result, 0);
  bool open;
  char holder[128];
  uint64_t gen;
  assert_int_equal(zl_fence_get(sr, key, &open, holder, sizeof holder, &gen), 0);
  assert_false(open);
  assert_string_equal(holder, "host-a");
  assert_int_equal(gen, 9);
  assert_int_equal(zl_fence_remove(sr, key), 0);
  zl_io_queue_free(q);
  zl_io_close(io);
  close(fd);
  free(key);
  zl_sr_close(sr);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_stack_has_test_layers_only_when_configured),
      cmocka_unit_test(test_requests_uring),
      cmocka_unit_test(test_requests_system_calls),
      cmocka_unit_test(test_tracking_marks_what_a_batch_changes),
      cmocka_unit_test(test_fault_layer_fails_the_named_kinds),
      cmocka_unit_test(test_fence_refuses_writers_the_volume_is_not_active_for),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
