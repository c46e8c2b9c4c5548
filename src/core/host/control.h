/* control.h: a client of this host's NBD server's control channel
 * (<run>/control.sock; the protocol is in nbd/control.c), for the
 * short-lived plugin processes that ask the long-lived server to do what
 * must outlive them (mirrors, import sockets). */
#ifndef ZL_CORE_CONTROL_H
#define ZL_CORE_CONTROL_H

#include <jansson.h>

/* <run>/control.sock */
const char *zl_control_socket(void);
/* Send req (borrowed) and return the answer's object (new reference,
 * "ok" removed), or NULL with the server's errno and message (or why the
 * server could not be reached). */
json_t *zl_control_call(const json_t *req);

#endif
