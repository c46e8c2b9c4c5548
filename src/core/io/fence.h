/* fence.h: which host may write a volume, enforced on this host's writes.
 *
 * One page per volume in <run>/fence/<SR uuid>%2F<key>, mapped shared by
 * every process of the host that writes the volume (the NBD server, `vol
 * write`: the fence layer of the write path, io.h) and by the datapath
 * calls that hand the volume from host to host (Datapath.activate,
 * deactivate, a takeover).  The page says one of:
 *
 *   open       no activation: every writer may write (Ganeti, the CLI, a
 *              volume never activated through XAPI);
 *   held by H  only writers whose host is H may write; H "" is nobody (the
 *              volume was deactivated and no host has activated it since).
 *
 * and the activation's generation.  A writer's host is this host (the page
 * records it: self, given by whoever sets the page), or the peer's
 * authenticated identity for a remote NBD client (zl_io_queue_set_peer).  Writes refused
 * by the fence fail with EPERM: never dropped.  Reads, flushes and cache hints always
 * pass, so an incoming QEMU reads a volume it may not yet write.
 *
 * Changing the page waits until no write that the old state let in is
 * still running (each writing process counts its writes in flight in a
 * slot of the page), so when zl_fence_set returns, no write of a fenced
 * writer is running or will start.  Changes are serialised by an flock on
 * the page's file; the page itself is read lock-free (a sequence count).
 */
#ifndef ZL_CORE_IO_FENCE_H
#define ZL_CORE_IO_FENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct zl_sr;

/* Set the page of volume key of sr (self: this host): holder NULL is "open", "" is
 * nobody, else a host.  Creates the page if missing.  When the change can exclude a
 * writer, waits up to timeout_ms for writes in flight to finish (-1 with ETIMEDOUT if
 * they do not; the page is changed all the same, so no new write starts).  0 or -1 with
 * an error message. */
int zl_fence_set(struct zl_sr *sr, const char *key, const char *self, const char *holder,
                 uint64_t gen, int timeout_ms);
/* Create the page as "holder" only if there is none yet (attach: the state
 * of the volume's activation record).  0 or -1. */
int zl_fence_init(struct zl_sr *sr, const char *key, const char *self, const char *holder,
                  uint64_t gen);
/* The page's state: *open, holder (when not open), *gen.  -1 with ENOENT
 * and no message when there is no page. */
int zl_fence_get(struct zl_sr *sr, const char *key, bool *open, char *holder, size_t len,
                 uint64_t *gen);
/* Remove the page (the last detach on this host).  Processes that still
 * map it keep the state it had.  0 or -1. */
int zl_fence_remove(struct zl_sr *sr, const char *key);

#endif
