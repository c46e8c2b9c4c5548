/* sandbox.c: the fuzzer's directory tree (see sandbox.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz/sandbox.h"

#include "util/banned.h" /* last: after every declaration */

void
sb_die(const char *what)
{
  fprintf(stderr, "fuzz sandbox: %s: %s\n", what, strerror(errno));
  abort();
}

static DIR *
dir_of(int dfd)
{
  int fd = dup(dfd);
  DIR *d = fd == -1 ? NULL : fdopendir(fd);

  if (!d)
    sb_die("opendir");
  rewinddir(d);
  return d;
}

static bool
dots(const char *n)
{
  return n[0] == '.' && (!n[1] || (n[1] == '.' && !n[2]));
}

void
sb_rm_contents(int dfd)
{
  DIR *d = dir_of(dfd);
  struct dirent *e;
  struct stat st;

  while ((e = readdir(d))) {
    if (dots(e->d_name))
      continue;
    if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1)
      sb_die(e->d_name);
    if (S_ISDIR(st.st_mode)) {
      int sub = openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub == -1)
        sb_die(e->d_name);
      sb_rm_contents(sub);
      close(sub);
    }
    if (unlinkat(dfd, e->d_name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) == -1)
      sb_die(e->d_name);
  }
  closedir(d);
}

/* Copy a regular file's data segments (holes stay holes). */
static void
copy_file(int in, int out, off_t size)
{
  static char buf[1 << 16];
  off_t pos = 0;

  if (ftruncate(out, size) == -1)
    sb_die("ftruncate");
  while (pos < size) {
    off_t data = lseek(in, pos, SEEK_DATA);
    if (data == -1 && errno == ENXIO)
      break;
    off_t hole = data == -1 ? -1 : lseek(in, data, SEEK_HOLE);
    if (hole == -1)
      sb_die("lseek");
    for (pos = data; pos < hole;) {
      size_t want = hole - pos < (off_t)sizeof buf ? (size_t)(hole - pos) : sizeof buf;
      ssize_t n = pread(in, buf, want, pos);
      if (n <= 0 || pwrite(out, buf, (size_t)n, pos) != n)
        sb_die("copy");
      pos += n;
    }
  }
}

void
sb_copy_tree(int src, int dst)
{
  DIR *d = dir_of(src);
  struct dirent *e;
  struct stat st;

  while ((e = readdir(d))) {
    if (dots(e->d_name))
      continue;
    if (fstatat(src, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1)
      sb_die(e->d_name);
    if (S_ISDIR(st.st_mode)) {
      if (mkdirat(dst, e->d_name, st.st_mode & 07777) == -1)
        sb_die(e->d_name);
      int a = openat(src, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      int b = openat(dst, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (a == -1 || b == -1)
        sb_die(e->d_name);
      sb_copy_tree(a, b);
      close(a);
      close(b);
    } else if (S_ISREG(st.st_mode)) {
      int a = openat(src, e->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      int b = openat(dst, e->d_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                     st.st_mode & 07777);
      if (a == -1 || b == -1)
        sb_die(e->d_name);
      copy_file(a, b, st.st_size);
      close(a);
      close(b);
    } else {
      errno = EINVAL;
      sb_die("the template holds something neither a directory nor a file");
    }
  }
  closedir(d);
}

int
sb_count(int dfd, char *names, size_t len)
{
  DIR *d = dir_of(dfd);
  struct dirent *e;
  int n = 0;

  if (names && len)
    names[0] = '\0';
  while ((e = readdir(d))) {
    if (dots(e->d_name))
      continue;
    n++;
    if (names && len) {
      size_t used = strlen(names);
      snprintf(names + used, len - used, "%s ", e->d_name); /* truncates at len */
    }
  }
  closedir(d);
  return n;
}

int
sb_open_fds(void)
{
  int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd == -1)
    sb_die("/proc/self/fd");
  int n = sb_count(dfd, NULL, 0) - 2; /* less dfd and its dup */
  close(dfd);
  return n;
}

bool
sb_path_within(const char *path, const char *dir)
{
  char norm[PATH_MAX] = "";
  size_t len = 0;

  if (path[0] != '/')
    return false;
  for (const char *p = path; *p;) {
    while (*p == '/')
      p++;
    size_t n = strcspn(p, "/");
    if (n == 0 || (n == 1 && p[0] == '.')) {
      /* nothing */
    } else if (n == 2 && p[0] == '.' && p[1] == '.') {
      while (len > 0 && norm[--len] != '/')
        ;
      norm[len] = '\0';
    } else {
      if (len + 1 + n >= sizeof norm)
        return false;
      norm[len++] = '/';
      memcpy(norm + len, p, n);
      len += n;
      norm[len] = '\0';
    }
    p += n;
  }
  size_t d = strlen(dir);
  return strncmp(norm, dir, d) == 0 && (norm[d] == '\0' || norm[d] == '/');
}

static uint64_t
fnv(uint64_t h, const void *p, size_t n)
{
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++)
    h = (h ^ c[i]) * 0x100000001b3ull;
  return h;
}

static int
by_name(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names of dfd's entries, sorted (malloc()ed, *n of them). */
static char **
sorted_names(int dfd, size_t *n)
{
  DIR *d = dir_of(dfd);
  struct dirent *e;
  char **v = NULL;

  *n = 0;
  while ((e = readdir(d))) {
    if (dots(e->d_name))
      continue;
    char **nv = realloc(v, (*n + 1) * sizeof *v);
    if (!nv || !(nv[*n] = strdup(e->d_name)))
      sb_die("malloc");
    v = nv;
    (*n)++;
  }
  closedir(d);
  if (*n)
    qsort(v, *n, sizeof *v, by_name);
  return v;
}

static uint64_t
digest_at(int dfd, const char *rel, bool (*skip)(const char *rel), uint64_t h)
{
  size_t n;
  char **names = sorted_names(dfd, &n);

  for (size_t i = 0; i < n; i++) {
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s%s%s", rel, *rel ? "/" : "", names[i]);
    if (skip && skip(path))
      goto next;
    if (fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) == -1)
      sb_die(path);
    h = fnv(h, path, strlen(path) + 1);
    h = fnv(h, &st.st_mode, sizeof st.st_mode);
    if (S_ISDIR(st.st_mode)) {
      int sub = openat(dfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub == -1)
        sb_die(path);
      h = digest_at(sub, path, skip, h);
      close(sub);
    } else if (S_ISREG(st.st_mode)) {
      h = fnv(h, &st.st_size, sizeof st.st_size);
      if (st.st_size <= 65536) {
        static char buf[65536];
        int fd = openat(dfd, names[i], O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        ssize_t r = fd == -1 ? -1 : pread(fd, buf, sizeof buf, 0);
        if (r < 0)
          sb_die(path);
        h = fnv(h, buf, (size_t)r);
        close(fd);
      }
    }
  next:
    free(names[i]);
  }
  free(names);
  return h;
}

uint64_t
sb_digest(int dfd, bool (*skip)(const char *rel))
{
  return digest_at(dfd, "", skip, 0xcbf29ce484222325ull);
}
