/* rpc.c: the SMAPIv3 script calling convention (reference smapiv3.md §1.5-1.7).
 *
 *   argv   [<plugin dir>/<Method>, "--json"]
 *   stdin  one JSON object of named parameters, read to EOF
 *   stdout exactly one JSON value: the result (null for unit), or on
 *          failure the error object {code, params, backtrace} and exit 1
 *   logs   syslog LOCAL2 and stderr, never stdout
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "smapi/smapi.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

#define STDIN_MAX (16u << 20)

static int
read_stdin(char **bufp, size_t *lenp)
{
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);

  if (!buf) {
    zl_error(ENOMEM, "out of memory");
    return -1;
  }
  for (;;) {
    if (len == cap) {
      if (cap >= STDIN_MAX) {
        free(buf);
        zl_error(EFBIG, "parameters on stdin are larger than %u bytes", STDIN_MAX);
        return -1;
      }
      char *nb = realloc(buf, cap * 2);
      if (!nb) {
        free(buf);
        zl_error(ENOMEM, "out of memory");
        return -1;
      }
      buf = nb;
      cap *= 2;
    }
    ssize_t n = read(STDIN_FILENO, buf + len, cap - len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      zl_error_sys(errno, "read parameters from stdin");
      free(buf);
      return -1;
    }
    if (n == 0)
      break;
    len += (size_t)n;
  }
  *bufp = buf;
  *lenp = len;
  return 0;
}

/* A string written as is in JSON: printable ASCII without quote or
 * backslash (a base64 bitmap). */
static bool
plain_string(const char *s, size_t len)
{
  /* eight bytes at a time: a byte of x is zero -> its high bit in zero() */
#define ONES        0x0101010101010101ull
#define HIGHS       0x8080808080808080ull
#define zero(x)     (((x)-ONES) & ~(x)&HIGHS)
#define below(x, n) (((x)-ONES * (n)) & ~(x)&HIGHS) /* a byte < n (all < 0x80) */
  size_t i = 0;
  uint64_t bad = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t x;
    memcpy(&x, s + i, 8);
    bad |= (x & HIGHS) | below(x, 0x20) | zero(x ^ (ONES * '"')) |
           zero(x ^ (ONES * '\\')) | zero(x ^ (ONES * 0x7f));
  }
#undef ONES
#undef HIGHS
#undef zero
#undef below
  for (; i < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    bad |= ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\';
  }
  return !bad;
}

#define PLAIN_MIN 4096 /* below this jansson's own dump is as quick */

/* json_dumpf(value, JSON_COMPACT | JSON_ENCODE_ANY), byte for byte, but a
 * long plain string (directly in the reply or one of its members) is
 * written straight from jansson's buffer: jansson decodes every character
 * of a string it dumps, ~30 ms for the 2.8 MB bitmap of a 1 TiB volume. */
static int
dump(json_t *value, FILE *out, bool top)
{
  const char *s = json_string_value(value);
  size_t len = json_string_length(value);
  if (s && len >= PLAIN_MIN && plain_string(s, len))
    return fputc('"', out) == EOF || fwrite(s, 1, len, out) != len ||
                   fputc('"', out) == EOF
               ? -1
               : 0;
  if (!top || !json_is_object(value))
    return json_dumpf(value, out, JSON_COMPACT | JSON_ENCODE_ANY);
  const char *k;
  json_t *v;
  bool first = true;
  if (fputc('{', out) == EOF)
    return -1;
  json_object_foreach(value, k, v)
  {
    CLEANUP_JSON json_t *name = json_string(k);
    if (!name || (!first && fputc(',', out) == EOF) ||
        json_dumpf(name, out, JSON_COMPACT | JSON_ENCODE_ANY) == -1 ||
        fputc(':', out) == EOF || dump(v, out, false) == -1)
      return -1;
    first = false;
  }
  return fputc('}', out) == EOF ? -1 : 0;
}

static int
emit(json_t *value, FILE *out)
{
  if (dump(value, out, true) == -1 || fputc('\n', out) == EOF || fflush(out) == EOF) {
    zl_err("cannot write the reply: %s", strerror(errno));
    return -1;
  }
  return 0;
}

/* s with every byte that does not begin valid UTF-8 replaced by '?'
 * (malloc()ed, or NULL).  Messages quote what the caller sent, and may be
 * cut at any byte; JSON strings must be UTF-8. */
static char *
utf8_clean(const char *s)
{
  char *out = strdup(s ? s : "");

  for (unsigned char *p = (unsigned char *)out; p && *p;) {
    size_t n = zl_utf8_len(p);
    if (n == 0)
      *p++ = '?';
    else
      p += n;
  }
  return out;
}

