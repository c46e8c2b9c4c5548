/* test-bitmap.c: util/bitmap.c, the one bitmap of CBT, the NBD dirty-bitmap
 * contexts and the SMAPIv3 base64 bitmap: layout (most significant bit of
 * byte 0 = block 0), ranges across byte boundaries, the last partial byte,
 * empty maps and ranges, runs, OR and the base64 encoding. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <nettle/base64.h>
#include <stdlib.h>
#include <string.h>

#include "util/bitmap.h"

#define G 65536

static struct zl_bitmap
blocks(uint64_t n)
{
  struct zl_bitmap m;
  assert_int_equal(zl_bitmap_alloc(&m, n * G, G), 0);
  assert_int_equal(m.nblocks, n);
  return m;
}

static void
test_sizes(void **state)
{
  (void)state;
  assert_int_equal(zl_bitmap_blocks(0, G), 0);
  assert_int_equal(zl_bitmap_blocks(1, G), 1);
  assert_int_equal(zl_bitmap_blocks(G, G), 1);
  assert_int_equal(zl_bitmap_blocks(G + 1, G), 2);
  assert_int_equal(zl_bitmap_blocks(UINT64_MAX, G), UINT64_MAX / G + 1);
  assert_int_equal(zl_bitmap_bytes(0), 0);
  assert_int_equal(zl_bitmap_bytes(1), 1);
  assert_int_equal(zl_bitmap_bytes(8), 1);
  assert_int_equal(zl_bitmap_bytes(9), 2);

  struct zl_bitmap m;
  assert_int_equal(zl_bitmap_alloc(&m, 10 * G + 1, G), 0);
  assert_int_equal(m.size, 10 * G + 1);
  assert_int_equal(m.granularity, G);
  assert_int_equal(m.nblocks, 11);
  for (uint64_t b = 0; b < 16; b++)
    assert_false(zl_bitmap_test(&m, b));
  zl_bitmap_free(&m);
  assert_null(m.bits);
  zl_bitmap_free(&m); /* again: a no-op */
}

static void
test_empty(void **state)
{
  (void)state;
  struct zl_bitmap m = blocks(0);
  uint64_t pos = 0, first = 7, count = 7;

  assert_non_null(m.bits);
  zl_bitmap_set_bytes(&m, 0, 100);
  zl_bitmap_set_blocks(&m, 0, 5);
  assert_false(zl_bitmap_test(&m, 0));
  assert_false(zl_bitmap_next_run(&m, &pos, &first, &count));
  assert_int_equal(pos, 0);
  assert_int_equal(first, 7); /* untouched */
  assert_int_equal(zl_bitmap_run_end(&m, 0, 5), 5);
  char *b64 = zl_bitmap_base64(&m, 0, 0);
  assert_string_equal(b64, "");
  free(b64);
  zl_bitmap_free(&m);
}

static void
test_set_blocks_across_bytes(void **state)
{
  (void)state;
  struct zl_bitmap m = blocks(20);

  zl_bitmap_set_blocks(&m, 5, 6); /* 5..10: the end of byte 0, byte 1 */
  assert_int_equal(m.bits[0], 0x07);
  assert_int_equal(m.bits[1], 0xe0);
  assert_int_equal(m.bits[2], 0);
  for (uint64_t b = 0; b < 24; b++)
    assert_int_equal(zl_bitmap_test(&m, b), b >= 5 && b <= 10);
  /* clipped to the map: no bit past block 19 in the last partial byte */
  zl_bitmap_set_blocks(&m, 16, 100);
  assert_int_equal(m.bits[2], 0xf0);
  assert_false(zl_bitmap_test(&m, 20));
  /* nothing: an empty range, a range at or past the end */
  zl_bitmap_set_blocks(&m, 0, 0);
  zl_bitmap_set_blocks(&m, 20, 1);
  zl_bitmap_set_blocks(&m, UINT64_MAX, UINT64_MAX);
  assert_int_equal(m.bits[0], 0x07);
  assert_int_equal(m.bits[2], 0xf0);
  /* whole bytes and the partial last one; count overflowing first + count */
  zl_bitmap_set_blocks(&m, 0, UINT64_MAX);
  assert_int_equal(m.bits[0], 0xff);
  assert_int_equal(m.bits[1], 0xff);
  assert_int_equal(m.bits[2], 0xf0);
  zl_bitmap_clear(&m);
  for (size_t i = 0; i < 3; i++)
    assert_int_equal(m.bits[i], 0);
  zl_bitmap_free(&m);
}

