/* test-ganeti.c: the Ganeti front end's pure parts: the request parsed
 * from the environment, the Xen disk specs, the zvol device paths attach
 * prints on OpenZFS (STAND-IN for a host with /dev/zfs: the exact paths are
 * checked here; tests/integration/test_ganeti.py::test_zvol_attach runs
 * them for real where /dev/zfs exists), and the allowed-paths check. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/zfs/zfs.h"
#include "ganeti/ganeti.h"
#include "util/error.h"
#include "util/paths.h"

#define VOL "4559a5b4-8bcb-4763-8033-d1acee641014.ext.disk0"

static void
test_parse_create(void **state)
{
  (void)state;
  const char *env[] = {"VOL_NAME=" VOL,
                       "VOL_SIZE=10240",
                       "EXTP_POOL=tank/ganeti",
                       "EXTP_PROVIDER=zfs-live",
                       "EXTP_ACCESS=kernelspace",
                       "EXTP_COMPRESSION=zstd",
                       "EXTP_COPIES=2",
                       "VOL_UUID=x",
                       "PATH=/bin",
                       NULL};
  struct gnt_req r;

  assert_int_equal(gnt_parse(GNT_CREATE, (char *const *)env, &r), 0);
  assert_string_equal(r.vol_name, VOL);
  assert_int_equal(r.size, 10240LL << 20);
  assert_string_equal(r.pool, "tank/ganeti");
  assert_null(r.dir);
  assert_int_equal(r.ntune, 2);
  assert_string_equal(r.tune[0][0], "compression");
  assert_string_equal(r.tune[0][1], "zstd");
  assert_string_equal(r.tune[1][0], "copies");
}

static void
test_parse_errors(void **state)
{
  (void)state;
  struct {
    enum gnt_action a;
    const char *env[6];
    const char *words;
  } bad[] = {
      {GNT_ATTACH, {"EXTP_DIR=/srv/g", NULL}, "VOL_NAME is not set"},
      {GNT_CREATE,
       {"VOL_NAME=a", "VOL_SIZE=1e3", "EXTP_DIR=/srv/g", NULL},
       "not a number"},
      {GNT_CREATE, {"VOL_NAME=a", "VOL_SIZE=-1", "EXTP_DIR=/srv/g", NULL}, "negative"},
      {GNT_CREATE,
       {"VOL_NAME=a", "VOL_SIZE=99999999999999999999", "EXTP_DIR=/srv/g", NULL},
       "not a number"},
      {GNT_CREATE,
       {"VOL_NAME=a", "VOL_SIZE=9007199254740991", "EXTP_DIR=/srv/g", NULL},
       "too large"},
      {GNT_ATTACH, {"VOL_NAME=a/b", "EXTP_DIR=/srv/g", NULL}, "no '/'"},
      {GNT_ATTACH, {"VOL_NAME=.hidden", "EXTP_DIR=/srv/g", NULL}, "not a valid volume"},
      {GNT_ATTACH,
       {"VOL_NAME=a", "EXTP_DIR=/srv/g", "EXTP_Dir=x", NULL},
       "unknown parameter EXTP_Dir"},
      {GNT_ATTACH, {"VOL_NAME=a", NULL}, "neither EXTP_DIR nor EXTP_POOL"},
      {GNT_ATTACH, {"VOL_NAME=a", "EXTP_POOL=t", "EXTP_DIR=/x", NULL}, "both set"},
      {GNT_ATTACH,
       {"VOL_NAME=a", "EXTP_DIR=/x", "EXTP_SYNC=always", NULL},
       "applies to ZFS"},
      {GNT_ATTACH,
       {"VOL_NAME=a", "EXTP_POOL=t", "EXTP_SYNC=sometimes", NULL},
       "not one of: standard, always, disabled"},
      {GNT_ATTACH,
       {"VOL_NAME=a", "EXTP_POOL=t", "EXTP_COMPRESSION=a;b", NULL},
       "not a ZFS property value"},
      {GNT_OPEN,
       {"VOL_NAME=a", "EXTP_POOL=t", "VOL_OPEN_EXCLUSIVE=true", NULL},
       "True or False"},
      {GNT_GROW,
       {"VOL_NAME=a", "EXTP_POOL=t", "VOL_SIZE=10", "VOL_NEW_SIZE=9", NULL},
       "only grow"},
      {GNT_SNAPSHOT,
       {"VOL_NAME=a", "EXTP_POOL=t", "VOL_SNAPSHOT_NAME=a", NULL},
       "own name"},
      {GNT_SETINFO, {"VOL_NAME=a", "EXTP_POOL=t", NULL}, "VOL_METADATA"},
      {GNT_CREATE,
       {"VOL_NAME=a", "VOL_SIZE=1", "EXTP_DIR=/srv/g", "EXTP_MOUNTPOINT=srv", NULL},
       "neither yes nor an absolute path"},
      {GNT_ATTACH,
       {"VOL_NAME=a", "EXTP_POOL=t", "EXTP_MOUNTPOINT=/srv", NULL},
       "applies to file SRs"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct gnt_req r;
    assert_int_equal(gnt_parse(bad[i].a, (char *const *)bad[i].env, &r), -1);
    if (!strstr(zl_error_msg(), bad[i].words))
      fail_msg("case %zu: '%s' lacks '%s'", i, zl_error_msg(), bad[i].words);
  }
}

static void
test_parse_actions(void **state)
{
  (void)state;
  struct gnt_req r;
  const char *open_env[] = {"VOL_NAME=a", "EXTP_DIR=/srv/g", "VOL_OPEN_EXCLUSIVE=False",
                            NULL};
  const char *grow_env[] = {"VOL_NAME=a", "EXTP_DIR=/srv/g", "VOL_SIZE=10240",
                            "VOL_NEW_SIZE=12288", NULL};
  const char *verify_env[] = {"EXTP_DIR=/srv/g", NULL};

  assert_int_equal(gnt_parse(GNT_OPEN, (char *const *)open_env, &r), 0);
  assert_int_equal(r.exclusive, 0);
  assert_int_equal(gnt_parse(GNT_GROW, (char *const *)grow_env, &r), 0);
  assert_int_equal(r.new_size, 12288LL << 20);
  assert_int_equal(gnt_parse(GNT_VERIFY, (char *const *)verify_env, &r),
                   0); /* no volume needed */
  assert_int_equal(gnt_action_of("snapshot"), GNT_SNAPSHOT);
  assert_int_equal(gnt_action_of("Snapshot"), -1);
}

