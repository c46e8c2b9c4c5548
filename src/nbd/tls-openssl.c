/* tls-openssl.c: TLS through OpenSSL (PSK and X.509), for the
 * self-contained release build (GnuTLS does not link statically on Debian:
 * no static p11-kit).  Same behaviour as tls-gnutls.c, seen from a client:
 *
 *   PSK     the psktool file ("identity:hex key" lines); TLS 1.3 external
 *           PSK with (EC)DHE, as GnuTLS clients (qemu, nbdkit, libnbd) offer
 *           it (SHA-256 binder, so a TLS_AES_128_GCM_SHA256 session), and
 *           TLS 1.2 PSK suites for older clients
 *   X.509   <dir>/server-cert.pem and server-key.pem; no client certificate
 *           is asked for
 *   ciphers with AES instructions AES-GCM first, server's order (see
 *           tls-gnutls.c for why); TLS 1.2 and 1.3 only
 *
 * A batch of replies is copied into one buffer and sent with one SSL_write,
 * so it leaves in full-size records (GnuTLS's cork). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include "nbd/nbd.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

#define MAX_PSKS    64
#define MAX_PSK_KEY 64 /* bytes */
#define SEND_BUF    (256u << 10)

struct psk {
  char identity[128];
  unsigned char key[MAX_PSK_KEY];
  size_t len;
};

struct nbd_tls {
  atomic_int refs; /* sessions hold them across a reload */
  SSL_CTX *ctx;
  bool configured;
  struct psk psks[MAX_PSKS];
  int npsks;
};

static int ex_index = -1; /* SSL ex_data slot: the session's struct nbd_tls */
static int ex_peer = -1;  /* and the identity its PSK was found for */

static const char *
ssl_error(void)
{
  static _Thread_local char buf[256];
  unsigned long e = ERR_get_error();
  if (!e)
    return "unknown error";
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

static int
hexval(int c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static int parse_psks(struct nbd_tls *t, const char *file, FILE *f);

/* psktool's file: "identity:hexkey" per line. */
static int
load_psks(struct nbd_tls *t, const char *file)
{
  FILE *f = fopen(file, "re");
  int r = -1;

  if (!f) {
    zl_error_sys(errno, "TLS PSK file %s", file);
    return -1;
  }
  r = parse_psks(t, file, f);
  fclose(f);
  return r;
}

static int
parse_psks(struct nbd_tls *t, const char *file, FILE *f)
{
  char line[1024];

  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = '\0';
    char *colon = strchr(line, ':');
    if (!line[0] || line[0] == '#')
      continue;
    if (!colon || colon == line || (size_t)(colon - line) >= sizeof t->psks[0].identity ||
        t->npsks == MAX_PSKS) {
      zl_error(EINVAL, "TLS PSK file %s: a line is not 'identity:hex key'", file);
      return -1;
    }
    struct psk *p = &t->psks[t->npsks];
    const char *hex = colon + 1;
    size_t n = strlen(hex);
    if (n == 0 || n % 2 || n / 2 > MAX_PSK_KEY) {
      zl_error(EINVAL, "TLS PSK file %s: a key is not 1 to %d bytes of hex", file,
               MAX_PSK_KEY);
      return -1;
    }
    for (size_t i = 0; i < n / 2; i++) {
      int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
      if (hi < 0 || lo < 0) {
        zl_error(EINVAL, "TLS PSK file %s: a key is not hex", file);
        return -1;
      }
      p->key[i] = (unsigned char)(hi << 4 | lo);
    }
    p->len = n / 2;
    snprintf(p->identity, sizeof p->identity, "%.*s", (int)(colon - line), line);
    t->npsks++;
  }
  if (t->npsks == 0) {
    zl_error(EINVAL, "TLS PSK file %s: no keys", file);
    return -1;
  }
  return 0;
}

static const struct psk *
find_psk(SSL *ssl, const char *identity, size_t len)
{
  const struct nbd_tls *t = SSL_get_ex_data(ssl, ex_index);
  for (int i = 0; t && i < t->npsks; i++) {
    if (strlen(t->psks[i].identity) == len &&
        memcmp(t->psks[i].identity, identity, len) == 0)
      return &t->psks[i];
  }
  return NULL;
}

/* TLS 1.3: the external PSK as a session of SHA-256's suite. */
static int
psk_find_session(SSL *ssl, const unsigned char *identity, size_t len, SSL_SESSION **out)
{
  static const unsigned char aes128gcm[] = {0x13, 0x01};
  const struct psk *p = find_psk(ssl, (const char *)identity, len);
  const SSL_CIPHER *c = SSL_CIPHER_find(ssl, aes128gcm);
  SSL_SESSION *s;

  *out = NULL;
  if (!p)
    return 1; /* unknown identity: no PSK, the handshake goes on without */
  SSL_set_ex_data(ssl, ex_peer, (void *)p->identity);
  if (!c || !(s = SSL_SESSION_new()))
    return 0;
  if (!SSL_SESSION_set1_master_key(s, p->key, p->len) || !SSL_SESSION_set_cipher(s, c) ||
      !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION)) {
    SSL_SESSION_free(s);
    return 0;
  }
  *out = s;
  return 1;
}

