/* test-zfs-stream.c: the zfs send stream parser (backend/zfs/stream.c).
 *
 * Two sources of streams:
 *  - real zfs-fuse streams in tests/unit/data/ (made by make-streams.sh,
 *    which also checked them against zstreamdump -v; the expected ranges
 *    in NAME.ranges come from zstreamdump, not from this parser);
 *  - streams built here, in either byte order, with or without per-record
 *    checksums, for the record types and fields zfs-fuse never emits
 *    (WRITE_EMBEDDED, SPILL, OBJECT_RANGE, REDACT, compressed WRITEs,
 *    OBJECT maxblkid, feature flags).  The builder below has its own
 *    Fletcher-4 and layout code, written from reference/zfs.md §3. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/zfs/stream.h"
#include "util/error.h"

#define END_ UINT64_MAX

/* ---- collecting ranges ------------------------------------------------------- */

struct range {
  uint64_t off, len;
  bool freed;
};

struct ranges {
  struct range *v;
  size_t n, cap;
  size_t fail_at; /* make the callback fail on this range (1-based); 0: never */
};

static int
collect(void *opaque, uint64_t off, uint64_t len, bool freed)
{
  struct ranges *r = opaque;

  if (r->fail_at && r->n + 1 == r->fail_at) {
    zl_error(EIO, "callback refused range %" PRIu64, off);
    return -1;
  }
  if (r->n == r->cap) {
    r->cap = r->cap ? 2 * r->cap : 16;
    r->v = realloc(r->v, r->cap * sizeof *r->v);
    assert_non_null(r->v);
  }
  r->v[r->n++] = (struct range){off, len, freed};
  return 0;
}

static void
ranges_free(struct ranges *r)
{
  free(r->v);
  memset(r, 0, sizeof *r);
}

static void
print_ranges(const char *what, const struct ranges *r)
{
  fprintf(stderr, "%s (%zu):\n", what, r->n);
  for (size_t i = 0; i < r->n; i++)
    fprintf(stderr, "  %c %" PRIu64 " %" PRIu64 "\n", r->v[i].freed ? 'F' : 'W',
            r->v[i].off, r->v[i].len);
}

static bool
ranges_equal(const struct ranges *a, const struct ranges *b)
{
  if (a->n != b->n)
    return false;
  for (size_t i = 0; i < a->n; i++)
    if (a->v[i].off != b->v[i].off || a->v[i].len != b->v[i].len ||
        a->v[i].freed != b->v[i].freed)
      return false;
  return true;
}

static void
assert_ranges(const struct ranges *got, const struct ranges *want)
{
  if (!ranges_equal(got, want)) {
    print_ranges("got", got);
    print_ranges("want", want);
    fail_msg("ranges differ");
  }
}

/* ---- running the parser -------------------------------------------------------- */

/* How to cut the input: whole, byte by byte, or pseudo-random pieces. */
enum chunking { WHOLE, BYTES, RANDOM };

struct result {
  int feed_rc;   /* -1 if a feed failed */
  int finish_rc; /* -1 if finish failed (also after a feed failure) */
  char msg[512]; /* the error */
  struct zstream_info info;
};

static struct result
run(const uint8_t *p, size_t len, uint64_t object, uint64_t fromguid, enum chunking how,
    struct ranges *out)
{
  struct result res = {0};
  struct zstream *s = zstream_new(object, fromguid, collect, out);
  uint32_t seed = 12345;
  size_t i = 0;

  assert_non_null(s);
  while (i < len) {
    size_t n = len - i;
    if (how == BYTES)
      n = 1;
    else if (how == RANDOM) {
      seed = seed * 1103515245 + 12345;
      size_t m = (seed >> 16) % 700 + 1;
      n = m < n ? m : n;
    }
    if (zstream_feed(s, p + i, n) < 0) {
      res.feed_rc = -1;
      snprintf(res.msg, sizeof res.msg, "%s", zl_error_msg());
      /* refuses further input, with the same error */
      assert_int_equal(zstream_feed(s, p, 1), -1);
      assert_string_equal(zl_error_msg(), res.msg);
      break;
    }
    i += n;
  }
  res.finish_rc = zstream_finish(s, &res.info);
  if (res.finish_rc < 0 && !res.feed_rc)
    snprintf(res.msg, sizeof res.msg, "%s", zl_error_msg());
  if (res.feed_rc)
    assert_int_equal(res.finish_rc, -1);
  zstream_free(s);
  return res;
}

static void
assert_msg(const struct result *r, const char *needle)
{
  assert_int_equal(r->finish_rc, -1);
  if (!strstr(r->msg, needle))
    fail_msg("error \"%s\" does not contain \"%s\"", r->msg, needle);
}

/* ---- a stream builder ------------------------------------------------------------ */

#define HDR 312

struct sb {
  uint8_t *buf;
  size_t len, cap;
  bool swap;  /* write in the non-native byte order */
  bool cksum; /* store per-record checksums (else zeros, as zfs-fuse) */
  uint64_t ck[4];
  size_t rec[64]; /* start of each record */
  uint32_t type[64];
  int nrec;
};

static void
sb_fold(struct sb *b, const uint8_t *p, size_t len)
{
  for (size_t i = 0; i + 4 <= len; i += 4) {
    uint32_t w;
    memcpy(&w, p + i, 4);
    if (b->swap)
      w = __builtin_bswap32(w);
    b->ck[0] += w;
    b->ck[1] += b->ck[0];
    b->ck[2] += b->ck[1];
    b->ck[3] += b->ck[2];
  }
}

static void
sb_append(struct sb *b, const void *p, size_t len)
{
  if (b->len + len > b->cap) {
    b->cap = (b->len + len) * 2;
    b->buf = realloc(b->buf, b->cap);
    assert_non_null(b->buf);
  }
  if (len)
    memcpy(b->buf + b->len, p, len);
  b->len += len;
}

static void
h64(const struct sb *b, uint8_t *h, unsigned off, uint64_t v)
{
  if (b->swap)
    v = __builtin_bswap64(v);
  memcpy(h + off, &v, 8);
}

static void
h32(const struct sb *b, uint8_t *h, unsigned off, uint32_t v)
{
  if (b->swap)
    v = __builtin_bswap32(v);
  memcpy(h + off, &v, 4);
}

