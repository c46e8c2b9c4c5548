/* platform.c: which XAPI this host runs, what its storage daemon
 * (xapi-storage-script) can call, and which of its known gaps to work
 * around (reference smapiv3.md §0 "which xen-api release added what",
 * §2.1, §4 "Metadata gaps").
 *
 * Sources, in this order:
 *   the inventory   /etc/xensource-inventory ($ZFS_LIVE_INVENTORY
 *                   overrides): KEY='value' lines (PRODUCT_BRAND,
 *                   PRODUCT_VERSION, PLATFORM_VERSION, BUILD_NUMBER...).
 *                   Its presence is what makes this a XAPI host.
 *   the daemon      the xapi version is not in the inventory, and the
 *                   package database cannot be read without running rpm;
 *                   $ZFS_LIVE_XAPI_VERSION gives it ("25.33.1", "v24.19.2",
 *                   "xapi-core-25.3.0-1.xs8" all parse).  Unknown, the
 *                   daemon is taken to be older than every feature and
 *                   fix below: only ungated features are declared and
 *                   every shim is on.
 * No inventory and no version: not a XAPI host (Ganeti, a CLI user); no
 * feature is withheld and no shim applies.
 *
 * xen-api versions are year.release.patch since 2022 (v22.21.0 ...
 * v26.16.0) and 1.x before (Citrix Hypervisor / XCP-ng 8.2: 1.249.x), so
 * they compare as numbers.  Releases are cut from one master branch, so a
 * fix merged in year Y is in every release numbered Y+1.0.0 or later; that
 * bounds the two fixes whose release the reference does not name. */
#include <ctype.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fsutil.h"

#include "util/banned.h" /* last: after every declaration */

/* Features the daemon only honours from some version on.  Features not
 * listed here are as old as SMAPIv3 v5 and always declared. */
static const struct {
  const char *feature;
  struct zl_version min;
  const char *why;
} gated[] = {
    {"VDI_ACTIVATE_READONLY", {23, 6, 0}, "Datapath.activate_readonly under this name"},
    {"VDI_CONFIG_CBT", {24, 17, 0}, "the CBT calls forwarded to the plugin"},
    {"VDI_MIRROR_IN", {25, 3, 0}, "Datapath.import_activate"},
    {"VDI_COMPOSE", {25, 3, 0}, "Volume.compose"},
    {"VDI_MIRROR", {25, 20, 0}, "Data.mirror and Data.stat"},
    {"VDI_REVERT", {26, 16, 0}, "Volume.revert"},
};

/* The first releases with the daemon's fixes (see the file comment). */
static const struct zl_version vdi_type_fixed = {26, 0, 0};   /* CA-412420, 2025 */
static const struct zl_version read_write_fixed = {27, 0, 0}; /* CA-431606, 2026 */

const char *
zl_platform_inventory_path(void)
{
  const char *e = getenv("ZFS_LIVE_INVENTORY");
  return e && *e ? e : "/etc/xensource-inventory";
}

int
zl_version_cmp(struct zl_version a, struct zl_version b)
{
  if (a.major != b.major)
    return a.major < b.major ? -1 : 1;
  if (a.minor != b.minor)
    return a.minor < b.minor ? -1 : 1;
  if (a.patch != b.patch)
    return a.patch < b.patch ? -1 : 1;
  return 0;
}

bool
zl_version_parse(const char *s, struct zl_version *out)
{
  unsigned v[3] = {0, 0, 0};
  int i = 0;

  *out = (struct zl_version){0, 0, 0};
  if (!s)
    return false;
  while (*s && !isdigit((unsigned char)*s)) /* "v25.3.0", "xapi-core-25.3.0" */
    s++;
  while (i < 3 && isdigit((unsigned char)*s)) {
    unsigned long n = 0;
    while (isdigit((unsigned char)*s) && n < 100000)
      n = n * 10 + (unsigned long)(*s++ - '0');
    if (isdigit((unsigned char)*s))
      return false; /* absurdly long */
    v[i++] = (unsigned)n;
    if (*s != '.')
      break;
    s++;
  }
  if (i == 0 || (v[0] == 0 && v[1] == 0 && v[2] == 0))
    return false;
  *out = (struct zl_version){v[0], v[1], v[2]};
  return true;
}

/* Copy the value of line "KEY=value" (quotes '...' or "..." removed, a
 * trailing comment or blanks dropped for unquoted values) into out. */
