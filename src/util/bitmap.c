/* bitmap.c: see bitmap.h. */
#include <errno.h>
#include <nettle/base64.h>
#include <stdlib.h>
#include <string.h>

#include "bitmap.h"
#include "error.h"

#include "util/banned.h" /* last: after every declaration */

#define MASK(b) ((uint8_t)(0x80u >> ((b)&7)))

static inline uint8_t
load(const uint8_t *p)
{
  return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* *p |= v, atomically, skipping the store when nothing changes (the common
 * case for a block written again keeps the cache line shared). */
static inline void
or_byte(uint8_t *p, uint8_t v)
{
  if (v && (load(p) & v) != v)
    __atomic_fetch_or(p, v, __ATOMIC_RELAXED);
}

uint64_t
zl_bitmap_blocks(uint64_t size, uint64_t granularity)
{
  return size / granularity + (size % granularity != 0);
}

size_t
zl_bitmap_bytes(uint64_t nblocks)
{
  return (size_t)(nblocks / 8 + (nblocks % 8 != 0));
}

int
zl_bitmap_alloc(struct zl_bitmap *m, uint64_t size, uint64_t granularity)
{
  m->size = size;
  m->granularity = granularity;
  m->nblocks = zl_bitmap_blocks(size, granularity);
  m->bits = calloc(1, zl_bitmap_bytes(m->nblocks) + 1);
  if (!m->bits) {
    memset(m, 0, sizeof *m);
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  return 0;
}

void
zl_bitmap_free(struct zl_bitmap *m)
{
  free(m->bits);
  m->bits = NULL;
}

struct zl_bitmap
zl_bitmap_view(uint8_t *bits, uint64_t nblocks, uint64_t granularity)
{
  return (struct zl_bitmap){.size = nblocks * granularity,
                            .granularity = granularity,
                            .nblocks = nblocks,
                            .bits = bits};
}

void
zl_bitmap_clear(struct zl_bitmap *m)
{
  memset(m->bits, 0, zl_bitmap_bytes(m->nblocks));
}

void
zl_bitmap_set_blocks(struct zl_bitmap *m, uint64_t first, uint64_t count)
{
  if (count == 0 || first >= m->nblocks)
    return;
  uint64_t end = count > m->nblocks - first ? m->nblocks : first + count;
  for (uint64_t b = first; b < end;) {
    /* whole aligned 64-bit words at a time (a long FREE range of a send
     * stream, a revert): setting every bit loses no concurrent OR */
    if ((b & 63) == 0 && end - b >= 64 && ((uintptr_t)&m->bits[b >> 3] & 7) == 0) {
      uint64_t *w = (uint64_t *)(void *)&m->bits[b >> 3];
      if (__atomic_load_n(w, __ATOMIC_RELAXED) != UINT64_MAX)
        __atomic_store_n(w, UINT64_MAX, __ATOMIC_RELAXED);
      b += 64;
      continue;
    }
    if ((b & 7) == 0 && end - b >= 8) {
      if (load(&m->bits[b >> 3]) != 0xff)
        __atomic_store_n(&m->bits[b >> 3], 0xff, __ATOMIC_RELAXED);
      b += 8;
      continue;
    }
    or_byte(&m->bits[b >> 3], MASK(b));
    b++;
  }
}

void
zl_bitmap_set_bytes(struct zl_bitmap *m, uint64_t offset, uint64_t length)
{
  if (length == 0 || offset >= m->size || m->nblocks == 0)
    return;
  uint64_t end = length > m->size - offset ? m->size : offset + length;
  uint64_t first = offset / m->granularity, last = (end - 1) / m->granularity;
  zl_bitmap_set_blocks(m, first, last - first + 1);
}

void
zl_bitmap_or(struct zl_bitmap *dst, const struct zl_bitmap *src)
{
  uint64_t n = dst->nblocks < src->nblocks ? dst->nblocks : src->nblocks;
  size_t whole = (size_t)(n / 8);
  for (size_t i = 0; i < whole; i++)
    or_byte(&dst->bits[i], load(&src->bits[i]));
  if (n % 8)
    or_byte(&dst->bits[whole], load(&src->bits[whole]) & (uint8_t)(0xff00u >> (n % 8)));
}

bool
zl_bitmap_test(const struct zl_bitmap *m, uint64_t b)
{
  return b < m->nblocks && (load(&m->bits[b >> 3]) & MASK(b));
}

/* The first block at or after b, before end, in state set; end if none. */
static uint64_t
find(const struct zl_bitmap *m, uint64_t b, uint64_t end, bool set)
{
  const uint8_t skip = set ? 0 : 0xff; /* a byte with nothing to find */
  while (b < end) {
    if ((b & 7) == 0 && end - b >= 8 && load(&m->bits[b >> 3]) == skip) {
      b += 8;
      continue;
    }
    if (zl_bitmap_test(m, b) == set)
      return b;
    b++;
  }
  return end;
}

bool
zl_bitmap_next_run(const struct zl_bitmap *m, uint64_t *pos, uint64_t *first,
                   uint64_t *count)
{
  uint64_t b = find(m, *pos, m->nblocks, true);
  if (b >= m->nblocks) {
    *pos = m->nblocks;
    return false;
  }
  uint64_t e = find(m, b + 1, m->nblocks, false);
  *first = b;
  *count = e - b;
  *pos = e;
  return true;
}

uint64_t
zl_bitmap_run_end(const struct zl_bitmap *m, uint64_t b, uint64_t limit)
{
  bool set = zl_bitmap_test(m, b);
  if (set)
    return find(m, b + 1, limit < m->nblocks ? limit : m->nblocks, false);
  if (b + 1 >= m->nblocks)
    return limit; /* clear to the end and past it */
  uint64_t e = find(m, b + 1, limit < m->nblocks ? limit : m->nblocks, true);
  return e == m->nblocks ? limit : e;
}

char *
zl_bitmap_base64(const struct zl_bitmap *m, uint64_t first, uint64_t n)
{
  /* whole 32-bit words, and base64's 4 characters per 3 bytes, in a size_t */
  if (n / 8 > (SIZE_MAX / 2 - 16) / 4 * 3) {
    zl_error(ENOMEM, "bitmap of %llu blocks: too large to encode", (unsigned long long)n);
    return NULL;
  }
  size_t used = zl_bitmap_bytes(n), bytes = (used + 3) / 4 * 4;
  uint8_t *buf = calloc(1, bytes + 1);
  char *out = malloc(BASE64_ENCODE_RAW_LENGTH(bytes) + 1);
  if (!buf || !out) {
    free(buf);
    free(out);
    zl_error(ENOMEM, "out of memory");
    return NULL;
  }
  /* whole bytes of the map where they line up, then bit by bit */
  uint64_t i = 0, have = first < m->nblocks ? m->nblocks - first : 0;
  if (first % 8 == 0 && (i = (n < have ? n : have) / 8 * 8) > 0)
    memcpy(buf, m->bits + first / 8, (size_t)(i / 8));
  for (; i < n && i < have; i++)
    if (zl_bitmap_test(m, first + i))
      buf[i >> 3] |= MASK(i);
  base64_encode_raw(out, bytes, buf);
  out[BASE64_ENCODE_RAW_LENGTH(bytes)] = '\0';
  free(buf);
  return out;
}
