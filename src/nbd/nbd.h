/* nbd.h: the NBD server (`zfs-live serve`).  Private header, grouped by
 * source file.
 *
 * Threads: the main thread accepts connections, handles signals and holds
 * the connections waiting for their clients (conns.c); a connection whose
 * client is talking has one thread that negotiates (handshake.c) and then
 * runs the transmission loop (transmission.c): it reads every request that has
 * arrived, runs their I/O as one batch down the volume's write path
 * (core/io/io.h: tracking, then the storage through the connection's
 * io_uring or pread/pwrite), and sends all replies with one write.
 * Connections to the same export share one file descriptor and one write
 * path (export.c), so the page cache, FLUSH and FUA are shared: multi-conn
 * is safe.
 */
#ifndef ZL_NBD_H
#define ZL_NBD_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "core/core.h"
#include "core/io/io.h"
#include "nbd/protocol.h"

enum tls_mode { TLS_OFF, TLS_ON, TLS_REQUIRE };

struct nbd_config {
  const char *socket_path;  /* Unix socket, NULL: none */
  const char *control_path; /* control channel (control.c), NULL: none */
  /* The caller's hooks (NULL: none): once serving (after daemonising, so
   * they may start threads), and when stopping, before the connections
   * finish.  cli/serve.c starts the control channel with them. */
  int (*started)(const struct nbd_config *cfg);
  void (*stopping)(const struct nbd_config *cfg);
  const char *tcp; /* "host:port" or ":port", NULL: none */
  enum tls_mode tls_unix, tls_tcp;
  const char *tls_psk;   /* psktool file */
  const char *tls_certs; /* dir with server-cert.pem, server-key.pem [ca-cert.pem] */
  bool daemon;
  const char *pidfile;
  int threads_io_depth; /* io_uring entries per connection */
  bool no_uring;        /* testing: the pread/pwrite engine */
  /* Connection limits (conns.c).  A client has handshake_ms from its
   * connect to finish negotiating (TLS included); an established one idle
   * for idle_ms (0: never) is closed.  At most max_unauth connections are
   * negotiating over TCP at once (the Unix socket is 0600: its clients
   * are local and root), max_unauth_source of them from one address
   * (<= 0: no limit; at most half the file descriptors); more are closed
   * on arrival.  handshake_ms, idle_ms, linger_ms <= 0: none. */
  int handshake_ms, idle_ms;
  int max_unauth, max_unauth_source;
  int linger_ms; /* an idle connection keeps its thread this long */
};

/* tls-gnutls.c or tls-openssl.c (-Dtls=): credentials and sessions */
struct nbd_tls; /* credentials, shared by reference count */
struct nbd_tls *nbd_tls_new(const struct nbd_config *cfg); /* one reference */
struct nbd_tls *nbd_tls_ref(struct nbd_tls *t);
void nbd_tls_free(struct nbd_tls *t); /* drops one reference */
bool nbd_tls_configured(const struct nbd_tls *t);

/* A connection's byte stream: plain socket or TLS session. */
struct nbd_stream {
  int fd;
  void *session; /* the TLS library's session when TLS is up */
  bool corked;
  /* A receive timeout (SO_RCVTIMEO) ends a read with EAGAIN instead of
   * being retried: the transmission loop parks an idle connection. */
  bool idle_return;
};
/* The client side (client.c, relay.c): credentials from a psktool file
 * whose first line is this host's "identity:hex key" (the identity: its
 * host UUID); TLS 1.2+ with that PSK on a stream whose STARTTLS was acked. */
struct nbd_tls *nbd_tls_client_new(const char *psk_file);
int nbd_stream_starttls_client(struct nbd_stream *s, struct nbd_tls *t);
/* Does the session hold decrypted bytes not read yet (poll cannot see)? */
bool nbd_tls_pending(void *session);
/* The PSK identity the peer authenticated with, or NULL (no TLS, X.509). */
const char *nbd_tls_peer(void *session);
/* Start TLS on the stream (after NBD_OPT_STARTTLS was acked). */
int nbd_stream_starttls(struct nbd_stream *s, struct nbd_tls *t);
/* A session's records: what was read (>0, 0 at EOF, -1 with errno;
 * again: a receive timeout is -1 with EAGAIN, else retried); all
 * of iov sent in as few records as the library allows (0, -1 with errno);
 * close_notify and free. */
ssize_t nbd_tls_recv(void *session, void *buf, size_t max, bool again);
int nbd_tls_sendv(void *session, const struct iovec *iov, int n);
void nbd_tls_end(void *session);
/* Read exactly len bytes (0) or fail (-1: EOF, error). */
int nbd_read_full(struct nbd_stream *s, void *buf, size_t len);
/* Read what is available, at least 1 byte: >0, 0 at EOF, -1 on error. */
ssize_t nbd_read_some(struct nbd_stream *s, void *buf, size_t max);
/* Write everything (several buffers); -1 on error. */
int nbd_writev_full(struct nbd_stream *s, struct iovec *iov, int n);
int nbd_write_full(struct nbd_stream *s, const void *buf, size_t len);
void nbd_stream_close(struct nbd_stream *s);

