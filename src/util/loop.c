/* loop.c: see loop.h.  ioctl-based (LOOP_CTL_GET_FREE, LOOP_CONFIGURE;
 * LOOP_SET_FD + LOOP_SET_STATUS64 + LOOP_SET_DIRECT_IO on kernels before
 * 5.8): no losetup process. */
#include <stdatomic.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"
#include "util/log.h"
#include "util/loop.h"

#include "util/banned.h" /* last: after every declaration */

int
zl_loop_find(int fd, char *dev, size_t devlen)
{
  struct stat st;
  DIR *d;
  struct dirent *de;

  if (fstat(fd, &st) == -1 || !(d = opendir("/sys/block"))) {
    errno = ENOENT;
    return -1;
  }
  while ((de = readdir(d))) {
    if (strncmp(de->d_name, "loop", 4) != 0)
      continue;
    char path[NAME_MAX + 8];
    snprintf(path, sizeof path, "/dev/%s", de->d_name); /* fits: a name */
    int lfd = open(path, O_RDONLY | O_CLOEXEC);
    if (lfd == -1)
      continue;
    struct loop_info64 info;
    int r = ioctl(lfd, LOOP_GET_STATUS64, &info);
    close(lfd);
    if (r == 0 && info.lo_device == st.st_dev && info.lo_inode == st.st_ino) {
      snprintf(dev, devlen, "%s", path);
      closedir(d);
      return 0;
    }
  }
  closedir(d);
  errno = ENOENT;
  return -1;
}

bool
zl_loop_serves(const char *dev, dev_t file_dev, ino_t file_ino)
{
  struct loop_info64 info;

  if (strncmp(dev, "/dev/loop", 9) != 0)
    return false;
  int lfd = open(dev, O_RDONLY | O_CLOEXEC);
  if (lfd == -1)
    return false;
  int r = ioctl(lfd, LOOP_GET_STATUS64, &info);
  close(lfd);
  return r == 0 && info.lo_device == file_dev && info.lo_inode == file_ino;
}

/* The loop device's size in bytes and status, from an open fd of it. */
static int
loop_state(int lfd, uint64_t *size, struct loop_info64 *info)
{
  return ioctl(lfd, LOOP_GET_STATUS64, info) == -1 || ioctl(lfd, BLKGETSIZE64, size) == -1
             ? -1
             : 0;
}

int
zl_loop_fits(const char *dev, const struct stat *st, bool readonly)
{
  struct loop_info64 info;
  uint64_t size, want = (uint64_t)st->st_size & ~(uint64_t)511;

  if (strncmp(dev, "/dev/loop", 9) != 0)
    return 0;
  int lfd = open(dev, O_RDONLY | O_CLOEXEC);
  if (lfd == -1)
    return 0;
  int ok = loop_state(lfd, &size, &info) == 0 && info.lo_device == st->st_dev &&
           info.lo_inode == st->st_ino && info.lo_offset == 0 && info.lo_sizelimit == 0 &&
           !(info.lo_flags & LO_FLAGS_READ_ONLY) == !readonly;
  if (ok && size != want) {
    zl_info("%s: %llu bytes, its file %llu: taking the file's size", dev,
            (unsigned long long)size, (unsigned long long)want);
    ok = ioctl(lfd, LOOP_SET_CAPACITY, 0) == 0 && loop_state(lfd, &size, &info) == 0 &&
         size == want;
  }
  close(lfd);
  return ok;
}

int
zl_loop_refresh(const char *dev)
{
  int lfd = open(dev, O_RDONLY | O_CLOEXEC);
  if (lfd == -1 || ioctl(lfd, LOOP_SET_CAPACITY, 0) == -1) {
    zl_error_sys(errno, "%s: cannot update the size", dev);
    if (lfd >= 0)
      close(lfd);
    return -1;
  }
  close(lfd);
  return 0;
}

bool
zl_loop_direct(const char *dev)
{
  char path[128];
  FILE *f;
  bool direct = false;

  snprintf(path, sizeof path, "/sys/block/%s/loop/dio", dev + 5);
  if ((f = fopen(path, "re"))) {
    direct = fgetc(f) == '1';
    fclose(f);
  }
  return direct;
}

int
zl_loop_attach(int fd, bool readonly, char *dev, size_t devlen, bool *direct)
{
  struct stat st;

  /* a device of the file reused only as it must be now (size, read-only) */
  if (fstat(fd, &st) == 0 && zl_loop_find(fd, dev, devlen) == 0 &&
      zl_loop_fits(dev, &st, readonly) == 1) {
    *direct = zl_loop_direct(dev);
    return 0;
  }
  return zl_loop_setup(fd, readonly, dev, devlen, direct);
}

/* LOOP_CONFIGURE (Linux 5.8): 0 not tried yet, 1 works, -1 refused (the
 * kernel is older, or a filter says so): the three older ioctls then. */
static atomic_int configure_state;

int
zl_loop_configure_state(void)
{
  return atomic_load(&configure_state);
}

/* LOOP_CONFIGURE refused as a request, not as a configuration. */
static bool
no_configure(int e)
{
  return e == EINVAL || e == ENOTTY || e == ENOSYS;
}

/* Bind lfd (a free loop device) to fd in one step, direct I/O if the
 * file's filesystem allows it.  -1 with errno; -2 when the kernel lacks
 * LOOP_CONFIGURE. */
