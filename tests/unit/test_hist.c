/* The log-linear histogram: bucket arithmetic, the 1/128 error bound,
 * quantiles of known distributions, merging, empty and extreme input. */
#include <criterion/criterion.h>

#include "hist.h"
#include "testutil.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t s_rng = 0x243f6a8885a308d3ull;

/* Spread over all magnitudes: a random 64-bit value cut to a random
 * number of bits. */
static uint64_t s_any(void)
{
    unsigned bits = (unsigned)(sl_test_rand(&s_rng) % 65);
    uint64_t v = sl_test_rand(&s_rng);
    return bits == 64 ? v : v & ((1ull << bits) - 1);
}

static sl_hist_t *s_new(void)
{
    sl_hist_t *h = malloc(sizeof(*h));
    cr_assert_not_null(h);
    sl__hist_init(h);
    return h;
}

Test(hist, buckets_are_monotonic_and_cover_everything)
{
    cr_assert_eq(sl__hist_index(0), 0);
    cr_assert_eq(sl__hist_upper(0), 0);
    cr_assert_eq(sl__hist_index(UINT64_MAX), SL_HIST_BUCKETS - 1);
    cr_assert_eq(sl__hist_upper(SL_HIST_BUCKETS - 1), UINT64_MAX);
    for (uint32_t i = 0; i < SL_HIST_BUCKETS; i++) {
        uint64_t up = sl__hist_upper(i);
        /* A bucket's upper edge belongs to it, and the next value starts
         * the next bucket: no gaps, no overlaps. */
        if (sl__hist_index(up) != i)
            cr_assert_fail("index(upper(%u)) = %u", i, sl__hist_index(up));
        if (i + 1 < SL_HIST_BUCKETS) {
            if (sl__hist_upper(i + 1) <= up)
                cr_assert_fail("upper not increasing at %u", i);
            if (sl__hist_index(up + 1) != i + 1)
                cr_assert_fail("index(upper(%u) + 1) = %u", i,
                               sl__hist_index(up + 1));
        }
    }
    /* Below SUB every value has its own bucket. */
    for (uint64_t v = 0; v < SL_HIST_SUB; v++) {
        cr_assert_eq(sl__hist_index(v), v);
        cr_assert_eq(sl__hist_upper((uint32_t)v), v);
    }
    /* index never decreases over a dense range and random pairs. */
    uint32_t prev = 0;
    for (uint64_t v = 0; v < 1u << 20; v++) {
        uint32_t i = sl__hist_index(v);
        if (i < prev || i > prev + 1)
            cr_assert_fail("index jumps from %u to %u at %lu", prev, i,
                           (unsigned long)v);
        prev = i;
    }
    for (int k = 0; k < 200000; k++) {
        uint64_t a = s_any(), b = s_any();
        if (a > b) {
            uint64_t t = a;
            a = b;
            b = t;
        }
        if (sl__hist_index(a) > sl__hist_index(b))
            cr_assert_fail("index(%lu) > index(%lu)", (unsigned long)a,
                           (unsigned long)b);
    }
}

Test(hist, relative_error_within_one_128th)
{
    for (int k = 0; k < 1000000; k++) {
        uint64_t v = s_any();
        uint32_t i = sl__hist_index(v);
        uint64_t up = sl__hist_upper(i);
        uint64_t low = i ? sl__hist_upper(i - 1) + 1 : 0;
        if (up < v || low > v)
            cr_assert_fail("%lu not in bucket %u [%lu, %lu]", (unsigned long)v,
                           i, (unsigned long)low, (unsigned long)up);
        if (v < 256) {
            if (up != v)
                cr_assert_fail("small value %lu not exact", (unsigned long)v);
        } else if ((up - v) > v / 128) {
            /* (up - v) / v <= 1/128, in integers: up - v < 2^56 so the
             * division form cannot overflow. */
            cr_assert_fail("upper %lu of %lu is off by more than 1/128",
                           (unsigned long)up, (unsigned long)v);
        }
    }
    /* The worst case sits at the bottom of a bucket: v a power of two. */
    for (unsigned b = 8; b < 64; b++) {
        uint64_t v = 1ull << b;
        uint64_t up = sl__hist_upper(sl__hist_index(v));
        cr_assert_leq((up - v) * 128, v, "2^%u", b);
        cr_assert_geq(up, v);
    }
}

