/* What `sluice trace info` says about a trace, gathered in one pass over
 * its entries (trace_stats.c); cmd_trace.c prints it. */
#ifndef SL_TRACE_STATS_H
#define SL_TRACE_STATS_H

#include "mpscan.h"
#include "trace.h"

#include <stddef.h>
#include <stdint.h>

/* Distinct field names followed; more are counted, not named. */
#define SL_TS_MAX_FIELDS 1000
/* Rate buckets kept; past this they merge pairwise and widen. */
#define SL_TS_MAX_BUCKETS (1u << 20)

typedef struct sl_ts_field {
    char *name;          /* as bytes; may hold anything */
    size_t name_len;
    int str_key;         /* a string key (else name is the key's kind) */
    uint64_t records;
    uint64_t types[SL_MP_KINDS];
} sl_ts_field_t;

typedef struct sl_trace_stats {
    uint64_t records;
    uint64_t last_ns;      /* the last offset */
    uint64_t size_min, size_max, size_sum;
    uint64_t *buckets;     /* records per bucket of bucket_s seconds */
    size_t n_buckets;
    uint64_t bucket_s;
    sl_ts_field_t *fields; /* in order of first appearance */
    size_t n_fields, cap_fields;
    size_t *index;         /* open-addressing table into fields */
    size_t index_cap;
    uint64_t unnamed;      /* occurrences of fields past the limit */
} sl_trace_stats_t;

void sl__ts_init(sl_trace_stats_t *s);
void sl__ts_fini(sl_trace_stats_t *s);
/* Counts one entry (a record the reader has checked). 0 or -ENOMEM. */
int sl__ts_add(sl_trace_stats_t *s, uint64_t offset_ns, const void *rec,
               size_t len);

/* Per-bucket rates in records per second: min, median (nearest rank)
 * and max over every bucket from the first record's to the last's. */
void sl__ts_rates(const sl_trace_stats_t *s, double *min, double *p50,
                  double *max);

#endif
