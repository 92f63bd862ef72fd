/* The live progress line of `sluice run` on a terminal:
 *   "  1.2M read  1.1M delivered  312k/s  00:03.2  [slowest: 'parse' 98% busy]"
 * redrawn in place on stderr at most every 250 ms, and only when stderr is
 * a terminal, so logs and pipes never see it. */
#ifndef SL_PROGRESS_H
#define SL_PROGRESS_H

#include "run.h"

#include <stdint.h>

typedef struct sl_cli_progress {
    int on;            /* stderr is a terminal and the line is wanted */
    int drawn;         /* a line is on the screen now */
    uint64_t last_ns;  /* when the counters below were taken */
    uint64_t last_read;
    double rate;       /* records read per second, smoothed */
    unsigned ticks;    /* lines drawn */
    double *busy_s;    /* each stage's busy seconds at last_ns */
    size_t n_stages;
} sl_cli_progress_t;

/* Enabled when `want` and stderr is a terminal. The first line appears
 * 250 ms after this, so short runs print none. */
void sl_cli_progress_init(sl_cli_progress_t *p, sl_run_t *run, int want);
/* Redraws the line if 250 ms have passed since the last one. Cheap to call
 * every few milliseconds. */
void sl_cli_progress_tick(sl_cli_progress_t *p, sl_run_t *run);
/* Erases the line (before anything else is printed); it comes back at the
 * next tick. */
void sl_cli_progress_clear(sl_cli_progress_t *p);
/* Erases the line and frees what init took. */
void sl_cli_progress_fini(sl_cli_progress_t *p);

#endif
