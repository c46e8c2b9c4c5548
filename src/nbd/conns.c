/* conns.c: the connections (nbd.h).
 *
 * States of a connection:
 *   WAIT    greeted, waiting for the client's first bytes     (epoll, no thread)
 *   NEGO    negotiating in its thread                          (thread)
 *   PARKED  established, idle between requests                (epoll, no thread)
 *   ACTIVE  serving requests in its thread                     (thread)
 * A connection is "unauthenticated" from accept until its handshake ends;
 * those count against the caps and have the handshake deadline: a WAIT
 * one past it is closed here, a NEGO one has its socket shut down so that
 * its thread's next read or write fails (TLS included).  A connection
 * leaves the list (and is freed) under the lock, by the thread that owns
 * it: the loop for WAIT and PARKED, its thread otherwise.
 *
 * Running out of file descriptors: a reserve fd is given up to accept the
 * waiting connection and close it at once, then taken back, and the
 * listeners pause for BACKOFF_MS (never a busy loop on EMFILE).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "nbd/nbd.h"
#include "util/error.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

#define MAX_LISTEN    8
#define BACKOFF_MS    100
#define ACCEPT_BURST  64 /* per listener per wake-up: signals stay responsive */
#define WARN_EVERY_MS 10000

enum cstate { WAIT, NEGO, PARKED, ACTIVE };

struct conn {
  struct nbd_conn c;
  struct conn *prev, *next;
  enum cstate state;
  bool unauth; /* negotiating: under the handshake deadline */
  bool capped; /* and counted in the caps (TCP only: the Unix socket is 0600) */
  bool cut;    /* its socket was shut down at the deadline */
  struct sockaddr_storage peer;
  socklen_t peerlen;
  int64_t t0; /* ms: accepted (unauth) or parked */
  char *import;
};

/* The current TLS credentials.  A connection takes a reference when it
 * starts; a reload swaps in new ones and drops the server's reference to
 * the old, which go when their last session ends. */
static struct {
  pthread_mutex_t lock;
  struct nbd_tls *cur;
} creds = {PTHREAD_MUTEX_INITIALIZER, NULL};

struct nbd_tls *
nbd_creds_get(void)
{
  pthread_mutex_lock(&creds.lock);
  struct nbd_tls *t = nbd_tls_ref(creds.cur);
  pthread_mutex_unlock(&creds.lock);
  return t;
}

void
nbd_creds_set(struct nbd_tls *t)
{
  pthread_mutex_lock(&creds.lock);
  struct nbd_tls *old = creds.cur;
  creds.cur = t;
  pthread_mutex_unlock(&creds.lock);
  nbd_tls_free(old);
}

/* The TLS mode of a connection.  TCP demands TLS unless it was turned off
 * (`--tls=on` does not make plain NBD over the network acceptable); a Unix
 * socket offers or demands it as configured. */
enum tls_mode
nbd_tls_mode_of(const struct nbd_config *cfg, bool tcp)
{
  if (tcp)
    return cfg->tls_tcp == TLS_OFF ? TLS_OFF : TLS_REQUIRE;
  return cfg->tls_unix;
}

void
nbd_tune_socket(int fd, bool tcp)
{
  int one = 1, buf = 4 << 20;
  if (tcp)
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
}

static atomic_bool stopping;

static struct {
  pthread_mutex_t lock;
  pthread_cond_t done;
  struct conn head; /* sentinel of the list of every connection */
  int n, unauth, capped;
  int ep; /* the epoll fd, -1: not serving */
  const struct nbd_config *cfg;
  int max_unauth;
} L = {.lock = PTHREAD_MUTEX_INITIALIZER,
       .done = PTHREAD_COND_INITIALIZER,
       .head = {.prev = &L.head, .next = &L.head},
       .ep = -1};

static int64_t
now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Say it at most once in WARN_EVERY_MS per call site (*last). */
static bool
warn_due(int64_t *last)
{
  int64_t t = now_ms();
  if (*last && t - *last < WARN_EVERY_MS)
    return false;
  *last = t;
  return true;
}

