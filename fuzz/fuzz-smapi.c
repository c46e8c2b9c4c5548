/* fuzz-smapi.c: libFuzzer harness for the SMAPIv3 front end, from the
 * request bytes through src/smapi/ into the core and the file backend, on a
 * real file SR.  Built and run by scripts/fuzz.sh (clang); replayed over
 * fuzz/seeds/smapi/ by the unit tests (fuzz/replay.c, gcc).
 *
 * An input is "<Method>\n<request>", or up to four of them separated by
 * lines "--" (a sequence: each request sees what the ones before did; the
 * restore comes after the last): the method's name as a plugin link
 * is named (looked up as xapi-storage-script does, case-insensitively, in
 * the dispatch table's SMAPIv3 rows), then the bytes xapi-storage-script
 * writes on stdin.  Volume-plugin methods run for SR type file-live,
 * datapath methods for the scheme zfs-live.  In the request, "@SR@" stands
 * for the template SR's path, "@AREA@" for the directory SRs may be made
 * in and "@CANARY@" for the canary directory (seeds are portable).
 *
 * The sandbox (mkdtemp under $TMPDIR, once per process; with
 * FUZZ_SANDBOX_KEEP set, left at exit; with FUZZ_SANDBOX_TMPFS set, a tmpfs of 1 GiB
 * mounted there in a mount namespace of the process's own, where it may): area/sr   the
 * template SR: fixed volume keys (below), made once area/crashed-<op>  SRs with calls
 * killed part-way (recovery pending) area/empty    an SR without volumes area/     where
 * requests may make other SRs run/      $ZFS_LIVE_RUN canary/   must stay empty; nothing
 * else may appear beside these tpl/      pristine copies of area/ and run/ Before every
 * input area/ and run/ are restored from tpl/, so every input is independent of the ones
 * before it (a crash reproduces alone).
 *
 * Checked after every request (abort on violation): the exit status and the
 * reply agree; the reply is exactly one line holding one JSON value; a
 * result has the shape of the method's v5 type (smapi-check.c), an error is
 * a well-formed SMAPIv3 error object with a kind and a message; a success
 * did what was asked, as follow-up calls see it (smapi-oracle.c); nothing was
 * made outside area/ and run/ (canary/ empty, no new entry beside them, no
 * plain file in area/ where only SR directories belong); no descriptor
 * leaked (counted around the call); the working directory is unchanged;
 * the SRs without pending recovery (area/sr, area/empty) hold no
 * temporary, no intent record, no image without metadata or the reverse,
 * and are unchanged (names, sizes, small files' bytes; lock files aside)
 * by a request that failed.  The sanitizers
 * (ASan, UBSan, LeakSanitizer per input) report the rest.
 *
 * Left out or held in, and why (the harness runs as whoever runs it, root
 * on the build hosts, on a shared machine):
 *   Datapath.attach  not run: it starts `zfs-live serve --daemon` through
 *                    /proc/self/exe (here the fuzzer itself) and binds loop
 *                    devices (kernel state outliving the input).  Without
 *                    attach no attach record exists, so Datapath.detach
 *                    never releases a loop device either.
 *   zfs-live SRs     a URI naming SR type zfs-live is skipped: the ZFS
 *                    backend runs zfs(8) on pools the input would name.
 *   paths            an input is skipped (returns -1, not kept) when a
 *                    string holding a '/' is not an absolute path inside
 *                    area/ (the "sr" parameter, configuration values, the
 *                    SR part of a URI) or inside area/ or canary/ (keys,
 *                    domains, anything else but names, descriptions, dbg
 *                    and Volume.set's k/v, which are data).  So
 *                    the code never acts on the host's own directories;
 *                    escapes through keys are still caught by the canary.
 *   thick volumes    none in the template: a thick resize would fallocate
 *                    whatever size the input asks for on the host's disk.
 *                    Inputs that say "thick" run only on the private tmpfs
 *                    (1 GiB), where a later request may create one. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "commands.h"
#include "core/core.h"
#include "fuzz/sandbox.h"
#include "fuzz/smapi-check.h"
#include "fuzz/smapi-oracle.h"
#include "fuzz/smapi-template.h"
#include "smapi/smapi.h"
#include "util/error.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char sandbox[PATH_MAX], area[PATH_MAX + 8], sr_path[PATH_MAX + 16],
    canary[PATH_MAX + 8];
static char cwd0[PATH_MAX];
static int sandbox_fd = -1, area_fd, run_fd, canary_fd, tpl_area_fd, tpl_run_fd;
static bool verbose, on_tmpfs;

/* An input is up to MAX_REQUESTS blocks, one request each, separated by
 * SEPARATOR lines. */
