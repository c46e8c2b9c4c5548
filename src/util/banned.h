/* banned.h: functions this project does not call (after git's banned.h).
 *
 * Each of them writes into a buffer without knowing its size, or hides
 * state: strcpy, strcat and strncat (use snprintf into a sized buffer or
 * util/strbuf.h), sprintf and vsprintf (snprintf, vsnprintf, asprintf),
 * strtok (strtok_r).  Every source file includes this header after all
 * others, so a call anywhere below fails to compile with the function's
 * name in the message; scripts/check-banned.sh checks that every file
 * does include it.
 *
 * Also banned: the glibc wrappers of system calls newer than Linux 4.19
 * or glibc 2.17 (copy_file_range, getrandom, memfd_create, close_range,
 * closefrom, posix_spawn_file_actions_addclosefrom_np): util/compat.h
 * makes the call where the kernel has it and falls back where it has not.
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
#undef copy_file_range
#define copy_file_range(...) BANNED(copy_file_range)
#undef getrandom
#define getrandom(...) BANNED(getrandom)
#undef memfd_create
#define memfd_create(...) BANNED(memfd_create)
#undef close_range
#define close_range(...) BANNED(close_range)
#undef closefrom
#define closefrom(...) BANNED(closefrom)
#undef posix_spawn_file_actions_addclosefrom_np
#define posix_spawn_file_actions_addclosefrom_np(...)                                    \
  BANNED(posix_spawn_file_actions_addclosefrom_np)

#endif
