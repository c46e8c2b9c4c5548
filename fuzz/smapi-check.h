/* smapi-check.h: the shape of SMAPIv3 replies, for the fuzzer (see
 * smapi-check.c). */
#ifndef ZL_FUZZ_SMAPI_CHECK_H
#define ZL_FUZZ_SMAPI_CHECK_H

#include <jansson.h>

enum shape {
  S_UNKNOWN, /* a method this checker does not know: generic checks only */
  S_ANY,
  S_UNIT,
  S_STRING,
  S_CONFIG,
  S_QUERY,
  S_SR_STAT,
  S_VOLUME,
  S_VOLUMES,
  S_PROBE,
  S_CBT_BITMAP,
  S_BLOCKLIST,
};

/* The shape of method's result. */
enum shape smapi_check_shape_of(const char *method);
/* NULL if v is a well-formed result of that shape (or an error object),
 * else what is wrong (valid until the next call). */
const char *smapi_check_result(enum shape shape, const json_t *v);
const char *smapi_check_error(const json_t *v);

#endif
