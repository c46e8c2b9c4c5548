/* fletcher.c: Fletcher-4 over 32-bit words, the checksum of send streams
 * (reference/zfs.md §3.4). */
#include <stdbool.h>
#include <string.h>

#include "backend/zfs/stream-format.h"

#include "util/banned.h" /* last: after every declaration */

static void
fletcher_native(uint64_t ck[4], const uint8_t *p, size_t nwords)
{
  uint64_t a = ck[0], b = ck[1], c = ck[2], d = ck[3];

  for (size_t i = 0; i < nwords; i++) {
    uint32_t w;
    memcpy(&w, p + 4 * i, 4);
    a += w;
    b += a;
    c += b;
    d += c;
  }
  ck[0] = a, ck[1] = b, ck[2] = c, ck[3] = d;
}

static void
fletcher_swapped(uint64_t ck[4], const uint8_t *p, size_t nwords)
{
  uint64_t a = ck[0], b = ck[1], c = ck[2], d = ck[3];

  for (size_t i = 0; i < nwords; i++) {
    uint32_t w;
    memcpy(&w, p + 4 * i, 4);
    a += __builtin_bswap32(w);
    b += a;
    c += b;
    d += c;
  }
  ck[0] = a, ck[1] = b, ck[2] = c, ck[3] = d;
}

void
zb_fletcher4(uint64_t ck[4], const uint8_t *p, size_t nwords, bool swapped)
{
  if (swapped)
    fletcher_swapped(ck, p, nwords);
  else
    fletcher_native(ck, p, nwords);
}
