/* cbt.h: the changed block tracking record format and its helpers, shared
 * by cbt-record.c (records, rotation), cbt.c (the operations) and
 * core/io/tracking.c (the tracking layer of the write path).  Private to
 * the core. */
#ifndef ZL_CORE_CBT_H
#define ZL_CORE_CBT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/model/model.h"
#include "util/bitmap.h"

#define G           ZL_CBT_GRANULARITY
#define CBT_DIR     "cbt"
#define CBT_MAGIC   "ZLCBT01\n"
#define CBT_HDR     4096
#define CBT_SUFFIX  ".cbt"
#define ACTIVE_SLOT ((size_t)(ZL_CBT_MAX_SIZE / G / 8))
#define KEY_ROOM    256

struct cbt_hdr {
  char magic[8];
  uint32_t version;
  uint32_t granularity;
  uint64_t size;       /* bytes of the volume covered */
  uint64_t slot_bytes; /* bytes per slot */
  uint32_t nslots;     /* 2: a volume's active file, 1: a snapshot's map */
  uint32_t cur;        /* the slot writers set bits in (atomic) */
  uint32_t writers;    /* writers of boot_id that have it open */
  uint32_t pad;
  char boot_id[48];
  char prev[KEY_ROOM]; /* changes are since this snapshot ("" = since enable) */
  char of[KEY_ROOM];   /* the volume this tracks (a map: the snapshot's source) */
};
_Static_assert(sizeof(struct cbt_hdr) <= CBT_HDR, "header fits its page");

struct cbt_file {
  int fd;
  uint8_t *base;
  size_t len;
  struct cbt_hdr *h;
};

static inline uint64_t
nblocks_of(int64_t size)
{
  return zl_bitmap_blocks((uint64_t)size, G);
}

static inline size_t
nbytes_of(int64_t size)
{
  return zl_bitmap_bytes(nblocks_of(size));
}

static inline uint8_t *
slot(const struct cbt_file *f, unsigned i)
{
  return f->base + CBT_HDR + (size_t)i * f->h->slot_bytes;
}

/* Slot i as a map of nblocks blocks (the record's size: nblocks_of(h->size);
 * at most slot_bytes * 8), over the mapping: setters share it. */
static inline struct zl_bitmap
slot_map(const struct cbt_file *f, unsigned i, uint64_t nblocks)
{
  return zl_bitmap_view(slot(f, i), nblocks, G);
}

/* The current slot (the one writers set bits in) as a map of the record's
 * size. */
static inline struct zl_bitmap
cur_map(const struct cbt_file *f)
{
  return slot_map(f, __atomic_load_n(&f->h->cur, __ATOMIC_ACQUIRE),
                  nblocks_of((int64_t)f->h->size));
}

/* The cbt directory of the SR's private area (made when create). */
int cbt_dir(struct zl_sr *sr, bool create);
void cbt_file_name(char *buf, size_t len, const char *key);
/* Map key's record; -1 with errno ENOENT (no error set) when there is none. */
int cbt_map(int dirfd, const char *key, struct cbt_file *f);
void cbt_unmap(struct cbt_file *f);
/* Does this SR keep tracked bitmaps (its CoW layer cannot always answer)? */
bool cbt_tracked(struct zl_sr *sr);
/* Write a new record for key atomically: nslots slots of slot_bytes,
 * slot 0 filled from bits (nbytes) if given. */
int cbt_write_new(int dirfd, const char *key, const char *of, const char *prev,
                  int64_t size, unsigned nslots, size_t slot_bytes, const uint8_t *bits,
                  size_t nbytes);
/* Make this host's writers look for their records before the next write. */
void cbt_gen_bump(void);
/* The host's counter of CBT record changes (<run>/cbt.gen, shared memory)
 * that cbt_gen_bump moves, for writers to watch; NULL where it cannot be
 * had (writers then look on a timer). */
uint64_t *cbt_gen(void);

#endif
