/* psk.h: a psktool key file ("identity:hex key" per line). */
#ifndef ZL_PSK_H
#define ZL_PSK_H

#include <stddef.h>

/* The first line's identity and hex key: 0, or -1 with the error set (the
 * key is wiped from memory that is not the caller's). */
int zl_psk_read(const char *file, char *id, size_t idlen, char *hex, size_t hexlen);

#endif
