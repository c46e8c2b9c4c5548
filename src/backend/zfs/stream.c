/* stream.c: the send stream parser behind changed block tracking.
 *
 * The format (reference/zfs.md §3.2-3.4): a sequence of 312-byte record
 * headers, some followed by a payload whose length the header gives.  The
 * first record is BEGIN, the last END.  A running Fletcher-4 checksum runs
 * over every byte; each non-BEGIN header stores the checksum of everything
 * before its last 32 bytes there (all zeros in pre-0.7 streams such as
 * zfs-fuse's, which are then not checked), and END stores the checksum of
 * everything before it (always checked).
 *
 * The parser is a small state machine fed by zstream_feed(): it gathers a
 * header, acts on it, then folds the payload (if any) into the checksum
 * without keeping it.  Offsets in messages are stream byte offsets of the
 * start of the record concerned. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "backend/zfs/stream-format.h"
#include "backend/zfs/stream.h"
#include "util/error.h"

#include "util/banned.h" /* last: after every declaration */

enum state { S_HEADER, S_PAYLOAD, S_DONE, S_FAILED };

struct zstream {
  /* Set by zstream_new. */
  uint64_t object, expect_fromguid;
  zstream_range_fn cb;
  void *opaque;

  enum state state;
  bool have_begin;
  bool bswap;                /* the stream is in the other byte order */
  uint8_t hdr[HDR_SIZE];     /* the record header being gathered */
  size_t hdr_fill;           /* bytes of it so far */
  uint32_t rec_type;         /* type of the current record (once parsed) */
  uint64_t rec_off;          /* stream offset of the current record */
  uint64_t payload_len;      /* payload of the current record */
  uint64_t payload_left;     /* of which not yet seen */
  uint8_t word[4];           /* payload bytes not yet a whole 32-bit word */
  unsigned word_fill;        /* how many */
  uint64_t ck[4];            /* running Fletcher-4 */
  uint64_t off;              /* stream bytes consumed */
  uint64_t records;          /* complete record headers parsed */
  bool past_end_pending;     /* previous record was OBJECT(object) ... */
  uint64_t past_end_off;     /* ... whose space past the end starts here */
  uint64_t fromguid, toguid; /* from BEGIN */
  uint32_t objset_type;
  struct zl_error_saved err; /* the error that stopped the parser */
};

/* Fold len bytes (a multiple of 4) in the stream's byte order. */
static void
fold(struct zstream *s, const uint8_t *p, size_t len)
{
  if (s->bswap)
    zb_fletcher4(s->ck, p, len / 4, true);
  else
    zb_fletcher4(s->ck, p, len / 4, false);
}

/* Fold payload bytes that may split words anywhere.  As in OpenZFS, which
 * checksums each payload in one call, the last len % 4 bytes of a payload
 * are not part of the checksum (only a BEGIN nvlist can have such bytes). */
static void
fold_payload(struct zstream *s, const uint8_t *p, size_t len)
{
  if (s->word_fill) {
    while (s->word_fill < 4 && len) {
      s->word[s->word_fill++] = *p++;
      len--;
    }
    if (s->word_fill < 4)
      return;
    fold(s, s->word, 4);
    s->word_fill = 0;
  }
  size_t whole = len & ~(size_t)3;
  fold(s, p, whole);
  for (size_t i = whole; i < len; i++)
    s->word[s->word_fill++] = p[i];
}

/* ---- header fields, in the stream's byte order ------------------------------ */

static uint64_t
get64(const struct zstream *s, unsigned off)
{
  uint64_t v;
  memcpy(&v, s->hdr + off, 8);
  return s->bswap ? __builtin_bswap64(v) : v;
}

static uint32_t
get32(const struct zstream *s, unsigned off)
{
  uint32_t v;
  memcpy(&v, s->hdr + off, 4);
  return s->bswap ? __builtin_bswap32(v) : v;
}

static const char *
rec_name(uint32_t type)
{
  return type < R_NTYPES ? rec_names[type] : "unknown";
}

/* ---- errors ------------------------------------------------------------------ */

