#include "hist.h"

#include <string.h>

void sl__hist_init(sl_hist_t *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

uint32_t sl__hist_index(uint64_t v)
{
    if (v < SL_HIST_SUB)
        return (uint32_t)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - (SL_HIST_SUB_BITS - 1);
    /* v >> shift is in [SUB/2, SUB): the top bit is implied by msb. */
    uint32_t sub = (uint32_t)(v >> shift) - SL_HIST_SUB / 2;
    return SL_HIST_SUB + (shift - 1) * (SL_HIST_SUB / 2) + sub;
}

uint64_t sl__hist_upper(uint32_t index)
{
    if (index < SL_HIST_SUB)
        return index;
    uint32_t rel = index - SL_HIST_SUB;
    unsigned shift = rel / (SL_HIST_SUB / 2) + 1;
    uint64_t sub = rel % (SL_HIST_SUB / 2) + SL_HIST_SUB / 2;
    uint64_t low = sub << shift;
    return low + ((1ull << shift) - 1);
}

void sl__hist_record(sl_hist_t *h, uint64_t v)
{
    h->buckets[sl__hist_index(v)]++;
    h->count++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
    if (v < h->min)
        h->min = v;
}

void sl__hist_merge(sl_hist_t *into, const sl_hist_t *from)
{
    for (uint32_t i = 0; i < SL_HIST_BUCKETS; i++)
        into->buckets[i] += from->buckets[i];
    into->count += from->count;
    into->sum += from->sum;
    if (from->max > into->max)
        into->max = from->max;
    if (from->min < into->min)
        into->min = from->min;
}

uint64_t sl__hist_quantile(const sl_hist_t *h, double q)
{
    if (h->count == 0)
        return 0;
    if (q < 0)
        q = 0;
    if (q > 1)
        q = 1;
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.5);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < SL_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t up = sl__hist_upper(i);
            return up > h->max ? h->max : up;
        }
    }
    return h->max;
}

void sl__hist_count_le_many(const sl_hist_t *h, const uint64_t *bounds,
                            size_t n, uint64_t *out)
{
    /* one pass over the buckets for all the bounds (a scrape asks for
     * twenty of them per histogram) */
    uint64_t sum = 0;
    uint32_t i = 0;
    for (size_t b = 0; b < n; b++) {
        uint32_t last = sl__hist_index(bounds[b]);
        int none = 0;
        if (sl__hist_upper(last) > bounds[b]) {
            if (last == 0)
                none = 1;
            else
                last--;
        }
        for (; !none && i <= last; i++)
            sum += h->buckets[i];
        out[b] = sum;
    }
}

uint64_t sl__hist_count_le(const sl_hist_t *h, uint64_t v)
{
    uint64_t n = 0;
    /* The bucket holding v ends at or above v: only the one before it and
     * those below are wholly <= v, unless v is its upper edge. */
    uint32_t last = sl__hist_index(v);
    if (sl__hist_upper(last) > v) {
        if (last == 0)
            return 0;
        last--;
    }
    for (uint32_t i = 0; i <= last; i++)
        n += h->buckets[i];
    return n;
}