/* export.c */
struct nbd_export {
  char *name;
  int fd;
  dev_t dev, rdev; /* what fd holds: shared only while the volume's data is it */
  ino_t ino;
  bool readonly;
  bool blockdev;
  atomic_int refs;
  char *sr_type, *sr_key, *vol_key;
  struct zl_io *io; /* the volume's write path over fd */
};
/* Look an attached export up by name, open its data afresh and take a
 * reference; *size (if not NULL) is the volume's size now.  NULL (with an
 * error message) if no attached volume has that name or its data cannot be
 * opened. */
struct nbd_export *nbd_export_get(const char *name, int64_t *size);
void nbd_export_put(struct nbd_export *e);
/* The lease: fence this host's writers of any open export that another
 * host has taken over since (zl_dp_recheck).  The server calls it once a
 * second. */
void nbd_export_recheck(void);
/* Names of the attached exports (NULL-terminated, malloc()ed). */
char **nbd_export_list(void);
uint16_t nbd_export_tflags(const struct nbd_export *e, bool structured);

/* handshake.c */
struct nbd_conn {
  struct nbd_stream st;
  bool tcp;
  enum tls_mode tls;
  struct nbd_tls *creds;
  bool structured;
  bool no_zeroes;
  uint32_t meta_base_allocation; /* context id, 0: not selected */
  uint32_t meta_dirty;           /* qemu:dirty-bitmap:<dirty_from>, 0: not */
  char *dirty_from;
  struct zl_bitmap dirty; /* loaded at GO */
  struct nbd_export *exp;
  int64_t size; /* of the export when it was opened (GO, EXPORT_NAME): fixed */
  const struct nbd_config *cfg;
  const atomic_bool *stopping; /* the server is shutting down */
  const char *import;          /* an import's export: served whatever the client asks */
  bool greeted;                /* the greeting was sent already (conns.c) */
  int linger_ms;               /* park after this long without a request (0: never) */
  char *recv_req;              /* NBD_OPT_ZL_RECV's request (replicate.c) */
  uint32_t recv_len;
};
/* The server's 18-byte greeting. */
void nbd_greeting(uint8_t out[18]);
/* Negotiate; 0: transmission may start (c->exp set), 1: a replication
 * arrives (c->recv_req set: nbd_recv_serve), -1: close. */
int nbd_handshake(struct nbd_conn *c);
/* An option reply (header, then len bytes of data). */
int nbd_option_reply(struct nbd_conn *c, uint32_t opt, uint32_t type, const void *data,
                     uint32_t len);

/* replicate.c: replication between hosts (protocol in the file).  The
 * server side: serve the replication c->recv_req asks for (peer: the
 * sending host's PSK identity); the connection ends after. */
void nbd_recv_serve(struct nbd_conn *c, const char *peer);
/* The sending side: connect to the destination's server with this host's
 * PSK, send the request; *plan is the destination's answer (new
 * reference).  Then DATA and ZERO records, and nbd_repl_end (the result,
 * new reference, or NULL with the error) or nbd_repl_abort; then close. */
struct nbd_repl;
struct nbd_repl *nbd_repl_open(const char *hostport, const char *psk_file,
                               const json_t *req, json_t **plan);
int nbd_repl_data(struct nbd_repl *r, const void *buf, size_t len, uint64_t off);
int nbd_repl_zero(struct nbd_repl *r, uint64_t off, uint64_t len);
json_t *nbd_repl_end(struct nbd_repl *r);
void nbd_repl_abort(struct nbd_repl *r); /* keeps the error set */
void nbd_repl_close(struct nbd_repl *r);

/* transmission.c: serve requests until the client leaves (false) or sends
 * nothing for c->linger_ms (true: the connection is idle, its state is in
 * c; call again when it is readable). */
bool nbd_transmission(struct nbd_conn *c);

/* client.c: this host as a TLS client of a storage host's server */
/* Connect to HOST:PORT and read the server's greeting (18 bytes): the
 * socket, or -1. */
int nbd_client_dial(const char *hostport, uint8_t greeting[18], int timeout_s);
/* NBD_OPT_STARTTLS (client flags already sent), then the handshake. */
int nbd_client_starttls(struct nbd_stream *s, struct nbd_tls *t);
/* Run a plugin method on the storage host (NBD_OPT_ZL_CALL): the reply
 * {"status", "stdout", "stderr"}, or NULL with the error set. */
json_t *nbd_remote_call(const char *hostport, const char *psk_file, const json_t *req,
                        int timeout_s);

/* call.c: the server side of NBD_OPT_ZL_CALL for an authenticated peer:
 * the reply's JSON text (malloc()ed), or NULL with the error set. */
