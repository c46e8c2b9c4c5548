/* compat.c: see compat.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "compat.h"

#include "util/banned.h" /* last: after every declaration */

/* The numbers of the calls 4.19 lacks are the same on every architecture
 * (the unified table from 5.1 on); older headers may not name them. */
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#define ZL_CLOSE_RANGE_CLOEXEC (1U << 2)
#define ZL_GRND_NONBLOCK       0x0001
#define ZL_MFD_CLOEXEC         0x0001U

/* Per call: 0 not known yet, 1 the kernel has it, -1 it has not. */
enum { CFR, RANDOM, MEMFD, CLOSE_RANGE, OPENAT2, N_CALLS };
static atomic_int state[N_CALLS];
static atomic_bool forced;

/* The result r of call c: remembers an ENOSYS (and what worked). */
static long
seen(int c, long r)
{
  if (r == -1 && errno == ENOSYS)
    atomic_store_explicit(&state[c], -1, memory_order_relaxed);
  else if (r >= 0)
    atomic_store_explicit(&state[c], 1, memory_order_relaxed);
  return r;
}

static bool
absent(int c)
{
  return atomic_load_explicit(&forced, memory_order_relaxed) ||
         atomic_load_explicit(&state[c], memory_order_relaxed) < 0;
}

void
zl_compat_force_fallback(bool on)
{
  atomic_store(&forced, on);
  for (int c = 0; c < N_CALLS; c++)
    atomic_store(&state[c], 0);
}

ssize_t
zl_copy_file_range(int in, off_t *inoff, int out, off_t *outoff, size_t len)
{
  if (absent(CFR)) {
    errno = ENOSYS;
    return -1;
  }
  loff_t io = *inoff, oo = *outoff;
  long n = seen(CFR, syscall(SYS_copy_file_range, in, &io, out, &oo, len, 0U));
  if (n > 0) {
    *inoff = (off_t)io;
    *outoff = (off_t)oo;
  }
  return (ssize_t)n;
}

static int
urandom(void *buf, size_t len)
{
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC | O_NOCTTY);
  size_t got = 0;

  if (fd == -1)
    return -1;
  while (got < len) {
    ssize_t n = read(fd, (char *)buf + got, len - got);
    if (n <= 0) {
      if (n == -1 && errno == EINTR)
        continue;
      int e = n == 0 ? EIO : errno;
      close(fd);
      errno = e;
      return -1;
    }
    got += (size_t)n;
  }
  close(fd);
  return 0;
}

int
zl_random_bytes(void *buf, size_t len, bool nonblock)
{
  size_t got = 0;

  while (got < len && !absent(RANDOM)) {
    long n = seen(RANDOM, syscall(SYS_getrandom, (char *)buf + got, len - got,
                                  nonblock ? ZL_GRND_NONBLOCK : 0U));
    if (n >= 0)
      got += (size_t)n;
    else if (errno != EINTR && errno != ENOSYS)
      return -1;
  }
  return got < len ? urandom((char *)buf + got, len - got) : 0;
}

/* An unlinked file in the first of the directories that takes one. */
static int
tmpfile_fd(void)
{
  static const char *const dirs[] = {"/dev/shm", "/tmp"};
  int e = ENOENT;

  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
    int fd = open(dirs[i], O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
      return fd;
    e = errno;
  }
  errno = e;
  return -1;
}

int
zl_memfd(const char *name)
{
  if (!absent(MEMFD)) {
    long fd = seen(MEMFD, syscall(SYS_memfd_create, name, ZL_MFD_CLOEXEC));
    if (fd >= 0 || errno != ENOSYS)
      return (int)fd;
  }
  return tmpfile_fd();
}

/* One by one: the open ones from /proc/self/fd, else every number. */
static int
cloexec_each(int lowfd)
{
  DIR *d = opendir("/proc/self/fd");

  if (d) {
    int self = dirfd(d);
    struct dirent *de;
    while ((de = readdir(d))) {
      char *end;
      long fd = strtol(de->d_name, &end, 10);
      if (*end || end == de->d_name || fd < lowfd || fd == self || fd > INT_MAX)
        continue;
      int fl = fcntl((int)fd, F_GETFD);
      if (fl >= 0 && !(fl & FD_CLOEXEC))
        fcntl((int)fd, F_SETFD, fl | FD_CLOEXEC);
    }
    closedir(d);
    return 0;
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
    return -1;
  rlim_t max = rl.rlim_cur > (1u << 20) ? (1u << 20) : rl.rlim_cur;
  for (rlim_t fd = (rlim_t)lowfd; fd < max; fd++) {
    int fl = fcntl((int)fd, F_GETFD);
    if (fl >= 0 && !(fl & FD_CLOEXEC))
      fcntl((int)fd, F_SETFD, fl | FD_CLOEXEC);
  }
  return 0;
}

int
zl_cloexec_from(int lowfd)
{
  if (!absent(CLOSE_RANGE) &&
      seen(CLOSE_RANGE,
           syscall(SYS_close_range, (unsigned)lowfd, ~0U, ZL_CLOSE_RANGE_CLOEXEC)) == 0)
    return 0;
  /* ENOSYS, or EINVAL from 5.9/5.10 (close_range without CLOEXEC) */
  return cloexec_each(lowfd);
}

/* Probe call c with a harmless call unless its answer is known. */
static bool
has(int c)
{
  if (atomic_load(&forced))
    return false;
  if (atomic_load(&state[c]) == 0) {
    long r = -1;
    switch (c) {
    case CFR: /* bad descriptors: EBADF where the call exists */
      r = syscall(SYS_copy_file_range, -1, NULL, -1, NULL, 0, 0U);
      break;
    case RANDOM: {
      uint8_t b;
      r = syscall(SYS_getrandom, &b, 1, ZL_GRND_NONBLOCK);
      break;
    }
    case MEMFD:
      r = syscall(SYS_memfd_create, "zfs-live-probe", ZL_MFD_CLOEXEC);
      if (r >= 0)
        close((int)r);
      break;
    case CLOSE_RANGE: /* no descriptor has that number */
      r = syscall(SYS_close_range, ~0U, ~0U, 0U);
      break;
    case OPENAT2: /* size 0: EINVAL where the call exists */
      r = syscall(SYS_openat2, -1, "", NULL, 0);
      break;
    }
    atomic_store(&state[c], r == -1 && errno == ENOSYS ? -1 : 1);
  }
  return atomic_load(&state[c]) > 0;
}

void
zl_compat_probe(struct zl_compat_paths *out)
{
  int e = errno;

  out->copy_file_range = has(CFR);
  out->getrandom = has(RANDOM);
  out->memfd_create = has(MEMFD);
  out->close_range = has(CLOSE_RANGE);
  out->openat2 = has(OPENAT2);
  errno = e;
}
