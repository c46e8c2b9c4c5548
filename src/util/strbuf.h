/* strbuf.h: a growing string, for the few places that build text from
 * pieces (command lines in logs, lists in messages, metadata reassembled
 * from chunks) -- instead of strcat/strncat into fixed buffers (banned.h),
 * which truncate silently.  Allocation failure is remembered and reported
 * once, by zl_sb_take. */
#ifndef ZL_STRBUF_H
#define ZL_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

struct zl_sb {
  char *s;
  size_t len, cap;
  bool oom;
};
#define ZL_SB_INIT                                                                       \
  {                                                                                      \
    NULL, 0, 0, false                                                                    \
  }

void zl_sb_add(struct zl_sb *b, const char *s);
void zl_sb_addn(struct zl_sb *b, const char *s, size_t n);
void zl_sb_addf(struct zl_sb *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "a<sep>b<sep>c" */
void zl_sb_join(struct zl_sb *b, const char *const *items, const char *sep);
/* The string (malloc()ed, "" when nothing was added), or NULL with ENOMEM
 * set; b is empty again either way. */
char *zl_sb_take(struct zl_sb *b);
void zl_sb_free(struct zl_sb *b);

#endif
