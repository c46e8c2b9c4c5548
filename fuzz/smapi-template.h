/* smapi-template.h: the SRs every input of the SMAPIv3 fuzzer starts from,
 * made in area/ (smapi-template.c):
 *   sr        fixed volume keys: K_VOL (16 MiB, data, keys and a
 *             multi-line description), K_SNAP its snapshot, K_CLONE a
 *             clone of that, K_CBT (37 MiB, CBT on) with snapshots
 *             K_CBT_S1 (data destroyed), K_CBT_S2, K_CBT_S3, K_ELSE
 *             (active on another host), K_NONPERS (opened non-persistent)
 *   crashed-<op>  the C_* volumes, then a create, resize, snapshot,
 *             revert, destroy or CBT rotation ("cbt") killed at a fault
 *             point: a request there runs recovery first
 *   empty     no volumes (SR.destroy can succeed) */
#ifndef ZL_FUZZ_SMAPI_TEMPLATE_H
#define ZL_FUZZ_SMAPI_TEMPLATE_H

/* The template SR's volumes. */
#define SR_UUID             "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
#define K_VOL               "11111111-1111-4111-8111-111111111111" /* data, keys */
#define K_SNAP              "22222222-2222-4222-8222-222222222222" /* snapshot of K_VOL */
#define K_CLONE             "33333333-3333-4333-8333-333333333333" /* clone of K_SNAP */
#define K_CBT               "44444444-4444-4444-8444-444444444444" /* CBT on, 37 MiB */
#define K_CBT_S1            "55555555-5555-4555-8555-555555555555" /* its data destroyed */
#define K_CBT_S2            "66666666-6666-4666-8666-666666666666"
#define K_CBT_S3            "77777777-7777-4777-8777-777777777777"
#define K_ELSE              "88888888-8888-4888-8888-888888888888" /* active on another host */
#define K_NONPERS           "99999999-9999-4999-8999-999999999999" /* opened non-persistent */
#define SMAPI_TEMPLATE_HOST "fuzz-host-0000-this" /* this host ($ZFS_LIVE_HOST_UUID) */
/* area/empty: an SR without volumes (SR.destroy can succeed).
 * area/crashed-<op>: SRs whose calls were killed part-way (ZFS_LIVE_FAULT),
 * so every request on one runs recovery first; their volumes: */
#define C_VOL  "c0000000-0000-4000-8000-000000000001" /* snapshotted */
#define C_SNAP "c0000000-0000-4000-8000-000000000002"
#define C_CBT  "c0000000-0000-4000-8000-000000000003" /* CBT on */
#define C_CBT1 "c0000000-0000-4000-8000-000000000004" /* its snapshot */
#define C_GONE "c0000000-0000-4000-8000-000000000005" /* destroy cut off */
#define C_NEW  "c0000000-0000-4000-8000-000000000006" /* create cut off */

/* Run a request (method, the JSON text); abort unless it succeeds. */
typedef void (*smapi_template_call)(const char *method, const char *in);

/* Make the SRs in area (an empty directory); ZFS_LIVE_RUN and
 * ZFS_LIVE_HOST_UUID are set. */
void smapi_template_make(const char *area, smapi_template_call call);

#endif
