/* client.c: this host as a client of another host's NBD server, always
 * over TLS with this host's own PSK (its identity is its host UUID): the
 * relay of a remote volume (relay.c) and the calls that run a volume
 * plugin method on the SR's storage host (nbd_remote_call).
 *
 * The call channel is the NBD handshake itself: after STARTTLS the client
 * sends the private option NBD_OPT_ZL_CALL whose data is the JSON request
 * {"path": "<kind>/<plugin dir>/<Method>", "args": {...}}; the server runs
 * that installed plugin link as xapi-storage-script would (call.c), with
 * the peer's authenticated identity, and answers NBD_REP_ZL_RESULT with
 * {"status": N, "stdout": "...", "stderr": "..."}.  No other channel, no
 * ssh: what authenticates a host is the PSK its storage host knows it by.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "nbd/nbd.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

static void
timeouts(int fd, int seconds)
{
  struct timeval tv = {.tv_sec = seconds};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

int
nbd_client_dial(const char *hostport, uint8_t greeting[18], int timeout_s)
{
  char host[256], *port;
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;

  snprintf(host, sizeof host, "%s", hostport);
  port = strrchr(host, ':');
  if (!port || port == host) {
    zl_error(EINVAL, "storage host '%s' is not HOST:PORT", hostport);
    return -1;
  }
  *port++ = '\0';
  if (host[0] == '[' && port[-2] == ']') { /* [v6]:port */
    port[-2] = '\0';
    memmove(host, host + 1, strlen(host));
  }
  int r = getaddrinfo(host, port, &hints, &ai);
  if (r != 0) {
    zl_error(EHOSTUNREACH, "storage host %s: %s", hostport, gai_strerror(r));
    return -1;
  }
  int fd = -1;
  for (struct addrinfo *a = ai; a && fd == -1; a = a->ai_next) {
    fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
      continue;
    timeouts(fd, timeout_s);
    if (connect(fd, a->ai_addr, a->ai_addrlen) == -1) {
      r = errno;
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(ai);
  if (fd == -1) {
    zl_error_sys(r ? r : ECONNREFUSED, "storage host %s", hostport);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct nbd_stream s = {.fd = fd};
  if (nbd_read_full(&s, greeting, 18) == -1 || be64(greeting) != NBD_MAGIC ||
      be64(greeting + 8) != NBD_IHAVEOPT) {
    zl_error(EPROTO, "storage host %s: not a newstyle NBD server", hostport);
    close(fd);
    return -1;
  }
  timeouts(fd, 0);
  return fd;
}

/* Send option opt with len bytes of data; read the reply header and (up to
 * max) its data into *data (malloc()ed, NUL-terminated).  The reply type,
 * or -1. */
static int64_t
option(struct nbd_stream *s, uint32_t opt, const void *data, uint32_t len, char **out,
       uint32_t max)
{
  uint8_t h[16], r[20];

  put64(h, NBD_IHAVEOPT);
  put32(h + 8, opt);
  put32(h + 12, len);
  struct iovec iov[2] = {{h, sizeof h}, {(void *)data, len}};
  if (nbd_writev_full(s, iov, len ? 2 : 1) == -1 || nbd_read_full(s, r, sizeof r) == -1 ||
      be64(r) != NBD_REP_MAGIC || be32(r + 8) != opt) {
    zl_error(EPROTO, "NBD option %u: no valid reply", opt);
    return -1;
  }
  uint32_t type = be32(r + 12), rlen = be32(r + 16);
  if (rlen > max) {
    zl_error(EPROTO, "NBD option %u: a reply of %u bytes", opt, rlen);
    return -1;
  }
  char *buf = malloc((size_t)rlen + 1);
  if (!buf || nbd_read_full(s, buf, rlen) == -1) {
    free(buf);
    zl_error(EPROTO, "NBD option %u: reply cut short", opt);
    return -1;
  }
  buf[rlen] = '\0';
  if (out)
    *out = buf;
  else
    free(buf);
  return type;
}

int
nbd_client_starttls(struct nbd_stream *s, struct nbd_tls *t)
{
  char *why = NULL;
  int64_t type = option(s, NBD_OPT_STARTTLS, NULL, 0, &why, NBD_MAX_STRING);
  if (type == -1)
    return -1;
  if (type != NBD_REP_ACK) {
    zl_error(EPROTO, "the storage host refused STARTTLS: %s", why && *why ? why : "?");
    free(why);
    return -1;
  }
  free(why);
  return nbd_stream_starttls_client(s, t);
}

json_t *
nbd_remote_call(const char *hostport, const char *psk_file, const json_t *req,
                int timeout_s)
{
  uint8_t greeting[18], flags[4];
  struct nbd_stream s = {.fd = -1};
  CLEANUP_FREE char *body = json_dumps(req, JSON_COMPACT);
  char *answer = NULL;
  json_t *result = NULL;
  struct nbd_tls *t = nbd_tls_client_new(psk_file);

  if (!t || !body)
    goto out;
  if ((s.fd = nbd_client_dial(hostport, greeting, timeout_s)) == -1)
    goto out;
  timeouts(s.fd, timeout_s);
  put32(flags, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
  if (nbd_write_full(&s, flags, sizeof flags) == -1 || nbd_client_starttls(&s, t) == -1)
    goto out;
  int64_t type =
      option(&s, NBD_OPT_ZL_CALL, body, (uint32_t)strlen(body), &answer, 64u << 20);
  if (type == -1)
    goto out;
  if (type != NBD_REP_ZL_RESULT) {
    zl_error(EACCES, "the storage host %s refused the call: %s", hostport,
             answer && *answer ? answer : "?");
    goto out;
  }
  json_error_t je;
  if (!(result = json_loads(answer, 0, &je)))
    zl_error(EPROTO, "the storage host %s: a reply that is not JSON", hostport);
  option(&s, NBD_OPT_ABORT, NULL, 0, NULL, NBD_MAX_STRING);
out:
  free(answer);
  nbd_stream_close(&s);
  nbd_tls_free(t);
  return result;
}
