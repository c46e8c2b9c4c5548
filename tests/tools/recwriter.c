/* recwriter: the migration test guest's workload (runs as PID 1's child in a
 * busybox initramfs, built static at test time by tests/integration/guest.py).
 *
 * Usage: recwriter DEVICE RUN_ID INTERVAL_MS
 *
 * Writes record i (i = 0, 1, ...) at offset i * 4096 of DEVICE, opened with
 * O_DIRECT | O_DSYNC, and makes it durable with fdatasync before it reports
 * it: only then does it print "REC <i>\n" on stdout (the serial console).
 * A record (REC_SIZE bytes, little-endian):
 *   0  u64 magic   REC_MAGIC ("ZLRECv01")
 *   8  u64 index   i
 *  16  u64 run     RUN_ID
 *  24  u64 sum     FNV-1a 64 of the whole record with this field zero
 *  32  ...         payload: xorshift64 stream seeded by (run, i)
 * It stops at the end of the disk (no wrap: every reported record stays
 * checkable), printing "END <count>"; on an I/O error it prints
 * "ERR <i> <errno>" and exits 1.  Between records it sleeps INTERVAL_MS, so
 * a migration lands in the middle of the stream.  It starts with
 * "START run=<run> records=<n>". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { REC_SIZE = 4096 };
#define REC_MAGIC 0x3130764345524c5aULL /* "ZLRECv01" read as little-endian */

static uint64_t
fnv1a(const unsigned char *p, size_t n)
{
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

static void
put64(unsigned char *p, uint64_t v)
{
  for (int k = 0; k < 8; k++)
    p[k] = (unsigned char)(v >> (8 * k));
}

/* Fill rec with record i of run. */
static void
make_record(unsigned char *rec, uint64_t i, uint64_t run)
{
  uint64_t x = (run ^ (i * 0x9e3779b97f4a7c15ULL)) | 1;
  memset(rec, 0, REC_SIZE);
  put64(rec, REC_MAGIC);
  put64(rec + 8, i);
  put64(rec + 16, run);
  for (size_t off = 32; off < REC_SIZE; off += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    put64(rec + off, x);
  }
  put64(rec + 24, fnv1a(rec, REC_SIZE));
}

static void
say(const char *text)
{
  /* one write per line, so console lines do not interleave */
  size_t n = strlen(text);
  while (n > 0) {
    ssize_t w = write(1, text, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return;
    text += w;
    n -= (size_t)w;
  }
}

int
main(int argc, char **argv)
{
  if (argc != 4) {
    say("usage: recwriter DEVICE RUN_ID INTERVAL_MS\n");
    return 2;
  }
  uint64_t run = strtoull(argv[2], NULL, 10);
  long interval_ms = strtol(argv[3], NULL, 10);
  int fd = open(argv[1], O_RDWR | O_DIRECT | O_DSYNC);
  char line[128];
  if (fd < 0) {
    snprintf(line, sizeof line, "ERR open %d\n", errno);
    say(line);
    return 1;
  }
  off_t end = lseek(fd, 0, SEEK_END);
  if (end < 0) {
    snprintf(line, sizeof line, "ERR size %d\n", errno);
    say(line);
    return 1;
  }
  uint64_t size = (uint64_t)end;
  uint64_t count = size / REC_SIZE;
  unsigned char *rec = aligned_alloc(REC_SIZE, REC_SIZE);
  if (!rec)
    return 1;
  snprintf(line, sizeof line, "START run=%llu records=%llu\n", (unsigned long long)run,
           (unsigned long long)count);
  say(line);
  struct timespec pause = {interval_ms / 1000, (interval_ms % 1000) * 1000000L};
  for (uint64_t i = 0; i < count; i++) {
    make_record(rec, i, run);
    ssize_t w;
    do
      w = pwrite(fd, rec, REC_SIZE, (off_t)(i * REC_SIZE));
    while (w < 0 && errno == EINTR);
    if (w != REC_SIZE || fdatasync(fd) != 0) {
      snprintf(line, sizeof line, "ERR %llu %d\n", (unsigned long long)i,
               w < 0 ? errno : EIO);
      say(line);
      return 1;
    }
    snprintf(line, sizeof line, "REC %llu\n", (unsigned long long)i);
    say(line);
    if (interval_ms > 0)
      nanosleep(&pause, NULL);
  }
  snprintf(line, sizeof line, "END %llu\n", (unsigned long long)count);
  say(line);
  return 0;
}
