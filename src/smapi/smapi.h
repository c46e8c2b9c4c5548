/* smapi.h: the SMAPIv3 front end (xapi-storage, interface version 5).
 * Private header, grouped by source file. */
#ifndef ZL_SMAPI_H
#define ZL_SMAPI_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "core/core.h"

enum plugin_kind { PLUGIN_NONE = 0, PLUGIN_VOLUME = 1, PLUGIN_DATAPATH = 2 };

/* One SMAPIv3 call. */
struct smapi_call {
  const char *method;          /* the table's name, e.g. "Volume.create" */
  enum plugin_kind kind;       /* which plugin directory it was invoked from */
  const char *sr_type;         /* volume plugins: "file-live", ... */
  const char *const *features; /* the plugin's features, NULL-terminated */
  json_t *params;              /* the named parameters (an object) */
  const char *dbg;
  struct zl_sr *sr; /* SMAPI_NEEDS_SR: the SR of the "sr" parameter, open */
  const char *key;  /* SMAPI_NEEDS_KEY: the "key" parameter */
};

/* Handlers return the result (json_null() for unit) or NULL with the error
 * set (util/error.h); they never print. */
typedef json_t *(*smapi_fn)(struct smapi_call *c);

/* What a handler needs before it runs (git's RUN_SETUP): the call's SR
 * opened, and closed after it, and the volume key read. */
#define SMAPI_NEEDS_SR  (1u << 0)
#define SMAPI_NEEDS_KEY (1u << 1)

/* What the dispatch table (commands.c) tells this front end about a call. */
struct smapi_target {
  const char *method;
  smapi_fn fn;
  unsigned needs; /* SMAPI_NEEDS_* */
  enum plugin_kind kind;
  const char *sr_type;
  const char *const *features; /* the plugin's SMAPIv3 features (Plugin.Query) */
};
/* The dispatch table's lookup: fill t->method, t->fn and t->features for
 * method in a plugin of that kind; -1 (nothing set) if it has none. */
typedef int (*smapi_lookup_fn)(const char *method, enum plugin_kind kind,
                               struct smapi_target *t);

/* plugin.c: the binary invoked as <root>/volume/org.xen.xapi.storage.<type>/
 * <Method> or <root>/datapath/<scheme>/<Method>: tell the plugin from the
 * directory, find the method through lookup and run it (smapi_run); a
 * call that cannot start still gets the error object.  Exit status. */
int smapi_main(int argc, char **argv, const char *method, smapi_lookup_fn lookup);

/* rpc.c: run one call the way xapi-storage-script does it: params on
 * stdin, one JSON value or the error object on stdout.  Returns the exit
 * status. */
int smapi_run(const struct smapi_target *t);
/* The call itself, in-process (smapi_run and the fuzzer use it): in/len are
 * the parameter bytes as they arrive on stdin (not NUL-terminated); the
 * reply, the result or the error object, is written to out as one line.
 * Returns the exit status (0: a result, 1: the error object).  Starts from a
 * clear error and keeps nothing between calls. */
int smapi_handle(const struct smapi_target *t, const char *in, size_t len, FILE *out);
/* remote.c: a call about a shared SR whose storage host is another host:
 * run there, its reply written to out (1, *rc the exit status); 0 when
 * the call is this host's to run; -1 with the error set when it could not
 * be run there (the caller writes the error object). */
int smapi_remote(const struct smapi_target *t, const char *in, size_t len, FILE *out,
                 int *rc);
/* `vol takeover` of a volume of a shared SR whose storage host is another
 * host: run there, for this host.  1 done, 0 not such an SR here, -1 with
 * the error set. */
int smapi_remote_takeover(const char *sr, const char *key, const char *domain);
/* The error object for the current error (util/error.h); messages are
 * made valid UTF-8 ('?' for what is not).  NULL when out of memory. */
json_t *smapi_error_object(void);
/* Write it to out as one line; a fixed error object if it cannot be made,
 * so out always gets exactly one JSON value. */
