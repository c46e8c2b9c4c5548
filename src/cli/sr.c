/* sr.c: `zfs-live sr ...` */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/error.h"
#include "util/uuid.h"

#include "util/banned.h" /* last: after every declaration */

const char cli_sr_usage[] =
    "zfs-live sr create --type TYPE --path DIR [--name N] [--description D]\n"
    "                   [--uuid UUID] [--provisioning thin|thick]\n"
    "       zfs-live sr probe --type TYPE --path DIR\n"
    "       zfs-live sr stat SR | sr ls SR | sr destroy SR\n"
    "       zfs-live sr set-name SR NAME | sr set-description SR TEXT\n"
    "  (--json for JSON output; SR is the key printed by create, e.g. a directory)";
#define SR_USAGE cli_sr_usage

static int
sr_create(int argc, char **argv, const char *type)
{
  const char *path = NULL, *name = "zfs-live SR", *desc = "", *uuid = NULL, *prov = NULL;
  char uuidbuf[ZL_UUID_LEN + 1];
  json_t *config, *out = NULL;
  int r;

  if (cli_take(&argc, argv, "--path", &path) == -1 ||
      cli_take(&argc, argv, "--name", &name) == -1 ||
      cli_take(&argc, argv, "--description", &desc) == -1 ||
      cli_take(&argc, argv, "--uuid", &uuid) == -1 ||
      cli_take(&argc, argv, "--provisioning", &prov) == -1 ||
      cli_no_more_options(argc, argv) == -1)
    return cli_fail();
  if (!type || !path || argc != 0)
    return cli_usage(SR_USAGE, "sr create needs --type and --path");
  if (!uuid) {
    if (zl_uuid_generate(uuidbuf) == -1)
      return cli_fail();
    uuid = uuidbuf;
  }
  config = json_pack("{s:s}", "path", path);
  if (prov)
    json_object_set_new(config, "provisioning", json_string(prov));
  r = zl_sr_create(type, uuid, config, name, desc, &out);
  json_decref(config);
  if (r == -1)
    return cli_fail();
  /* the key later commands take: a directory, or a ZFS SR's mountpoint */
  char *key = zl_sr_attach(type, out);
  if (!key) {
    json_decref(out);
    return cli_fail();
  }
  if (cli_json) {
    r = cli_print_json(
        json_pack("{s:s, s:s, s:o}", "sr", key, "uuid", uuid, "configuration", out));
  } else {
    printf("%s\n", key);
    json_decref(out);
  }
  free(key);
  return r;
}

static int
sr_probe(int argc, char **argv, const char *type)
{
  const char *path = NULL;
  json_t *found, *e;
  size_t i;

  if (cli_take(&argc, argv, "--path", &path) == -1 ||
      cli_no_more_options(argc, argv) == -1)
    return cli_fail();
  if (!type || !path || argc != 0)
    return cli_usage(SR_USAGE, "sr probe needs --type and --path");
  json_t *config = json_pack("{s:s}", "path", path);
  found = zl_sr_probe(type, config);
  json_decref(config);
  if (!found)
    return cli_fail();
  if (cli_json)
    return cli_print_json(found);
  json_array_foreach(found, i, e)
  {
    json_t *cfg = json_object_get(e, "configuration");
    if (json_is_true(json_object_get(e, "complete")))
      printf("SR %s at %s\n", json_string_value(json_object_get(cfg, "sr_uuid")),
             json_string_value(json_object_get(e, "sr")));
    else
      printf(
          "%s: %s\n",
          strcmp(json_string_value(
                     json_object_get(json_object_get(e, "extra_info"), "can_create")),
                 "true") == 0
              ? "can create"
              : "cannot create",
          json_string_value(json_object_get(json_object_get(e, "extra_info"), "reason")));
  }
  json_decref(found);
  return 0;
}

static int
sr_stat(struct zl_sr *sr)
{
  struct zl_sr_stat st;
  char total[32], free_[32];

  if (zl_sr_stat(sr, &st) == -1)
    return cli_fail();
  if (cli_json) {
    json_t *j = zl_sr_stat_json(&st);
    json_object_set_new(j, "type", json_string(st.type));
    json_object_set_new(j, "provisioning",
                        json_string(st.provisioning == ZL_PROV_THICK ? "thick" : "thin"));
    zl_sr_stat_free(&st);
    return cli_print_json(j);
  }
  cli_human(st.total_space, total, sizeof total);
  cli_human(st.free_space, free_, sizeof free_);
  printf(
      "SR           %s\ntype         %s\nuuid         %s\nname         %s\n"
      "description  %s\nspace        %s free of %s\nprovisioning %s\nhealth       %s\n",
      st.sr, st.type, st.uuid, st.name, st.description, free_, total,
      st.provisioning == ZL_PROV_THICK ? "thick" : "thin", st.health_msg);
  zl_sr_stat_free(&st);
  return 0;
}

int
cli_sr_create(int argc, char **argv)
{
  const char *type = NULL;
  argc = cli_common_opts(argc, argv, &type);
  return sr_create(argc, argv, type);
}

int
cli_sr_probe(int argc, char **argv)
{
  const char *type = NULL;
  argc = cli_common_opts(argc, argv, &type);
  return sr_probe(argc, argv, type);
}

/* The handlers below run with the SR open (the SR flag of their rows,
 * cli_run_sr); argv holds the arguments after it. */

int
cli_sr_stat(struct zl_sr *sr, int argc, char **argv)
{
  (void)argc, (void)argv;
  return sr_stat(sr);
}

int
cli_sr_destroy(struct zl_sr *sr, int argc, char **argv)
{
  (void)argc, (void)argv;
  return zl_sr_destroy(sr) == 0 ? 0 : cli_fail();
}

int
cli_sr_set_name(struct zl_sr *sr, int argc, char **argv)
{
  (void)argc;
  return zl_sr_set_name(sr, argv[0]) == 0 ? 0 : cli_fail();
}

int
cli_sr_set_description(struct zl_sr *sr, int argc, char **argv)
{
  (void)argc;
  return zl_sr_set_description(sr, argv[0]) == 0 ? 0 : cli_fail();
}
