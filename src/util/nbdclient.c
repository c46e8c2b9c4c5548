/* nbdclient.c: a small NBD client (see nbdclient.h; the protocol is in
 * ../shared/reference/nbd.md and NetBSD/qemu's proto.md). */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/error.h"
#include "util/nbdclient.h"

#include "util/banned.h" /* last: after every declaration */

#define NBDMAGIC      UINT64_C(0x4e42444d41474943)
#define IHAVEOPT      UINT64_C(0x49484156454f5054)
#define REPLYMAGIC    UINT64_C(0x3e889045565a9)
#define REQMAGIC      UINT32_C(0x25609513)
#define SIMPLEMAGIC   UINT32_C(0x67446698)
#define FLAG_FIXED    1u
#define FLAG_NOZEROES 2u
#define OPT_GO        7u
#define REP_ACK       1u
#define REP_INFO      3u
#define INFO_EXPORT   0u
#define TF_READ_ONLY  0x2u
#define TF_TRIM       0x20u
#define TF_ZEROES     0x40u
#define TF_MULTI_CONN 0x100u
#define CMD_READ      0u
#define CMD_WRITE     1u
#define CMD_DISC      2u
#define CMD_FLUSH     3u
#define CMD_TRIM      4u
#define CMD_ZEROES    6u
#define CMD_FLAG_FUA  1u
#define MAX_REQ       (UINT64_C(32) << 20) /* split larger requests */
#define IO_TIMEOUT_S  30 /* a remote that stops answering fails the call */

struct zl_nbdc {
  int fd;
  pthread_mutex_t lock; /* one request at a time */
  atomic_bool dead;
  uint64_t size, handle;
  uint16_t tflags;
};

static void
put32(uint8_t *b, uint32_t v)
{
  b[0] = (uint8_t)(v >> 24), b[1] = (uint8_t)(v >> 16), b[2] = (uint8_t)(v >> 8),
  b[3] = (uint8_t)v;
}
static void
put64(uint8_t *b, uint64_t v)
{
  put32(b, (uint32_t)(v >> 32));
  put32(b + 4, (uint32_t)v);
}
static uint32_t
get32(const uint8_t *b)
{
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}
static uint64_t
get64(const uint8_t *b)
{
  return (uint64_t)get32(b) << 32 | get32(b + 4);
}

static int
read_full(int fd, void *buf, size_t len)
{
  uint8_t *p = buf;
  while (len) {
    ssize_t n = read(fd, p, len);
    if (n == 0)
      errno = EPIPE;
    if (n <= 0) {
      if (n == -1 && errno == EINTR)
        continue;
      return -1;
    }
    p += n, len -= (size_t)n;
  }
  return 0;
}

static int
writev_full(int fd, struct iovec *iov, int n)
{
  while (n > 0) {
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL); /* a dead peer: EPIPE, no signal */
    if (w == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    while (n > 0 && (size_t)w >= iov->iov_len)
      w -= (ssize_t)iov->iov_len, iov++, n--;
    if (n > 0)
      iov->iov_base = (uint8_t *)iov->iov_base + w, iov->iov_len -= (size_t)w;
  }
  return 0;
}

/* %XX decoding of a URI component into out (size max); -1 if too long. */
static int
uri_decode(const char *s, size_t len, char *out, size_t max)
{
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (c == '%' && i + 2 < len) {
      char hex[3] = {s[i + 1], s[i + 2], 0};
      c = (char)strtol(hex, NULL, 16);
      i += 2;
    }
    if (o + 1 >= max)
      return -1;
    out[o++] = c;
  }
  out[o] = '\0';
  return 0;
}

static int
connect_unix(const char *path)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) {
    zl_error(ENAMETOOLONG, "socket path %s is too long", path);
    return -1;
  }
  memcpy(sa.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1 || connect(fd, (struct sockaddr *)&sa, sizeof sa) == -1) {
    zl_error_sys(errno, "connect to %s", path);
    if (fd >= 0)
      close(fd);
    return -1;
  }
  return fd;
}

