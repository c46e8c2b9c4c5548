/* commands.h: the one dispatch table.
 *
 * Every entry point of the binary is one row: SMAPIv3 methods (found by
 * argv[0] basename, case-insensitively, in a plugin directory) and CLI
 * commands (`zfs-live <name> ...`) and Ganeti ExtStorage scripts (found by
 * argv[0] basename in an extstorage/<provider>/ directory).  The install layout (the
 * plugin directories of symlinks) and Plugin.Query's feature list are generated from the
 * same rows, so a symlink exists only for an implemented method.
 */
#ifndef ZL_COMMANDS_H
#define ZL_COMMANDS_H

#include <jansson.h>

enum plugin_kind { PLUGIN_NONE = 0, PLUGIN_VOLUME = 1, PLUGIN_DATAPATH = 2 };

/* One SMAPIv3 call. */
struct smapi_call {
  const char *method;    /* the table's name, e.g. "Volume.create" */
  enum plugin_kind kind; /* which plugin directory it was invoked from */
  const char *sr_type;   /* volume plugins: "file-live", ... */
  json_t *params;        /* the named parameters (an object) */
  const char *dbg;
};

/* Handlers return the result (json_null() for unit) or NULL with the error
 * set (util/error.h); they never print. */
typedef json_t *(*smapi_fn)(struct smapi_call *c);
/* CLI handlers return an exit status. */
typedef int (*cli_fn)(int argc, char **argv);

#define IN_VOLUME   (1u << 0) /* a method of the volume plugin */
#define IN_DATAPATH (1u << 1) /* a method of the datapath plugin */
#define IN_CLI      (1u << 2) /* a CLI command */
#define IN_GANETI                                                                        \
  (1u << 3) /* a Ganeti ExtStorage script; its handler is in the                         \
             * cli field (an exit status; the request is in                              \
             * the environment) */

struct command {
  const char *name;
  unsigned where;
  smapi_fn smapi;
  cli_fn cli;
  const char *feature; /* SMAPIv3 feature the method provides, or NULL */
  const char *summary; /* one line, for help */
};

extern const struct command commands[];
const struct command *command_find(const char *name, unsigned where);

#define ZL_VERSION_STRING ZFS_LIVE_VERSION

#endif
