/* test-fsutil.c: atomic writes, bounded reads, hole-preserving copies. */
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
#include <sys/sysmacros.h>
#include <unistd.h>

#include "util/beneath.h"
#include "util/cleanup.h"
#include "util/digest.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/paths.h"
#include "util/uuid.h"

static char dir[] = "/var/tmp/zl-unit-XXXXXX";
static int dfd = -1;

static int
setup(void **state)
{
  (void)state;
  if (!mkdtemp(dir))
    return -1;
  dfd = open(dir, O_RDONLY | O_DIRECTORY);
  return dfd >= 0 ? 0 : -1;
}

static int
teardown(void **state)
{
  (void)state;
  /* remove what the tests made, then the directory */
  const char *names[] = {"a", "big", "src", "dst", "link", "fifo", NULL};
  for (const char **n = names; *n; n++)
    unlinkat(dfd, *n, 0);
  zl_remove_tree(dfd, "d");
  close(dfd);
  return rmdir(dir);
}

static void
test_atomic_write_and_read(void **state)
{
  CLEANUP_FREE char *buf = NULL;
  size_t len;
  (void)state;

  assert_int_equal(zl_write_file_atomic(dfd, "a", "hello", 5, true), 0);
  assert_int_equal(zl_write_file_atomic(dfd, "a", "bye", 3, false), 0);
  assert_int_equal(zl_read_file_at(dfd, "a", 100, &buf, &len), 0);
  assert_int_equal(len, 3);
  assert_string_equal(buf, "bye");
  /* no temporaries left */
  assert_int_equal(faccessat(dfd, ".a.tmp", F_OK, 0), -1);
}

static void
test_read_limits(void **state)
{
  char *buf = NULL;
  char big[4096];
  (void)state;

  memset(big, 'x', sizeof big);
  assert_int_equal(zl_write_file_atomic(dfd, "big", big, sizeof big, false), 0);
  assert_int_equal(zl_read_file_at(dfd, "big", 100, &buf, NULL), -1);
  assert_int_equal(errno, EFBIG);
  assert_int_equal(zl_read_file_at(dfd, "missing", 100, &buf, NULL), -1);
  assert_int_equal(errno, ENOENT);
  assert_null(buf);
}

static off_t
data_at(int fd, off_t pos)
{
  return lseek(fd, pos, SEEK_DATA);
}

static void
test_copy_sparse_keeps_holes(void **state)
{
  const off_t size = 64 << 20;
  char block[65536];
  uint64_t copied = 0;
  (void)state;

  CLEANUP_CLOSE int src = openat(dfd, "src", O_RDWR | O_CREAT | O_TRUNC, 0600);
  CLEANUP_CLOSE int dst = openat(dfd, "dst", O_RDWR | O_CREAT | O_TRUNC, 0600);
  assert_true(src >= 0 && dst >= 0);
  assert_int_equal(ftruncate(src, size), 0);
  memset(block, 0x5a, sizeof block);
  assert_int_equal(zl_pwrite_all(src, block, sizeof block, 8 << 20), 0);
  assert_int_equal(zl_pwrite_all(src, block, sizeof block, size - (off_t)sizeof block),
                   0);

  assert_int_equal(zl_copy_sparse(src, dst, size, &copied), 0);
  struct stat st;
  assert_int_equal(fstat(dst, &st), 0);
  assert_int_equal(st.st_size, size);
  assert_true(copied >= 2 * sizeof block && copied < (uint64_t)(1 << 20));
  assert_true(st.st_blocks * 512 < (1 << 20)); /* holes stayed holes */
  assert_int_equal(data_at(dst, 0), 8 << 20);
  char back[65536];
  assert_int_equal(zl_pread_all(dst, back, sizeof back, 8 << 20), 0);
  assert_memory_equal(back, block, sizeof block);
  assert_int_equal(zl_pread_all(dst, back, sizeof back, size - (off_t)sizeof back), 0);
  assert_memory_equal(back, block, sizeof block);
  /* copying again over a non-empty destination gives the same result */
  assert_int_equal(zl_clone_or_copy(src, dst, size, NULL), 0);
  assert_int_equal(zl_pread_all(dst, back, sizeof back, 8 << 20), 0);
  assert_memory_equal(back, block, sizeof block);
}

