/* paths.h: which directories may hold volumes, after Ganeti's
 * file-storage design: never in or below a system directory (the
 * forbidden prefixes), and, where an allowed-paths list is configured
 * (Ganeti's file-storage-paths), only at or below one of its entries. */
#ifndef ZL_PATHS_H
#define ZL_PATHS_H

#include <stdbool.h>
#include <stddef.h>

/* The forbidden prefix path is equal to or below, or NULL: /boot /dev
 * /etc /home /proc /root /sys and {,/usr,/usr/local}/{bin,lib,lib32,lib64,
 * sbin}.  path must be canonical (absolute, no "." or ".."). */
const char *zl_forbidden_prefix(const char *path);

/* Is path equal to or below dir (both canonical)? */
bool zl_path_within(const char *path, const char *dir);

/* Check canonical path against the allowed-paths file (one absolute
 * directory per line; blank lines, '#' comments and relative entries are
 * ignored, as Ganeti does).  0 if allowed; -1 with a clear error if the
 * file is missing or names no valid directory (then nothing is allowed),
 * if path is forbidden, or if it is outside every entry. */
int zl_path_allowed(const char *path, const char *allowed_file);

/* Canonical form of a path that may not exist yet: realpath() of its
 * longest existing ancestor, then the remaining components (which must
 * not be "." or "..").  -1 with an error when path is not absolute. */
int zl_path_canonical(const char *path, char *out, size_t len);

/* Is dir (canonical) a mount point on this host (/proc/self/mountinfo)? */
bool zl_path_is_mountpoint(const char *dir);

/* The type of the filesystem fd is on, as mountinfo (a file of
 * /proc/self/mountinfo's form) names it ("ext4", "fuse.glusterfs",
 * "nfs4"), into out: the first mount whose major:minor is fd's st_dev.
 * -1 with errno ENOENT (and an error) when no mount has that device
 * (btrfs subvolumes report devices of their own) or the file cannot be
 * read. */
int zl_fd_fstype(int fd, const char *mountinfo, char *out, size_t len);

/* Is fstype a network or cluster filesystem, one whose files other hosts
 * can see (nfs, nfs4, fuse.glusterfs, ceph, fuse.ceph-fuse, ocfs2, gfs2)? */
bool zl_fstype_shared(const char *fstype);

/* Is path (canonical) on the filesystem this host's mount configuration
 * says it is on?  The deepest mount point declared for path or one of its
 * ancestors -- a mount point of fstab (one of /etc/fstab's form), or the
 * Where= of a .mount or .automount unit in units_dir -- must be mounted
 * now.  0 when it is (or nothing is declared: the root filesystem);
 * -1 (kind NO_SR, ENOENT) naming the mount point and what should be
 * mounted there when it is not.  Unreadable files declare nothing. */
int zl_path_mount_check(const char *path, const char *fstab, const char *units_dir);

/* Where this host declares its mounts: $ZFS_LIVE_FSTAB, else /etc/fstab;
 * $ZFS_LIVE_MOUNT_UNITS, else /etc/systemd/system (tests override them). */
const char *zl_host_fstab(void);
const char *zl_host_mount_units(void);

#endif
