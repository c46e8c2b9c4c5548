/* checks.c: doctor's checks of the whole host, each "ok", "warn" or
 * "problem" with a message (cli_doctor_checks).
 *
 * The install root is found from this binary: <root><prefix>/libexec/
 * zfs-live/zfs-live (or a launcher's real binary a level or two below
 * it), so a root made by scripts/install.sh DESTDIR is checked as such;
 * --root names it otherwise.  A side (XAPI or Ganeti) is checked when any
 * piece of it is there; a host with neither is a problem. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/host/control.h"
#include "core/io/io.h"
#include "util/cleanup.h"
#include "util/config.h"
#include "util/error.h"
#include "util/exec.h"
#include "util/loop.h"
#include "util/rundir.h"

#include "util/banned.h" /* last: after every declaration */

struct where {
  char libexec[PATH_MAX];     /* <root><prefix>/libexec */
  char root[PATH_MAX];        /* "" for / */
  char binary[PATH_MAX + 32]; /* <libexec>/zfs-live/zfs-live, what links point to */
  struct stat bin;
  bool have_bin;
};

static void add(json_t *checks, const char *check, const char *status, const char *fmt,
                ...) __attribute__((format(printf, 4, 5)));

static void
add(json_t *checks, const char *check, const char *status, const char *fmt, ...)
{
  char msg[1024];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  json_array_append_new(checks, json_pack("{s:s, s:s, s:s}", "check", check, "status",
                                          status, "message", msg));
}

