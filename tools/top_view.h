/* What `sluice top` shows: the per-stage state of a run taken from one
 * scrape of its /metrics, and the view of the interval between two scrapes
 * (rates, queue fill, handler p95, the bottleneck). No I/O but the FILE the
 * view is written to, so that it is testable with canned text. */
#ifndef SL_TOP_VIEW_H
#define SL_TOP_VIEW_H

#include "promtext.h"

#include <stdio.h>

typedef struct sl_top_scrape sl_top_scrape_t;

/* Builds a scrape from *doc, taken at wall_s (seconds, monotonic clock);
 * the scrape takes the document (*doc is set to NULL). Stages are in the
 * order of the sluice_stage_info lines, stages only seen in other families
 * after them. Returns 0 or -ENOMEM (then *doc is freed as well). */
int sl_top_scrape_new(sl_prom_doc_t **doc, double wall_s,
                      sl_top_scrape_t **out);
void sl_top_scrape_destroy(sl_top_scrape_t **s);
size_t sl_top_scrape_n_stages(const sl_top_scrape_t *s);
/* The parsed text the scrape was built from (for its errors). */
const sl_prom_doc_t *sl_top_scrape_doc(const sl_top_scrape_t *s);

/* The q-quantile (0..1) of a cumulative histogram with n buckets (upper
 * bounds le, ascending, the last +Inf; cumulative counts cnt), estimated
 * like Prometheus' histogram_quantile: linear interpolation inside the
 * bucket that holds the rank, the lowest bucket starting at 0, and the
 * upper bound of the last finite bucket when the rank falls in +Inf.
 * NaN when there are no observations or no +Inf bucket. */
double sl_top_quantile(double q, const double *le, const double *cnt,
                       size_t n);

/* Writes the view of the interval from prev to cur (two scrapes of url)
 * to f: header, one row per stage, the bottleneck line. prev may be NULL:
 * rates are then shown as '-'. */
void sl_top_render(FILE *f, const char *url, const sl_top_scrape_t *prev,
                   const sl_top_scrape_t *cur);

#endif
