/* server.c: listeners, connections, signals, daemon mode.
 *
 *   SIGTERM/SIGINT  graceful shutdown: stop accepting, let every connection
 *                   finish the round in flight (new requests: ESHUTDOWN),
 *                   then exit.  Attached exports stay in the registry: the
 *                   next server serves them.
 *   SIGHUP          reload: TLS credentials read again; connections and
 *                   exports untouched (exports are looked up per connection).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "nbd/nbd.h"
#include "util/error.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

#define MAX_LISTEN 8

static atomic_bool shutting_down; /* the lease thread's stop */

/* Refuse to start where a listener would demand TLS without credentials:
 * every client would be turned away (or, before, served in clear). */
static int
check_tls(const struct nbd_config *cfg, const struct nbd_tls *t, bool tcp, bool unix_sock)
{
  if (nbd_tls_configured(t))
    return 0;
  if (tcp && nbd_tls_mode_of(cfg, true) == TLS_REQUIRE) {
    zl_error(EINVAL, "TLS is required on TCP: give --tls-psk or --tls-certificates "
                     "(or --tls=off to allow plain TCP)");
    return -1;
  }
  if (unix_sock && nbd_tls_mode_of(cfg, false) == TLS_REQUIRE) {
    zl_error(EINVAL, "--tls=require needs credentials: give --tls-psk or "
                     "--tls-certificates");
    return -1;
  }
  return 0;
}

int
nbd_serve_fd(int fd, const char *export)
{
  return nbd_conns_add(fd, false, export);
}

/* Listen on the Unix socket path.  Servers starting at the same time
 * (attaches, systemd, an operator) take turns through the lock file
 * "<path>.lock" for the whole look-remove-bind-listen step, so none removes
 * the socket another has just bound (which would leave that one serving a
 * name nobody can reach); the later ones find it answering and stop. */
int
nbd_listen_unix(const char *path)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  char lockpath[PATH_MAX];
  int fd;

  if (strlen(path) >= sizeof sa.sun_path) {
    zl_error(ENAMETOOLONG, "socket path %s is too long", path);
    return -1;
  }
  memcpy(sa.sun_path, path, strlen(path) + 1); /* fits: checked above */
  snprintf(lockpath, sizeof lockpath, "%s.lock", path);
  int lock = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (lock == -1 || flock(lock, LOCK_EX) == -1) {
    zl_error_sys(errno, "lock %s", lockpath);
    if (lock >= 0)
      close(lock);
    return -1;
  }
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1) {
    zl_error_sys(errno, "socket");
    close(lock);
    return -1;
  }
  /* a stale socket from a dead server: remove it, but never a live one
   * (nor one we cannot tell: only "nobody listens" or "not there") */
  int live = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, e = live ? 0 : errno;
  if (live || (e != ECONNREFUSED && e != ENOENT)) {
    close(fd);
    close(lock);
    if (live)
      zl_error(EADDRINUSE, "an NBD server already listens on %s", path);
    else
      zl_error_sys(e, "cannot tell whether an NBD server listens on %s", path);
    return -1;
  }
  unlink(path);
  mode_t old = umask(0177); /* 0600 */
  int r = bind(fd, (struct sockaddr *)&sa, sizeof sa);
  umask(old);
  if (r == -1 || listen(fd, SOMAXCONN) == -1) {
    zl_error_sys(errno, "listen on %s", path);
    close(fd);
    close(lock);
    return -1;
  }
  close(lock);
  return fd;
}

static int
listen_tcp(const char *spec, struct nbd_listener *out, int max)
{
  char host[256] = "", port[32];
  const char *colon = strrchr(spec, ':');
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res, *a;
  int n = 0;

  if (!colon || !colon[1]) {
    zl_error(EINVAL, "--tcp %s: want [HOST]:PORT", spec);
    return -1;
  }
  snprintf(host, sizeof host, "%.*s", (int)(colon - spec), spec);
  snprintf(port, sizeof port, "%s", colon + 1);
  if (host[0] == '[') { /* [::1] */
    memmove(host, host + 1, strlen(host));
    host[strcspn(host, "]")] = '\0';
  }
#ifdef ZL_STATIC
  hints.ai_flags |= AI_NUMERICHOST | AI_NUMERICSERV; /* no NSS in a static binary */
#endif
  int r = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
  if (r != 0) {
    zl_error(EINVAL, "--tcp %s: %s", spec, gai_strerror(r));
    return -1;
  }
  for (a = res; a && n < max; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol), one = 1;
    if (fd == -1)
      continue;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (a->ai_family == AF_INET6)
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, a->ai_addr, a->ai_addrlen) == -1 || listen(fd, SOMAXCONN) == -1) {
      zl_error_sys(errno, "listen on %s", spec);
      close(fd);
      continue;
    }
    out[n++] = (struct nbd_listener){fd, true};
  }
  freeaddrinfo(res);
  return n ? n : -1;
}

/* systemd socket activation (LISTEN_PID/LISTEN_FDS): the fds from 3 on. */
static int
listen_activated(struct nbd_listener *out, int max)
{
  const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
  int n = 0;

  if (!pid || !fds || atoi(pid) != getpid())
    return 0;
  for (int i = 0; i < atoi(fds) && n < max; i++) {
    int fd = 3 + i;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
      out[n++] = (struct nbd_listener){fd, ss.ss_family != AF_UNIX};
  }
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  return n;
}

/* Detach from the caller: fork, new session, stdio on /dev/null; the
 * parent returns once the child listens (ready != 0 read from the pipe). */