Test(hist, empty_is_zero)
{
    sl_hist_t *h = s_new();
    cr_assert_eq(h->count, 0);
    cr_assert_eq(sl__hist_quantile(h, 0), 0);
    cr_assert_eq(sl__hist_quantile(h, 0.5), 0);
    cr_assert_eq(sl__hist_quantile(h, 1), 0);
    free(h);
}

Test(hist, uniform_quantiles)
{
    sl_hist_t *h = s_new();
    for (uint64_t v = 1; v <= 1000000; v++)
        sl__hist_record(h, v);
    cr_assert_eq(h->count, 1000000);
    cr_assert_eq(h->min, 1);
    cr_assert_eq(h->max, 1000000);
    cr_assert_eq(h->sum, 500000500000ull);

    uint64_t p50 = sl__hist_quantile(h, 0.5);
    uint64_t p99 = sl__hist_quantile(h, 0.99);
    uint64_t p999 = sl__hist_quantile(h, 0.999);
    cr_assert(p50 >= 500000 && p50 <= 505000, "p50 = %lu", (unsigned long)p50);
    cr_assert(p99 >= 990000 && p99 <= 999900, "p99 = %lu", (unsigned long)p99);
    cr_assert(p999 >= 999000 && p999 <= 1000000, "p999 = %lu",
              (unsigned long)p999);
    cr_assert_eq(sl__hist_quantile(h, 1), 1000000, "capped at the max");
    cr_assert_eq(sl__hist_quantile(h, 0), 1);
    cr_assert_eq(sl__hist_quantile(h, 2), 1000000, "q is clamped");
    cr_assert_eq(sl__hist_quantile(h, -1), 1);
    /* Quantiles never decrease with q. */
    uint64_t prev = 0;
    for (int k = 0; k <= 1000; k++) {
        uint64_t q = sl__hist_quantile(h, k / 1000.0);
        cr_assert_geq(q, prev, "q = %d/1000", k);
        prev = q;
    }
    free(h);
}

Test(hist, two_point_distribution_is_exact_where_it_can_be)
{
    sl_hist_t *h = s_new();
    for (int i = 0; i < 900; i++)
        sl__hist_record(h, 100);
    for (int i = 0; i < 100; i++)
        sl__hist_record(h, 10000);
    cr_assert_eq(sl__hist_quantile(h, 0.5), 100);
    cr_assert_eq(sl__hist_quantile(h, 0.9), 100);
    cr_assert_eq(sl__hist_quantile(h, 0.901), 10000);
    cr_assert_eq(sl__hist_quantile(h, 0.99), 10000);
    free(h);
}

Test(hist, merge_equals_recording_into_one)
{
    sl_hist_t *a = s_new(), *b = s_new(), *both = s_new(), *empty = s_new();
    for (int k = 0; k < 100000; k++) {
        uint64_t v = s_any();
        sl__hist_record(k % 3 ? a : b, v);
        sl__hist_record(both, v);
    }
    sl__hist_merge(a, b);
    sl__hist_merge(a, empty); /* merging nothing changes nothing */
    cr_assert_eq(a->count, both->count);
    cr_assert_eq(a->sum, both->sum);
    cr_assert_eq(a->min, both->min);
    cr_assert_eq(a->max, both->max);
    cr_assert_eq(memcmp(a->buckets, both->buckets, sizeof(a->buckets)), 0);
    for (int k = 0; k <= 100; k++)
        cr_assert_eq(sl__hist_quantile(a, k / 100.0),
                     sl__hist_quantile(both, k / 100.0), "q = %d%%", k);

    /* Into an empty one: a copy. */
    sl__hist_merge(empty, both);
    cr_assert_eq(empty->min, both->min);
    cr_assert_eq(empty->max, both->max);
    cr_assert_eq(empty->count, both->count);
    cr_assert_eq(memcmp(empty->buckets, both->buckets, sizeof(a->buckets)), 0);
    free(a);
    free(b);
    free(both);
    free(empty);
}