static void
copy_value(const char *p, size_t len, char *out, size_t outlen)
{
  while (len && (*p == ' ' || *p == '\t'))
    p++, len--;
  if (len && (*p == '\'' || *p == '"')) {
    const char *end = memchr(p + 1, *p, len - 1);
    size_t n = end ? (size_t)(end - p - 1) : len - 1;
    snprintf(out, outlen, "%.*s", (int)n, p + 1);
    return;
  }
  const char *hash = memchr(p, '#', len);
  if (hash)
    len = (size_t)(hash - p);
  while (len && isspace((unsigned char)p[len - 1]))
    len--;
  snprintf(out, outlen, "%.*s", (int)len, p);
}

void
zl_platform_parse(const char *text, struct zl_platform *out)
{
  static const struct {
    const char *key;
    size_t off, len;
  } fields[] = {
#define F(k, m) {k, offsetof(struct zl_platform, m), sizeof((struct zl_platform *)0)->m}
      F("PRODUCT_BRAND", brand),         F("PRODUCT_VERSION", product_version),
      F("PLATFORM_NAME", platform_name), F("PLATFORM_VERSION", platform_version),
      F("BUILD_NUMBER", build),
#undef F
  };

  for (const char *line = text; line && *line;) {
    const char *nl = strchr(line, '\n');
    size_t len = nl ? (size_t)(nl - line) : strlen(line);
    const char *p = line;
    while (len && (*p == ' ' || *p == '\t'))
      p++, len--;
    if (len >= 7 && strncmp(p, "export ", 7) == 0)
      p += 7, len -= 7;
    const char *eq = memchr(p, '=', len);
    size_t klen = eq ? (size_t)(eq - p) : 0;
    while (klen && (p[klen - 1] == ' ' || p[klen - 1] == '\t'))
      klen--;
    for (size_t i = 0; eq && *p != '#' && i < sizeof fields / sizeof fields[0]; i++) {
      if (klen == strlen(fields[i].key) && strncmp(p, fields[i].key, klen) == 0)
        copy_value(eq + 1, len - (size_t)(eq + 1 - p), (char *)out + fields[i].off,
                   fields[i].len);
    }
    line = nl ? nl + 1 : NULL;
  }
  zl_version_parse(out->platform_version, &out->platform);
}

void
zl_platform_detect(struct zl_platform *out)
{
  CLEANUP_FREE char *buf = NULL;
  const char *v = getenv("ZFS_LIVE_XAPI_VERSION");

  *out = (struct zl_platform){0};
  snprintf(out->inventory, sizeof out->inventory, "%s", zl_platform_inventory_path());
  if (zl_read_file_at(AT_FDCWD, out->inventory, 1 << 16, &buf, NULL) == 0) {
    out->xapi_host = true;
    zl_platform_parse(buf, out);
  }
  zl_error_clear(); /* no inventory: not a XAPI host, not an error */
  if (v && *v) {
    out->xapi_host = true;
    snprintf(out->xapi_source, sizeof out->xapi_source,
             zl_version_parse(v, &out->xapi) ? "ZFS_LIVE_XAPI_VERSION"
                                             : "ZFS_LIVE_XAPI_VERSION (not a version)");
  } else if (out->platform.major == 3 && out->platform.minor >= 4) {
    /* XCP-ng 8.3 and XenServer 8 (platform 3.4): hosts in the field run
     * xapi 26.1 (reference smapiv3.md, xcp-ng/xcp#825); assume that much
     * rather than withhold CBT from every such host.  Set
     * ZFS_LIVE_XAPI_VERSION where the host runs something older. */
    out->xapi = (struct zl_version){26, 1, 0};
    snprintf(out->xapi_source, sizeof out->xapi_source, "assumed for platform %s",
             out->platform_version);
  } else if (out->platform.major == 3) {
    /* XCP-ng 8.2 (platform 3.2) ships xapi 1.249 */
    out->xapi = (struct zl_version){1, 249, 0};
    snprintf(out->xapi_source, sizeof out->xapi_source, "assumed for platform %s",
             out->platform_version);
  } else {
    snprintf(out->xapi_source, sizeof out->xapi_source, "unknown");
  }
}

/* Is the daemon known to be at least min? */
static bool
xapi_at_least(const struct zl_platform *p, struct zl_version min)
{
  return p->xapi.major && zl_version_cmp(p->xapi, min) >= 0;
}

