/* stream.c: the connection's byte stream, a plain socket or a TLS session
 * (tls-gnutls.c or tls-openssl.c, chosen when the binary is built). */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "nbd/nbd.h"

#include "util/banned.h" /* last: after every declaration */

ssize_t
nbd_read_some(struct nbd_stream *s, void *buf, size_t max)
{
  if (s->session)
    return nbd_tls_recv(s->session, buf, max, s->idle_return);
  for (;;) {
    ssize_t n = recv(s->fd, buf, max, 0);
    if (n >= 0 || errno != EINTR)
      return n;
  }
}

int
nbd_read_full(struct nbd_stream *s, void *buf, size_t len)
{
  char *p = buf;
  while (len > 0) {
    ssize_t n = nbd_read_some(s, p, len);
    if (n == -1 && errno == EAGAIN && s->idle_return)
      continue; /* the linger expired mid-message: the rest is owed */
    if (n <= 0)
      return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int
nbd_writev_full(struct nbd_stream *s, struct iovec *iov, int n)
{
  if (s->session)
    return nbd_tls_sendv(s->session, iov, n);
  while (n > 0) {
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)(n > IOV_MAX ? IOV_MAX : n)};
    ssize_t w = sendmsg(s->fd, &m, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    while (n > 0 && (size_t)w >= iov->iov_len) {
      w -= (ssize_t)iov->iov_len;
      iov++, n--;
    }
    if (n > 0) {
      iov->iov_base = (char *)iov->iov_base + w;
      iov->iov_len -= (size_t)w;
    }
  }
  return 0;
}

int
nbd_write_full(struct nbd_stream *s, const void *buf, size_t len)
{
  struct iovec iov = {(void *)buf, len};
  return nbd_writev_full(s, &iov, 1);
}

void
nbd_stream_close(struct nbd_stream *s)
{
  if (s->session) {
    nbd_tls_end(s->session);
    s->session = NULL;
  }
  if (s->fd >= 0)
    close(s->fd);
  s->fd = -1;
}
