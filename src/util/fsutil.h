/* fsutil.h: small filesystem helpers with error.h reporting.
 *
 * All paths are relative to a directory fd (openat family) so that callers
 * stay confined to a directory they opened once.  All fds are O_CLOEXEC.
 */
#ifndef ZL_FSUTIL_H
#define ZL_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Write buf to dirfd/name (a name, not a path) atomically: a temporary file in the same
 * directory, then renameat().  With durable, the file and the directory are fsync()ed so
 * the new content survives power loss.  Returns 0 or -1 (error set). */
int zl_write_file_atomic(int dirfd, const char *name, const void *buf, size_t len,
                         bool durable);
/* The same, with the temporary made in tmpdir (on the same filesystem as
 * dirfd): an SR's scratch directory, where recovery finds the temporaries
 * of writers that died.  Every temporary is flock()ed by its writer for
 * as long as it exists, so a lockable one is a dead writer's. */
int zl_write_file_atomic_via(int tmpdir, int dirfd, const char *name, const void *buf,
                             size_t len, bool durable);
/* Is name one of zl_tmp_name's? */
bool zl_tmp_name_is(const char *name);
/* Remove the temporaries of dead writers in dirfd; returns how many. */
int zl_sweep_temporaries(int dirfd);
/* The same (durable), but only if dirfd/name does not exist yet: the
 * temporary is hard-linked as name, which fails with EEXIST (also on NFS)
 * when another writer published first. */
int zl_write_file_new(int dirfd, const char *name, const void *buf, size_t len);

/* Read the whole of dirfd/name (at most max bytes, else EFBIG) into a
 * NUL-terminated malloc()ed buffer.  Returns 0 or -1 with errno (ENOENT when
 * missing; the error message is set in all cases). */
int zl_read_file_at(int dirfd, const char *name, size_t max, char **buf, size_t *len);

int zl_fsync_dir(int dirfd);

/* Full read/write, retrying on EINTR and short transfers. */
int zl_pwrite_all(int fd, const void *buf, size_t len, off_t off);
int zl_pread_all(int fd, void *buf, size_t len, off_t off); /* short file -> EIO */
int zl_write_all(int fd, const void *buf, size_t len);      /* pipes, sockets */

/* Share the extents of in with out (FICLONE).  Returns 0, or -1 with errno
 * EOPNOTSUPP/EXDEV/EINVAL/ENOTTY when the filesystem cannot reflink (no error
 * message is set in that case: the caller falls back). */
int zl_reflink(int in, int out);

/* Copy in to out preserving holes: only the data segments (SEEK_DATA /
 * SEEK_HOLE) are copied, with copy_file_range() where it works and
 * read/write otherwise; out ends up exactly size bytes long.  *copied (may
 * be NULL) receives the number of data bytes copied. */
int zl_copy_sparse(int in, int out, off_t size, uint64_t *copied);

/* A copy that reports progress and may write into storage that already
 * reads as zeros (a new thin volume, a zvol: "fresh"): then zero blocks of
 * the source are not written (they stay holes) and out is never truncated
 * (it may be a block device).  Otherwise as zl_copy_sparse.  cb, if set,
 * gets the data bytes done so far and the total found by a first pass over
 * the source's data segments (cheap: SEEK_DATA/SEEK_HOLE only). */
typedef void (*zl_copy_cb)(void *opaque, uint64_t done, uint64_t total);
struct zl_copy_opts {
  bool fresh;
  zl_copy_cb cb;
  void *opaque;
};
int zl_copy_data(int in, int out, uint64_t size, const struct zl_copy_opts *o,
                 uint64_t *copied);

/* Reflink when possible, else zl_copy_sparse.  *reflinked (may be NULL)
 * tells which happened. */
int zl_clone_or_copy(int in, int out, off_t size, bool *reflinked);

/* Progress of a copy: fn(opaque, done, total) with the bytes of in
 * covered so far (holes count), after each piece of at most 64 MiB and at
 * the end; never for a reflink.  fn NULL: nobody listens.  The listener
 * decides how often to show it. */
struct zl_copy_progress {
  void (*fn)(void *opaque, uint64_t done, uint64_t total);
  void *opaque;
};
int zl_copy_sparse_progress(int in, int out, off_t size, uint64_t *copied,
                            const struct zl_copy_progress *p);
int zl_clone_or_copy_progress(int in, int out, off_t size, bool *reflinked,
                              const struct zl_copy_progress *p);

/* A unique temporary name for dirfd: ".<base>.tmp.<pid>.<random>".  Names
 * starting with '.' are never volume keys. */
/* This boot's id (/proc/sys/kernel/random/boot_id), "" if unknown. */
void zl_boot_id(char *out, size_t len);
void zl_tmp_name(char *out, size_t outlen, const char *base);

#endif