bool
zl_platform_feature_ok(const struct zl_platform *p, const char *feature)
{
  size_t n = strcspn(feature, "/"); /* "VDI_RESET_ON_BOOT/2" */

  if (!p->xapi_host)
    return true;
  for (size_t i = 0; i < sizeof gated / sizeof gated[0]; i++) {
    if (strlen(gated[i].feature) == n && strncmp(gated[i].feature, feature, n) == 0)
      return xapi_at_least(p, gated[i].min);
  }
  return true;
}

bool
zl_platform_shim_vdi_type(const struct zl_platform *p)
{
  return p->xapi_host && !xapi_at_least(p, vdi_type_fixed);
}

bool
zl_platform_shim_read_write(const struct zl_platform *p)
{
  return p->xapi_host && !xapi_at_least(p, read_write_fixed);
}

bool
zl_platform_supported(const struct zl_platform *p, char *why, size_t len)
{
  /* Platform 3.x is Citrix Hypervisor / XCP-ng 8.x and XenServer 8
   * (8.4 included): their xapi-storage-script calls the v5 interface this
   * binary speaks (Volume 5.0.0, Datapath 5.0.0 since June 2018), and the
   * daemon itself checks required_api_version.  Earlier platforms are
   * XenServer 7.x, whose daemons predate or straddle v5 (the pre-v5
   * datapath records, §2.10): refused rather than half working.  No
   * platform version (not a XAPI host, or an inventory without it): no
   * reason to refuse. */
  if (!p->xapi_host || p->platform.major == 0 || p->platform.major >= 3)
    return true;
  snprintf(why, len,
           "%s %s (platform %s) is not supported: zfs-live speaks SMAPIv3 interface "
           "v5 as the storage daemon of platform 3.x calls it (Citrix Hypervisor and "
           "XCP-ng 8.x, XenServer 8); this platform's daemon predates it",
           p->brand[0] ? p->brand : "this host", p->product_version, p->platform_version);
  return false;
}

json_t *
zl_platform_json(const struct zl_platform *p)
{
  char xapi[48] = "";
  char why[512] = "";
  bool ok = zl_platform_supported(p, why, sizeof why);
  json_t *withheld = json_array();

  if (p->xapi.major)
    snprintf(xapi, sizeof xapi, "%u.%u.%u", p->xapi.major, p->xapi.minor, p->xapi.patch);
  for (size_t i = 0; withheld && i < sizeof gated / sizeof gated[0]; i++) {
    if (!zl_platform_feature_ok(p, gated[i].feature))
      json_array_append_new(withheld, json_string(gated[i].feature));
  }
  json_t *j = json_pack(
      "{s:b, s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:s, s:o, s:{s:b, s:b}, s:b, s:s?}",
      "xapi_host", p->xapi_host, "inventory", p->inventory, "brand", p->brand,
      "product_version", p->product_version, "platform_name", p->platform_name,
      "platform_version", p->platform_version, "build", p->build, "xapi_version",
      xapi[0] ? xapi : NULL, "xapi_version_source", p->xapi_source, "features_withheld",
      withheld, "shims", "vdi_type_on_snapshots", zl_platform_shim_vdi_type(p),
      "snapshots_read_write", zl_platform_shim_read_write(p), "supported", ok, "why",
      ok ? NULL : why);
  return j;
}

char *
zl_platform_summary(const struct zl_platform *p)
{
  char *s = NULL;
  char xapi[48] = "unknown";

  if (!p->xapi_host)
    return strdup("not a XAPI host (no inventory, no ZFS_LIVE_XAPI_VERSION)");
  if (p->xapi.major)
    snprintf(xapi, sizeof xapi, "%u.%u.%u", p->xapi.major, p->xapi.minor, p->xapi.patch);
  if (asprintf(&s,
               "%s %s (platform %s %s, build %s); xapi %s (%s); shims: vdi-type on "
               "snapshots %s, snapshots read_write %s",
               p->brand[0] ? p->brand : "?",
               p->product_version[0] ? p->product_version : "?",
               p->platform_name[0] ? p->platform_name : "?",
               p->platform_version[0] ? p->platform_version : "?",
               p->build[0] ? p->build : "?", xapi, p->xapi_source,
               zl_platform_shim_vdi_type(p) ? "on" : "off",
               zl_platform_shim_read_write(p) ? "on" : "off") < 0)
    return NULL;
  return s;
}
