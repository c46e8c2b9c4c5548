/* fault.c: a test layer (nbdkit's filters/error).  With
 *
 *   ZFS_LIVE_TEST_IO_FAULT=<kinds>:<error>[:<file>]
 *
 * in the environment when a stack is opened, every request of the listed
 * kinds (a comma-separated list of read, write, zero, trim, flush, cache)
 * fails with the named error (EIO, ENOSPC, EDQUOT, EPERM, EROFS, ENOTSUP)
 * without reaching the layers below; with <file>, only while that file
 * exists (looked at once per batch), so a test can turn the fault on and
 * off under a running server.  Not in a stack otherwise; a setting that
 * cannot be understood makes the open fail. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/io/io.h"
#include "util/error.h"

#include "util/banned.h" /* last: after every declaration */

#define FAULT_VAR "ZFS_LIVE_TEST_IO_FAULT"

struct fault {
  unsigned kinds; /* bit (1 << op) per failing kind */
  int err;        /* positive errno */
  char *file;     /* NULL: always */
};

static const char *const kind_names[] = {
    [ZL_IO_READ] = "read", [ZL_IO_WRITE] = "write", [ZL_IO_ZERO] = "zero",
    [ZL_IO_TRIM] = "trim", [ZL_IO_FLUSH] = "flush", [ZL_IO_CACHE] = "cache",
};

static const struct {
  const char *name;
  int err;
} errors[] = {
    {"EIO", EIO},     {"ENOSPC", ENOSPC}, {"EDQUOT", EDQUOT},
    {"EPERM", EPERM}, {"EROFS", EROFS},   {"ENOTSUP", ENOTSUP},
};

static bool
fault_wanted(const struct zl_io_target *t)
{
  const char *s = getenv(FAULT_VAR);
  (void)t;
  return s && *s;
}

/* "write,zero" -> kind bits; 0 if a name is unknown. */
static unsigned
parse_kinds(char *list)
{
  unsigned kinds = 0;
  char *save;

  for (char *k = strtok_r(list, ",", &save); k; k = strtok_r(NULL, ",", &save)) {
    size_t i = 0;
    while (i < sizeof kind_names / sizeof *kind_names && strcmp(k, kind_names[i]) != 0)
      i++;
    if (i == sizeof kind_names / sizeof *kind_names)
      return 0;
    kinds |= 1u << i;
  }
  return kinds;
}

static int
parse_error(const char *name)
{
  for (size_t i = 0; i < sizeof errors / sizeof *errors; i++) {
    if (strcmp(name, errors[i].name) == 0)
      return errors[i].err;
  }
  return 0;
}

static void
fault_close(struct zl_io_layer *self)
{
  struct fault *f = self->state;
  if (f)
    free(f->file);
  free(f);
  self->state = NULL;
}

static int
fault_open(struct zl_io_layer *self, const struct zl_io_target *t)
{
  const char *spec = getenv(FAULT_VAR);
  char buf[512];
  (void)t;

  struct fault *f = calloc(1, sizeof *f);
  if (!f) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  self->state = f;
  snprintf(buf, sizeof buf, "%s", spec ? spec : "");
  char *err = strchr(buf, ':');
  char *file = err ? strchr(err + 1, ':') : NULL;
  if (err)
    *err++ = '\0';
  if (file)
    *file++ = '\0';
  f->kinds = parse_kinds(buf);
  f->err = err ? parse_error(err) : 0;
  if (!f->kinds || !f->err || (file && !*file)) {
    zl_error(EINVAL, "%s=%s: want <kinds>:<error>[:<file>]", FAULT_VAR, spec);
    fault_close(self);
    return -1;
  }
  if (file && !(f->file = strdup(file))) {
    zl_error(ENOMEM, "out of memory");
    fault_close(self);
    return -1;
  }
  return 0;
}

static void
fault_batch(struct zl_io_layer *self, struct zl_io_queue *q, struct zl_io_req *r,
            size_t n)
{
  const struct fault *f = self->state;
  size_t failing = 0;

  if (!f->file || access(f->file, F_OK) == 0) {
    for (size_t i = 0; i < n; i++)
      failing += (f->kinds >> r[i].op) & 1;
  }
  if (failing == 0) {
    zl_io_next(self, q, r, n);
    return;
  }
  /* the others go down in their order (a FLUSH still follows its writes) */
  struct zl_io_req *rest = failing < n ? malloc((n - failing) * sizeof *rest) : NULL;
  if (failing < n && !rest) {
    for (size_t i = 0; i < n; i++)
      r[i].result = -ENOMEM;
    return;
  }
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    if (!((f->kinds >> r[i].op) & 1))
      rest[m++] = r[i];
  }
  if (m)
    zl_io_next(self, q, rest, m);
  m = 0;
  for (size_t i = 0; i < n; i++)
    r[i].result = (f->kinds >> r[i].op) & 1 ? -f->err : rest[m++].result;
  free(rest);
}

const struct zl_io_layer_ops zl_io_fault = {
    .name = "fault",
    .wanted = fault_wanted,
    .open = fault_open,
    .close = fault_close,
    .batch = fault_batch,
};
