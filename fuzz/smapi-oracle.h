/* smapi-oracle.h: after a successful SMAPIv3 call, ask the plugin whether
 * it did what was asked (smapi-oracle.c): the new volume is what
 * Volume.stat says, with the name, description, sharing and at least the
 * size asked for; names, descriptions and keys read back byte for byte;
 * a resize shows; a destroyed volume is gone; SR.create's configuration
 * attaches to the SR asked for. */
#ifndef ZL_FUZZ_SMAPI_ORACLE_H
#define ZL_FUZZ_SMAPI_ORACLE_H

#include <jansson.h>

/* Run method with params (borrowed) as the plugin does; the reply (a new
 * reference) and the exit status in *rc. */
typedef json_t *(*smapi_oracle_call)(const char *method, const json_t *params, int *rc);

/* NULL if the call that got result looks done, else what is not (valid
 * until the next call). */
const char *smapi_oracle(const char *method, const json_t *params, const json_t *result,
                         smapi_oracle_call call);

#endif
