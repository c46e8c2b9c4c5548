/* mirror.c: the mirror layer (SXM; see mirror.h).  In every writable stack;
 * it costs a shared lock per batch until a mirror is attached to it.
 *
 * With a mirror attached, a batch runs down the stack (the local volume)
 * first; then every change that succeeded, and every flush, is sent to the
 * remote on the forwarding connection before the batch returns, so a
 * request the guest saw complete is on the remote too (FUA passed on).
 * Meanwhile copier threads (each with its own connection, which NBD
 * multi-conn makes consistent with the forwarding one) copy the volume,
 * chunk by chunk, from its descriptor.
 *
 * The copier/writer race: a copier reads a chunk (old data), a guest write
 * lands on it and is forwarded (new data), then the copier writes the old
 * data to the remote, which would keep it.  We mark rather than lock: a
 * copier publishes the chunk it is copying (under m->lock) before it reads
 * it; a batch, after its local writes and before forwarding them, marks
 * every published chunk it overlaps dirty; a copier that finds its chunk
 * dirty after writing it to the remote copies it again.  Either the write
 * was local before the copier published (then the copier read the new
 * data), or the batch sees the chunk published and marks it (then the
 * copier's re-read is after the local write, and its re-write is after
 * the batch's forward was sent: the remote ends with the new data).
 * Guest writes never wait for the copier (no range locks on the hot path);
 * only a chunk that is written during its copy is copied twice.
 *
 * Attaching and detaching a mirror takes the slot's lock exclusively
 * (writer-preferring): a batch holds it shared across its local writes
 * and its forwarding, so no batch that ran without the mirror overlaps a
 * copy, and none is forwarding when the connections go. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/io/mirror.h"
#include "util/error.h"
#include "util/log.h"
#include "util/nbdclient.h"

#include "util/banned.h" /* last: after every declaration */

#define NCOPY 4 /* copier threads, one connection each */
#define CHUNK (UINT64_C(4) << 20)

struct slot {
  pthread_rwlock_t lock; /* shared: a batch; exclusive: attach, detach */
  struct zl_mirror *m;
  int fd;
  struct slot *next; /* in slots */
};

/* The mirror layers of the open stacks, by descriptor (zl_io_mirror_start
 * finds a stack's layer by the fd it was opened over). */
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot *slots;

struct zl_mirror {
  struct slot *slot;
  int fd;
  uint64_t size;
  struct zl_nbdc *fwd, *copy[NCOPY];
  pthread_t th[NCOPY];
  int nth;
  atomic_uint_fast64_t cursor, copied;
  atomic_int running;
  atomic_bool failed, cancelled, complete;
  pthread_mutex_t lock; /* the chunks being copied, error */
  struct {
    uint64_t off, len;
    bool busy, dirty;
  } inflight[NCOPY];
  char error[256];
  struct timespec t0, t1; /* start; complete (CLOCK_MONOTONIC) */
};

