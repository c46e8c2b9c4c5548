/* cbt-record.c: changed block tracking.
 *
 * Where the answer comes from, in order:
 *   1. the copy-on-write layer (backend vol_changes): a ZFS send stream, or
 *      the extent maps of two reflinked files.  Needs both volumes' data.
 *   2. tracked bitmaps, kept by every writer of the volume (the NBD server,
 *      `vol write`) on storage that cannot always answer by itself (the
 *      file backend: a snapshot whose data was destroyed has no extents).
 *
 * Tracked bitmaps live in the SR's private area, <priv>/cbt/<key>.cbt, so
 * they travel with shared storage.  One bit per 64 KiB block, most
 * significant bit of byte 0 = block 0 (the SMAPIv3 bitmap layout).
 *
 *   the volume's file (active): two slots; writers set bits in slot[cur];
 *       the changes since the snapshot named "prev" are slot[0] | slot[1]
 *       ("" = since CBT was enabled).  Sized for CBT_MAX_SIZE, sparse.
 *   a snapshot's file (map): one slot, the changes from "prev" to it.
 *
 * A writer sets a block's bit before it issues the write and again after
 * the write completed, reading "cur" each time.  It looks for its record
 * again when <run>/cbt.gen changes (enable and disable on this host bump
 * it) and once a second.  A snapshot (rotate):
 *   move slot[j = 1 - cur] into slot[cur] (it is empty unless a rotation
 *   was cut off); cur = j; take the storage snapshot S;
 *   map(S) = slot[old] | slot[j], prev = active.prev, written durably;
 *   active.prev = S; clear slot[old].
 * A write that reached the storage before S set its first bit before S, so
 * it is in slot[old] or slot[j] and in map(S).  A write that reached it after
 * S set its second bit after cur = j, so it is in slot[j], which stays.  A
 * crash anywhere leaves active = slot[0] | slot[1] covering at least the
 * changes since active.prev; extra bits only ever over-report.
 *
 * Bits live in a MAP_SHARED mapping, so a killed writer loses none (the page
 * cache keeps them).  A host crash can lose bits not yet written back: a
 * writer records the boot id and counts itself in the header, and a file
 * found with writers of an earlier boot is marked entirely dirty.  FLUSH and
 * FUA write the bits back before they are acknowledged.  The tracking layer
 * itself is core/io/tracking.c, in every writer's write path (core/io/io.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/model/cbt.h"
#include "core/model/model.h"
#include "util/beneath.h"
#include "util/bitmap.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

/* The cbt directory of the SR's private area. */
int
cbt_dir(struct zl_sr *sr, bool create)
{
  int fd = zl_dir_beneath(sr->st.privfd, CBT_DIR, create);
  if (fd == -1 && (create || errno != ENOENT))
    zl_error_prefix("CBT directory of SR %s: ", sr->st.key);
  return fd;
}

void
cbt_file_name(char *buf, size_t len, const char *key)
{
  snprintf(buf, len, "%s" CBT_SUFFIX, key);
}

void
cbt_unmap(struct cbt_file *f)
{
  if (f->base)
    munmap(f->base, f->len);
  if (f->fd >= 0)
    close(f->fd);
  f->base = NULL;
  f->h = NULL;
  f->fd = -1;
}

/* Map key's file.  ENOENT (no error set) when there is none. */
int
cbt_map(int dirfd, const char *key, struct cbt_file *f)
{
  char name[NAME_MAX + 1];
  struct stat st;

  f->fd = -1;
  f->base = NULL;
  f->h = NULL;
  cbt_file_name(name, sizeof name, key);
  f->fd = zl_file_beneath(dirfd, name, O_RDWR, 0);
  if (f->fd == -1) {
    if (errno != ENOENT)
      zl_error_prefix("CBT record of %s: ", key);
    return -1;
  }
  if (fstat(f->fd, &st) == -1 || st.st_size < CBT_HDR) {
    zl_error(EIO, "CBT record of %s is damaged (short)", key);
    goto fail;
  }
  f->len = (size_t)st.st_size;
  f->base = mmap(NULL, f->len, PROT_READ | PROT_WRITE, MAP_SHARED, f->fd, 0);
  if (f->base == MAP_FAILED) {
    f->base = NULL;
    zl_error_sys(errno, "CBT record of %s: mmap", key);
    goto fail;
  }
  f->h = (struct cbt_hdr *)f->base;
  if (memcmp(f->h->magic, CBT_MAGIC, 8) != 0 || f->h->granularity != G ||
      (f->h->nslots != 1 && f->h->nslots != 2) ||
      CBT_HDR + f->h->nslots * f->h->slot_bytes > f->len ||
      nbytes_of((int64_t)f->h->size) > f->h->slot_bytes || f->h->cur >= f->h->nslots) {
    zl_error(EIO, "CBT record of %s is damaged (bad header)", key);
    goto fail;
  }
  /* checked, not repaired: a store into the mapping can fault (below) */
  if (!memchr(f->h->prev, '\0', KEY_ROOM) || !memchr(f->h->of, '\0', KEY_ROOM)) {
    zl_error(EIO, "CBT record of %s is damaged (bad names)", key);
    goto fail;
  }
  return 0;
fail:
  cbt_unmap(f);
  errno = EIO;
  return -1;
}

