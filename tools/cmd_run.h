/* What `sluice run` shares with the commands that run a topology of their
 * own making (`sluice dlq replay`): the options, the run, its summary, the
 * ledger check, the report and the exit code. */
#ifndef SL_CMD_RUN_H
#define SL_CMD_RUN_H

#include "run.h"

typedef struct sl_cli_run {
    const char *cmd;    /* "sluice run", put before messages */
    const char *report; /* --report path, or NULL */
    int quiet;          /* --quiet: no summary */
    long grace_ms;      /* --grace, or -1 for the topology's `grace:` */
    const char *metrics; /* --metrics listen address, or NULL: no endpoint */
    long metrics_linger_ms; /* --metrics-linger: keep serving after the end */
    /* Called once the run has ended and its summary is printed, before
     * it is destroyed (what a replay replayed, say). May be NULL. */
    void (*after)(sl_run_t *run, int quiet, void *arg);
    void *arg;
} sl_cli_run_t;

/* Handles --log-level and --log-format: 1 if arg a (with its value next)
 * is one of them and was applied, 0 if it is not one of them, -EINVAL
 * after a message naming cmd for a bad value. */
int sl_cli_log_option(const char *cmd, const char *a, const char *next);

/* Handles --metrics and --metrics-linger into o: 1 if arg a (with its
 * value next) is one of them, 0 if not, -EINVAL after a message naming cmd
 * for a bad value (an address is checked for syntax here; whether it can
 * be listened on, when the run starts). */
int sl_cli_metrics_option(const char *cmd, const char *a, const char *next,
                          sl_cli_run_t *o);

/* Runs topo to its end, supervising SIGINT/SIGTERM (first drains, second
 * aborts), prints the summary (unless quiet), checks the ledger and writes
 * the report. With o->metrics it serves the metrics from before the start
 * until o->metrics_linger_ms after the end (a signal cuts that short).
 * Returns the exit code: SL_EXIT_OK, SL_EXIT_FAILED or SL_EXIT_LEDGER. topo stays the caller's. */
int sl_cli_run_topology(const sl_topology_t *topo, const sl_cli_run_t *o);

#endif
