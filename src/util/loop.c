/* loop.c: see loop.h.  ioctl-based (LOOP_CTL_GET_FREE, LOOP_CONFIGURE):
 * no losetup process. */
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
    int lfd = open(dev, O_RDWR | O_CLOEXEC);
    if (lfd == -1)
      continue;
    struct loop_config cfg = {.fd = (unsigned)fd, .block_size = 512};
    cfg.info.lo_flags = (readonly ? LO_FLAGS_READ_ONLY : 0) | LO_FLAGS_DIRECT_IO;
    int r = ioctl(lfd, LOOP_CONFIGURE, &cfg);
    *direct = r == 0;
    if (r == -1 && errno == EINVAL) { /* no direct I/O on this filesystem */
      cfg.info.lo_flags &= ~(unsigned)LO_FLAGS_DIRECT_IO;
      r = ioctl(lfd, LOOP_CONFIGURE, &cfg);
    }
    int e = errno;
    close(lfd);
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
