/* plugin.c: the plugin directories, Plugin.Query and Plugin.diagnostics. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "smapi/smapi.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/log.h"
#include "util/strbuf.h"

#include "util/banned.h" /* last: after every declaration */

#define VOLUME_DIR_PREFIX "org.xen.xapi.storage."

/* From argv[0] = ".../<dir>/<Method>", tell the plugin kind and SR type. */
static enum plugin_kind
plugin_of(const char *argv0, char *type, size_t typelen)
{
  char path[PATH_MAX], parent[PATH_MAX];

  snprintf(path, sizeof path, "%s", argv0);
  if (!strchr(path, '/'))
    return PLUGIN_NONE;
  char *dir = basename(dirname(path));
  if (strncmp(dir, VOLUME_DIR_PREFIX, strlen(VOLUME_DIR_PREFIX)) == 0) {
    snprintf(type, typelen, "%s", strrchr(dir, '.') + 1);
    return PLUGIN_VOLUME;
  }
  snprintf(parent, sizeof parent, "%s", argv0);
  char *gp = basename(dirname(dirname(parent)));
  if (strcmp(gp, "datapath") == 0) {
    snprintf(type, typelen, "%s", dir);
    return PLUGIN_DATAPATH;
  }
  return PLUGIN_NONE;
}

int
smapi_main(int argc, char **argv, const char *method, smapi_lookup_fn lookup)
{
  char type[NAME_MAX + 1] = "";
  enum plugin_kind kind = plugin_of(argv[0], type, sizeof type);
  struct smapi_target t = {.kind = kind, .sr_type = type};

  zl_log_init("zfs-live", LOG_INFO);
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--json") != 0)
      zl_warn("%s: ignoring unexpected argument '%s'", method, argv[i]);
  }
  if (kind == PLUGIN_NONE) {
    zl_error(EINVAL,
             "%s must be run from a plugin directory (volume/" VOLUME_DIR_PREFIX
             "<type>/ or datapath/<scheme>/), not as %s",
             method, argv[0]);
  } else if (lookup(method, kind, &t) == -1) {
    zl_error_kind(ZL_ERR_UNSUPPORTED, ENOSYS, "%s is not implemented by this plugin",
                  method);
  } else if (kind == PLUGIN_VOLUME && !zl_sr_type_known(type)) {
    zl_error(EINVAL, "unknown SR type '%s' (plugin directory " VOLUME_DIR_PREFIX "%s)",
             type, type);
  } else {
    return smapi_run(&t);
  }
  /* Could not even start: still answer in the protocol. */
  smapi_emit_error(stdout);
  zl_err("%s", zl_error_msg());
  return 1;
}

json_t *
smapi_plugin_query(struct smapi_call *c)
{
  return smapi_query(c->kind, c->sr_type, c->features);
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
  struct zl_platform p;
  zl_platform_detect(&p);
  CLEANUP_FREE char *platform = zl_platform_summary(&p);
  if (!types || !platform) {
    zl_error(ENOMEM, "out of memory");
    return NULL;
  }
  if (asprintf(&text,
               "zfs-live %s\nplugin: %s (%s)\nhost: %s %s %s\n"
               "SR types in this binary: %s\nXAPI: %s\n",
               ZFS_LIVE_VERSION, c->sr_type ? c->sr_type : "-",
               c->kind == PLUGIN_DATAPATH ? "datapath" : "volume", u.sysname, u.release,
               u.machine, types, platform) < 0) {
    zl_error(ENOMEM, "out of memory");
    return NULL;
  }
  j = json_string(text);
  free(text);
  return j;
}