static double
seconds(const struct timespec *a, const struct timespec *b)
{
  return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static bool
stopped(struct zl_mirror *m)
{
  return atomic_load(&m->failed) || atomic_load(&m->cancelled);
}

/* The first failure wins; the copiers stop at their next chunk. */
static void
fail(struct zl_mirror *m, int err, const char *what)
{
  pthread_mutex_lock(&m->lock);
  if (!atomic_load(&m->failed)) {
    snprintf(m->error, sizeof m->error, "%s: %s", what, strerror(err));
    atomic_store(&m->failed, true);
  }
  pthread_mutex_unlock(&m->lock);
  if (!atomic_load(&m->cancelled))
    zl_warn("mirror: %s: %s: the volume goes on unmirrored", what, strerror(err));
}

/* --- the copier ----------------------------------------------------------- */

struct copier_arg {
  struct zl_mirror *m;
  int i;
};

/* Is [off, off+len) a hole of the descriptor (nothing to read)? */
static bool
is_hole(int fd, uint64_t off, uint64_t len)
{
  off_t d = lseek(fd, (off_t)off, SEEK_DATA);
  return (d == -1 && errno == ENXIO) || (d != -1 && (uint64_t)d >= off + len);
}

static int
read_full(int fd, uint8_t *buf, uint64_t len, uint64_t off)
{
  while (len) {
    ssize_t n = pread(fd, buf, len, (off_t)off);
    if (n == -1 && errno == EINTR)
      continue;
    if (n <= 0)
      return n == 0 ? -EIO : -errno;
    buf += n, len -= (uint64_t)n, off += (uint64_t)n;
  }
  return 0;
}

/* Copy one chunk, again while a batch dirtied it meanwhile.  0 or -errno. */
static int
copy_chunk(struct zl_mirror *m, int i, uint8_t *buf, uint64_t off, uint64_t len)
{
  struct zl_nbdc *c = m->copy[i];
  bool dirty;
  do {
    pthread_mutex_lock(&m->lock);
    m->inflight[i].off = off, m->inflight[i].len = len;
    m->inflight[i].busy = true, m->inflight[i].dirty = false;
    pthread_mutex_unlock(&m->lock);
    int r;
    if (is_hole(m->fd, off, len)) {
      r = zl_nbdc_zero(c, len, off, false);
    } else {
      r = read_full(m->fd, buf, len, off);
      if (r == 0)
        r = zl_nbdc_pwrite(c, buf, len, off, false);
    }
    pthread_mutex_lock(&m->lock);
    dirty = m->inflight[i].dirty;
    m->inflight[i].busy = false;
    pthread_mutex_unlock(&m->lock);
    if (r != 0)
      return r;
  } while (dirty && !stopped(m));
  return 0;
}

static void *
copier(void *arg)
{
  struct copier_arg a = *(struct copier_arg *)arg;
  struct zl_mirror *m = a.m;
  void *buf = NULL;
  int r = posix_memalign(&buf, 4096, CHUNK) == 0 ? 0 : -ENOMEM;

  free(arg);
  zl_log_set_tag("mirror");
  while (r == 0 && !stopped(m)) {
    uint64_t off = atomic_fetch_add(&m->cursor, CHUNK);
    if (off >= m->size)
      break;
    uint64_t len = m->size - off < CHUNK ? m->size - off : CHUNK;
    /* start reading what this copier takes next: the volume's data may
     * not be cached, and one synchronous read at a time would wait on
     * the disk for each */
    if (off + NCOPY * CHUNK < m->size)
      posix_fadvise(m->fd, (off_t)(off + NCOPY * CHUNK), (off_t)CHUNK,
                    POSIX_FADV_WILLNEED);
    r = copy_chunk(m, a.i, buf, off, len);
    if (r == 0)
      atomic_fetch_add(&m->copied, len);
  }
  if (r != 0 && !stopped(m))
    fail(m, -r, "copying to the remote");
  free(buf);
  /* the last copier out makes the copy durable and declares it complete:
   * one FLUSH where the remote has multi-conn (it covers every
   * connection's completed writes), else one per connection, now that
   * they are idle (a FLUSH per copier as it ends would fsync while the
   * others still write) */
  if (atomic_fetch_sub(&m->running, 1) != 1 || stopped(m))
    return NULL;
  r = zl_nbdc_flush(m->copy[a.i]);
  for (int i = 0; r == 0 && !zl_nbdc_can_multi_conn(m->fwd) && i < NCOPY; i++)
    r = i == a.i ? 0 : zl_nbdc_flush(m->copy[i]);
  if (r != 0 && !stopped(m))
    fail(m, -r, "flushing the copy on the remote");
  if (r == 0 && !stopped(m)) {
    pthread_mutex_lock(&m->lock);
    clock_gettime(CLOCK_MONOTONIC, &m->t1);
    pthread_mutex_unlock(&m->lock);
    atomic_store(&m->complete, true);
    zl_info("mirror: copy complete (%llu bytes); writes are mirrored synchronously",
            (unsigned long long)m->size);
  }
  return NULL;
}

/* --- the layer -------------------------------------------------------------- */

static bool
mirror_wanted(const struct zl_io_target *t)
{
  return !t->readonly;
}

static int
mirror_open(struct zl_io_layer *self, const struct zl_io_target *t)
{
  struct slot *s = calloc(1, sizeof *s);
  pthread_rwlockattr_t attr;

  if (!s) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  pthread_rwlockattr_init(&attr);
  pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&s->lock, &attr);
  pthread_rwlockattr_destroy(&attr);
  s->fd = t->fd;
  self->state = s;
  pthread_mutex_lock(&slots_lock);
  s->next = slots;
  slots = s;
  pthread_mutex_unlock(&slots_lock);
  return 0;
}

