/* `sluice trace info|synth`: what a trace file holds, and synthetic
 * traces from a template (docs/replay.md, "Trace files" and "Synthetic
 * traces"). */
#ifndef SL_CMD_TRACE_H
#define SL_CMD_TRACE_H

/* argv[0] is "trace". Returns the exit code (cli.h): 1 for a damaged or
 * unreadable trace (after printing what could be read), 2 on bad usage or
 * an invalid template. */
int sl_cmd_trace(int argc, char **argv);

#endif
