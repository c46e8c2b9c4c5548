/* test-compat.c: the system call wrappers for old kernels (util/compat.h),
 * each through the system call and through its fallback.
 *
 * The fallbacks are forced two ways: zl_compat_force_fallback() here, and
 * (the "compat-k419" test) this whole program run under tests/tools/
 * k419-exec, where the kernel answers ENOSYS; ZL_TEST_K419=1 tells the
 * program it runs so, and then it checks that every probe says fallback
 * without forcing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/io/io.h"
#include "util/compat.h"
#include "util/exec.h"
#include "util/fsutil.h"
#include "util/uuid.h"

static bool under_k419;

/* Each test twice: as the host is, then with every call forced off. */
static int
native(void **state)
{
  (void)state;
  zl_compat_force_fallback(false);
  return 0;
}

static int
forced(void **state)
{
  (void)state;
  zl_compat_force_fallback(true);
  return 0;
}

static int
unforce(void **state)
{
  (void)state;
  zl_compat_force_fallback(false);
  return 0;
}

static void
test_random(void **state)
{
  (void)state;
  uint8_t a[64] = {0}, b[64] = {0}, zero[64] = {0};
  assert_int_equal(zl_random_bytes(a, sizeof a, false), 0);
  assert_int_equal(zl_random_bytes(b, sizeof b, true), 0);
  assert_memory_not_equal(a, zero, sizeof a);
  assert_memory_not_equal(a, b, sizeof a);
  char u[ZL_UUID_LEN + 1];
  assert_int_equal(zl_uuid_generate(u), 0);
  assert_true(zl_uuid_valid(u));
}

static void
test_memfd(void **state)
{
  (void)state;
  int fd = zl_memfd("zl-test");
  assert_true(fd >= 0);
  assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  assert_int_equal(ftruncate(fd, 1 << 20), 0);
  struct stat st;
  assert_int_equal(fstat(fd, &st), 0);
  assert_int_equal(st.st_size, 1 << 20);
  assert_int_equal(st.st_nlink, 0); /* anonymous: no name anywhere */
  char buf[16] = {1};
  assert_int_equal(pread(fd, buf, sizeof buf, 4096), sizeof buf);
  assert_int_equal(buf[0], 0);
  close(fd);
}

/* A copy through zl_copy_sparse gives the data whichever way it goes. */
static void
test_copy(void **state)
{
  (void)state;
  char path[] = "/var/tmp/zl-compat-XXXXXX";
  int in = mkstemp(path);
  assert_true(in >= 0);
  unlink(path);
  char path2[] = "/var/tmp/zl-compat-XXXXXX";
  int out = mkstemp(path2);
  assert_true(out >= 0);
  unlink(path2);
  char block[4096];
  memset(block, 0x5a, sizeof block);
  assert_int_equal(pwrite(in, block, sizeof block, 1 << 20), sizeof block);
  off_t io = 1 << 20, oo = 0;
  ssize_t n = zl_copy_file_range(in, &io, out, &oo, sizeof block);
  if (n == -1) /* the fallback's answer: the caller copies */
    assert_int_equal(errno, ENOSYS);
  else
    assert_int_equal(oo, n);
  uint64_t copied = 0;
  assert_int_equal(zl_copy_sparse(in, out, (1 << 20) + (off_t)sizeof block, &copied), 0);
  char back[sizeof block];
  assert_int_equal(pread(out, back, sizeof back, 1 << 20), sizeof back);
  assert_memory_equal(back, block, sizeof block);
  close(in);
  close(out);
}

/* No descriptor of ours reaches a child: one without FD_CLOEXEC at 100. */
static void
test_exec_inherits_nothing(void **state)
{
  (void)state;
  int fd = open("/dev/null", O_RDONLY); /* deliberately not O_CLOEXEC */
  assert_true(fd >= 0);
  assert_int_equal(dup2(fd, 100), 100);
  close(fd);
  struct zl_exec_result r;
  const char *argv[] = {"ls", "/proc/self/fd", NULL};
  assert_int_equal(zl_exec(argv, NULL, &r), 0);
  assert_int_equal(r.status, 0);
  assert_null(strstr(r.out, "100\n"));
  assert_non_null(strstr(r.out, "2\n"));
  zl_exec_result_free(&r);
  assert_true(fcntl(100, F_GETFD) & FD_CLOEXEC); /* marked, still open */
  close(100);
}

/* Under k419-exec the calls 4.19 lacks find their fallback, without
 * forcing; those it has (getrandom, memfd_create, copy_file_range) are
 * still system calls there. */
static void
test_probe(void **state)
{
  (void)state;
  struct zl_compat_paths p;
  zl_compat_probe(&p);
  bool want = !under_k419;
  assert_true(p.copy_file_range);
  assert_true(p.getrandom);
  assert_true(p.memfd_create);
  assert_int_equal(p.close_range, want);
  assert_int_equal(p.openat2, want);
  assert_int_equal(zl_io_uring_available(), want);
}

static void
test_probe_forced(void **state)
{
  (void)state;
  struct zl_compat_paths p;
  zl_compat_probe(&p);
  assert_false(p.copy_file_range || p.getrandom || p.memfd_create || p.close_range ||
               p.openat2);
}

int
main(void)
{
  under_k419 = getenv("ZL_TEST_K419") != NULL;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_probe, native),
      cmocka_unit_test_setup(test_random, native),
      cmocka_unit_test_setup(test_memfd, native),
      cmocka_unit_test_setup(test_copy, native),
      cmocka_unit_test_setup(test_exec_inherits_nothing, native),
      cmocka_unit_test_setup_teardown(test_probe_forced, forced, unforce),
      cmocka_unit_test_setup_teardown(test_random, forced, unforce),
      cmocka_unit_test_setup_teardown(test_memfd, forced, unforce),
      cmocka_unit_test_setup_teardown(test_copy, forced, unforce),
      cmocka_unit_test_setup_teardown(test_exec_inherits_nothing, forced, unforce),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