/* Give the record its blocks now: bits are set through a shared mapping,
 * and a write fault on a hole of a full filesystem is a SIGBUS, not an
 * error.  Where the filesystem cannot (EOPNOTSUPP) it stays sparse. */
static int
allocate(int fd, off_t off, off_t len)
{
  int e = len > 0 ? posix_fallocate(fd, off, len) : 0;
  if (e == 0 || e == EOPNOTSUPP || e == EINVAL)
    return 0;
  errno = e;
  return -1;
}

/* The header and the bytes [from, to) of every slot: what a volume of the
 * record's size uses (slots are sized for the largest volume; the rest is
 * allocated when the volume grows). */
static int
allocate_bits(int fd, unsigned nslots, size_t slot_bytes, size_t from, size_t to)
{
  if (from == 0 && allocate(fd, 0, CBT_HDR) == -1)
    return -1;
  for (unsigned i = 0; i < nslots; i++) {
    if (allocate(fd, (off_t)(CBT_HDR + i * slot_bytes + from), (off_t)(to - from)) == -1)
      return -1;
  }
  return 0;
}

/* Write a new file for key atomically: nslots slots of slot_bytes, slot 0
 * filled from bits (nbytes) if given. */
int
cbt_write_new(int dirfd, const char *key, const char *of, const char *prev, int64_t size,
              unsigned nslots, size_t slot_bytes, const uint8_t *bits, size_t nbytes)
{
  char name[NAME_MAX + 1], tmp[NAME_MAX + 1];
  struct cbt_hdr h = {0};

  cbt_file_name(name, sizeof name, key);
  zl_tmp_name(tmp, sizeof tmp, name); /* flocked while it lives: see sweep() */
  memcpy(h.magic, CBT_MAGIC, 8);
  h.version = 1;
  h.granularity = G;
  h.size = (uint64_t)size;
  h.slot_bytes = slot_bytes;
  h.nslots = nslots;
  snprintf(h.prev, sizeof h.prev, "%s", prev ? prev : "");
  snprintf(h.of, sizeof h.of, "%s", of);

  CLEANUP_CLOSE int fd = zl_file_beneath(dirfd, tmp, O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd == -1 || flock(fd, LOCK_EX) == -1 || zl_pwrite_all(fd, &h, sizeof h, 0) == -1 ||
      ftruncate(fd, (off_t)(CBT_HDR + nslots * slot_bytes)) == -1 ||
      allocate_bits(fd, nslots, slot_bytes, 0, nbytes_of(size)) == -1 ||
      (bits && nbytes && zl_pwrite_all(fd, bits, nbytes, CBT_HDR) == -1) ||
      fsync(fd) == -1 || renameat(dirfd, tmp, dirfd, name) == -1 ||
      zl_fsync_dir(dirfd) == -1) {
    zl_error_sys(errno, "write CBT record of %s", key);
    unlinkat(dirfd, tmp, 0);
    return -1;
  }
  return 0;
}

/* --- state kept with volume operations (called by the core under LOCK_EX) -- */

/* Does this SR keep tracked bitmaps?  Storage whose copy-on-write layer can
 * always answer (it keeps a destroyed snapshot's blocks, or a bookmark)
 * needs none. */
bool
cbt_tracked(struct zl_sr *sr)
{
  return !(sr->st.be->caps(&sr->st) & ZL_CAP_CHANGES_ALWAYS);
}