/* Append a record: header h (type at 0 already set by the caller through
 * sb_hdr) and payload of plen bytes (a pattern if p is NULL). */
static void
sb_emit(struct sb *b, uint8_t *h, uint32_t type, const void *p, size_t plen)
{
  assert_true(b->nrec < 64);
  b->type[b->nrec] = type;
  b->rec[b->nrec++] = b->len;
  if (type == 5 /* END */)
    for (int i = 0; i < 4; i++)
      h64(b, h, 8 + 8 * i, b->ck[i]);
  sb_fold(b, h, 280);
  if (b->cksum && type != 0)
    for (int i = 0; i < 4; i++)
      h64(b, h, 280 + 8 * i, b->ck[i]);
  sb_fold(b, h + 280, 32);
  sb_append(b, h, HDR);
  uint8_t *pl = malloc(plen ? plen : 1);
  assert_non_null(pl);
  for (size_t i = 0; i < plen; i++)
    pl[i] = p ? ((const uint8_t *)p)[i] : (uint8_t)(i * 7 + b->len);
  sb_append(b, pl, plen);
  sb_fold(b, pl, plen);
  free(pl);
}

static void
sb_hdr(const struct sb *b, uint8_t *h, uint32_t type, uint32_t payloadlen)
{
  memset(h, 0, HDR);
  h32(b, h, 0, type);
  h32(b, h, 4, payloadlen);
}

#define SUBSTREAM 1
#define GUID_TO   0x1111222233334444ull
#define GUID_FROM 0x5555666677778888ull

static void
b_begin(struct sb *b, uint64_t versioninfo, uint32_t ostype, uint64_t toguid,
        uint64_t fromguid, uint32_t plen)
{
  uint8_t h[HDR];
  sb_hdr(b, h, 0, plen);
  h64(b, h, 8, 0x2F5BACBACull);
  h64(b, h, 16, versioninfo);
  h64(b, h, 24, 1700000000);
  h32(b, h, 32, ostype);
  h64(b, h, 40, toguid);
  h64(b, h, 48, fromguid);
  strcpy((char *)h + 56, "pool/vol@b");
  sb_emit(b, h, 0, NULL, plen);
}

static void
b_object(struct sb *b, uint64_t obj, uint32_t blksz, uint32_t bonuslen,
         uint32_t raw_bonuslen, uint64_t maxblkid)
{
  uint8_t h[HDR];
  sb_hdr(b, h, 1, 0);
  h64(b, h, 8, obj);
  h32(b, h, 16, 23);
  h32(b, h, 24, blksz);
  h32(b, h, 28, bonuslen);
  h32(b, h, 36, raw_bonuslen);
  h64(b, h, 40, GUID_TO);
  h64(b, h, 56, maxblkid);
  sb_emit(b, h, 1, NULL, raw_bonuslen ? raw_bonuslen : (bonuslen + 7) / 8 * 8);
}

static void
b_freeobjects(struct sb *b, uint64_t first, uint64_t num)
{
  uint8_t h[HDR];
  sb_hdr(b, h, 2, 0);
  h64(b, h, 8, first);
  h64(b, h, 16, num);
  h64(b, h, 24, GUID_TO);
  sb_emit(b, h, 2, NULL, 0);
}

static void
b_write(struct sb *b, uint64_t obj, uint64_t off, uint64_t lsize, uint8_t comp,
        uint64_t csize)
{
  uint8_t h[HDR];
  sb_hdr(b, h, 3, 0);
  h64(b, h, 8, obj);
  h32(b, h, 16, 23);
  h64(b, h, 24, off);
  h64(b, h, 32, lsize);
  h64(b, h, 40, GUID_TO);
  h[48] = 7;
  h[50] = comp;
  h64(b, h, 96, csize);
  sb_emit(b, h, 3, NULL, comp ? csize : lsize);
}

static void
b_free(struct sb *b, uint64_t obj, uint64_t off, uint64_t len)
{
  uint8_t h[HDR];
  sb_hdr(b, h, 4, 0);
  h64(b, h, 8, obj);
  h64(b, h, 16, off);
  h64(b, h, 24, len);
  h64(b, h, 32, GUID_TO);
  sb_emit(b, h, 4, NULL, 0);
}

static void
b_end(struct sb *b, uint64_t toguid)
{
  uint8_t h[HDR];
  sb_hdr(b, h, 5, 0);
  h64(b, h, 40, toguid);
  sb_emit(b, h, 5, NULL, 0);
}

static void
b_byref(struct sb *b, uint64_t obj, uint64_t off, uint64_t len)
{
  uint8_t h[HDR];
  sb_hdr(b, h, 6, 0);
  h64(b, h, 8, obj);
  h64(b, h, 16, off);
  h64(b, h, 24, len);
  h64(b, h, 32, GUID_TO);
  h64(b, h, 40, GUID_TO);
  h64(b, h, 48, obj);
  h64(b, h, 56, 0);
  sb_emit(b, h, 6, NULL, 0);
}

static void
b_spill(struct sb *b, uint64_t obj, uint64_t len, uint64_t csize)
{
  uint8_t h[HDR];
  sb_hdr(b, h, 7, 0);
  h64(b, h, 8, obj);
  h64(b, h, 16, len);
  h64(b, h, 24, GUID_TO);
  h64(b, h, 40, csize);
  sb_emit(b, h, 7, NULL, csize ? csize : len);
}

static void
b_embedded(struct sb *b, uint64_t obj, uint64_t off, uint64_t len, uint32_t psize)
{
  uint8_t h[HDR];
  sb_hdr(b, h, 8, 0);
  h64(b, h, 8, obj);
  h64(b, h, 16, off);
  h64(b, h, 24, len);
  h64(b, h, 32, GUID_TO);
  h32(b, h, 48, (uint32_t)len);
  h32(b, h, 52, psize);
  sb_emit(b, h, 8, NULL, (psize + 7) / 8 * 8);
}

static void
b_object_range(struct sb *b, uint64_t first, uint64_t num)
{
  uint8_t h[HDR];
  sb_hdr(b, h, 9, 0);
  h64(b, h, 8, first);
  h64(b, h, 16, num);
  h64(b, h, 24, GUID_TO);
  sb_emit(b, h, 9, NULL, 0);
}

