/* loop.h: loop block devices over files (for blkback/XenDisk and Ganeti),
 * with direct I/O where the file's filesystem allows it. */
#ifndef ZL_LOOP_H
#define ZL_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/* A loop device backed by the file open on fd: an existing one for the
 * same file if there is one (idempotent), else a new one.  Writes its path
 * into dev (at least 32 bytes).  readonly: LO_FLAGS_READ_ONLY.
 * *direct tells whether direct I/O is on.  Returns 0 or -1 (error set). */
int zl_loop_attach(int fd, bool readonly, char *dev, size_t devlen, bool *direct);

/* A new loop device over the file open on fd, never one that exists
 * already (callers that record their devices: Ganeti's attach). */
int zl_loop_setup(int fd, bool readonly, char *dev, size_t devlen, bool *direct);

/* Is dev a loop device backed by the file (st_dev, st_ino)? */
bool zl_loop_serves(const char *dev, dev_t file_dev, ino_t file_ino);

/* Does dev serve the file st describes as asked: bound to that file,
 * read-only exactly when readonly, and of the file's size?  A device that
 * differs only in size is made to take the file's size first
 * (LOOP_SET_CAPACITY: the file was resized since, maybe on another host).
 * 1 it does (reuse it), 0 it does not (set up another), never -1: what
 * cannot be checked does not fit. */
int zl_loop_fits(const char *dev, const struct stat *st, bool readonly);
/* Make dev take the new size of its file (after a resize). */
int zl_loop_refresh(const char *dev);
/* Is direct I/O on for loop device dev? */
bool zl_loop_direct(const char *dev);

/* The loop device backed by the file open on fd, if any (0 found, -1 with
 * errno ENOENT if none). */
int zl_loop_find(int fd, char *dev, size_t devlen);

/* How this process sets loop devices up: 1 with LOOP_CONFIGURE, -1 with
 * LOOP_SET_FD and friends (LOOP_CONFIGURE was refused: Linux < 5.8), 0 not
 * known yet (none set up so far). */
int zl_loop_configure_state(void);

/* Does this kernel take LOOP_CONFIGURE?  Asked of /dev/loop0 (else of
 * the first free loop device) with a configuration naming no file: 1 yes
 * (EBADF), 0 no (EINVAL, ENOTTY: an older kernel), -1 with the error set
 * when no loop device can be asked.  Binds nothing (LOOP_CTL_GET_FREE
 * may add a free device node, as `losetup -f` does). */
int zl_loop_probe_configure(void);

/* Release a loop device; gone already is fine. */
int zl_loop_detach(const char *dev);

#endif