static void
conn_free(struct conn *k)
{
  nbd_export_put(k->c.exp);
  free(k->c.dirty_from);
  zl_bitmap_free(&k->c.dirty);
  nbd_stream_close(&k->c.st);
  nbd_tls_free(k->c.creds); /* the last session of replaced credentials frees them */
  free(k->import);
  free(k->c.recv_req);
  free(k);
}

/* Under the lock: take k off the list and out of epoll (before its fd is
 * closed, by conn_free after the lock). */
static void
unlink_locked(struct conn *k)
{
  k->prev->next = k->next;
  k->next->prev = k->prev;
  L.n--;
  L.unauth -= k->unauth;
  L.capped -= k->capped;
  if (L.ep >= 0)
    epoll_ctl(L.ep, EPOLL_CTL_DEL, k->c.st.fd, NULL);
  pthread_cond_broadcast(&L.done);
}

/* Under the lock: wait for the client (one shot: one thread at a time). */
static int
arm_locked(struct conn *k)
{
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT, .data.ptr = k};
  return epoll_ctl(L.ep, EPOLL_CTL_MOD, k->c.st.fd, &ev);
}

static void *
conn_thread(void *arg)
{
  struct conn *k = arg;
  bool park = false;

  zl_log_set_tag("nbd");
  if (!k->c.exp) {
    int r = nbd_handshake(&k->c);
    pthread_mutex_lock(&L.lock);
    L.unauth -= k->unauth;
    L.capped -= k->capped;
    k->unauth = k->capped = false;
    if (r >= 0 && k->cut)
      r = -1; /* finished after the deadline: its socket is shut */
    if (r >= 0)
      k->state = ACTIVE;
    pthread_mutex_unlock(&L.lock);
    if (r == 1) /* a replication: authenticated, its own timeouts */
      nbd_recv_serve(&k->c, nbd_tls_peer(k->c.st.session));
    if (r == 0)
      zl_debug("transmission: export %s", k->c.exp->name);
    else
      goto done;
  }
  park = nbd_transmission(&k->c);
done:
  pthread_mutex_lock(&L.lock);
  if (park && !atomic_load(&stopping)) {
    k->state = PARKED;
    k->t0 = now_ms() - (k->c.linger_ms > 0 ? k->c.linger_ms : 0); /* idle since */
    bool armed = arm_locked(k) == 0; /* k may be another thread's from here */
    pthread_mutex_unlock(&L.lock);
    if (armed)
      return NULL;
    pthread_mutex_lock(&L.lock);
  }
  unlink_locked(k);
  pthread_mutex_unlock(&L.lock);
  conn_free(k);
  return NULL;
}

/* Give k a thread (it was WAIT or PARKED: nobody else holds it); a client
 * that hung up before saying anything is closed here, threadless. */
static void
conn_wake(struct conn *k, uint32_t events)
{
  pthread_t th;
  pthread_attr_t attr;

  pthread_mutex_lock(&L.lock);
  if (k->state != WAIT && k->state != PARKED) { /* a stale event */
    pthread_mutex_unlock(&L.lock);
    return;
  }
  if (k->state == WAIT && (events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) &&
      !(events & EPOLLIN)) {
    unlink_locked(k);
    pthread_mutex_unlock(&L.lock);
    conn_free(k);
    return;
  }
  k->state = k->state == WAIT ? NEGO : ACTIVE;
  pthread_mutex_unlock(&L.lock);
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int r = pthread_create(&th, &attr, conn_thread, k);
  pthread_attr_destroy(&attr);
  if (r != 0) {
    static int64_t last;
    if (warn_due(&last))
      zl_warn("cannot start a connection's thread: %s: closing it", strerror(r));
    pthread_mutex_lock(&L.lock);
    unlink_locked(k);
    pthread_mutex_unlock(&L.lock);
    conn_free(k);
  }
}

static bool
same_source(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
  if (a->ss_family != b->ss_family)
    return false;
  if (a->ss_family == AF_INET)
    return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
           ((const struct sockaddr_in *)b)->sin_addr.s_addr;
  if (a->ss_family == AF_INET6)
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr,
                  sizeof(struct in6_addr)) == 0;
  return false;
}