static void
test_xen_specs(void **state)
{
  (void)state;
  char out[256];
  /* the strings of Ganeti's hv_xen unit tests */
  assert_int_equal(
      gnt_xen_disk_spec("file", "/tmp/diskFirst", "sda", false, out, sizeof out), 0);
  assert_string_equal(out, "file:/tmp/diskFirst,sda,w");
  assert_int_equal(
      gnt_xen_disk_spec("blktap", "/tmp/diskTwo", "sdb", true, out, sizeof out), 0);
  assert_string_equal(out, "tap:aio:/tmp/diskTwo,sdb,r");
  assert_int_equal(
      gnt_xen_disk_spec("tap2", "/tmp/diskFour", "sdd", true, out, sizeof out), 0);
  assert_string_equal(out, "tap2:tapdisk:aio:/tmp/diskFour,sdd,r");
  assert_int_equal(gnt_xen_disk_spec("phy", "/dev/loop3", "xvda", false, out, sizeof out),
                   0);
  assert_string_equal(out, "phy:/dev/loop3,xvda,w");
  assert_int_equal(gnt_xen_disk_spec("qcow", "/x", "xvda", false, out, sizeof out), -1);
  assert_int_equal(gnt_xen_disk_spec("phy", "/x,y", "xvda", false, out, sizeof out), -1);
  assert_int_equal(gnt_xen_disk_spec("phy", "/x", "XVDA", false, out, sizeof out), -1);
}