int
zl_cbt_rotate_begin(struct zl_sr *sr, const char *key, const json_t *meta,
                    struct zl_cbt_rotation *rot)
{
  rot->active = false;
  rot->old = 0;
  if (!zl_meta_cbt(meta) || !cbt_tracked(sr))
    return 0;
  CLEANUP_CLOSE int dfd = cbt_dir(sr, false);
  struct cbt_file f;
  if (dfd == -1 || cbt_map(dfd, key, &f) == -1)
    return errno == ENOENT ? 0 : -1;
  if (f.h->nslots == 2) {
    unsigned old = __atomic_load_n(&f.h->cur, __ATOMIC_ACQUIRE), j = 1 - old;
    uint64_t nb = nblocks_of((int64_t)f.h->size);
    struct zl_bitmap cur = slot_map(&f, old, nb), spare = slot_map(&f, j, nb);
    /* The spare slot is empty after a rotation that finished; after one cut
     * off by a crash it still holds changes no map has: they move into the
     * current slot (the changes are the union of both) before it is reused. */
    zl_bitmap_or(&cur, &spare);
    zl_bitmap_clear(&spare);
    __atomic_store_n(&f.h->cur, j, __ATOMIC_RELEASE);
    if (fdatasync(f.fd) == -1) {
      zl_error_sys(errno, "CBT record of %s", key);
      cbt_unmap(&f);
      return -1;
    }
    rot->active = true;
    rot->old = old;
  }
  cbt_unmap(&f);
  zl_fault("cbt-rotate", "switched");
  return 0;
}

int
zl_cbt_rotate_end(struct zl_sr *sr, const char *key, const char *snap,
                  const struct zl_cbt_rotation *rot)
{
  if (!rot->active)
    return 0;
  CLEANUP_CLOSE int dfd = cbt_dir(sr, false);
  struct cbt_file f;
  if (dfd == -1 || cbt_map(dfd, key, &f) == -1)
    return -1;
  size_t n = nbytes_of((int64_t)f.h->size);
  uint64_t nb = nblocks_of((int64_t)f.h->size);
  struct zl_bitmap map, s0 = slot_map(&f, 0, nb), s1 = slot_map(&f, 1, nb),
                        old = slot_map(&f, rot->old, nb);
  int r = -1;
  if (zl_bitmap_alloc(&map, f.h->size, G) == -1)
    goto out;
  zl_bitmap_or(&map, &s0);
  zl_bitmap_or(&map, &s1);
  if (cbt_write_new(dfd, snap, key, f.h->prev, (int64_t)f.h->size, 1, n, map.bits, n) ==
      -1)
    goto out;
  zl_fault("cbt-rotate", "map-written");
  snprintf(f.h->prev, KEY_ROOM, "%s", snap);
  if (fdatasync(f.fd) == -1) {
    zl_error_sys(errno, "CBT record of %s", key);
    goto out;
  }
  zl_bitmap_clear(&old);
  r = 0;
out:
  zl_bitmap_free(&map);
  cbt_unmap(&f);
  return r;
}

/* The map whose "prev" is key (its successor in key's chain): the volume's
 * active file or a later snapshot's map.  Returns its key (malloc()ed), NULL
 * with errno ENOENT if none. */
static char *
successor(int dfd, const char *key)
{
  CLEANUP_DIR DIR *d = fdopendir(dup(dfd));
  struct dirent *de;

  if (!d)
    return NULL;
  while ((de = readdir(d))) {
    size_t len = strlen(de->d_name), sl = strlen(CBT_SUFFIX);
    if (de->d_name[0] == '.' || len <= sl || strcmp(de->d_name + len - sl, CBT_SUFFIX))
      continue;
    char k[NAME_MAX + 1];
    snprintf(k, sizeof k, "%.*s", (int)(len - sl), de->d_name);
    struct cbt_file f;
    if (cbt_map(dfd, k, &f) == -1)
      continue;
    bool hit = strcmp(f.h->prev, key) == 0;
    cbt_unmap(&f);
    if (hit)
      return strdup(k);
  }
  errno = ENOENT;
  return NULL;
}

/* Stores into a record's mapping fault with SIGBUS, not an error, when
 * the filesystem cannot back the page (a full disk; copy-on-write
 * filesystems need new blocks even for pages that have some).  The
 * control-plane updates run under this guard, which turns the fault into
 * ENOSPC; fn must hold no lock and allocate nothing. */
static _Thread_local sigjmp_buf *bus_guard;

static void
on_sigbus(int sig, siginfo_t *si, void *uc)
{
  (void)si;
  (void)uc;
  if (bus_guard)
    siglongjmp(*bus_guard, 1);
  signal(sig, SIG_DFL); /* not ours: die of it as we would have */
  raise(sig);
}