/* TLS 1.2 PSK suites. */
static unsigned int
psk_server(SSL *ssl, const char *identity, unsigned char *psk, unsigned int max)
{
  const struct psk *p = identity ? find_psk(ssl, identity, strlen(identity)) : NULL;
  if (!p || p->len > max)
    return 0;
  SSL_set_ex_data(ssl, ex_peer, (void *)p->identity);
  memcpy(psk, p->key, p->len);
  return (unsigned int)p->len;
}

static bool
cpu_has_aes(void)
{
#if defined(__x86_64__) || defined(__i386__)
  return __builtin_cpu_supports("aes");
#else
  return false;
#endif
}

struct nbd_tls *
nbd_tls_new(const struct nbd_config *cfg)
{
  struct nbd_tls *t = calloc(1, sizeof *t);

  if (!t) {
    zl_error(ENOMEM, "out of memory");
    return NULL;
  }
  atomic_init(&t->refs, 1);
  if (!cfg->tls_psk && !cfg->tls_certs)
    return t;
  if (ex_index == -1)
    ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
  if (ex_peer == -1)
    ex_peer = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
  if (!(t->ctx = SSL_CTX_new(TLS_server_method()))) {
    zl_error(ENOMEM, "TLS: %s", ssl_error());
    goto fail;
  }
  SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(t->ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION |
                                  (cpu_has_aes() ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
  SSL_CTX_set_num_tickets(t->ctx, 0);
  if (cpu_has_aes() &&
      !SSL_CTX_set_ciphersuites(t->ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                                        "TLS_CHACHA20_POLY1305_SHA256")) {
    zl_error(EINVAL, "TLS ciphersuites: %s", ssl_error());
    goto fail;
  }
  if (cfg->tls_psk) {
    if (load_psks(t, cfg->tls_psk) == -1)
      goto fail;
    SSL_CTX_set_psk_find_session_callback(t->ctx, psk_find_session);
    SSL_CTX_set_psk_server_callback(t->ctx, psk_server);
    if (!SSL_CTX_set_cipher_list(t->ctx, "HIGH:PSK:!aNULL:!eNULL:!MD5:!RC4:@STRENGTH")) {
      zl_error(EINVAL, "TLS ciphers: %s", ssl_error());
      goto fail;
    }
  }
  if (cfg->tls_certs) {
    char cert[PATH_MAX + 32], key[PATH_MAX + 32];
    snprintf(cert, sizeof cert, "%s/server-cert.pem", cfg->tls_certs);
    snprintf(key, sizeof key, "%s/server-key.pem", cfg->tls_certs);
    if (SSL_CTX_use_certificate_chain_file(t->ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(t->ctx) != 1) {
      zl_error(EINVAL, "TLS certificates in %s: %s", cfg->tls_certs, ssl_error());
      goto fail;
    }
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_NONE, NULL);
  }
  t->configured = true;
  return t;
fail:
  nbd_tls_free(t);
  return NULL;
}

struct nbd_tls *
nbd_tls_ref(struct nbd_tls *t)
{
  if (t)
    atomic_fetch_add(&t->refs, 1);
  return t;
}

void
nbd_tls_free(struct nbd_tls *t)
{
  if (!t || atomic_fetch_sub(&t->refs, 1) > 1)
    return;
  SSL_CTX_free(t->ctx);
  explicit_bzero(t->psks, sizeof t->psks);
  free(t);
}

bool
nbd_tls_configured(const struct nbd_tls *t)
{
  return t && t->configured;
}

/* A session: the SSL object and its send buffer. */
struct session {
  SSL *ssl;
  struct nbd_tls *creds; /* a reference: the PSK callbacks read it */
  unsigned char *buf;    /* SEND_BUF bytes, made at the first send */
};

static void
handshake_timeout(int fd, int seconds)
{
  struct timeval tv = {.tv_sec = seconds};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

int
nbd_stream_starttls(struct nbd_stream *s, struct nbd_tls *t)
{
  struct session *ss = calloc(1, sizeof *ss);

  if (!ss || !(ss->ssl = SSL_new(t->ctx))) {
    free(ss);
    zl_error(ENOMEM, "TLS: out of memory");
    return -1;
  }
  ss->creds = nbd_tls_ref(t);
  SSL_set_ex_data(ss->ssl, ex_index, t);
  SSL_set_fd(ss->ssl, s->fd);
  handshake_timeout(s->fd, 10);
  int r = SSL_accept(ss->ssl);
  handshake_timeout(s->fd, 0);
  if (r != 1) {
    zl_error(EPROTO, "TLS handshake: %s", ssl_error());
    SSL_free(ss->ssl);
    nbd_tls_free(ss->creds);
    free(ss);
    return -1;
  }
  s->session = ss;
  zl_debug("TLS session: %s %s", SSL_get_version(ss->ssl),
           SSL_CIPHER_get_name(SSL_get_current_cipher(ss->ssl)));
  return 0;
}

ssize_t
nbd_tls_recv(void *session, void *buf, size_t max, bool again)
{
  struct session *ss = session;
  size_t n = 0;

  for (;;) {
    if (SSL_read_ex(ss->ssl, buf, max, &n) == 1)
      return (ssize_t)n;
    int e = SSL_get_error(ss->ssl, 0);
    if (e == SSL_ERROR_WANT_READ && again && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      ERR_clear_error();
      errno = EAGAIN;
      return -1;
    }
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
      continue;
    ERR_clear_error();
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0))
      return 0;
    errno = EPROTO;
    return -1;
  }
}

static int
send_all(struct session *ss, const void *buf, size_t len)
{
  const unsigned char *p = buf;
  while (len > 0) {
    size_t n = 0;
    if (SSL_write_ex(ss->ssl, p, len, &n) != 1) {
      int e = SSL_get_error(ss->ssl, 0);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        continue;
      ERR_clear_error();
      errno = EPIPE;
      return -1;
    }
    p += n;
    len -= n;
  }
  return 0;
}

int
nbd_tls_sendv(void *session, const struct iovec *iov, int n)
{
  struct session *ss = session;
  size_t used = 0;

  if (!ss->buf && !(ss->buf = malloc(SEND_BUF))) {
    errno = ENOMEM;
    return -1;
  }
  for (int i = 0; i < n; i++) {
    const unsigned char *p = iov[i].iov_base;
    size_t len = iov[i].iov_len;
    if (used + len > SEND_BUF) { /* flush what is gathered; big data goes as is */
      if (used && send_all(ss, ss->buf, used) == -1)
        return -1;
      used = 0;
      if (len > SEND_BUF) {
        if (send_all(ss, p, len) == -1)
          return -1;
        continue;
      }
    }
    memcpy(ss->buf + used, p, len);
    used += len;
  }
  return used ? send_all(ss, ss->buf, used) : 0;
}

void
nbd_tls_end(void *session)
{
  struct session *ss = session;
  SSL_shutdown(ss->ssl);
  SSL_free(ss->ssl);
  nbd_tls_free(ss->creds);
  free(ss->buf);
  free(ss);
  OPENSSL_thread_stop(); /* the connection's thread ends with its session */
}

/* --- the client side (relay.c, client.c) ---------------------------------- */

/* TLS 1.3: this host's PSK as a session of SHA-256's suite. */
static int
psk_use_session(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *idlen,
                SSL_SESSION **out)
{
  static const unsigned char aes128gcm[] = {0x13, 0x01};
  struct nbd_tls *t = SSL_get_ex_data(ssl, ex_index);
  const SSL_CIPHER *c = SSL_CIPHER_find(ssl, aes128gcm);
  SSL_SESSION *s;

  *out = NULL;
  if (!t || t->npsks == 0 || (md && md != EVP_sha256()))
    return 1;
  if (!c || !(s = SSL_SESSION_new()))
    return 0;
  if (!SSL_SESSION_set1_master_key(s, t->psks[0].key, t->psks[0].len) ||
      !SSL_SESSION_set_cipher(s, c) ||
      !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION)) {
    SSL_SESSION_free(s);
    return 0;
  }
  *id = (const unsigned char *)t->psks[0].identity;
  *idlen = strlen(t->psks[0].identity);
  *out = s;
  return 1;
}

