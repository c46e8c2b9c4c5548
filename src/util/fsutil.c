/* fsutil.c: see fsutil.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "beneath.h"
#include "cleanup.h"
#include "compat.h"
#include "error.h"
#include "fault.h"
#include "fsutil.h"

#include "util/banned.h" /* last: after every declaration */

void
zl_tmp_name(char *out, size_t outlen, const char *base)
{
  unsigned int r = 0;

  if (zl_random_bytes(&r, sizeof r, true) == -1)
    r = (unsigned int)rand();
  snprintf(out, outlen, ".%s.tmp.%d.%08x", base, (int)getpid(), r);
}

int
zl_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
  const char *p = buf;

  while (len > 0) {
    ssize_t n = pwrite(fd, p, len, off);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      zl_error_sys(errno, "write");
      return -1;
    }
    p += n;
    len -= (size_t)n;
    off += n;
  }
  return 0;
}

int
zl_write_all(int fd, const void *buf, size_t len)
{
  const char *p = buf;

  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      zl_error_sys(errno, "write");
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int
zl_pread_all(int fd, void *buf, size_t len, off_t off)
{
  char *p = buf;

  while (len > 0) {
    ssize_t n = pread(fd, p, len, off);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      zl_error_sys(errno, "read");
      return -1;
    }
    if (n == 0) {
      zl_error(EIO, "read: unexpected end of file");
      return -1;
    }
    p += n;
    len -= (size_t)n;
    off += n;
  }
  return 0;
}

int
zl_fsync_dir(int dirfd)
{
  if (fsync(dirfd) == -1 && errno != EINVAL && errno != EROFS) {
    zl_error_sys(errno, "fsync directory");
    return -1;
  }
  return 0;
}

/* Write a temporary in tmpdir, then publish it as path: renameat()
 * (replacing) or linkat() (only if it does not exist: EEXIST, also on
 * NFS). */
static int
write_then_publish(int tmpdir, int parent, const char *path, const void *buf, size_t len,
                   bool durable, bool replace)
{
  char tmp[NAME_MAX + 1];
  const char *name;
  CLEANUP_CLOSE int dirfd = zl_parent_beneath(parent, path, false, &name);

  if (dirfd == -1)
    return -1;
  /* A sweeper may take a temporary between its creation and our flock
   * and remove it as a dead writer's: the rename then finds it gone, and
   * we write it again. */
  for (int attempt = 0;; attempt++) {
    CLEANUP_CLOSE int fd = -1;
    zl_tmp_name(tmp, sizeof tmp, name);
    fd = zl_file_beneath(tmpdir, tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd == -1) {
      zl_error_prefix("create a temporary: ");
      return -1;
    }
    /* blocking: a scanner that took it first lets go at once */
    if (flock(fd, LOCK_EX) == -1) {
      zl_error_sys(errno, "lock %s", tmp);
      goto fail;
    }
    if (zl_pwrite_all(fd, buf, len, 0) == -1)
      goto fail;
    if (durable && fdatasync(fd) == -1) {
      zl_error_sys(errno, "fsync %s", tmp);
      goto fail;
    }
    zl_fault("write-file", "written");
    int r = replace ? renameat(tmpdir, tmp, dirfd, name)
                    : linkat(tmpdir, tmp, dirfd, name, 0);
    if (r == 0) {
      if (!replace)
        unlinkat(tmpdir, tmp, 0);
      break;
    }
    if (errno == ENOENT && attempt < 3)
      continue;
    if (replace)
      zl_error_sys(errno, "rename %s to %s", tmp, name);
    else
      zl_error_sys(errno, "%s", name);
    goto fail;
  fail:;
    int saved = errno;
    unlinkat(tmpdir, tmp, 0);
    errno = saved;
    return -1;
  }
  if (durable && zl_fsync_dir(dirfd) == -1)
    return -1;
  return 0;
}

int
zl_write_file_atomic(int parent, const char *path, const void *buf, size_t len,
                     bool durable)
{
  const char *name;
  CLEANUP_CLOSE int dirfd = zl_parent_beneath(parent, path, false, &name);

  if (dirfd == -1)
    return -1;
  return write_then_publish(dirfd, dirfd, name, buf, len, durable, true);
}

int
zl_write_file_atomic_via(int tmpdir, int parent, const char *path, const void *buf,
                         size_t len, bool durable)
{
  return write_then_publish(tmpdir, parent, path, buf, len, durable, true);
}

int
zl_write_file_new(int parent, const char *path, const void *buf, size_t len)
{
  const char *name;
  CLEANUP_CLOSE int dirfd = zl_parent_beneath(parent, path, false, &name);

  if (dirfd == -1)
    return -1;
  return write_then_publish(dirfd, dirfd, name, buf, len, true, false);
}

bool
zl_tmp_name_is(const char *name)
{
  /* ".<base>.tmp.<pid>.<8 hex>" */
  size_t len = strlen(name);
  if (name[0] != '.' || len < 16 || !strstr(name, ".tmp."))
    return false;
  const char *dot = strrchr(name, '.');
  return strlen(dot + 1) == 8 && strspn(dot + 1, "0123456789abcdef") == 8;
}

