/* error.c: thread-local error state (see error.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

#include "util/banned.h" /* last: after every declaration */

#define MSG_MAX 2048

static _Thread_local struct {
  int errnum;
  enum zl_errkind kind;
  char msg[MSG_MAX];
  char subject[512];
} err;

static enum zl_errkind
kind_of_errno(int errnum)
{
  switch (errnum) {
  case 0:
    return ZL_ERR_NONE;
  case EINVAL:
  case ENAMETOOLONG:
  case ERANGE:
    return ZL_ERR_INVALID;
  case EEXIST:
  case ENOTEMPTY:
    return ZL_ERR_EXISTS;
  case EBUSY:
  case ETXTBSY:
  case EWOULDBLOCK:
    return ZL_ERR_BUSY;
  case ENOSPC:
  case EDQUOT:
    return ZL_ERR_NO_SPACE;
  case EROFS:
  case EPERM:
    return ZL_ERR_READ_ONLY;
  case EFBIG:
  case EOVERFLOW:
    return ZL_ERR_SIZE;
  case ENOTSUP:
  case ENOSYS:
    return ZL_ERR_UNSUPPORTED;
  default:
    return ZL_ERR_INTERNAL;
  }
}

static void __attribute__((format(printf, 3, 0)))
set_v(enum zl_errkind kind, int errnum, const char *fmt, va_list ap)
{
  vsnprintf(err.msg, sizeof err.msg, fmt, ap);
  err.errnum = errnum;
  err.kind = kind;
  err.subject[0] = '\0';
  errno = errnum;
}

void
zl_error(int errnum, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  set_v(kind_of_errno(errnum), errnum, fmt, ap);
  va_end(ap);
}

/* The message, then ": " and strerror(errnum) (libnbd's set_error). */
static void __attribute__((format(printf, 3, 0)))
set_sys_v(enum zl_errkind kind, int errnum, const char *fmt, va_list ap)
{
  char sys[128];
  const char *s = strerror_r(errnum, sys, sizeof sys); /* GNU: may not use sys */

  set_v(kind, errnum, fmt, ap);
  size_t n = strlen(err.msg);
  if (snprintf(err.msg + n, sizeof err.msg - n, ": %s", s) >= (int)(sizeof err.msg - n))
    memcpy(err.msg + sizeof err.msg - 4, "...", 4);
}

void
zl_error_sys(int errnum, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  set_sys_v(kind_of_errno(errnum), errnum, fmt, ap);
  va_end(ap);
  errno = errnum;
}

void
zl_error_kind_sys(enum zl_errkind kind, int errnum, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  set_sys_v(kind, errnum, fmt, ap);
  va_end(ap);
  errno = errnum;
}

void
zl_error_kind(enum zl_errkind kind, int errnum, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  set_v(kind, errnum, fmt, ap);
  va_end(ap);
}

void
zl_error_prefix(const char *fmt, ...)
{
  char prefix[MSG_MAX], old[MSG_MAX];
  va_list ap;
  int saved = errno;

  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, err.msg, sizeof old);
  /* messages are bounded: a long one ends in "..." */
  if (snprintf(err.msg, sizeof err.msg, "%s%s", prefix, old) >= (int)sizeof err.msg)
    memcpy(err.msg + sizeof err.msg - 4, "...", 4);
  errno = saved;
}

void
zl_error_subject(const char *subject)
{
  snprintf(err.subject, sizeof err.subject, "%s", subject ? subject : "");
}

const char *
zl_error_msg(void)
{
  return err.msg[0] ? err.msg : "unknown error";
}

int
zl_error_errno(void)
{
  return err.errnum;
}

enum zl_errkind
zl_error_get_kind(void)
{
  return err.kind;
}

const char *
zl_error_get_subject(void)
{
  return err.subject;
}

void
zl_error_clear(void)
{
  err.errnum = 0;
  err.kind = ZL_ERR_NONE;
  err.msg[0] = '\0';
  err.subject[0] = '\0';
}

void
zl_error_save(struct zl_error_saved *s)
{
  s->errnum = err.errnum;
  s->kind = err.kind;
  memcpy(s->msg, err.msg, sizeof s->msg);
  memcpy(s->subject, err.subject, sizeof s->subject);
}

void
zl_error_restore(const struct zl_error_saved *s)
{
  err.errnum = s->errnum;
  err.kind = s->kind;
  memcpy(err.msg, s->msg, sizeof err.msg);
  memcpy(err.subject, s->subject, sizeof err.subject);
  errno = s->errnum;
}

/* clang-format off */
const char *
zl_errkind_name(enum zl_errkind kind)
{
  switch (kind) {
  case ZL_ERR_NONE: return "None";
  case ZL_ERR_INTERNAL: return "Internal_error";
  case ZL_ERR_INVALID: return "Invalid_argument";
  case ZL_ERR_NO_VOLUME: return "Volume_does_not_exist";
  case ZL_ERR_NO_SR: return "SR_does_not_exist";
  case ZL_ERR_EXISTS: return "Already_exists";
  case ZL_ERR_BUSY: return "Busy";
  case ZL_ERR_NO_SPACE: return "No_space";
  case ZL_ERR_READ_ONLY: return "Read_only";
  case ZL_ERR_SIZE: return "Invalid_size";
  case ZL_ERR_UNSUPPORTED: return "Unimplemented";
  case ZL_ERR_ACTIVE_ELSEWHERE: return "Activated_on_another_host";
  case ZL_ERR_DAMAGED: return "Volume_metadata_unreadable";
  }
  return "Internal_error";
}
/* clang-format on */
