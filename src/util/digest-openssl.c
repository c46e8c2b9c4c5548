/* digest-openssl.c: util/digest.h over OpenSSL's EVP (the static release
 * build, -Dtls=openssl). */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>

#include "util/digest.h"
#include "util/error.h"

#include "util/banned.h" /* last: after every declaration */

struct zl_sha256 {
  EVP_MD_CTX *ctx;
};

struct zl_sha256 *
zl_sha256_new(void)
{
  struct zl_sha256 *c = calloc(1, sizeof *c);

  if (!c) {
    zl_error(ENOMEM, "out of memory");
    return NULL;
  }
  if (!(c->ctx = EVP_MD_CTX_new()) ||
      EVP_DigestInit_ex(c->ctx, EVP_sha256(), NULL) != 1) {
    zl_error(EIO, "SHA-256: OpenSSL cannot start a digest");
    zl_sha256_free(c);
    return NULL;
  }
  return c;
}

int
zl_sha256_update(struct zl_sha256 *c, const void *buf, size_t len)
{
  if (EVP_DigestUpdate(c->ctx, buf, len) != 1) {
    zl_error(EIO, "SHA-256: OpenSSL digest update failed");
    return -1;
  }
  return 0;
}

int
zl_sha256_hex(struct zl_sha256 *c, char hex[ZL_SHA256_HEX])
{
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;

  if (EVP_DigestFinal_ex(c->ctx, d, &n) != 1 || n != 32) {
    zl_error(EIO, "SHA-256: OpenSSL digest final failed");
    return -1;
  }
  for (unsigned i = 0; i < n; i++)
    snprintf(hex + 2 * i, 3, "%02x", d[i]);
  return 0;
}

void
zl_sha256_free(struct zl_sha256 *c)
{
  if (!c)
    return;
  EVP_MD_CTX_free(c->ctx);
  free(c);
}