int
zl_sweep_temporaries(int dirfd)
{
  CLEANUP_DIR DIR *d = NULL;
  struct dirent *de;
  int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int n = 0;

  if (fd == -1 || !(d = fdopendir(fd))) {
    if (fd >= 0)
      close(fd);
    zl_error_sys(errno, "sweep");
    return -1;
  }
  while ((de = readdir(d))) {
    if (!zl_tmp_name_is(de->d_name))
      continue;
    int t = zl_file_beneath(dirfd, de->d_name, O_RDONLY, 0);
    if (t == -1) {
      zl_error_clear();
      continue;
    }
    /* its writer holds a lock on it while it lives */
    if (flock(t, LOCK_EX | LOCK_NB) == 0 && unlinkat(dirfd, de->d_name, 0) == 0)
      n++;
    close(t);
  }
  return n;
}

int
zl_read_file_at(int dirfd, const char *name, size_t max, char **bufp, size_t *lenp)
{
  CLEANUP_CLOSE int fd = -1;
  CLEANUP_FREE char *buf = NULL;
  struct stat st;
  size_t len = 0, cap;

  /* beneath a directory: no symlink anywhere on the way; an absolute path
   * (a host file): none at its end.  Never block on a FIFO. */
  if (dirfd != AT_FDCWD || name[0] != '/') {
    fd = zl_file_beneath(dirfd, name, O_RDONLY, 0);
    if (fd == -1)
      return -1;
  } else if ((fd = open(name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK |
                                  O_NOCTTY)) == -1) {
    zl_error_sys(errno, "open %s", name);
    return -1;
  }
  if (fstat(fd, &st) == -1) {
    zl_error_sys(errno, "stat %s", name);
    return -1;
  }
  if (!S_ISREG(st.st_mode)) {
    zl_error(EINVAL, "%s is not a regular file", name);
    return -1;
  }
  if ((uint64_t)st.st_size > max) {
    zl_error(EFBIG, "%s is larger than %zu bytes", name, max);
    return -1;
  }
  cap = (size_t)st.st_size + 1;
  buf = malloc(cap);
  if (!buf) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  for (;;) {
    ssize_t n = read(fd, buf + len, cap - len - 1);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      zl_error_sys(errno, "read %s", name);
      return -1;
    }
    if (n == 0)
      break;
    len += (size_t)n;
    if (len == cap - 1) {
      if (cap > max) {
        zl_error(EFBIG, "%s is larger than %zu bytes", name, max);
        return -1;
      }
      char *nb = realloc(buf, cap * 2);
      if (!nb) {
        zl_error(ENOMEM, "out of memory");
        return -1;
      }
      buf = nb;
      cap *= 2;
    }
  }
  buf[len] = '\0';
  *bufp = TAKE_PTR(buf);
  if (lenp)
    *lenp = len;
  return 0;
}

int
zl_reflink(int in, int out)
{
  if (ioctl(out, FICLONE, in) == 0)
    return 0;
  return -1;
}

static bool
cfr_unsupported(int e)
{
  return e == EXDEV || e == ENOSYS || e == EOPNOTSUPP || e == EINVAL || e == EBADF;
}