/* Under the lock: may one more unauthenticated connection from ss come in? */
static bool
admissible_locked(const struct sockaddr_storage *ss, bool tcp)
{
  if (L.max_unauth > 0 && L.capped >= L.max_unauth)
    return false;
  int cap = L.cfg->max_unauth_source, n = 0;
  if (!tcp || cap <= 0)
    return true;
  for (struct conn *k = L.head.next; k != &L.head; k = k->next)
    if (k->capped && same_source(&k->peer, ss) && ++n >= cap)
      return false;
  return true;
}

/* Carry fd: greet, list, wait for the client.  Owned; -1 if closed. */
static int
admit(int fd, bool tcp, const struct sockaddr_storage *ss, socklen_t sl,
      const char *import)
{
  static int64_t last_cap;
  struct conn *k = calloc(1, sizeof *k);
  uint8_t hello[18];

  pthread_mutex_lock(&L.lock);
  const struct nbd_config *cfg = L.ep >= 0 ? L.cfg : NULL; /* fixed while serving */
  pthread_mutex_unlock(&L.lock);
  if (!cfg) {
    free(k);
    close(fd);
    errno = EAGAIN;
    return -1;
  }
  if (!k || (import && !(k->import = strdup(import)))) {
    free(k);
    close(fd);
    zl_error(ENOMEM, "a new connection");
    return -1;
  }
  nbd_tune_socket(fd, tcp);
  k->c = (struct nbd_conn){.st = {.fd = fd},
                           .tcp = tcp,
                           .cfg = cfg,
                           .stopping = &stopping,
                           .import = k->import,
                           .greeted = true,
                           .linger_ms = cfg->linger_ms};
  k->c.tls = nbd_tls_mode_of(cfg, tcp);
  if (ss)
    memcpy(&k->peer, ss, sl);
  k->peerlen = sl;
  k->unauth = !import;
  k->capped = k->unauth && tcp;
  k->state = WAIT;
  k->t0 = now_ms();

  pthread_mutex_lock(&L.lock);
  if (L.ep < 0 || atomic_load(&stopping) ||
      (k->capped && !admissible_locked(&k->peer, tcp))) {
    bool capped = L.ep >= 0 && !atomic_load(&stopping);
    int unauth = L.capped;
    pthread_mutex_unlock(&L.lock);
    if (capped && warn_due(&last_cap))
      zl_warn("%d connections negotiating: turning new ones away (%s)", unauth,
              unauth >= L.max_unauth ? "the server's limit" : "the limit per address");
    conn_free(k);
    errno = EAGAIN;
    return -1;
  }
  nbd_greeting(hello);
  /* an empty socket buffer always takes 18 bytes */
  if (send(fd, hello, sizeof hello, MSG_DONTWAIT | MSG_NOSIGNAL) !=
      (ssize_t)sizeof hello) {
    pthread_mutex_unlock(&L.lock);
    conn_free(k);
    return -1;
  }
  k->c.creds = nbd_creds_get();
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT, .data.ptr = k};
  if (epoll_ctl(L.ep, EPOLL_CTL_ADD, fd, &ev) == -1) {
    pthread_mutex_unlock(&L.lock);
    zl_error_sys(errno, "epoll");
    conn_free(k);
    return -1;
  }
  k->next = &L.head;
  k->prev = L.head.prev;
  L.head.prev->next = k;
  L.head.prev = k;
  L.n++;
  L.unauth += k->unauth;
  L.capped += k->capped;
  pthread_mutex_unlock(&L.lock);
  return 0;
}

int
nbd_conns_add(int fd, bool tcp, const char *import)
{
  if (admit(fd, tcp, NULL, 0, import) == -1) {
    zl_error(errno == EAGAIN ? ESHUTDOWN : errno, "cannot serve an import of %s",
             import ? import : "(any)");
    return -1;
  }
  return 0;
}

static int
unauth_now(void)
{
  pthread_mutex_lock(&L.lock);
  int n = L.unauth;
  pthread_mutex_unlock(&L.lock);
  return n;
}

