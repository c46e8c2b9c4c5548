/* vol.c: `zfs-live vol ...` */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/io/io.h"
#include "util/error.h"
#include "util/fsutil.h"

#include "util/banned.h" /* last: after every declaration */

const char cli_vol_usage[] =
    "zfs-live vol create SR --name N --size SIZE [--description D] [--key K]\n"
    "                       [--thin|--thick] [--sharable]\n"
    "       zfs-live vol list SR | vol stat SR KEY | vol destroy SR KEY\n"
    "       zfs-live vol snapshot SR KEY [--key NEW] | vol clone SR KEY [--key NEW]\n"
    "       zfs-live vol resize SR KEY SIZE | vol revert SR KEY --to SNAPSHOT\n"
    "       zfs-live vol rename SR KEY NAME | vol set-description SR KEY TEXT\n"
    "       zfs-live vol set SR KEY K V | vol unset SR KEY K\n"
    "       zfs-live vol write SR KEY [--offset N] < data\n"
    "       zfs-live vol read SR KEY [--offset N] [--length N] > data\n"
    "       zfs-live vol share SR KEY [--readonly] | vol unshare SR KEY\n"
    "       zfs-live vol export SR KEY --format raw|qcow2|vhd -o FILE|- [--no-checksum]\n"
    "       zfs-live vol import SR FILE|- --format raw|qcow2|vhd [--name N] [--key K]\n"
    "                       [--size S] [--sha256 HEX | --no-checksum]\n"
    "       zfs-live vol cbt-enable SR KEY | vol cbt-disable SR KEY\n"
    "       zfs-live vol changed-blocks SR FROM TO | vol data-destroy SR SNAPSHOT\n"
    "  (SIZE: bytes or with K, M, G, T; --json for JSON output)";
#define VOL_USAGE cli_vol_usage

#define show cli_vol_show
int
cli_vol_show(struct zl_sr *sr, struct zl_volume *v)
{
  char vs[32], pu[32];

  if (cli_json)
    return cli_print_json(zl_volume_json(v, zl_sr_type(sr), zl_sr_key(sr)));
  cli_human(v->virtual_size, vs, sizeof vs);
  cli_human(v->physical_utilisation, pu, sizeof pu);
  printf(
      "key          %s\nname         %s\ndescription  %s\nkind         %s%s%s\n"
      "size         %s (%lld bytes)\nallocated    %s\nprovisioning %s\ncreated      %s\n",
      v->key, v->name, v->description,
      v->read_only ? "snapshot" : (v->clone_of ? "clone" : "volume"),
      v->snapshot_of ? " of " : (v->clone_of ? " of " : ""),
      v->snapshot_of ? v->snapshot_of : (v->clone_of ? v->clone_of : ""), vs,
      (long long)v->virtual_size, pu, v->provisioning == ZL_PROV_THICK ? "thick" : "thin",
      v->created ? v->created : "-");
  if (v->health)
    printf("health       metadata unreadable: %s\n", v->health);
  if (json_object_size(v->keys)) {
    const char *k;
    json_t *val;
    printf("keys\n");
    json_object_foreach(v->keys, k, val) printf("  %s = %s\n", k, json_string_value(val));
  }
  return 0;
}

int
cli_vol_list(struct zl_sr *sr, int argc, char **argv)
{
  (void)argc, (void)argv;
  struct zl_volume *v;
  size_t n;

  if (zl_sr_ls(sr, &v, &n) == -1)
    return cli_fail();
  if (cli_json) {
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
      json_array_append_new(arr, zl_volume_json(&v[i], zl_sr_type(sr), zl_sr_key(sr)));
    zl_volume_list_free(v, n);
    return cli_print_json(arr);
  }
  printf("%-36s  %-9s  %10s  %10s  %s\n", "KEY", "KIND", "SIZE", "ALLOCATED", "NAME");
  for (size_t i = 0; i < n; i++) {
    char vs[32], pu[32];
    cli_human(v[i].virtual_size, vs, sizeof vs);
    cli_human(v[i].physical_utilisation, pu, sizeof pu);
    printf("%-36s  %-9s  %10s  %10s  %s\n", v[i].key,
           v[i].health
               ? "DAMAGED"
               : (v[i].read_only ? "snapshot" : (v[i].clone_of ? "clone" : "volume")),
           vs, pu, v[i].name);
  }
  zl_volume_list_free(v, n);
  return 0;
}

