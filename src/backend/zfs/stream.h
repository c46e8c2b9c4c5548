/* zfs-stream.h: changed ranges of one data object from a `zfs send -i`
 * stream, for changed block tracking.
 *
 * A push parser over the send stream format (reference/zfs.md §3): feed it
 * the bytes as they come out of the pipe, in pieces of any size, and it
 * calls back once per changed range of the chosen object, in stream order.
 * Payloads (the written data) are folded into the stream checksum and
 * dropped; memory use is one 312-byte record header whatever the input.
 *
 * What is reported for the chosen object:
 *   WRITE           [offset, offset + logical_size)   freed = false
 *   WRITE_EMBEDDED  [offset, offset + length)         freed = false
 *   WRITE_BYREF     [offset, offset + length)         freed = false
 *   FREE            [offset, offset + length)         freed = true
 *                   (length UINT64_MAX: to the end of the object)
 *   FREEOBJECTS     covering the object: [0, UINT64_MAX), freed = true
 *                   (the object was deleted)
 * Not reported: the FREE that immediately follows the OBJECT record of the
 * chosen object when it runs from (maxblkid + 1) * blksz to UINT64_MAX (it
 * describes the space past the object's last block, zfs.md §3.4 step 4).
 * Streams from before OpenZFS 0.8 (zfs-fuse) carry no maxblkid in OBJECT
 * records, so that FREE is reported there.  Senders also emit FREE records
 * past the end of the data with finite lengths (zfs-fuse, after a 1 MiB
 * file: offset 1048576 length 15728640); those are reported as well.  The
 * caller clips every range to the volume size.  Ranges may overlap and are
 * not merged.
 *
 * SPILL, OBJECT, FREEOBJECTS (not covering the object) and OBJECT_RANGE are
 * parsed and skipped.  REDACT records, redacted and resumed streams,
 * compound streams (zfs send -R/-I/-p/-h/-b) and unknown feature flags are
 * refused.
 *
 * Ranges are reported as soon as their record is parsed, before the END
 * record has proved the stream intact: if feed or finish fails, the caller
 * must discard every range it was given.
 *
 * Errors follow util/error.h: -1 with errno and a message that names the
 * record and the byte offset in the stream, e.g. "zfs send stream:
 * truncated in WRITE record at byte 1234 (...)".  Not thread-safe; one
 * parser per stream. */
#ifndef ZL_ZFS_STREAM_H
#define ZL_ZFS_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Called for each changed range of the data object, in stream order.
 * length == UINT64_MAX means "to the end of the object".
 * freed: true for FREE records (the range now reads as zeros), false for
 * data records (WRITE, WRITE_EMBEDDED, WRITE_BYREF).  Return 0, or -1 (with
 * the error set) to stop parsing. */
typedef int (*zstream_range_fn)(void *opaque, uint64_t offset, uint64_t length,
                                bool freed);

struct zstream_info {
  uint64_t fromguid, toguid; /* from BEGIN */
  uint32_t objset_type;      /* 2 = ZFS filesystem, 3 = ZVOL */
  uint64_t records;          /* records parsed */
  uint64_t bytes;            /* stream bytes consumed */
};

#define ZSTREAM_ZVOL_OBJECT 1 /* a zvol's data object */

/* A push parser: feed it the stream in pieces of any size (as read from a
 * pipe).  object: the data object whose ranges are reported (1 for a zvol;
 * for a filesystem holding one file, that file's inode number, which is its
 * object number).  expect_fromguid: 0 to not check, else the guid the
 * stream's BEGIN must carry as fromguid (an incremental stream from that
 * snapshot/bookmark).  A full stream (fromguid 0) is accepted only when
 * expect_fromguid is 0.  Returns NULL with the error set on allocation
 * failure. */
struct zstream *zstream_new(uint64_t object, uint64_t expect_fromguid,
                            zstream_range_fn cb, void *opaque);

/* 0, or -1 with the error set (corrupt stream, bad checksum, unsupported
 * feature, callback error).  After -1 the parser refuses further input
 * (every later call fails with the first error's message). */
int zstream_feed(struct zstream *s, const void *buf, size_t len);

/* The stream is complete: 0 if it ended exactly after a valid END record
 * (whose checksum and toguid matched), else -1 ("truncated ...").  info may
 * be NULL; it is filled with what was parsed so far even on failure. */
int zstream_finish(struct zstream *s, struct zstream_info *info);

/* NULL is allowed. */
void zstream_free(struct zstream *s);

#endif
