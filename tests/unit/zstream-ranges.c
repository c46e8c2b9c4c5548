/* zstream-ranges: print the changed ranges of one object of a zfs send
 * stream read on stdin (built with the tests; for manual use and for
 * tests/unit/data/make-streams.sh).
 *
 *   zfs send -i pool/fs@a pool/fs@b | zstream-ranges OBJECT [FROMGUID]
 *
 * prints one line per range, in stream order:
 *   W <offset> <length>      data written (WRITE, WRITE_EMBEDDED, WRITE_BYREF)
 *   F <offset> <length>      freed, reads as zeros (FREE, FREEOBJECTS)
 * where <length> is "end" for "to the end of the object", then on stderr a
 * summary line.  Exit status 0; 1 with the error on stderr for a bad stream
 * (the ranges printed before it must then be ignored); 2 for usage. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "backend/zfs/stream.h"
#include "util/error.h"

static int
print_range(void *opaque, uint64_t offset, uint64_t length, bool freed)
{
  (void)opaque;
  if (length == UINT64_MAX)
    printf("%c %" PRIu64 " end\n", freed ? 'F' : 'W', offset);
  else
    printf("%c %" PRIu64 " %" PRIu64 "\n", freed ? 'F' : 'W', offset, length);
  return 0;
}

static int
parse_u64(const char *s, uint64_t *v)
{
  char *end;

  errno = 0;
  *v = strtoull(s, &end, 0);
  return errno || end == s || *end ? -1 : 0;
}

int
main(int argc, char **argv)
{
  static char buf[1 << 20];
  struct zstream_info info;
  struct zstream *s;
  uint64_t object, fromguid = 0;
  ssize_t n;

  if (argc < 2 || argc > 3 || parse_u64(argv[1], &object) < 0 ||
      (argc == 3 && parse_u64(argv[2], &fromguid) < 0)) {
    fprintf(stderr, "usage: zstream-ranges OBJECT [FROMGUID] < stream\n");
    return 2;
  }
  if (!(s = zstream_new(object, fromguid, print_range, NULL)))
    goto err;
  while ((n = read(STDIN_FILENO, buf, sizeof buf)) != 0) {
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      zl_error(errno, "read stdin");
      goto err;
    }
    if (zstream_feed(s, buf, (size_t)n) < 0)
      goto err;
  }
  if (zstream_finish(s, &info) < 0)
    goto err;
  fprintf(stderr,
          "objset type %" PRIu32 ", fromguid 0x%016" PRIx64 ", toguid 0x%016" PRIx64
          ", %" PRIu64 " records, %" PRIu64 " bytes\n",
          info.objset_type, info.fromguid, info.toguid, info.records, info.bytes);
  zstream_free(s);
  return fflush(stdout) == 0 ? 0 : 1;

err:
  fflush(stdout);
  fprintf(stderr, "zstream-ranges: %s\n", zl_error_msg());
  zstream_free(s);
  return 1;
}