struct loop {
  const struct nbd_listener *ls;
  int nl;
  int reserve;          /* /dev/null, given up to accept when out of fds */
  int64_t paused_until; /* listeners off until then (0: on) */
};

static void
listeners_enable(struct loop *lp, bool on)
{
  for (int i = 0; i < lp->nl; i++) {
    struct epoll_event ev = {.events = on ? EPOLLIN : 0, .data.u64 = (uint64_t)i * 2 + 1};
    epoll_ctl(L.ep, EPOLL_CTL_MOD, lp->ls[i].fd, &ev);
  }
}

/* accept failed for want of file descriptors: turn one connection away
 * (through the reserve fd) and pause the listeners. */
static void
out_of_fds(struct loop *lp, int lfd, int e)
{
  static int64_t last;
  if (lp->reserve >= 0) {
    close(lp->reserve);
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0)
      close(fd);
    lp->reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  if (warn_due(&last))
    zl_warn("accept: %s (%d connections, %d negotiating): turning clients away",
            strerror(e), L.n, L.unauth);
  lp->paused_until = now_ms() + BACKOFF_MS;
  listeners_enable(lp, false);
}

static int
tick_for_unauth(const struct nbd_config *cfg)
{
  if (cfg->handshake_ms <= 0)
    return -1;
  return cfg->handshake_ms < 1000 ? cfg->handshake_ms / 4 + 1 : 250;
}

static void
accept_some(struct loop *lp, int i)
{
  for (int k = 0; k < ACCEPT_BURST && !lp->paused_until; k++) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept4(lp->ls[i].fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
    if (fd == -1) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
        out_of_fds(lp, lp->ls[i].fd, errno);
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      return; /* EAGAIN, or an error the next wake-up retries */
    }
    admit(fd, lp->ls[i].tcp, &ss, sl, NULL);
  }
}

/* Deadlines: close WAIT connections past the handshake deadline, shut the
 * socket of NEGO ones, close PARKED ones idle past idle_ms.  Returns how
 * long until the next check is due (-1: none).  One pass over the list:
 * run on a tick, not on every wake-up. */
static int
check_deadlines(struct loop *lp)
{
  const struct nbd_config *cfg = L.cfg;
  int64_t t = now_ms();
  struct conn *gone = NULL;
  bool parked = false;

  if (lp->paused_until && t >= lp->paused_until) {
    lp->paused_until = 0;
    listeners_enable(lp, true);
  }
  pthread_mutex_lock(&L.lock);
  for (struct conn *k = L.head.next, *nx; k != &L.head; k = nx) {
    nx = k->next;
    bool late = k->unauth && cfg->handshake_ms > 0 && t - k->t0 >= cfg->handshake_ms;
    bool idle = k->state == PARKED && cfg->idle_ms > 0 && t - k->t0 >= cfg->idle_ms;
    parked |= k->state == PARKED;
    if (late && k->state == NEGO && !k->cut) {
      k->cut = true;
      shutdown(k->c.st.fd, SHUT_RDWR); /* its thread's I/O fails now */
    } else if ((late && k->state == WAIT) || idle) {
      unlink_locked(k);
      k->next = gone; /* freed after the lock */
      gone = k;
    }
  }
  int unauth = L.unauth;
  pthread_mutex_unlock(&L.lock);
  while (gone) {
    struct conn *k = gone;
    gone = k->next;
    zl_debug("%s: closing a connection",
             k->unauth ? "handshake deadline passed" : "idle timeout");
    conn_free(k);
  }
  (void)parked;
  int wait = -1;
  if (unauth)
    wait = tick_for_unauth(cfg);
  if (cfg->idle_ms > 0 && (wait == -1 || wait > 1000))
    wait = 1000; /* threads park at any time: tick while it is set */
  if (lp->paused_until && (wait == -1 || wait > BACKOFF_MS))
    wait = BACKOFF_MS;
  return wait;
}

/* Stop: shut the sockets of connections in a thread (the round in flight
 * completes), close the others, wait for the threads (30 s at most). */
