/* `sluice tune TOPOLOGY --stage S --trace TRACE`: finds the pool size of
 * one stage past which more workers stop paying, by replaying a trace
 * against the topology at 1, 2, 3, ... workers (docs/replay.md, "Sizing a
 * stage with sluice tune"). Each point is a child `sluice run TOPOLOGY
 * --workers S=N` driven by a child `sluice replay`. */
#ifndef SL_CMD_TUNE_H
#define SL_CMD_TUNE_H

#include <stddef.h>

/* argv[0] is "tune". Returns the exit code (cli.h): 1 when a point could
 * not be measured, 2 on bad usage or an unusable topology. */
int sl_cmd_tune(int argc, char **argv);

/* One measured pool size. */
typedef struct sl_tune_point {
    unsigned workers;
    double throughput; /* completions per second */
    double p99_ns;
    int fell_behind;
} sl_tune_point_t;

/* Whether to stop after points[0..n): the last two sizes each gained less
 * than 5% over the one before. */
int sl__tune_plateau(const sl_tune_point_t *points, size_t n);
/* The smallest pool size within 5% of the best throughput; the index of
 * the best goes to *best. */
size_t sl__tune_pick(const sl_tune_point_t *points, size_t n, size_t *best);

#endif