/* The one place where errors become SMAPIv3 error objects. */
json_t *
smapi_error_object(void)
{
  enum zl_errkind kind = zl_error_get_kind();
  CLEANUP_FREE char *msg = utf8_clean(zl_error_msg());
  CLEANUP_FREE char *subject = utf8_clean(zl_error_get_subject());
  const char *code = "SR_BACKEND_FAILURE";
  json_t *params;

  if (!msg || !subject)
    return NULL;
  switch (kind) {
  case ZL_ERR_ACTIVE_ELSEWHERE:
    /* xapi redirects the operation when params are exactly this pair */
    params = json_pack("[s, s]", "Activated_on_another_host", subject);
    break;
  case ZL_ERR_SIZE:
    code = "SR_BACKEND_FAILURE_79";
    params = json_pack("[s, s]", "VDI Invalid size", msg);
    break;
  case ZL_ERR_BUSY:
    code = "SR_BACKEND_FAILURE_24";
    params = json_pack("[s, s]", "VDIInUse", msg);
    break;
  default:
    params = json_pack(
        "[s, s]", zl_errkind_name(kind == ZL_ERR_NONE ? ZL_ERR_INTERNAL : kind), msg);
    break;
  }
  return json_pack("{s:s, s:o, s:{s:s, s:[], s:[]}}", "code", code, "params", params,
                   "backtrace", "error", msg, "files", "lines");
}

void
smapi_emit_error(FILE *out)
{
  CLEANUP_JSON json_t *err = smapi_error_object();

  if (!err || emit(err, out) == -1) {
    fputs("{\"code\":\"SR_BACKEND_FAILURE\",\"params\":[\"Internal_error\",\"cannot "
          "render the error\"],\"backtrace\":{\"error\":\"cannot render the "
          "error\",\"files\":[],\"lines\":[]}}\n",
          out);
    fflush(out);
  }
}

static double
now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The result of one call, or NULL with the error set. */
static json_t *
call(const struct smapi_target *t, const char *in, size_t len)
{
  CLEANUP_JSON json_t *params = NULL;
  json_error_t jerr;
  struct smapi_call c = {.method = t->method,
                         .kind = t->kind,
                         .sr_type = t->sr_type,
                         .features = t->features};

  params = json_loadb(in, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!params) {
    zl_error(EINVAL, "malformed JSON on stdin: %s (line %d, column %d)", jerr.text,
             jerr.line, jerr.column);
    return NULL;
  }
  if (!json_is_object(params)) {
    zl_error(EINVAL, "parameters on stdin must be a JSON object");
    return NULL;
  }
  if (zl_json_string(params, "dbg", "parameter", &c.dbg) == -1)
    return NULL;
  c.params = params;
  /* a call another host forwarded to this storage host (nbd/call.c puts
   * the authenticated identity there): it acts for that host */
  zl_dp_set_peer(json_string_value(json_object_get(params, "zfs-live-peer")));
  /* in is not NUL-terminated; the dbg is on every line already */
  zl_debug("params=%.*s", (int)(len < INT_MAX ? len : INT_MAX), in);
  if ((t->needs & SMAPI_NEEDS_KEY) && smapi_str(&c, "key", &c.key) == -1)
    return NULL;
  if ((t->needs & SMAPI_NEEDS_SR) && !(c.sr = smapi_open_sr(&c)))
    return NULL;
  json_t *result = t->fn(&c);
  if (c.sr) { /* keep the handler's error across the close */
    struct zl_error_saved e;
    zl_error_save(&e);
    zl_sr_close(c.sr);
    zl_error_restore(&e);
  }
  return result;
}

int
smapi_handle(const struct smapi_target *t, const char *in, size_t len, FILE *out)
{
  zl_error_clear();
  CLEANUP_JSON json_t *result = call(t, in, len);
  if (result)
    return emit(result, out) == 0 ? 0 : 1;
  smapi_emit_error(out);
  return 1;
}

/* Every log line of the call carries its dbg (xapi's task), whether the
 * call runs here or is forwarded. */
static void
log_dbg(const char *in, size_t len)
{
  CLEANUP_JSON json_t *p = json_loadb(in, len, 0, NULL);
  zl_log_set_dbg(json_string_value(json_object_get(p, "dbg")));
}

int
smapi_run(const struct smapi_target *t)
{
  CLEANUP_FREE char *input = NULL;
  size_t len;
  double t0 = now_ms();
  int rc;

  zl_log_set_tag(t->method);
  if (read_stdin(&input, &len) == 0) {
    log_dbg(input, len);
    /* a shared SR's call may be its storage host's to run (remote.c) */
    int fwd = smapi_remote(t, input, len, stdout, &rc);
    if (fwd == 0) {
      rc = smapi_handle(t, input, len, stdout);
    } else if (fwd == -1) {
      smapi_emit_error(stdout);
      rc = 1;
    }
  } else {
    smapi_emit_error(stdout);
    rc = 1;
  }
  /* the line that ends the call: its outcome and duration */
  if (rc == 0)
    zl_info("ok in %.1f ms", now_ms() - t0);
  else
    zl_err("failed in %.1f ms: %s", now_ms() - t0, zl_error_msg());
  return rc;
}

int
smapi_str(struct smapi_call *c, const char *name, const char **out)
{
  return zl_json_string(c->params, name, "parameter", out);
}

int
smapi_int(struct smapi_call *c, const char *name, int64_t *out)
{
  return zl_json_int64(c->params, name, "parameter", out);
}

int
smapi_bool(struct smapi_call *c, const char *name, bool *out)
{
  return zl_json_bool(c->params, name, "parameter", out);
}

int
smapi_map(struct smapi_call *c, const char *name, json_t **out)
{
  return zl_json_strmap(c->params, name, "parameter", out);
}

struct zl_sr *
smapi_open_sr(struct smapi_call *c)
{
  const char *sr;

  if (smapi_str(c, "sr", &sr) == -1)
    return NULL;
  return zl_sr_open(c->sr_type, sr);
}
