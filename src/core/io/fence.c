/* fence.c: the fence page of a volume (fence.h) and the fence layer, the
 * top of every writable stack (io.h).
 *
 * Writers and fencers meet on the page without a lock, in the manner of
 * Dekker: a writer first counts itself in flight (in its process's slot),
 * then reads the state; a fencer first changes the state, then waits for
 * the counts to drain.  Both with sequentially consistent atomics, so
 * either the writer sees the new state, or the fencer sees the writer in
 * flight and waits for it.  A slot whose process died (a killed server)
 * is reclaimed, so a crash never blocks a handoff.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/io/fence.h"
#include "core/io/io.h"
#include "core/model/model.h"
#include "util/beneath.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/escape.h"
#include "util/log.h"
#include "util/rundir.h"

#include "util/banned.h" /* last: after every declaration */

#define FENCE_MAGIC   0x7a6c6663u /* "zlfc" */
#define FENCE_VERSION 1u
#define SLOTS         32
#define ID_MAX        128

struct slot {
  _Atomic int32_t pid;
  _Atomic uint32_t inflight; /* writes of that process running now */
};

struct page {
  uint32_t magic, version;
  _Atomic uint32_t seq;     /* odd while the fields below change */
  _Atomic uint32_t open;    /* 1: anyone may write */
  _Atomic uint64_t gen;     /* the activation's generation */
  _Atomic uint32_t wake;    /* futex word: moved when a count drains */
  _Atomic uint32_t waiting; /* fencers waiting for it */
  char self[ID_MAX];        /* this host, as the setter knew it */
  char holder[ID_MAX];      /* who may write when not open; "" nobody */
  struct slot slot[SLOTS];
};

_Static_assert(sizeof(struct page) <= 4096, "the fence page fits a page");

/* <run>/fence/<SR uuid>%2F<key>, opened (made when create) and locked
 * exclusively; the page mapped in *pg.  -1 (ENOENT without a message when
 * !create and missing).  The lock outlives close() while the page is
 * mapped (the mapping holds the open file): unmap first, or unlock. */
static int
open_page(struct zl_sr *sr, const char *key, bool create, struct page **pg)
{
  char name[PATH_MAX], file[NAME_MAX + 1];
  CLEANUP_CLOSE int dfd = zl_run_subdir("fence", create);
  struct stat st;

  if (dfd == -1)
    return -1;
  snprintf(name, sizeof name, "%s/%s", zl_meta_str(sr->info, "uuid"), key);
  if (zl_escape_name(name, "", file, sizeof file) == -1)
    return -1;
  int fd = zl_file_beneath(dfd, file, O_RDWR | (create ? O_CREAT : 0), 0600);
  if (fd == -1) {
    if (errno == ENOENT && !create)
      return -1;
    zl_error_sys(errno, "fence of %s", key);
    return -1;
  }
  if (flock(fd, LOCK_EX) == -1 || fstat(fd, &st) == -1 ||
      (st.st_size < 4096 && ftruncate(fd, 4096) == -1)) {
    zl_error_sys(errno, "fence of %s", key);
    close(fd);
    return -1;
  }
  void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) {
    zl_error_sys(errno, "fence of %s: map", key);
    close(fd);
    return -1;
  }
  struct page *p = m;
  if (atomic_load(&p->seq) & 1)
    atomic_fetch_add(&p->seq, 1); /* a setter died mid-change (we hold its lock) */
  if (p->magic != FENCE_MAGIC || p->version != FENCE_VERSION) {
    memset(p, 0, sizeof *p); /* new (or from another version): open */
    atomic_store(&p->open, 1);
    p->magic = FENCE_MAGIC;
    p->version = FENCE_VERSION;
  }
  *pg = p;
  return fd;
}

static long
futex(_Atomic uint32_t *word, int op, uint32_t val, const struct timespec *ts)
{
  return syscall(SYS_futex, (uint32_t *)word, op, val, ts, NULL, 0);
}

static bool
alive(int32_t pid)
{
  return pid > 0 && (kill(pid, 0) == 0 || errno != ESRCH);
}

