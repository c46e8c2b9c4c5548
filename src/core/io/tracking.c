/* tracking.c: the CBT layer of the write path (see core/cbt.c for the
 * record format and the rotation it must agree with).
 *
 * Every range a batch changes is marked in the volume's record before the
 * batch goes to the layer below and again after it came back, reading the
 * record's current slot each time; before a FLUSH or a FUA request
 * completes, the bits are written back (fdatasync of the record), and a
 * batch whose bits cannot be made durable fails its writes and flushes
 * with EIO.  The layer is in a stack when the SR keeps tracked bitmaps
 * (cbt_tracked); whether the volume has CBT enabled is found by looking for
 * its record: at open, when <run>/cbt.gen moves, and once a second. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/io/io.h"
#include "core/model/cbt.h"
#include "util/beneath.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

#define CHECK_NS 1000000000ull /* writers look for a new record this often */

/* --- the layer ---------------------------------------------------------------- */

struct tracking {
  pthread_rwlock_t lock;
  int privfd; /* the SR's private area; its cbt/ may come later */
  char key[KEY_ROOM];
  struct cbt_file f; /* f.base NULL: no record (CBT off) */
  dev_t dev;
  ino_t ino;
  bool counted; /* we are in f's writer count */
  atomic_bool dirty;
  atomic_bool wrote;
  uint64_t *gen;             /* <run>/cbt.gen (cbt_gen), or NULL */
  _Atomic uint64_t seen_gen; /* of <run>/cbt.gen, at the last look */
  _Atomic uint64_t next_check;
  char boot[48];
};

static uint64_t
now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Under the write lock: let go of the mapped file. */
static void
writer_release(struct tracking *w)
{
  if (!w->f.base)
    return;
  if (w->counted && flock(w->f.fd, LOCK_EX) == 0) {
    if (w->f.h->writers > 0)
      w->f.h->writers--;
    fdatasync(w->f.fd);
    flock(w->f.fd, LOCK_UN);
  }
  w->counted = false;
  cbt_unmap(&w->f);
}

/* Under the write lock: (re)map the record if it appeared or was replaced.
 * Writes made since the last look may have gone untracked (or into a record
 * that was replaced): they are unknown, so everything is marked. */
static void
writer_check(struct tracking *w, bool first, bool by_gen)
{
  char name[NAME_MAX + 1];
  struct stat st;

  cbt_file_name(name, sizeof name, w->key);
  CLEANUP_CLOSE int dfd = zl_dir_beneath(w->privfd, CBT_DIR, false);
  bool exists = dfd >= 0 && fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
  bool same = exists && w->f.base && st.st_dev == w->dev && st.st_ino == w->ino;
  bool wrote = atomic_exchange(&w->wrote, false);

  if (!same) {
    writer_release(w);
    if (exists && cbt_map(dfd, w->key, &w->f) == 0) {
      if (w->f.h->nslots != 2) {
        cbt_unmap(&w->f);
      } else {
        w->dev = st.st_dev;
        w->ino = st.st_ino;
        /* Writes since the last look are unknown, unless this look comes
         * from a local enable: those writes all reached the storage before
         * it returned, so before any snapshot that counts. */
        bool all = !first && wrote && !by_gen;
        if (flock(w->f.fd, LOCK_EX) == 0) {
          if (w->f.h->writers > 0 && strcmp(w->f.h->boot_id, w->boot) != 0) {
            zl_warn("CBT record of %s was open for writing when its host stopped; "
                    "marking every block changed",
                    w->key);
            all = true;
            w->f.h->writers = 0;
          }
          w->f.h->writers++;
          snprintf(w->f.h->boot_id, sizeof w->f.h->boot_id, "%s", w->boot);
          w->counted = true;
          struct zl_bitmap cur = cur_map(&w->f);
          if (all)
            zl_bitmap_set_blocks(&cur, 0, cur.nblocks);
          fdatasync(w->f.fd);
          flock(w->f.fd, LOCK_UN);
        }
      }
    }
  }
  atomic_store(&w->next_check, now_ns() + CHECK_NS);
}

static bool
tracking_wanted(const struct zl_io_target *t)
{
  return !t->readonly && cbt_tracked(t->sr);
}

