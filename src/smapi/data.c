/* data.c: the Data.* methods (SXM) and Datapath.import_activate.  The
 * work is the host's NBD server's (a mirror is a layer of the volume's
 * write path there, and must outlive this process): these ask it over its
 * control channel (core/host/control.h, nbd/control.c).
 *
 * A mirrored volume is served through NBD only: its writes must all go
 * through the server's write path.  A volume attached through a block
 * device (a loop device, whose writes the server never sees) is refused. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/host/control.h"
#include "smapi/smapi.h"
#include "util/cleanup.h"
#include "util/error.h"

#include "util/banned.h" /* last: after every declaration */

#define MIRROR_TAG "MirrorV1"

static json_t *
call(json_t *req /* stolen */)
{
  if (!req) {
    zl_error(ENOMEM, "out of memory");
    return NULL;
  }
  json_t *a = zl_control_call(req);
  json_decref(req);
  return a;
}

/* The export of the volume of "uri", attached on this host: name
 * (malloc()ed) or NULL. */
static char *
attached_export(struct smapi_call *c, bool mirror)
{
  char key[256];
  struct zl_sr *sr = smapi_dp_open_uri(c, key, sizeof key);
  if (!sr)
    return NULL;
  if (mirror && zl_dp_blockdev_attached(sr, key)) {
    zl_error_kind(
        ZL_ERR_UNSUPPORTED, ENOTSUP,
        "volume %s is attached through a block device on this host, whose "
        "writes the NBD server cannot see: a mirrored volume must be served "
        "through NBD only (an SR made with device-config datapath=nbd, a shared "
        "SR, or a volume with changed block tracking on)",
        key);
    zl_sr_close(sr);
    return NULL;
  }
  char *name = zl_export_name(sr, key);
  struct zl_export_info info;
  if (name && zl_export_lookup(name, &info) == -1) {
    zl_error_kind(ZL_ERR_INVALID, ENOENT, "volume %s is not attached on this host", key);
    free(name);
    name = NULL;
  } else if (name) {
    zl_export_info_free(&info);
  }
  zl_sr_close(sr);
  return name;
}

json_t *
smapi_data_mirror(struct smapi_call *c)
{
  const char *domain, *remote;
  if (smapi_str(c, "domain", &domain) == -1 || smapi_str(c, "remote", &remote) == -1)
    return NULL;
  CLEANUP_FREE char *name = attached_export(c, true);
  if (!name)
    return NULL;
  CLEANUP_JSON json_t *a = call(
      json_pack("{s:s, s:s, s:s}", "op", "mirror", "export", name, "remote", remote));
  if (!a)
    return NULL;
  return json_pack("[s, O]", MIRROR_TAG, json_object_get(a, "id"));
}

/* The id of the "operation" parameter, ["MirrorV1", id]. */
static const char *
operation_id(struct smapi_call *c)
{
  json_t *op = json_object_get(c->params, "operation");
  if (!json_is_array(op) || json_array_size(op) != 2 ||
      !json_is_string(json_array_get(op, 0)) || !json_is_string(json_array_get(op, 1))) {
    zl_error(EINVAL, "parameter 'operation' must be [\"MirrorV1\", id]");
    return NULL;
  }
  if (strcmp(json_string_value(json_array_get(op, 0)), MIRROR_TAG) != 0) {
    zl_error_kind(ZL_ERR_UNSUPPORTED, ENOTSUP,
                  "operation %s: only mirrors are implemented",
                  json_string_value(json_array_get(op, 0)));
    return NULL;
  }
  return json_string_value(json_array_get(op, 1));
}

json_t *
smapi_data_stat(struct smapi_call *c)
{
  const char *id = operation_id(c);
  if (!id)
    return NULL;
  CLEANUP_JSON json_t *a = call(json_pack("{s:s, s:s}", "op", "mirror-stat", "id", id));
  if (!a)
    return NULL;
  return json_pack("{s:O, s:O, s:O}", "failed", json_object_get(a, "failed"), "complete",
                   json_object_get(a, "complete"), "progress",
                   json_object_get(a, "progress"));
}

static json_t *
end(struct smapi_call *c, const char *op)
{
  const char *id = operation_id(c);
  if (!id)
    return NULL;
  CLEANUP_JSON json_t *a = call(json_pack("{s:s, s:s}", "op", op, "id", id));
  return a ? json_null() : NULL;
}

json_t *
smapi_data_cancel(struct smapi_call *c)
{
  return end(c, "mirror-cancel");
}

json_t *
smapi_data_destroy(struct smapi_call *c)
{
  return end(c, "mirror-destroy");
}

json_t *
smapi_data_ls(struct smapi_call *c)
{
  (void)c;
  CLEANUP_JSON json_t *a = call(json_pack("{s:s}", "op", "mirror-ls"));
  if (!a)
    return NULL;
  json_t *out = json_array(), *id;
  size_t i;
  json_array_foreach(json_object_get(a, "ids"), i, id)
      json_array_append_new(out, json_pack("[s, O]", MIRROR_TAG, id));
  return out;
}

json_t *
smapi_dp_import_activate(struct smapi_call *c)
{
  char key[256];
  const char *domain;
  struct zl_attach_result r;
  struct zl_sr *sr;

  if (smapi_str(c, "domain", &domain) == -1 ||
      !(sr = smapi_dp_open_uri(c, key, sizeof key)))
    return NULL;
  /* attached (an export of this host's server, which it starts) and active */
  int ok = zl_dp_attach(sr, key, domain, &r) == 0 &&
           zl_dp_activate(sr, key, domain, false) == 0;
  zl_sr_close(sr);
  if (!ok) {
    zl_attach_result_free(&r);
    return NULL;
  }
  CLEANUP_JSON json_t *a =
      call(json_pack("{s:s, s:s}", "op", "import", "export", r.export_name));
  zl_attach_result_free(&r);
  if (!a)
    return NULL;
  return json_incref(json_object_get(a, "socket"));
}
