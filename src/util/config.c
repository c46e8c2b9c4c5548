/* config.c: see config.h. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "util/config.h"
#include "util/error.h"

#include "util/banned.h" /* last: after every declaration */

const char *
zl_config_dir(void)
{
  const char *e = getenv("ZFS_LIVE_CONF_DIR");
  return e && *e ? e : "/etc/zfs-live";
}

static int
level_of(const char *v)
{
  static const struct {
    const char *name;
    int level;
  } levels[] = {{"debug", LOG_DEBUG},
                {"info", LOG_INFO},
                {"notice", LOG_NOTICE},
                {"warning", LOG_WARNING},
                {"error", LOG_ERR}};
  for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
    if (strcmp(v, levels[i].name) == 0)
      return levels[i].level;
  }
  return -1;
}

/* One "key = value": 0, or -1 with the message (no location). */
static int
set(struct zl_config *c, const char *key, const char *v, unsigned *seen)
{
  static const char *const keys[] = {"log_level", "nbd_socket", "nbd_tcp",
                                     "nbd_tls",   "tls_psk",    "tls_certificates",
                                     NULL};
  size_t i = 0;
  char *dst = NULL;
  size_t len = 0;

  while (keys[i] && strcmp(keys[i], key) != 0)
    i++;
  if (!keys[i]) {
    zl_error(EINVAL,
             "unknown key '%s' (known: log_level, nbd_socket, nbd_tcp, nbd_tls, "
             "tls_psk, tls_certificates)",
             key);
    return -1;
  }
  if (*seen & (1u << i)) {
    zl_error(EINVAL, "key '%s' given twice", key);
    return -1;
  }
  *seen |= 1u << i;
  switch (i) {
  case 0:
    if ((c->log_level = level_of(v)) == -1) {
      zl_error(EINVAL,
               "log_level must be debug, info, notice, warning or error, not '%s'", v);
      return -1;
    }
    return 0;
  case 1:
    dst = c->nbd_socket, len = sizeof c->nbd_socket;
    break;
  case 2:
    dst = c->nbd_tcp, len = sizeof c->nbd_tcp;
    break;
  case 3:
    if (strcmp(v, "off") && strcmp(v, "on") && strcmp(v, "require")) {
      zl_error(EINVAL, "nbd_tls must be off, on or require, not '%s'", v);
      return -1;
    }
    dst = c->nbd_tls, len = sizeof c->nbd_tls;
    break;
  case 4:
    dst = c->tls_psk, len = sizeof c->tls_psk;
    break;
  default:
    dst = c->tls_certificates, len = sizeof c->tls_certificates;
    break;
  }
  if (i != 2 && i != 3 && v[0] != '/') {
    zl_error(EINVAL, "%s must be an absolute path, not '%s'", key, v);
    return -1;
  }
  if (strlen(v) >= len) {
    zl_error(EINVAL, "%s is too long", key);
    return -1;
  }
  memcpy(dst, v, strlen(v) + 1);
  return 0;
}

static char *
trim(char *s)
{
  while (isspace((unsigned char)*s))
    s++;
  char *e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1]))
    *--e = '\0';
  return s;
}

int
zl_config_load(struct zl_config *c)
{
  char line[4096];
  unsigned seen = 0;
  int n = 0;

  memset(c, 0, sizeof *c);
  c->log_level = -1;
  snprintf(c->path, sizeof c->path, "%s/zfs-live.conf", zl_config_dir());
  FILE *f = fopen(c->path, "re");
  if (!f) {
    if (errno == ENOENT)
      return 0;
    zl_error_sys(errno, "%s", c->path);
    return -1;
  }
  c->found = true;
  while (fgets(line, sizeof line, f)) {
    n++;
    char *s = trim(line), *eq = strchr(s, '=');
    if (!*s || *s == '#')
      continue;
    if (!eq) {
      zl_error(EINVAL, "%s:%d: not 'key = value': '%s'", c->path, n, s);
      fclose(f);
      return -1;
    }
    *eq = '\0';
    if (set(c, trim(s), trim(eq + 1), &seen) == -1) {
      zl_error_prefix("%s:%d: ", c->path, n);
      fclose(f);
      return -1;
    }
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    zl_error(EIO, "%s: read error", c->path);
    return -1;
  }
  return 0;
}
