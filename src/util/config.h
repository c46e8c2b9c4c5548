/* config.h: the host's configuration file, $ZFS_LIVE_CONF_DIR/zfs-live.conf
 * (/etc/zfs-live/zfs-live.conf): "key = value" lines, '#' comments, blank
 * lines; docs/zfs-live.8 lists the keys.  Every key is optional and the
 * file itself may be absent. */
#ifndef ZL_CONFIG_H
#define ZL_CONFIG_H

#include <limits.h>
#include <stdbool.h>

struct zl_config {
  char path[PATH_MAX]; /* the file read */
  bool found;          /* it exists */
  int log_level;       /* LOG_*; -1 when not set */
  /* defaults of `zfs-live serve`; "" when not set */
  char nbd_socket[PATH_MAX];
  char nbd_tcp[256];
  char nbd_tls[16];
  char tls_psk[PATH_MAX];
  char tls_certificates[PATH_MAX];
};

/* The directory of the configuration ($ZFS_LIVE_CONF_DIR or /etc/zfs-live). */
const char *zl_config_dir(void);

/* Read the file into c (the unset keys as above).  0, also when the file
 * does not exist; -1 with the error "<file>:<line>: <what is wrong>" on
 * the first bad line (unknown key, no '=', a bad value, a key twice) or
 * when it cannot be read.  c holds what came before the bad line. */
int zl_config_load(struct zl_config *c);

#endif
