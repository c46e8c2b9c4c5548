/* types.c: Plugin.Query's record (the volume and SR records are the
 * core's own, core/model/record.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smapi/smapi.h"
#include "util/error.h"

#include "util/banned.h" /* last: after every declaration */

#define VENDOR    "the zfs-live project"
#define COPYRIGHT "Copyright (C) 2026 the zfs-live authors; BSD-2-Clause"

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
  size_t i;
  json_t *x;
  json_array_foreach(extra, i, x) json_array_append(f, x);
  json_decref(extra);

  return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:[]}", "plugin",
                   sr_type, "name", zl_sr_type_title(sr_type), "description",
                   zl_sr_type_description(sr_type), "vendor", VENDOR, "copyright",
                   COPYRIGHT, "version", ZFS_LIVE_VERSION, "required_api_version", "5.0",
                   "features", f, "configuration", zl_sr_type_config_help(sr_type),
                   "required_cluster_stack");
}
