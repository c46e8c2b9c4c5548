/* banned.h: functions this project does not call (after git's banned.h).
 *
 * Each of them writes into a buffer without knowing its size, or hides
 * state: strcpy, strcat and strncat (use snprintf into a sized buffer or
 * util/strbuf.h), sprintf and vsprintf (snprintf, vsnprintf, asprintf),
 * strtok (strtok_r).  Every source file includes this header after all
 * others, so a call anywhere below fails to compile with the function's
 * name in the message; scripts/check-banned.sh checks that every file
 * does include it.
 */
#ifndef ZL_BANNED_H
#define ZL_BANNED_H

#define BANNED(func) sorry_##func##_is_a_banned_function

#undef strcpy
#define strcpy(x, y) BANNED(strcpy)
#undef strcat
#define strcat(x, y) BANNED(strcat)
#undef strncat
#define strncat(x, y, n) BANNED(strncat)
#undef sprintf
#define sprintf(...) BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) BANNED(vsprintf)
#undef strtok
#define strtok(x, y) BANNED(strtok)

#endif