static bool
is_dir(const char *p)
{
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool
ends_with(const char *s, const char *tail)
{
  size_t a = strlen(s), b = strlen(tail);
  return a >= b && strcmp(s + a - b, tail) == 0;
}

static void
locate(struct where *w, const char *root)
{
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);

  self[n > 0 ? n : 0] = '\0';
  char *dir = dirname(self); /* <libexec>/zfs-live[/...] */
  snprintf(w->libexec, sizeof w->libexec, "%s", dir);
  for (int up = 0; up < 3; up++) {
    dir = dirname(dir);
    char p[PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/xapi-storage-script", dir);
    if (up == 0 || is_dir(p))
      snprintf(w->libexec, sizeof w->libexec, "%s", dir);
    if (is_dir(p))
      break;
  }
  if (root) {
    snprintf(w->root, sizeof w->root, "%s", strcmp(root, "/") == 0 ? "" : root);
  } else {
    snprintf(w->root, sizeof w->root, "%s", w->libexec);
    const char *const tails[] = {"/usr/local/libexec", "/usr/libexec", "/libexec"};
    for (size_t i = 0; i < 3; i++) {
      if (ends_with(w->root, tails[i])) {
        w->root[strlen(w->root) - strlen(tails[i])] = '\0';
        break;
      }
    }
  }
  snprintf(w->binary, sizeof w->binary, "%s/zfs-live/zfs-live", w->libexec);
  w->have_bin = stat(w->binary, &w->bin) == 0;
}

/* The lines `<binary> install-layout [flag]` prints (malloc()ed), or NULL. */
static char *
layout(const struct where *w, const char *flag)
{
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  struct zl_exec_result res;

  if (n <= 0)
    return NULL;
  self[n] = '\0';
  (void)w;
  const char *argv[] = {self, "install-layout", flag, NULL};
  if (zl_exec(argv, NULL, &res) == -1)
    return NULL;
  char *out = res.status == 0 ? strdup(res.out) : NULL;
  zl_exec_result_free(&res);
  return out;
}

/* Check the links dir/<line> for each line of list; counts into
 * missing/wrong, the first bad one named in first. */
static void
check_links(const struct where *w, const char *dir, char *list, int *total, int *missing,
            int *wrong, char *first, size_t len)
{
  char *save = NULL;
  for (char *l = strtok_r(list, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
    char p[PATH_MAX * 2];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, l);
    (*total)++;
    if (stat(p, &st) == -1) {
      if (!(*missing)++ && !*wrong)
        snprintf(first, len, "%.1024s is missing or broken", p);
    } else if (!w->have_bin || st.st_dev != w->bin.st_dev || st.st_ino != w->bin.st_ino) {
      if (!(*wrong)++ && !*missing)
        snprintf(first, len, "%.1024s does not lead to %.1024s", p, w->binary);
    }
  }
}

static bool
process_running(const char *comm_prefix)
{
  CLEANUP_DIR DIR *d = opendir("/proc");
  struct dirent *e;

  while (d && (e = readdir(d))) {
    char p[300], comm[64] = "";
    if (e->d_name[0] < '0' || e->d_name[0] > '9')
      continue;
    snprintf(p, sizeof p, "/proc/%s/comm", e->d_name);
    FILE *f = fopen(p, "re");
    if (!f)
      continue;
    bool got = fgets(comm, sizeof comm, f) != NULL;
    fclose(f);
    if (got && strncmp(comm, comm_prefix, strlen(comm_prefix)) == 0)
      return true;
  }
  return false;
}

/* false: no XAPI side here */
static bool
check_xapi(json_t *c, const struct where *w)
{
  char root[PATH_MAX + 32], first[PATH_MAX * 2 + 64] = "";
  snprintf(root, sizeof root, "%s/xapi-storage-script", w->libexec);
  bool xss = process_running("xapi-storage-sc");

  if (!is_dir(root) && !xss) {
    add(c, "xapi-plugins", "ok", "not an XAPI host (no %s)", root);
    return false;
  }
  CLEANUP_FREE char *list = layout(w, NULL);
  int total = 0, missing = 0, wrong = 0;
  if (!list) {
    add(c, "xapi-plugins", "problem", "cannot list the plugin layout: %s",
        zl_error_msg());
  } else {
    check_links(w, root, list, &total, &missing, &wrong, first, sizeof first);
    if (missing || wrong)
      add(c, "xapi-plugins", "problem",
          "%d of %d plugin links missing, %d leading elsewhere: %s (reinstall zfs-live)",
          missing, total, wrong, first);
    else
      add(c, "xapi-plugins", "ok", "%d plugin links in %s lead to %s", total, root,
          w->binary);
  }
  /* the SR types xapi-storage-script registers: one volume plugin
   * directory each (xe sm-list shows what XAPI holds) */
  char types[512] = "";
  for (const char *const *t = zl_sr_types(); *t; t++) {
    char p[PATH_MAX + 128];
    snprintf(p, sizeof p, "%s/volume/org.xen.xapi.storage.%s", root, *t);
    if (is_dir(p))
      snprintf(types + strlen(types), sizeof types - strlen(types), "%s%s",
               types[0] ? ", " : "", *t);
  }
  add(c, "xapi-sr-types", types[0] ? "ok" : "problem", "%s%s (check with: xe sm-list)",
      types[0] ? "SR types offered: " : "no SR type offered", types);
  add(c, "xapi-storage-script", xss ? "ok" : "warn",
      xss ? "running"
          : "not running: XAPI cannot call the plugins "
            "(systemctl status xapi-storage-script)");
  return true;
}

/* false: no Ganeti side here */
static bool
check_ganeti(json_t *c, const struct where *w)
{
  static const char *const dirs[] = {"/usr/share/ganeti/extstorage/zfs-live",
                                     "/srv/ganeti/extstorage/zfs-live"};
  char p[PATH_MAX + 64], log[PATH_MAX + 64], etc[PATH_MAX + 64];
  int found = 0;

  snprintf(log, sizeof log, "%s/var/log/ganeti/extstorage", w->root);
  snprintf(etc, sizeof etc, "%s/etc/ganeti", w->root);
  for (size_t i = 0; i < 2; i++) {
    snprintf(p, sizeof p, "%s%s", w->root, dirs[i]);
    if (!is_dir(p))
      continue;
    found++;
    CLEANUP_FREE char *list = layout(w, "--ganeti");
    char first[PATH_MAX * 2 + 64] = "";
    int total = 0, missing = 0, wrong = 0;
    if (list)
      check_links(w, p, list, &total, &missing, &wrong, first, sizeof first);
    char params[PATH_MAX + 80];
    snprintf(params, sizeof params, "%s/parameters.list", p);
    if (!list)
      add(c, "ganeti-provider", "problem", "cannot list the provider's scripts: %s",
          zl_error_msg());
    else if (missing || wrong)
      add(c, "ganeti-provider", "problem",
          "%s: %d of %d scripts missing, %d elsewhere: %s", p, missing, total, wrong,
          first);
    else if (access(params, R_OK) == -1)
      add(c, "ganeti-provider", "problem", "%s: no readable parameters.list", p);
    else
      add(c, "ganeti-provider", "ok", "%s: %d scripts and parameters.list", p, total);
  }
  if (!found && !is_dir(log) && !is_dir(etc)) {
    add(c, "ganeti-provider", "ok", "not a Ganeti node (no provider, %s or %s)", log,
        etc);
    return false;
  }
  if (!found)
    add(c, "ganeti-provider", "problem",
        "Ganeti is here (%s) but the provider directory is missing: %s%s or %s%s",
        is_dir(log) ? log : etc, w->root, dirs[0], w->root, dirs[1]);
  add(c, "ganeti-log-dir", is_dir(log) ? "ok" : "problem",
      is_dir(log) ? "%s" : "%s is missing: Ganeti fails every action but attach", log);
  return true;
}

/* Does a server answer on the NBD socket (its greeting, "NBDMAGIC")? */
static int
nbd_answers(const char *path, char *why, size_t len)
{
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  char buf[8];
  CLEANUP_CLOSE int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  snprintf(a.sun_path, sizeof a.sun_path, "%.107s", path);
  if (fd == -1 || connect(fd, (struct sockaddr *)&a, sizeof a) == -1) {
    snprintf(why, len, "connect: %s", strerror(errno));
    return 0;
  }
  struct pollfd p = {.fd = fd, .events = POLLIN};
  if (poll(&p, 1, 3000) != 1 || recv(fd, buf, sizeof buf, MSG_WAITALL) != sizeof buf ||
      memcmp(buf, "NBDMAGIC", 8) != 0) {
    snprintf(why, len, "no NBD greeting within 3 s");
    return 0;
  }
  return 1;
}

static void
check_nbd(json_t *c, const struct zl_config *conf)
{
  char sock[PATH_MAX + 16], why[256];
  struct stat st;

  if (conf->nbd_socket[0])
    snprintf(sock, sizeof sock, "%s", conf->nbd_socket);
  else
    snprintf(sock, sizeof sock, "%s/nbd.sock", zl_run_dir());
  if (stat(sock, &st) == -1) {
    add(c, "nbd-server", "ok",
        "not running (no %s); Datapath.attach starts it, or zfs-live-nbd.socket", sock);
  } else if (!nbd_answers(sock, why, sizeof why)) {
    add(c, "nbd-server", "problem",
        "%s is there but no server answers (%s): stale; "
        "restart zfs-live-nbd",
        sock, why);
  } else {
    add(c, "nbd-server", "ok", "answering on %s", sock);
    CLEANUP_JSON json_t *req = json_pack("{s:s}", "op", "ping");
    CLEANUP_JSON json_t *ans = req ? zl_control_call(req) : NULL;
    const char *v = json_string_value(json_object_get(ans, "version"));
    json_int_t pid = json_integer_value(json_object_get(ans, "pid"));
    char exe[PATH_MAX + 1] = "", p[64];
    snprintf(p, sizeof p, "/proc/%lld/exe", (long long)pid);
    ssize_t n = pid > 0 ? readlink(p, exe, sizeof exe - 1) : -1;
    exe[n > 0 ? n : 0] = '\0';
    if (!ans)
      add(c, "nbd-version", "warn", "control channel: %s", zl_error_msg());
    else if (!v)
      add(c, "nbd-version", "warn",
          "the running server is older than %s (it does not "
          "tell its version): restart zfs-live-nbd",
          ZFS_LIVE_VERSION);
    else if (strcmp(v, ZFS_LIVE_VERSION) != 0)
      add(c, "nbd-version", "warn",
          "the running server is %s, the installed binary %s: "
          "restart zfs-live-nbd",
          v, ZFS_LIVE_VERSION);
    else if (ends_with(exe, " (deleted)"))
      add(c, "nbd-version", "warn",
          "the running server's binary was replaced since it "
          "started: restart zfs-live-nbd");
    else
      add(c, "nbd-version", "ok", "running %s, as installed", v);
  }
}

static void
check_file(json_t *c, const char *check, const char *path, bool configured,
           const char *absent)
{
  CLEANUP_CLOSE int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd >= 0)
    add(c, check, "ok", "%s readable", path);
  else if (errno == ENOENT && !configured)
    add(c, check, "ok", "no %s (%s)", path, absent);
  else
    add(c, check, "problem", "%s: %s", path, strerror(errno));
}