static int
configure(int lfd, int fd, bool readonly, bool *direct)
{
  struct loop_config cfg = {.fd = (unsigned)fd, .block_size = 512};
  cfg.info.lo_flags = (readonly ? LO_FLAGS_READ_ONLY : 0) | LO_FLAGS_DIRECT_IO;
  int r = ioctl(lfd, LOOP_CONFIGURE, &cfg);
  *direct = r == 0;
  if (r == -1 && errno == EINVAL) { /* no direct I/O on this filesystem? */
    cfg.info.lo_flags &= ~(unsigned)LO_FLAGS_DIRECT_IO;
    r = ioctl(lfd, LOOP_CONFIGURE, &cfg);
  }
  if (r == 0) {
    atomic_store(&configure_state, 1);
    return 0;
  }
  /* EINVAL without direct I/O too: a kernel that knows no LOOP_CONFIGURE
   * (before 5.8 the loop driver answers EINVAL to what it does not know),
   * unless it answered LOOP_CONFIGURE before */
  if (no_configure(errno) && atomic_load(&configure_state) != 1) {
    atomic_store(&configure_state, -1);
    return -2;
  }
  return -1;
}

/* The same in three steps, as losetup does on old kernels: LOOP_SET_FD
 * (read-only when the device is open read-only), LOOP_SET_STATUS64 (no
 * offset, no size limit, no flags: as LOOP_CONFIGURE above), then
 * LOOP_SET_DIRECT_IO where the filesystem allows it. */
static int
set_fd(const char *dev, int fd, bool readonly, bool *direct)
{
  int lfd = open(dev, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (lfd == -1)
    return -1;
  if (ioctl(lfd, LOOP_SET_FD, fd) == -1) {
    int e = errno;
    close(lfd);
    errno = e;
    return -1;
  }
  struct loop_info64 info = {0};
  if (ioctl(lfd, LOOP_SET_STATUS64, &info) == -1) {
    int e = errno;
    ioctl(lfd, LOOP_CLR_FD, 0);
    close(lfd);
    errno = e == EBUSY ? EIO : e; /* not "taken meanwhile": it was ours */
    return -1;
  }
  *direct = ioctl(lfd, LOOP_SET_DIRECT_IO, 1UL) == 0;
  if (!*direct)
    zl_debug("%s: no direct I/O (%s)", dev, strerror(errno));
  close(lfd);
  return 0;
}

int
zl_loop_setup(int fd, bool readonly, char *dev, size_t devlen, bool *direct)
{
  int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
  if (ctl == -1) {
    zl_error(errno, "loop devices are not available (/dev/loop-control: %s)",
             strerror(errno));
    return -1;
  }
  for (int attempt = 0; attempt < 8; attempt++) {
    int n = ioctl(ctl, LOOP_CTL_GET_FREE);
    if (n < 0) {
      zl_error_sys(errno, "no free loop device");
      close(ctl);
      return -1;
    }
    snprintf(dev, devlen, "/dev/loop%d", n);
    int r = -2, e = 0;
    if (atomic_load(&configure_state) >= 0) {
      int lfd = open(dev, O_RDWR | O_CLOEXEC);
      if (lfd == -1)
        continue;
      r = configure(lfd, fd, readonly, direct);
      e = errno;
      close(lfd);
      if (r == -2)
        zl_debug("%s: LOOP_CONFIGURE refused (%s): LOOP_SET_FD from now on", dev,
                 strerror(e));
    }
    if (r == -2) {
      r = set_fd(dev, fd, readonly, direct);
      e = errno;
      if (r == -1 && e == ENOENT)
        continue;
    }
    if (r == 0) {
      close(ctl);
      return 0;
    }
    if (e != EBUSY) { /* EBUSY: taken meanwhile, try the next one */
      zl_error_sys(e, "%s: cannot attach", dev);
      close(ctl);
      return -1;
    }
  }
  close(ctl);
  zl_error(EBUSY, "no loop device could be attached");
  return -1;
}

int
zl_loop_detach(const char *dev)
{
  int lfd = open(dev, O_RDONLY | O_CLOEXEC);
  if (lfd == -1)
    return errno == ENOENT ? 0 : (zl_error_sys(errno, "%s", dev), -1);
  int r = ioctl(lfd, LOOP_CLR_FD, 0);
  int e = errno;
  close(lfd);
  if (r == -1 && e != ENXIO) {
    zl_error_sys(e, "release %s", dev);
    return -1;
  }
  return 0;
}

int
zl_loop_probe_configure(void)
{
  char dev[32] = "/dev/loop0";
  int lfd = open(dev, O_RDONLY | O_CLOEXEC);
  if (lfd == -1 && errno == ENOENT) {
    int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    int n = ctl == -1 ? -1 : ioctl(ctl, LOOP_CTL_GET_FREE);
    if (ctl >= 0)
      close(ctl);
    if (n >= 0) {
      snprintf(dev, sizeof dev, "/dev/loop%d", n);
      lfd = open(dev, O_RDONLY | O_CLOEXEC);
    }
  }
  if (lfd == -1) {
    zl_error(errno, "no loop device to ask (%s)", strerror(errno));
    return -1;
  }
  struct loop_config cfg = {.fd = (unsigned)-1};
  int r = ioctl(lfd, LOOP_CONFIGURE, &cfg), e = errno;
  close(lfd);
  if (r == 0 || e == EBADF)
    return 1; /* r == 0 cannot be: no file has descriptor -1 */
  if (no_configure(e))
    return 0;
  zl_error_sys(e, "%s: LOOP_CONFIGURE", dev);
  return -1;
}