static int
tracking_open(struct zl_io_layer *self, const struct zl_io_target *t)
{
  struct tracking *w = calloc(1, sizeof *w);
  if (!w) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  w->f.fd = -1;
  w->privfd = fcntl(t->sr->st.privfd, F_DUPFD_CLOEXEC, 0);
  if (w->privfd == -1) {
    zl_error_sys(errno, "SR %s", t->sr->st.key);
    free(w);
    return -1;
  }
  pthread_rwlock_init(&w->lock, NULL);
  snprintf(w->key, sizeof w->key, "%s", t->key);
  zl_boot_id(w->boot, sizeof w->boot);
  uint64_t *g = w->gen = cbt_gen();
  atomic_store(&w->seen_gen, g ? __atomic_load_n(g, __ATOMIC_ACQUIRE) : 0);
  writer_check(w, true, false);
  self->state = w;
  return 0;
}

/* Mark [offset, offset + length) changed in the current slot. */
static void
mark(struct tracking *w, uint64_t offset, uint64_t length)
{
  if (length == 0)
    return;
  uint64_t *g = w->gen;
  uint64_t cur_gen = g ? __atomic_load_n(g, __ATOMIC_ACQUIRE) : 0;
  bool by_gen = cur_gen != atomic_load_explicit(&w->seen_gen, memory_order_relaxed);
  if (by_gen || now_ns() >= atomic_load_explicit(&w->next_check, memory_order_relaxed)) {
    pthread_rwlock_wrlock(&w->lock);
    if (atomic_exchange(&w->seen_gen, cur_gen) != cur_gen)
      writer_check(w, false, true);
    else if (now_ns() >= atomic_load(&w->next_check))
      writer_check(w, false, false);
    pthread_rwlock_unlock(&w->lock);
  }
  pthread_rwlock_rdlock(&w->lock);
  if (!atomic_load_explicit(&w->wrote, memory_order_relaxed)) /* one line, many threads */
    atomic_store_explicit(&w->wrote, true, memory_order_relaxed);
  if (w->f.base) {
    uint64_t nb = w->f.h->slot_bytes * 8;
    uint64_t first = offset / G, last = (offset + length - 1) / G;
    if (first < nb) {
      struct zl_bitmap cur =
          slot_map(&w->f, __atomic_load_n(&w->f.h->cur, __ATOMIC_ACQUIRE), nb);
      zl_bitmap_set_blocks(&cur, first, last - first + 1);
      atomic_store_explicit(&w->dirty, true, memory_order_relaxed);
    }
  }
  pthread_rwlock_unlock(&w->lock);
}

/* Write the bits set since the last sync back to the record. */
static int
sync_bits(struct tracking *w)
{
  if (!atomic_exchange(&w->dirty, false))
    return 0;
  pthread_rwlock_rdlock(&w->lock);
  int r = w->f.base ? fdatasync(w->f.fd) : 0;
  pthread_rwlock_unlock(&w->lock);
  if (r == -1) {
    zl_error_sys(errno, "CBT record of %s", w->key);
    atomic_store(&w->dirty, true); /* the next flush tries again */
  }
  return r;
}

static void
tracking_close(struct zl_io_layer *self)
{
  struct tracking *w = self->state;
  if (!w)
    return;
  if (sync_bits(w) == -1)
    zl_err("%s", zl_error_msg());
  pthread_rwlock_wrlock(&w->lock);
  writer_release(w);
  pthread_rwlock_unlock(&w->lock);
  pthread_rwlock_destroy(&w->lock);
  close(w->privfd);
  free(w);
}

static void
tracking_batch(struct zl_io_layer *self, struct zl_io_queue *q, struct zl_io_req *r,
               size_t n)
{
  struct tracking *w = self->state;
  bool durable = false;

  for (size_t i = 0; i < n; i++) {
    if (zl_io_changes(&r[i]))
      mark(w, r[i].off, r[i].len);
  }
  zl_io_next(self, q, r, n);
  for (size_t i = 0; i < n; i++) {
    if (zl_io_changes(&r[i])) {
      mark(w, r[i].off, r[i].len);
      durable |= (r[i].flags & ZL_IO_FUA) != 0;
    }
    durable |= r[i].op == ZL_IO_FLUSH;
  }
  if (durable && sync_bits(w) == -1) {
    zl_err("%s", zl_error_msg());
    for (size_t i = 0; i < n; i++) { /* not durable: not acknowledged */
      if (zl_io_changes(&r[i]) || r[i].op == ZL_IO_FLUSH)
        r[i].result = -EIO;
    }
  }
}

const struct zl_io_layer_ops zl_io_tracking = {
    .name = "tracking",
    .wanted = tracking_wanted,
    .open = tracking_open,
    .close = tracking_close,
    .batch = tracking_batch,
};
