/* test-names.c: what a key, a name, a keys entry and a size may be. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/core.h"
#include "util/error.h"

static void
test_keys(void **state)
{
  (void)state;
  const char *good[] = {"a",
                        "0",
                        "3f2a9c1e-1111-4222-8333-444455556666",
                        "inst1.ext.disk0",
                        "inst1.ext.disk0.snap",
                        "A_b+c-d",
                        NULL};
  const char *bad[] = {"",    ".",      "..",       ".hidden", "-rf", "_x",
                       "a/b", "../etc", "a b",      "a\nb",    "a|b", "a:b",
                       "a;b", "$(x)",   "\xc3\xa9", "a\"b",    NULL};
  for (const char **p = good; *p; p++)
    assert_true(zl_key_valid(*p));
  for (const char **p = bad; *p; p++)
    assert_false(zl_key_valid(*p));
  char long_key[202];
  memset(long_key, 'k', 201);
  long_key[201] = '\0';
  assert_false(zl_key_valid(long_key));
  long_key[200] = '\0';
  assert_true(zl_key_valid(long_key));
  assert_int_equal(zl_check_key("../x"), -1);
  assert_int_equal(zl_error_get_kind(), ZL_ERR_INVALID);
  assert_non_null(strstr(zl_error_msg(), "invalid volume key"));
}

static void
test_names(void **state)
{
  (void)state;
  assert_int_equal(zl_check_name("Bob's \"disk\" $(x) ../y", "name"), 0);
  assert_int_equal(zl_check_name("\xe2\x9c\x93 unicode", "name"), 0);
  /* names are data: any character (Ganeti disk names, xapi name labels) */
  assert_int_equal(zl_check_name("two\nlines", "name"), 0);
  assert_int_equal(zl_check_name("tab\there \x01\x1b[31m del\x7f \xc2\x85", "name"), 0);
  /* ... that JSON can carry: valid UTF-8 */
  const char *bad[] = {"\xff",
                       "a\x80",
                       "\xc0\xaf" /* overlong '/' */,
                       "\xed\xa0\x80" /* a surrogate */,
                       "\xf4\x90\x80\x80" /* > U+10FFFF */,
                       "\xe2\x9c" /* cut short */};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(zl_check_name(bad[i], "name"), -1);
    assert_non_null(strstr(zl_error_msg(), "not valid UTF-8"));
    assert_int_equal(zl_check_description(bad[i], "d"), -1);
  }
  assert_int_equal(zl_check_name("\xf0\x9f\x92\xbe \xef\xbf\xbd", "name"), 0);
  assert_int_equal(zl_check_description("a\nb\tc", "d"), 0);
  assert_int_equal(zl_check_description("esc\x1b", "d"), -1);
  assert_non_null(strstr(zl_error_msg(), "control character (0x1b"));
}

static void
test_keys_entries(void **state)
{
  (void)state;
  assert_int_equal(zl_check_keys_entry("vdi-type", "user"), 0);
  assert_int_equal(zl_check_keys_entry("clone-on-boot", "k"), 0);
  assert_int_equal(zl_check_keys_entry("_sm_config_host_OpaqueRef:x", "RW"), 0);
  assert_int_equal(zl_check_keys_entry("tags anything at all", "t"), 0);
  assert_int_equal(zl_check_keys_entry("tags", "t"), -1);
  assert_int_equal(zl_check_keys_entry("_sm_config_", "t"), -1);
  assert_int_equal(zl_check_keys_entry("unknown", "t"), -1);
  assert_non_null(strstr(zl_error_msg(), "unknown key 'unknown'"));
  assert_int_equal(zl_check_keys_entry("is_a_snapshot", "maybe"), -1);
  assert_int_equal(zl_check_keys_entry("vdi-type", "Bad Type"), -1);
  assert_int_equal(zl_check_keys_entry("tagsa\nb", "t"), -1);
  assert_int_equal(zl_check_keys_entry("unknown", NULL), -1);
  assert_int_equal(zl_check_keys_entry("tagsx", NULL), 0);
}

static void
test_round_size(void **state)
{
  int64_t out;
  (void)state;
  assert_int_equal(zl_round_size(0, 1 << 20, &out), 0);
  assert_int_equal(out, 0);
  assert_int_equal(zl_round_size(1, 1 << 20, &out), 0);
  assert_int_equal(out, 1 << 20);
  assert_int_equal(zl_round_size(1 << 20, 1 << 20, &out), 0);
  assert_int_equal(out, 1 << 20);
  assert_int_equal(zl_round_size(-1, 1 << 20, &out), -1);
  assert_int_equal(zl_error_get_kind(), ZL_ERR_SIZE);
  assert_int_equal(zl_round_size(INT64_MAX, 1 << 20, &out), -1);
  assert_int_equal(zl_error_get_kind(), ZL_ERR_SIZE);
  assert_int_equal(zl_round_size(INT64_MAX - (1 << 20) + 1, 1 << 20, &out), 0);
  assert_true(out > 0 && out % (1 << 20) == 0);
}

/* Sizes at INT64_MAX - k for several granularities: rounded exactly (the
 * reference is computed in uint64_t, which cannot overflow here) or refused
 * as a size error, never an overflow (UBSan halts the test on one). */
static void
test_round_size_near_int64_max(void **state)
{
  const int64_t grans[] = {1,
                           2,
                           512,
                           4096,
                           65536,
                           1 << 20,
                           INT64_C(1) << 30,
                           INT64_C(1) << 40,
                           INT64_MAX / 3,
                           INT64_MAX};
  (void)state;
  for (size_t g = 0; g < sizeof grans / sizeof grans[0]; g++) {
    const int64_t gran = grans[g];
    const int64_t big = gran > INT64_MAX / 4 ? 0 : gran; /* 2 * gran + 1 fits */
    const int64_t ks[] = {0,        1,   2,       3,           gran - 2, gran - 1,
                          gran / 2, big, big + 1, 2 * big - 1, 2 * big,  2 * big + 1};
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) {
      if (ks[i] < 0)
        continue;
      const int64_t size = INT64_MAX - ks[i];
      const uint64_t rem = (uint64_t)size % (uint64_t)gran;
      const uint64_t want = (uint64_t)size + (rem ? (uint64_t)gran - rem : 0);
      int64_t out = -1;
      int r = zl_round_size(size, gran, &out);
      if (want > (uint64_t)INT64_MAX) {
        assert_int_equal(r, -1);
        assert_int_equal(zl_error_get_kind(), ZL_ERR_SIZE);
      } else {
        assert_int_equal(r, 0);
        assert_true((uint64_t)out == want);
      }
    }
  }
  int64_t out;
  assert_int_equal(zl_round_size(5, 0, &out), -1); /* no granularity: refused */
  assert_int_equal(zl_round_size(5, -4, &out), -1);
  assert_int_equal(zl_round_size(INT64_MIN, 512, &out), -1);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_keys),
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_keys_entries),
      cmocka_unit_test(test_round_size),
      cmocka_unit_test(test_round_size_near_int64_max),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