static int
guarded(void (*fn)(void *), void *arg, const char *key)
{
  struct sigaction sa = {.sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO}, old;
  sigjmp_buf jb;
  int r = 0;

  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGBUS, &sa, &old) == -1) {
    fn(arg); /* cannot guard: as before */
    return 0;
  }
  if (sigsetjmp(jb, 1) == 0) {
    bus_guard = &jb;
    fn(arg);
  } else {
    zl_error_kind(ZL_ERR_NO_SPACE, ENOSPC,
                  "CBT record of %s: the filesystem cannot store its update (full?)",
                  key);
    r = -1;
  }
  bus_guard = NULL;
  sigaction(SIGBUS, &old, NULL);
  return r;
}

struct merge {
  struct cbt_file *into, *from;
};

static void
merge_fn(void *arg)
{
  struct merge *m = arg;
  struct zl_bitmap into = cur_map(m->into),
                   from = slot_map(m->from, 0, nblocks_of((int64_t)m->from->h->size));
  zl_bitmap_or(&into, &from); /* over the smaller size */
  snprintf(m->into->h->prev, KEY_ROOM, "%s", m->from->h->prev);
}

struct mark {
  struct cbt_file *f;
  uint64_t first, nblocks;
  uint64_t new_size; /* 0: keep */
};

static void
mark_fn(void *arg)
{
  struct mark *m = arg;
  struct zl_bitmap cur =
      slot_map(m->f, __atomic_load_n(&m->f->h->cur, __ATOMIC_ACQUIRE), m->nblocks);
  if (m->nblocks > m->first)
    zl_bitmap_set_blocks(&cur, m->first, m->nblocks - m->first);
  if (m->new_size)
    m->f->h->size = m->new_size;
}

int
zl_cbt_forget(struct zl_sr *sr, const char *key)
{
  CLEANUP_CLOSE int dfd = cbt_dir(sr, false);
  struct cbt_file f, s;
  char name[NAME_MAX + 1];

  if (dfd == -1)
    return errno == ENOENT ? 0 : -1;
  if (cbt_map(dfd, key, &f) == -1)
    return errno == ENOENT ? 0 : -1;
  /* a snapshot's changes move into its successor: (P,S) + (S,N) = (P,N) */
  CLEANUP_FREE char *next = f.h->nslots == 1 ? successor(dfd, key) : NULL;
  if (next && cbt_map(dfd, next, &s) == 0) {
    struct merge m = {&s, &f};
    /* a merge that cannot be stored (a full disk) is not done: the
     * successor still names key as its predecessor, so a query across the
     * gap is an error, never a partial answer; the destroy goes on */
    if (guarded(merge_fn, &m, next) == -1 || fdatasync(s.fd) == -1) {
      zl_warn("destroy of %s: its changes cannot be moved into %s (%s); changed "
              "blocks across it can no longer be listed",
              key, next, errno == ENOSPC ? "no space" : strerror(errno));
      zl_error_clear();
    }
    cbt_unmap(&s);
  }
  cbt_unmap(&f);
  cbt_file_name(name, sizeof name, key);
  if (unlinkat(dfd, name, 0) == -1 && errno != ENOENT) {
    zl_error_sys(errno, "remove CBT record of %s", key);
    return -1;
  }
  return 0;
}

int
zl_cbt_mark_all(struct zl_sr *sr, const char *key)
{
  CLEANUP_CLOSE int dfd = cbt_dir(sr, false);
  struct cbt_file f;
  if (dfd == -1 || cbt_map(dfd, key, &f) == -1)
    return errno == ENOENT ? 0 : -1;
  struct mark m = {&f, 0, nblocks_of((int64_t)f.h->size), 0};
  int r = guarded(mark_fn, &m, key);
  if (r == 0 && (r = fdatasync(f.fd)) == -1)
    zl_error_sys(errno, "CBT record of %s", key);
  cbt_unmap(&f);
  return r;
}

int
zl_cbt_resize(struct zl_sr *sr, const char *key, int64_t size)
{
  CLEANUP_CLOSE int dfd = cbt_dir(sr, false);
  struct cbt_file f;
  if (dfd == -1 || cbt_map(dfd, key, &f) == -1)
    return errno == ENOENT ? 0 : -1;
  int r = 0;
  if (nbytes_of(size) > f.h->slot_bytes) {
    zl_error_kind(ZL_ERR_SIZE, EFBIG,
                  "volume %s: changed block tracking covers at most %lld TiB", key,
                  (long long)(ZL_CBT_MAX_SIZE >> 40));
    r = -1;
  } else if ((uint64_t)size > f.h->size) {
    /* the new blocks read as zeros: changed from any earlier state */
    struct mark m = {&f, f.h->size / G, nblocks_of(size), (uint64_t)size};
    if (allocate_bits(f.fd, f.h->nslots, f.h->slot_bytes, nbytes_of((int64_t)f.h->size),
                      nbytes_of(size)) == -1) {
      zl_error_sys(errno, "CBT record of %s", key);
      r = -1;
    } else if (guarded(mark_fn, &m, key) == -1) {
      r = -1;
    } else if (fdatasync(f.fd) == -1) {
      zl_error_sys(errno, "CBT record of %s", key);
      r = -1;
    }
  }
  cbt_unmap(&f);
  return r;
}