#define MAX_REQUESTS 4
#define SEPARATOR    "\n--\n"

static void
fail(const char *method, const char *in, size_t len, const char *reply, size_t rlen,
     const char *why)
{
  fprintf(stderr,
          "\n*** fuzz-smapi: %s\n*** method: %s\n*** request: %.*s\n*** reply: %.*s\n",
          why, method, (int)len, in, (int)rlen, reply);
  abort();
}

/* --- the sandbox ------------------------------------------------------------ */

static int
sub(const char *name, bool make)
{
  if (make && mkdirat(sandbox_fd, name, 0755) == -1)
    sb_die(name);
  int fd = openat(sandbox_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd == -1)
    sb_die(name);
  return fd;
}

static void
remove_sandbox(void)
{
  if (sandbox_fd >= 0) {
    sb_rm_contents(sandbox_fd);
    rmdir(sandbox);
  }
}

/* A tmpfs on dir seen by this process only (a mount namespace of its own:
 * the mount goes with the process), where the privileges allow: fsync and
 * the restores cost nothing there.  Otherwise dir as it is. */
static void
private_tmpfs(const char *dir)
{
  if (unshare(CLONE_NEWNS) == -1 ||
      mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == -1 ||
      mount("zfs-live-fuzz", dir, "tmpfs", 0, "size=1g,mode=0700") == -1) {
    fprintf(stderr,
            "fuzz-smapi: no private tmpfs (%s); the sandbox is on %s's filesystem\n",
            strerror(errno), dir);
    return;
  }
  on_tmpfs = true;
}

static void
restore(void)
{
  sb_rm_contents(area_fd);
  sb_rm_contents(run_fd);
  sb_copy_tree(tpl_area_fd, area_fd);
  sb_copy_tree(tpl_run_fd, run_fd);
}

/* --- one request ------------------------------------------------------------ */

/* Run method on in/len; the reply into *out (malloc()ed).  Exit status. */
static int
handle(const struct command *cmd, const char *in, size_t len, char **out, size_t *outlen)
{
  bool volume = cmd->where & IN_VOLUME;
  struct smapi_target t = {.kind = volume ? PLUGIN_VOLUME : PLUGIN_DATAPATH,
                           .sr_type = volume ? "file-live" : "zfs-live"};
  FILE *f = open_memstream(out, outlen);

  if (!f || command_smapi_target(cmd->name, t.kind, &t) == -1)
    sb_die("open_memstream");
  int rc = smapi_handle(&t, in, len, f);
  if (fclose(f) != 0)
    sb_die("fclose");
  if (verbose)
    fprintf(stderr, "%s -> %d %.*s", cmd->name, rc, (int)*outlen, *out);
  return rc;
}

/* Exit status and reply agree, the reply is one line of one JSON value, of
 * the method's shape. */