static void
b_redact(struct sb *b, uint64_t obj, uint64_t off, uint64_t len)
{
  uint8_t h[HDR];
  sb_hdr(b, h, 10, 0);
  h64(b, h, 8, obj);
  h64(b, h, 16, off);
  h64(b, h, 24, len);
  h64(b, h, 32, GUID_TO);
  sb_emit(b, h, 10, NULL, 0);
}

static void
sb_free(struct sb *b)
{
  free(b->buf);
  memset(b, 0, sizeof *b);
}

/* Feature flags (versioninfo bits 2+). */
#define FEAT(bit)     ((uint64_t)1 << ((bit) + 2))
#define FEATS_OPENZFS (FEAT(16) | FEAT(17) | FEAT(19) | FEAT(22) | FEAT(23) | FEAT(25))

/* Every record type a CBT stream can hold (an OpenZFS 2.x-like zvol
 * stream), with distractions for objects 2 and 7. */
static void
build_all_types(struct sb *b)
{
  b_begin(b, SUBSTREAM | FEATS_OPENZFS, 3, GUID_TO, GUID_FROM, 13); /* odd nvlist size */
  b_object(b, 1, 4096, 0, 0, 63);
  b_free(b, 1, 64 * 4096, END_); /* past the end: not reported */
  b_object(b, 2, 512, 12, 0, 0);
  b_free(b, 2, 512, END_); /* past the end of object 2 */
  b_write(b, 1, 0, 4096, 0, 0);
  b_write(b, 1, 8192, 4096, 15 /* lz4 */, 1024);
  b_write(b, 2, 0, 512, 0, 0);
  b_embedded(b, 1, 12288, 4096, 50);
  b_byref(b, 1, 16384, 4096);
  b_free(b, 1, 20480, 8192);
  b_free(b, 2, 0, 512);
  b_write(b, 7, 0, 4096, 0, 0);
  b_spill(b, 1, 512, 0);
  b_spill(b, 1, 1024, 300);
  b_object_range(b, 0, 32);
  b_freeobjects(b, 3, 10);
  b_object(b, 1, 8192, 0, 40, 31); /* block size change, raw bonus */
  b_write(b, 1, 65536, 8192, 0, 0);
  b_free(b, 1, 1 << 20, END_); /* not right after OBJECT: reported */
  b_freeobjects(b, 0, 2);      /* objects 0 and 1 deleted */
  b_end(b, GUID_TO);
}

static const struct range all_types_obj1[] = {
    {0, 4096, false},      {8192, 4096, false}, {12288, 4096, false},
    {16384, 4096, false},  {20480, 8192, true}, {65536, 8192, false},
    {1 << 20, END_, true}, {0, END_, true},
};
static const struct range all_types_obj2[] = {
    {0, 512, false},
    {0, 512, true},
};

static struct ranges
want(const struct range *v, size_t n)
{
  return (struct ranges){(struct range *)v, n, n, 0};
}

/* With ZSTREAM_SEED_DIR set, write the stream there (the fuzzer's seeds in
 * fuzz/seeds/zstream/ come from this). */
static void
maybe_dump(const char *name, const struct sb *b)
{
  const char *dir = getenv("ZSTREAM_SEED_DIR");
  char path[512];
  FILE *f;

  if (!dir)
    return;
  snprintf(path, sizeof path, "%s/%s.zstream", dir, name);
  assert_non_null(f = fopen(path, "wb"));
  assert_int_equal(fwrite(b->buf, 1, b->len, f), b->len);
  assert_int_equal(fclose(f), 0);
}

/* ---- tests: hand-built streams ------------------------------------------------- */

static void
test_all_types(void **state)
{
  (void)state;
  for (int variant = 0; variant < 4; variant++) {
    struct sb b = {.swap = variant & 1, .cksum = variant & 2};
    char name[64];
    build_all_types(&b);
    snprintf(name, sizeof name, "all-types-%s-%s", b.swap ? "swapped" : "native",
             b.cksum ? "cksum" : "nocksum");
    maybe_dump(name, &b);
    for (enum chunking how = WHOLE; how <= RANDOM; how++) {
      struct ranges r1 = {0}, r2 = {0}, r5 = {0};
      struct result res = run(b.buf, b.len, 1, GUID_FROM, how, &r1);
      if (res.finish_rc)
        fail_msg("variant %d: %s", variant, res.msg);
      struct ranges w1 =
          want(all_types_obj1, sizeof all_types_obj1 / sizeof *all_types_obj1);
      assert_ranges(&r1, &w1);
      assert_int_equal(res.info.fromguid, GUID_FROM);
      assert_int_equal(res.info.toguid, GUID_TO);
      assert_int_equal(res.info.objset_type, 3);
      assert_int_equal(res.info.records, b.nrec);
      assert_int_equal(res.info.bytes, b.len);

      res = run(b.buf, b.len, 2, 0, how, &r2);
      assert_int_equal(res.finish_rc, 0);
      struct ranges w2 =
          want(all_types_obj2, sizeof all_types_obj2 / sizeof *all_types_obj2);
      assert_ranges(&r2, &w2);

      res = run(b.buf, b.len, 100, 0, how, &r5); /* an object the stream does not touch */
      assert_int_equal(res.finish_rc, 0);
      assert_int_equal(r5.n, 0);
      ranges_free(&r1);
      ranges_free(&r2);
      ranges_free(&r5);
    }
    sb_free(&b);
  }
}

/* Every prefix of a valid stream is refused by finish (and never crashes). */
static void
test_truncated_everywhere(void **state)
{
  (void)state;
  for (int variant = 0; variant < 4; variant++) {
    struct sb b = {.swap = variant & 1, .cksum = variant & 2};
    build_all_types(&b);
    for (size_t cut = 0; cut < b.len; cut++) {
      struct ranges r = {0};
      struct result res = run(b.buf, cut, 1, GUID_FROM, cut % 3 ? WHOLE : RANDOM, &r);
      assert_int_equal(res.feed_rc, 0);
      assert_msg(&res, "truncated");
      ranges_free(&r);
    }
    sb_free(&b);
  }
}

