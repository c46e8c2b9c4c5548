/* attach.c: volumes attached for data access: the NBD export registry
 * entry (exports.c) made from an SR and a key. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "core/model/model.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

char *
zl_vol_export(struct zl_sr *sr, const char *key, bool readonly)
{
  CLEANUP_JSON json_t *meta = NULL;
  struct zl_export_info e = {0};
  char *name;

  if (zl_vol_lookup(sr, key, &meta, NULL) == -1)
    return NULL;
  if (!(name = zl_export_name(sr, key)))
    return NULL;
  e.name = name;
  e.sr_type = (char *)sr->st.be->sr_type;
  e.sr_key = sr->st.key;
  e.vol_key = (char *)key;
  e.readonly = readonly || zl_meta_read_only(meta); /* snapshots: always */
  if (zl_export_register(&e) == -1) {
    free(name);
    return NULL;
  }
  zl_info("volume %s exported as %s%s", key, name, e.readonly ? " (read-only)" : "");
  return name;
}

int
zl_vol_unexport(struct zl_sr *sr, const char *key)
{
  CLEANUP_FREE char *name = NULL;

  if (zl_check_key(key) == -1 || !(name = zl_export_name(sr, key)))
    return -1;
  return zl_export_unregister(name);
}
