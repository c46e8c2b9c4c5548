/* export.c: the exports this server has open.  An export is a volume
 * attached through Datapath.attach (core/exports.c); all connections to the
 * same data share one file descriptor, which is what makes multi-conn safe.
 *
 * Nothing about a volume is trusted from an earlier connection: every
 * export open (EXPORT_NAME, INFO, GO, the META_CONTEXT options) asks the
 * registry whether the name is attached, opens the volume's data afresh
 * and takes its size from that open file.  A cached export is shared only
 * while it holds the very file the volume has now (same st_dev/st_ino), so
 * a file replaced since (a revert, a clone swap) gets a new entry, and a
 * resize is seen by the next connection however long older ones stay.  An
 * open connection keeps the size it was given at GO (the NBD protocol has
 * no way to change it): requests past it are refused as before. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "nbd/nbd.h"
#include "util/error.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

#define MAX_OPEN 4096

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct nbd_export *open_exports[MAX_OPEN];

/* The volume's data, opened now: fd, identity and size.  -1 on error. */
static int
open_data(struct zl_sr *sr, const struct zl_export_info *info, struct stat *st,
          int64_t *size)
{
  int fd = zl_vol_open(sr, info->vol_key, info->readonly ? O_RDONLY : O_RDWR);
  if (fd == -1)
    return -1;
  if (fstat(fd, st) == -1) {
    zl_error_sys(errno, "export %s", info->name);
    close(fd);
    return -1;
  }
  *size = st->st_size;
  if (S_ISBLK(st->st_mode)) {
    uint64_t sz;
    if (ioctl(fd, BLKGETSIZE64, &sz) == -1) {
      zl_error_sys(errno, "export %s: size of the device", info->name);
      close(fd);
      return -1;
    }
    *size = (int64_t)sz;
  }
  return fd;
}

/* A new export over fd (owned from here on), writing down the volume's
 * write path (which tracks the writes where the SR needs it). */
static struct nbd_export *
new_export(struct zl_sr *sr, const struct zl_export_info *info, int fd,
           const struct stat *st)
{
  struct zl_io *io = zl_io_open(sr, info->vol_key, fd, info->readonly);
  if (!io) {
    close(fd);
    return NULL;
  }
  struct nbd_export *e = calloc(1, sizeof *e);
  if (e) {
    e->name = strdup(info->name);
    e->sr_type = strdup(info->sr_type);
    e->sr_key = strdup(info->sr_key);
    e->vol_key = strdup(info->vol_key);
  }
  if (!e || !e->name || !e->sr_type || !e->sr_key || !e->vol_key) {
    if (e) {
      free(e->name);
      free(e->sr_type);
      free(e->sr_key);
      free(e->vol_key);
    }
    free(e);
    zl_io_close(io);
    close(fd);
    zl_error(ENOMEM, "export %s: out of memory", info->name);
    return NULL;
  }
  e->fd = fd;
  e->dev = st->st_dev;
  e->rdev = st->st_rdev;
  e->ino = st->st_ino;
  e->io = io;
  e->readonly = info->readonly;
  e->blockdev = S_ISBLK(st->st_mode);
  atomic_init(&e->refs, 1);
  return e;
}

static void
free_export(struct nbd_export *e)
{
  zl_io_close(e->io); /* tracking bits durable first */
  close(e->fd);
  free(e->name);
  free(e->sr_type);
  free(e->sr_key);
  free(e->vol_key);
  free(e);
}

struct nbd_export *
nbd_export_get(const char *name, int64_t *size)
{
  struct zl_export_info info;
  struct nbd_export *e = NULL;
  struct stat st;
  int64_t now;

  /* the registry decides, every time: a detached volume is not exported */
  if (zl_export_lookup(name, &info) == -1)
    return NULL;
  struct zl_sr *sr = zl_sr_open(info.sr_type, info.sr_key);
  int fd = sr ? open_data(sr, &info, &st, &now) : -1;
  if (fd == -1) {
    zl_sr_close(sr);
    zl_export_info_free(&info);
    return NULL;
  }
  pthread_mutex_lock(&lock);
  for (int i = 0; i < MAX_OPEN; i++) {
    struct nbd_export *x = open_exports[i];
    if (x && strcmp(x->name, name) == 0 && strcmp(x->sr_key, info.sr_key) == 0 &&
        strcmp(x->vol_key, info.vol_key) == 0 && x->readonly == info.readonly &&
        x->dev == st.st_dev && x->ino == st.st_ino && x->rdev == st.st_rdev) {
      atomic_fetch_add(&x->refs, 1);
      e = x;
      break;
    }
  }
  if (e) {
    close(fd); /* the same file: the shared descriptor serves */
  } else if ((e = new_export(sr, &info, fd, &st))) {
    int i = 0;
    while (i < MAX_OPEN && open_exports[i])
      i++;
    if (i < MAX_OPEN) {
      open_exports[i] = e;
    } else {
      free_export(e);
      e = NULL;
      zl_error(EMFILE, "too many open exports");
    }
  }
  pthread_mutex_unlock(&lock);
  zl_sr_close(sr);
  zl_export_info_free(&info);
  if (e && size)
    *size = now;
  return e;
}

void
nbd_export_put(struct nbd_export *e)
{
  if (!e)
    return;
  pthread_mutex_lock(&lock);
  if (atomic_fetch_sub(&e->refs, 1) == 1) {
    for (int i = 0; i < MAX_OPEN; i++) {
      if (open_exports[i] == e)
        open_exports[i] = NULL;
    }
    free_export(e);
  }
  pthread_mutex_unlock(&lock);
}

void
nbd_export_recheck(void)
{
  struct {
    char *type, *sr, *key;
  } w[64];
  int n = 0;

  /* copy out what to look at: no metadata read under the lock */
  pthread_mutex_lock(&lock);
  for (int i = 0; i < MAX_OPEN && n < 64; i++) {
    struct nbd_export *x = open_exports[i];
    if (x && !x->readonly) {
      w[n].type = strdup(x->sr_type);
      w[n].sr = strdup(x->sr_key);
      w[n].key = strdup(x->vol_key);
      n++;
    }
  }
  pthread_mutex_unlock(&lock);
  for (int i = 0; i < n; i++) {
    struct zl_sr *sr = w[i].type && w[i].sr ? zl_sr_open(w[i].type, w[i].sr) : NULL;
    if (sr && w[i].key && zl_dp_recheck(sr, w[i].key) == -1)
      zl_debug("export %s: fence not rechecked: %s", w[i].key, zl_error_msg());
    zl_sr_close(sr);
    zl_error_clear();
    free(w[i].type);
    free(w[i].sr);
    free(w[i].key);
  }
}

char **
nbd_export_list(void)
{
  return zl_export_names();
}

uint16_t
nbd_export_tflags(const struct nbd_export *e, bool structured)
{
  uint16_t f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
               NBD_FLAG_CAN_MULTI_CONN | NBD_FLAG_SEND_CACHE;
  if (e->readonly)
    f |= NBD_FLAG_READ_ONLY;
  else
    f |= NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO;
  if (structured)
    f |= NBD_FLAG_SEND_DF;
  return f;
}