int
cli_vol_create(struct zl_sr *sr, int argc, char **argv)
{
  struct zl_create_args a = {
      .name = NULL, .description = "", .provisioning = ZL_PROV_DEFAULT};
  const char *size = NULL;
  struct zl_volume v;

  if (cli_take(&argc, argv, "--name", &a.name) == -1 ||
      cli_take(&argc, argv, "--size", &size) == -1 ||
      cli_take(&argc, argv, "--description", &a.description) == -1 ||
      cli_take(&argc, argv, "--key", &a.key) == -1)
    return cli_fail();
  if (cli_flag(&argc, argv, "--thick"))
    a.provisioning = ZL_PROV_THICK;
  if (cli_flag(&argc, argv, "--thin"))
    a.provisioning = ZL_PROV_THIN;
  a.sharable = cli_flag(&argc, argv, "--sharable");
  if (cli_no_more_options(argc, argv) == -1)
    return cli_fail();
  if (!a.name || !size || argc != 0)
    return cli_usage(VOL_USAGE, "vol create needs --name and --size");
  if (cli_parse_size(size, &a.size) == -1 || zl_vol_create(sr, &a, &v) == -1)
    return cli_fail();
  int r = show(sr, &v);
  zl_volume_free(&v);
  return r;
}

static int
vol_copy(struct zl_sr *sr, int argc, char **argv, bool snapshot)
{
  const char *new_key = NULL;
  struct zl_volume v;

  if (cli_take(&argc, argv, "--key", &new_key) == -1 ||
      cli_no_more_options(argc, argv) == -1)
    return cli_fail();
  if (argc != 1)
    return cli_usage(VOL_USAGE, "vol %s SR KEY", snapshot ? "snapshot" : "clone");
  if ((snapshot ? zl_vol_snapshot : zl_vol_clone)(sr, argv[0], new_key, &v) == -1)
    return cli_fail();
  int r = show(sr, &v);
  zl_volume_free(&v);
  return r;
}

/* One request down the write path; -1 with an error message. */
static int
vol_io(struct zl_io *io, struct zl_io_queue *q, struct zl_io_req *r, const char *key)
{
  zl_io_batch(io, q, r, 1);
  if (r->result == 0)
    return 0;
  if (r->op == ZL_IO_FLUSH)
    zl_error_sys(-r->result, "flush volume %s", key);
  else
    zl_error_sys(-r->result, "write volume %s at %llu", key, (unsigned long long)r->off);
  return -1;
}

int
cli_vol_write(struct zl_sr *sr, int argc, char **argv)
{
  const char *off_s = "0";
  int64_t off;
  static char buf[1 << 20];

  if (cli_take(&argc, argv, "--offset", &off_s) == -1 ||
      cli_no_more_options(argc, argv) == -1 || cli_parse_size(off_s, &off) == -1)
    return cli_fail();
  if (argc != 1)
    return cli_usage(VOL_USAGE, "vol write SR KEY [--offset N] < data");
  int fd = zl_vol_open(sr, argv[0], O_RDWR);
  if (fd == -1)
    return cli_fail();
  /* a writer like any other: down the volume's write path (tracked) */
  struct zl_io *io = zl_io_open(sr, argv[0], fd, false);
  struct zl_io_queue *q = io ? zl_io_queue_new(1, true) : NULL;
  int r = -1;
  if (!q)
    goto out;
  off_t end = lseek(fd, 0, SEEK_END);
  for (;;) {
    ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      zl_error_sys(errno, "read stdin");
      goto out;
    }
    if (n == 0)
      break;
    if (n > end - off) { /* off + n could overflow */
      zl_error_kind(ZL_ERR_SIZE, ENOSPC,
                    "write past the end of volume %s (%lld bytes); resize it first",
                    argv[0], (long long)end);
      goto out;
    }
    struct zl_io_req w = {
        .op = ZL_IO_WRITE, .buf = buf, .off = (uint64_t)off, .len = (uint64_t)n};
    if (vol_io(io, q, &w, argv[0]) == -1)
      goto out;
    off += n;
  }
  struct zl_io_req flush = {.op = ZL_IO_FLUSH}; /* the data and its tracking bits */
  r = vol_io(io, q, &flush, argv[0]);
