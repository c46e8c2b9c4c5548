/* sandbox.h: the fuzzers' directory tree: emptied and restored from a
 * template before every input, checked after it.  Helpers abort on any
 * failure (a broken sandbox is a broken run, not a finding). */
#ifndef ZL_FUZZ_SANDBOX_H
#define ZL_FUZZ_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Print what failed (with errno) and abort. */
void sb_die(const char *what) __attribute__((noreturn));
/* Remove everything below the directory dfd (symlinks are not followed). */
void sb_rm_contents(int dfd);
/* Copy the tree below src into dst (empty): directories and regular files
 * (sparse), with their modes. */
void sb_copy_tree(int src, int dst);
/* Entries of the directory dfd; their names, space-separated, into names. */
int sb_count(int dfd, char *names, size_t len);
/* Descriptors open in this process. */
int sb_open_fds(void);
/* Is the absolute path, with "." and ".." resolved lexically, dir or
 * below it?  (dir: canonical.)  False for a relative path. */
bool sb_path_within(const char *path, const char *dir);

/* A hash of the tree below dfd: names, types, sizes, and the content of
 * files up to 64 KiB; entries for which skip(relative path) is true are
 * left out. */
uint64_t sb_digest(int dfd, bool (*skip)(const char *rel));

#endif
