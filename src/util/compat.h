/* compat.h: the system calls newer than the oldest supported host (Linux
 * 4.19, XCP-ng 8.3's dom0), each chosen at run time.
 *
 * Each wrapper makes the system call through syscall(2) (no glibc symbol
 * newer than the call itself: the binary links against old libcs) and,
 * when the kernel answers ENOSYS (an old kernel, or a seccomp filter that
 * says so), falls back to an older way.  An ENOSYS is remembered for the
 * life of the process: the fallback costs one failed system call.
 *
 *   copy_file_range   the caller's read/write loop (ENOSYS is returned)
 *   getrandom         reads /dev/urandom
 *   memfd_create      an unlinked O_TMPFILE in /dev/shm (else /tmp)
 *   close_range       walks /proc/self/fd (else every fd to RLIMIT_NOFILE)
 */
#ifndef ZL_COMPAT_H
#define ZL_COMPAT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* copy_file_range(2), flags 0.  -1 with errno; ENOSYS at once when the
 * kernel has been found without it (the caller copies by itself then, as
 * for EXDEV or EOPNOTSUPP). */
ssize_t zl_copy_file_range(int in, off_t *inoff, int out, off_t *outoff, size_t len);

/* Fill buf with len random bytes (getrandom(2), else /dev/urandom).
 * nonblock: GRND_NONBLOCK (fails with EAGAIN before the pool is ready;
 * /dev/urandom never blocks).  0, or -1 with errno. */
int zl_random_bytes(void *buf, size_t len, bool nonblock);

/* An anonymous, close-on-exec file of size 0, as memfd_create(name,
 * MFD_CLOEXEC).  -1 with errno. */
int zl_memfd(const char *name);

/* Mark every descriptor from lowfd on close-on-exec (close_range(2) with
 * CLOSE_RANGE_CLOEXEC, else one by one).  0, or -1 with errno when the
 * descriptors could not be found. */
int zl_cloexec_from(int lowfd);

/* Which way this process takes for each call: probes each one (cheaply,
 * without side effects) unless it has run already. */
struct zl_compat_paths {
  bool copy_file_range, getrandom, memfd_create, close_range, openat2;
};
void zl_compat_probe(struct zl_compat_paths *out);

/* Test hook: make every wrapper behave as if the kernel lacked its call
 * (true), or probe again (false). */
void zl_compat_force_fallback(bool on);

#endif
