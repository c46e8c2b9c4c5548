/* fiemap.h: what differs between two files that share extents (reflink
 * copies), from their physical extent maps (FIEMAP), without reading data.
 */
#ifndef ZL_FIEMAP_H
#define ZL_FIEMAP_H

#include <stdint.h>

/* cb(opaque, offset, length) for every byte range of [0, size) where a and
 * b may hold different data: not both holes, and not the same physical
 * blocks at the same offset.  Ranges come in increasing order.  Extents the
 * filesystem cannot place exactly (delayed allocation, inline, encoded
 * ones that differ in any way) count as different.  -1 with the error set
 * (ENOTSUP when the filesystem has no FIEMAP). */
int zl_fiemap_diff(int a, int b, uint64_t size,
                   int (*cb)(void *opaque, uint64_t offset, uint64_t length),
                   void *opaque);

#endif
