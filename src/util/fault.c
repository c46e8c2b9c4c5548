/* fault.c: named fault-injection points.
 *
 * ZFS_LIVE_FAULT=<op>:<step> makes the process kill itself with SIGKILL when
 * it reaches that point, exactly as an OOM kill or a power cut of the
 * process would.  Tests use it to prove that every step of every multi-step
 * change is recovered by the next call.  Every point is listed here (and in
 * `zfs-live fault-points`), so a test can iterate over all of them.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault.h"
#include "log.h"

#include "util/banned.h" /* last: after every declaration */

/* clang-format off */
static const char *const points[] = {
  /* op:step                  reached when ... */
  "sr-create:prepared",    /* storage and private area made, no sr.json yet */
  "sr-destroy:unmarked",   /* sr.json removed, private area still there */
  "create:journaled",      /* intent recorded, nothing created */
  "create:data",           /* data object made, metadata not yet stored */
  "create:committed",      /* volume complete, intent not yet removed */
  "snapshot:journaled",
  "snapshot:data",
  "snapshot:committed",
  "clone:journaled",
  "clone:data",
  "clone:committed",
  "destroy:journaled",     /* intent recorded, nothing removed */
  "destroy:unlisted",      /* metadata removed, data still there */
  "destroy:removed",       /* data removed, intent not yet removed */
  "destroy:hidden",        /* a snapshot with dependents marked hidden */
  "resize:journaled",
  "resize:reserved",       /* space reserved (thick), size not yet changed */
  "resize:committed",
  "revert:journaled",
  "revert:copied",         /* snapshot data copied beside the volume */
  "revert:swapped",        /* the copy replaced the volume */
  "cbt-rotate:switched",   /* snapshot of a tracked volume: slots switched */
  "cbt-rotate:map-written", /* the snapshot's map written, "prev" not moved */
  "data-destroy:marked",   /* snapshot marked data-destroyed, data still there */
  "write-file:written",    /* a file's new content in its temporary, not renamed */
  "set-meta:chunks",       /* ZFS: big metadata's chunks written, header not yet */
  "adopt:linked",          /* file SR: image linked in, no metadata yet */
  "adopt:committed",       /* metadata stored, the source name not yet gone */
  "copy:source-journaled", /* copy: intent for the source snapshot, none made */
  "copy:cloned",           /* ZFS same pool: cloned, the copy still transient */
  "copy:received",         /* ZFS other pool: received, its metadata not stored */
  "copy:data",             /* streamed: the data copied, not yet flushed */
  "receive:journaled",     /* intent recorded, nothing made */
  "receive:made",          /* the transient volume made (and filled, if native) */
  "receive:tuned",         /* its tunables applied, still transient */
  "receive:committed",     /* visible, intent not yet removed */
  "import:created",        /* the volume made (transient), empty */
  "import:filled",         /* its data written, not yet verified */
  "export:written",        /* the image complete beside its name, not renamed */
  "replicate:sent",        /* sender: a chunk sent, more to come */
  "replica:receiving",     /* replica marked receiving, nothing written */
  "replica:data",          /* a block written into the replica */
  "replica:received",      /* every block written, not committed */
  "replica:committed",     /* replica's point moved, intent not yet removed */
  NULL,
};/* clang-format on */

const char *const *
zl_fault_points(void)
{
  return points;
}

void
zl_fault(const char *op, const char *step)
{
  const char *want = getenv("ZFS_LIVE_FAULT");
  size_t oplen = strlen(op);

  if (!want || !*want)
    return;
  if (strncmp(want, op, oplen) != 0 || want[oplen] != ':' ||
      strcmp(want + oplen + 1, step) != 0)
    return;
  zl_warn("fault injection: killing the process at %s:%s", op, step);
  kill(getpid(), SIGKILL);
  _exit(137); /* not reached */
}