int
nbd_daemonize(const char *pidfile, const char *tag, int *ready_fd)
{
  int p[2];
  if (pipe2(p, O_CLOEXEC) == -1)
    return -1;
  pid_t pid = fork();
  if (pid == -1)
    return -1;
  if (pid > 0) {
    char ok = 0;
    close(p[1]);
    ssize_t n = read(p[0], &ok, 1);
    _exit(n == 1 && ok == 1 ? 0 : 1);
  }
  close(p[0]);
  setsid();
  if (chdir("/") == -1) { /* ignore */
  }
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    dup2(null, 0), dup2(null, 1), dup2(null, 2);
    close(null);
  }
  zl_log_init(tag, -1); /* syslog only from now on */
  if (pidfile) {
    FILE *f = fopen(pidfile, "we");
    if (f) {
      fprintf(f, "%d\n", (int)getpid());
      fclose(f);
    }
  }
  *ready_fd = p[1];
  return 0;
}

static pthread_mutex_t lease_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t lease_cond = PTHREAD_COND_INITIALIZER;

/* Once a second: has another host taken over a volume this host writes? */
static void *
lease_thread(void *arg)
{
  (void)arg;
  pthread_mutex_lock(&lease_lock);
  while (!atomic_load(&shutting_down)) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 1;
    pthread_cond_timedwait(&lease_cond, &lease_lock, &ts);
    if (atomic_load(&shutting_down))
      break;
    pthread_mutex_unlock(&lease_lock);
    nbd_export_recheck();
    pthread_mutex_lock(&lease_lock);
  }
  pthread_mutex_unlock(&lease_lock);
  return NULL;
}

/* SIGHUP: read the TLS credentials again; SIGTERM, SIGINT: stop (true). */
static bool
on_signal(const struct nbd_config *cfg, int signo)
{
  if (signo == SIGHUP) {
    struct nbd_tls *nt = nbd_tls_new(cfg);
    if (nt) {
      nbd_creds_set(nt); /* sessions keep theirs until they end */
      zl_info("reloaded: TLS credentials read again");
    } else {
      zl_warn("reload failed, keeping the old credentials: %s", zl_error_msg());
    }
    return false;
  }
  if (signo == SIGPIPE)
    return false;
  zl_info("shutting down (signal %d): finishing requests in flight", signo);
  return true;
}

/* As many file descriptors as the hard limit allows: an on-demand server
 * inherits its caller's soft limit (often 1,024). */
static void
raise_nofile(void)
{
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
      zl_warn("cannot raise the file descriptor limit: %s", strerror(errno));
  }
}

int
nbd_serve(const struct nbd_config *cfg)
{
  struct nbd_listener ls[MAX_LISTEN];
  int nl = listen_activated(ls, MAX_LISTEN), ready = -1;
  bool activated = nl > 0; /* systemd owns the sockets: no others, no unlink */
  sigset_t sigs;

  /* what will listen: systemd's sockets, else the configured ones */
  bool tcp = !activated && cfg->tcp, unix_sock = !activated && cfg->socket_path;
  for (int i = 0; i < nl; i++)
    *(ls[i].tcp ? &tcp : &unix_sock) = true;
  raise_nofile();
  struct nbd_tls *t = nbd_tls_new(cfg);
  if (!t || check_tls(cfg, t, tcp, unix_sock) == -1) {
    nbd_tls_free(t);
    for (int i = 0; i < nl; i++)
      close(ls[i].fd);
    return -1;
  }
  nbd_creds_set(t);
  if (nl == 0 && cfg->socket_path) {
    int fd = nbd_listen_unix(cfg->socket_path);
    if (fd == -1)
      return -1;
    ls[nl++] = (struct nbd_listener){fd, false};
  }
  if (!activated && cfg->tcp) {
    int n = listen_tcp(cfg->tcp, ls + nl, MAX_LISTEN - nl);
    if (n == -1)
      return -1;
    nl += n;
  }
  if (nl == 0) {
    zl_error(EINVAL, "nothing to listen on");
    return -1;
  }
  if (cfg->daemon && nbd_daemonize(cfg->pidfile, "zfs-live-nbd", &ready) == -1) {
    zl_error_sys(errno, "daemonize");
    return -1;
  }

  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGHUP);
  sigaddset(&sigs, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
  /* threads started from here on inherit the mask: no SIGPIPE kills */
  if (cfg->started && cfg->started(cfg) == -1)
    zl_warn("%s", zl_error_msg());
  zl_info("serving NBD on %d listener%s%s%s", nl, nl == 1 ? "" : "s",
          cfg->socket_path ? ", unix " : "", cfg->socket_path ? cfg->socket_path : "");
  if (ready >= 0) {
    char ok = 1;
    if (write(ready, &ok, 1) != 1) { /* the caller is gone: serve anyway */
    }
    close(ready);
  }

  pthread_t lease;
  bool leasing = pthread_create(&lease, NULL, lease_thread, NULL) == 0;
  if (!leasing)
    zl_warn("no lease thread: a takeover by another host is not noticed here");

  nbd_conns_run(cfg, ls, nl, sfd, on_signal); /* until SIGTERM/SIGINT */
  atomic_store(&shutting_down, true);
  if (cfg->stopping)
    cfg->stopping(cfg);
  if (leasing) {
    pthread_mutex_lock(&lease_lock);
    pthread_cond_signal(&lease_cond);
    pthread_mutex_unlock(&lease_lock);
    pthread_join(lease, NULL);
  }
  for (int i = 0; i < nl; i++)
    close(ls[i].fd);
  if (cfg->socket_path && !activated)
    unlink(cfg->socket_path);
  nbd_conns_stop();
  close(sfd);
  nbd_creds_set(NULL);
  if (cfg->pidfile)
    unlink(cfg->pidfile);
  zl_info("stopped");
  return 0;
}
