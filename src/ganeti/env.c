/* env.c: the request in the environment (see ganeti.h), and the provider's
 * parameter table, from which parameters.list is generated. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "ganeti/ganeti.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/strbuf.h"

#include "util/banned.h" /* last: after every declaration */

const char *const gnt_action_names[GNT_NACTIONS] = {
    "create",  "attach", "detach",   "remove", "grow",
    "setinfo", "verify", "snapshot", "open",   "close",
};

int
gnt_action_of(const char *name)
{
  for (int i = 0; i < GNT_NACTIONS; i++) {
    if (strcmp(gnt_action_names[i], name) == 0)
      return i;
  }
  return -1;
}

enum { P_FILE = 1, P_ZFS = 2, P_BOTH = 3, P_GANETI = 4 };

/* Each EXTP_<NAME>: where it applies, the values it may take (NULL: any,
 * checked later), and for ZFS tunables the property it sets. */
static const struct param {
  const char *name;
  int where;
  const char *const *values;
  const char *tunable;
  const char *help;
} params[] = {
    {"DIR", P_FILE, NULL, NULL,
     "file SR: directory holding the volumes as raw files (made on first create; must "
     "be allowed in /etc/ganeti/file-storage-paths)"},
    {"POOL", P_ZFS, NULL, NULL,
     "ZFS SR: <pool>[/<dataset>] under which the SR lives (made on first create)"},
    {"MOUNTPOINT", P_FILE, NULL, NULL,
     "file SR: yes (the dir is a mount point) or the mount point the dir must be on; "
     "nothing is made or used while it is not mounted (without it, /etc/fstab and "
     "systemd mount units decide)"},
    {"PROVISIONING", P_BOTH, (const char *const[]){"thin", "thick", NULL}, NULL,
     "thin (sparse, the default) or thick (space reserved)"},
    {"LAYOUT", P_ZFS, (const char *const[]){"zvol", "dataset", NULL}, NULL,
     "ZFS SR made on first use: zvol (OpenZFS) or dataset; default zvol where possible"},
    {"VOLBLOCKSIZE", P_ZFS, NULL, NULL,
     "ZFS SR made on first use: block size of its volumes (e.g. 16K)"},
    {"COMPRESSION", P_ZFS, NULL, "compression",
     "ZFS: compression of the volume (lz4, ...)"},
    {"COPIES", P_ZFS, (const char *const[]){"1", "2", "3", NULL}, "copies",
     "ZFS: copies of each block, 1 to 3"},
    {"SYNC", P_ZFS, (const char *const[]){"standard", "always", "disabled", NULL}, "sync",
     "ZFS: sync behaviour (OpenZFS)"},
    {"PRIMARYCACHE", P_ZFS, (const char *const[]){"all", "none", "metadata", NULL},
     "primarycache", "ZFS: what the ARC caches"},
    {"SECONDARYCACHE", P_ZFS, (const char *const[]){"all", "none", "metadata", NULL},
     "secondarycache", "ZFS: what the L2ARC caches"},
    {"LOGBIAS", P_ZFS, (const char *const[]){"latency", "throughput", NULL}, "logbias",
     "ZFS: latency or throughput"},
    /* Ganeti sets these itself for every ext disk */
    {"PROVIDER", P_GANETI, NULL, NULL, NULL},
    {"ACCESS", P_GANETI, (const char *const[]){"kernelspace", NULL}, NULL, NULL},
};
#define NPARAMS (sizeof params / sizeof params[0])

char *
gnt_parameters_list(void)
{
  char *out = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&out, &len);

  if (!f)
    return NULL;
  for (size_t i = 0; i < NPARAMS; i++) {
    if (params[i].where == P_GANETI)
      continue;
    for (const char *p = params[i].name; *p; p++)
      fputc(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p, f);
    fprintf(f, " %s\n", params[i].help);
  }
  fclose(f);
  return out;
}

const char *
gnt_allowed_paths_file(void)
{
  const char *e = getenv("ZFS_LIVE_FILE_STORAGE_PATHS");
  return e && *e ? e : "/etc/ganeti/file-storage-paths";
}

/* "EXTP_A, EXTP_B, ..." (malloc()ed), NULL when out of memory. */
static char *
known_names(void)
{
  struct zl_sb b = ZL_SB_INIT;
  for (size_t i = 0; i < NPARAMS; i++)
    zl_sb_addf(&b, "%sEXTP_%s", i ? ", " : "", params[i].name);
  return zl_sb_take(&b);
}