char *nbd_call_run(const char *peer, const char *body, size_t len);

/* relay.c: `zfs-live relay`: a local unix socket whose connections are
 * carried to the storage host's server over TLS.  Exit status. */
int nbd_relay_main(const char *listen_path, const char *hostport, const char *psk_file,
                   const char *pidfile);

/* conns.c: the connections.  One thread (nbd_serve's) runs an epoll loop:
 * it accepts, sends the greeting, enforces the limits and deadlines and
 * holds every connection that is waiting for its client (before the first
 * option, or idle between requests) at the cost of a file descriptor and a
 * few hundred bytes.  A connection whose client has sent something gets a
 * thread of its own, which negotiates and serves requests until the client
 * goes quiet for linger_ms, then hands the connection back. */
struct nbd_listener {
  int fd;
  bool tcp;
};
/* Serve until a signal on sfd makes on_signal return true; then stop
 * accepting (new requests are refused with ESHUTDOWN from then on). */
int nbd_conns_run(const struct nbd_config *cfg, const struct nbd_listener *ls, int nl,
                  int sfd, bool (*on_signal)(const struct nbd_config *, int signo));
/* After nbd_conns_run: close the idle connections, let the others finish
 * the round in flight, wait for them (30 s at most). */
void nbd_conns_stop(void);
/* Carry a connected fd (owned); import: its only export (or NULL). */
int nbd_conns_add(int fd, bool tcp, const char *import);

/* The TLS mode of a connection: TCP demands TLS unless it was turned off;
 * a Unix socket offers or demands it as configured. */
enum tls_mode nbd_tls_mode_of(const struct nbd_config *cfg, bool tcp);
/* The current TLS credentials: a connection takes a reference when it
 * starts; set (a reload) drops the server's reference to the old ones,
 * which go when their last session ends. */
struct nbd_tls *nbd_creds_get(void);
void nbd_creds_set(struct nbd_tls *t);
void nbd_tune_socket(int fd, bool tcp);

/* server.c */
int nbd_serve(const struct nbd_config *cfg);
/* Listen on a Unix socket (0600), replacing a stale one, never a live one:
 * the fd, or -1. */
int nbd_listen_unix(const char *path);
/* Detach from the caller (fork, setsid, stdio on /dev/null, log as tag,
 * pidfile): the caller's process exits once the child writes 1 to
 * *ready_fd.  0 in the child, -1 on error. */
int nbd_daemonize(const char *pidfile, const char *tag, int *ready_fd);
/* Serve NBD on the connected fd (owned from here on) for export only (an
 * import, control.c), in a thread of its own; -1 with a message. */
int nbd_serve_fd(int fd, const char *export);

/* control.c: the control channel at cfg->control_path (a started hook:
 * after daemonising, it starts threads); stop (a stopping hook): close
 * it, free the mirrors, close the imports. */
int nbd_control_start(const struct nbd_config *cfg);
void nbd_control_stop(const struct nbd_config *cfg);
/* errno -> NBD error */
uint32_t nbd_errno(int e);

/* bitmap.c: qemu:dirty-bitmap:<snapshot> */
char **nbd_bitmap_names(const struct nbd_export *e); /* NULL-terminated */
/* The blocks changed from snapshot from to the export (util/bitmap.h). */
int nbd_bitmap_load(const struct nbd_export *e, const char *from, struct zl_bitmap *out);
/* Fill up to max (length, flags) extent pairs of m for [off, off+len)
 * (one: at most one); returns the number. */
int nbd_bitmap_extents(const struct zl_bitmap *m, uint64_t off, uint64_t len, bool one,
                       uint32_t *pairs, int max);

/* context.c: base:allocation */
/* Fill up to max (length, flags) extent pairs for [off, off+len); returns
 * the number, or -1 with errno. */
int nbd_extents(const struct nbd_export *e, uint64_t off, uint64_t len, bool one,
                uint32_t *pairs, int max);

static inline uint16_t
be16(const void *p)
{
  const uint8_t *b = p;
  return (uint16_t)(b[0] << 8 | b[1]);
}
static inline uint32_t
be32(const void *p)
{
  const uint8_t *b = p;
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}
static inline uint64_t
be64(const void *p)
{
  return (uint64_t)be32(p) << 32 | be32((const uint8_t *)p + 4);
}
static inline void
put16(void *p, uint16_t v)
{
  uint8_t *b = p;
  b[0] = (uint8_t)(v >> 8), b[1] = (uint8_t)v;
}
static inline void
put32(void *p, uint32_t v)
{
  uint8_t *b = p;
  b[0] = (uint8_t)(v >> 24), b[1] = (uint8_t)(v >> 16), b[2] = (uint8_t)(v >> 8),
  b[3] = (uint8_t)v;
}
static inline void
put64(void *p, uint64_t v)
{
  put32(p, (uint32_t)(v >> 32));
  put32((uint8_t *)p + 4, (uint32_t)v);
}

#endif
