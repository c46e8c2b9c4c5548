/* error.h: the one error convention.
 *
 * Functions below the front ends return -1 (or NULL) with errno set and a
 * thread-local message that keeps the context, e.g.
 *   "snapshot tank/sr/abc: dataset is busy".
 * Nothing below a front end prints.  Each front end maps (kind, errno,
 * message) to its protocol in exactly one place (smapi/rpc.c, cli/cli.c,
 * ganeti/extstorage.c).
 *
 * The kind classifies the failure for protocols that distinguish, say, "no
 * such volume" from "no such SR" (SMAPIv3 does); it defaults to a value
 * derived from errno.
 */
#ifndef ZL_ERROR_H
#define ZL_ERROR_H

#include <stdarg.h>

enum zl_errkind {
  ZL_ERR_NONE = 0,
  ZL_ERR_INTERNAL,         /* a bug or an unexpected system failure */
  ZL_ERR_INVALID,          /* bad input from the caller */
  ZL_ERR_NO_VOLUME,        /* the volume key names nothing */
  ZL_ERR_NO_SR,            /* the SR key/configuration names no SR */
  ZL_ERR_EXISTS,           /* the object being created already exists */
  ZL_ERR_BUSY,             /* in use */
  ZL_ERR_NO_SPACE,         /* out of space */
  ZL_ERR_READ_ONLY,        /* write to a read-only volume (snapshot) */
  ZL_ERR_SIZE,             /* invalid size (negative, shrink, too large) */
  ZL_ERR_UNSUPPORTED,      /* feature not available on this host/SR */
  ZL_ERR_ACTIVE_ELSEWHERE, /* activated on another host; subject = host uuid */
  ZL_ERR_DAMAGED,          /* stored state cannot be read (kept, never acted on) */
};

/* Set the error.  errnum is copied to errno as well.  The message is
 * formatted from fmt; the kind is derived from errnum. */
void zl_error(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Same, with an explicit kind. */
void zl_error_kind(enum zl_errkind kind, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The same, with ": " and strerror(errnum) appended to the message (what
 * a failed system call reports). */
void zl_error_sys(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void zl_error_kind_sys(enum zl_errkind kind, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix the current message with more context ("create disk0: " + old).
 * errno and kind are preserved. */
void zl_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Record a subject (volume key, SR key, host uuid) that protocols may report
 * separately from the message. */
void zl_error_subject(const char *subject);

/* Readers.  Valid until the next zl_error* call on this thread. */
const char *zl_error_msg(void);
int zl_error_errno(void);
enum zl_errkind zl_error_get_kind(void);
const char *zl_error_get_subject(void);
const char *zl_errkind_name(enum zl_errkind kind);

/* Forget the current error. */
void zl_error_clear(void);

/* Keep the current error across cleanup that may set its own:
 *   struct zl_error_saved s; zl_error_save(&s); cleanup(); zl_error_restore(&s); */
struct zl_error_saved {
  int errnum;
  enum zl_errkind kind;
  char msg[2048];
  char subject[512];
};
void zl_error_save(struct zl_error_saved *s);
void zl_error_restore(const struct zl_error_saved *s);

#endif
