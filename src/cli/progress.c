/* progress.c: progress of long operations as a person or a program sees
 * it (contract in cli.h). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

#include "util/banned.h" /* last: after every declaration */

static long long
now_ns(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void
bar(struct cli_progress *st, uint64_t done, uint64_t total, double rate, double eta)
{
  enum { WIDTH = 24 };
  double frac = total ? (double)done / (double)total : 0;
  int fill = (int)(frac * WIDTH);
  char b[WIDTH + 1];

  for (int i = 0; i < WIDTH; i++)
    b[i] = i < fill ? '=' : i == fill ? '>' : ' ';
  b[WIDTH] = '\0';
  if (done == total) {
    fprintf(stderr, "\r%s %3d%% [%s] %8.1f MiB/s  done    \n", st->what, 100, b,
            rate / (1 << 20));
    st->drawn = false;
    return;
  }
  long e = eta < 0 ? 0 : (long)(eta + 0.5);
  fprintf(stderr, "\r%s %3d%% [%s] %8.1f MiB/s  ETA %ld:%02ld:%02ld", st->what,
          (int)(frac * 100), b, rate / (1 << 20), e / 3600, e / 60 % 60, e % 60);
  st->drawn = true;
  fflush(stderr);
}

static void
report(void *opaque, uint64_t done, uint64_t total)
{
  struct cli_progress *st = opaque;
  double secs = (double)(now_ns() - st->start_ns) / 1e9;
  double rate = secs > 0 ? (double)done / secs : 0;
  double eta = rate > 0 ? (double)(total - done) / rate : -1;
  long long t = now_ns();

  if (done < total && t - st->last_ns < 250000000LL)
    return; /* producers may report often; a person reads a few a second */
  st->last_ns = t;

  if (st->mode == 1) {
    bar(st, done, total, rate, eta);
    return;
  }
  json_t *j = json_pack("{s:{s:s, s:I, s:I, s:f, s:f}}", "progress", "what", st->what,
                        "done", (json_int_t)done, "total", (json_int_t)total, "rate",
                        rate, "eta_s", eta < 0 ? 0.0 : eta);
  char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
  if (s)
    fprintf(stderr, "%s\n", s);
  free(s);
  json_decref(j);
  fflush(stderr);
}

void
cli_progress_init(struct zl_progress *p, struct cli_progress *st, const char *what)
{
  st->what = what;
  st->mode = cli_json ? 2 : isatty(STDERR_FILENO) ? 1 : 0;
  st->start_ns = now_ns();
  st->last_ns = 0;
  st->drawn = false;
  p->fn = st->mode ? report : NULL;
  p->opaque = st;
}

void
cli_progress_done(struct cli_progress *st)
{
  if (st->drawn)
    fputc('\n', stderr); /* cut off before the end: keep the last line */
  st->drawn = false;
}
