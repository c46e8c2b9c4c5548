/* misc.c: fault-points. */
#include <stdio.h>

#include "cli/cli.h"

#include "util/banned.h" /* last: after every declaration */

int
cli_fault_points(int argc, char **argv)
{
  (void)argc, (void)argv;
  for (const char *const *p = zl_fault_points(); *p; p++)
    printf("%s\n", *p);
  return 0;
}
