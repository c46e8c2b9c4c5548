/* serve.c: `zfs-live serve`: the NBD server (src/nbd). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/core.h"
#include "nbd/nbd.h"
#include "util/config.h"
#include "util/error.h"
#include "util/log.h"

#include "util/banned.h" /* last: after every declaration */

#define SERVE_USAGE                                                                      \
  "zfs-live serve [--socket PATH] [--tcp [HOST]:PORT] [--tls=off|on|require]\n"          \
  "                [--tls-psk FILE] [--tls-certificates DIR] [--daemon]\n"               \
  "                [--pidfile FILE] [--no-uring] [--control PATH]\n"                     \
  "                [--handshake-timeout SECONDS] [--idle-timeout SECONDS]\n"             \
  "                [--max-handshakes N] [--max-handshakes-per-address N]"

static int
parse_tls(const char *v, enum tls_mode *m)
{
  if (!strcmp(v, "off"))
    *m = TLS_OFF;
  else if (!strcmp(v, "on"))
    *m = TLS_ON;
  else if (!strcmp(v, "require"))
    *m = TLS_REQUIRE;
  else
    return -1;
  return 0;
}

/* A number option: *out = value * scale (seconds to ms: 1000), kept when
 * absent; 0 absent or valid, -1 (usage printed) if not a number >= 0. */
static int
take_number(int *argc, char **argv, const char *flag, double scale, int *out)
{
  const char *v = NULL;
  char *end;
  if (cli_take(argc, argv, flag, &v) == -1) {
    cli_fail();
    return -1;
  }
  if (!v)
    return 0;
  errno = 0;
  double d = strtod(v, &end);
  if (errno || end == v || *end || d < 0 || d * scale > INT_MAX) {
    cli_usage(SERVE_USAGE, "%s wants a number >= 0, not '%s'", flag, v);
    return -1;
  }
  *out = (int)(d * scale + 0.5);
  return 0;
}

/* The default socket: <run>/nbd.sock. */
const char *
nbd_default_socket(void)
{
  static char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/nbd.sock", zl_run_dir());
  return path;
}

int
cli_serve(int argc, char **argv)
{
  /* Limits: 10 s to negotiate (qemu-nbd's default too; TLS included);
   * established connections are never timed out by default, since an
   * attached VM may be idle for hours and its kernel or qemu client does
   * not reconnect by itself.  512 negotiating connections (16 from one
   * address) hold a small fraction of the file descriptors. */
  struct nbd_config cfg = {.tls_unix = TLS_ON,
                           .tls_tcp = TLS_REQUIRE,
                           .threads_io_depth = 256,
                           .handshake_ms = 10000,
                           .idle_ms = 0,
                           .max_unauth = 512,
                           .max_unauth_source = 16,
                           .linger_ms = 1000};
  const char *tls = NULL, *sock = NULL, *type = NULL, *ctl_opt = NULL;
  char pid[PATH_MAX];

  argc = cli_common_opts(argc, argv, &type);
  if (cli_take(&argc, argv, "--socket", &sock) == -1 ||
      cli_take(&argc, argv, "--tcp", &cfg.tcp) == -1 ||
      cli_take(&argc, argv, "--tls", &tls) == -1 ||
      cli_take(&argc, argv, "--tls-psk", &cfg.tls_psk) == -1 ||
      cli_take(&argc, argv, "--tls-certificates", &cfg.tls_certs) == -1 ||
      cli_take(&argc, argv, "--pidfile", &cfg.pidfile) == -1 ||
      cli_take(&argc, argv, "--control", &ctl_opt) == -1)
    return cli_fail();
  if (take_number(&argc, argv, "--handshake-timeout", 1000, &cfg.handshake_ms) == -1 ||
      take_number(&argc, argv, "--idle-timeout", 1000, &cfg.idle_ms) == -1 ||
      take_number(&argc, argv, "--max-handshakes", 1, &cfg.max_unauth) == -1 ||
      take_number(&argc, argv, "--max-handshakes-per-address", 1,
                  &cfg.max_unauth_source) == -1)
    return 2;
  /* what the options leave unsaid, the configuration file says */
  static struct zl_config conf;
  if (zl_config_load(&conf) == -1)
    return cli_fail();
  if (!sock && conf.nbd_socket[0])
    sock = conf.nbd_socket;
  if (!cfg.tcp && conf.nbd_tcp[0])
    cfg.tcp = conf.nbd_tcp;
  if (!tls && conf.nbd_tls[0])
    tls = conf.nbd_tls;
  if (!cfg.tls_psk && conf.tls_psk[0])
    cfg.tls_psk = conf.tls_psk;
  if (!cfg.tls_certs && conf.tls_certificates[0])
    cfg.tls_certs = conf.tls_certificates;
  cfg.daemon = cli_flag(&argc, argv, "--daemon");
  cfg.no_uring = cli_flag(&argc, argv, "--no-uring");
  if (cli_no_more_options(argc, argv) == -1)
    return cli_fail();
  if (argc)
    return cli_usage(SERVE_USAGE, "unexpected argument '%s'", argv[0]);
  if (tls) {
    enum tls_mode m;
    if (parse_tls(tls, &m) == -1)
      return cli_usage(SERVE_USAGE, "--tls must be off, on or require");
    /* TCP demands TLS unless it is off (on = require there); on the Unix
     * socket, on = offered (STARTTLS) but not demanded */
    cfg.tls_tcp = m == TLS_OFF ? TLS_OFF : TLS_REQUIRE;
    cfg.tls_unix = m;
  }
  int rfd = zl_run_subdir("exports", true); /* also makes the run dir */
  if (rfd == -1)
    return cli_fail();
  close(rfd);
  cfg.socket_path = sock ? (sock[0] ? sock : NULL) : nbd_default_socket();
  /* the host's server (the default socket) has the control channel */
  char ctl[PATH_MAX];
  snprintf(ctl, sizeof ctl, "%s/control.sock", zl_run_dir());
  if (!ctl_opt)
    cfg.control_path = sock ? NULL : ctl;
  else
    cfg.control_path = ctl_opt[0] ? ctl_opt : NULL;
  cfg.started = nbd_control_start;
  cfg.stopping = nbd_control_stop;
  if (!cfg.pidfile && cfg.daemon) {
    snprintf(pid, sizeof pid, "%s/nbd.pid", zl_run_dir());
    cfg.pidfile = pid;
  }
  zl_log_init("zfs-live-nbd", LOG_INFO);
  if (nbd_serve(&cfg) == -1)
    return cli_fail();
  return 0;
}

int
cli_relay(int argc, char **argv)
{
  const char *listen = NULL, *to = NULL, *psk = NULL, *pidfile = NULL, *type = NULL;

  argc = cli_common_opts(argc, argv, &type);
  if (cli_take(&argc, argv, "--listen", &listen) == -1 ||
      cli_take(&argc, argv, "--to", &to) == -1 ||
      cli_take(&argc, argv, "--psk", &psk) == -1 ||
      cli_take(&argc, argv, "--pidfile", &pidfile) == -1 ||
      cli_no_more_options(argc, argv) == -1)
    return cli_fail();
  if (argc || !listen || !to || !psk)
    return cli_usage(
        "zfs-live relay --listen SOCKET --to HOST:PORT --psk FILE [--pidfile F]",
        "relay needs --listen, --to and --psk");
  int r = nbd_relay_main(listen, to, psk, pidfile);
  return r == 0 ? 0 : cli_fail();
}
