/* file.h: private declarations of the file backend, by source file.
 *
 * Layout of a file SR (the directory given as device-config:path):
 *   <dir>/<key>.img          the volume: a raw, normally sparse file
 *   <dir>/<key>.meta.json    its metadata (the core's object), replaced
 *                            atomically; its presence commits the volume
 *   <dir>/.zfs-live/         private area: sr.json, lock, locks/, journal/,
 *                            made-dir (we created <dir> and may remove it)
 *   <dir>/.<name>.tmp.*      temporaries, never volume names
 * Every access is relative to the SR directory fd with O_NOFOLLOW, and keys
 * are validated by the core, so no key or name can reach outside <dir>.
 */
#ifndef ZL_BACKEND_FILE_H
#define ZL_BACKEND_FILE_H

#include <limits.h>
#include <stdbool.h>

#include "backend/backend.h"
#include "util/fault.h"
#include "util/keys.h"
#include "util/rundir.h"

#define FILE_IMG_SUFFIX  ".img"
#define FILE_META_SUFFIX ".meta.json"
#define FILE_MADE_DIR    "made-dir"

struct file_sr {
  int reflink; /* -1 not probed, 0 no, 1 yes */
};

/* place.c: the place of an SR (device-config:path) */
/* config's "path" (a string, within bounds) in *path; -1 with an error. */
int file_config_path(const json_t *config, const char **path);
/* The canonical form of path in out (PATH_MAX), *exists whether it is
 * there; -1 with an error. */
int file_canonical(const char *path, char *out, bool *exists);
/* NULL if an SR may be made at canon, else why not (in why). */
const char *file_why_not(const char *canon, bool exists, char *why, size_t len);
int file_sr_probe(const json_t *config, json_t *results);

/* vol.c: names of a volume's files */
void file_img_name(char *buf, size_t len, const char *key);
void file_meta_name(char *buf, size_t len, const char *key);
int file_vol_list(struct zl_store *sr, zl_vol_cb cb, void *opaque);
int file_vol_get(struct zl_store *sr, const char *key, json_t **meta,
                 struct zl_vol_info *info);
int file_vol_create(struct zl_store *sr, const char *key, int64_t size, bool thick,
                    const json_t *meta, struct zl_vol_info *out);
int file_vol_copy(struct zl_store *sr, const char *src, const char *dst,
                  enum zl_copy_kind kind, bool thick, const json_t *meta,
                  const struct zl_vol_info *src_info, struct zl_vol_info *out);
int file_vol_discard(struct zl_store *sr, const char *key);
int file_vol_destroy(struct zl_store *sr, const char *key);
int file_vol_resize(struct zl_store *sr, const char *key, int64_t size, bool thick);
int file_vol_revert(struct zl_store *sr, const char *key, const char *snap, bool thick);
int file_vol_set_meta(struct zl_store *sr, const char *key, const json_t *meta);
int file_vol_open(struct zl_store *sr, const char *key, int flags);
int file_vol_changes(struct zl_store *sr, const char *from, const char *to,
                     zl_range_fn cb, void *opaque);
int file_vol_data_destroy(struct zl_store *sr, const char *key);
/* adopt.c */
int file_vol_adopt(struct zl_store *sr, const char *key, const char *source,
                   const json_t *meta, struct zl_vol_info *out);
int file_vol_adopt_recover(struct zl_store *sr, const char *key, const char *source,
                           bool committed);

#endif
