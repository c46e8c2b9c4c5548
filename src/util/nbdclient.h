/* nbdclient.h: a small NBD client, for the mirror layer's remote
 * (core/io/mirror.c).  Fixed newstyle handshake, NBD_OPT_GO, simple
 * replies; one request in flight per connection (a mutex serialises the
 * callers: use several connections for parallelism, as multi-conn allows).
 *
 * URIs: nbd+unix:///<export>?socket=<path> (what xapi's nbdproxy gives)
 * and nbd://<host>[:<port>]/<export> (plain TCP, no TLS).
 */
#ifndef ZL_NBDCLIENT_H
#define ZL_NBDCLIENT_H

#include <stdbool.h>
#include <stdint.h>

struct zl_nbdc;

/* Connect to uri and negotiate; NULL with an error message on failure. */
struct zl_nbdc *zl_nbdc_connect(const char *uri);
/* Close (no NBD_CMD_DISC when the peer is known dead).  NULL: nothing. */
void zl_nbdc_close(struct zl_nbdc *c);
/* The export's size and transmission flags, from NBD_INFO_EXPORT. */
uint64_t zl_nbdc_size(const struct zl_nbdc *c);
bool zl_nbdc_can_zero(const struct zl_nbdc *c);
bool zl_nbdc_can_trim(const struct zl_nbdc *c);
/* NBD_FLAG_CAN_MULTI_CONN: a FLUSH covers writes of every connection. */
bool zl_nbdc_can_multi_conn(const struct zl_nbdc *c);

/* The commands: 0, or -errno (the server's error, or -EIO / -EPIPE when
 * the connection failed: then every later call fails too).  fua: the
 * request is durable when it returns. */
int zl_nbdc_pread(struct zl_nbdc *c, void *buf, uint64_t len, uint64_t off);
int zl_nbdc_pwrite(struct zl_nbdc *c, const void *buf, uint64_t len, uint64_t off,
                   bool fua);
int zl_nbdc_zero(struct zl_nbdc *c, uint64_t len, uint64_t off, bool fua);
int zl_nbdc_trim(struct zl_nbdc *c, uint64_t len, uint64_t off, bool fua);
int zl_nbdc_flush(struct zl_nbdc *c);
/* Make every later call fail with -ECANCELED (and unblock one in flight):
 * safe from another thread. */
void zl_nbdc_shutdown(struct zl_nbdc *c);

#endif
