/* `sluice dlq inspect|replay`: reading dead-letter (and spill) files, and
 * sending their records through a topology again (docs/running.md). */
#ifndef SL_CMD_DLQ_H
#define SL_CMD_DLQ_H

/* argv[0] is "dlq". Returns the exit code (cli.h). */
int sl_cmd_dlq(int argc, char **argv);

#endif
