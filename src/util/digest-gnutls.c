/* digest-gnutls.c: util/digest.h over GnuTLS (the distro build). */
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>

#include "util/digest.h"
#include "util/error.h"

#include "util/banned.h" /* last: after every declaration */

struct zl_sha256 {
  gnutls_hash_hd_t h;
};

struct zl_sha256 *
zl_sha256_new(void)
{
  struct zl_sha256 *c = calloc(1, sizeof *c);
  int r;

  if (!c) {
    zl_error(ENOMEM, "out of memory");
    return NULL;
  }
  if ((r = gnutls_hash_init(&c->h, GNUTLS_DIG_SHA256)) < 0) {
    zl_error(EIO, "SHA-256: %s", gnutls_strerror(r));
    free(c);
    return NULL;
  }
  return c;
}

int
zl_sha256_update(struct zl_sha256 *c, const void *buf, size_t len)
{
  int r = gnutls_hash(c->h, buf, len);
  if (r < 0) {
    zl_error(EIO, "SHA-256: %s", gnutls_strerror(r));
    return -1;
  }
  return 0;
}

int
zl_sha256_hex(struct zl_sha256 *c, char hex[ZL_SHA256_HEX])
{
  unsigned char d[32];

  gnutls_hash_output(c->h, d);
  for (size_t i = 0; i < sizeof d; i++)
    snprintf(hex + 2 * i, 3, "%02x", d[i]);
  return 0;
}

void
zl_sha256_free(struct zl_sha256 *c)
{
  if (!c)
    return;
  gnutls_hash_deinit(c->h, NULL);
  free(c);
}