static void
check_tls(json_t *c, const struct zl_config *conf)
{
  char p[PATH_MAX + 32];

  if (conf->tls_psk[0])
    snprintf(p, sizeof p, "%s", conf->tls_psk);
  else
    snprintf(p, sizeof p, "%s/tls/host.psk", zl_config_dir());
  check_file(c, "tls-psk", p, conf->tls_psk[0] != 0,
             "needed for shared SRs and NBD over TCP");
  if (conf->tls_certificates[0]) {
    snprintf(p, sizeof p, "%s/server-cert.pem", conf->tls_certificates);
    check_file(c, "tls-certificates", p, true, "");
    snprintf(p, sizeof p, "%s/server-key.pem", conf->tls_certificates);
    check_file(c, "tls-certificates", p, true, "");
  }
}

static void
check_kernel(json_t *c)
{
  struct utsname u;
  const char *rel = uname(&u) == 0 ? u.release : "?";
  int lp = zl_loop_probe_configure();

  if (access("/dev/loop-control", F_OK) == -1)
    add(c, "kernel-loop", "warn",
        "no /dev/loop-control: block devices for XenDisk and "
        "Ganeti are unavailable (modprobe loop)");
  else
    add(c, "kernel-loop", lp == -1 ? "warn" : "ok", "Linux %s: loop devices with %s", rel,
        lp == 1   ? "LOOP_CONFIGURE"
        : lp == 0 ? "LOOP_SET_FD"
                  : zl_error_msg());
  bool uring = zl_io_uring_available();
  add(c, "kernel-io_uring", uring ? "ok" : "warn",
      uring ? "io_uring available"
            : "no io_uring: NBD and datapath I/O use pread/pwrite");
  zl_error_clear();
}