static void
mirror_close(struct zl_io_layer *self)
{
  struct slot *s = self->state;
  /* the owner of a mirror frees it before the stack (it holds the stack) */
  if (s->m)
    zl_warn("mirror: stack closed under a mirror");
  pthread_mutex_lock(&slots_lock);
  for (struct slot **p = &slots; *p; p = &(*p)->next) {
    if (*p == s) {
      *p = s->next;
      break;
    }
  }
  pthread_mutex_unlock(&slots_lock);
  pthread_rwlock_destroy(&s->lock);
  free(s);
}

/* After the local writes: dirty the chunks being copied that r changed. */
static void
mark_dirty(struct zl_mirror *m, const struct zl_io_req *r, size_t n)
{
  pthread_mutex_lock(&m->lock);
  for (size_t j = 0; j < n; j++) {
    if (!zl_io_changes(&r[j]) || r[j].result != 0)
      continue;
    for (int i = 0; i < NCOPY; i++) {
      if (m->inflight[i].busy && r[j].off < m->inflight[i].off + m->inflight[i].len &&
          m->inflight[i].off < r[j].off + r[j].len)
        m->inflight[i].dirty = true;
    }
  }
  pthread_mutex_unlock(&m->lock);
}

/* Send what the batch did locally to the remote; 0 or -errno. */
static int
forward(struct zl_mirror *m, const struct zl_io_req *r, size_t n)
{
  for (size_t j = 0; j < n; j++) {
    const struct zl_io_req *q = &r[j];
    bool fua = q->flags & ZL_IO_FUA;
    int e = 0;
    if (q->result != 0)
      continue; /* failed here: the guest sees the error; nothing changed */
    if (q->op == ZL_IO_WRITE)
      e = zl_nbdc_pwrite(m->fwd, q->buf, q->len, q->off, fua);
    else if (q->op == ZL_IO_ZERO)
      e = zl_nbdc_zero(m->fwd, q->len, q->off, fua);
    else if (q->op == ZL_IO_TRIM)
      e = zl_nbdc_trim(m->fwd, q->len, q->off, fua);
    else if (q->op == ZL_IO_FLUSH)
      e = zl_nbdc_flush(m->fwd);
    if (e != 0)
      return e;
  }
  return 0;
}

static void
mirror_batch(struct zl_io_layer *self, struct zl_io_queue *q, struct zl_io_req *r,
             size_t n)
{
  struct slot *s = self->state;

  pthread_rwlock_rdlock(&s->lock);
  struct zl_mirror *m = s->m;
  zl_io_next(self, q, r, n);
  if (m && !stopped(m)) {
    bool any = false;
    for (size_t j = 0; j < n && !any; j++)
      any = zl_io_changes(&r[j]) || r[j].op == ZL_IO_FLUSH;
    if (any) {
      mark_dirty(m, r, n);
      int e = forward(m, r, n);
      if (e != 0 && !stopped(m))
        fail(m, -e, "forwarding a write to the remote");
    }
  }
  pthread_rwlock_unlock(&s->lock);
}

const struct zl_io_layer_ops zl_io_mirror = {
    .name = "mirror",
    .wanted = mirror_wanted,
    .open = mirror_open,
    .close = mirror_close,
    .batch = mirror_batch,
};

/* --- mirrors ------------------------------------------------------------------ */

static void
close_all(struct zl_mirror *m)
{
  zl_nbdc_close(m->fwd);
  for (int i = 0; i < NCOPY; i++)
    zl_nbdc_close(m->copy[i]);
}

static int
connect_all(struct zl_mirror *m, const char *remote)
{
  m->fwd = zl_nbdc_connect(remote);
  if (!m->fwd)
    return -1;
  if (zl_nbdc_size(m->fwd) < m->size) {
    zl_error(EINVAL, "the remote %s has %llu bytes, less than the volume's %llu", remote,
             (unsigned long long)zl_nbdc_size(m->fwd), (unsigned long long)m->size);
    return -1;
  }
  for (int i = 0; i < NCOPY; i++) {
    if (!(m->copy[i] = zl_nbdc_connect(remote)))
      return -1;
  }
  return 0;
}

