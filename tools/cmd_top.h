/* `sluice top ADDR`: a live view of a running pipeline, read from the
 * Prometheus endpoint of `sluice run --metrics` (docs/operations_top.md). */
#ifndef SL_CMD_TOP_H
#define SL_CMD_TOP_H

/* argv[0] is "top". Returns the exit code (cli.h): 1 when the endpoint
 * cannot be reached, 2 on bad usage. */
int sl_cmd_top(int argc, char **argv);

#endif
