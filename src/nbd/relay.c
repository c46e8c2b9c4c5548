/* relay.c: `zfs-live relay`, how a host that is not a shared zfs-live SR's
 * storage host gives QEMU (qdisk) a local NBD socket for a volume of it.
 *
 * One relay per attached remote volume (Datapath.attach starts it, the last
 * detach stops it, like qemu-dp per VDI).  For each local connection it
 * dials the storage host's NBD server, passes the server's greeting and the
 * client's flags through, then does STARTTLS itself with this host's PSK
 * and from there carries the bytes both ways unchanged.  So every option
 * the client negotiates (GO, structured replies, meta contexts, multi-conn)
 * is the storage host's answer, the client needs no TLS of its own, and the
 * storage host knows the writes as this host's (its PSK identity), which is
 * what its fence checks.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nbd/nbd.h"
#include "util/error.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

#define RELAY_BUF (256u << 10)

struct relay {
  const char *hostport;
  struct nbd_tls *creds;
};

struct relay_conn {
  int fd; /* the local client */
  const char *hostport;
  struct nbd_tls *creds; /* a reference of the connection's own */
};

static int
write_all(int fd, const void *buf, size_t len)
{
  const char *p = buf;
  while (len) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Carry bytes both ways until either side closes. */
static void
carry(int cfd, struct nbd_stream *rs, uint8_t *buf)
{
  for (;;) {
    struct pollfd p[2] = {{.fd = cfd, .events = POLLIN},
                          {.fd = rs->fd, .events = POLLIN}};
    if (!nbd_tls_pending(rs->session) && poll(p, 2, -1) == -1) {
      if (errno == EINTR)
        continue;
      return;
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = read(cfd, buf, RELAY_BUF);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0 || nbd_write_full(rs, buf, (size_t)n) == -1)
        return;
    }
    if (nbd_tls_pending(rs->session) || (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t n = nbd_read_some(rs, buf, RELAY_BUF);
      if (n <= 0 || write_all(cfd, buf, (size_t)n) == -1)
        return;
    }
  }
}

static void *
relay_thread(void *arg)
{
  struct relay_conn *rc = arg;
  struct nbd_stream rs = {.fd = -1};
  uint8_t greeting[18], flags[4];
  uint8_t *buf = malloc(RELAY_BUF);
  struct nbd_stream cs = {.fd = rc->fd};

  if (!buf)
    goto out;
  if ((rs.fd = nbd_client_dial(rc->hostport, greeting, 10)) == -1 ||
      write_all(rc->fd, greeting, sizeof greeting) == -1 ||
      nbd_read_full(&cs, flags, sizeof flags) == -1 ||
      nbd_write_full(&rs, flags, sizeof flags) == -1 ||
      nbd_client_starttls(&rs, rc->creds) == -1) {
    zl_warn("relay to %s: %s", rc->hostport, zl_error_msg());
    goto out;
  }
  carry(rc->fd, &rs, buf);
out:
  free(buf);
  nbd_stream_close(&rs);
  close(rc->fd);
  nbd_tls_free(rc->creds);
  free(rc);
  return NULL;
}

int
nbd_relay_main(const char *listen_path, const char *hostport, const char *psk_file,
               const char *pidfile)
{
  struct relay r = {hostport, nbd_tls_client_new(psk_file)};
  int ready = -1;
  sigset_t sigs;

  if (!r.creds)
    return 1;
  int lfd = nbd_listen_unix(listen_path);
  if (lfd == -1) {
    nbd_tls_free(r.creds);
    return 1;
  }
  if (nbd_daemonize(pidfile, "zfs-live-relay", &ready) == -1) {
    zl_error_sys(errno, "daemonize");
    return 1;
  }
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
  char ok = 1;
  if (write(ready, &ok, 1) != 1) { /* the caller is gone: relay anyway */
  }
  close(ready);
  zl_info("relaying %s to %s over TLS", listen_path, hostport);
  for (;;) {
    struct pollfd p[2] = {{.fd = lfd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
    if (poll(p, 2, -1) == -1 && errno != EINTR)
      break;
    if (p[1].revents & POLLIN) {
      struct signalfd_siginfo si;
      if (read(sfd, &si, sizeof si) == sizeof si && si.ssi_signo != SIGPIPE)
        break;
    }
    if (!(p[0].revents & POLLIN))
      continue;
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    struct relay_conn *rc = fd >= 0 ? malloc(sizeof *rc) : NULL;
    pthread_t th;
    if (!rc) {
      if (fd >= 0)
        close(fd);
      continue;
    }
    *rc = (struct relay_conn){fd, r.hostport, nbd_tls_ref(r.creds)};
    if (pthread_create(&th, NULL, relay_thread, rc) != 0) {
      close(fd);
      nbd_tls_free(rc->creds);
      free(rc);
      continue;
    }
    pthread_detach(th);
  }
  /* connections in flight end with the process: their clients see EOF, as
   * when a qemu-dp is stopped */
  close(lfd);
  unlink(listen_path);
  if (pidfile)
    unlink(pidfile);
  nbd_tls_free(r.creds); /* connections still running hold their own */
  zl_info("relay of %s stopped", listen_path);
  return 0;
}