void smapi_emit_error(FILE *out);

/* Parameters (EINVAL errors naming the parameter). */
int smapi_str(struct smapi_call *c, const char *name, const char **out);
int smapi_int(struct smapi_call *c, const char *name, int64_t *out);
int smapi_bool(struct smapi_call *c, const char *name, bool *out);
int smapi_map(struct smapi_call *c, const char *name, json_t **out);
/* Open the SR named by the "sr" parameter. */
struct zl_sr *smapi_open_sr(struct smapi_call *c);

/* types.c: Plugin.Query's record. */
/* v as a v5 record for this host's XAPI (p: zl_platform_detect's),
 * with the shims it needs.  New reference; NULL (ENOMEM set) when out of
 * memory. */
json_t *smapi_volume_record(struct smapi_call *c, const struct zl_volume *v,
                            const struct zl_platform *p);
json_t *smapi_query(enum plugin_kind kind, const char *sr_type,
                    const char *const *features);

/* plugin.c, sr.c, volume.c: the handlers (named in commands.c) */
json_t *smapi_plugin_query(struct smapi_call *c);
json_t *smapi_plugin_diagnostics(struct smapi_call *c);
json_t *smapi_sr_probe(struct smapi_call *c);
json_t *smapi_sr_create(struct smapi_call *c);
json_t *smapi_sr_attach(struct smapi_call *c);
json_t *smapi_sr_detach(struct smapi_call *c);
json_t *smapi_sr_destroy(struct smapi_call *c);
json_t *smapi_sr_stat_m(struct smapi_call *c);
json_t *smapi_sr_set_name(struct smapi_call *c);
json_t *smapi_sr_set_description(struct smapi_call *c);
json_t *smapi_sr_ls(struct smapi_call *c);
json_t *smapi_vol_create(struct smapi_call *c);
json_t *smapi_vol_snapshot(struct smapi_call *c);
json_t *smapi_vol_clone(struct smapi_call *c);
json_t *smapi_vol_destroy(struct smapi_call *c);
json_t *smapi_vol_set_name(struct smapi_call *c);
json_t *smapi_vol_set_description(struct smapi_call *c);
json_t *smapi_vol_set(struct smapi_call *c);
json_t *smapi_vol_unset(struct smapi_call *c);
json_t *smapi_vol_resize(struct smapi_call *c);
json_t *smapi_vol_stat(struct smapi_call *c);
json_t *smapi_vol_revert(struct smapi_call *c);
json_t *smapi_vol_enable_cbt(struct smapi_call *c);
json_t *smapi_vol_disable_cbt(struct smapi_call *c);
json_t *smapi_vol_data_destroy(struct smapi_call *c);
json_t *smapi_vol_list_changed_blocks(struct smapi_call *c);
json_t *smapi_vol_compare(struct smapi_call *c);
/* datapath.c */
json_t *smapi_dp_open(struct smapi_call *c);
json_t *smapi_dp_attach(struct smapi_call *c);
json_t *smapi_dp_activate(struct smapi_call *c);
json_t *smapi_dp_activate_readonly(struct smapi_call *c);
json_t *smapi_dp_deactivate(struct smapi_call *c);
json_t *smapi_dp_detach(struct smapi_call *c);
json_t *smapi_dp_close(struct smapi_call *c);
/* The SR of the "uri" parameter (open) and its volume key into key. */
struct zl_sr *smapi_dp_open_uri(struct smapi_call *c, char *key, size_t keylen);
/* data.c: SXM */
json_t *smapi_data_mirror(struct smapi_call *c);
json_t *smapi_data_stat(struct smapi_call *c);
json_t *smapi_data_cancel(struct smapi_call *c);
json_t *smapi_data_destroy(struct smapi_call *c);
json_t *smapi_data_ls(struct smapi_call *c);
json_t *smapi_dp_import_activate(struct smapi_call *c);

#endif