static void
test_zvol_paths(void **state)
{
  (void)state;
  char out[256];
  zb_zvol_device("tank/ganeti/0f1e", VOL, false, out, sizeof out);
  assert_string_equal(out, "/dev/zvol/tank/ganeti/0f1e/" VOL);
  zb_zvol_device("tank/ganeti/0f1e", VOL ".snap", true, out, sizeof out);
  assert_string_equal(out, "/dev/zvol/tank/ganeti/0f1e/_zl-ro-" VOL ".snap");

  /* the command lines a Ganeti zvol volume and its snapshot's read clone
   * are made with on OpenZFS 2.2 */
  struct zb_caps c = {.flavour = ZB_OPENZFS, .zvols = true, .major = 2, .minor = 2};
  struct zargv a;
  struct zprop p = {"readonly", "on"};
  zcmd_clone(&a, &c, "tank/ganeti/0f1e/" VOL "@" VOL ".snap",
             "tank/ganeti/0f1e/_zl-ro-" VOL ".snap", &p, 1);
  char *line = za_join(&a);
  assert_string_equal(line, "zfs clone -o readonly=on tank/ganeti/0f1e/" VOL "@" VOL
                            ".snap tank/ganeti/0f1e/_zl-ro-" VOL ".snap");
  free(line);
  za_free(&a);
}

static void
test_allowed_paths(void **state)
{
  (void)state;
  char file[] = "/tmp/zl-paths-XXXXXX", canon[4096];
  int fd = mkstemp(file);
  const char *text = "# comment\n\n  /srv/ganeti/file-storage  \nrelative/dir\n/etc\n";
  assert_true(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text));
  close(fd);

  assert_int_equal(zl_path_allowed("/srv/ganeti/file-storage", file), 0);
  assert_int_equal(zl_path_allowed("/srv/ganeti/file-storage/a/b", file), 0);
  assert_int_equal(zl_path_allowed("/srv/ganeti/file-storage2", file), -1);
  assert_non_null(strstr(zl_error_msg(), "outside every directory"));
  assert_int_equal(zl_path_allowed("/etc/disks", file), -1); /* listed, forbidden */
  assert_non_null(strstr(zl_error_msg(), "system directory"));
  assert_int_equal(zl_path_allowed("/usr/local/lib/x", file), -1);
  assert_int_equal(zl_path_allowed("/srv/x", "/nonexistent/paths"), -1);
  assert_non_null(strstr(zl_error_msg(), "cannot be read"));
  unlink(file);

  assert_string_equal(zl_forbidden_prefix("/usr/lib64/x"), "/usr/lib64");
  assert_null(zl_forbidden_prefix("/usr/library"));
  assert_int_equal(zl_path_canonical("/nonexistent-zl/a//b/", canon, sizeof canon), 0);
  assert_string_equal(canon, "/nonexistent-zl/a/b");
  assert_int_equal(zl_path_canonical("/nonexistent-zl/../etc", canon, sizeof canon), -1);
  assert_int_equal(zl_path_canonical("rel", canon, sizeof canon), -1);
}

static void
write_file(const char *path, const char *text)
{
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  assert_int_equal(fputs(text, f) >= 0, 1);
  fclose(f);
}

/* The mount points a host declares (fstab, systemd units) and the deepest
 * one above a path that is not mounted. */
