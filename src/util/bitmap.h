/* bitmap.h: a bit array of fixed-size blocks, the one bitmap of the
 * program: CBT records and their results (core/model/cbt*.c), the NBD
 * qemu:dirty-bitmap contexts (nbd/bitmap.c) and the SMAPIv3 base64 bitmap
 * (smapi/volume.c).
 *
 * Layout (the SMAPIv3/CBT one, also what is stored in CBT records): block
 * b is bit (7 - b % 8) of byte b / 8, so the most significant bit of byte
 * 0 is block 0.  Blocks at or past nblocks read as clear.
 *
 * Setting (zl_bitmap_set_*, zl_bitmap_or) is atomic per byte, so threads
 * and processes that share the bits (writers of a CBT record through a
 * MAP_SHARED mapping) may set concurrently; a reader may see a set in
 * progress partly done.  Nothing here takes locks or prints; only
 * zl_bitmap_alloc and zl_bitmap_base64 allocate. */
#ifndef ZL_BITMAP_H
#define ZL_BITMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct zl_bitmap {
  uint64_t size;        /* bytes covered */
  uint64_t granularity; /* bytes per block, > 0 */
  uint64_t nblocks;     /* blocks covered: size / granularity rounded up */
  uint8_t *bits;        /* zl_bitmap_bytes(nblocks) bytes (at least 1) */
};

/* Blocks of granularity bytes that cover size bytes. */
uint64_t zl_bitmap_blocks(uint64_t size, uint64_t granularity);
/* Bytes that hold nblocks bits. */
size_t zl_bitmap_bytes(uint64_t nblocks);

/* A map of size bytes, all clear; bits are owned (zl_bitmap_free).  -1
 * with ENOMEM (error set) when there is no memory; m is then empty. */
int zl_bitmap_alloc(struct zl_bitmap *m, uint64_t size, uint64_t granularity);
/* Free an allocated map's bits; m is empty after (freeing again is a no-op). */
void zl_bitmap_free(struct zl_bitmap *m);
/* A map over someone else's bits (e.g. a slot of a mapped CBT record):
 * nblocks blocks, size nblocks * granularity.  Never zl_bitmap_free it. */
struct zl_bitmap zl_bitmap_view(uint8_t *bits, uint64_t nblocks, uint64_t granularity);
/* Clear every block (not atomic: no concurrent setters). */
void zl_bitmap_clear(struct zl_bitmap *m);

/* Set blocks [first, first + count), clipped to the map. */
void zl_bitmap_set_blocks(struct zl_bitmap *m, uint64_t first, uint64_t count);
/* Set the blocks that hold any byte of [offset, offset + length), clipped
 * to size (a length past the end, UINT64_MAX included, means to the end). */
void zl_bitmap_set_bytes(struct zl_bitmap *m, uint64_t offset, uint64_t length);
/* dst |= src over the blocks both cover (the smaller nblocks); the
 * granularities are the caller's to match. */
void zl_bitmap_or(struct zl_bitmap *dst, const struct zl_bitmap *src);

/* Is block b set?  (False at or past nblocks.) */
bool zl_bitmap_test(const struct zl_bitmap *m, uint64_t b);
/* The next run of set blocks at or after *pos: true with [*first, *first +
 * *count), *pos moved past it; false (and *pos = nblocks) when there is
 * none. */
bool zl_bitmap_next_run(const struct zl_bitmap *m, uint64_t *pos, uint64_t *first,
                        uint64_t *count);
/* The end of the run of blocks in the state of block b that starts at b:
 * the first block in (b, limit) whose state differs, else limit.  Blocks
 * past nblocks are clear, so a clear run may go on to limit.  Needs b <
 * limit. */
uint64_t zl_bitmap_run_end(const struct zl_bitmap *m, uint64_t b, uint64_t limit);

/* Blocks [first, first + n) packed from the most significant bit of the
 * first byte, padded with zero bits to whole 32-bit words, as standard
 * base64 with '=' padding and no line breaks: the SMAPIv3 bitmap, as Xen
 * Orchestra reads it (big-endian 32-bit words; a partial word throws).
 * Blocks past nblocks encode as clear.  A malloc()ed, NUL-terminated
 * string, or NULL with ENOMEM (error set). */
char *zl_bitmap_base64(const struct zl_bitmap *m, uint64_t first, uint64_t n);

#endif
