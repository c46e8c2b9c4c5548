/* cleanup.h: scope-bound cleanup, after nbdkit's common/utils/cleanup.h.
 *
 * CLEANUP_FREE char *s = ...;   free()d when s goes out of scope.
 * CLEANUP_CLOSE int fd = -1;    close()d if >= 0.
 * CLEANUP_JSON json_t *j = ...; json_decref()d.
 * CLEANUP_DIR DIR *d = ...;     closedir()d.
 *
 * To hand ownership out of the scope, set the variable to NULL / -1 first
 * (see TAKE_PTR / TAKE_FD).
 */
#ifndef ZL_CLEANUP_H
#define ZL_CLEANUP_H

#include <dirent.h>
#include <jansson.h>

void zl_cleanup_free(void *ptr);
void zl_cleanup_close(int *fd);
void zl_cleanup_json(json_t **j);
void zl_cleanup_dir(DIR **d);

#define CLEANUP_FREE  __attribute__((cleanup(zl_cleanup_free)))
#define CLEANUP_CLOSE __attribute__((cleanup(zl_cleanup_close)))
#define CLEANUP_JSON  __attribute__((cleanup(zl_cleanup_json)))
#define CLEANUP_DIR   __attribute__((cleanup(zl_cleanup_dir)))

#define TAKE_PTR(p)                                                                      \
  ({                                                                                     \
    __typeof__(p) take_ptr_tmp_ = (p);                                                   \
    (p) = NULL;                                                                          \
    take_ptr_tmp_;                                                                       \
  })
#define TAKE_FD(fd)                                                                      \
  ({                                                                                     \
    int take_fd_tmp_ = (fd);                                                             \
    (fd) = -1;                                                                           \
    take_fd_tmp_;                                                                        \
  })

#endif