#define corrupt(s, ...)                                                                  \
  zl_error_kind(ZL_ERR_INVALID, EINVAL, "zfs send stream: " __VA_ARGS__)
#define unsupported(s, ...)                                                              \
  zl_error_kind(ZL_ERR_UNSUPPORTED, ENOTSUP, "zfs send stream: " __VA_ARGS__)

/* Stop the parser for good, keeping the error for later calls. */
static int
fail(struct zstream *s)
{
  zl_error_save(&s->err);
  s->state = S_FAILED;
  return -1;
}

static int
report(struct zstream *s, uint64_t offset, uint64_t length, bool freed)
{
  if (length == 0)
    return 0;
  return s->cb(s->opaque, offset, length, freed);
}

/* offset + length must not wrap; UINT64_MAX as length is allowed only when
 * to_end is true (FREE).  Also bounds the length when max is non-zero. */
static int
check_range(struct zstream *s, uint64_t offset, uint64_t length, bool to_end,
            uint64_t max)
{
  const char *name = rec_name(s->rec_type);

  if (to_end && length == UINT64_MAX)
    return 0;
  if (max && (length == 0 || length > max)) {
    corrupt(
        s, "%s record at byte %" PRIu64 " has length %" PRIu64 " (want 1 to %" PRIu64 ")",
        name, s->rec_off, length, max);
    return -1;
  }
  if (offset + length < offset) {
    corrupt(s,
            "%s record at byte %" PRIu64 ": offset %" PRIu64 " + length %" PRIu64
            " overflows",
            name, s->rec_off, offset, length);
    return -1;
  }
  return 0;
}

/* ---- records ------------------------------------------------------------------ */

static int
begin_record(struct zstream *s)
{
  uint64_t magic, vi, features;
  uint32_t hdrtype;

  memcpy(&magic, s->hdr + 8, 8);
  if (magic == STREAM_MAGIC)
    s->bswap = false;
  else if (magic == __builtin_bswap64(STREAM_MAGIC))
    s->bswap = true;
  else {
    corrupt(s, "bad magic 0x%016" PRIx64 " at byte 8 (not a zfs send stream)", magic);
    return -1;
  }
  s->rec_type = get32(s, 0);
  if (s->rec_type != R_BEGIN) {
    corrupt(s, "first record is %s (type %" PRIu32 "), not BEGIN", rec_name(s->rec_type),
            s->rec_type);
    return -1;
  }
  vi = get64(s, 16);
  hdrtype = vi & 3;
  features = vi >> 2;
  if (hdrtype == HDRTYPE_COMPOUND) {
    unsupported(s, "compound stream (from zfs send -R, -I, -p, -h or -b) at byte 0; "
                   "changed block tracking needs a single zfs send -i stream");
    return -1;
  }
  if (hdrtype != HDRTYPE_SUBSTREAM) {
    corrupt(s, "BEGIN record at byte 0 has header type %" PRIu32 " (want 1)", hdrtype);
    return -1;
  }
  if (features & F_REDACTED) {
    unsupported(s, "redacted stream (BEGIN feature flags 0x%" PRIx64 ")", features);
    return -1;
  }
  if (features & F_RESUMING) {
    unsupported(s,
                "resumed stream (BEGIN feature flags 0x%" PRIx64 ") covers only part "
                "of the changes",
                features);
    return -1;
  }
  if (features & ~F_ACCEPTED) {
    unsupported(
        s, "unknown feature flags 0x%" PRIx64 " in BEGIN record (flags 0x%" PRIx64 ")",
        features & ~F_ACCEPTED, features);
    return -1;
  }
  s->objset_type = get32(s, 32);
  s->toguid = get64(s, 40);
  s->fromguid = get64(s, 48);
  if (s->objset_type != 2 && s->objset_type != 3) {
    unsupported(s,
                "BEGIN record at byte 0: objset type %" PRIu32
                " is neither a filesystem (2) nor a volume (3)",
                s->objset_type);
    return -1;
  }
  if (s->expect_fromguid && s->fromguid == 0) {
    corrupt(s,
            "full stream (no fromguid), expected an incremental stream from guid "
            "0x%016" PRIx64,
            s->expect_fromguid);
    return -1;
  }
  if (s->expect_fromguid && s->fromguid != s->expect_fromguid) {
    corrupt(s,
            "incremental stream from guid 0x%016" PRIx64
            ", expected from guid 0x%016" PRIx64,
            s->fromguid, s->expect_fromguid);
    return -1;
  }
  s->payload_len = get32(s, 4);
  if (s->payload_len > MAX_BEGIN_PAYLOAD) {
    corrupt(s, "BEGIN record at byte 0 has a %" PRIu64 "-byte payload (at most %u)",
            s->payload_len, MAX_BEGIN_PAYLOAD);
    return -1;
  }
  fold(s, s->hdr, HDR_SIZE);
  s->have_begin = true;
  return 0;
}