/* Is some process's write in flight?  Dead processes' slots are freed. */
static bool
busy(struct page *p)
{
  for (int i = 0; i < SLOTS; i++) {
    int32_t pid = atomic_load(&p->slot[i].pid);
    if (!pid || atomic_load(&p->slot[i].inflight) == 0)
      continue;
    if (alive(pid))
      return true;
    atomic_store(&p->slot[i].inflight, 0);
    atomic_compare_exchange_strong(&p->slot[i].pid, &pid, 0);
  }
  return false;
}

static int64_t
now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until no write is in flight, up to timeout_ms. */
static int
drain(struct page *p, const char *key, int timeout_ms)
{
  int64_t end = now_ms() + timeout_ms;
  int r = 0;

  atomic_fetch_add(&p->waiting, 1);
  for (;;) {
    uint32_t w = atomic_load(&p->wake);
    if (!busy(p))
      break;
    int64_t left = end - now_ms();
    if (left <= 0) {
      zl_error(ETIMEDOUT, "volume %s: writes still in flight after %d ms", key,
               timeout_ms);
      r = -1;
      break;
    }
    if (left > 100)
      left = 100; /* look at the slots' processes again now and then */
    struct timespec ts = {left / 1000, (left % 1000) * 1000000};
    futex(&p->wake, FUTEX_WAIT, w, &ts);
  }
  atomic_fetch_sub(&p->waiting, 1);
  return r;
}

static void
store(struct page *p, const char *self, const char *holder, uint64_t gen)
{
  atomic_fetch_add(&p->seq, 1); /* odd: readers retry */
  if (self)
    snprintf(p->self, sizeof p->self, "%s", self);
  snprintf(p->holder, sizeof p->holder, "%s", holder ? holder : "");
  atomic_store(&p->gen, gen);
  atomic_store(&p->open, holder ? 0 : 1);
  atomic_fetch_add(&p->seq, 1);
}

int
zl_fence_set(struct zl_sr *sr, const char *key, const char *self, const char *holder,
             uint64_t gen, int timeout_ms)
{
  struct page *p;
  CLEANUP_CLOSE int fd = open_page(sr, key, true, &p);

  if (fd == -1)
    return -1;
  store(p, self, holder, gen);
  int r = holder ? drain(p, key, timeout_ms) : 0;
  munmap(p, 4096);
  return r;
}

int
zl_fence_init(struct zl_sr *sr, const char *key, const char *self, const char *holder,
              uint64_t gen)
{
  struct page *p;
  CLEANUP_CLOSE int fd = open_page(sr, key, true, &p);

  if (fd == -1)
    return -1;
  if (atomic_load(&p->open) && atomic_load(&p->gen) == 0 && !p->self[0])
    store(p, self, holder, gen); /* a page nobody has set yet */
  munmap(p, 4096);
  return 0;
}

/* A consistent copy of the page's state. */
static void
snapshot(struct page *p, bool *open, char *self, char *holder, uint64_t *gen)
{
  for (;;) {
    uint32_t s = atomic_load(&p->seq);
    if (s & 1) {
      sched_yield();
      continue;
    }
    *open = atomic_load(&p->open);
    *gen = atomic_load(&p->gen);
    memcpy(self, p->self, ID_MAX);
    memcpy(holder, p->holder, ID_MAX);
    if (atomic_load(&p->seq) == s)
      break;
  }
  self[ID_MAX - 1] = holder[ID_MAX - 1] = '\0';
}

int
zl_fence_get(struct zl_sr *sr, const char *key, bool *open, char *holder, size_t len,
             uint64_t *gen)
{
  struct page *p;
  char s[ID_MAX], h[ID_MAX];
  CLEANUP_CLOSE int fd = open_page(sr, key, false, &p);

  if (fd == -1)
    return -1;
  snapshot(p, open, s, h, gen);
  snprintf(holder, len, "%s", h);
  munmap(p, 4096);
  return 0;
}

int
zl_fence_remove(struct zl_sr *sr, const char *key)
{
  char name[PATH_MAX], file[NAME_MAX + 1];
  CLEANUP_CLOSE int dfd = zl_run_subdir("fence", false);

  if (dfd == -1)
    return errno == ENOENT ? 0 : -1;
  snprintf(name, sizeof name, "%s/%s", zl_meta_str(sr->info, "uuid"), key);
  if (zl_escape_name(name, "", file, sizeof file) == -1)
    return -1;
  if (unlinkat(dfd, file, 0) == -1 && errno != ENOENT) {
    zl_error_sys(errno, "fence of %s", key);
    return -1;
  }
  return 0;
}

