/* fuzz-ganeti-env.c: libFuzzer harness for the Ganeti ExtStorage request in
 * the environment (src/ganeti/env.c, through its interface in
 * ganeti/ganeti.h).  Built and run by scripts/fuzz.sh (clang); replayed
 * over fuzz/seeds/ganeti-env/ by the unit tests (fuzz/replay.c, gcc).
 *
 * An input is "<action>\n" (a script name: create, attach, ...) and then
 * the environment, entries separated by NUL bytes as execve(2) passes them
 * ("VOL_NAME=...\0EXTP_DIR=...\0...").  Each entry is copied to its own
 * buffer of exactly its length plus the NUL, and the envp array has exactly
 * n + 1 slots, so a read outside the entries is caught by ASan.
 *
 * Checked (abort on violation):
 *   - gnt_parse fails with a message (and errno), or yields a request that
 *     holds what ganeti.h and docs/design.md promise:
 *       exactly one of dir (absolute) and pool (not absolute, no '@');
 *       mountpoint only with dir, "yes" or absolute; layout, volblocksize
 *       and tunables only with pool;
 *       vol_name a valid volume key (verify may go without one);
 *       create: size >= 1 MiB, whole MiB; grow: new_size >= 1 MiB, whole
 *       MiB, size -1 or whole MiB <= new_size; no sizes for other actions;
 *       setinfo: metadata a valid description; snapshot: snap_name a valid
 *       key other than vol_name; open: exclusive 0 or 1, else -1;
 *       provisioning thin|thick, layout zvol|dataset (or unset);
 *       at most GNT_MAX_TUNE tunables, each a known property once, its
 *       value of [a-z0-9-]+;
 *   - every string of the request points into one entry's value (it is
 *     borrowed) and ends inside it;
 *   - parsing again gives the same answer (no hidden state). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "ganeti/ganeti.h"
#include "util/error.h"

#include "util/banned.h" /* last: after every declaration */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MiB (INT64_C(1) << 20)

struct env {
  char **v; /* n + 1 slots, NULL-terminated */
  size_t n;
};

static void
fail(const struct env *e, const char *why)
{
  fprintf(stderr, "\n*** fuzz-ganeti-env: %s\n*** environment:\n", why);
  for (size_t i = 0; i < e->n; i++)
    fprintf(stderr, "***   [%zu] %s\n", i, e->v[i]);
  abort();
}

/* Does s lie in the value part of one entry, NUL included? */
static bool
borrowed(const struct env *e, const char *s)
{
  for (size_t i = 0; i < e->n; i++) {
    const char *eq = strchr(e->v[i], '=');
    size_t len = strlen(e->v[i]);
    if (eq && s > eq && s <= e->v[i] + len && s + strlen(s) == e->v[i] + len)
      return true;
  }
  return false;
}

static bool
whole_mib(int64_t v, int64_t min)
{
  return v >= min && v % MiB == 0;
}

static bool
one_of(const char *s, const char *const *values)
{
  for (; *values; values++) {
    if (strcmp(s, *values) == 0)
      return true;
  }
  return false;
}

static const char *const tunables[] = {
    "compression", "copies", "sync", "primarycache", "secondarycache", "logbias", NULL};