static int
connect_tcp(const char *host, const char *port)
{
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *a;
  int fd = -1, r = getaddrinfo(host, port, &hints, &res), e = ECONNREFUSED;
  if (r != 0) {
    zl_error(EINVAL, "%s:%s: %s", host, port, gai_strerror(r));
    return -1;
  }
  for (a = res; a && fd == -1; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) == -1) {
      e = errno;
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd == -1) {
    zl_error_sys(e, "connect to %s:%s", host, port);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/* Parse uri, connect; the export name into name.  -1 with a message. */
static int
uri_connect(const char *uri, char *name, size_t namemax)
{
  static const char unix_prefix[] = "nbd+unix://", tcp_prefix[] = "nbd://";
  if (strncmp(uri, unix_prefix, strlen(unix_prefix)) == 0) {
    const char *p = uri + strlen(unix_prefix), *q = strchr(p, '?');
    const char *sock = q ? strstr(q, "socket=") : NULL;
    char path[108];
    if (*p != '/' || !sock) {
      zl_error(EINVAL, "%s: want nbd+unix:///<export>?socket=<path>", uri);
      return -1;
    }
    sock += strlen("socket=");
    if (uri_decode(p + 1, (size_t)(q - p - 1), name, namemax) == -1 ||
        uri_decode(sock, strcspn(sock, "&"), path, sizeof path) == -1) {
      zl_error(ENAMETOOLONG, "%s: export name or socket path too long", uri);
      return -1;
    }
    return connect_unix(path);
  }
  if (strncmp(uri, tcp_prefix, strlen(tcp_prefix)) == 0) {
    const char *p = uri + strlen(tcp_prefix), *slash = strchr(p, '/');
    char hostport[256], host[256], port[32] = "10809";
    size_t hl = slash ? (size_t)(slash - p) : strlen(p);
    if (hl == 0 || hl >= sizeof hostport) {
      zl_error(EINVAL, "%s: want nbd://<host>[:<port>]/<export>", uri);
      return -1;
    }
    snprintf(hostport, sizeof hostport, "%.*s", (int)hl, p);
    char *colon = strrchr(hostport, ':'), *br = strrchr(hostport, ']');
    if (colon && (!br || colon > br)) {
      snprintf(port, sizeof port, "%s", colon + 1);
      *colon = '\0';
    }
    if (hostport[0] == '[')
      hostport[1 + strcspn(hostport + 1, "]")] = '\0';
    memcpy(host, hostport + (hostport[0] == '['), sizeof host - 1);
    host[sizeof host - 1] = '\0';
    const char *e = slash ? slash + 1 : "";
    if (uri_decode(e, strcspn(e, "?"), name, namemax) == -1) {
      zl_error(ENAMETOOLONG, "%s: export name too long", uri);
      return -1;
    }
    return connect_tcp(host, port);
  }
  zl_error(EINVAL, "'%s' is not an NBD URI (nbd+unix:///E?socket=P or nbd://H:P/E)", uri);
  return -1;
}

/* The fixed newstyle handshake and NBD_OPT_GO for name. */
static int
negotiate(struct zl_nbdc *c, const char *name, const char *uri)
{
  uint8_t b[20];
  if (read_full(c->fd, b, 18) == -1) {
    zl_error_sys(errno, "%s: reading the greeting", uri);
    return -1;
  }
  uint16_t hflags = (uint16_t)(b[16] << 8 | b[17]);
  if (get64(b) != NBDMAGIC || get64(b + 8) != IHAVEOPT || !(hflags & FLAG_FIXED)) {
    zl_error(EPROTO, "%s: not a fixed newstyle NBD server", uri);
    return -1;
  }
  uint32_t cflags = FLAG_FIXED | (hflags & FLAG_NOZEROES);
  uint32_t namelen = (uint32_t)strlen(name);
  uint8_t opt[4 + 16 + 4], tail[2] = {0, 0};
  put32(opt, cflags);
  put64(opt + 4, IHAVEOPT);
  put32(opt + 12, OPT_GO);
  put32(opt + 16, 4 + namelen + 2);
  put32(opt + 20, namelen);
  struct iovec iov[3] = {{opt, sizeof opt}, {(void *)name, namelen}, {tail, 2}};
  if (writev_full(c->fd, iov, 3) == -1) {
    zl_error_sys(errno, "%s: sending NBD_OPT_GO", uri);
    return -1;
  }
  bool have_size = false;
  for (;;) {
    if (read_full(c->fd, b, 20) == -1) {
      zl_error_sys(errno, "%s: reading an option reply", uri);
      return -1;
    }
    uint32_t type = get32(b + 12), len = get32(b + 16);
    if (get64(b) != REPLYMAGIC || len > 65536) {
      zl_error(EPROTO, "%s: bad option reply", uri);
      return -1;
    }
    uint8_t data[65536];
    if (read_full(c->fd, data, len) == -1) {
      zl_error_sys(errno, "%s: reading an option reply", uri);
      return -1;
    }
    if (type & 0x80000000u) {
      zl_error(ENOENT, "%s: the server refused export '%s': %.*s", uri, name, (int)len,
               (const char *)data);
      return -1;
    }
    if (type == REP_INFO && len >= 12 && (data[0] << 8 | data[1]) == INFO_EXPORT) {
      c->size = get64(data + 2);
      c->tflags = (uint16_t)(data[10] << 8 | data[11]);
      have_size = true;
    } else if (type == REP_ACK) {
      break;
    }
  }
  if (!have_size) {
    zl_error(EPROTO, "%s: no NBD_INFO_EXPORT before the ACK", uri);
    return -1;
  }
  return 0;
}

struct zl_nbdc *
zl_nbdc_connect(const char *uri)
{
  char name[4097];
  struct zl_nbdc *c = calloc(1, sizeof *c);
  if (!c) {
    zl_error(ENOMEM, "out of memory");
    return NULL;
  }
  c->fd = uri_connect(uri, name, sizeof name);
  if (c->fd == -1) {
    free(c);
    return NULL;
  }
  struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
  setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int buf = 4 << 20;
  setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  pthread_mutex_init(&c->lock, NULL);
  if (negotiate(c, name, uri) == -1) {
    close(c->fd);
    pthread_mutex_destroy(&c->lock);
    free(c);
    return NULL;
  }
  if (c->tflags & TF_READ_ONLY) {
    zl_error(EROFS, "%s: the export is read-only", uri);
    zl_nbdc_close(c);
    return NULL;
  }
  return c;
}

/* One request and its simple reply, under the lock.  0 or -errno. */
static int
request(struct zl_nbdc *c, uint16_t type, uint16_t flags, uint64_t off, uint32_t len,
        const void *wbuf, void *rbuf)
{
  uint8_t h[28], r[16];
  int ret = 0;

  pthread_mutex_lock(&c->lock);
  if (atomic_load(&c->dead)) {
    pthread_mutex_unlock(&c->lock);
    return -ECANCELED;
  }
  uint64_t handle = ++c->handle;
  put32(h, REQMAGIC);
  h[4] = (uint8_t)(flags >> 8), h[5] = (uint8_t)flags;
  h[6] = (uint8_t)(type >> 8), h[7] = (uint8_t)type;
  put64(h + 8, handle);
  put64(h + 16, off);
  put32(h + 24, len);
  struct iovec iov[2] = {{h, sizeof h}, {(void *)wbuf, wbuf ? len : 0}};
  if (writev_full(c->fd, iov, wbuf ? 2 : 1) == -1 ||
      read_full(c->fd, r, sizeof r) == -1) {
    ret = errno == EAGAIN ? -ETIMEDOUT : -(errno ? errno : EIO);
  } else if (get32(r) != SIMPLEMAGIC || get64(r + 8) != handle) {
    ret = -EPROTO;
  } else if (get32(r + 4) != 0) {
    uint32_t e = get32(r + 4);
    ret = -(int)(e == 28 ? ENOSPC : e == 1 ? EPERM : e == 22 ? EINVAL : EIO);
  } else if (rbuf && read_full(c->fd, rbuf, len) == -1) {
    ret = -(errno ? errno : EIO);
  }
  if (ret != 0 && ret != -ENOSPC && ret != -EPERM && ret != -EINVAL && ret != -EIO)
    atomic_store(&c->dead, true); /* the stream is out of step: give up */
  pthread_mutex_unlock(&c->lock);
  return ret;
}

/* Split [off, off+len) into requests of at most MAX_REQ. */
static int
split(struct zl_nbdc *c, uint16_t type, uint16_t flags, const uint8_t *wbuf,
      uint8_t *rbuf, uint64_t len, uint64_t off)
{
  while (len) {
    uint32_t n = (uint32_t)(len < MAX_REQ ? len : MAX_REQ);
    int r = request(c, type, flags, off, n, wbuf, rbuf);
    if (r != 0)
      return r;
    off += n, len -= n;
    if (wbuf)
      wbuf += n;
    if (rbuf)
      rbuf += n;
  }
  return 0;
}

int
zl_nbdc_pread(struct zl_nbdc *c, void *buf, uint64_t len, uint64_t off)
{
  return split(c, CMD_READ, 0, NULL, buf, len, off);
}

int
zl_nbdc_pwrite(struct zl_nbdc *c, const void *buf, uint64_t len, uint64_t off, bool fua)
{
  return split(c, CMD_WRITE, fua ? CMD_FLAG_FUA : 0, buf, NULL, len, off);
}

int
zl_nbdc_zero(struct zl_nbdc *c, uint64_t len, uint64_t off, bool fua)
{
  if (c->tflags & TF_ZEROES)
    return split(c, CMD_ZEROES, fua ? CMD_FLAG_FUA : 0, NULL, NULL, len, off);
  uint8_t *z = calloc(1, len < MAX_REQ ? len : MAX_REQ);
  if (!z)
    return -ENOMEM;
  int r = 0;
  while (r == 0 && len) {
    uint64_t n = len < MAX_REQ ? len : MAX_REQ;
    r = zl_nbdc_pwrite(c, z, n, off, fua);
    off += n, len -= n;
  }
  free(z);
  return r;
}

int
zl_nbdc_trim(struct zl_nbdc *c, uint64_t len, uint64_t off, bool fua)
{
  if (!(c->tflags & TF_TRIM))
    return 0; /* a hint */
  return split(c, CMD_TRIM, fua ? CMD_FLAG_FUA : 0, NULL, NULL, len, off);
}

int
zl_nbdc_flush(struct zl_nbdc *c)
{
  return request(c, CMD_FLUSH, 0, 0, 0, NULL, NULL);
}

uint64_t
zl_nbdc_size(const struct zl_nbdc *c)
{
  return c->size;
}

bool
zl_nbdc_can_zero(const struct zl_nbdc *c)
{
  return c->tflags & TF_ZEROES;
}

bool
zl_nbdc_can_trim(const struct zl_nbdc *c)
{
  return c->tflags & TF_TRIM;
}

bool
zl_nbdc_can_multi_conn(const struct zl_nbdc *c)
{
  return c->tflags & TF_MULTI_CONN;
}

void
zl_nbdc_shutdown(struct zl_nbdc *c)
{
  atomic_store(&c->dead, true);
  shutdown(c->fd, SHUT_RDWR);
}

void
zl_nbdc_close(struct zl_nbdc *c)
{
  if (!c)
    return;
  if (!atomic_load(&c->dead)) {
    uint8_t h[28] = {0};
    put32(h, REQMAGIC);
    h[7] = CMD_DISC;
    if (write(c->fd, h, sizeof h) != (ssize_t)sizeof h) { /* going anyway */
    }
  }
  close(c->fd);
  pthread_mutex_destroy(&c->lock);
  free(c);
}
