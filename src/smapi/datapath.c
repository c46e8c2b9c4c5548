/* datapath.c: the Datapath.* methods (scheme "zfs-live").  Translate the
 * volume URI, call the core, render the backend. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/host/control.h"
#include "smapi/smapi.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

#define SCHEME "zfs-live://"

/* zfs-live://<sr type>/<sr key>|<volume key> (zl_volume_uri) */
struct zl_sr *
smapi_dp_open_uri(struct smapi_call *c, char *key, size_t keylen)
{
  const char *uri;
  char type[64], sr[4096];

  if (smapi_str(c, "uri", &uri) == -1)
    return NULL;
  const char *p = strncmp(uri, SCHEME, strlen(SCHEME)) == 0 ? uri + strlen(SCHEME) : NULL;
  const char *slash = p ? strchr(p, '/') : NULL, *bar = strrchr(uri, '|');
  if (!slash || !bar || bar < slash || (size_t)(slash - p) >= sizeof type ||
      (size_t)(bar - slash - 1) >= sizeof sr || strlen(bar + 1) >= keylen) {
    zl_error(EINVAL, "'%s' is not a zfs-live volume URI (zfs-live://<type>/<sr>|<key>)",
             uri);
    return NULL;
  }
  snprintf(type, sizeof type, "%.*s", (int)(slash - p), p);
  snprintf(sr, sizeof sr, "%.*s", (int)(bar - slash - 1), slash + 1);
  snprintf(key, keylen, "%s", bar + 1);
  if (!zl_sr_type_known(type)) {
    zl_error_kind(ZL_ERR_NO_SR, EINVAL, "URI %s: unknown SR type %s", uri, type);
    return NULL;
  }
  return zl_sr_open(type, sr);
}

json_t *
smapi_dp_open(struct smapi_call *c)
{
  char key[256];
  bool persistent;
  struct zl_sr *sr;

  if (smapi_bool(c, "persistent", &persistent) == -1 ||
      !(sr = smapi_dp_open_uri(c, key, sizeof key)))
    return NULL;
  int r = zl_dp_open(sr, key, persistent);
  zl_sr_close(sr);
  return r == 0 ? json_null() : NULL;
}

json_t *
smapi_dp_attach(struct smapi_call *c)
{
  char key[256], nbd[1024];
  const char *domain;
  struct zl_attach_result a;
  struct zl_sr *sr;

  if (smapi_str(c, "domain", &domain) == -1 ||
      !(sr = smapi_dp_open_uri(c, key, sizeof key)))
    return NULL;
  int r = zl_dp_attach(sr, key, domain, &a);
  zl_sr_close(sr);
  if (r == -1) {
    zl_attach_result_free(&a);
    return NULL;
  }
  /* qemu's legacy form, which xapi parses: no ':' in socket or name */
  snprintf(nbd, sizeof nbd, "nbd:unix:%s:exportname=%s", a.nbd_socket, a.export_name);
  json_t *impls = json_array();
  if (a.blockdev[0]) {
    /* a local block device: kernel blkback serves the guest */
    json_array_append_new(impls,
                          json_pack("[s, {s:s, s:s, s:{}}]", "XenDisk", "backend_type",
                                    "vbd", "params", a.blockdev, "extra"));
    json_array_append_new(impls,
                          json_pack("[s, {s:s}]", "BlockDevice", "path", a.blockdev));
  } else {
    /* no block device here: qemu (qdisk) reads the NBD export */
    json_array_append_new(impls,
                          json_pack("[s, {s:s, s:s, s:{}}]", "XenDisk", "backend_type",
                                    "qdisk", "params", nbd, "extra"));
  }
  json_array_append_new(impls, json_pack("[s, {s:s}]", "Nbd", "uri", nbd));
  zl_attach_result_free(&a);
  return json_pack("{s:o}", "implementations", impls);
}

static json_t *
with_domain(struct smapi_call *c, int (*fn)(struct zl_sr *, const char *, const char *))
{
  char key[256];
  const char *domain;
  struct zl_sr *sr;

  if (smapi_str(c, "domain", &domain) == -1 ||
      !(sr = smapi_dp_open_uri(c, key, sizeof key)))
    return NULL;
  int r = fn(sr, key, domain);
  zl_sr_close(sr);
  return r == 0 ? json_null() : NULL;
}

static int
activate_rw(struct zl_sr *sr, const char *key, const char *domain)
{
  return zl_dp_activate(sr, key, domain, false);
}

static int
activate_ro(struct zl_sr *sr, const char *key, const char *domain)
{
  return zl_dp_activate(sr, key, domain, true);
}

json_t *
smapi_dp_activate(struct smapi_call *c)
{
  return with_domain(c, activate_rw);
}

json_t *
smapi_dp_activate_readonly(struct smapi_call *c)
{
  return with_domain(c, activate_ro);
}

json_t *
smapi_dp_deactivate(struct smapi_call *c)
{
  return with_domain(c, zl_dp_deactivate);
}

/* Destroy the volume's mirrors (SXM, smapi/data.c) on this host's server:
 * logged, never fails. */
static void
release_mirrors(struct zl_sr *sr, const char *key)
{
  CLEANUP_FREE char *name = zl_export_name(sr, key);
  if (!name || access(zl_control_socket(), F_OK) != 0)
    return; /* no server, no mirrors */
  CLEANUP_JSON json_t *req =
      json_pack("{s:s, s:s}", "op", "mirror-release", "export", name);
  CLEANUP_JSON json_t *a = req ? zl_control_call(req) : NULL;
  if (!a)
    zl_warn("detach: the mirrors of %s: %s", key, zl_error_msg());
}

static int
detach(struct zl_sr *sr, const char *key, const char *domain)
{
  int r = zl_dp_detach(sr, key, domain);
  /* the last domain gone: nothing writes the volume here any more */
  if (r == 0 && !zl_dp_in_use(sr, key))
    release_mirrors(sr, key);
  return r;
}

json_t *
smapi_dp_detach(struct smapi_call *c)
{
  /* "should never fail": what cannot be released is logged */
  json_t *r = with_domain(c, detach);
  if (!r && zl_error_get_kind() != ZL_ERR_INVALID) {
    zl_warn("detach: %s", zl_error_msg());
    return json_null();
  }
  return r;
}

json_t *
smapi_dp_close(struct smapi_call *c)
{
  char key[256];
  struct zl_sr *sr = smapi_dp_open_uri(c, key, sizeof key);

  if (!sr)
    return NULL;
  int r = zl_dp_close(sr, key);
  zl_sr_close(sr);
  return r == 0 ? json_null() : NULL;
}