/* --- recovery ------------------------------------------------------------------ */

int
zl_cbt_rotate_recover(struct zl_sr *sr, const char *key, const char *snap)
{
  CLEANUP_CLOSE int dfd = cbt_dir(sr, false);
  struct cbt_file f, m;

  if (dfd == -1 || cbt_map(dfd, key, &f) == -1)
    return errno == ENOENT ? 0 : -1;
  if (f.h->nslots != 2 || strcmp(f.h->prev, snap) == 0) {
    cbt_unmap(&f);
    return 0;
  }
  if (cbt_map(dfd, snap, &m) == 0) {
    /* the map was written; only the volume's "prev" was not moved on */
    if (strcmp(m.h->prev, f.h->prev) == 0) {
      snprintf(f.h->prev, KEY_ROOM, "%s", snap);
      fdatasync(f.fd);
      /* the slot before the switch is all in the map */
      struct zl_bitmap before =
          slot_map(&f, 1 - __atomic_load_n(&f.h->cur, __ATOMIC_ACQUIRE),
                   nblocks_of((int64_t)f.h->size));
      zl_bitmap_clear(&before);
      zl_info("recovery: CBT of %s continues from snapshot %s", key, snap);
    }
    cbt_unmap(&m);
    cbt_unmap(&f);
    return 0;
  }
  if (errno != ENOENT) {
    cbt_unmap(&f);
    return -1;
  }
  /* the storage snapshot was taken after the switch: finish the rotation
   * (the map may hold writes made since; extra bits, never missing ones) */
  struct zl_cbt_rotation rot = {.active = true,
                                .old = 1 - __atomic_load_n(&f.h->cur, __ATOMIC_ACQUIRE)};
  cbt_unmap(&f);
  zl_info("recovery: finishing the CBT rotation of %s at snapshot %s", key, snap);
  return zl_cbt_rotate_end(sr, key, snap, &rot);
}

int
zl_cbt_sr_remove(struct zl_sr *sr)
{
  int dfd = cbt_dir(sr, false);
  if (dfd == -1)
    return errno == ENOENT ? 0 : -1;
  CLEANUP_DIR DIR *d = fdopendir(dfd);
  struct dirent *de;
  if (!d) {
    close(dfd);
    zl_error_sys(errno, "CBT directory of SR %s", sr->st.key);
    return -1;
  }
  while ((de = readdir(d)))
    if (de->d_name[0] != '.' || (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")))
      unlinkat(dirfd(d), de->d_name, 0);
  if (unlinkat(sr->st.privfd, CBT_DIR, AT_REMOVEDIR) == -1 && errno != ENOENT) {
    zl_error_sys(errno, "CBT directory of SR %s", sr->st.key);
    return -1;
  }
  return 0;
}

/* --- the host's generation of CBT records ------------------------------------- */

/* <run>/cbt.gen: a counter in shared memory that enable and disable bump
 * after they made or removed a record, so that every writer on this host
 * looks again before its next write (writers otherwise look once a
 * second).  NULL when it cannot be had: writers then rely on the timer. */
static _Atomic(uint64_t *) gen_ptr;
static pthread_once_t gen_once = PTHREAD_ONCE_INIT;

static void
gen_open(void)
{
  CLEANUP_CLOSE int run = zl_run_dirfd(true);
  int fd = run == -1 ? -1 : zl_file_beneath(run, "cbt.gen", O_RDWR | O_CREAT, 0644);
  struct stat st;
  if (fd == -1 || fstat(fd, &st) == -1 ||
      (st.st_size < 4096 && ftruncate(fd, 4096) == -1)) {
    if (fd >= 0)
      close(fd);
    zl_error_clear();
    return;
  }
  void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p != MAP_FAILED)
    atomic_store(&gen_ptr, (uint64_t *)p);
}

uint64_t *
cbt_gen(void)
{
  pthread_once(&gen_once, gen_open);
  return atomic_load(&gen_ptr);
}

void
cbt_gen_bump(void)
{
  uint64_t *g = cbt_gen();
  if (g)
    __atomic_fetch_add(g, 1, __ATOMIC_SEQ_CST);
}