out:
  zl_io_queue_free(q);
  zl_io_close(io);
  close(fd);
  return r == 0 ? 0 : cli_fail();
}

int
cli_vol_read(struct zl_sr *sr, int argc, char **argv)
{
  const char *off_s = "0", *len_s = NULL;
  int64_t off, len;
  static char buf[1 << 20];

  if (cli_json)
    return cli_usage(NULL, "vol read writes the volume's bytes; --json does not apply");
  if (cli_take(&argc, argv, "--offset", &off_s) == -1 ||
      cli_take(&argc, argv, "--length", &len_s) == -1 ||
      cli_no_more_options(argc, argv) == -1 || cli_parse_size(off_s, &off) == -1 ||
      (len_s && cli_parse_size(len_s, &len) == -1))
    return cli_fail();
  if (argc != 1)
    return cli_usage(VOL_USAGE, "vol read SR KEY [--offset N] [--length N]");
  int fd = zl_vol_open(sr, argv[0], O_RDONLY);
  if (fd == -1)
    return cli_fail();
  off_t end = lseek(fd, 0, SEEK_END);
  if (!len_s || len > end - off) /* off + len could overflow */
    len = end > off ? end - off : 0;
  while (len > 0) {
    size_t chunk = len > (int64_t)sizeof buf ? sizeof buf : (size_t)len;
    if (zl_pread_all(fd, buf, chunk, off) == -1 ||
        fwrite(buf, 1, chunk, stdout) != chunk) {
      if (!ferror(stdout))
        zl_error_prefix("volume %s: ", argv[0]);
      else
        zl_error_sys(errno, "write stdout");
      close(fd);
      return cli_fail();
    }
    off += (int64_t)chunk;
    len -= (int64_t)chunk;
  }
  close(fd);
  return fflush(stdout) == 0 ? 0 : 1;
}

#define TRY(call) ((call) == -1 ? cli_fail() : 0)

int
cli_vol_stat(struct zl_sr *sr, int argc, char **argv)
{
  struct zl_volume v;

  (void)argc;
  if (zl_vol_stat(sr, argv[0], &v) == -1)
    return cli_fail();
  int r = show(sr, &v);
  zl_volume_free(&v);
  return r;
}

int
cli_vol_snapshot(struct zl_sr *sr, int argc, char **argv)
{
  return vol_copy(sr, argc, argv, true);
}

int
cli_vol_clone(struct zl_sr *sr, int argc, char **argv)
{
  return vol_copy(sr, argc, argv, false);
}

int
cli_vol_destroy(struct zl_sr *sr, int argc, char **argv)
{
  (void)argc;
  return TRY(zl_vol_destroy(sr, argv[0]));
}

int
cli_vol_resize(struct zl_sr *sr, int argc, char **argv)
{
  int64_t size;

  (void)argc;
  if (cli_parse_size(argv[1], &size) == -1)
    return cli_fail();
  return TRY(zl_vol_resize(sr, argv[0], size));
}

int
cli_vol_revert(struct zl_sr *sr, int argc, char **argv)
{
  const char *to = NULL;

  if (cli_take(&argc, argv, "--to", &to) == -1 || cli_no_more_options(argc, argv) == -1)
    return cli_fail();
  if (!to || argc != 1)
    return cli_usage(VOL_USAGE, "vol revert SR KEY --to SNAPSHOT");
  struct cli_progress st;
  struct zl_progress p;
  cli_progress_init(&p, &st, "revert");
  int r = zl_vol_revert_progress(sr, to, argv[0], &p);
  cli_progress_done(&st);
  return TRY(r);
}

int
cli_vol_rename(struct zl_sr *sr, int argc, char **argv)
{
  (void)argc;
  return TRY(zl_vol_set_name(sr, argv[0], argv[1]));
}

int
cli_vol_set_description(struct zl_sr *sr, int argc, char **argv)
{
  (void)argc;
  return TRY(zl_vol_set_description(sr, argv[0], argv[1]));
}

