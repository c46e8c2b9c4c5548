/* emptyroot-exec: run the release binary in a root without any library.
 *
 * Installed in place of the zfs-live binary of an install root (the
 * release binary at real/zfs-live beside it, as k419-exec does), so every
 * plugin link, CLI call and NBD server the tests start goes through it.
 * It makes a private mount namespace whose root is an empty tmpfs holding
 * only what a test's calls touch:
 *
 *   /dev, /proc, /sys          the devices (loop, null, urandom), /proc/self
 *   /tmp, /var/tmp, /run       the tests' SR directories, sockets, run dirs
 *   /etc/machine-id            the host's identity when no inventory says it
 *   the install root           the plugin links and the binary
 *
 * and no /lib, /lib64, /usr/lib or /etc beyond that one file; then it
 * chroots there and runs real/zfs-live with argv unchanged.  A binary with
 * any shared library or a program interpreter cannot start in it.  Test
 * tool; needs root (mount namespaces).
 *
 *   emptyroot-exec PROGRAM [ARG...]   run PROGRAM (an absolute path) so */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#define NEWROOT "/mnt" /* any directory: the tmpfs covers it in our namespace only */

static void
die(const char *what, const char *arg)
{
  fprintf(stderr, "emptyroot-exec: %s %s: %s\n", what, arg ? arg : "", strerror(errno));
  exit(127);
}

/* mkdir -p NEWROOT/path */
static void
make_dirs(const char *path)
{
  char p[PATH_MAX];

  if (snprintf(p, sizeof p, "%s%s", NEWROOT, path) >= (int)sizeof p)
    die("path too long", path);
  for (char *s = p + strlen(NEWROOT) + 1; *s; s++) {
    if (*s == '/') {
      *s = '\0';
      if (mkdir(p, 0755) == -1 && errno != EEXIST)
        die("mkdir", p);
      *s = '/';
    }
  }
  if (mkdir(p, 0755) == -1 && errno != EEXIST)
    die("mkdir", p);
}

/* Bind the host's path (a directory) at the same path in the new root. */
static void
bind_dir(const char *path)
{
  char to[PATH_MAX + 16];
  struct stat st;

  if (stat(path, &st) == -1 || !S_ISDIR(st.st_mode))
    return; /* what the host lacks, the root lacks */
  make_dirs(path);
  if (snprintf(to, sizeof to, "%s%s", NEWROOT, path) >= (int)sizeof to)
    die("path too long", path);
  if (mount(path, to, NULL, MS_BIND | MS_REC, NULL) == -1)
    die("bind", path);
}

static void
bind_file(const char *path)
{
  char to[PATH_MAX], dir[PATH_MAX];
  int fd;

  if (access(path, F_OK) == -1)
    return;
  snprintf(dir, sizeof dir, "%s", path);
  *strrchr(dir, '/') = '\0';
  make_dirs(dir[0] ? dir : "/");
  snprintf(to, sizeof to, "%s%s", NEWROOT, path);
  if ((fd = open(to, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) == -1)
    die("create", to);
  close(fd);
  if (mount(path, to, NULL, MS_BIND, NULL) == -1)
    die("bind", path);
}

int
main(int argc, char **argv)
{
  char self[PATH_MAX], real[PATH_MAX + 16], cwd[PATH_MAX];
  bool direct = strcmp(strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0],
                       "emptyroot-exec") == 0;

  if (direct && argc < 2) {
    fprintf(stderr, "usage: emptyroot-exec PROGRAM [ARG...]\n");
    return 2;
  }
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n < 0)
    die("readlink", "/proc/self/exe");
  self[n] = '\0';
  if (direct)
    snprintf(real, sizeof real, "%s", argv[1]);
  else
    snprintf(real, sizeof real, "%.*s/real/%s", (int)(strrchr(self, '/') - self), self,
             strrchr(self, '/') + 1);
  if (!getcwd(cwd, sizeof cwd))
    snprintf(cwd, sizeof cwd, "/");

  if (unshare(CLONE_NEWNS) == -1)
    die("unshare", "CLONE_NEWNS");
  /* slave: nothing mounted here leaks out; where the host's / is shared,
   * what it mounts later (a test's filesystem under /tmp) reaches a server
   * started before that (where / is private, as here, it does not) */
  if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) == -1)
    die("make slave", "/");
  if (mount("emptyroot", NEWROOT, "tmpfs", 0, "mode=0755,size=1m") == -1)
    die("tmpfs on", NEWROOT);
  const char *dirs[] = {"/dev", "/proc", "/sys", "/tmp", "/var/tmp", "/run"};
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
    bind_dir(dirs[i]);
  bind_file("/etc/machine-id");
  /* the install root (the binary's directory's root) and the cwd, where
   * they are not below what is bound already */
  char root[PATH_MAX + 16];
  snprintf(root, sizeof root, "%s", real);
  char *libexec = strstr(root, "/usr/libexec/");
  if (libexec)
    *libexec = '\0';
  if (root[0] == '/' && strncmp(root, "/tmp/", 5) && strncmp(root, "/var/tmp/", 9))
    bind_dir(root);
  if (chroot(NEWROOT) == -1)
    die("chroot", NEWROOT);
  if (chdir(cwd) == -1 && chdir("/") == -1) /* a cwd not bound: / */
    die("chdir", cwd);
  if (direct)
    execv(real, argv + 1);
  else
    execv(real, argv);
  die("exec", real);
}