/* Check the header's stored checksum and fold the header in; for END also
 * check the checksum of the stream before it. */
static int
checksum_header(struct zstream *s)
{
  uint64_t before[4], stored[4];
  bool zero = true;

  memcpy(before, s->ck, sizeof before);
  fold(s, s->hdr, CKSUM_OFF);
  for (int i = 0; i < 4; i++) {
    stored[i] = get64(s, CKSUM_OFF + 8 * i);
    zero = zero && stored[i] == 0;
  }
  if (!zero && memcmp(stored, s->ck, sizeof stored) != 0) {
    zl_error_kind(ZL_ERR_INVALID, EBADMSG,
                  "zfs send stream: checksum mismatch in %s record at byte %" PRIu64
                  " (stored %" PRIx64 "/%" PRIx64 "/%" PRIx64 "/%" PRIx64
                  ", computed %" PRIx64 "/%" PRIx64 "/%" PRIx64 "/%" PRIx64 ")",
                  rec_name(s->rec_type), s->rec_off, stored[0], stored[1], stored[2],
                  stored[3], s->ck[0], s->ck[1], s->ck[2], s->ck[3]);
    return -1;
  }
  fold(s, s->hdr + CKSUM_OFF, HDR_SIZE - CKSUM_OFF);

  if (s->rec_type == R_END) {
    for (int i = 0; i < 4; i++)
      stored[i] = get64(s, 8 + 8 * i);
    if (memcmp(stored, before, sizeof stored) != 0) {
      zl_error_kind(
          ZL_ERR_INVALID, EBADMSG,
          "zfs send stream: stream checksum mismatch in END record at byte %" PRIu64
          " (stored %" PRIx64 "/%" PRIx64 "/%" PRIx64 "/%" PRIx64 ", computed %" PRIx64
          "/%" PRIx64 "/%" PRIx64 "/%" PRIx64 ")",
          s->rec_off, stored[0], stored[1], stored[2], stored[3], before[0], before[1],
          before[2], before[3]);
      return -1;
    }
  }
  return 0;
}

static int
object_record(struct zstream *s)
{
  uint32_t blksz = get32(s, 24), bonuslen = get32(s, 28), raw_bonuslen = get32(s, 36);
  uint64_t maxblkid = get64(s, 56), end;

  s->payload_len = raw_bonuslen ? raw_bonuslen : ((uint64_t)bonuslen + 7) / 8 * 8;
  if (get64(s, 8) == s->object && !__builtin_add_overflow(maxblkid, 1, &end) &&
      !__builtin_mul_overflow(end, blksz, &end)) {
    s->past_end_pending = true;
    s->past_end_off = end;
  }
  return 0;
}

static int
freeobjects_record(struct zstream *s)
{
  uint64_t first = get64(s, 8), num = get64(s, 16);

  if (s->object >= first && s->object - first < num)
    return report(s, 0, UINT64_MAX, true);
  return 0;
}

static int
write_record(struct zstream *s)
{
  uint64_t obj = get64(s, 8), offset = get64(s, 24), lsize = get64(s, 32);
  uint8_t comp = s->hdr[50];
  uint64_t csize = get64(s, 96);

  if (check_range(s, offset, lsize, false, MAX_PAYLOAD) < 0)
    return -1;
  s->payload_len = comp ? csize : lsize;
  if (s->payload_len == 0) {
    corrupt(s, "WRITE record at byte %" PRIu64 " has no payload (compression %u)",
            s->rec_off, comp);
    return -1;
  }
  return obj == s->object ? report(s, offset, lsize, false) : 0;
}