struct nbd_tls *
nbd_tls_client_new(const char *psk_file)
{
  struct nbd_tls *t = calloc(1, sizeof *t);

  if (!t) {
    zl_error(ENOMEM, "out of memory");
    return NULL;
  }
  atomic_init(&t->refs, 1);
  if (ex_index == -1)
    ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
  if (ex_peer == -1)
    ex_peer = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
  if (load_psks(t, psk_file) == -1)
    goto fail;
  if (!(t->ctx = SSL_CTX_new(TLS_client_method()))) {
    zl_error(ENOMEM, "TLS: %s", ssl_error());
    goto fail;
  }
  SSL_CTX_set_min_proto_version(t->ctx, TLS1_3_VERSION);
  SSL_CTX_set_psk_use_session_callback(t->ctx, psk_use_session);
  t->configured = true;
  return t;
fail:
  nbd_tls_free(t);
  return NULL;
}

int
nbd_stream_starttls_client(struct nbd_stream *s, struct nbd_tls *t)
{
  struct session *ss = calloc(1, sizeof *ss);

  if (!ss || !(ss->ssl = SSL_new(t->ctx))) {
    free(ss);
    zl_error(ENOMEM, "TLS: out of memory");
    return -1;
  }
  ss->creds = nbd_tls_ref(t);
  SSL_set_ex_data(ss->ssl, ex_index, t);
  SSL_set_fd(ss->ssl, s->fd);
  handshake_timeout(s->fd, 10);
  int r = SSL_connect(ss->ssl);
  handshake_timeout(s->fd, 0);
  if (r != 1) {
    zl_error(EPROTO, "TLS handshake: %s", ssl_error());
    SSL_free(ss->ssl);
    nbd_tls_free(ss->creds);
    free(ss);
    return -1;
  }
  s->session = ss;
  return 0;
}

const char *
nbd_tls_peer(void *session)
{
  struct session *ss = session;
  return ss ? SSL_get_ex_data(ss->ssl, ex_peer) : NULL;
}

bool
nbd_tls_pending(void *session)
{
  struct session *ss = session;
  return ss && SSL_pending(ss->ssl) > 0;
}