Test(hist, extreme_values)
{
    sl_hist_t *h = s_new();
    sl__hist_record(h, UINT64_MAX);
    cr_assert_eq(h->buckets[SL_HIST_BUCKETS - 1], 1);
    cr_assert_eq(sl__hist_quantile(h, 0), UINT64_MAX);
    cr_assert_eq(sl__hist_quantile(h, 0.5), UINT64_MAX);
    cr_assert_eq(sl__hist_quantile(h, 1), UINT64_MAX);
    sl__hist_record(h, 0);
    cr_assert_eq(h->buckets[0], 1);
    cr_assert_eq(h->min, 0);
    cr_assert_eq(h->max, UINT64_MAX);
    cr_assert_eq(sl__hist_quantile(h, 0), 0);
    cr_assert_eq(sl__hist_quantile(h, 0.5), 0);
    cr_assert_eq(sl__hist_quantile(h, 1), UINT64_MAX);
    free(h);

    h = s_new();
    sl__hist_record(h, 0);
    cr_assert_eq(sl__hist_quantile(h, 1), 0);
    cr_assert_eq(h->min, 0);
    cr_assert_eq(h->max, 0);
    free(h);
}

/* count_le: whole buckets at or below the bound, exactly as documented. */
Test(hist, count_le_counts_whole_buckets_up_to_the_bound)
{
    sl_hist_t *h = s_new();
    cr_assert_eq(sl__hist_count_le(h, UINT64_MAX), 0);
    sl__hist_record(h, 0);
    sl__hist_record(h, 100);
    sl__hist_record(h, 200);
    sl__hist_record(h, 10000); /* bucket [9984, 10047] */
    cr_assert_eq(sl__hist_upper(sl__hist_index(10000)), 10047);
    cr_assert_eq(sl__hist_count_le(h, 0), 1);
    cr_assert_eq(sl__hist_count_le(h, 99), 1);
    cr_assert_eq(sl__hist_count_le(h, 100), 2);
    cr_assert_eq(sl__hist_count_le(h, 199), 2);
    cr_assert_eq(sl__hist_count_le(h, 200), 3);
    cr_assert_eq(sl__hist_count_le(h, 10000), 3); /* straddled: left out */
    cr_assert_eq(sl__hist_count_le(h, 10046), 3);
    cr_assert_eq(sl__hist_count_le(h, 10047), 4);
    cr_assert_eq(sl__hist_count_le(h, UINT64_MAX), 4);
    free(h);

    /* Random values over all magnitudes against the definition, and the
     * count never decreases as the bound grows. */
    h = s_new();
    enum { N = 2000 };
    uint64_t *vals = malloc(N * sizeof(*vals));
    cr_assert(vals);
    for (int i = 0; i < N; i++) {
        vals[i] = s_any();
        sl__hist_record(h, vals[i]);
    }
    uint64_t prev = 0;
    for (int b = 0; b < 64; b++) {
        uint64_t bound = (1ull << b) + (uint64_t)(b * 7);
        uint64_t want = 0;
        for (int i = 0; i < N; i++)
            want += sl__hist_upper(sl__hist_index(vals[i])) <= bound;
        uint64_t got = sl__hist_count_le(h, bound);
        cr_assert_eq(got, want, "bound %llu: %llu, want %llu",
                     (unsigned long long)bound, (unsigned long long)got,
                     (unsigned long long)want);
        cr_assert_geq(got, prev);
        prev = got;
    }
    cr_assert_eq(sl__hist_count_le(h, UINT64_MAX), N);
    free(vals);
    free(h);
}

Test(hist, count_le_many_matches_count_le)
{
    sl_hist_t h;
    sl__hist_init(&h);
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 5000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        sl__hist_record(&h, x % 20000000000ull >> (x % 30));
    }
    uint64_t bounds[40], got[40];
    for (size_t b = 0; b < 40; b++)
        bounds[b] = (b == 0) ? 0 : (uint64_t)1 << b;
    sl__hist_count_le_many(&h, bounds, 40, got);
    for (size_t b = 0; b < 40; b++)
        cr_assert_eq(got[b], sl__hist_count_le(&h, bounds[b]), "bound %llu",
                     (unsigned long long)bounds[b]);
}