/* A message for a cut inside a WRITE payload names the record and offset. */
static void
test_truncated_message(void **state)
{
  struct sb b = {0};
  struct ranges r = {0};
  char want_msg[200];
  (void)state;

  build_all_types(&b);
  size_t wr = b.rec[5]; /* the first WRITE */
  assert_int_equal(b.type[5], 3);
  struct result res = run(b.buf, wr + HDR + 100, 1, 0, WHOLE, &r);
  snprintf(want_msg, sizeof want_msg,
           "zfs send stream: truncated in the payload of WRITE record at byte %zu", wr);
  assert_msg(&res, want_msg);
  ranges_free(&r);

  res = run(b.buf, wr + 100, 1, 0, WHOLE, &r);
  snprintf(want_msg, sizeof want_msg,
           "truncated in the header of WRITE record at byte %zu", wr);
  assert_msg(&res, want_msg);
  ranges_free(&r);

  res = run(b.buf, b.rec[b.nrec - 1], 1, 0, WHOLE, &r);
  assert_msg(&res, "before the END record");
  ranges_free(&r);

  res = run(b.buf, 0, 1, 0, WHOLE, &r);
  assert_msg(&res, "truncated: the stream is empty");
  ranges_free(&r);
  sb_free(&b);
}

/* A bit flipped in any header byte is refused: with per-record checksums
 * by the record itself (or the next one, for BEGIN), without them by the
 * END checksum at the latest.  Ranges reported before the refusal are
 * what the caller must discard.  The one exception: without per-record
 * checksums nothing covers the END header itself, whose bytes other than
 * type, checksums and toguid ([4, 8) and [48, 280)) are ignored (as OpenZFS does): a flip
 * there must give the same ranges. */
static void
test_bit_flips(void **state)
{
  (void)state;
  for (int variant = 0; variant < 4; variant++) {
    struct sb b = {.swap = variant & 1, .cksum = variant & 2};
    build_all_types(&b);
    for (int rec = 0; rec < b.nrec; rec++) {
      for (unsigned byte = 0; byte < HDR; byte++) {
        for (unsigned bit = 0; bit < 8; bit += variant == 3 ? 1 : 3) {
          struct ranges r = {0};
          size_t at = b.rec[rec] + byte;
          b.buf[at] ^= (uint8_t)(1u << bit);
          struct result res = run(b.buf, b.len, 1, GUID_FROM, WHOLE, &r);
          b.buf[at] ^= (uint8_t)(1u << bit);
          bool ignored = !b.cksum && b.type[rec] == 5 &&
                         ((byte >= 48 && byte < 280) || (byte >= 4 && byte < 8));
          if (res.finish_rc == 0 && !ignored)
            fail_msg("variant %d: flip of bit %u at byte %zu (record %d, header byte %u) "
                     "accepted",
                     variant, bit, at, rec, byte);
          if (ignored) {
            if (res.finish_rc)
              fail_msg("flip in ignored END byte %u refused: %s", byte, res.msg);
            struct ranges w1 =
                want(all_types_obj1, sizeof all_types_obj1 / sizeof *all_types_obj1);
            assert_ranges(&r, &w1);
          }
          /* BEGIN's payload length is checked by the next record's checksum,
           * unless the payload then swallows the rest: truncated. */
          if (b.cksum && !res.feed_rc && !(rec == 0 && byte >= 4 && byte < 8))
            fail_msg("variant %d: flip at byte %zu (record %d) only caught at finish: %s",
                     variant, at, rec, res.msg);
          ranges_free(&r);
        }
      }
    }
    sb_free(&b);
  }
}

/* Payload bytes are checksummed too: a flipped payload bit is caught by
 * the END checksum even without per-record checksums. */
static void
test_payload_flip(void **state)
{
  struct sb b = {0};
  struct ranges r = {0};
  (void)state;

  build_all_types(&b);
  size_t at = b.rec[5] + HDR + 10; /* in the first WRITE's payload */
  b.buf[at] ^= 0x10;
  struct result res = run(b.buf, b.len, 1, 0, BYTES, &r);
  assert_msg(&res, "stream checksum mismatch in END record at byte");
  ranges_free(&r);
  sb_free(&b);

  b = (struct sb){.cksum = true};
  build_all_types(&b);
  b.buf[at] ^= 0x10;
  res = run(b.buf, b.len, 1, 0, WHOLE, &r);
  char want_msg[100];
  snprintf(want_msg, sizeof want_msg, "checksum mismatch in WRITE record at byte %zu",
           b.rec[6]);
  assert_msg(&res, want_msg);
  ranges_free(&r);
  sb_free(&b);
}

/* The FREE after OBJECT(object) is dropped only when it is the very next
 * record and runs from (maxblkid + 1) * blksz to the end. */
static void
test_free_after_object(void **state)
{
  (void)state;
  struct {
    uint64_t maxblkid, free_off, free_len;
    bool between, reported;
  } cases[] = {
      {63, 64 * 4096, END_, false, false},    /* the rule */
      {0, 4096, END_, false, false},          /* empty or one-block object */
      {63, 64 * 4096, END_, true, true},      /* another record in between */
      {63, 60 * 4096, END_, false, true},     /* starts elsewhere */
      {63, 64 * 4096, 4096, false, true},     /* finite */
      {UINT64_MAX, 0, END_, false, true},     /* (maxblkid + 1) overflows */
      {UINT64_MAX / 2, 0, END_, false, true}, /* * blksz overflows */
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    struct sb b = {.cksum = true};
    struct ranges r = {0};
    b_begin(&b, SUBSTREAM, 3, GUID_TO, GUID_FROM, 0);
    b_object(&b, 1, 4096, 0, 0, cases[i].maxblkid);
    if (cases[i].between)
      b_object(&b, 2, 512, 0, 0, 0);
    b_free(&b, 1, cases[i].free_off, cases[i].free_len);
    b_end(&b, GUID_TO);
    if (i == 0)
      maybe_dump("free-after-object", &b);
    struct result res = run(b.buf, b.len, 1, GUID_FROM, WHOLE, &r);
    assert_int_equal(res.finish_rc, 0);
    assert_int_equal(r.n, cases[i].reported ? 1 : 0);
    if (r.n) {
      assert_int_equal(r.v[0].off, cases[i].free_off);
      assert_int_equal(r.v[0].len, cases[i].free_len);
      assert_true(r.v[0].freed);
    }
    ranges_free(&r);
    sb_free(&b);
  }

  /* OBJECT of another object does not arm the rule for ours. */
  struct sb b = {0};
  struct ranges r = {0};
  b_begin(&b, SUBSTREAM, 3, GUID_TO, GUID_FROM, 0);
  b_object(&b, 2, 4096, 0, 0, 0);
  b_free(&b, 1, 4096, END_);
  b_end(&b, GUID_TO);
  struct result res = run(b.buf, b.len, 1, 0, WHOLE, &r);
  assert_int_equal(res.finish_rc, 0);
  assert_int_equal(r.n, 1);
  ranges_free(&r);
  sb_free(&b);
}