#define ZERO_BLOCK (64u << 10)
static bool
all_zero(const char *p, size_t n)
{
  return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Copy [off, off+len) from in to out at the same offset. */
#define COPY_BUF (1 << 20)

static int
copy_range(int in, int out, off_t off, off_t len, bool *use_cfr, char **bufp, bool fresh)
{

  while (len > 0) {
    if (*use_cfr) {
      off_t io = off, oo = off;
      ssize_t n = zl_copy_file_range(in, &io, out, &oo, (size_t)len);
      if (n > 0) {
        off += n;
        len -= n;
        continue;
      }
      if (n == 0) {
        zl_error(EIO, "copy: source shrank during copy");
        return -1;
      }
      if (errno == EINTR)
        continue;
      if (!cfr_unsupported(errno)) {
        zl_error_sys(errno, "copy_file_range");
        return -1;
      }
      *use_cfr = false;
    }
    if (!*bufp && !(*bufp = malloc(COPY_BUF))) {
      zl_error(ENOMEM, "out of memory");
      return -1;
    }
    size_t chunk = len > COPY_BUF ? COPY_BUF : (size_t)len;
    if (zl_pread_all(in, *bufp, chunk, off) == -1)
      return -1;
    for (size_t b = 0; b < chunk; b += ZERO_BLOCK) { /* fresh: zeros stay holes */
      size_t n = chunk - b < ZERO_BLOCK ? chunk - b : ZERO_BLOCK;
      if (!(fresh && all_zero(*bufp + b, n)) &&
          zl_pwrite_all(out, *bufp + b, n, off + (off_t)b) == -1)
        return -1;
    }
    off += (off_t)chunk;
    len -= (off_t)chunk;
  }
  return 0;
}

int
zl_copy_sparse(int in, int out, off_t size, uint64_t *copied)
{
  return zl_copy_sparse_progress(in, out, size, copied, NULL);
}

#define PROGRESS_PIECE ((off_t)64 << 20)

static void
tell(const struct zl_copy_progress *p, off_t done, off_t size)
{
  if (p && p->fn)
    p->fn(p->opaque, (uint64_t)done, (uint64_t)size);
}

int
zl_copy_sparse_progress(int in, int out, off_t size, uint64_t *copied,
                        const struct zl_copy_progress *p)
{
  bool use_cfr = true;
  off_t pos = 0;
  uint64_t total = 0;
  CLEANUP_FREE char *buf = NULL;

  if (ftruncate(out, 0) == -1 || ftruncate(out, size) == -1) {
    zl_error_sys(errno, "truncate copy");
    return -1;
  }
  while (pos < size) {
    off_t data = lseek(in, pos, SEEK_DATA);
    if (data == -1) {
      if (errno == ENXIO) /* only a hole remains */
        break;
      if (errno == EINVAL) { /* no SEEK_DATA support: copy all */
        data = pos;
      } else {
        zl_error_sys(errno, "seek data");
        return -1;
      }
    }
    if (data >= size)
      break;
    off_t hole = lseek(in, data, SEEK_HOLE);
    if (hole == -1)
      hole = size;
    if (hole > size)
      hole = size;
    for (off_t at = data; at < hole;) {
      off_t len = hole - at < PROGRESS_PIECE ? hole - at : PROGRESS_PIECE;
      if (copy_range(in, out, at, len, &use_cfr, &buf, false) == -1)
        return -1;
      at += len;
      tell(p, at, size);
    }
    total += (uint64_t)(hole - data);
    pos = hole;
  }
  tell(p, size, size);
  if (copied)
    *copied = total;
  return 0;
}

/* The next data segment of in at or after pos, below size: 1 (in *d, *h),
 * 0 when only a hole remains, -1 on error.  A file without SEEK_DATA (a
 * block device) is one segment. */
static int
next_segment(int in, uint64_t pos, uint64_t size, uint64_t *d, uint64_t *h)
{
  off_t data = lseek(in, (off_t)pos, SEEK_DATA);

  if (data == -1) {
    if (errno == ENXIO)
      return 0;
    if (errno != EINVAL) {
      zl_error_sys(errno, "seek data");
      return -1;
    }
    data = (off_t)pos;
  }
  if ((uint64_t)data >= size)
    return 0;
  off_t hole = lseek(in, data, SEEK_HOLE);
  *d = (uint64_t)data;
  *h = hole == -1 || (uint64_t)hole > size ? size : (uint64_t)hole;
  return 1;
}

#define PROGRESS_STEP (8u << 20) /* copy in pieces this large between reports */

int
zl_copy_data(int in, int out, uint64_t size, const struct zl_copy_opts *o,
             uint64_t *copied)
{
  bool use_cfr = true; /* where it fails (a block device), a buffered copy */
  uint64_t pos, d, h, total = 0, done = 0;
  CLEANUP_FREE char *buf = NULL;
  int r;

  if (!o->fresh && (ftruncate(out, 0) == -1 || ftruncate(out, (off_t)size) == -1)) {
    zl_error_sys(errno, "truncate copy");
    return -1;
  }
  if (o->cb) {
    for (pos = 0; (r = next_segment(in, pos, size, &d, &h)) == 1; pos = h)
      total += h - d;
    if (r == -1)
      return -1;
    o->cb(o->opaque, 0, total);
  }
  for (pos = 0; (r = next_segment(in, pos, size, &d, &h)) == 1; pos = h) {
    for (uint64_t off = d; off < h;) {
      uint64_t n = h - off > PROGRESS_STEP ? PROGRESS_STEP : h - off;
      if (copy_range(in, out, (off_t)off, (off_t)n, &use_cfr, &buf, o->fresh) == -1)
        return -1;
      off += n;
      done += n;
      if (o->cb)
        o->cb(o->opaque, done, total > done ? total : done);
    }
  }
  if (r == -1)
    return -1;
  if (copied)
    *copied = done;
  return 0;
}

int
zl_clone_or_copy(int in, int out, off_t size, bool *reflinked)
{
  return zl_clone_or_copy_progress(in, out, size, reflinked, NULL);
}

int
zl_clone_or_copy_progress(int in, int out, off_t size, bool *reflinked,
                          const struct zl_copy_progress *p)
{
  if (zl_reflink(in, out) == 0) {
    if (reflinked)
      *reflinked = true;
    return 0;
  }
  if (errno != EOPNOTSUPP && errno != EXDEV && errno != EINVAL && errno != ENOTTY &&
      errno != ENOSYS) {
    zl_error_sys(errno, "reflink");
    return -1;
  }
  if (reflinked)
    *reflinked = false;
  return zl_copy_sparse_progress(in, out, size, NULL, p);
}

void
zl_boot_id(char *out, size_t len)
{
  int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read(fd, out, len - 1) : -1;
  if (fd >= 0)
    close(fd);
  out[n > 0 ? n : 0] = '\0';
  out[strcspn(out, "\n")] = '\0';
}
