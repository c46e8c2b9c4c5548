/* fault.h: named fault-injection points (see fault.c).  In util so that
 * every layer, the file helpers included, can name the steps between its
 * storage changes. */
#ifndef ZL_FAULT_H
#define ZL_FAULT_H

/* If ZFS_LIVE_FAULT is "<op>:<step>", die by SIGKILL here. */
void zl_fault(const char *op, const char *step);
/* The registered points, NULL-terminated "op:step" strings. */
const char *const *zl_fault_points(void);

#endif