/* Long ranges (whole words at a time) set exactly the blocks asked, from
 * any start to any end, and keep the bits around them. */
static void
test_set_blocks_long_ranges(void **state)
{
  (void)state;
  struct zl_bitmap m;
  const uint64_t n = 1000;
  assert_int_equal(zl_bitmap_alloc(&m, n, 1), 0);
  for (uint64_t first = 0; first < 140; first += 7) {
    for (uint64_t count = 0; count < 400; count += 13) {
      zl_bitmap_clear(&m);
      zl_bitmap_set_blocks(&m, 999, 1);
      zl_bitmap_set_blocks(&m, first, count);
      for (uint64_t b = 0; b < n; b++)
        assert_int_equal(zl_bitmap_test(&m, b),
                         (b >= first && b < first + count) || b == 999);
    }
  }
  zl_bitmap_clear(&m);
  zl_bitmap_set_blocks(&m, 3, UINT64_MAX); /* to the end */
  for (uint64_t b = 0; b < n; b++)
    assert_int_equal(zl_bitmap_test(&m, b), b >= 3);
  zl_bitmap_free(&m);
}

static void
test_set_bytes(void **state)
{
  (void)state;
  struct zl_bitmap m;
  assert_int_equal(zl_bitmap_alloc(&m, 10 * G + 1, G), 0); /* last block: 1 byte */

  zl_bitmap_set_bytes(&m, G - 1, 2); /* one byte on each side of a boundary */
  assert_true(zl_bitmap_test(&m, 0));
  assert_true(zl_bitmap_test(&m, 1));
  assert_false(zl_bitmap_test(&m, 2));
  zl_bitmap_set_bytes(&m, 3 * G, G); /* exactly block 3, not 4 */
  assert_true(zl_bitmap_test(&m, 3));
  assert_false(zl_bitmap_test(&m, 4));
  zl_bitmap_set_bytes(&m, 5 * G, 0); /* length 0 */
  assert_false(zl_bitmap_test(&m, 5));
  zl_bitmap_set_bytes(&m, m.size, 5); /* offset at the end */
  zl_bitmap_set_bytes(&m, UINT64_MAX, UINT64_MAX);
  assert_false(zl_bitmap_test(&m, 10));
  assert_int_equal(m.bits[1], 0);
  zl_bitmap_set_bytes(&m, m.size - 1, 1); /* the last byte: the last block */
  assert_true(zl_bitmap_test(&m, 10));
  assert_int_equal(m.bits[1], 0x20);
  /* a length past the end (UINT64_MAX: to the end) stops at size */
  zl_bitmap_set_bytes(&m, 8 * G + 5, UINT64_MAX);
  assert_int_equal(m.bits[0], 0xd0);
  assert_int_equal(m.bits[1], 0xe0);
  assert_false(zl_bitmap_test(&m, 11));
  zl_bitmap_free(&m);
}

