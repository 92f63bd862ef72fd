/* `sluice test FILE_test.yaml...`: unit tests for stages and topologies
 * written in YAML (docs/testing.md). */
#ifndef SL_CMD_TEST_H
#define SL_CMD_TEST_H

/* argv[0] is "test". Returns the exit code (cli.h): 0 when every case
 * passed, 1 when one failed, 2 for bad usage or a bad test file (its
 * problems reported as FILE:LINE:COL). */
int sl_cmd_test(int argc, char **argv);

#endif
