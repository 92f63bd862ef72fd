/* The `sluice` command's subcommands. Each returns the process exit code:
 * 0 success, 1 the run failed, 2 bad usage or invalid topology, 3 the
 * ledger did not balance, 4 the run was stopped and records were spilled
 * (the ledger balanced: they are in the spill file). */
#ifndef SL_CLI_H
#define SL_CLI_H

enum {
    SL_EXIT_OK = 0,
    SL_EXIT_FAILED = 1,
    SL_EXIT_USAGE = 2,
    SL_EXIT_LEDGER = 3,
    SL_EXIT_SPILLED = 4
};

int sl_cmd_run(int argc, char **argv);
int sl_cmd_check(int argc, char **argv);
int sl_cmd_plugins(int argc, char **argv);

#endif