/* Sizes are whole MiB: digits only, at least min, small enough in bytes. */
static int
parse_mib(const char *var, const char *s, int64_t min, int64_t *out)
{
  char *end;

  if (!s) {
    zl_error(EINVAL, "%s is not set (a size in MiB)", var);
    return -1;
  }
  if (s[0] == '-' && s[1] >= '0' && s[1] <= '9') {
    zl_error(EINVAL, "%s=%s is negative (a size in MiB)", var, s);
    return -1;
  }
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (!*s || *end || s[0] < '0' || s[0] > '9' || errno) {
    zl_error(EINVAL, "%s='%s' is not a number of MiB", var, s);
    return -1;
  }
  if (v > (unsigned long long)(INT64_MAX >> 21)) {
    zl_error(EINVAL, "%s=%s is too large", var, s);
    return -1;
  }
  if ((int64_t)v < min) {
    zl_error(EINVAL, "%s=%s: at least %lld MiB", var, s, (long long)min);
    return -1;
  }
  *out = (int64_t)v << 20;
  return 0;
}

static int
check_name(const char *var, const char *v)
{
  if (!v || !*v) {
    zl_error(EINVAL, "%s is not set (the Ganeti volume name)", var);
    return -1;
  }
  if (strchr(v, '/') || !zl_key_valid(v)) {
    zl_error(EINVAL,
             "%s='%.80s' is not a valid volume name: 1 to 200 letters, digits and "
             "'._+-', starting with a letter or digit (no '/')",
             var, v);
    return -1;
  }
  return 0;
}

static int
take_param(struct gnt_req *r, const char *name, const char *value)
{
  const struct param *p = NULL;

  for (size_t i = 0; i < NPARAMS && !p; i++)
    p = strcmp(params[i].name, name) == 0 ? &params[i] : NULL;
  if (!p) {
    CLEANUP_FREE char *known = known_names();
    zl_error(EINVAL, "unknown parameter EXTP_%s (known: %s)", name, known ? known : "?");
    return -1;
  }
  if (p->values) {
    bool ok = false;
    for (const char *const *v = p->values; *v && !ok; v++)
      ok = strcmp(*v, value) == 0;
    if (!ok) {
      struct zl_sb b = ZL_SB_INIT;
      zl_sb_join(&b, p->values, ", ");
      CLEANUP_FREE char *vals = zl_sb_take(&b);
      zl_error(EINVAL, "EXTP_%s='%s' is not one of: %s%s", name, value, vals ? vals : "?",
               strcmp(name, "ACCESS") == 0
                   ? " (userspace access is not offered: the disk is a block device)"
                   : "");
      return -1;
    }
  }
  if (!*value && p->where != P_GANETI) {
    zl_error(EINVAL, "EXTP_%s is empty", name);
    return -1;
  }
  if (strcmp(name, "DIR") == 0)
    r->dir = value;
  else if (strcmp(name, "POOL") == 0)
    r->pool = value;
  else if (strcmp(name, "MOUNTPOINT") == 0)
    r->mountpoint = value;
  else if (strcmp(name, "PROVISIONING") == 0)
    r->provisioning = value;
  else if (strcmp(name, "LAYOUT") == 0)
    r->layout = value;
  else if (strcmp(name, "VOLBLOCKSIZE") == 0)
    r->volblocksize = value;
  else if (p->tunable) {
    for (const char *c = value; *c; c++) {
      if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-')) {
        zl_error(EINVAL, "EXTP_%s='%s' is not a ZFS property value", name, value);
        return -1;
      }
    }
    /* a variable given twice (execve allows it): the last one counts, as
     * for every other variable, and tune[] never holds more than the
     * tunables there are */
    int i = 0;
    while (i < r->ntune && strcmp(r->tune[i][0], p->tunable) != 0)
      i++;
    if (i == GNT_MAX_TUNE) {
      zl_error(EINVAL, "too many tunables");
      return -1;
    }
    r->tune[i][0] = p->tunable;
    r->tune[i][1] = value;
    r->ntune += i == r->ntune;
  }
  return 0;
}