static void
check_zfs(json_t *c, json_t *rep, const char *pool)
{
  json_t *z = json_object_get(rep, "zfs-live");

  if (!json_is_true(json_object_get(z, "present"))) {
    add(c, "zfs", pool ? "problem" : "warn", "not available (zfs-live SRs need it): %s",
        json_string_value(json_object_get(z, "reason")));
    return;
  }
  add(c, "zfs", "ok", "%s %s", json_string_value(json_object_get(z, "flavour")),
      json_string_value(json_object_get(z, "version")));
  if (!pool)
    return;
  const char *argv[] = {"zpool", "list", "-H", "-o", "name,health", pool, NULL};
  struct zl_exec_result res;
  if (zl_exec(argv, NULL, &res) == -1) {
    add(c, "zfs-pool", "problem", "pool %s: %s", pool, zl_error_msg());
    return;
  }
  char *health = res.status == 0 ? strchr(res.out, '\t') : NULL;
  if (health)
    health[strcspn(health, "\n")] = '\0';
  if (!health)
    add(c, "zfs-pool", "problem", "pool %s: %s", pool, zl_exec_reason(&res));
  else if (strcmp(health + 1, "ONLINE") == 0)
    add(c, "zfs-pool", "ok", "pool %s is ONLINE", pool);
  else
    add(c, "zfs-pool", strcmp(health + 1, "DEGRADED") == 0 ? "warn" : "problem",
        "pool %s is %s", pool, health + 1);
  zl_exec_result_free(&res);
}

json_t *
cli_doctor_checks(json_t *rep, const char *pool, const char *root)
{
  struct where w;
  struct zl_config conf;
  json_t *c = json_array();

  if (!c)
    return NULL;
  locate(&w, root);
  if (zl_config_load(&conf) == -1)
    add(c, "config", "problem", "%s", zl_error_msg());
  else
    add(c, "config", "ok", conf.found ? "%s read" : "%s not present (the defaults)",
        conf.path);
  bool xapi = check_xapi(c, &w);
  if (!check_ganeti(c, &w) && !xapi)
    add(c, "install", "problem",
        "neither the XAPI plugins nor the Ganeti provider are installed under %s",
        w.root[0] ? w.root : "/");
  check_nbd(c, &conf);
  check_tls(c, &conf);
  check_kernel(c);
  check_zfs(c, rep, pool);
  zl_error_clear();
  return c;
}
