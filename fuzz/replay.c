/* replay.c: a main() for the libFuzzer harnesses without libFuzzer, so the
 * normal build (gcc, ASan+UBSan) runs each harness over its seed corpus:
 *
 *   replay-<harness> FILE|DIR...
 *
 * Files are run in name order, each in a buffer of exactly its size.  A
 * violated invariant aborts (the harness's own checks) and the sanitizers
 * report as usual.  Exit status 0 when every input ran; the number of
 * inputs the harness refused to run (returned -1) is printed. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/banned.h" /* last: after every declaration */

/* optional, as for libFuzzer */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int ran, refused;

static void
run_file(const char *path)
{
  FILE *f = fopen(path, "rb");
  struct stat st;

  if (!f || fstat(fileno(f), &st) == -1) {
    perror(path);
    exit(2);
  }
  uint8_t *buf = malloc(st.st_size ? (size_t)st.st_size : 1);
  if (!buf || fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
    perror(path);
    exit(2);
  }
  fclose(f);
  if (LLVMFuzzerTestOneInput(buf, (size_t)st.st_size) == -1)
    refused++;
  ran++;
  free(buf);
}

static int
by_name(const struct dirent **a, const struct dirent **b)
{
  return strcmp((*a)->d_name, (*b)->d_name);
}

static int
regular(const struct dirent *e)
{
  return e->d_name[0] != '.';
}

int
main(int argc, char **argv)
{
  if (LLVMFuzzerInitialize)
    LLVMFuzzerInitialize(&argc, &argv);
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) == -1) {
      perror(argv[i]);
      return 2;
    }
    if (!S_ISDIR(st.st_mode)) {
      run_file(argv[i]);
      continue;
    }
    struct dirent **list;
    int n = scandir(argv[i], &list, regular, by_name);
    if (n < 0) {
      perror(argv[i]);
      return 2;
    }
    for (int j = 0; j < n; j++) {
      char path[4096];
      snprintf(path, sizeof path, "%s/%s", argv[i], list[j]->d_name);
      run_file(path);
      free(list[j]);
    }
    free(list);
  }
  printf("%d inputs, %d refused by the harness\n", ran, refused);
  return 0;
}
