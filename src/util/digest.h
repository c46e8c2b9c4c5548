/* digest.h: SHA-256 of a byte stream, from the TLS library the build links
 * (digest-gnutls.c: the distro build; digest-openssl.c: the static
 * release build, -Dtls=openssl; meson picks one, as for nbd/tls-*.c).
 * These two files and nbd/tls-*.c are the only ones that include a TLS
 * library. */
#ifndef ZL_DIGEST_H
#define ZL_DIGEST_H

#include <stddef.h>

#define ZL_SHA256_HEX 65 /* 64 hex digits and a NUL */

struct zl_sha256; /* opaque */

/* A new context; NULL (error set) when the library cannot give one. */
struct zl_sha256 *zl_sha256_new(void);
/* Feed len bytes.  -1 (error set) on a library failure. */
int zl_sha256_update(struct zl_sha256 *c, const void *buf, size_t len);
/* The digest so far as lower-case hex into hex; the context stays usable
 * only for zl_sha256_free.  -1 (error set) on failure. */
int zl_sha256_hex(struct zl_sha256 *c, char hex[ZL_SHA256_HEX]);
void zl_sha256_free(struct zl_sha256 *c); /* NULL is fine */

#endif
