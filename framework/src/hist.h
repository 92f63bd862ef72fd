/*
 * A log-linear histogram of non-negative integers (latencies in ns): each
 * power of two is split into 128 linear sub-buckets (256 below 256), so any reported
 * quantile is within 1/128 (< 0.8%) of the true value. Fixed size, no
 * allocation after init, O(1) record; merging is a bucket-wise sum.
 */
#ifndef SL_HIST_H
#define SL_HIST_H

#include <stddef.h>
#include <stdint.h>

#define SL_HIST_SUB_BITS 8
#define SL_HIST_SUB (1u << SL_HIST_SUB_BITS)
/* Exponents SUB_BITS..63 each take SUB/2 new buckets after the first SUB. */
#define SL_HIST_BUCKETS (SL_HIST_SUB + (64 - SL_HIST_SUB_BITS) * (SL_HIST_SUB / 2))

typedef struct sl_hist {
    uint64_t count;
    uint64_t max;
    uint64_t min;
    uint64_t sum;
    uint32_t buckets[SL_HIST_BUCKETS];
} sl_hist_t;

void sl__hist_init(sl_hist_t *h);
void sl__hist_record(sl_hist_t *h, uint64_t value);
void sl__hist_merge(sl_hist_t *into, const sl_hist_t *from);
/* The value at quantile q in [0, 1] (upper edge of its bucket, capped at
 * the max seen); 0 when empty. */
uint64_t sl__hist_quantile(const sl_hist_t *h, double q);
/* Values recorded in the buckets that lie wholly at or below v (those
 * whose upper edge is <= v): a cumulative count for a fixed bound such as
 * a Prometheus `le`. A value in the bucket that straddles v is left out,
 * so a value within 1/128 below v may be counted with the next bound.
 * Non-decreasing in v. O(buckets). */
/* The same for bounds sorted ascending, in one pass; out[k] for
 * bounds[k]. */
void sl__hist_count_le_many(const sl_hist_t *h, const uint64_t *bounds,
                            size_t n, uint64_t *out);
uint64_t sl__hist_count_le(const sl_hist_t *h, uint64_t v);

/* Bucket arithmetic, exposed for the tests. */
uint32_t sl__hist_index(uint64_t value);
uint64_t sl__hist_upper(uint32_t index);

#endif