static void
test_runs(void **state)
{
  (void)state;
  struct zl_bitmap m = blocks(37);
  const uint64_t runs[][2] = {{0, 1}, {7, 2}, {16, 8}, {30, 7}};
  uint64_t pos = 0, first, count;

  for (size_t i = 0; i < 4; i++)
    zl_bitmap_set_blocks(&m, runs[i][0], runs[i][1]);
  for (size_t i = 0; i < 4; i++) {
    assert_true(zl_bitmap_next_run(&m, &pos, &first, &count));
    assert_int_equal(first, runs[i][0]);
    assert_int_equal(count, runs[i][1]);
    assert_int_equal(pos, first + count);
  }
  assert_false(zl_bitmap_next_run(&m, &pos, &first, &count));
  assert_int_equal(pos, 37);
  pos = 17; /* from the middle of a run */
  assert_true(zl_bitmap_next_run(&m, &pos, &first, &count));
  assert_int_equal(first, 17);
  assert_int_equal(count, 7);
  pos = 1000; /* past the end */
  assert_false(zl_bitmap_next_run(&m, &pos, &first, &count));
  assert_int_equal(pos, 37);

  /* runs of either state, up to a limit; clear past the end */
  assert_int_equal(zl_bitmap_run_end(&m, 0, 37), 1);
  assert_int_equal(zl_bitmap_run_end(&m, 1, 37), 7);
  assert_int_equal(zl_bitmap_run_end(&m, 7, 37), 9);
  assert_int_equal(zl_bitmap_run_end(&m, 9, 37), 16);
  assert_int_equal(zl_bitmap_run_end(&m, 16, 20), 20);
  assert_int_equal(zl_bitmap_run_end(&m, 16, 100), 24);
  assert_int_equal(zl_bitmap_run_end(&m, 24, 100), 30);
  assert_int_equal(zl_bitmap_run_end(&m, 24, 27), 27);
  assert_int_equal(zl_bitmap_run_end(&m, 30, 100), 37);
  assert_int_equal(zl_bitmap_run_end(&m, 36, 37), 37);
  assert_int_equal(zl_bitmap_run_end(&m, 37, 100), 100);
  zl_bitmap_clear(&m);
  assert_int_equal(zl_bitmap_run_end(&m, 0, 1000), 1000);
  assert_int_equal(zl_bitmap_run_end(&m, 5, 30), 30);
  zl_bitmap_free(&m);
}

/* A slow reference for the runs: every set block is in exactly one run. */
static void
test_runs_match_test(void **state)
{
  (void)state;
  struct zl_bitmap m = blocks(1001);
  srand(7);
  for (int i = 0; i < 60; i++)
    zl_bitmap_set_blocks(&m, (uint64_t)rand() % 1001, (uint64_t)rand() % 40);
  uint64_t pos = 0, first, count, at = 0;
  while (zl_bitmap_next_run(&m, &pos, &first, &count)) {
    for (; at < first; at++)
      assert_false(zl_bitmap_test(&m, at));
    for (; at < first + count; at++)
      assert_true(zl_bitmap_test(&m, at));
    assert_false(zl_bitmap_test(&m, at));
  }
  for (; at < 1001; at++)
    assert_false(zl_bitmap_test(&m, at));
  for (uint64_t b = 0; b < 1001; b++) {
    uint64_t e = zl_bitmap_run_end(&m, b, 1001), k = b;
    while (k < 1001 && zl_bitmap_test(&m, k) == zl_bitmap_test(&m, b))
      k++;
    assert_int_equal(e, k);
  }
  zl_bitmap_free(&m);
}

static void
test_or(void **state)
{
  (void)state;
  struct zl_bitmap small = blocks(12), big = blocks(20);

  zl_bitmap_set_blocks(&big, 0, 20);
  zl_bitmap_set_blocks(&small, 11, 1);
  zl_bitmap_or(&small, &big); /* only the 12 blocks small covers */
  assert_int_equal(small.bits[0], 0xff);
  assert_int_equal(small.bits[1], 0xf0);

  zl_bitmap_clear(&big);
  zl_bitmap_clear(&small);
  zl_bitmap_set_blocks(&small, 0, 12);
  zl_bitmap_set_blocks(&big, 19, 1);
  zl_bitmap_or(&big, &small); /* keeps what big had */
  for (uint64_t b = 0; b < 20; b++)
    assert_int_equal(zl_bitmap_test(&big, b), b < 12 || b == 19);

  /* bits a view holds past its end do not leak in */
  uint8_t raw[2] = {0x01, 0xff};
  struct zl_bitmap v = zl_bitmap_view(raw, 10, G);
  zl_bitmap_clear(&big);
  zl_bitmap_or(&big, &v);
  assert_int_equal(big.bits[0], 0x01);
  assert_int_equal(big.bits[1], 0xc0);
  zl_bitmap_free(&small);
  zl_bitmap_free(&big);
}

static void
test_view(void **state)
{
  (void)state;
  uint8_t raw[4] = {0};
  struct zl_bitmap v = zl_bitmap_view(raw, 30, G);

  assert_int_equal(v.size, 30 * (uint64_t)G);
  assert_ptr_equal(v.bits, raw);
  zl_bitmap_set_bytes(&v, 2 * G, 7 * G);
  assert_int_equal(raw[0], 0x3f);
  assert_int_equal(raw[1], 0x80);
  zl_bitmap_set_blocks(&v, 28, 10);
  assert_int_equal(raw[3], 0x0c);
}

