/* bitmap.c: the qemu:dirty-bitmap:<snapshot> meta context.
 *
 * An export of a volume (or of a snapshot) offers one bitmap per CBT
 * snapshot of the same volume: the blocks changed since that snapshot, as
 * qemu's NBD server reports a dirty bitmap (flag 1 = changed), so that
 * qemu-img, nbdinfo --map and backup tools read changes from the export.
 * The bitmap is computed when the client picks the export (NBD_OPT_GO) and
 * does not move after: a writable export's later writes are not in it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "nbd/nbd.h"
#include "util/error.h"

#include "util/banned.h" /* last: after every declaration */

#define EXTENT_MAX UINT32_C(0xffff0000) /* one u32 extent, 64 KiB aligned */

char **
nbd_bitmap_names(const struct nbd_export *e)
{
  struct zl_sr *sr = zl_sr_open(e->sr_type, e->sr_key);
  struct zl_volume *vols = NULL, self;
  size_t n = 0, k = 0;
  char **names = NULL;

  if (!sr)
    return NULL;
  if (zl_vol_stat(sr, e->vol_key, &self) == -1)
    goto out;
  const char *base = self.read_only ? self.snapshot_of : self.key;
  if (base && zl_sr_ls(sr, &vols, &n) == 0 && (names = calloc(n + 1, sizeof *names))) {
    for (size_t i = 0; i < n; i++) {
      const struct zl_volume *v = &vols[i];
      if (v->read_only && v->cbt_enabled && v->snapshot_of &&
          strcmp(v->snapshot_of, base) == 0 && strcmp(v->key, e->vol_key) != 0)
        names[k++] = strdup(v->key);
    }
  }
  zl_volume_list_free(vols, n);
  zl_volume_free(&self);
out:
  zl_sr_close(sr);
  return names;
}

int
nbd_bitmap_load(const struct nbd_export *e, const char *from, struct zl_bitmap *out)
{
  struct zl_sr *sr = zl_sr_open(e->sr_type, e->sr_key);
  if (!sr)
    return -1;
  int r = zl_vol_changed_blocks(sr, from, e->vol_key, out);
  zl_sr_close(sr);
  return r;
}

/* One extent per run of blocks in one state, cut at EXTENT_MAX and at the
 * end of the request; blocks past the map read as clean. */
int
nbd_bitmap_extents(const struct zl_bitmap *m, uint64_t off, uint64_t len, bool one,
                   uint32_t *pairs, int max)
{
  const uint64_t g = m->granularity ? m->granularity : ZL_CBT_GRANULARITY; /* unloaded */
  uint64_t pos = off, end = off + len;
  int n = 0;

  while (pos < end && n < max && !(one && n == 1)) {
    uint64_t stop = end - pos > EXTENT_MAX ? pos + EXTENT_MAX : end;
    uint64_t b = pos / g;
    bool dirty = zl_bitmap_test(m, b);
    uint64_t next = zl_bitmap_run_end(m, b, stop / g + (stop % g != 0)) * g;
    if (next > stop)
      next = stop;
    pairs[2 * n] = (uint32_t)(next - pos);
    pairs[2 * n + 1] = dirty ? NBD_STATE_DIRTY : 0;
    n++;
    pos = next;
  }
  return n;
}
