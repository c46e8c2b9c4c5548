/* types.c: Plugin.Query's record, and volume records as this host's XAPI
 * needs them (the records themselves are the core's, core/model/record.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smapi/smapi.h"
#include "util/error.h"

#include "util/banned.h" /* last: after every declaration */

#define VENDOR    "the zfs-live project"
#define COPYRIGHT "Copyright (C) 2026 the zfs-live authors; BSD-2-Clause"

json_t *
smapi_volume_record(struct smapi_call *c, const struct zl_volume *v,
                    const struct zl_platform *p)
{
  json_t *j = zl_volume_json_xapi(v, zl_sr_type(c->sr), zl_sr_key(c->sr),
                                  zl_platform_shim_read_write(p));
  if (!j)
    zl_error(ENOMEM, "out of memory");
  return j;
}

json_t *
smapi_query(enum plugin_kind kind, const char *sr_type, const char *const *features)
{
  json_t *f = json_array();
  for (const char *const *p = features; p && *p; p++)
    json_array_append_new(f, json_string(*p));
  if (kind == PLUGIN_DATAPATH)
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:{}, s:[]}", "plugin",
                     sr_type, "name", "zfs-live datapath", "description",
                     "zfs-live volumes to guests: a local block device for blkback "
                     "(zvol, or a loop device with direct I/O) and an NBD export served "
                     "by zfs-live serve",
                     "vendor", VENDOR, "copyright", COPYRIGHT, "version",
                     ZFS_LIVE_VERSION, "required_api_version", "5.0", "features", f,
                     "configuration", "required_cluster_stack");
  json_t *extra = zl_sr_type_features(sr_type);
  struct zl_platform p;
  size_t i;
  json_t *x;
  zl_platform_detect(&p); /* as the rows' features (commands.c) */
  json_array_foreach(extra, i, x)
  {
    if (zl_platform_feature_ok(&p, json_string_value(x)))
      json_array_append(f, x);
  }
  json_decref(extra);

  return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:[]}", "plugin",
                   sr_type, "name", zl_sr_type_title(sr_type), "description",
                   zl_sr_type_description(sr_type), "vendor", VENDOR, "copyright",
                   COPYRIGHT, "version", ZFS_LIVE_VERSION, "required_api_version", "5.0",
                   "features", f, "configuration", zl_sr_type_config_help(sr_type),
                   "required_cluster_stack");
}
