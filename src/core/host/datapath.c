/* datapath.c: a volume's life on a host: attached (reachable as an NBD
 * export and, where the host can, as a block device), activated (by at most
 * one host at a time for writing), opened non-persistent (reset at close).
 *
 *   attach     registers the NBD export; for a file-backed volume sets up a
 *              loop device with direct I/O (a zvol is its own device);
 *              records the domain in <run>/attach/<export>.json.  Idempotent.
 *   detach     forgets the domain; with the last one, releases the loop
 *              device and the export.  Never fails.
 *   activate   exclusive per host: the volume's metadata records the active
 *              host, so another host (shared storage) sees it and is told
 *              Activated_on_another_host.  Again from the same host: fine.
 *              This host's writers are fenced accordingly (see "activation"
 *              below).
 *   deactivate hands it back; from then on this host's writes are refused.
 *   open/close persistent=false takes a hidden snapshot (the reset point);
 *              close reverts to it and removes it.
 * The host is INSTALLATION_UUID from /etc/xensource-inventory
 * ($ZFS_LIVE_INVENTORY: another file), else /etc/machine-id
 * ($ZFS_LIVE_HOST_UUID overrides both, for tests).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/io/fence.h"
#include "core/model/model.h"
#include "util/beneath.h"
#include "util/cleanup.h"
#include "util/escape.h"
#include "util/rundir.h"
#include "util/error.h"
#include "util/exec.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"
#include "util/loop.h"

#include "util/banned.h" /* last: after every declaration */

const char *
zl_host_uuid(void)
{
  static char id[128];
  CLEANUP_FREE char *buf = NULL;
  const char *env = getenv("ZFS_LIVE_HOST_UUID");

  if (env && *env)
    return env;
  if (id[0])
    return id;
  if (zl_read_file_at(AT_FDCWD, zl_platform_inventory_path(), 1 << 16, &buf, NULL) == 0) {
    const char *p = strstr(buf, "INSTALLATION_UUID=");
    if (p) {
      p += strlen("INSTALLATION_UUID=");
      p += *p == '\'' || *p == '"';
      snprintf(id, sizeof id, "%.*s", (int)strcspn(p, "'\"\n"), p);
      return id;
    }
  }
  free(buf);
  buf = NULL;
  if (zl_read_file_at(AT_FDCWD, "/etc/machine-id", 128, &buf, NULL) == 0)
    snprintf(id, sizeof id, "%.*s", (int)strcspn(buf, "\n"), buf);
  zl_error_clear();
  return id[0] ? id : "unknown-host";
}

static const char *acting; /* the peer a storage host runs a call for */

void
zl_dp_set_peer(const char *host)
{
  acting = host && *host ? host : NULL;
}

/* The host a datapath call acts for: the peer that forwarded it to this
 * storage host (smapi/remote.c), else this host. */
static const char *
acting_host(void)
{
  return acting ? acting : zl_host_uuid();
}

const char *
zl_nbd_socket(void)
{
  static _Thread_local char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/nbd.sock", zl_run_dir());
  return path;
}

/* Does an NBD server answer on the host's socket? */
static bool
server_answers(void)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool up = false;

  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", zl_nbd_socket());
  if (fd >= 0) {
    up = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
  }
  return up;
}

/* Make sure the host's NBD server runs; if not, start it, detached from our
 * stdio.  Concurrent callers (attaches of many volumes at once) are
 * serialised by <run>/locks/nbd-start, so one starts it and the others find
 * it answering; a start that fails because another server (systemd's, an
 * operator's) got the socket first is a success as long as that one
 * answers. */