static int
free_record(struct zstream *s, bool past_end_pending)
{
  uint64_t obj = get64(s, 8), offset = get64(s, 16), length = get64(s, 24);

  if (check_range(s, offset, length, true, 0) < 0)
    return -1;
  if (obj != s->object)
    return 0;
  if (past_end_pending && offset == s->past_end_off && length == UINT64_MAX)
    return 0; /* the space past the last block, zfs.md §3.4 step 4 */
  return report(s, offset, length, true);
}

static int
write_byref_record(struct zstream *s)
{
  uint64_t obj = get64(s, 8), offset = get64(s, 16), length = get64(s, 24);

  if (check_range(s, offset, length, false, MAX_PAYLOAD) < 0)
    return -1;
  return obj == s->object ? report(s, offset, length, false) : 0;
}

static int
write_embedded_record(struct zstream *s)
{
  uint64_t obj = get64(s, 8), offset = get64(s, 16), length = get64(s, 24);
  uint32_t psize = get32(s, 52);

  if (check_range(s, offset, length, false, MAX_PAYLOAD) < 0)
    return -1;
  if (psize > MAX_EMBEDDED) {
    corrupt(
        s, "WRITE_EMBEDDED record at byte %" PRIu64 " has psize %" PRIu32 " (at most %u)",
        s->rec_off, psize, MAX_EMBEDDED);
    return -1;
  }
  s->payload_len = ((uint64_t)psize + 7) / 8 * 8;
  return obj == s->object ? report(s, offset, length, false) : 0;
}

static int
spill_record(struct zstream *s)
{
  uint64_t length = get64(s, 16), csize = get64(s, 40);

  s->payload_len = csize ? csize : length;
  return 0;
}

static int
end_record(struct zstream *s)
{
  uint64_t toguid = get64(s, 40);

  if (toguid != s->toguid) {
    corrupt(s,
            "END record at byte %" PRIu64 " has toguid 0x%016" PRIx64
            ", BEGIN had 0x%016" PRIx64,
            s->rec_off, toguid, s->toguid);
    return -1;
  }
  return 0;
}

/* A whole header is in s->hdr: check it, report its range, and set up the
 * payload that follows. */
static int
parse_header(struct zstream *s)
{
  bool past_end_pending = s->past_end_pending;
  int r = 0;

  s->payload_len = 0;
  s->past_end_pending = false;
  if (!s->have_begin) {
    if (begin_record(s) < 0)
      return -1;
    goto done;
  }
  s->rec_type = get32(s, 0);
  if (s->rec_type == R_BEGIN) {
    corrupt(s, "second BEGIN record at byte %" PRIu64 " (a compound stream?)",
            s->rec_off);
    return -1;
  }
  if (s->rec_type >= R_NTYPES) {
    corrupt(s, "unknown record type %" PRIu32 " at byte %" PRIu64, s->rec_type,
            s->rec_off);
    return -1;
  }
  if (checksum_header(s) < 0)
    return -1;

  switch ((enum rec_type)s->rec_type) {
  case R_OBJECT:
    r = object_record(s);
    break;
  case R_FREEOBJECTS:
    r = freeobjects_record(s);
    break;
  case R_WRITE:
    r = write_record(s);
    break;
  case R_FREE:
    r = free_record(s, past_end_pending);
    break;
  case R_END:
    r = end_record(s);
    break;
  case R_WRITE_BYREF:
    r = write_byref_record(s);
    break;
  case R_SPILL:
    r = spill_record(s);
    break;
  case R_WRITE_EMBEDDED:
    r = write_embedded_record(s);
    break;
  case R_OBJECT_RANGE:
    break;
  case R_REDACT:
    unsupported(s,
                "REDACT record at byte %" PRIu64 " (redacted streams are not supported)",
                s->rec_off);
    return -1;
  case R_BEGIN:
  case R_NTYPES:
    abort(); /* excluded above */
  }
  if (r < 0)
    return -1;
  if (s->payload_len > MAX_PAYLOAD) {
    corrupt(s,
            "%s record at byte %" PRIu64 " has a %" PRIu64 "-byte payload (at most %u)",
            rec_name(s->rec_type), s->rec_off, s->payload_len, MAX_PAYLOAD);
    return -1;
  }

done:
  s->records++;
  s->payload_left = s->payload_len;
  s->word_fill = 0;
  if (s->rec_type == R_END)
    s->state = S_DONE;
  else if (s->payload_len)
    s->state = S_PAYLOAD;
  return 0;
}

