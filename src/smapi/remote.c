/* remote.c: a shared zfs-live SR seen from a host that is not its storage
 * host.  The pool is on one host; the SR's configuration names it
 * ("storage-host" HOST:PORT of its NBD/TLS server, "storage-host-uuid")
 * and each host's own PSK ("tls-psk", first line "<host uuid>:<hex>").
 *
 * On any other host, every call about that SR is run on the storage host
 * (nbd/client.c: the NBD handshake over TLS carries it), as the calling
 * host: the storage host's server puts the authenticated identity in the
 * call, so an activation names the host that asked (rpc.c).  Here:
 *
 *   SR.create/probe/attach  forwarded when the configuration names another
 *                host; a successful attach records the SR as remote in
 *                <run>/remote/<SR key>.json (the run directory: xapi plugs
 *                every PBD again at boot);
 *   SR.detach    forgets that record (the SR stays attached on its storage
 *                host and the others);
 *   Datapath.*   forwarded, with the domain qualified by this host's UUID
 *                (domains of two hosts must not meet in one attach record);
 *                attach then starts this host's relay (nbd/relay.c) and
 *                answers with its local socket, qdisk over NBD; the last
 *                detach here stops it;
 *   the rest     forwarded (the SR's key names a remote SR here).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "nbd/nbd.h"
#include "smapi/smapi.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/escape.h"
#include "util/exec.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

#define REMOTE_TYPE    "zfs-live"
#define CALL_TIMEOUT_S 300

struct remote {
  char host[256]; /* HOST:PORT */
  char psk[PATH_MAX];
};

static void
default_psk(char *out, size_t len)
{
  const char *etc = getenv("ZFS_LIVE_CONF_DIR");
  snprintf(out, len, "%s/tls/host.psk", etc && *etc ? etc : "/etc/zfs-live");
}

/* <run>/remote/<escaped name><suffix> */
static int
remote_file(const char *name, const char *suffix, char *out, size_t len)
{
  return zl_escape_name(name, suffix, out, len);
}

/* Is SR key remote here?  1 (r filled), 0, -1. */
static int
remote_find(const char *sr, struct remote *r)
{
  char file[NAME_MAX + 1];
  CLEANUP_CLOSE int dfd = zl_run_subdir("remote", false);

  if (dfd == -1 || !sr || remote_file(sr, ".json", file, sizeof file) == -1) {
    zl_error_clear();
    return 0;
  }
  CLEANUP_JSON json_t *j = zl_json_load_at(dfd, file, 1 << 16);
  zl_error_clear();
  const char *h = json_string_value(json_object_get(j, "storage-host"));
  const char *p = json_string_value(json_object_get(j, "tls-psk"));
  if (!h || !p)
    return 0;
  snprintf(r->host, sizeof r->host, "%s", h);
  snprintf(r->psk, sizeof r->psk, "%s", p);
  return 1;
}

static int
remote_save(const char *sr, const struct remote *r)
{
  char file[NAME_MAX + 1];
  CLEANUP_CLOSE int dfd = zl_run_subdir("remote", true);
  CLEANUP_JSON json_t *j =
      json_pack("{s:s, s:s, s:s}", "sr", sr, "storage-host", r->host, "tls-psk", r->psk);

  if (dfd == -1 || !j || remote_file(sr, ".json", file, sizeof file) == -1)
    return -1;
  return zl_json_save_at(dfd, file, j, false);
}

/* The configuration names a storage host that is not this one. */
static int
remote_of_config(const json_t *params, struct remote *r)
{
  json_t *cfg = json_object_get(params, "configuration");
  const char *h = json_string_value(json_object_get(cfg, "storage-host"));
  const char *u = json_string_value(json_object_get(cfg, "storage-host-uuid"));
  const char *p = json_string_value(json_object_get(cfg, "tls-psk"));

  if (!h)
    return 0;
  if (!u || !*u) {
    zl_error(EINVAL, "storage-host needs storage-host-uuid (that host's UUID)");
    return -1;
  }
  if (!strcmp(u, zl_host_uuid()))
    return 0; /* this is the storage host */
  snprintf(r->host, sizeof r->host, "%s", h);
  if (p && *p)
    snprintf(r->psk, sizeof r->psk, "%s", p);
  else
    default_psk(r->psk, sizeof r->psk);
  return 1;
}

