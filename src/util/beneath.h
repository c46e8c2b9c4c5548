/* beneath.h: paths resolved beneath a directory, never through a symlink.
 *
 * Everything zfs-live keeps under an SR (its private area .zfs-live/ and
 * the volumes' files) and under its runtime directory is reached from a
 * directory fd opened once.  A symlink, FIFO or device planted anywhere on
 * the way must never make a call touch something outside, block, or open
 * a device.  So:
 *   - a relative path is walked one component at a time, each with
 *     O_NOFOLLOW | O_DIRECTORY (openat2 with RESOLVE_BENEATH |
 *     RESOLVE_NO_SYMLINKS does the same walk in the kernel where it exists);
 *     "", "." and ".." components are refused;
 *   - the last component of a file is opened with O_NOFOLLOW | O_NONBLOCK |
 *     O_NOCTTY and must be a regular file (fstat), else the fd is closed
 *     and the call fails: a FIFO cannot block us and nothing is read from
 *     or written to a device.
 * Errors: -1 with errno and a message naming the path (ELOOP for a
 * symlink, ENOTDIR for a non-directory on the way, EINVAL "not a regular
 * file"/"not a directory" for other planted objects, EXDEV for an escape).
 */
#ifndef ZL_BENEATH_H
#define ZL_BENEATH_H

#include <stdbool.h>
#include <sys/types.h>

/* The directory at path beneath dirfd.  create: make missing components
 * (mode 0700) on the way.  Returns an fd (O_RDONLY | O_DIRECTORY |
 * O_CLOEXEC) or -1; ENOENT without a message when !create and missing. */
int zl_dir_beneath(int dirfd, const char *path, bool create);

/* A regular file at path beneath dirfd, opened with flags (O_CREAT,
 * O_EXCL, O_TRUNC and the access mode are honoured; O_NONBLOCK is kept
 * only if asked for) and mode.  Returns an fd (O_CLOEXEC) or -1. */
int zl_file_beneath(int dirfd, const char *path, int flags, mode_t mode);

/* Split path into the fd of its parent directory beneath dirfd (create:
 * made if missing) and a pointer to its last component inside path.  For
 * unlinkat/renameat/mkdirat/fstatat on the last component, which never
 * follow a symlink there.  Returns the parent fd or -1. */
int zl_parent_beneath(int dirfd, const char *path, bool create, const char **last);

/* Remove parent/name (one component) and everything below it, never
 * following a symlink (a symlink is removed, not its target).  A missing
 * name is success.  Returns 0 or -1 (error set). */
int zl_remove_tree(int parent, const char *name);

/* Is every component of path (relative) a plain name? */
bool zl_path_relative_ok(const char *path);

#endif