static void
test_beneath(void **state)
{
  (void)state;
  const char *ok[] = {"a", "a/b", "locks/x.y", NULL};
  const char *bad[] = {"", "/a", "a/", "a//b", ".", "..", "a/../b", "a/./b", NULL};
  for (const char **p = ok; *p; p++)
    assert_true(zl_path_relative_ok(*p));
  for (const char **p = bad; *p; p++)
    assert_false(zl_path_relative_ok(*p));

  /* made on the way, then found again */
  int d = zl_dir_beneath(dfd, "d/e/f", true);
  assert_true(d >= 0);
  close(d);
  d = zl_dir_beneath(dfd, "d/e", false);
  assert_true(d >= 0);
  close(d);
  /* a symlink in the middle or at the end: refused, never followed */
  assert_int_equal(symlinkat("/tmp", dfd, "link"), 0);
  assert_int_equal(zl_dir_beneath(dfd, "link", false), -1);
  assert_int_equal(zl_dir_beneath(dfd, "link/x", true), -1);
  assert_int_equal(zl_file_beneath(dfd, "link", O_RDONLY, 0), -1);
  assert_int_equal(zl_file_beneath(dfd, "link/x", O_RDWR | O_CREAT, 0600), -1);
  /* a FIFO: refused at once, never waited on */
  assert_int_equal(mkfifoat(dfd, "fifo", 0600), 0);
  assert_int_equal(zl_file_beneath(dfd, "fifo", O_RDONLY, 0), -1);
  assert_int_equal(errno, EINVAL);
  assert_int_equal(zl_dir_beneath(dfd, "fifo", false), -1);
  /* a regular file is opened, blocking again */
  int f = zl_file_beneath(dfd, "d/e/f/file", O_RDWR | O_CREAT, 0600);
  assert_true(f >= 0);
  assert_int_equal(fcntl(f, F_GETFL) & O_NONBLOCK, 0);
  close(f);
  /* the tree goes, symlinks inside it without their targets */
  assert_int_equal(symlinkat("/tmp", d = zl_dir_beneath(dfd, "d", false), "tmp-link"), 0);
  close(d);
  assert_int_equal(zl_remove_tree(dfd, "d"), 0);
  assert_int_equal(faccessat(dfd, "d", F_OK, 0), -1);
  assert_int_equal(faccessat(AT_FDCWD, "/tmp", F_OK, 0), 0);
}

static void
test_uuid(void **state)
{
  char a[ZL_UUID_LEN + 1], b[ZL_UUID_LEN + 1];
  (void)state;
  assert_int_equal(zl_uuid_generate(a), 0);
  assert_int_equal(zl_uuid_generate(b), 0);
  assert_true(zl_uuid_valid(a) && zl_uuid_valid(b));
  assert_string_not_equal(a, b);
  assert_int_equal(a[14], '4');
  assert_false(zl_uuid_valid("8d1f0c1e-1111-4222-8333-44445555666"));
  assert_false(zl_uuid_valid("8d1f0c1e-1111-4222-8333-44445555666g"));
  assert_false(zl_uuid_valid(NULL));
}

/* The filesystem type of an fd comes from the mountinfo line of its
 * device; a device no line names is an error, never a guess. */