static int
ensure_server(void)
{
  char self[PATH_MAX];
  struct zl_exec_result r;

  if (server_answers())
    return 0;
  CLEANUP_CLOSE int lock = zl_run_lock("nbd-start");
  if (lock == -1)
    return -1;
  if (server_answers())
    return 0; /* started while we waited */
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) {
    zl_error(errno, "cannot find this program to start the NBD server");
    return -1;
  }
  self[n] = '\0';
  /* --daemon returns once the server listens; its stdio is /dev/null */
  const char *argv[] = {self, "serve", "--daemon", NULL};
  if (zl_exec(argv, NULL, &r) == -1)
    return -1;
  int st = r.status;
  if (st == 0) {
    zl_info("started the NBD server on %s", zl_nbd_socket());
  } else if (server_answers()) {
    zl_info("another NBD server took %s first: using it", zl_nbd_socket());
    st = 0;
  } else {
    zl_error(EIO, "starting the NBD server failed: %s", zl_exec_reason(&r));
  }
  zl_exec_result_free(&r);
  return st == 0 ? 0 : -1;
}

/* --- activation: who may write, and the handoff between hosts ------------
 *
 * The volume's metadata (on the SR: every host of a shared SR sees it)
 * holds the activation, active_on = {host, domain, gen}, with host "" once
 * deactivated (nobody may write until a host activates it), and
 * activation_gen, the last generation handed out (never goes back).  This
 * host's fence page (core/io/fence.h) enforces it on this host's writers:
 * the metadata says who may write, the page makes it so here.
 *
 *   activate     metadata first (refused while another host holds it), then
 *                the page: held by this host, generation + 1;
 *   deactivate   the page first (nobody; waits for writes in flight; makes
 *                the data durable and drops this host's cached pages), then
 *                the metadata: held by "" (so nobody writes between the old
 *                host's deactivate and the new host's activate);
 *   takeover     activate over another host's claim (a host that died while
 *                active): a new generation; waits ZL_LEASE_MS, the time a
 *                live but cut-off NBD server of the old host takes to see
 *                the new generation and fence itself (nbd/server.c);
 *   attach       makes the page from the metadata (a host attaching for an
 *                incoming migration can read, not write);
 *   detach       the last one on this host removes the page, and the
 *                activation if nobody holds it: the volume is idle, open to
 *                writers that never activate (Ganeti, the CLI).
 */

#define FENCE_DRAIN_MS 30000

struct activation {
  const char *host, *domain;
  bool readonly, on, force;
  uint64_t gen;  /* out: the generation now */
  char was[128]; /* out: the host that held it before (takeover) */
};

static uint64_t
meta_gen(const json_t *meta)
{
  json_int_t g = json_integer_value(json_object_get(meta, "activation_gen"));
  return g > 0 ? (uint64_t)g : 0;
}

static const char *
active_host(const json_t *meta)
{
  return json_string_value(json_object_get(json_object_get(meta, "active_on"), "host"));
}

static int
set_active(json_t *meta, void *arg)
{
  struct activation *a = arg;
  const char *host = active_host(meta);
  const char *dom =
      json_string_value(json_object_get(json_object_get(meta, "active_on"), "domain"));

  a->gen = meta_gen(meta);
  snprintf(a->was, sizeof a->was, "%s", host ? host : "");
  if (!a->on) { /* deactivate: only our own */
    if (!host || strcmp(host, a->host) != 0)
      return 0;
    json_object_set_new(meta, "active_on",
                        json_pack("{s:s, s:s, s:I}", "host", "", "domain", "", "gen",
                                  (json_int_t)a->gen));
    return 1;
  }
  if (host && *host && strcmp(host, a->host) != 0 && !a->force) {
    zl_error_kind(ZL_ERR_ACTIVE_ELSEWHERE, EBUSY, "volume is active on host %s", host);
    zl_error_subject(host);
    return -1;
  }
  if (a->readonly)
    return 0; /* readers share; they take nothing */
  if (host && strcmp(host, a->host) == 0 && dom && strcmp(dom, a->domain) == 0)
    return 0; /* again: idempotent, same generation */
  a->gen++;
  json_object_set_new(meta, "activation_gen", json_integer((json_int_t)a->gen));
  json_object_set_new(meta, "active_on",
                      json_pack("{s:s, s:s, s:I}", "host", a->host, "domain", a->domain,
                                "gen", (json_int_t)a->gen));
  return 1;
}

/* Make what this host wrote durable and forget what it cached of the data
 * (another host writes it next; this one may read it again later). */
