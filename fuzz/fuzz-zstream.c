/* fuzz-zstream.c: libFuzzer harness for the send stream parser
 * (src/backend/zfs/stream.c).  Built and run by scripts/fuzz.sh, outside
 * the meson build (it needs clang).
 *
 * Each input is a stream.  It is fed to three parsers:
 *   A: object 1 (a zvol's data object), in pieces whose sizes come from a
 *      PRNG seeded with a hash of the input (so every mutation also moves
 *      the split points);
 *   B: object 1, in one piece;
 *   C: object 5 (a zfs-fuse file), in the same pieces as A.
 * Besides the sanitizers, it checks: A and B agree on the result, the
 * error message, the ranges (count and hash), and the info; no reported
 * range has length 0 or wraps past 2^64 (UINT64_MAX means "to the end");
 * a failed parser refuses further input. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/zfs/stream.h"
#include "util/error.h"

#include "util/banned.h" /* last: after every declaration */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct acc {
  uint64_t n, hash;
};

static int
on_range(void *opaque, uint64_t off, uint64_t len, bool freed)
{
  struct acc *a = opaque;

  if (len == 0 || (len != UINT64_MAX && off + len < off))
    abort();
  a->n++;
  a->hash = (a->hash ^ off) * 0x100000001b3ull;
  a->hash = (a->hash ^ len) * 0x100000001b3ull;
  a->hash = (a->hash ^ freed) * 0x100000001b3ull;
  return 0;
}

struct outcome {
  int rc;
  struct acc acc;
  struct zstream_info info;
  char msg[2048];
};

static void
run(const uint8_t *data, size_t size, uint64_t object, uint64_t seed, bool chunked,
    struct outcome *o)
{
  struct zstream *s = zstream_new(object, 0, on_range, &o->acc);
  size_t i = 0;

  if (!s)
    abort();
  o->rc = 0;
  while (i < size) {
    size_t n = size - i;
    if (chunked) {
      seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
      /* mostly small pieces, sometimes large ones */
      size_t m = seed & 0x100 ? (seed >> 9) % 16 + 1 : (seed >> 9) % 5000 + 1;
      n = m < n ? m : n;
    }
    if (zstream_feed(s, data + i, n) < 0) {
      o->rc = -1;
      snprintf(o->msg, sizeof o->msg, "%s", zl_error_msg());
      if (zstream_feed(s, data, size ? 1 : 0) == 0 && size)
        abort(); /* must refuse further input */
      break;
    }
    i += n;
  }
  if (zstream_finish(s, &o->info) < 0) {
    if (o->rc == 0)
      snprintf(o->msg, sizeof o->msg, "%s", zl_error_msg());
    o->rc = -1;
  }
  zstream_free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static struct outcome a, b, c;
  uint64_t seed = 0xcbf29ce484222325ull ^ size;

  for (size_t i = 0; i < size; i++)
    seed = (seed ^ data[i]) * 0x100000001b3ull;
  seed |= 1;

  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  memset(&c, 0, sizeof c);
  run(data, size, 1, seed, true, &a);
  run(data, size, 1, seed, false, &b);
  run(data, size, 5, seed, true, &c);

  if (a.rc != b.rc || strcmp(a.msg, b.msg) != 0 || a.acc.n != b.acc.n ||
      a.acc.hash != b.acc.hash || a.info.records != b.info.records ||
      a.info.toguid != b.info.toguid) {
    fprintf(stderr, "chunked and whole feeds differ:\n  %d %s\n  %d %s\n", a.rc, a.msg,
            b.rc, b.msg);
    abort();
  }
  if (a.rc == 0 && a.info.bytes != size)
    abort();
  return 0;
}