static void
expect_b64(const struct zl_bitmap *m, uint64_t first, uint64_t n, const char *want)
{
  char *got = zl_bitmap_base64(m, first, n);
  assert_non_null(got);
  assert_string_equal(got, want);
  free(got);
}

static void
test_base64(void **state)
{
  (void)state;
  struct zl_bitmap m = blocks(10);

  zl_bitmap_set_blocks(&m, 0, 1);
  zl_bitmap_set_blocks(&m, 9, 1);
  expect_b64(&m, 0, 10, "gEAAAA=="); /* 80 40, padded to a 32-bit word */
  expect_b64(&m, 0, 0, "");
  expect_b64(&m, 9, 1, "gAAAAA=="); /* unaligned window */
  expect_b64(&m, 1, 8, "AAAAAA==");
  expect_b64(&m, 100, 8, "AAAAAA=="); /* past the end: clear */
  zl_bitmap_free(&m);

  m = blocks(33);
  zl_bitmap_set_blocks(&m, 0, 33);
  expect_b64(&m, 0, 32, "/////w==");
  expect_b64(&m, 0, 33, "/////4AAAAA="); /* a 33rd bit: a second word */
  zl_bitmap_free(&m);

  /* a view's bits past its end encode as clear, aligned or not */
  uint8_t raw[2] = {0x12, 0xff};
  struct zl_bitmap v = zl_bitmap_view(raw, 10, G);
  expect_b64(&v, 0, 16, "EsAAAA==");
  expect_b64(&v, 8, 16, "wAAAAA==");
  expect_b64(&v, 3, 8, "lgAAAA=="); /* blocks 3..10: 1001 0110 (10 is past the end) */
}

/* Decode b64 and compare every bit with the map's blocks [first, first+n). */
static void
check_roundtrip(const struct zl_bitmap *m, uint64_t first, uint64_t n)
{
  char *b64 = zl_bitmap_base64(m, first, n);
  assert_non_null(b64);
  size_t len = strlen(b64), got = BASE64_DECODE_LENGTH(len);
  assert_int_equal(len % 4, 0);
  uint8_t *raw = malloc(got + 1);
  struct base64_decode_ctx ctx;
  base64_decode_init(&ctx);
  assert_true(base64_decode_update(&ctx, &got, raw, len, b64));
  assert_true(base64_decode_final(&ctx));
  assert_int_equal(got % 4, 0);
  assert_int_equal(got, (n + 31) / 32 * 4);
  for (uint64_t i = 0; i < got * 8; i++)
    assert_int_equal((raw[i / 8] >> (7 - i % 8)) & 1,
                     i < n && zl_bitmap_test(m, first + i));
  free(raw);
  free(b64);
}

static void
test_base64_roundtrip(void **state)
{
  (void)state;
  struct zl_bitmap m = blocks(517);
  srand(11);
  for (int i = 0; i < 40; i++)
    zl_bitmap_set_blocks(&m, (uint64_t)rand() % 517, (uint64_t)rand() % 30);
  const uint64_t windows[][2] = {{0, 517}, {0, 512}, {8, 100},  {3, 514},
                                 {511, 6}, {516, 1}, {517, 0},  {400, 200},
                                 {64, 33}, {5, 0},   {0, 1000}, {1, 1}};
  for (size_t i = 0; i < sizeof windows / sizeof windows[0]; i++)
    check_roundtrip(&m, windows[i][0], windows[i][1]);
  zl_bitmap_free(&m);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sizes),
      cmocka_unit_test(test_empty),
      cmocka_unit_test(test_set_blocks_across_bytes),
      cmocka_unit_test(test_set_blocks_long_ranges),
      cmocka_unit_test(test_set_bytes),
      cmocka_unit_test(test_runs),
      cmocka_unit_test(test_runs_match_test),
      cmocka_unit_test(test_or),
      cmocka_unit_test(test_view),
      cmocka_unit_test(test_base64),
      cmocka_unit_test(test_base64_roundtrip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
