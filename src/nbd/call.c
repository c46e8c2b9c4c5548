/* call.c: the server side of NBD_OPT_ZL_CALL (client.c): another host of
 * a shared zfs-live SR runs a plugin method here, on the storage host.
 *
 * Only over TLS, only for a peer with a PSK identity (its host UUID), only
 * installed plugin links of the zfs-live SR type and datapath: the path is
 * checked piece by piece, then run exactly as xapi-storage-script runs it
 * (argv, "--json", the arguments on stdin), with the peer's identity put
 * into the arguments as "zfs-live-peer" (replacing whatever the peer sent
 * there), so activation and fencing name the peer's host, not this one.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nbd/nbd.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/exec.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

static bool
method_ok(const char *m)
{
  size_t n = strlen(m);
  if (n == 0 || n > 64)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = m[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '_'))
      return false;
  }
  return strchr(m, '.') && !strstr(m, "..");
}

/* <libexec>/xapi-storage-script/<kind>/<dir>/<Method> for an allowed path. */
static int
link_of(const char *path, char *out, size_t len)
{
  char self[PATH_MAX], kind[16], plugdir[64], method[80];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);

  if (n <= 0 || sscanf(path, "%15[a-z]/%63[a-z.-]/%79s", kind, plugdir, method) != 3) {
    zl_error(EINVAL, "call path '%s' is not <kind>/<plugin>/<Method>", path);
    return -1;
  }
  self[n] = '\0';
  bool allowed =
      (!strcmp(kind, "volume") && !strcmp(plugdir, "org.xen.xapi.storage.zfs-live")) ||
      (!strcmp(kind, "datapath") && !strcmp(plugdir, "zfs-live"));
  if (!allowed || !method_ok(method) || strchr(method, '/')) {
    zl_error(EACCES, "call path '%s' is not a zfs-live plugin method", path);
    return -1;
  }
  /* self is <libexec>/zfs-live/zfs-live (or a launcher's real binary one
   * level further down): the plugin links are in <libexec>/xapi-storage-script */
  char *dir = dirname(self);
  struct stat st;
  for (int up = 0; up < 3; up++) {
    dir = dirname(dir);
    snprintf(out, len, "%s/xapi-storage-script/%s/%s/%s", dir, kind, plugdir, method);
    if (stat(out, &st) == 0)
      return 0;
  }
  zl_error(ENOENT, "no plugin method %s here", path);
  return -1;
}

/* "cli/vol-takeover" {sr, key, domain}: the operator's takeover on a host
 * of a shared SR, run here for that host (zfs-live vol takeover --as-host). */
static int
takeover_argv(const char *peer, const json_t *args, char *self, size_t len,
              const char **argv)
{
  const char *sr = json_string_value(json_object_get(args, "sr"));
  const char *key = json_string_value(json_object_get(args, "key"));
  const char *dom = json_string_value(json_object_get(args, "domain"));
  ssize_t n = readlink("/proc/self/exe", self, len - 1);

  if (!sr || !*sr || !key || !*key || !dom || !*dom || *sr == '-' || *key == '-' ||
      n <= 0) {
    zl_error(EINVAL, "a takeover call is {sr, key, domain}");
    return -1;
  }
  self[n] = '\0';
  const char *v[] = {self, "vol",      "takeover", "--type", "zfs-live", "--as-host",
                     peer, "--domain", dom,        sr,       key,        NULL};
  memcpy(argv, v, sizeof v);
  return 0;
}

char *
nbd_call_run(const char *peer, const char *body, size_t len)
{
  json_error_t je;
  CLEANUP_JSON json_t *req = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
  json_t *args = json_object_get(req, "args");
  const char *path = json_string_value(json_object_get(req, "path"));
  char link[PATH_MAX];
  struct zl_exec_result r;

  if (!json_is_object(args) || !path) {
    zl_error(EINVAL, "a call is {\"path\": ..., \"args\": {...}}");
    return NULL;
  }
  const char *argv[12] = {link, "--json", NULL};
  bool cli = !strcmp(path, "cli/vol-takeover");
  if (cli) {
    if (takeover_argv(peer, args, link, sizeof link, argv) == -1)
      return NULL;
  } else if (link_of(path, link, sizeof link) == -1) {
    return NULL;
  }
  json_object_set_new(args, "zfs-live-peer", json_string(peer));
  CLEANUP_FREE char *in = json_dumps(args, JSON_COMPACT);
  if (!in || zl_exec(argv, cli ? NULL : in, &r) == -1)
    return NULL;
  zl_info("call from host %s: %s: exit %d", peer, path, r.status);
  json_t *out = json_pack("{s:i, s:s, s:s}", "status", r.status, "stdout",
                          r.out ? r.out : "", "stderr", r.err ? r.err : "");
  zl_exec_result_free(&r);
  char *s = out ? json_dumps(out, JSON_COMPACT) : NULL;
  json_decref(out);
  if (!s)
    zl_error(ENOMEM, "out of memory");
  return s;
}
