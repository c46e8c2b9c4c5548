/* stream-format.h: the send stream's record layout as the parser reads it
 * (reference/zfs.md §3.2-3.4; OpenZFS's dmu_replay_record_t).  Private to
 * stream.c. */
#ifndef ZB_STREAM_FORMAT_H
#define ZB_STREAM_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HDR_SIZE          312u /* sizeof (dmu_replay_record_t) */
#define CKSUM_OFF         280u /* drr_checksum.drr_checksum: 4 x u64 */
#define STREAM_MAGIC      0x2F5BACBACull
#define MAX_PAYLOAD       (16u << 20) /* SPA_MAXBLOCKSIZE */
#define MAX_BEGIN_PAYLOAD (1u << 20)
#define MAX_EMBEDDED      112u /* BPE_PAYLOAD_SIZE */

enum rec_type {
  R_BEGIN,
  R_OBJECT,
  R_FREEOBJECTS,
  R_WRITE,
  R_FREE,
  R_END,
  R_WRITE_BYREF,
  R_SPILL,
  R_WRITE_EMBEDDED,
  R_OBJECT_RANGE,
  R_REDACT,
  R_NTYPES
};

static const char *const rec_names[R_NTYPES] __attribute__((unused)) = {
    "BEGIN",       "OBJECT", "FREEOBJECTS",    "WRITE",        "FREE",   "END",
    "WRITE_BYREF", "SPILL",  "WRITE_EMBEDDED", "OBJECT_RANGE", "REDACT",
};

/* Feature flags (drr_versioninfo >> 2), zfs.md §3.2. */
#define F_DEDUP        (UINT64_C(1) << 0)
#define F_DEDUPPROPS   (UINT64_C(1) << 1)
#define F_SA_SPILL     (UINT64_C(1) << 2)
#define F_EMBED_DATA   (UINT64_C(1) << 16)
#define F_LZ4          (UINT64_C(1) << 17)
#define F_LARGE_BLOCKS (UINT64_C(1) << 19)
#define F_RESUMING     (UINT64_C(1) << 20)
#define F_REDACTED     (UINT64_C(1) << 21)
#define F_COMPRESSED   (UINT64_C(1) << 22)
#define F_LARGE_DNODE  (UINT64_C(1) << 23)
#define F_RAW          (UINT64_C(1) << 24)
#define F_ZSTD         (UINT64_C(1) << 25)
#define F_HOLDS        (UINT64_C(1) << 26)
#define F_SWITCH_LARGE (UINT64_C(1) << 27)
#define F_BIT28        (UINT64_C(1) << 28) /* BLAKE3 in 2.2, LONGNAME later */
#define F_BIT29        (UINT64_C(1) << 29) /* LARGE_MICROZAP */
/* Features that change nothing this parser relies on. */
#define F_ACCEPTED                                                                       \
  (F_DEDUP | F_DEDUPPROPS | F_SA_SPILL | F_EMBED_DATA | F_LZ4 | F_LARGE_BLOCKS |         \
   F_COMPRESSED | F_LARGE_DNODE | F_RAW | F_ZSTD | F_HOLDS | F_SWITCH_LARGE | F_BIT28 |  \
   F_BIT29)

#define HDRTYPE_SUBSTREAM 1
#define HDRTYPE_COMPOUND  2

/* fletcher.c: fold nwords 32-bit words at p into the running Fletcher-4
 * ck, read in the other byte order if swapped. */
void zb_fletcher4(uint64_t ck[4], const uint8_t *p, size_t nwords, bool swapped);

#endif