static void
test_mount_declarations(void **state)
{
  (void)state;
  char dir[] = "/tmp/zl-mounts-XXXXXX", fstab[64], units[64], unit[96];
  assert_non_null(mkdtemp(dir));
  snprintf(fstab, sizeof fstab, "%s/fstab", dir);
  snprintf(units, sizeof units, "%s/units", dir);
  write_file(fstab, "# <fs> <mount point> <type> <options> <dump> <pass>\n"
                    "UUID=0a1b / ext4 errors=remount-ro 0 1\n"
                    "UUID=2c3d none swap sw 0 0\n"
                    "proc /proc proc defaults 0 0\n"
                    "\tnas:/a\t/nonexistent-zl/share  nfs4 defaults 0 0\n"
                    "nas:/b /nonexistent-zl/share/deeper nfs defaults 0 0\n"
                    "srv:/with\\040space /nonexistent-zl/sp\\040ace nfs defaults 0 0\n"
                    "relative/x rel nfs defaults 0 0\n");
  assert_int_equal(zl_path_mount_check("/nonexistent-zl/share/g", fstab, NULL), -1);
  assert_int_equal(zl_error_get_kind(), ZL_ERR_NO_SR);
  assert_non_null(
      strstr(zl_error_msg(), "mounted at /nonexistent-zl/share (nas:/a, nfs4"));
  assert_int_equal(zl_path_mount_check("/nonexistent-zl/share", fstab, NULL), -1);
  assert_int_equal(zl_path_mount_check("/nonexistent-zl/share/deeper/g", fstab, NULL),
                   -1);
  assert_non_null(strstr(zl_error_msg(), "at /nonexistent-zl/share/deeper (nas:/b"));
  assert_int_equal(zl_path_mount_check("/nonexistent-zl/sp ace/g", fstab, NULL), -1);
  assert_non_null(strstr(zl_error_msg(), "(srv:/with space, nfs"));
  /* not below a declared mount point, or below a mounted one: fine */
  assert_int_equal(zl_path_mount_check("/nonexistent-zl/shared/g", fstab, NULL), 0);
  assert_int_equal(zl_path_mount_check("/proc/zl", fstab, NULL), 0);
  assert_int_equal(zl_path_mount_check("/srv/g", "/nonexistent-zl/fstab", NULL), 0);
  /* systemd units: .mount and .automount, by Where= */
  assert_int_equal(mkdir(units, 0700), 0);
  snprintf(unit, sizeof unit, "%s/nonexistent\\x2dzl-u.mount", units);
  write_file(unit,
             "[Unit]\nDescription=x\n[Mount]\nWhat=nas:/u\n  Where=/nonexistent-zl/u\n");
  snprintf(unit, sizeof unit, "%s/readme.txt", units);
  write_file(unit, "Where=/nonexistent-zl/txt\n");
  assert_int_equal(zl_path_mount_check("/nonexistent-zl/u/g", "/dev/null", units), -1);
  assert_non_null(strstr(zl_error_msg(), "nonexistent\\x2dzl-u.mount"));
  assert_int_equal(zl_path_mount_check("/nonexistent-zl/txt/g", "/dev/null", units), 0);
  assert_true(zl_path_is_mountpoint("/proc"));
  assert_false(zl_path_is_mountpoint("/nonexistent-zl"));
  remove(unit);
  snprintf(unit, sizeof unit, "%s/nonexistent\\x2dzl-u.mount", units);
  remove(unit);
  rmdir(units);
  remove(fstab);
  rmdir(dir);
}

static void
test_parameters_list(void **state)
{
  (void)state;
  char *l = gnt_parameters_list();
  assert_non_null(l);
  assert_true(strncmp(l, "dir ", 4) == 0);
  assert_non_null(strstr(l, "\npool "));
  assert_null(strstr(l, "provider")); /* Ganeti's own, not ours to list */
  assert_null(strstr(l, "\n\n"));
  free(l);
}

/* A variable twice in the environment (execve allows it; found by
 * fuzz/fuzz-ganeti-env.c): the last one counts, and repeated tunables never
 * write past the request's table of GNT_MAX_TUNE. */
static void
test_parse_repeated_tunables(void **state)
{
  (void)state;
  const char *env[16] = {"VOL_NAME=" VOL, "EXTP_POOL=tank/g", "EXTP_COPIES=1"};
  size_t n = 3;
  for (; n < 13; n++)
    env[n] = n % 2 ? "EXTP_COPIES=2" : "EXTP_COMPRESSION=lz4";
  env[n++] = "EXTP_COPIES=3";
  struct gnt_req r;

  assert_int_equal(gnt_parse(GNT_ATTACH, (char *const *)env, &r), 0);
  assert_int_equal(r.ntune, 2);
  assert_string_equal(r.tune[0][0], "copies");
  assert_string_equal(r.tune[0][1], "3");
  assert_string_equal(r.tune[1][0], "compression");
  assert_string_equal(r.tune[1][1], "lz4");
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_create),
      cmocka_unit_test(test_parse_errors),
      cmocka_unit_test(test_parse_actions),
      cmocka_unit_test(test_xen_specs),
      cmocka_unit_test(test_zvol_paths),
      cmocka_unit_test(test_allowed_paths),
      cmocka_unit_test(test_parameters_list),
      cmocka_unit_test(test_mount_declarations),
      cmocka_unit_test(test_parse_repeated_tunables),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