static void
sync_and_forget(struct zl_sr *sr, const char *key)
{
  CLEANUP_CLOSE int fd = zl_vol_open(sr, key, O_RDONLY);
  if (fd == -1 || fsync(fd) == -1)
    zl_warn("volume %s: cannot make its data durable: %s", key,
            fd == -1 ? zl_error_msg() : strerror(errno));
  else
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  zl_error_clear();
}

static int
activate(struct zl_sr *sr, const char *key, const char *domain, bool readonly, bool force)
{
  struct activation a = {acting_host(), domain, readonly, true, force, 0, ""};

  if (zl_vol_update(sr, key, set_active, &a) == -1)
    return -1;
  if (readonly)
    return 0;
  if (force && a.was[0] && strcmp(a.was, a.host) != 0) {
    zl_warn("volume %s: taken over from host %s (generation %llu); waiting %d ms for "
            "that host's server to fence itself",
            key, a.was, (unsigned long long)a.gen, ZL_LEASE_MS);
    struct timespec ts = {ZL_LEASE_MS / 1000, (ZL_LEASE_MS % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
      ;
  }
  /* what this host cached while another host wrote is stale */
  sync_and_forget(sr, key);
  return zl_fence_set(sr, key, zl_host_uuid(), a.host, a.gen, FENCE_DRAIN_MS);
}

int
zl_dp_activate(struct zl_sr *sr, const char *key, const char *domain, bool readonly)
{
  return activate(sr, key, domain, readonly, false);
}

int
zl_dp_takeover(struct zl_sr *sr, const char *key, const char *domain, char *from,
               size_t len)
{
  CLEANUP_JSON json_t *meta = NULL;

  if (len)
    from[0] = '\0';
  if (zl_vol_lookup(sr, key, &meta, NULL) == -1)
    return -1;
  if (!json_object_get(meta, "active_on") && !meta_gen(meta))
    return 0; /* never activated through a toolstack: nothing of ours to take */
  const char *host = active_host(meta);
  if (!host || !*host || !strcmp(host, acting_host()))
    return 1; /* no other host's activation to take over */
  snprintf(from, len, "%s", host);
  return activate(sr, key, domain, false, true) == -1 ? -1 : 1;
}

int
zl_dp_deactivate(struct zl_sr *sr, const char *key, const char *domain)
{
  CLEANUP_JSON json_t *meta = NULL;
  struct activation a = {acting_host(), domain, false, false, false, 0, ""};

  if (zl_vol_lookup(sr, key, &meta, NULL) == -1)
    return zl_error_get_kind() == ZL_ERR_NO_VOLUME ? 0 : -1;
  const char *host = active_host(meta);
  /* fence this host first: when the metadata lets another host activate,
   * no write of ours runs or will start */
  if (zl_fence_set(sr, key, zl_host_uuid(), host && strcmp(host, a.host) != 0 ? host : "",
                   meta_gen(meta), FENCE_DRAIN_MS) == -1)
    return -1;
  sync_and_forget(sr, key);
  int r = zl_vol_update(sr, key, set_active, &a);
  return r == -1 && zl_error_get_kind() == ZL_ERR_NO_VOLUME ? 0 : r;
}

int
zl_dp_recheck(struct zl_sr *sr, const char *key)
{
  CLEANUP_JSON json_t *meta = NULL;
  const char *me = zl_host_uuid();
  char holder[128];
  uint64_t gen;
  bool open;

  if (zl_fence_get(sr, key, &open, holder, sizeof holder, &gen) == -1)
    return errno == ENOENT ? 0 : -1;
  if (open || strcmp(holder, me) != 0)
    return 0; /* only this host's own hold can go stale */
  if (zl_vol_lookup(sr, key, &meta, NULL) == -1)
    return -1; /* cannot tell (nor write there, most likely): as it is */
  json_t *on = json_object_get(meta, "active_on");
  const char *host = json_string_value(json_object_get(on, "host"));
  json_int_t g = json_integer_value(json_object_get(on, "gen"));
  if (host && !strcmp(host, me) && (uint64_t)g >= gen)
    return 0;
  zl_warn("volume %s: %s (generation %lld): this host's writes are fenced", key,
          host && *host ? "another host took it over" : "it was deactivated",
          (long long)g);
  return zl_fence_set(sr, key, me, host ? host : "", (uint64_t)g, FENCE_DRAIN_MS);
}

/* The last detach on this host: nobody holds the activation any more
 * (deactivated, no host activated since): forget it. */
static int
clear_idle(json_t *meta, void *arg)
{
  (void)arg;
  const char *host = active_host(meta);
  if (!host || *host)
    return 0;
  json_object_del(meta, "active_on");
  return 1;
}

/* attach: this host's page from the activation record */
static int
init_fence(struct zl_sr *sr, const char *key, const json_t *meta)
{
  json_t *on = json_object_get(meta, "active_on");
  const char *host = json_string_value(json_object_get(on, "host"));
  return zl_fence_init(sr, key, zl_host_uuid(), host, meta_gen(meta));
}

/* <run>/attach/<export name escaped>.json */
static int
attach_file(const char *export, char *out, size_t len)
{
  return zl_escape_name(export, ".json", out, len);
}

/* Changes to one export's attach record (and the registration and block
 * device that go with it) are serialised by <run>/attach/<export>.lock:
 * domains attaching and detaching one volume at once would otherwise each
 * rewrite the record from what they read, losing the others' domains (and
 * a detach would then drop the export under a domain still attached).
 * Returns the fd holding the lock, or -1. */
static int
lock_record(int dfd, const char *file)
{
  char name[NAME_MAX + 1];
  size_t n = strlen(file) - strlen(".json");

  snprintf(name, sizeof name, "%.*s.lock", (int)n, file);
  int fd = zl_file_beneath(dfd, name, O_RDWR | O_CREAT, 0600);
  if (fd == -1 || flock(fd, LOCK_EX) == -1) {
    zl_error_sys(errno, "lock %s/attach/%s", zl_run_dir(), name);
    if (fd >= 0)
      close(fd);
    return -1;
  }
  return fd;
}

static json_t *
attach_record(int dfd, const char *file)
{
  json_t *j = zl_json_load_at(dfd, file, 1 << 16);
  zl_error_clear();
  if (!json_is_object(j)) {
    json_decref(j);
    j = json_pack("{s:[]}", "domains");
  }
  return j;
}

int
zl_dp_attach(struct zl_sr *sr, const char *key, const char *domain,
             struct zl_attach_result *out)
{
  CLEANUP_JSON json_t *meta = NULL;
  CLEANUP_JSON json_t *rec = NULL;
  CLEANUP_FREE char *name = NULL;
  CLEANUP_CLOSE int dfd = -1;
  CLEANUP_CLOSE int lock = -1;
  char file[NAME_MAX + 1];

  memset(out, 0, sizeof *out);
  if (zl_vol_lookup(sr, key, &meta, NULL) == -1 || !(name = zl_export_name(sr, key)))
    return -1;
  out->readonly = zl_meta_read_only(meta);
  if ((dfd = zl_run_subdir("attach", true)) == -1)
    return -1;
  if (attach_file(name, file, sizeof file) == -1 || (lock = lock_record(dfd, file)) == -1)
    return -1;
  if (!out->readonly && init_fence(sr, key, meta) == -1)
    return -1;
  if (!(out->export_name = zl_vol_export(sr, key, out->readonly)))
    return -1;
  if (ensure_server() == -1)
    return -1;
  snprintf(out->nbd_socket, sizeof out->nbd_socket, "%s", zl_nbd_socket());
  rec = attach_record(dfd, file);

  /* a block device: the zvol itself, or a loop device over the file; NBD
   * only where the server must see every write: a volume whose changes are
   * tracked (the tracking layer), an SR made with datapath=nbd (so that
   * storage migration can mirror every guest's writes), a shared SR's
   * volume (the fence layer:
   * no other host's activation may overlap, and writes through a local
   * device would pass it by), a peer's attach on a storage host (it reads
   * over TLS, never a device here) */
  const char *why = NULL;
  if (zl_meta_cbt(meta) && !out->readonly &&
      !(sr->st.be->caps(&sr->st) & ZL_CAP_CHANGES_ALWAYS))
    why = "changed block tracking is on";
  else if (acting)
    why = "attached for another host";
  else if (zl_sr_clustered(sr))
    why = "the SR is shared";
  else if (zl_meta_str(sr->info, "datapath") &&
           !strcmp(zl_meta_str(sr->info, "datapath"), "nbd"))
    why = "the SR's datapath is nbd";
  bool tracked = why != NULL;
  CLEANUP_CLOSE int fd =
      tracked ? -1 : zl_vol_open(sr, key, out->readonly ? O_RDONLY : O_RDWR);
  struct stat st;
  if (tracked) {
    zl_info("volume %s: %s; NBD only", key, why);
  } else if (fd >= 0 && fstat(fd, &st) == 0) {
    if (S_ISBLK(st.st_mode)) {
      char link[64];
      snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
      ssize_t n = readlink(link, out->blockdev, sizeof out->blockdev - 1);
      out->blockdev[n > 0 ? n : 0] = '\0';
    } else if (zl_loop_attach(fd, out->readonly, out->blockdev, sizeof out->blockdev,
                              &out->direct_io) == -1) {
      zl_warn("volume %s: no block device (%s); NBD only", key, zl_error_msg());
      out->blockdev[0] = '\0';
    }
  } else {
    zl_warn("volume %s: cannot open its data: %s; NBD only", key, zl_error_msg());
  }
  zl_error_clear();

  json_t *doms = json_object_get(rec, "domains");
  bool known = false;
  size_t i;
  json_t *d;
  json_array_foreach(doms, i, d) known |= strcmp(json_string_value(d), domain) == 0;
  if (!known)
    json_array_append_new(doms, json_string(domain));
  json_object_set_new(rec, "export", json_string(out->export_name));
  json_object_set_new(rec, "blockdev", json_string(out->blockdev));
  json_object_set_new(rec, "sr", json_string(sr->st.key));
  json_object_set_new(rec, "key", json_string(key));
  return zl_json_save_at(dfd, file, rec, false);
}

/* This host's attach record of key, or NULL. */
static json_t *
find_attach(struct zl_sr *sr, const char *key)
{
  CLEANUP_FREE char *export = zl_export_name(sr, key);
  CLEANUP_CLOSE int dfd = zl_run_subdir("attach", false);
  char file[NAME_MAX + 1];

  if (!export || dfd == -1) {
    zl_error_clear();
    return NULL;
  }
  if (attach_file(export, file, sizeof file) == -1) {
    zl_error_clear();
    return NULL;
  }
  json_t *j = zl_json_load_at(dfd, file, 1 << 16);
  zl_error_clear();
  if (!json_is_object(j)) {
    json_decref(j);
    return NULL;
  }
  return j;
}

bool
zl_dp_in_use(struct zl_sr *sr, const char *key)
{
  json_t *j = find_attach(sr, key);
  json_decref(j);
  return j != NULL;
}

bool
zl_dp_blockdev_attached(struct zl_sr *sr, const char *key)
{
  CLEANUP_JSON json_t *j = find_attach(sr, key);
  const char *dev = json_string_value(json_object_get(j, "blockdev"));
  /* XAPI's attach, or Ganeti's (core/blockdev.c) */
  return (dev && !strncmp(dev, "/dev/loop", 9)) || zl_vol_blockdev_active(sr, key);
}

void
zl_attach_result_free(struct zl_attach_result *r)
{
  free(r->export_name);
  r->export_name = NULL;
}

int
zl_dp_detach(struct zl_sr *sr, const char *key, const char *domain)
{
  CLEANUP_FREE char *export = zl_export_name(sr, key);
  CLEANUP_JSON json_t *rec = NULL;
  CLEANUP_CLOSE int dfd = zl_run_subdir("attach", false);
  CLEANUP_CLOSE int lock = -1;
  char file[NAME_MAX + 1];

  if (!export || zl_check_key(key) == -1)
    return -1;
  if (dfd == -1)
    return errno == ENOENT ? zl_export_unregister(export) : -1;
  if (attach_file(export, file, sizeof file) == -1 ||
      (lock = lock_record(dfd, file)) == -1)
    return -1;
  rec = attach_record(dfd, file);
  json_t *doms = json_object_get(rec, "domains");
  for (size_t i = json_array_size(doms); i-- > 0;) {
    if (strcmp(json_string_value(json_array_get(doms, i)), domain) == 0)
      json_array_remove(doms, i);
  }
  if (json_array_size(doms) > 0) /* still attached for another domain */
    return zl_json_save_at(dfd, file, rec, false);
  const char *dev = json_string_value(json_object_get(rec, "blockdev"));
  if (dev && !strncmp(dev, "/dev/loop", 9) && zl_loop_detach(dev) == -1)
    zl_warn("volume %s: %s", key, zl_error_msg());
  unlinkat(dfd, file, 0);
  if (zl_fence_remove(sr, key) == -1 || zl_vol_update(sr, key, clear_idle, NULL) == -1)
    zl_warn("volume %s: %s", key, zl_error_msg());
  zl_error_clear();
  return zl_export_unregister(export);
}

static int
set_reset_point(json_t *meta, void *arg)
{
  const char *snap = arg;
  if (snap)
    json_object_set_new(meta, "nonpersistent", json_string(snap));
  else if (json_object_get(meta, "nonpersistent"))
    json_object_del(meta, "nonpersistent");
  else
    return 0;
  return 1;
}

int
zl_dp_open(struct zl_sr *sr, const char *key, bool persistent)
{
  CLEANUP_JSON json_t *meta = NULL;
  CLEANUP_FREE char *snap = NULL;

  if (zl_vol_lookup(sr, key, &meta, NULL) == -1)
    return -1;
  if (persistent || zl_meta_str(meta, "nonpersistent"))
    return 0; /* nothing to do, or already open non-persistent */
  if (zl_meta_read_only(meta))
    return 0; /* a snapshot cannot change: nothing to reset */
  if (zl_vol_snapshot_hidden(sr, key, &snap) == -1)
    return -1;
  if (zl_vol_update(sr, key, set_reset_point, snap) == -1) {
    zl_vol_remove(sr, snap);
    return -1;
  }
  zl_info("volume %s opened non-persistent: reset point %s", key, snap);
  return 0;
}

int
zl_dp_close(struct zl_sr *sr, const char *key)
{
  CLEANUP_JSON json_t *meta = NULL;

  if (zl_vol_lookup(sr, key, &meta, NULL) == -1)
    return zl_error_get_kind() == ZL_ERR_NO_VOLUME ? 0 : -1;
  const char *snap = zl_meta_str(meta, "nonpersistent");
  if (!snap)
    return 0;
  char s[256];
  snprintf(s, sizeof s, "%s", snap);
  /* revert, then forget the reset point: a crash in between reverts again */
  if (zl_vol_revert_any(sr, s, key) == -1 && zl_error_get_kind() != ZL_ERR_NO_VOLUME)
    return -1;
  if (zl_vol_update(sr, key, set_reset_point, NULL) == -1 || zl_vol_remove(sr, s) == -1)
    return -1;
  zl_info("volume %s closed: reset to its state at open", key);
  return 0;
}

/* --- what the model asks about this host's users (model/users.c) -------- */

/* Published by vol share (its export name is the SR's and the key's). */
static bool
shared(struct zl_sr *sr, const char *key)
{
  CLEANUP_FREE char *name = zl_export_name(sr, key);
  struct zl_export_info e;

  if (!name || zl_export_lookup(name, &e) == -1) {
    zl_error_clear();
    return false;
  }
  zl_export_info_free(&e);
  return true;
}

static const struct zl_users host_users = {
    .attached = zl_dp_in_use,
    .shared = shared,
    .blockdev = zl_dp_blockdev_attached,
    .writer_blockdev = zl_vol_blockdev_active,
};

__attribute__((constructor)) static void
register_users(void)
{
  zl_users_register(&host_users);
}