int
gnt_parse(enum gnt_action action, char *const *envp, struct gnt_req *r)
{
  const char *size = NULL, *new_size = NULL, *excl = NULL;
  bool have_meta = false, have_name = false;

  memset(r, 0, sizeof *r);
  r->action = action;
  r->size = r->new_size = -1;
  r->exclusive = -1;
  for (char *const *e = envp; e && *e; e++) {
    const char *eq = strchr(*e, '=');
    if (!eq)
      continue;
    size_t n = (size_t)(eq - *e);
    const char *v = eq + 1;
#define IS(name) (n == strlen(name) && strncmp(*e, name, n) == 0)
    if (IS("VOL_NAME"))
      r->vol_name = v, have_name = true;
    else if (IS("VOL_CNAME"))
      r->cname = *v ? v : NULL;
    else if (IS("VOL_SIZE"))
      size = v;
    else if (IS("VOL_NEW_SIZE"))
      new_size = v;
    else if (IS("VOL_METADATA"))
      r->metadata = v, have_meta = true;
    else if (IS("VOL_SNAPSHOT_NAME"))
      r->snap_name = v;
    else if (IS("VOL_OPEN_EXCLUSIVE"))
      excl = v;
    else if (n > 5 && strncmp(*e, "EXTP_", 5) == 0) {
      char name[64];
      snprintf(name, sizeof name, "%.*s", (int)(n - 5), *e + 5);
      if (take_param(r, name, v) == -1)
        return -1;
    }
#undef IS
  }
  if (r->dir && r->pool) {
    zl_error(EINVAL, "EXTP_DIR and EXTP_POOL are both set: a disk is in a file SR (dir) "
                     "or a ZFS SR (pool), not both");
    return -1;
  }
  if (!r->dir && !r->pool) {
    zl_error(EINVAL,
             "neither EXTP_DIR nor EXTP_POOL is set: give the disk dir=<directory> "
             "(file SR) or pool=<pool>[/<dataset>] (ZFS SR)");
    return -1;
  }
  if (r->dir && (r->layout || r->volblocksize || r->ntune)) {
    zl_error(EINVAL, "EXTP_%s applies to ZFS SRs (EXTP_POOL), not to EXTP_DIR",
             r->layout         ? "LAYOUT"
             : r->volblocksize ? "VOLBLOCKSIZE"
                               : "<ZFS tunable>");
    return -1;
  }
  if (r->dir && r->dir[0] != '/') {
    zl_error(EINVAL, "EXTP_DIR='%s' is not an absolute path", r->dir);
    return -1;
  }
  if (r->mountpoint && !r->dir) {
    zl_error(EINVAL, "EXTP_MOUNTPOINT applies to file SRs (EXTP_DIR), not to EXTP_POOL");
    return -1;
  }
  if (r->mountpoint && strcmp(r->mountpoint, "yes") != 0 && r->mountpoint[0] != '/') {
    zl_error(EINVAL, "EXTP_MOUNTPOINT='%s' is neither yes nor an absolute path",
             r->mountpoint);
    return -1;
  }
  if (r->pool && (r->pool[0] == '/' || strchr(r->pool, '@'))) {
    zl_error(EINVAL, "EXTP_POOL='%s' is not a pool or dataset name", r->pool);
    return -1;
  }
  /* verify checks the parameters; it needs no volume */
  if ((action != GNT_VERIFY || have_name) && check_name("VOL_NAME", r->vol_name) == -1)
    return -1;
  switch (action) {
  case GNT_CREATE:
    return parse_mib("VOL_SIZE", size, 1, &r->size);
  case GNT_GROW:
    if (parse_mib("VOL_NEW_SIZE", new_size, 1, &r->new_size) == -1 ||
        (size && parse_mib("VOL_SIZE", size, 0, &r->size) == -1))
      return -1;
    if (r->size > r->new_size) {
      zl_error(EINVAL, "VOL_NEW_SIZE=%s is smaller than VOL_SIZE=%s: volumes only grow",
               new_size, size);
      return -1;
    }
    return 0;
  case GNT_SETINFO:
    if (!have_meta) {
      zl_error(EINVAL, "VOL_METADATA is not set");
      return -1;
    }
    return zl_check_description(r->metadata, "VOL_METADATA");
  case GNT_SNAPSHOT:
    if (check_name("VOL_SNAPSHOT_NAME", r->snap_name) == -1)
      return -1;
    if (strcmp(r->snap_name, r->vol_name) == 0) {
      zl_error(EINVAL, "VOL_SNAPSHOT_NAME is the volume's own name");
      return -1;
    }
    return 0;
  case GNT_OPEN:
    if (!excl || (strcmp(excl, "True") != 0 && strcmp(excl, "False") != 0)) {
      zl_error(EINVAL, "VOL_OPEN_EXCLUSIVE must be True or False, not '%s'",
               excl ? excl : "(unset)");
      return -1;
    }
    r->exclusive = strcmp(excl, "True") == 0;
    return 0;
  default:
    return 0;
  }
}