/* --- the layer ------------------------------------------------------------------ */

struct fence {
  struct page *page;
  struct slot *slot; /* this process's */
  char key[256];
  _Atomic uint64_t warned; /* generation last logged a refusal for, + 1 */
};

static bool
fence_wanted(const struct zl_io_target *t)
{
  return !t->readonly;
}

static int
fence_open(struct zl_io_layer *self, const struct zl_io_target *t)
{
  struct fence *f = calloc(1, sizeof *f);
  if (!f) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  snprintf(f->key, sizeof f->key, "%s", t->key);
  CLEANUP_CLOSE int fd = open_page(t->sr, t->key, true, &f->page);
  if (fd == -1) {
    free(f);
    return -1;
  }
  /* a slot for this process (the page's lock is held: no race for it) */
  int32_t pid = getpid();
  for (int i = 0; i < SLOTS && !f->slot; i++) {
    struct slot *s = &f->page->slot[i];
    int32_t had = atomic_load(&s->pid);
    if (had == pid || !had || !alive(had)) {
      if (had != pid)
        atomic_store(&s->inflight, 0);
      atomic_store(&s->pid, pid);
      f->slot = s;
    }
  }
  if (!f->slot) {
    flock(fd, LOCK_UN);
    zl_error(EBUSY, "volume %s: more than %d processes write it", t->key, SLOTS);
    munmap(f->page, 4096);
    free(f);
    return -1;
  }
  /* an flock lives as long as the open file, which the mapping keeps:
   * let go of it explicitly */
  flock(fd, LOCK_UN);
  self->state = f;
  return 0;
}

static void
fence_close(struct zl_io_layer *self)
{
  struct fence *f = self->state;
  if (!f)
    return;
  /* other stacks of this process may share the slot: it is freed when the
   * process is gone (busy() and fence_open reclaim dead processes' slots) */
  munmap(f->page, 4096);
  free(f);
}

/* May a writer from host peer (NULL: this host) write now? */
static bool
may_write(struct fence *f, const char *peer, char *holder, uint64_t *gen)
{
  bool open;
  char self[ID_MAX];

  snapshot(f->page, &open, self, holder, gen);
  if (open)
    return true;
  return holder[0] && strcmp(holder, peer ? peer : self) == 0;
}

static void
leave(struct fence *f)
{
  if (atomic_fetch_sub(&f->slot->inflight, 1) == 1 && atomic_load(&f->page->waiting)) {
    atomic_fetch_add(&f->page->wake, 1);
    futex(&f->page->wake, FUTEX_WAKE, INT_MAX, NULL);
  }
}

static void
fence_batch(struct zl_io_layer *self, struct zl_io_queue *q, struct zl_io_req *r,
            size_t n)
{
  struct fence *f = self->state;
  char holder[ID_MAX];
  uint64_t gen;
  size_t i;

  for (i = 0; i < n && !zl_io_changes(&r[i]); i++)
    ;
  if (i == n) { /* reads, flushes, hints: always */
    zl_io_next(self, q, r, n);
    return;
  }
  atomic_fetch_add(&f->slot->inflight, 1); /* before looking: see the comment on top */
  if (may_write(f, zl_io_queue_peer(q), holder, &gen)) {
    zl_io_next(self, q, r, n);
    leave(f);
    return;
  }
  leave(f);
  if (atomic_exchange(&f->warned, gen + 1) != gen + 1)
    zl_warn("volume %s: writes refused: %s", f->key,
            holder[0] ? "it is active on another host" : "it is not active on any host");
  for (i = 0; i < n; i++) {
    if (zl_io_changes(&r[i]))
      r[i].result = -EPERM;
    else
      zl_io_next(self, q, &r[i], 1);
  }
}

const struct zl_io_layer_ops zl_io_fence = {
    .name = "fence",
    .wanted = fence_wanted,
    .open = fence_open,
    .close = fence_close,
    .batch = fence_batch,
};