static void
check_tunables(const struct env *e, const struct gnt_req *r)
{
  if (r->ntune < 0 || r->ntune > GNT_MAX_TUNE)
    fail(e, "more tunables than the request holds");
  for (int i = 0; i < r->ntune; i++) {
    const char *prop = r->tune[i][0], *value = r->tune[i][1];
    if (!prop || !one_of(prop, tunables))
      fail(e, "an unknown tunable");
    if (!value || !*value ||
        strspn(value, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(value))
      fail(e, "a tunable's value outside [a-z0-9-]+");
    if (!borrowed(e, value))
      fail(e, "a tunable's value is not one of the entries");
    for (int j = 0; j < i; j++) {
      if (strcmp(r->tune[j][0], prop) == 0)
        fail(e, "a tunable twice");
    }
  }
}

static void
check_request(const struct env *e, enum gnt_action action, const struct gnt_req *r)
{
  const char *strs[] = {r->vol_name, r->cname,       r->metadata,   r->snap_name,
                        r->dir,      r->pool,        r->mountpoint, r->provisioning,
                        r->layout,   r->volblocksize};

  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
    if (strs[i] && !borrowed(e, strs[i]))
      fail(e, "a string of the request is not an entry's value");
  }
  if (r->action != action)
    fail(e, "the request's action is not the one asked for");
  if (!r->dir == !r->pool)
    fail(e, "not exactly one of dir and pool");
  if (r->dir && r->dir[0] != '/')
    fail(e, "dir is not absolute");
  if (r->pool && (!*r->pool || r->pool[0] == '/' || strchr(r->pool, '@')))
    fail(e, "pool is not a pool or dataset name");
  if (r->mountpoint &&
      (!r->dir || (strcmp(r->mountpoint, "yes") != 0 && r->mountpoint[0] != '/')))
    fail(e, "mountpoint without dir, or neither yes nor absolute");
  if (r->dir && (r->layout || r->volblocksize || r->ntune))
    fail(e, "ZFS parameters with dir");
  if (r->provisioning &&
      !one_of(r->provisioning, (const char *const[]){"thin", "thick", NULL}))
    fail(e, "provisioning neither thin nor thick");
  if (r->layout && !one_of(r->layout, (const char *const[]){"zvol", "dataset", NULL}))
    fail(e, "layout neither zvol nor dataset");
  check_tunables(e, r);
  if (action != GNT_VERIFY || r->vol_name) {
    if (!r->vol_name || !zl_key_valid(r->vol_name) || strchr(r->vol_name, '/'))
      fail(e, "vol_name is not a valid volume key");
  }
  switch (action) {
  case GNT_CREATE:
    if (!whole_mib(r->size, MiB) || r->new_size != -1)
      fail(e, "create: size not whole MiB >= 1 MiB");
    break;
  case GNT_GROW:
    if (!whole_mib(r->new_size, MiB) ||
        (r->size != -1 && (!whole_mib(r->size, 0) || r->size > r->new_size)))
      fail(e, "grow: sizes not whole MiB, or shrinking");
    break;
  default:
    if (r->size != -1 || r->new_size != -1)
      fail(e, "sizes for an action that takes none");
  }
  if (action == GNT_SETINFO &&
      (!r->metadata || zl_check_description(r->metadata, "VOL_METADATA") == -1))
    fail(e, "setinfo: metadata missing or not a valid description");
  if (action == GNT_SNAPSHOT &&
      (!r->snap_name || !zl_key_valid(r->snap_name) || strchr(r->snap_name, '/') ||
       strcmp(r->snap_name, r->vol_name) == 0))
    fail(e, "snapshot: snap_name not a valid key, or the volume's own");
  if (action == GNT_OPEN ? r->exclusive != 0 && r->exclusive != 1 : r->exclusive != -1)
    fail(e, "exclusive not 0/1 for open, or set for another action");
}

/* The entries of data (NUL-separated), each in its own exact buffer. */
static void
split(const uint8_t *data, size_t size, struct env *e)
{
  size_t n = 0;

  for (size_t i = 0; i < size; i++)
    n += data[i] == '\0';
  n += size > 0 && data[size - 1] != '\0';
  e->v = malloc((n + 1) * sizeof *e->v);
  e->n = 0;
  if (!e->v)
    abort();
  for (size_t i = 0; i < size;) {
    const uint8_t *end = memchr(data + i, '\0', size - i);
    size_t len = end ? (size_t)(end - (data + i)) : size - i;
    char *s = malloc(len + 1);
    if (!s)
      abort();
    memcpy(s, data + i, len);
    s[len] = '\0';
    e->v[e->n++] = s;
    i += len + 1;
  }
  e->v[e->n] = NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const uint8_t *nl = memchr(data, '\n', size < 32 ? size : 32);
  char name[32];

  if (!nl)
    return -1;
  snprintf(name, sizeof name, "%.*s", (int)(nl - data), (const char *)data);
  int action = gnt_action_of(name);
  if (action < 0)
    return -1;

  struct env e;
  split(nl + 1, size - (size_t)(nl + 1 - data), &e);
  /* exact-size requests: a write past the struct is caught */
  struct gnt_req *r = malloc(sizeof *r), *again = malloc(sizeof *again);
  if (!r || !again)
    abort();
  zl_error_clear();
  int rc = gnt_parse(action, e.v, r);
  if (rc == -1) {
    if (!*zl_error_msg() || zl_error_errno() == 0)
      fail(&e, "parse failed without a message");
  } else if (rc == 0) {
    check_request(&e, action, r);
  } else {
    fail(&e, "parse returned neither 0 nor -1");
  }
  char msg[2048];
  snprintf(msg, sizeof msg, "%s", rc == -1 ? zl_error_msg() : "");
  zl_error_clear();
  int rc2 = gnt_parse(action, e.v, again);
  if (rc2 != rc || (rc == -1 && strcmp(msg, zl_error_msg()) != 0) ||
      (rc == 0 && memcmp(r, again, sizeof *r) != 0))
    fail(&e, "parsing again gave another answer");
  zl_error_clear();
  free(r);
  free(again);
  for (size_t i = 0; i < e.n; i++)
    free(e.v[i]);
  free(e.v);
  return 0;
}