static void
test_freeobjects(void **state)
{
  (void)state;
  struct {
    uint64_t first, num;
    bool covers;
  } cases[] = {
      {5, 1, true},  {0, 6, true},  {5, UINT64_MAX, true},           {6, 10, false},
      {0, 5, false}, {4, 1, false}, {UINT64_MAX, UINT64_MAX, false}, {0, 0, false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    struct sb b = {0};
    struct ranges r = {0};
    b_begin(&b, SUBSTREAM, 2, GUID_TO, GUID_FROM, 0);
    b_freeobjects(&b, cases[i].first, cases[i].num);
    b_end(&b, GUID_TO);
    struct result res = run(b.buf, b.len, 5, GUID_FROM, WHOLE, &r);
    assert_int_equal(res.finish_rc, 0);
    assert_int_equal(r.n, cases[i].covers ? 1 : 0);
    if (r.n) {
      assert_int_equal(r.v[0].off, 0);
      assert_int_equal(r.v[0].len, END_);
      assert_true(r.v[0].freed);
    }
    ranges_free(&r);
    sb_free(&b);
  }
}

/* A stream with a BEGIN and END only, with a given BEGIN. */
static struct result
begin_only(uint64_t vi, uint32_t ostype, uint64_t fromguid, uint64_t expect, bool swap)
{
  struct sb b = {.swap = swap};
  struct ranges r = {0};
  b_begin(&b, vi, ostype, GUID_TO, fromguid, 0);
  b_end(&b, GUID_TO);
  struct result res = run(b.buf, b.len, 1, expect, WHOLE, &r);
  ranges_free(&r);
  sb_free(&b);
  return res;
}

static void
test_begin_checks(void **state)
{
  struct result res;
  (void)state;

  for (int swap = 0; swap < 2; swap++) {
    res = begin_only(SUBSTREAM, 3, GUID_FROM, GUID_FROM, swap);
    assert_int_equal(res.finish_rc, 0);
    /* every known feature is accepted */
    res = begin_only(SUBSTREAM | FEAT(0) | FEAT(1) | FEAT(2) | FEATS_OPENZFS | FEAT(24) |
                         FEAT(26) | FEAT(27) | FEAT(28) | FEAT(29),
                     2, GUID_FROM, 0, swap);
    assert_int_equal(res.finish_rc, 0);

    res = begin_only(2, 3, GUID_FROM, 0, swap);
    assert_msg(&res, "compound stream (from zfs send -R, -I, -p, -h or -b)");
    res = begin_only(0, 3, GUID_FROM, 0, swap);
    assert_msg(&res, "header type 0 (want 1)");
    res = begin_only(3, 3, GUID_FROM, 0, swap);
    assert_msg(&res, "header type 3");
    for (int bit = 3; bit < 62; bit++) {
      if (bit == 16 || bit == 17 || (bit >= 19 && bit <= 29))
        continue;
      res = begin_only(SUBSTREAM | FEAT(bit), 3, GUID_FROM, 0, swap);
      assert_msg(&res, "unknown feature flags");
    }
    res = begin_only(SUBSTREAM | FEAT(21), 3, GUID_FROM, 0, swap);
    assert_msg(&res, "redacted stream");
    res = begin_only(SUBSTREAM | FEAT(20), 3, GUID_FROM, 0, swap);
    assert_msg(&res, "resumed stream");
    res = begin_only(SUBSTREAM, 1, GUID_FROM, 0, swap);
    assert_msg(&res, "objset type 1 is neither");

    res = begin_only(SUBSTREAM, 3, GUID_FROM, 0x42, swap);
    assert_msg(&res,
               "incremental stream from guid 0x5555666677778888, expected from guid "
               "0x0000000000000042");
    res = begin_only(SUBSTREAM, 3, 0, 0x42, swap);
    assert_msg(&res,
               "full stream (no fromguid), expected an incremental stream from guid "
               "0x0000000000000042");
    res = begin_only(SUBSTREAM, 3, 0, 0, swap); /* full stream, not checked */
    assert_int_equal(res.finish_rc, 0);
    assert_int_equal(res.info.fromguid, 0);
  }
}

static void
test_bad_magic(void **state)
{
  struct sb b = {0};
  struct ranges r = {0};
  (void)state;

  b_begin(&b, SUBSTREAM, 3, GUID_TO, GUID_FROM, 0);
  b_end(&b, GUID_TO);
  b.buf[8] ^= 1;
  struct result res = run(b.buf, b.len, 1, 0, BYTES, &r);
  assert_msg(&res, "bad magic 0x00000002f5bacbad at byte 8 (not a zfs send stream)");
  ranges_free(&r);

  /* something else entirely */
  static const char text[400] = "#!/bin/sh\necho this is not a send stream\n";
  res = run((const uint8_t *)text, sizeof text, 1, 0, WHOLE, &r);
  assert_msg(&res, "not a zfs send stream");
  ranges_free(&r);

  /* right magic, but the first record is not a BEGIN */
  b.buf[8] ^= 1;
  b.buf[0] = 3;
  res = run(b.buf, b.len, 1, 0, WHOLE, &r);
  assert_msg(&res, "first record is WRITE (type 3), not BEGIN");
  ranges_free(&r);
  sb_free(&b);
}

static void
test_end_checks(void **state)
{
  struct sb b = {0};
  struct ranges r = {0};
  (void)state;

  b_begin(&b, SUBSTREAM, 3, GUID_TO, GUID_FROM, 0);
  b_write(&b, 1, 0, 4096, 0, 0);
  b_end(&b, GUID_TO + 1);
  struct result res = run(b.buf, b.len, 1, 0, WHOLE, &r);
  char want_msg[200];
  snprintf(want_msg, sizeof want_msg,
           "END record at byte %zu has toguid 0x1111222233334445, BEGIN had "
           "0x1111222233334444",
           b.rec[2]);
  assert_msg(&res, want_msg);
  ranges_free(&r);
  sb_free(&b);

  /* zeroed END checksum: checked all the same */
  b_begin(&b, SUBSTREAM, 3, GUID_TO, GUID_FROM, 0);
  b_end(&b, GUID_TO);
  memset(b.buf + b.rec[1] + 8, 0, 32);
  res = run(b.buf, b.len, 1, 0, WHOLE, &r);
  assert_msg(&res, "stream checksum mismatch in END record at byte 312");
  ranges_free(&r);
  sb_free(&b);

  /* trailing data after END (e.g. a second stream) */
  b_begin(&b, SUBSTREAM, 3, GUID_TO, GUID_FROM, 0);
  b_end(&b, GUID_TO);
  size_t one = b.len;
  b_begin(&b, SUBSTREAM, 3, GUID_TO, GUID_FROM, 0);
  res = run(b.buf, b.len, 1, 0, WHOLE, &r);
  assert_int_equal(res.feed_rc, -1);
  char m[100];
  snprintf(m, sizeof m, "unexpected data after the END record, at byte %zu", one);
  assert_msg(&res, m);
  ranges_free(&r);
  sb_free(&b);
}

/* Corrupt records inside an otherwise valid stream. */
static void
test_bad_records(void **state)
{
  (void)state;
  for (int i = 0; i < 14; i++) {
    struct sb b = {.cksum = i & 1};
    struct ranges r = {0};
    const char *msg = NULL;
    uint8_t h[HDR];

    b_begin(&b, SUBSTREAM, 3, GUID_TO, GUID_FROM, 0);
    size_t at = b.len;
    switch (i) {
    case 0:
      b_write(&b, 1, 0, 32u << 20, 0, 0); /* 32 MiB logical: corrupt, no allocation */
      msg = "WRITE record at byte 312 has length 33554432 (want 1 to 16777216)";
      break;
    case 1:
      sb_hdr(&b, h, 3, 0); /* compressed WRITE with an absurd compressed size */
      h64(&b, h, 32, 4096);
      h[50] = 15;
      h64(&b, h, 96, UINT64_MAX / 2);
      sb_emit(&b, h, 3, NULL, 0);
      msg = "WRITE record at byte 312 has a 9223372036854775807-byte payload";
      break;
    case 2:
      sb_hdr(&b, h, 7, 0); /* SPILL of 17 MiB */
      h64(&b, h, 16, 17u << 20);
      sb_emit(&b, h, 7, NULL, 0);
      msg = "SPILL record at byte 312 has a 17825792-byte payload (at most 16777216)";
      break;
    case 3:
      b_embedded(&b, 1, 0, 4096, 113);
      msg = "WRITE_EMBEDDED record at byte 312 has psize 113 (at most 112)";
      break;
    case 4:
      b_free(&b, 1, UINT64_MAX - 10, 20);
      msg = "FREE record at byte 312: offset 18446744073709551605 + length 20 overflows";
      break;
    case 5:
      b_write(&b, 1, UINT64_MAX - 4095, 8192, 0, 0);
      msg = "overflows";
      break;
    case 6:
      b_redact(&b, 1, 0, 4096);
      msg = "REDACT record at byte 312 (redacted streams are not supported)";
      break;
    case 7:
      sb_hdr(&b, h, 11, 0);
      sb_emit(&b, h, 11, NULL, 0);
      msg = "unknown record type 11 at byte 312";
      break;
    case 8:
      b_begin(&b, SUBSTREAM, 3, GUID_TO, GUID_FROM, 0);
      msg = "second BEGIN record at byte 312";
      break;
    case 9:
      sb_hdr(&b, h, 1, 0); /* OBJECT with a 1 GiB raw bonus */
      h32(&b, h, 36, 1u << 30);
      sb_emit(&b, h, 1, NULL, 0);
      msg = "OBJECT record at byte 312 has a 1073741824-byte payload";
      break;
    case 10:
      b_byref(&b, 1, 0, 0);
      msg = "WRITE_BYREF record at byte 312 has length 0";
      break;
    case 11:
      sb_hdr(&b, h, 3, 0); /* WRITE, compressed, no payload */
      h64(&b, h, 32, 4096);
      h[50] = 15;
      sb_emit(&b, h, 3, NULL, 0);
      msg = "WRITE record at byte 312 has no payload (compression 15)";
      break;
    case 12:
      sb_free(&b); /* BEGIN payload of 2 MiB */
      b_begin(&b, SUBSTREAM, 3, GUID_TO, GUID_FROM, 0);
      h32(&b, b.buf, 4, 2u << 20);
      msg = "BEGIN record at byte 0 has a 2097152-byte payload (at most 1048576)";
      break;
    case 13:
      b_embedded(&b, 1, UINT64_MAX - 100, 4096, 8);
      msg = "WRITE_EMBEDDED record at byte 312: offset";
      break;
    }
    (void)at;
    b_end(&b, GUID_TO);
    struct result res = run(b.buf, b.len, 1, 0, i % 3 ? WHOLE : BYTES, &r);
    assert_int_equal(res.feed_rc, -1);
    assert_msg(&res, msg);
    assert_int_equal(r.n, 0);
    ranges_free(&r);
    sb_free(&b);
  }
}

/* A callback error stops the parser, and the parser stays stopped. */
static void
test_callback_error(void **state)
{
  struct sb b = {0};
  (void)state;

  build_all_types(&b);
  for (size_t k = 1; k <= 3; k++) {
    struct ranges r = {.fail_at = k};
    struct result res = run(b.buf, b.len, 1, 0, RANDOM, &r);
    assert_int_equal(res.feed_rc, -1);
    assert_msg(&res, "callback refused range");
    assert_int_equal(r.n, k - 1);
    ranges_free(&r);
  }
  sb_free(&b);
}

/* ---- tests: real zfs-fuse streams ------------------------------------------------ */

struct fixture {
  uint8_t *buf;
  size_t len;
  uint64_t object, fromguid, toguid;
  struct ranges want;
};

static uint8_t *
slurp(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  uint8_t *buf = NULL;
  size_t cap = 0, n;

  if (!f)
    fail_msg("open %s: %m", path);
  *len = 0;
  do {
    if (*len == cap) {
      cap = cap ? 2 * cap : 65536;
      buf = realloc(buf, cap);
      assert_non_null(buf);
    }
    n = fread(buf + *len, 1, cap - *len, f);
    *len += n;
  } while (n);
  fclose(f);
  return buf;
}

static void
load_fixture(const char *name, struct fixture *fx)
{
  char path[512], line[256];
  FILE *f;

  memset(fx, 0, sizeof *fx);
  snprintf(path, sizeof path, "%s/%s.zstream", STREAM_DATA_DIR, name);
  fx->buf = slurp(path, &fx->len);
  snprintf(path, sizeof path, "%s/%s.ranges", STREAM_DATA_DIR, name);
  if (!(f = fopen(path, "r")))
    fail_msg("open %s: %m", path);
  while (fgets(line, sizeof line, f)) {
    char kind, len[32];
    uint64_t off;
    if (sscanf(line, "# object %" SCNu64, &fx->object) == 1 ||
        sscanf(line, "# fromguid %" SCNx64, &fx->fromguid) == 1 ||
        sscanf(line, "# toguid %" SCNx64, &fx->toguid) == 1)
      continue;
    assert_int_equal(sscanf(line, "%c %" SCNu64 " %31s", &kind, &off, len), 3);
    assert_int_equal(collect(&fx->want, off,
                             strcmp(len, "end") == 0 ? END_ : strtoull(len, NULL, 10),
                             kind == 'F'),
                     0);
  }
  fclose(f);
  assert_true(fx->object != 0 && fx->toguid != 0);
}

static void
free_fixture(struct fixture *fx)
{
  free(fx->buf);
  ranges_free(&fx->want);
}

static const char *const fixtures[] = {
    "write-aligned-8k", "write-unaligned-8k",
    "write-zeros-8k",   "zero-trim-lzjb-8k",
    "grow-8k",          "shrink-8k",
    "write-64k",        "dedup-8k",
    "delete-8k",        "full-8k",
};
#define NFIXTURES (sizeof fixtures / sizeof *fixtures)

static void
test_real_streams(void **state)
{
  (void)state;
  for (size_t i = 0; i < NFIXTURES; i++) {
    struct fixture fx;
    load_fixture(fixtures[i], &fx);
    for (enum chunking how = WHOLE; how <= RANDOM; how++) {
      struct ranges r = {0};
      struct result res = run(fx.buf, fx.len, fx.object, fx.fromguid, how, &r);
      if (res.finish_rc)
        fail_msg("%s: %s", fixtures[i], res.msg);
      assert_ranges(&r, &fx.want);
      assert_int_equal(res.info.fromguid, fx.fromguid);
      assert_int_equal(res.info.toguid, fx.toguid);
      assert_int_equal(res.info.objset_type, 2);
      assert_int_equal(res.info.bytes, fx.len);
      ranges_free(&r);
    }

    /* another object: only its own ranges (object 6 in write-unaligned-8k
     * is another file, other.img, with its block 3 rewritten) */
    struct ranges r = {0};
    struct result res;
    if (strcmp(fixtures[i], "write-unaligned-8k") == 0) {
      res = run(fx.buf, fx.len, 6, 0, WHOLE, &r);
      assert_int_equal(res.finish_rc, 0);
      size_t nw = 0;
      for (size_t k = 0; k < r.n; k++) {
        if (r.v[k].freed)
          assert_true(r.v[k].off >= 65536); /* past the end of other.img */
        else {
          assert_int_equal(r.v[k].off, 24576);
          assert_int_equal(r.v[k].len, 8192);
          nw++;
        }
      }
      assert_int_equal(nw, 1);
      ranges_free(&r);
    }

    /* wrong fromguid */
    res = run(fx.buf, fx.len, fx.object, fx.fromguid ^ 1, WHOLE, &r);
    assert_msg(&res, fx.fromguid ? "expected from guid" : "full stream (no fromguid)");
    assert_int_equal(r.n, 0);
    ranges_free(&r);

    /* a payload or header bit flipped: caught by the END checksum (the
     * END header itself is tested in test_real_truncated_and_flipped) */
    for (size_t at = 0; at < fx.len - 312; at += 997) {
      fx.buf[at] ^= 4;
      res = run(fx.buf, fx.len, fx.object, 0, WHOLE, &r);
      fx.buf[at] ^= 4;
      if (res.finish_rc == 0)
        fail_msg("%s: flip at byte %zu accepted", fixtures[i], at);
      ranges_free(&r);
    }
    free_fixture(&fx);
  }
}

/* A real compound stream (zfs send -p -i) is refused at its first record. */
static void
test_real_compound(void **state)
{
  struct ranges r = {0};
  size_t len;
  (void)state;

  uint8_t *buf = slurp(STREAM_DATA_DIR "/compound-p-8k.zstream", &len);
  struct result res = run(buf, len, 5, 0, RANDOM, &r);
  assert_int_equal(res.feed_rc, -1);
  assert_msg(&res,
             "zfs send stream: compound stream (from zfs send -R, -I, -p, -h or -b) "
             "at byte 0");
  assert_int_equal(r.n, 0);
  assert_int_equal(res.info.records, 0);
  free(buf);
}

/* Byteswap the u64 at off (u32 if size is 4) of a header. */
static void
swap_field(uint8_t *h, unsigned off, unsigned size)
{
  if (size == 8) {
    uint64_t v;
    memcpy(&v, h + off, 8);
    v = __builtin_bswap64(v);
    memcpy(h + off, &v, 8);
  } else {
    uint32_t v;
    memcpy(&v, h + off, 4);
    v = __builtin_bswap32(v);
    memcpy(h + off, &v, 4);
  }
}

/* Rewrite a native zfs-fuse stream as a big-endian sender would have
 * written it: every integer field of the record types zfs-fuse emits
 * swapped (layout from reference/zfs.md §3.2), payloads as they are, the
 * END checksum recomputed over the other byte order's words. */
static void
to_other_byte_order(uint8_t *buf, size_t len)
{
  struct sb ck = {.swap = true};
  size_t at = 0;

  while (at < len) {
    uint8_t *h = buf + at;
    uint32_t type, plen;
    uint64_t payload = 0;
    memcpy(&type, h, 4);
    memcpy(&plen, h + 4, 4);
    swap_field(h, 0, 4);
    swap_field(h, 4, 4);
    switch (type) {
    case 0: /* BEGIN */
      for (unsigned o = 8; o < 32; o += 8)
        swap_field(h, o, 8);
      swap_field(h, 32, 4);
      swap_field(h, 36, 4);
      swap_field(h, 40, 8);
      swap_field(h, 48, 8);
      payload = plen;
      break;
    case 1: { /* OBJECT */
      uint32_t bonuslen;
      memcpy(&bonuslen, h + 28, 4);
      payload = (bonuslen + 7) / 8 * 8;
      swap_field(h, 8, 8);
      for (unsigned o = 16; o < 32; o += 4)
        swap_field(h, o, 4);
      swap_field(h, 36, 4);
      swap_field(h, 40, 8);
      swap_field(h, 56, 8);
      break;
    }
    case 3: /* WRITE */
      memcpy(&payload, h + 32, 8);
      swap_field(h, 8, 8);
      swap_field(h, 16, 4);
      swap_field(h, 20, 4);
      for (unsigned o = 24; o < 48; o += 8)
        swap_field(h, o, 8);
      for (unsigned o = 56; o < 104; o += 8)
        swap_field(h, o, 8);
      break;
    case 2: /* FREEOBJECTS */
    case 4: /* FREE */
      for (unsigned o = 8; o < 40; o += 8)
        swap_field(h, o, 8);
      break;
    case 6: /* WRITE_BYREF */
      for (unsigned o = 8; o < 64; o += 8)
        swap_field(h, o, 8);
      for (unsigned o = 72; o < 112; o += 8)
        swap_field(h, o, 8);
      break;
    case 5: /* END */
      for (int i = 0; i < 4; i++) {
        uint64_t v = __builtin_bswap64(ck.ck[i]);
        memcpy(h + 8 + 8 * i, &v, 8);
      }
      swap_field(h, 40, 8);
      break;
    default:
      fail_msg("record type %" PRIu32 " at byte %zu not in zfs-fuse streams", type, at);
    }
    sb_fold(&ck, h, 312);
    sb_fold(&ck, h + 312, payload);
    at += 312 + payload;
  }
  assert_int_equal(at, len);
}

/* The real streams, as a sender of the other byte order would send them. */
static void
test_real_streams_swapped(void **state)
{
  (void)state;
  for (size_t i = 0; i < NFIXTURES; i++) {
    struct fixture fx;
    load_fixture(fixtures[i], &fx);
    to_other_byte_order(fx.buf, fx.len);
    for (enum chunking how = WHOLE; how <= RANDOM; how += 2) {
      struct ranges r = {0};
      struct result res = run(fx.buf, fx.len, fx.object, fx.fromguid, how, &r);
      if (res.finish_rc)
        fail_msg("%s swapped: %s", fixtures[i], res.msg);
      assert_ranges(&r, &fx.want);
      assert_int_equal(res.info.toguid, fx.toguid);
      ranges_free(&r);
    }
    /* and a flipped payload or header bit is still caught */
    fx.buf[fx.len / 2] ^= 1;
    struct ranges r = {0};
    struct result res = run(fx.buf, fx.len, fx.object, fx.fromguid, WHOLE, &r);
    assert_int_equal(res.finish_rc, -1);
    ranges_free(&r);
    free_fixture(&fx);
  }
}

/* The smallest real streams: every cut point, every header bit. */
static void
test_real_truncated_and_flipped(void **state)
{
  (void)state;
  const char *small[] = {"delete-8k", "zero-trim-lzjb-8k"};
  for (size_t i = 0; i < 2; i++) {
    struct fixture fx;
    load_fixture(small[i], &fx);
    for (size_t cut = 0; cut < fx.len; cut++) {
      struct ranges r = {0};
      struct result res = run(fx.buf, cut, fx.object, fx.fromguid, WHOLE, &r);
      assert_msg(&res, "truncated");
      ranges_free(&r);
    }
    /* zfs-fuse streams have only headers and OBJECT bonus payloads here;
     * the END header's bytes besides type, checksum and toguid are covered
     * by no checksum (zero per-record checksums) and ignored. */
    size_t end_rec = fx.len - 312;
    for (size_t at = 0; at < fx.len; at++) {
      struct ranges r = {0};
      uint8_t bit = (uint8_t)(1u << (at % 8));
      size_t eb = at - end_rec;
      bool ignored = at >= end_rec && ((eb >= 48 && eb < 280) || (eb >= 4 && eb < 8));
      fx.buf[at] ^= bit;
      struct result res = run(fx.buf, fx.len, fx.object, fx.fromguid, WHOLE, &r);
      fx.buf[at] ^= bit;
      if (ignored) {
        if (res.finish_rc)
          fail_msg("%s: flip at ignored byte %zu refused: %s", small[i], at, res.msg);
        assert_ranges(&r, &fx.want);
      } else if (res.finish_rc == 0)
        fail_msg("%s: flip at byte %zu accepted", small[i], at);
      ranges_free(&r);
    }
    free_fixture(&fx);
  }
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_all_types),
      cmocka_unit_test(test_truncated_everywhere),
      cmocka_unit_test(test_truncated_message),
      cmocka_unit_test(test_bit_flips),
      cmocka_unit_test(test_payload_flip),
      cmocka_unit_test(test_free_after_object),
      cmocka_unit_test(test_freeobjects),
      cmocka_unit_test(test_begin_checks),
      cmocka_unit_test(test_bad_magic),
      cmocka_unit_test(test_end_checks),
      cmocka_unit_test(test_bad_records),
      cmocka_unit_test(test_callback_error),
      cmocka_unit_test(test_real_streams),
      cmocka_unit_test(test_real_streams_swapped),
      cmocka_unit_test(test_real_compound),
      cmocka_unit_test(test_real_truncated_and_flipped),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
