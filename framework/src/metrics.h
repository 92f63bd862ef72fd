/*
 * A run's live numbers in the Prometheus text exposition format (0.0.4):
 * per-stage counters and gauges from sl__run_stats, credit per link, and
 * the handler-time and sink-latency histograms with fixed bucket bounds.
 * docs/operations.md lists every family. Rendering reads only snapshots
 * that any thread may take, so it costs the pipeline nothing beyond them.
 */
#ifndef SL_METRICS_H
#define SL_METRICS_H

#include "run.h"

#include <stdio.h>

/* Writes every family for run to f. 0, or a negative errno (-ENOMEM when
 * a snapshot cannot be allocated, -EIO when f failed). */
int sl__metrics_write(sl_run_t *run, FILE *f);

/* Writes s as a label value: backslash, double quote and newline escaped
 * (the exposition format's rules); other bytes as they are. */
void sl__metrics_label(FILE *f, const char *s);

/* The histograms' bucket bounds (`le`), in ns, ascending; +Inf follows. */
#define SL_METRICS_N_BOUNDS 19
extern const uint64_t sl__metrics_bounds_ns[SL_METRICS_N_BOUNDS];

#endif