static void
stop_all(void)
{
  struct conn *gone = NULL;
  struct timespec until;

  atomic_store(&stopping, true);
  pthread_mutex_lock(&L.lock);
  for (struct conn *k = L.head.next, *nx; k != &L.head; k = nx) {
    nx = k->next;
    if (k->state == NEGO || k->state == ACTIVE) {
      shutdown(k->c.st.fd, SHUT_RD);
    } else {
      unlink_locked(k);
      k->next = gone;
      gone = k;
    }
  }
  pthread_mutex_unlock(&L.lock);
  while (gone) {
    struct conn *k = gone;
    gone = k->next;
    conn_free(k);
  }
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 30;
  pthread_mutex_lock(&L.lock);
  while (L.n > 0)
    if (pthread_cond_timedwait(&L.done, &L.lock, &until) == ETIMEDOUT)
      break;
  pthread_mutex_unlock(&L.lock);
}

int
nbd_conns_run(const struct nbd_config *cfg, const struct nbd_listener *ls, int nl,
              int sfd, bool (*on_signal)(const struct nbd_config *, int signo))
{
  struct loop lp = {ls, nl, open("/dev/null", O_RDONLY | O_CLOEXEC), 0};
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev;

  if (ep == -1) {
    zl_error_sys(errno, "epoll");
    if (lp.reserve >= 0)
      close(lp.reserve);
    return -1;
  }
  for (int i = 0; i < nl; i++) {
    fcntl(ls[i].fd, F_SETFL, fcntl(ls[i].fd, F_GETFL) | O_NONBLOCK);
    ev = (struct epoll_event){.events = EPOLLIN, .data.u64 = (uint64_t)i * 2 + 1};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls[i].fd, &ev);
  }
  ev = (struct epoll_event){.events = EPOLLIN, .data.u64 = (uint64_t)MAX_LISTEN * 2 + 1};
  epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
  pthread_mutex_lock(&L.lock);
  L.cfg = cfg;
  L.max_unauth = cfg->max_unauth;
  struct rlimit rl;
  /* half of the file descriptors at most: the rest for established ones */
  if (L.max_unauth > 0 && getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
      rl.rlim_cur != RLIM_INFINITY && (rlim_t)L.max_unauth > rl.rlim_cur / 2)
    L.max_unauth = (int)(rl.rlim_cur / 2);
  L.ep = ep;
  pthread_mutex_unlock(&L.lock);

  int64_t due = now_ms(); /* next deadline check, INT64_MAX: none */
  for (bool done = false; !done;) {
    struct epoll_event evs[64];
    int64_t t = now_ms();
    int wait = due == INT64_MAX ? -1 : due <= t ? 0 : (int)(due - t);
    int n = epoll_wait(ep, evs, 64, wait);
    if (n == -1 && errno != EINTR)
      break;
    for (int i = 0; i < n; i++) {
      uint64_t tag = evs[i].data.u64;
      if (!(tag & 1)) {
        conn_wake(evs[i].data.ptr, evs[i].events);
      } else if (tag == (uint64_t)MAX_LISTEN * 2 + 1) {
        struct signalfd_siginfo si;
        if (read(sfd, &si, sizeof si) == sizeof si && on_signal(cfg, (int)si.ssi_signo))
          done = true;
      } else {
        accept_some(&lp, (int)(tag >> 1));
      }
    }
    t = now_ms();
    int tick = -1;
    if (t >= due) {
      tick = check_deadlines(&lp);
      due = tick < 0 ? INT64_MAX : t + tick;
    } else if (due == INT64_MAX && (lp.paused_until || unauth_now())) {
      tick = lp.paused_until ? BACKOFF_MS : tick_for_unauth(cfg);
      due = tick < 0 ? INT64_MAX : t + tick; /* new arrivals: start ticking */
    }
  }
  atomic_store(&stopping, true); /* new requests: ESHUTDOWN */
  if (lp.reserve >= 0)
    close(lp.reserve);
  return 0;
}

void
nbd_conns_stop(void)
{
  stop_all();
  pthread_mutex_lock(&L.lock);
  int ep = L.ep;
  L.ep = -1;
  pthread_mutex_unlock(&L.lock);
  if (ep >= 0)
    close(ep);
}