static struct slot *
slot_of(int fd)
{
  pthread_mutex_lock(&slots_lock);
  struct slot *s = slots;
  while (s && s->fd != fd)
    s = s->next;
  pthread_mutex_unlock(&slots_lock);
  return s;
}

struct zl_mirror *
zl_io_mirror_start(int fd, const char *remote)
{
  struct slot *s = slot_of(fd);
  struct stat st;

  if (!s) {
    zl_error(ENOENT, "no writable write path is open over descriptor %d", fd);
    return NULL;
  }
  if (fstat(s->fd, &st) == -1) {
    zl_error_sys(errno, "mirror: the volume's size");
    return NULL;
  }
  struct zl_mirror *m = calloc(1, sizeof *m);
  if (!m) {
    zl_error(ENOMEM, "out of memory");
    return NULL;
  }
  pthread_mutex_init(&m->lock, NULL);
  m->slot = s;
  m->fd = s->fd;
  m->size = (uint64_t)st.st_size;
  if (S_ISBLK(st.st_mode) && ioctl(s->fd, BLKGETSIZE64, &m->size) == -1) {
    zl_error_sys(errno, "mirror: the volume's size");
    pthread_mutex_destroy(&m->lock);
    free(m);
    return NULL;
  }
  if (connect_all(m, remote) == -1) {
    zl_error_prefix("mirror to %s: ", remote);
    close_all(m);
    pthread_mutex_destroy(&m->lock);
    free(m);
    return NULL;
  }
  /* attach: no batch is between its local writes and its forwarding */
  pthread_rwlock_wrlock(&s->lock);
  if (s->m) {
    pthread_rwlock_unlock(&s->lock);
    zl_error(EBUSY, "the volume is being mirrored already");
    close_all(m);
    pthread_mutex_destroy(&m->lock);
    free(m);
    return NULL;
  }
  s->m = m;
  pthread_rwlock_unlock(&s->lock);

  clock_gettime(CLOCK_MONOTONIC, &m->t0);
  atomic_store(&m->running, NCOPY);
  for (int i = 0; i < NCOPY; i++) {
    struct copier_arg *a = malloc(sizeof *a);
    if (a)
      *a = (struct copier_arg){m, i};
    if (!a || pthread_create(&m->th[i], NULL, copier, a) != 0) {
      free(a);
      fail(m, ENOMEM, "starting the copy");
      atomic_fetch_sub(&m->running, NCOPY - i);
      break;
    }
    m->nth++;
  }
  zl_info("mirror: copying %llu bytes to %s", (unsigned long long)m->size, remote);
  return m;
}

void
zl_mirror_stat(struct zl_mirror *m, struct zl_mirror_stat *out)
{
  pthread_mutex_lock(&m->lock);
  out->cancelled = atomic_load(&m->cancelled);
  out->failed = atomic_load(&m->failed) || out->cancelled;
  out->complete = !out->failed && atomic_load(&m->complete);
  out->progress = m->size ? (double)atomic_load(&m->copied) / (double)m->size : 1.0;
  if (out->progress > 1.0)
    out->progress = 1.0;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  out->copy_seconds = seconds(&m->t0, atomic_load(&m->complete) ? &m->t1 : &now);
  snprintf(out->error, sizeof out->error, "%s",
           out->cancelled && !m->error[0] ? "cancelled" : m->error);
  pthread_mutex_unlock(&m->lock);
}

void
zl_mirror_cancel(struct zl_mirror *m)
{
  if (atomic_exchange(&m->cancelled, true))
    return;
  /* unblock whatever waits on the remote, then detach */
  zl_nbdc_shutdown(m->fwd);
  for (int i = 0; i < NCOPY; i++)
    zl_nbdc_shutdown(m->copy[i]);
  for (int i = 0; i < m->nth; i++)
    pthread_join(m->th[i], NULL);
  m->nth = 0;
  pthread_rwlock_wrlock(&m->slot->lock);
  m->slot->m = NULL;
  pthread_rwlock_unlock(&m->slot->lock);
  zl_info("mirror: cancelled");
}

void
zl_mirror_free(struct zl_mirror *m)
{
  if (!m)
    return;
  zl_mirror_cancel(m);
  close_all(m);
  pthread_mutex_destroy(&m->lock);
  free(m);
}
