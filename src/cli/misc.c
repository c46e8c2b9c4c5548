/* misc.c: fault-points. */
#include <stdio.h>

#include "cli/cli.h"

#include "util/banned.h" /* last: after every declaration */

int
cli_fault_points(int argc, char **argv)
{
  (void)argc, (void)argv;
  if (cli_json) {
    json_t *a = json_array();
    for (const char *const *p = zl_fault_points(); a && *p; p++)
      json_array_append_new(a, json_string(*p));
    return cli_print_json(a);
  }
  for (const char *const *p = zl_fault_points(); *p; p++)
    printf("%s\n", *p);
  return 0;
}