int
cli_vol_set(struct zl_sr *sr, int argc, char **argv)
{
  (void)argc;
  return TRY(zl_vol_set(sr, argv[0], argv[1], argv[2]));
}

int
cli_vol_unset(struct zl_sr *sr, int argc, char **argv)
{
  (void)argc;
  return TRY(zl_vol_unset(sr, argv[0], argv[1]));
}

int
cli_vol_share(int argc, char **argv)
{
  struct zl_sr *sr;
  const char *type = NULL;
  bool ro;

  argc = cli_common_opts(argc, argv, &type);
  ro = cli_flag(&argc, argv, "--readonly");
  if (cli_no_more_options(argc, argv) == -1)
    return cli_fail();
  if (argc != 2)
    return cli_usage(VOL_USAGE, "vol share SR KEY [--readonly]");
  if (!(sr = cli_open_sr(type, argv[0])))
    return cli_fail();
  char *name = zl_vol_export(sr, argv[1], ro);
  zl_sr_close(sr);
  if (!name)
    return cli_fail();
  int r = 0;
  if (cli_json)
    r = cli_print_json(json_pack("{s:s, s:s, s:s+++}", "export", name, "socket",
                                 nbd_default_socket(), "uri", "nbd+unix:///", name,
                                 "?socket=", nbd_default_socket()));
  else
    printf("nbd+unix:///%s?socket=%s\n", name, nbd_default_socket());
  free(name);
  return r;
}

int
cli_vol_unshare(struct zl_sr *sr, int argc, char **argv)
{
  (void)argc;
  return TRY(zl_vol_unexport(sr, argv[0]));
}

int
cli_vol_cbt_enable(struct zl_sr *sr, int argc, char **argv)
{
  (void)argc;
  return TRY(zl_vol_enable_cbt(sr, argv[0]));
}

int
cli_vol_cbt_disable(struct zl_sr *sr, int argc, char **argv)
{
  (void)argc;
  return TRY(zl_vol_disable_cbt(sr, argv[0]));
}

int
cli_vol_data_destroy(struct zl_sr *sr, int argc, char **argv)
{
  (void)argc;
  return TRY(zl_vol_data_destroy(sr, argv[0]));
}

/* The changed 64 KiB blocks as byte ranges, one "OFFSET LENGTH" per line,
 * adjacent blocks merged. */
static int
changed_blocks(struct zl_sr *sr, const char *from, const char *to)
{
  struct zl_bitmap m;

  if (zl_vol_changed_blocks(sr, from, to, &m) == -1)
    return cli_fail();
  uint64_t total = 0, pos = 0, first, count;
  json_t *ranges = cli_json ? json_array() : NULL;
  while (zl_bitmap_next_run(&m, &pos, &first, &count)) {
    uint64_t off = first * ZL_CBT_GRANULARITY, end = (first + count) * ZL_CBT_GRANULARITY;
    if (end > (uint64_t)m.size)
      end = (uint64_t)m.size;
    if (ranges)
      json_array_append_new(ranges, json_pack("{s:I, s:I}", "offset", (json_int_t)off,
                                              "length", (json_int_t)(end - off)));
    else
      printf("%llu %llu\n", (unsigned long long)off, (unsigned long long)(end - off));
    total += count;
  }
  if (cli_json) {
    json_t *j = json_pack("{s:o, s:I, s:I, s:i}", "ranges", ranges ? ranges : json_null(),
                          "changed_blocks", (json_int_t)total, "blocks",
                          (json_int_t)m.nblocks, "block_size", ZL_CBT_GRANULARITY);
    zl_bitmap_free(&m);
    return cli_print_json(j);
  }
  fprintf(stderr, "%llu of %llu blocks of %d bytes changed\n", (unsigned long long)total,
          (unsigned long long)m.nblocks, ZL_CBT_GRANULARITY);
  zl_bitmap_free(&m);
  return fflush(stdout) == 0 ? 0 : 1;
}

int
cli_vol_changed_blocks(struct zl_sr *sr, int argc, char **argv)
{
  (void)argc;
  return changed_blocks(sr, argv[0], argv[1]);
}
