/* strbuf.c: see strbuf.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "strbuf.h"

#include "util/banned.h" /* last: after every declaration */

static bool
grow(struct zl_sb *b, size_t more)
{
  if (b->oom)
    return false;
  if (b->len + more + 1 <= b->cap)
    return true;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < b->len + more + 1)
    cap *= 2;
  char *s = realloc(b->s, cap);
  if (!s) {
    b->oom = true;
    return false;
  }
  b->s = s;
  b->cap = cap;
  return true;
}

void
zl_sb_addn(struct zl_sb *b, const char *s, size_t n)
{
  if (!grow(b, n))
    return;
  memcpy(b->s + b->len, s, n);
  b->len += n;
  b->s[b->len] = '\0';
}

void
zl_sb_add(struct zl_sb *b, const char *s)
{
  zl_sb_addn(b, s, strlen(s));
}

void
zl_sb_addf(struct zl_sb *b, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || !grow(b, (size_t)n)) {
    b->oom = true;
    return;
  }
  va_start(ap, fmt);
  vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void
zl_sb_join(struct zl_sb *b, const char *const *items, const char *sep)
{
  for (const char *const *i = items; *i; i++) {
    if (i != items)
      zl_sb_add(b, sep);
    zl_sb_add(b, *i);
  }
}

char *
zl_sb_take(struct zl_sb *b)
{
  char *s = b->s;
  if (b->oom) {
    free(s);
    s = NULL;
    zl_error(ENOMEM, "out of memory");
  } else if (!s) {
    s = strdup("");
    if (!s)
      zl_error(ENOMEM, "out of memory");
  }
  *b = (struct zl_sb)ZL_SB_INIT;
  return s;
}

void
zl_sb_free(struct zl_sb *b)
{
  free(b->s);
  *b = (struct zl_sb)ZL_SB_INIT;
}