/* ---- the API ------------------------------------------------------------------ */

struct zstream *
zstream_new(uint64_t object, uint64_t expect_fromguid, zstream_range_fn cb, void *opaque)
{
  struct zstream *s = calloc(1, sizeof *s);

  if (!s) {
    zl_error(errno, "zfs send stream: out of memory");
    return NULL;
  }
  s->object = object;
  s->expect_fromguid = expect_fromguid;
  s->cb = cb;
  s->opaque = opaque;
  s->state = S_HEADER;
  return s;
}

int
zstream_feed(struct zstream *s, const void *buf, size_t len)
{
  const uint8_t *p = buf;

  if (s->state == S_FAILED) {
    zl_error_restore(&s->err);
    return -1;
  }
  while (len) {
    size_t n;

    switch (s->state) {
    case S_HEADER:
      if (s->hdr_fill == 0)
        s->rec_off = s->off;
      n = HDR_SIZE - s->hdr_fill;
      n = n < len ? n : len;
      memcpy(s->hdr + s->hdr_fill, p, n);
      s->hdr_fill += n;
      if (s->hdr_fill == HDR_SIZE) {
        s->hdr_fill = 0;
        if (parse_header(s) < 0) {
          s->off += n;
          return fail(s);
        }
      }
      break;
    case S_PAYLOAD:
      n = s->payload_left < len ? s->payload_left : len;
      fold_payload(s, p, n);
      s->payload_left -= n;
      if (s->payload_left == 0) {
        s->word_fill = 0;
        s->state = S_HEADER;
      }
      break;
    case S_DONE:
      corrupt(s, "unexpected data after the END record, at byte %" PRIu64, s->off);
      return fail(s);
    case S_FAILED:
    default:
      abort();
    }
    p += n;
    len -= n;
    s->off += n;
  }
  return 0;
}

int
zstream_finish(struct zstream *s, struct zstream_info *info)
{
  if (info) {
    info->fromguid = s->fromguid;
    info->toguid = s->toguid;
    info->objset_type = s->objset_type;
    info->records = s->records;
    info->bytes = s->off;
  }
  switch (s->state) {
  case S_DONE:
    return 0;
  case S_FAILED:
    zl_error_restore(&s->err);
    return -1;
  case S_PAYLOAD:
    corrupt(s,
            "truncated in the payload of %s record at byte %" PRIu64
            " (stream ends at byte %" PRIu64 ", %" PRIu64 " of %" PRIu64
            " payload bytes)",
            rec_name(s->rec_type), s->rec_off, s->off, s->payload_len - s->payload_left,
            s->payload_len);
    break;
  case S_HEADER:
    if (s->hdr_fill == 0 && !s->have_begin)
      corrupt(s, "truncated: the stream is empty (no BEGIN record)");
    else if (s->hdr_fill == 0)
      corrupt(s,
              "truncated after %s record, before the END record (stream ends at byte "
              "%" PRIu64 ")",
              rec_name(s->rec_type), s->off);
    else
      corrupt(s,
              "truncated in the header of %s record at byte %" PRIu64
              " (stream ends at byte %" PRIu64 ", %zu of %u header bytes)",
              s->have_begin && s->hdr_fill >= 4 ? rec_name(get32(s, 0))
              : s->have_begin                   ? "a"
                                                : "BEGIN",
              s->rec_off, s->off, s->hdr_fill, HDR_SIZE);
    break;
  }
  return fail(s);
}

void
zstream_free(struct zstream *s)
{
  free(s);
}
