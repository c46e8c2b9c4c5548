/* protocol.h: NBD protocol constants (NetworkBlockDevice/nbd doc/proto.md;
 * reference/nbd.md §1).  All integers on the wire are big-endian. */
#ifndef ZL_NBD_PROTOCOL_H
#define ZL_NBD_PROTOCOL_H

#include <stdint.h>

#define NBD_MAGIC            UINT64_C(0x4e42444d41474943) /* "NBDMAGIC" */
#define NBD_IHAVEOPT         UINT64_C(0x49484156454F5054) /* "IHAVEOPT" */
#define NBD_REP_MAGIC        UINT64_C(0x0003e889045565a9)
#define NBD_REQUEST_MAGIC    UINT32_C(0x25609513)
#define NBD_SIMPLE_MAGIC     UINT32_C(0x67446698)
#define NBD_STRUCTURED_MAGIC UINT32_C(0x668e33ef)

/* handshake flags (server) and client flags */
#define NBD_FLAG_FIXED_NEWSTYLE   (1u << 0)
#define NBD_FLAG_NO_ZEROES        (1u << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_C_NO_ZEROES      (1u << 1)

/* options */
#define NBD_OPT_EXPORT_NAME       1
#define NBD_OPT_ABORT             2
#define NBD_OPT_LIST              3
#define NBD_OPT_PEEK_EXPORT       4
#define NBD_OPT_STARTTLS          5
#define NBD_OPT_INFO              6
#define NBD_OPT_GO                7
#define NBD_OPT_STRUCTURED_REPLY  8
#define NBD_OPT_LIST_META_CONTEXT 9
#define NBD_OPT_SET_META_CONTEXT  10
/* zfs-live's own, between its hosts only (client.c, call.c): run a plugin
 * method on the storage host; answered with NBD_REP_ZL_RESULT */
#define NBD_OPT_ZL_CALL   UINT32_C(0x5a4c0001)
#define NBD_REP_ZL_RESULT UINT32_C(0x5a4c0001)
/* and a replication into an SR of the server's host (replicate.c): the
 * plan, then records (ZL_REC_*), then the result, as NBD_REP_ZL_RESULT */
#define NBD_OPT_ZL_RECV  UINT32_C(0x5a4c0002)
#define ZL_REC_MAGIC     UINT32_C(0x5a4c5245) /* "ZLRE" */
#define ZL_REC_DATA      1
#define ZL_REC_ZERO      2
#define ZL_REC_END       3
#define ZL_REC_ABORT     4
#define ZL_REC_MAX       (4u << 20) /* bytes of one DATA record */
#define ZL_REC_TIMEOUT_S 120        /* a sender silent this long is gone */

/* option replies */
#define NBD_REP_ACK                 1
#define NBD_REP_SERVER              2
#define NBD_REP_INFO                3
#define NBD_REP_META_CONTEXT        4
#define NBD_REP_ERR(n)              ((1u << 31) + (n))
#define NBD_REP_ERR_UNSUP           NBD_REP_ERR(1)
#define NBD_REP_ERR_POLICY          NBD_REP_ERR(2)
#define NBD_REP_ERR_INVALID         NBD_REP_ERR(3)
#define NBD_REP_ERR_PLATFORM        NBD_REP_ERR(4)
#define NBD_REP_ERR_TLS_REQD        NBD_REP_ERR(5)
#define NBD_REP_ERR_UNKNOWN         NBD_REP_ERR(6)
#define NBD_REP_ERR_SHUTDOWN        NBD_REP_ERR(7)
#define NBD_REP_ERR_BLOCK_SIZE_REQD NBD_REP_ERR(8)
#define NBD_REP_ERR_TOO_BIG         NBD_REP_ERR(9)

/* NBD_REP_INFO types */
#define NBD_INFO_EXPORT      0
#define NBD_INFO_NAME        1
#define NBD_INFO_DESCRIPTION 2
#define NBD_INFO_BLOCK_SIZE  3

/* transmission flags */
#define NBD_FLAG_HAS_FLAGS         (1u << 0)
#define NBD_FLAG_READ_ONLY         (1u << 1)
#define NBD_FLAG_SEND_FLUSH        (1u << 2)
#define NBD_FLAG_SEND_FUA          (1u << 3)
#define NBD_FLAG_ROTATIONAL        (1u << 4)
#define NBD_FLAG_SEND_TRIM         (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1u << 6)
#define NBD_FLAG_SEND_DF           (1u << 7)
#define NBD_FLAG_CAN_MULTI_CONN    (1u << 8)
#define NBD_FLAG_SEND_CACHE        (1u << 10)
#define NBD_FLAG_SEND_FAST_ZERO    (1u << 11)

/* commands */
#define NBD_CMD_READ         0
#define NBD_CMD_WRITE        1
#define NBD_CMD_DISC         2
#define NBD_CMD_FLUSH        3
#define NBD_CMD_TRIM         4
#define NBD_CMD_CACHE        5
#define NBD_CMD_WRITE_ZEROES 6
#define NBD_CMD_BLOCK_STATUS 7

/* command flags */
#define NBD_CMD_FLAG_FUA       (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE   (1u << 1)
#define NBD_CMD_FLAG_DF        (1u << 2)
#define NBD_CMD_FLAG_REQ_ONE   (1u << 3)
#define NBD_CMD_FLAG_FAST_ZERO (1u << 4)

/* structured reply chunk types */
#define NBD_REPLY_FLAG_DONE         (1u << 0)
#define NBD_REPLY_TYPE_NONE         0
#define NBD_REPLY_TYPE_OFFSET_DATA  1
#define NBD_REPLY_TYPE_OFFSET_HOLE  2
#define NBD_REPLY_TYPE_BLOCK_STATUS 5
#define NBD_REPLY_TYPE_ERROR        ((1u << 15) + 1)
#define NBD_REPLY_TYPE_ERROR_OFFSET ((1u << 15) + 2)

/* errors */
#define NBD_EPERM     1
#define NBD_EIO       5
#define NBD_ENOMEM    12
#define NBD_EINVAL    22
#define NBD_ENOSPC    28
#define NBD_EOVERFLOW 75
#define NBD_ENOTSUP   95
#define NBD_ESHUTDOWN 108

/* base:allocation */
#define NBD_STATE_HOLE  1u
#define NBD_STATE_ZERO  2u
#define NBD_STATE_DIRTY 1u /* qemu:dirty-bitmap: changed */

/* our limits */
#define NBD_MAX_STRING  4096        /* names, messages */
#define NBD_MAX_OPTION  (64u << 10) /* option payload */
#define NBD_MAX_PAYLOAD (32u << 20) /* largest READ/WRITE we take */
#define NBD_MIN_BLOCK   1u
#define NBD_PREF_BLOCK  4096u

#endif
