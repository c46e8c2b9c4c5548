/* k419-exec: run a program with the system calls of Linux 4.19 (XCP-ng
 * 8.3's dom0 kernel), as far as zfs-live can tell: a seccomp filter makes
 * the calls that kernel lacks (and a few it has whose fallbacks must be
 * tested too) fail as an old kernel fails them, then execs the program.
 * The filter is inherited by every child (the NBD server a datapath
 * attach starts, the programs it runs).
 *
 *   k419-exec PROGRAM [ARG...]     run PROGRAM (found in PATH)
 *   NAME [ARG...]                  as any other name (an installed copy
 *                                  standing in for the zfs-live binary):
 *                                  runs real/F beside its own file F,
 *                                  argv unchanged (argv[0] picks the
 *                                  plugin method; F's name stays, for
 *                                  what the real one finds at
 *                                  /proc/self/exe)
 *
 * ENOSYS: what Linux 4.19 does not have -- io_uring_setup/enter/register
 * (5.1), close_range (5.9), openat2 (5.6), and the later calls glibc tries
 * first (clone3, faccessat2, pidfd_*, epoll_pwait2...).  getrandom (3.17),
 * memfd_create (3.17) and copy_file_range (4.5) are in 4.19 and stay: what
 * glibc 2.17 lacks is their wrappers, which util/compat does without by
 * calling syscall(); their fallbacks for older kernels are unit-tested by
 * forcing them (test-compat).  EINVAL: ioctl
 * LOOP_CONFIGURE (what the 4.19 loop driver answers to a request it does
 * not know).  A test tool, built only where libseccomp is found. */
#include <errno.h>
#include <limits.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOOP_CONFIGURE_REQ 0x4C0A

static const char *const nosys[] = {
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "close_range",    "openat2",        "clone3",
    "faccessat2",     "pidfd_open",     "pidfd_send_signal",
    "pidfd_getfd",    "epoll_pwait2",   "process_madvise",
    "mount_setattr",  "futex_waitv",    "landlock_create_ruleset",
};

static int
install(void)
{
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  int r = ctx ? 0 : -ENOMEM;

  for (size_t i = 0; r == 0 && i < sizeof nosys / sizeof nosys[0]; i++) {
    int nr = seccomp_syscall_resolve_name(nosys[i]);
    if (nr != __NR_SCMP_ERROR) /* unknown to this libseccomp: not filtered */
      r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
  }
  if (r == 0)
    r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EINVAL), SCMP_SYS(ioctl), 1,
                         SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, LOOP_CONFIGURE_REQ));
  if (r == 0)
    r = seccomp_load(ctx);
  seccomp_release(ctx);
  return r;
}

int
main(int argc, char **argv)
{
  const char *base = argc > 0 ? strrchr(argv[0], '/') : NULL;
  base = base ? base + 1 : argc > 0 ? argv[0] : "";
  bool direct = strcmp(base, "k419-exec") == 0;
  char real[PATH_MAX];

  if (direct && argc < 2) {
    fprintf(stderr, "usage: k419-exec PROGRAM [ARG...]\n");
    return 2;
  }
  if (!direct) {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
      perror("k419-exec: /proc/self/exe");
      return 127;
    }
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (!slash) {
      fprintf(stderr, "k419-exec: %s: not a path\n", self);
      return 127;
    }
    *slash = '\0';
    if (snprintf(real, sizeof real, "%s/real/%s", self, slash + 1) >= (int)sizeof real) {
      fprintf(stderr, "k419-exec: %s: too long\n", self);
      return 127;
    }
  }
  int r = install();
  if (r != 0) {
    fprintf(stderr, "k419-exec: seccomp: %s\n", strerror(-r));
    return 127;
  }
  if (direct)
    execvp(argv[1], argv + 1);
  else
    execv(real, argv);
  fprintf(stderr, "k419-exec: %s: %s\n", direct ? argv[1] : real, strerror(errno));
  return 127;
}