/* The SR key in a volume URI zfs-live://<type>/<sr>|<key>, into out. */
static bool
sr_of_uri(const char *uri, char *out, size_t len)
{
  const char *p = uri && !strncmp(uri, "zfs-live://", 11) ? uri + 11 : NULL;
  const char *slash = p ? strchr(p, '/') : NULL, *bar = uri ? strrchr(uri, '|') : NULL;
  if (!slash || !bar || bar < slash || (size_t)(bar - slash - 1) >= len)
    return false;
  snprintf(out, len, "%.*s", (int)(bar - slash - 1), slash + 1);
  return true;
}

/* Run the call on the storage host; its reply (result or error object) is
 * ours.  The reply's stdout in *stdout_out (owned), the status returned,
 * -1 if the call could not be made. */
static int
forward(const struct smapi_target *t, const struct remote *r, json_t *params,
        char **stdout_out)
{
  char path[256];
  snprintf(path, sizeof path, "%s/%s/%s",
           t->kind == PLUGIN_DATAPATH ? "datapath" : "volume",
           t->kind == PLUGIN_DATAPATH ? "zfs-live" : "org.xen.xapi.storage." REMOTE_TYPE,
           t->method);
  CLEANUP_JSON json_t *req = json_pack("{s:s, s:O}", "path", path, "args", params);
  CLEANUP_JSON json_t *rep =
      req ? nbd_remote_call(r->host, r->psk, req, CALL_TIMEOUT_S) : NULL;
  if (!rep) {
    zl_error_prefix("storage host %s: ", r->host);
    return -1;
  }
  const char *out = json_string_value(json_object_get(rep, "stdout"));
  const char *err = json_string_value(json_object_get(rep, "stderr"));
  if (err && *err) /* the storage host's log lines of the call, for SMlog here */
    zl_debug("on %s: %s", r->host, err);
  *stdout_out = strdup(out ? out : "");
  zl_debug("forwarded %s to %s: exit %lld", t->method, r->host,
           (long long)json_integer_value(json_object_get(rep, "status")));
  return (int)json_integer_value(json_object_get(rep, "status"));
}

/* --- the relay of a remote volume attached here ------------------------------- */

static bool
answers(const char *path)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool up = false;
  size_t n = strlen(path);
  if (n >= sizeof sa.sun_path) {
    if (fd >= 0)
      close(fd);
    return false;
  }
  memcpy(sa.sun_path, path, n + 1);
  if (fd >= 0) {
    up = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
  }
  return up;
}

/* The relay of export: <run>/remote/<hash>.sock and .pid.  A hash (FNV-1a,
 * 64 bits) of the name, not the name: a Unix socket's path has room for
 * 107 bytes, and the export name alone is 73. */
static void
relay_paths(const char *export, char *sock, char *pid, size_t len)
{
  uint64_t h = 0xcbf29ce484222325u;
  for (const unsigned char *p = (const unsigned char *)export; *p; p++)
    h = (h ^ *p) * 0x100000001b3u;
  snprintf(sock, len, "%s/remote/%016llx.sock", zl_run_dir(), (unsigned long long)h);
  snprintf(pid, len, "%s/remote/%016llx.pid", zl_run_dir(), (unsigned long long)h);
}

/* This host's record of a remote volume attached here, by its URI:
 * <run>/remote/<URI>.attach = {"export", "domains"}.  With domain added
 * (export given) or removed: the domains that remain (-1 on error); the
 * export's name in *export_out when removing. */
