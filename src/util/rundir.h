/* rundir.h: the host's runtime directory, $ZFS_LIVE_RUN or /run/zfs-live:
 * exports, attach records, loop devices, the NBD socket, ZFS SRs'
 * host-local state.  Everything below it is reached beneath its fd
 * (beneath.h). */
#ifndef ZL_RUNDIR_H
#define ZL_RUNDIR_H

#include <stdbool.h>

const char *zl_run_dir(void);
/* An fd on the directory itself (made when create). */
int zl_run_dirfd(bool create);
/* An fd on sub, resolved beneath it, never through a symlink (made with
 * its parents when create); -1 with ENOENT and no message when missing
 * and !create. */
int zl_run_subdir(const char *sub, bool create);
/* A host-wide lock, <run>/locks/<name> held exclusively (blocks): the fd
 * to close to let go, or -1. */
int zl_run_lock(const char *name);

#endif
