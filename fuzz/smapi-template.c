/* smapi-template.c: the SRs every input of fuzz-smapi.c starts from (see
 * smapi-template.h).  Made once, through the plugin's own calls where the
 * keys may be random and through the core where they are fixed. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/core.h"
#include "core/io/io.h"
#include "fuzz/sandbox.h"
#include "fuzz/smapi-template.h"
#include "util/error.h"

#include "util/banned.h" /* last: after every declaration */

static const char *area;
static smapi_template_call call;

/* A request that must succeed (call aborts otherwise). */
static void must(const char *method, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
must(const char *method, const char *fmt, ...)
{
  char *in = NULL;
  va_list ap;

  va_start(ap, fmt);
  int n = vasprintf(&in, fmt, ap);
  va_end(ap);
  if (n < 0)
    sb_die("vasprintf");
  call(method, in);
  free(in);
}

static void
core(int r, const char *what)
{
  if (r == -1) {
    fprintf(stderr, "fuzz-smapi: template: %s: %s\n", what, zl_error_msg());
    abort();
  }
}

static void
write_at(struct zl_sr *sr, const char *key, off_t off, const char *text)
{
  int fd = zl_vol_open(sr, key, O_RDWR);
  core(fd, key);
  /* down the volume's write path, as every writer goes (tracked) */
  struct zl_io *io = zl_io_open(sr, key, fd, false);
  struct zl_io_queue *q = io ? zl_io_queue_new(1, true) : NULL;
  core(q ? 0 : -1, key);
  struct zl_io_req r[2] = {
      {.op = ZL_IO_WRITE, .buf = (void *)text, .off = (uint64_t)off, .len = strlen(text)},
      {.op = ZL_IO_FLUSH},
  };
  zl_io_batch(io, q, r, 2);
  if (r[0].result != 0 || r[1].result != 0)
    sb_die("write");
  zl_io_queue_free(q);
  zl_io_close(io);
  close(fd);
}

static void
make_sr(void)
{
  char sr_path[PATH_MAX + 8];
  struct zl_volume v;
  struct zl_create_args a = {.name = "disk",
                             .description = "",
                             .size = 16 << 20,
                             .provisioning = ZL_PROV_DEFAULT};

  snprintf(sr_path, sizeof sr_path, "%s/sr", area);

  must("SR.create",
       "{\"dbg\":\"t\",\"uuid\":\"" SR_UUID "\",\"configuration\":{\"path\":\"%s\"},"
       "\"name\":\"fuzz\",\"description\":\"the template\"}",
       sr_path);
  struct zl_sr *sr = zl_sr_open("file-live", sr_path);
  core(sr ? 0 : -1, "open");
#define VOL(k, call) (core(call, k), zl_volume_free(&v))
  a.key = K_VOL;
  VOL(K_VOL, zl_vol_create(sr, &a, &v));
  write_at(sr, K_VOL, 0, "the first block");
  write_at(sr, K_VOL, 5 << 20, "five MiB in");
  core(zl_vol_set(sr, K_VOL, "vdi-type", "user"), "set");
  core(zl_vol_set(sr, K_VOL, "_sm_config_x", "y"), "set");
  core(zl_vol_set_description(sr, K_VOL, "line one\nline two\t\"quoted\""), "describe");
  VOL(K_SNAP, zl_vol_snapshot(sr, K_VOL, K_SNAP, &v));
  write_at(sr, K_VOL, 1 << 20, "after the snapshot");
  VOL(K_CLONE, zl_vol_clone(sr, K_SNAP, K_CLONE, &v));
  core(zl_vol_set(sr, K_VOL, "clone-on-boot", K_CLONE), "set");

  a.key = K_CBT, a.name = "tracked", a.size = 37 << 20;
  VOL(K_CBT, zl_vol_create(sr, &a, &v));
  core(zl_vol_enable_cbt(sr, K_CBT), "enable cbt");
  write_at(sr, K_CBT, 0, "one");
  VOL(K_CBT_S1, zl_vol_snapshot(sr, K_CBT, K_CBT_S1, &v));
  write_at(sr, K_CBT, 3 << 20, "two");
  VOL(K_CBT_S2, zl_vol_snapshot(sr, K_CBT, K_CBT_S2, &v));
  write_at(sr, K_CBT, (37 << 20) - 3, "end");
  VOL(K_CBT_S3, zl_vol_snapshot(sr, K_CBT, K_CBT_S3, &v));
  core(zl_vol_data_destroy(sr, K_CBT_S1), "data destroy");

  a.key = K_ELSE, a.name = "elsewhere", a.size = 1 << 20;
  VOL(K_ELSE, zl_vol_create(sr, &a, &v));
  setenv("ZFS_LIVE_HOST_UUID", "fuzz-host-1111-other", 1);
  core(zl_dp_activate(sr, K_ELSE, "7", false), "activate elsewhere");
  setenv("ZFS_LIVE_HOST_UUID", SMAPI_TEMPLATE_HOST, 1);
  a.key = K_NONPERS, a.name = "non-persistent";
  VOL(K_NONPERS, zl_vol_create(sr, &a, &v));
  core(zl_dp_open(sr, K_NONPERS, false), "open non-persistent");
#undef VOL
  zl_sr_close(sr);
}

/* Run fn in a child killed at the fault point (the way a plugin process
 * dies: no cleanup, locks released by the kernel). */
static void
crash_at(const char *point, void (*fn)(struct zl_sr *), struct zl_sr *sr)
{
  pid_t pid = fork();
  int st;

  if (pid == -1)
    sb_die("fork");
  if (pid == 0) {
    setenv("ZFS_LIVE_FAULT", point, 1);
    fn(sr);
    _exit(3); /* the point was not reached */
  }
  if (waitpid(pid, &st, 0) != pid || !WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL) {
    fprintf(stderr, "fuzz-smapi: template: %s was not reached\n", point);
    abort();
  }
}

static void
cut_create(struct zl_sr *sr)
{
  struct zl_volume v;
  struct zl_create_args a = {.key = C_NEW,
                             .name = "cut",
                             .description = "",
                             .size = 1 << 20,
                             .provisioning = ZL_PROV_DEFAULT};
  zl_vol_create(sr, &a, &v);
}

static void
cut_snapshot(struct zl_sr *sr)
{
  struct zl_volume v;
  zl_vol_snapshot(sr, C_VOL, NULL, &v);
}

static void
cut_resize(struct zl_sr *sr)
{
  zl_vol_resize(sr, C_VOL, 3 << 20);
}

static void
cut_revert(struct zl_sr *sr)
{
  zl_vol_revert(sr, C_SNAP, C_VOL);
}

static void
cut_destroy(struct zl_sr *sr)
{
  zl_vol_destroy(sr, C_GONE);
}

static void
cut_cbt_snapshot(struct zl_sr *sr)
{
  struct zl_volume v;
  zl_vol_snapshot(sr, C_CBT, NULL, &v);
}

/* area/crashed-<op>: the volumes above, then a call killed at point.  One
 * per SR: the next call of a child would recover the one before. */
static void
make_crashed(const char *op, const char *point, void (*cut)(struct zl_sr *))
{
  char path[PATH_MAX + 16];
  struct zl_volume v;
  struct zl_create_args a = {
      .name = "c", .description = "", .size = 2 << 20, .provisioning = ZL_PROV_DEFAULT};

  static unsigned crashed;

  snprintf(path, sizeof path, "%s/crashed-%s", area, op);
  must("SR.create",
       "{\"dbg\":\"t\",\"uuid\":\"cccccccc-cccc-4ccc-8ccc-%012x\","
       "\"configuration\":{\"path\":\"%s\"},\"name\":\"crashed\",\"description\":\"\"}",
       ++crashed, path);
  struct zl_sr *sr = zl_sr_open("file-live", path);
  core(sr ? 0 : -1, "open crashed");
#define VOL(k, call) (core(call, k), zl_volume_free(&v))
  a.key = C_VOL;
  VOL(C_VOL, zl_vol_create(sr, &a, &v));
  write_at(sr, C_VOL, 0, "before");
  VOL(C_SNAP, zl_vol_snapshot(sr, C_VOL, C_SNAP, &v));
  write_at(sr, C_VOL, 0, "after!");
  a.key = C_CBT;
  VOL(C_CBT, zl_vol_create(sr, &a, &v));
  core(zl_vol_enable_cbt(sr, C_CBT), "enable cbt");
  VOL(C_CBT1, zl_vol_snapshot(sr, C_CBT, C_CBT1, &v));
  write_at(sr, C_CBT, 1 << 20, "tracked");
  a.key = C_GONE;
  VOL(C_GONE, zl_vol_create(sr, &a, &v));
#undef VOL
  crash_at(point, cut, sr);
  zl_sr_close(sr);
}

void
smapi_template_make(const char *area_path, smapi_template_call fn)
{
  area = area_path;
  call = fn;
  make_sr();
  make_crashed("create", "create:data", cut_create);
  make_crashed("resize", "resize:journaled", cut_resize);
  make_crashed("snapshot", "snapshot:data", cut_snapshot);
  make_crashed("revert", "revert:copied", cut_revert);
  make_crashed("destroy", "destroy:unlisted", cut_destroy);
  make_crashed("cbt", "cbt-rotate:switched", cut_cbt_snapshot);
  must("SR.create",
       "{\"dbg\":\"t\",\"uuid\":\"eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee\","
       "\"configuration\":{\"path\":\"%s/empty\"},\"name\":\"empty\","
       "\"description\":\"\"}",
       area);
}