static void
test_fd_fstype(void **state)
{
  char mi[] = "/var/tmp/zl-unit-mountinfo-XXXXXX", got[64] = "";
  struct stat st;
  (void)state;
  int fd = mkstemp(mi);
  assert_true(fd >= 0 && fstat(fd, &st) == 0);
  FILE *f = fdopen(fd, "w");
  fprintf(f, "27 1 %u:%u / / rw - ext4 /dev/vda rw\n", major(st.st_dev) + 1,
          minor(st.st_dev)); /* another device first */
  fprintf(f, "61 27 %u:%u / /mnt/sr\\040x rw shared:5 - fuse.glusterfs 10.0.0.1:/v rw\n",
          major(st.st_dev), minor(st.st_dev));
  fclose(f);
  int self = open(mi, O_RDONLY);
  assert_int_equal(zl_fd_fstype(self, mi, got, sizeof got), 0);
  assert_string_equal(got, "fuse.glusterfs");
  assert_true(zl_fstype_shared(got));
  f = fopen(mi, "w");
  fprintf(f, "27 1 %u:%u / / rw - ext4 /dev/vda rw\n", major(st.st_dev) + 1,
          minor(st.st_dev));
  fclose(f);
  assert_int_equal(zl_fd_fstype(self, mi, got, sizeof got), -1);
  assert_int_equal(errno, ENOENT);
  close(self);
  unlink(mi);
  for (const char *const *t = (const char *const[]){"nfs", "nfs4", "ceph", "ocfs2",
                                                    "gfs2", "fuse.ceph-fuse", NULL};
       *t; t++)
    assert_true(zl_fstype_shared(*t));
  for (const char *const *t = (const char *const[]){"ext4", "xfs", "btrfs", "tmpfs",
                                                    "fuse", "fuse.zfs-fuse", NULL};
       *t; t++)
    assert_false(zl_fstype_shared(*t));
}

struct seen {
  uint64_t last, total;
  int calls;
  bool monotonic;
};

static void
seen_fn(void *opaque, uint64_t done, uint64_t total)
{
  struct seen *s = opaque;
  if (done < s->last || done > total)
    s->monotonic = false;
  s->last = done, s->total = total;
  s->calls++;
}

/* The copy reports how far it is: pieces of at most 64 MiB, then the end. */
static void
test_copy_progress(void **state)
{
  const off_t size = 200 << 20;
  static char block[1 << 20];
  struct seen s = {.monotonic = true};
  struct zl_copy_progress p = {seen_fn, &s};
  (void)state;

  CLEANUP_CLOSE int src = openat(dfd, "psrc", O_RDWR | O_CREAT | O_TRUNC, 0600);
  CLEANUP_CLOSE int dst = openat(dfd, "pdst", O_RDWR | O_CREAT | O_TRUNC, 0600);
  assert_true(src >= 0 && dst >= 0);
  assert_int_equal(ftruncate(src, size), 0);
  memset(block, 0x33, sizeof block);
  for (off_t off = 0; off < 130 << 20; off += sizeof block)
    assert_int_equal(zl_pwrite_all(src, block, sizeof block, 10 * (1 << 20) + off), 0);
  assert_int_equal(zl_copy_sparse_progress(src, dst, size, NULL, &p), 0);
  assert_true(s.monotonic);
  assert_true(s.calls >= 4); /* 130 MiB of data: 3 pieces, then the end */
  assert_int_equal(s.last, (uint64_t)size);
  assert_int_equal(s.total, (uint64_t)size);
  unlinkat(dfd, "psrc", 0);
  unlinkat(dfd, "pdst", 0);
}

static void
sha_of(const void *buf, size_t len, size_t times, char hex[ZL_SHA256_HEX])
{
  struct zl_sha256 *h = zl_sha256_new();
  assert_non_null(h);
  for (size_t i = 0; i < times; i++)
    assert_int_equal(zl_sha256_update(h, buf, len), 0);
  assert_int_equal(zl_sha256_hex(h, hex), 0);
  zl_sha256_free(h);
}

/* FIPS 180-2 test vectors, through whichever library the build links. */
static void
test_sha256(void **state)
{
  char hex[ZL_SHA256_HEX];
  static char a[1000];
  (void)state;

  sha_of("", 0, 1, hex);
  assert_string_equal(hex,
                      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  sha_of("abc", 3, 1, hex);
  assert_string_equal(hex,
                      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  memset(a, 'a', sizeof a);
  sha_of(a, sizeof a, 1000, hex);
  assert_string_equal(hex,
                      "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_atomic_write_and_read),
      cmocka_unit_test(test_read_limits),
      cmocka_unit_test(test_copy_sparse_keeps_holes),
      cmocka_unit_test(test_beneath),
      cmocka_unit_test(test_uuid),
      cmocka_unit_test(test_fd_fstype),
      cmocka_unit_test(test_copy_progress),
      cmocka_unit_test(test_sha256),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