static int
local_domains(const char *uri, const char *export, const char *domain, bool add,
              char *export_out, size_t len)
{
  char file[NAME_MAX + 1];
  CLEANUP_CLOSE int dfd = zl_run_subdir("remote", true);
  if (dfd == -1 ||
      remote_file(uri + strlen("zfs-live://"), ".attach", file, sizeof file) == -1)
    return -1;
  CLEANUP_JSON json_t *j = zl_json_load_at(dfd, file, 1 << 16);
  zl_error_clear();
  if (!json_is_object(j)) {
    if (!add)
      return 0;
    json_decref(j);
    j = json_pack("{s:s, s:[]}", "export", export, "domains");
  }
  json_t *doms = json_object_get(j, "domains");
  size_t i;
  json_t *d;
  bool known = false;
  json_array_foreach(doms, i, d) known |= !strcmp(json_string_value(d) ?: "", domain);
  if (add && !known)
    json_array_append_new(doms, json_string(domain));
  for (i = json_array_size(doms); !add && i-- > 0;) {
    if (!strcmp(json_string_value(json_array_get(doms, i)) ?: "", domain))
      json_array_remove(doms, i);
  }
  if (export_out)
    snprintf(export_out, len, "%s",
             json_string_value(json_object_get(j, "export")) ?: "");
  if (json_array_size(doms) == 0) {
    unlinkat(dfd, file, 0);
    return 0;
  }
  return zl_json_save_at(dfd, file, j, false) == -1 ? -1 : (int)json_array_size(doms);
}

static int
start_relay(const struct remote *r, const char *sock, const char *pidfile)
{
  char self[PATH_MAX];
  struct zl_exec_result res;
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);

  if (answers(sock))
    return 0;
  if (n <= 0) {
    zl_error(errno, "cannot find this program to start the relay");
    return -1;
  }
  self[n] = '\0';
  const char *argv[] = {self,    "relay", "--listen",  sock,    "--to", r->host,
                        "--psk", r->psk,  "--pidfile", pidfile, NULL};
  if (zl_exec(argv, NULL, &res) == -1)
    return -1;
  int st = res.status;
  if (st != 0 && !answers(sock))
    zl_error(EIO, "starting the relay to %s failed: %s", r->host, zl_exec_reason(&res));
  zl_exec_result_free(&res);
  return st == 0 || answers(sock) ? 0 : -1;
}

static void
stop_relay(const char *pidfile)
{
  CLEANUP_FREE char *buf = NULL;
  if (zl_read_file_at(AT_FDCWD, pidfile, 64, &buf, NULL) == 0) {
    long pid = strtol(buf, NULL, 10);
    if (pid > 1)
      kill((pid_t)pid, SIGTERM);
  }
  zl_error_clear();
}

/* Datapath.attach's reply from the storage host, made local: the relay
 * started, its socket in the answer. */
static json_t *
attach_here(const struct remote *r, const char *reply, const char *uri,
            const char *domain)
{
  json_error_t je;
  CLEANUP_JSON json_t *j = json_loads(reply, 0, &je);
  const char *nbd = NULL;
  size_t i;
  json_t *impl;

  json_array_foreach(json_object_get(j, "implementations"), i, impl)
  {
    if (!strcmp(json_string_value(json_array_get(impl, 0)) ?: "", "Nbd"))
      nbd = json_string_value(json_object_get(json_array_get(impl, 1), "uri"));
  }
  const char *name = nbd ? strstr(nbd, ":exportname=") : NULL;
  if (!name) {
    zl_error(EPROTO, "the storage host's attach gave no NBD export");
    return NULL;
  }
  name += strlen(":exportname=");
  char sock[PATH_MAX], pid[PATH_MAX], local[PATH_MAX + 300];
  relay_paths(name, sock, pid, sizeof sock);
  if (local_domains(uri, name, domain, true, NULL, 0) == -1 ||
      start_relay(r, sock, pid) == -1)
    return NULL;
  snprintf(local, sizeof local, "nbd:unix:%s:exportname=%s", sock, name);
  return json_pack("{s:[[s, {s:s, s:s, s:{}}], [s, {s:s}]]}", "implementations",
                   "XenDisk", "backend_type", "qdisk", "params", local, "extra", "Nbd",
                   "uri", local);
}

/* --- the entry point ---------------------------------------------------------- */

