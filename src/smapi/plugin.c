/* plugin.c: Plugin.Query and Plugin.diagnostics. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "smapi/smapi.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/strbuf.h"

json_t *
smapi_plugin_query(struct smapi_call *c)
{
  return smapi_query(c->kind, c->sr_type);
}

json_t *
smapi_plugin_diagnostics(struct smapi_call *c)
{
  struct utsname u;
  char *text = NULL;
  json_t *j;

  if (uname(&u) == -1)
    u.release[0] = u.machine[0] = '\0';
  struct zl_sb b = ZL_SB_INIT;
  zl_sb_join(&b, zl_sr_types(), " ");
  CLEANUP_FREE char *types = zl_sb_take(&b);
  if (!types)
    return NULL;
  if (asprintf(&text,
               "zfs-live %s\nplugin: %s (%s)\nhost: %s %s %s\n"
               "SR types in this binary: %s\n",
               ZL_VERSION_STRING, c->sr_type ? c->sr_type : "-",
               c->kind == PLUGIN_DATAPATH ? "datapath" : "volume", u.sysname, u.release,
               u.machine, types) < 0) {
    zl_error(ENOMEM, "out of memory");
    return NULL;
  }
  j = json_string(text);
  free(text);
  return j;
}
