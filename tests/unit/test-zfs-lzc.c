/* test-zfs-lzc.c: the libzfs_core path (dlopen, symbols, property types)
 * against the STAND-IN library in fake-lzc.c (see there). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/zfs/zfs.h"
#include "util/error.h"
#include "util/fsutil.h"

static char logpath[] = "/var/tmp/zl-lzc-XXXXXX";

static char *
take_log(void)
{
  char *buf = NULL;
  if (zl_read_file_at(-100 /* AT_FDCWD */, logpath, 1 << 20, &buf, NULL) == -1)
    return strdup("");
  unlink(logpath);
  return buf;
}

static void
test_load_and_marshal(void **state)
{
  (void)state;
  int fd = mkstemp(logpath);
  assert_true(fd >= 0);
  close(fd);
  unlink(logpath);
  setenv("FAKE_LZC_LOG", logpath, 1);
  assert_int_equal(zb_lzc_load_from(FAKE_LZC_DIR), 0);
  assert_true(zb_lzc_available());

  struct zprop props[] = {
      {"volsize", "1073741824"},  {"volblocksize", "16384"},      {"canmount", "noauto"},
      {"refreservation", "none"}, {"zfs-live:meta", "v1:1:0:{}"},
  };
  assert_int_equal(zb_lzc_create("tank/sr/k", true, props, 5), 0);
  char *log = take_log();
  assert_string_equal(log, "create tank/sr/k zvol [volsize=uint64:1073741824 "
                           "volblocksize=uint64:16384 canmount=uint64:2 "
                           "refreservation=uint64:0 zfs-live:meta=string:v1:1:0:{}]\n");
  free(log);

  /* a value only libzfs can translate: refused, so the CLI does it */
  struct zprop named[] = {{"refreservation", "auto"}};
  assert_int_equal(zb_lzc_clone("tank/sr/c", "tank/sr/k@s", named, 1), -1);
  assert_int_equal(errno, ENOTSUP);
  log = take_log();
  assert_string_equal(log, "");
  free(log);

  struct zprop meta[] = {{"zfs-live:meta", "m"}};
  assert_int_equal(zb_lzc_clone("tank/sr/c", "tank/sr/k@s", meta, 1), 0);
  assert_int_equal(zb_lzc_snapshot("tank/sr/k@s2", meta, 1), 0);
  assert_int_equal(zb_lzc_destroy_snapshot("tank/sr/k@s2"), 0);
  assert_int_equal(zb_lzc_destroy("tank/sr/c"), 0);
  log = take_log();
  assert_string_equal(log, "clone tank/sr/c tank/sr/k@s [zfs-live:meta=string:m]\n"
                           "snapshot tank/sr/k@s2 [zfs-live:meta=string:m]\n"
                           "destroy_snaps tank/sr/k@s2 []\n"
                           "destroy tank/sr/c []\n");
  free(log);

  /* failures come back as errors with the name */
  setenv("FAKE_LZC_FAIL", "destroy", 1);
  assert_int_equal(zb_lzc_destroy("tank/sr/busy"), -1);
  assert_int_equal(errno, EBUSY);
  assert_non_null(strstr(zl_error_msg(), "tank/sr/busy"));
  unsetenv("FAKE_LZC_FAIL");
  free(take_log());
}

static void
test_missing_library_means_cli(void **state)
{
  (void)state;
  assert_int_equal(zb_lzc_load_from("/nonexistent"), -1);
  assert_false(zb_lzc_available());
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_load_and_marshal),
      cmocka_unit_test(test_missing_library_means_cli),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