int
smapi_remote(const struct smapi_target *t, const char *in, size_t len, FILE *out, int *rc)
{
  json_error_t je;
  CLEANUP_JSON json_t *params = NULL;
  struct remote r;
  char sr[4096];
  int remote = 0;

  if (!(t->kind == PLUGIN_DATAPATH || (t->sr_type && !strcmp(t->sr_type, REMOTE_TYPE))) ||
      !strncmp(t->method, "Plugin.", 7) || !strncmp(t->method, "Data.", 5) ||
      !strcmp(t->method, "Datapath.import_activate"))
    return 0; /* storage migration: this host's own (a socket here) */
  params = json_loadb(in, len, JSON_REJECT_DUPLICATES, &je);
  if (!json_is_object(params))
    return 0; /* the local call says what is wrong with it */
  const char *srkey = json_string_value(json_object_get(params, "sr"));
  const char *uri = json_string_value(json_object_get(params, "uri"));

  if (!strcmp(t->method, "SR.create") || !strcmp(t->method, "SR.probe") ||
      !strcmp(t->method, "SR.attach"))
    remote = remote_of_config(params, &r);
  else if (t->kind == PLUGIN_DATAPATH)
    remote = sr_of_uri(uri, sr, sizeof sr) ? remote_find(sr, &r) : 0;
  else
    remote = remote_find(srkey, &r);
  if (remote == 0)
    return 0;
  *rc = 1;
  if (remote == -1)
    return -1;
  if (!strcmp(t->method, "SR.detach")) { /* only this host lets go */
    char file[NAME_MAX + 1];
    CLEANUP_CLOSE int dfd = zl_run_subdir("remote", false);
    if (dfd >= 0 && remote_file(srkey, ".json", file, sizeof file) == 0)
      unlinkat(dfd, file, 0);
    zl_error_clear();
    fputs("null\n", out);
    *rc = 0;
    return 1;
  }

  char qualified[512], dom[256];
  const char *domain = json_string_value(json_object_get(params, "domain"));
  if (domain) { /* the storage host's records keep every host's domains apart */
    snprintf(dom, sizeof dom, "%s", domain);
    domain = dom; /* the parameter is replaced next */
    snprintf(qualified, sizeof qualified, "%s/%s", zl_host_uuid(), dom);
    json_object_set_new(params, "domain", json_string(qualified));
  }
  CLEANUP_FREE char *reply = NULL;
  int st = forward(t, &r, params, &reply);
  if (st == -1)
    return -1;
  CLEANUP_JSON json_t *local = NULL;
  if (st == 0 && !strcmp(t->method, "SR.attach")) {
    json_t *key = json_loads(reply, JSON_DECODE_ANY, &je);
    int saved = json_is_string(key) ? remote_save(json_string_value(key), &r) : -1;
    json_decref(key);
    if (saved == -1)
      return -1;
  } else if (st == 0 && !strcmp(t->method, "Datapath.attach")) {
    if (!(local = attach_here(&r, reply, uri, domain)))
      return -1;
  } else if (!strcmp(t->method, "Datapath.detach") && domain) {
    /* the last domain here: stop this host's relay */
    char export[512], sock[PATH_MAX], pid[PATH_MAX];
    if (local_domains(uri, NULL, domain, false, export, sizeof export) == 0 &&
        export[0]) {
      relay_paths(export, sock, pid, sizeof sock);
      stop_relay(pid);
    }
    zl_error_clear();
  }
  if (local) {
    CLEANUP_FREE char *s = json_dumps(local, JSON_COMPACT | JSON_ENCODE_ANY);
    fprintf(out, "%s\n", s ? s : "null");
  } else {
    fputs(reply, out);
  }
  *rc = st;
  return 1;
}

int
smapi_remote_takeover(const char *sr, const char *key, const char *domain)
{
  struct remote r;
  char qualified[512];

  if (remote_find(sr, &r) != 1)
    return 0;
  snprintf(qualified, sizeof qualified, "%s/%s", zl_host_uuid(), domain);
  CLEANUP_JSON json_t *req =
      json_pack("{s:s, s:{s:s, s:s, s:s}}", "path", "cli/vol-takeover", "args", "sr", sr,
                "key", key, "domain", qualified);
  CLEANUP_JSON json_t *rep =
      req ? nbd_remote_call(r.host, r.psk, req, CALL_TIMEOUT_S) : NULL;
  if (!rep) {
    zl_error_prefix("storage host %s: ", r.host);
    return -1;
  }
  const char *err = json_string_value(json_object_get(rep, "stderr"));
  if (json_integer_value(json_object_get(rep, "status")) != 0) {
    zl_error(EIO, "takeover on the storage host %s failed: %.*s", r.host,
             err ? (int)strcspn(err, "\n") : 0, err ? err : "");
    return -1;
  }
  if (err && *err) /* what the storage host said it did */
    fputs(err, stderr);
  return 1;
}