static void
check_reply(const struct command *cmd, const char *in, size_t len, int rc,
            const char *out, size_t outlen)
{
  json_error_t jerr;
  const char *why = NULL;

  if (rc != 0 && rc != 1)
    fail(cmd->name, in, len, out, outlen, "exit status neither 0 nor 1");
  if (outlen == 0 || out[outlen - 1] != '\n' || memchr(out, '\n', outlen - 1))
    fail(cmd->name, in, len, out, outlen, "the reply is not exactly one line");
  json_t *v = json_loadb(out, outlen, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
  if (!v)
    fail(cmd->name, in, len, out, outlen, "the reply is not one JSON value");
  why = rc == 0 ? smapi_check_result(smapi_check_shape_of(cmd->name), v)
                : smapi_check_error(v);
  json_decref(v);
  if (why)
    fail(cmd->name, in, len, out, outlen, why);
}

/* Nothing made outside area/ and run/; nothing leaked. */
static void
check_world(const struct command *cmd, const char *in, size_t len, int fds_before)
{
  char names[1024], here[PATH_MAX];

  if (sb_count(sandbox_fd, names, sizeof names) != 4)
    fail(cmd->name, in, len, names, strlen(names), "a new entry beside area/ and run/");
  if (sb_count(canary_fd, names, sizeof names) != 0)
    fail(cmd->name, in, len, names, strlen(names), "something was made in canary/");
  /* area/ holds SR directories only */
  int n = sb_count(area_fd, names, sizeof names);
  for (char *p = names; n > 0 && *p; p += strcspn(p, " ") + 1) {
    struct stat st;
    char name[NAME_MAX + 1];
    snprintf(name, sizeof name, "%.*s", (int)strcspn(p, " "), p);
    if (fstatat(area_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode))
      fail(cmd->name, in, len, name, strlen(name), "a file in area/, outside every SR");
  }
  if (sb_open_fds() != fds_before)
    fail(cmd->name, in, len, "", 0, "a descriptor leaked");
  if (!getcwd(here, sizeof here) || strcmp(here, cwd0) != 0)
    fail(cmd->name, in, len, "", 0, "the working directory changed");
}

/* The SRs without a call pending recovery, and their digests at rest. */
static const char *const clean_srs[] = {"sr", "empty"};
static uint64_t clean_digest[2];

static bool
lock_file(const char *rel)
{
  return !strcmp(rel, ".zfs-live/lock") || !strcmp(rel, ".zfs-live/locks");
}

static bool
has_suffix(const char *s, const char *suffix)
{
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* A clean SR after a call: nothing left behind (temporaries, intent
 * records, an image without metadata or metadata without an image), and
 * unchanged if the call failed. */
/* The clean SR i's directory, or -1 if it is no SR (any more). */
static int
clean_sr_fd(int i)
{
  int dfd =
      openat(area_fd, clean_srs[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

  if (dfd >= 0 && faccessat(dfd, ".zfs-live/sr.json", F_OK, AT_SYMLINK_NOFOLLOW) == -1) {
    close(dfd);
    dfd = -1;
  }
  return dfd;
}

/* Its digest before a request (the template's for the first); 0: no SR. */
static uint64_t
clean_sr_digest(int i, bool first)
{
  if (first)
    return clean_digest[i];
  int dfd = clean_sr_fd(i);
  uint64_t d = dfd == -1 ? 0 : sb_digest(dfd, lock_file);
  if (dfd >= 0)
    close(dfd);
  return d;
}

static void
check_clean_sr(const struct command *cmd, const char *in, size_t len, int i, int rc,
               uint64_t before)
{
  char names[8192], name[NAME_MAX + 1];
  int dfd = clean_sr_fd(i);

  if (dfd == -1) {
    if (rc == 1 && before != 0)
      fail(cmd->name, in, len, clean_srs[i], strlen(clean_srs[i]),
           "a failed request removed an SR");
    return; /* destroyed */
  }
  sb_count(dfd, names, sizeof names);
  for (char *p = names; *p; p += strcspn(p, " ") + 1) {
    snprintf(name, sizeof name, "%.*s", (int)strcspn(p, " "), p);
    char other[NAME_MAX + 16];
    if (name[0] == '.' && strcmp(name, ".zfs-live") != 0)
      fail(cmd->name, in, len, name, strlen(name), "a temporary left in the SR");
    if (has_suffix(name, ".img"))
      snprintf(other, sizeof other, "%.*s.meta.json", (int)strlen(name) - 4, name);
    else if (has_suffix(name, ".meta.json"))
      snprintf(other, sizeof other, "%.*s.img", (int)strlen(name) - 10, name);
    else
      continue;
    if (faccessat(dfd, other, F_OK, AT_SYMLINK_NOFOLLOW) == -1)
      fail(cmd->name, in, len, name, strlen(name),
           "an image or metadata without the other");
  }
  int j = openat(dfd, ".zfs-live/journal", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (j >= 0) {
    sb_count(j, names, sizeof names);
    close(j);
    if (*names && strcmp(names, "spare ") != 0)
      fail(cmd->name, in, len, names, strlen(names), "an intent record left behind");
  }
  if (rc == 1 && sb_digest(dfd, lock_file) != before)
    fail(cmd->name, in, len, clean_srs[i], strlen(clean_srs[i]),
         "a failed request changed the SR");
  close(dfd);
}

/* --- what the input may name (see the header) ------------------------------- */

static const char *const data_fields[] = {
    "dbg", "name", "description", "new_name", "new_description", "k", "v", NULL};

static bool
is_data(const char *field)
{
  for (const char *const *d = data_fields; *d; d++) {
    if (strcmp(*d, field) == 0)
      return true;
  }
  return false;
}

/* A string with a '/': absolute and inside area/ for a path parameter,
 * inside area/ or canary/ for anything else. */
static bool
string_ok(const char *s, bool path)
{
  if (!strchr(s, '/'))
    return true; /* a bare name: what the code must refuse as a path */
  if (path)
    return sb_path_within(s, area);
  return sb_path_within(s, area) || sb_path_within(s, canary);
}

static bool
uri_ok(const char *uri)
{
  const char *p = uri, *scheme = "zfs-live://";

  if (strncmp(p, scheme, strlen(scheme)) != 0)
    return string_ok(uri, false);
  p += strlen(scheme);
  const char *slash = strchr(p, '/'), *bar = strrchr(uri, '|');
  if (!slash)
    return true;
  char type[64], sr[PATH_MAX];
  snprintf(type, sizeof type, "%.*s", (int)(slash - p), p);
  if (zl_sr_type_known(type) && strcmp(type, "file-live") != 0)
    return false;
  if (!bar || bar < slash)
    return string_ok(slash + 1, false);
  snprintf(sr, sizeof sr, "%.*s", (int)(bar - slash - 1), slash + 1);
  return string_ok(sr, true) && string_ok(bar + 1, false);
}

static bool
value_ok(const json_t *v, const char *field, bool path)
{
  const char *k;
  size_t i;
  json_t *x;

  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    return !strcmp(field, "uri") ? uri_ok(s) : string_ok(s, path);
  }
  if (json_is_array(v)) {
    json_array_foreach(v, i, x)
    {
      if (!value_ok(x, field, path))
        return false;
    }
  } else if (json_is_object(v)) {
    json_object_foreach((json_t *)v, k, x)
    {
      if (!value_ok(x, field, path))
        return false;
    }
  }
  return true;
}

/* May this request run?  One the code cannot parse is always fine. */
static bool
request_ok(const char *in, size_t len)
{
  json_t *params = json_loadb(in, len, JSON_REJECT_DUPLICATES, NULL), *v;
  const char *k;
  bool ok = true;

  json_object_foreach(params, k, v)
  {
    if (is_data(k))
      continue;
    bool path = !strcmp(k, "sr") || !strcmp(k, "configuration");
    if (!(ok = value_ok(v, k, path)))
      break;
  }
  json_decref(params);
  return ok;
}

/* in with the placeholders replaced, in a buffer of exactly *len bytes (no
 * NUL after them: a read past the end is caught). */
static char *
substitute(const char *in, size_t *len)
{
  static const struct {
    const char *from;
    const char *to;
  } subs[] = {{"@SR@", sr_path}, {"@AREA@", area}, {"@CANARY@", canary}};
  char *out = NULL;
  size_t outlen = 0;
  FILE *f = open_memstream(&out, &outlen);

  if (!f)
    sb_die("open_memstream");
  for (size_t i = 0; i < *len;) {
    size_t s = 0;
    while (s < sizeof subs / sizeof subs[0] &&
           (*len - i < strlen(subs[s].from) ||
            memcmp(in + i, subs[s].from, strlen(subs[s].from)) != 0))
      s++;
    if (s < sizeof subs / sizeof subs[0]) {
      fputs(subs[s].to, f);
      i += strlen(subs[s].from);
    } else {
      fputc(in[i++], f);
    }
  }
  fclose(f);
  char *exact = malloc(outlen ? outlen : 1);
  if (!exact)
    sb_die("malloc");
  memcpy(exact, out, outlen);
  free(out);
  *len = outlen;
  return exact;
}

/* A follow-up call for the oracle, checked like any reply. */
static json_t *
oracle_call(const char *method, const json_t *params, int *rc)
{
  const struct command *cmd = command_find(method, IN_VOLUME | IN_DATAPATH);
  char *in = json_dumps(params, JSON_COMPACT), *out = NULL;
  size_t outlen = 0;

  if (!cmd || !in)
    sb_die("oracle");
  *rc = handle(cmd, in, strlen(in), &out, &outlen);
  check_reply(cmd, in, strlen(in), *rc, out, outlen);
  json_t *v = json_loadb(out, outlen, JSON_DECODE_ANY, NULL);
  free(in);
  free(out);
  return v;
}

/* After a success: did it do what was asked? */
static void
check_done(const struct command *cmd, const char *in, size_t len, const char *out,
           size_t outlen)
{
  json_t *params = json_loadb(in, len, JSON_REJECT_DUPLICATES, NULL);
  json_t *result = json_loadb(out, outlen, JSON_DECODE_ANY, NULL);
  const char *why = smapi_oracle(cmd->name, params, result, oracle_call);

  if (why)
    fail(cmd->name, in, len, out, outlen, why);
  json_decref(params);
  json_decref(result);
}

struct request {
  const struct command *cmd;
  char *in; /* the bytes after substitution, exactly len of them */
  size_t len;
};

/* One "<Method>\n<request>" block; 0, or -1 if it is not to run. */
static int
parse_block(const char *p, size_t n, struct request *r)
{
  const char *nl = memchr(p, '\n', n < 64 ? n : 64);
  char method[64];

  if (!nl)
    return -1;
  snprintf(method, sizeof method, "%.*s", (int)(nl - p), p);
  r->cmd = command_find(method, IN_VOLUME | IN_DATAPATH);
  if (!r->cmd || strcmp(r->cmd->name, "Datapath.attach") == 0)
    return -1;
  r->len = n - (size_t)(nl + 1 - p);
  r->in = substitute(nl + 1, &r->len);
  if (!request_ok(r->in, r->len)) {
    free(r->in);
    return -1;
  }
  return 0;
}

/* Split data into blocks at SEPARATOR lines; all or nothing. */
static int
parse_input(const char *data, size_t size, struct request *reqs, int *n)
{
  static const char sep[] = SEPARATOR;
  const char *p = data, *end = data + size;

  for (*n = 0; *n < MAX_REQUESTS; (*n)++) {
    const char *s = memmem(p, (size_t)(end - p), sep, strlen(sep));
    const char *stop = s ? s : end;
    if (parse_block(p, (size_t)(stop - p), &reqs[*n]) == -1)
      break;
    if (!s) {
      (*n)++;
      return 0;
    }
    p = s + strlen(sep);
  }
  for (int i = 0; i < *n; i++)
    free(reqs[i].in);
  return -1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct request reqs[MAX_REQUESTS];
  int n;

  /* without the private tmpfs, a thick volume would take the disk's space */
  if ((!on_tmpfs && memmem(data, size, "thick", 5)) ||
      parse_input((const char *)data, size, reqs, &n) == -1)
    return -1;
  for (int i = 0; i < n; i++) {
    const struct request *r = &reqs[i];
    uint64_t before[2] = {clean_sr_digest(0, i == 0), clean_sr_digest(1, i == 0)};
    char *out = NULL;
    size_t outlen = 0;
    /* counted here: libFuzzer and the sanitizers open descriptors of their
     * own between inputs (the symbolizer's pipes) */
    int fds = sb_open_fds();
    int rc = handle(r->cmd, r->in, r->len, &out, &outlen);
    check_reply(r->cmd, r->in, r->len, rc, out, outlen);
    if (rc == 0)
      check_done(r->cmd, r->in, r->len, out, outlen);
    check_world(r->cmd, r->in, r->len, fds);
    for (int j = 0; j < 2; j++)
      check_clean_sr(r->cmd, r->in, r->len, j, rc, before[j]);
    free(out);
    zl_error_clear();
  }
  for (int i = 0; i < n; i++)
    free(reqs[i].in);
  restore();
  return 0;
}

/* A request of the template's making: it must succeed. */
static void
template_call(const char *method, const char *in)
{
  const struct command *cmd = command_find(method, IN_VOLUME | IN_DATAPATH);
  char *out = NULL;
  size_t outlen = 0;

  if (!cmd || handle(cmd, in, strlen(in), &out, &outlen) != 0)
    fail(method, in, strlen(in), out, outlen, "making the template failed");
  free(out);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc, (void)argv;
  const char *tmp = getenv("TMPDIR");
  char dir[PATH_MAX];

  verbose = getenv("FUZZ_SMAPI_VERBOSE") != NULL;
  snprintf(dir, sizeof dir, "%s/zfs-live-fuzz-smapi.XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(dir) || !realpath(dir, sandbox))
    sb_die(dir);
  if (getenv("FUZZ_SANDBOX_TMPFS"))
    private_tmpfs(sandbox);
  if ((sandbox_fd = open(sandbox, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
    sb_die(sandbox);
  if (!getenv("FUZZ_SANDBOX_KEEP"))
    atexit(remove_sandbox);
  area_fd = sub("area", true);
  run_fd = sub("run", true);
  canary_fd = sub("canary", true);
  int tpl = sub("tpl", true);
  if (mkdirat(tpl, "area", 0755) == -1 || mkdirat(tpl, "run", 0755) == -1 ||
      (tpl_area_fd = openat(tpl, "area", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
      (tpl_run_fd = openat(tpl, "run", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
    sb_die("tpl");
  close(tpl);
  snprintf(area, sizeof area, "%s/area", sandbox);
  snprintf(sr_path, sizeof sr_path, "%s/area/sr", sandbox);
  snprintf(canary, sizeof canary, "%s/canary", sandbox);

  char run[PATH_MAX + 8];
  snprintf(run, sizeof run, "%s/run", sandbox);
  setenv("ZFS_LIVE_RUN", run, 1);
  setenv("ZFS_LIVE_HOST_UUID", SMAPI_TEMPLATE_HOST, 1);
  setenv("ZFS_LIVE_NODE", "fuzz-node", 1);
  unsetenv("ZFS_LIVE_FAULT");
  unsetenv("ZFS_LIVE_TEST_WRITE_DELAY_US");
  /* every log line is formatted (debug included) and goes nowhere, unless
   * FUZZ_SMAPI_VERBOSE is set */
  setenv("ZFS_LIVE_DEBUG", "1", 1);
  zl_log_init(NULL, verbose ? LOG_DEBUG : -1);

  smapi_template_make(area, template_call);
  sb_copy_tree(area_fd, tpl_area_fd);
  sb_copy_tree(run_fd, tpl_run_fd);
  restore();
  for (int i = 0; i < 2; i++) {
    int dfd = openat(area_fd, clean_srs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd == -1)
      sb_die(clean_srs[i]);
    clean_digest[i] = sb_digest(dfd, lock_file);
    close(dfd);
  }
  if (!getcwd(cwd0, sizeof cwd0))
    sb_die("getcwd");
  return 0;
}
