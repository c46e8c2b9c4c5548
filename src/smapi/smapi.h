/* smapi.h: the SMAPIv3 front end (xapi-storage, interface version 5).
 * Private header, grouped by source file. */
#ifndef ZL_SMAPI_H
#define ZL_SMAPI_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "commands.h"
#include "core/core.h"

/* rpc.c: run one call the way xapi-storage-script does it: params on
 * stdin, one JSON value or the error object on stdout.  Returns the exit
 * status. */
int smapi_run(const struct command *cmd, enum plugin_kind kind, const char *sr_type);
/* The call itself, in-process (smapi_run and the fuzzer use it): in/len are
 * the parameter bytes as they arrive on stdin (not NUL-terminated); the
 * reply, the result or the error object, is written to out as one line.
 * Returns the exit status (0: a result, 1: the error object).  Starts from a
 * clear error and keeps nothing between calls. */
int smapi_handle(const struct command *cmd, enum plugin_kind kind, const char *sr_type,
                 const char *in, size_t len, FILE *out);
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

/* types.c: v5 records. */
json_t *smapi_volume(const struct zl_volume *v, const char *sr_type, const char *sr_key);
json_t *smapi_sr_stat(const struct zl_sr_stat *s);
json_t *smapi_query(enum plugin_kind kind, const char *sr_type);
char *smapi_volume_uri(const char *sr_type, const char *sr_key, const char *key);

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

#endif
