/* The window stage through the single-stage harness: exact outputs of
 * tumbling and sliding windows, every aggregate and its output type, the
 * lateness boundary, late records (dead letter, drop), string times with
 * %z offsets, flush and emission order, emit_empty, max_groups, bad
 * records, config errors with their positions, and 20k random records
 * against a reference model. */
#include <criterion/criterion.h>

#include "harness.h"
#include "testutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Asserts that the outputs from index `from` on are exactly want[0..n). */
static void expect_outputs(sl_harness_t *h, size_t from,
                           const char *const *want, size_t n)
{
    size_t got = sl_harness_count(h) - from;
    for (size_t i = 0; i < n && i < got; i++)
        cr_expect_str_eq(sl_harness_output(h, from + i), want[i],
                         "output %zu", from + i);
    cr_assert_eq(got, n, "want %zu outputs from %zu, got %zu", n, from, got);
}

static void push(sl_harness_t *h, const char *json)
{
    int rc = sl_harness_push_json(h, json);
    cr_assert_eq(rc, 0, "%s: rc %d (%s)", json, rc,
                 sl_harness_last_error(h));
}

/* Pushes json and asserts that exactly the records want[0..n) came out
 * of that one call. */
static void push_expect(sl_harness_t *h, const char *json,
                        const char *const *want, size_t n)
{
    size_t from = sl_harness_count(h);
    push(h, json);
    expect_outputs(h, from, want, n);
}

static void flush_expect(sl_harness_t *h, const char *const *want, size_t n)
{
    size_t from = sl_harness_count(h);
    cr_assert_eq(sl_harness_flush(h), 0, "%s", sl_harness_last_error(h));
    expect_outputs(h, from, want, n);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

Test(window, tumbling_exact_outputs)
{
    sl_harness_t *h = sl_test_harness(
        "window",
        "time_field: ts\nsize: 10s\nkey: host\n"
        "aggregates: [{op: count, as: hits}, {op: sum, field: b, as: bytes}]\n",
        NULL);
    push_expect(h, "{\"ts\":1,\"host\":\"a\",\"b\":10}", NULL, 0);
    push_expect(h, "{\"ts\":3,\"host\":\"b\",\"b\":5}", NULL, 0);
    push_expect(h, "{\"ts\":9,\"host\":\"a\",\"b\":1}", NULL, 0);
    /* 10 reaches the end of [0, 10): both groups, a first (seen first) */
    const char *w0[] = {
        "{\"window_start\":0,\"window_end\":10,\"host\":\"a\",\"hits\":2,"
        "\"bytes\":11}",
        "{\"window_start\":0,\"window_end\":10,\"host\":\"b\",\"hits\":1,"
        "\"bytes\":5}",
    };
    push_expect(h, "{\"ts\":10,\"host\":\"b\",\"b\":7}", w0, N(w0));
    push_expect(h, "{\"ts\":15,\"host\":\"a\",\"b\":3}", NULL, 0);
    const char *w1[] = {
        "{\"window_start\":10,\"window_end\":20,\"host\":\"b\",\"hits\":1,"
        "\"bytes\":7}",
        "{\"window_start\":10,\"window_end\":20,\"host\":\"a\",\"hits\":1,"
        "\"bytes\":3}",
    };
    push_expect(h, "{\"ts\":25,\"host\":\"a\",\"b\":2}", w1, N(w1));
    /* [30, 40) had no records: nothing for it */
    const char *w2[] = {
        "{\"window_start\":20,\"window_end\":30,\"host\":\"a\",\"hits\":1,"
        "\"bytes\":2}",
    };
    push_expect(h, "{\"ts\":47,\"host\":\"c\",\"b\":1}", w2, N(w2));
    const char *rest[] = {"{\"window_start\":40,\"window_end\":50,"
                          "\"host\":\"c\",\"hits\":1,\"bytes\":1}"};
    flush_expect(h, rest, N(rest));
    cr_expect_eq(sl_harness_errors(h), 0);
    sl_harness_destroy(&h);
}

Test(window, sliding_exact_outputs)
{
    sl_harness_t *h = sl_test_harness(
        "window",
        "time_field: ts\nsize: 10s\nslide: 5s\nkey: k\n"
        "aggregates: [{op: count, as: n}, {op: max, field: v, as: top}]\n",
        NULL);
    /* 1 is in [-5, 5) and [0, 10); 7 in [0, 10) and [5, 15) */
    push_expect(h, "{\"ts\":1,\"k\":\"x\",\"v\":1}", NULL, 0);
    const char *a[] = {"{\"window_start\":-5,\"window_end\":5,\"k\":\"x\","
                       "\"n\":1,\"top\":1}"};
    push_expect(h, "{\"ts\":7,\"k\":\"x\",\"v\":4}", a, N(a));
    const char *b[] = {"{\"window_start\":0,\"window_end\":10,\"k\":\"x\","
                       "\"n\":2,\"top\":4}"};
    push_expect(h, "{\"ts\":12,\"k\":\"y\",\"v\":2}", b, N(b));
    const char *c[] = {
        "{\"window_start\":5,\"window_end\":15,\"k\":\"x\",\"n\":1,"
        "\"top\":4}",
        "{\"window_start\":5,\"window_end\":15,\"k\":\"y\",\"n\":1,"
        "\"top\":2}",
    };
    push_expect(h, "{\"ts\":16,\"k\":\"x\",\"v\":3}", c, N(c));
    const char *rest[] = {
        "{\"window_start\":10,\"window_end\":20,\"k\":\"y\",\"n\":1,"
        "\"top\":2}",
        "{\"window_start\":10,\"window_end\":20,\"k\":\"x\",\"n\":1,"
        "\"top\":3}",
        "{\"window_start\":15,\"window_end\":25,\"k\":\"x\",\"n\":1,"
        "\"top\":3}",
    };
    flush_expect(h, rest, N(rest));
    sl_harness_destroy(&h);
}

Test(window, every_op_with_nulls_skipped)
{
    sl_harness_t *h = sl_test_harness(
        "window",
        "time_field: t\nsize: 1m\n"
        "aggregates:\n"
        "  - {op: count, as: n}\n"
        "  - {op: count, field: v, as: nv}\n"
        "  - {op: sum, field: v, as: s}\n"
        "  - {op: avg, field: v, as: a}\n"
        "  - {op: min, field: v, as: lo}\n"
        "  - {op: max, field: v}\n",
        NULL);
    push(h, "{\"t\":0,\"v\":4}");
    push(h, "{\"t\":1,\"v\":null}");
    push(h, "{\"t\":2}");
    push(h, "{\"t\":3,\"v\":1.5}");
    push(h, "{\"t\":4,\"v\":-2.5}");
    /* only nulls and missing values: count(v) 0, the rest null */
    push(h, "{\"t\":60,\"v\":null}");
    push(h, "{\"t\":61}");
    const char *want[] = {
        "{\"window_start\":0,\"window_end\":60,\"n\":5,\"nv\":3,\"s\":3.0,"
        "\"a\":1.0,\"lo\":-2.5,\"max_v\":4}",
        "{\"window_start\":60,\"window_end\":120,\"n\":2,\"nv\":0,\"s\":null,"
        "\"a\":null,\"lo\":null,\"max_v\":null}",
    };
    cr_assert_eq(sl_harness_count(h), 1);
    expect_outputs(h, 0, want, 1);
    flush_expect(h, want + 1, 1);
    sl_harness_destroy(&h);
}

Test(window, sum_and_min_max_types)
{
    sl_harness_t *h = sl_test_harness(
        "window",
        "time_field: t\nsize: 10s\nkey: g\n"
        "aggregates: [{op: sum, field: v, as: s}, {op: avg, field: v, as: a},"
        " {op: min, field: v, as: lo}, {op: max, field: v, as: hi}]\n",
        NULL);
    /* ints only: an int sum and int min/max; avg is still a float */
    push(h, "{\"t\":1,\"g\":1,\"v\":-5}");
    push(h, "{\"t\":1,\"g\":1,\"v\":3}");
    /* a float in the mix: the sum turns float; min/max keep each type */
    push(h, "{\"t\":1,\"g\":2,\"v\":2}");
    push(h, "{\"t\":1,\"g\":2,\"v\":0.5}");
    push(h, "{\"t\":1,\"g\":2,\"v\":2.0}"); /* a tie keeps the earlier 2 */
    /* int64 overflow: the sum becomes a float */
    push(h, "{\"t\":1,\"g\":3,\"v\":9223372036854775807}");
    push(h, "{\"t\":1,\"g\":3,\"v\":1}");
    /* above int64: no exact int sum, but max keeps the uint64 */
    push(h, "{\"t\":1,\"g\":4,\"v\":18446744073709551615}");
    push(h, "{\"t\":1,\"g\":4,\"v\":-1}");
    const char *want[] = {
        "{\"window_start\":0,\"window_end\":10,\"g\":1,\"s\":-2,\"a\":-1.0,"
        "\"lo\":-5,\"hi\":3}",
        "{\"window_start\":0,\"window_end\":10,\"g\":2,\"s\":4.5,\"a\":1.5,"
        "\"lo\":0.5,\"hi\":2}",
        "{\"window_start\":0,\"window_end\":10,\"g\":3,"
        "\"s\":9.223372036854776e+18,\"a\":4.611686018427388e+18,"
        "\"lo\":1,\"hi\":9223372036854775807}",
        "{\"window_start\":0,\"window_end\":10,\"g\":4,"
        "\"s\":1.8446744073709552e+19,\"a\":9.223372036854776e+18,"
        "\"lo\":-1,\"hi\":18446744073709551615}",
    };
    flush_expect(h, want, N(want));
    sl_harness_destroy(&h);
}

Test(window, lateness_boundary_in_seconds)
{
    sl_harness_t *h = sl_test_harness(
        "window",
        "time_field: ts\nsize: 10s\nlateness: 5s\n"
        "aggregates: [{op: count, as: n}]\n",
        NULL);
    push_expect(h, "{\"ts\":0}", NULL, 0);
    /* watermark 14 - 5 = 9: [0, 10) stays open, 9 is still on time */
    push_expect(h, "{\"ts\":14}", NULL, 0);
    push_expect(h, "{\"ts\":9}", NULL, 0);
    /* watermark exactly 10 = the window's end: it closes */
    const char *w0[] = {"{\"window_start\":0,\"window_end\":10,\"n\":2}"};
    push_expect(h, "{\"ts\":15}", w0, N(w0));
    sl_test_push_fails(h, "{\"ts\":9}", "late record: event time 9 is "
                                        "before the watermark 10 (window "
                                        "closed)");
    /* 10 belongs to the open [10, 20); a late float shows its fraction */
    push_expect(h, "{\"ts\":10}", NULL, 0);
    sl_test_push_fails(h, "{\"ts\":2.5}", "late record: event time 2.5 is "
                                          "before the watermark 10");
    const char *w1[] = {"{\"window_start\":10,\"window_end\":20,\"n\":3}"};
    flush_expect(h, w1, N(w1));
    cr_expect_eq(sl_harness_errors(h), 2);
    sl_harness_destroy(&h);
}

Test(window, lateness_boundary_one_unit_past)
{
    sl_harness_t *h = sl_test_harness(
        "window",
        "time_field: ts\ntime_unit: ms\nsize: 10s\nlateness: 5000ms\n"
        "aggregates: [{op: count, as: n}]\n",
        NULL);
    push(h, "{\"ts\":0}");
    push_expect(h, "{\"ts\":14999}", NULL, 0); /* watermark 9999 */
    push_expect(h, "{\"ts\":9999}", NULL, 0);  /* one unit before the end */
    const char *w0[] = {
        "{\"window_start\":0,\"window_end\":10000,\"n\":2}"};
    push_expect(h, "{\"ts\":15000}", w0, N(w0));
    sl_test_push_fails(h, "{\"ts\":9999}", "late record: event time 9999 is "
                                           "before the watermark 10000 "
                                           "(window closed)");
    sl_harness_destroy(&h);
}

Test(window, sliding_record_partly_late_counts_in_open_windows)
{
    sl_harness_t *h = sl_test_harness(
        "window",
        "time_field: ts\nsize: 10s\nslide: 5s\nlateness: 2s\n"
        "aggregates: [{op: count, as: n}]\n",
        NULL);
    push(h, "{\"ts\":6}");
    /* watermark 10: [0, 10) closes (and [-5, 5) never had records) */
    const char *w0[] = {"{\"window_start\":0,\"window_end\":10,\"n\":1}"};
    push_expect(h, "{\"ts\":12}", w0, N(w0));
    /* 8 is in [0, 10), closed, and [5, 15), open: it counts there */
    push_expect(h, "{\"ts\":8}", NULL, 0);
    /* 4 is in [-5, 5) and [0, 10), both closed: late */
    sl_test_push_fails(h, "{\"ts\":4}", "event time 4 is before the "
                                        "watermark 10");
    const char *rest[] = {"{\"window_start\":5,\"window_end\":15,\"n\":3}",
                          "{\"window_start\":10,\"window_end\":20,\"n\":1}"};
    flush_expect(h, rest, N(rest));
    sl_harness_destroy(&h);
}

Test(window, late_drop_is_silent)
{
    sl_harness_t *h = sl_test_harness(
        "window",
        "time_field: ts\nsize: 10s\nlate: drop\n"
        "aggregates: [{op: count, as: n}]\n",
        NULL);
    push(h, "{\"ts\":3}");
    push(h, "{\"ts\":21}");
    cr_assert_eq(sl_harness_count(h), 1);
    push_expect(h, "{\"ts\":3}", NULL, 0);
    push_expect(h, "{\"ts\":19}", NULL, 0);
    cr_expect_eq(sl_harness_errors(h), 0);
    const char *rest[] = {"{\"window_start\":20,\"window_end\":30,\"n\":1}"};
    flush_expect(h, rest, N(rest));
    sl_harness_destroy(&h);
}

Test(window, string_times_with_offsets)
{
    /* The stage must not look at TZ: a zone far from UTC shows it. */
    setenv("TZ", "Asia/Kolkata", 1);
    tzset();
    sl_harness_t *h = sl_test_harness(
        "window",
        "time_field: when\nsize: 1m\n"
        "time_format: \"%d/%b/%Y:%H:%M:%S %z\"\n"
        "key: path\naggregates: [{op: count, as: hits}]\n",
        NULL);
    /* 20:55:36Z and 20:55:59Z: one minute, 971211300 .. 971211360 */
    push(h, "{\"when\":\"10/Oct/2000:13:55:36 -0700\",\"path\":\"/\"}");
    push(h, "{\"when\":\"10/Oct/2000:22:55:59 +0200\",\"path\":\"/\"}");
    const char *w0[] = {"{\"window_start\":971211300,\"window_end\":"
                        "971211360,\"path\":\"/\",\"hits\":2}"};
    push_expect(h, "{\"when\":\"10/Oct/2000:20:56:00 +0000\",\"path\":\"/\"}",
                w0, N(w0));
    /* +05:30 and a numeric time in the same unit (seconds) mix freely */
    push(h, "{\"when\":\"11/Oct/2000:02:26:30 +0530\",\"path\":\"/\"}");
    push(h, "{\"when\":971211361,\"path\":\"/x\"}");
    sl_test_push_fails(h, "{\"when\":\"10/Oct/2000 20:56:01\",\"path\":\"/\"}",
                       "record 6: time field 'when': '10/Oct/2000 20:56:01' "
                       "does not match time_format '%d/%b/%Y:%H:%M:%S %z'");
    sl_test_push_fails(h, "{\"when\":\"10/Oct/2000:20:56:01 +0000 x\"}",
                       "does not match time_format");
    const char *rest[] = {
        "{\"window_start\":971211360,\"window_end\":971211420,"
        "\"path\":\"/\",\"hits\":2}",
        "{\"window_start\":971211360,\"window_end\":971211420,"
        "\"path\":\"/x\",\"hits\":1}",
    };
    flush_expect(h, rest, N(rest));
    sl_harness_destroy(&h);
    unsetenv("TZ");
    tzset();
}

Test(window, string_time_without_offset_is_utc)
{
    setenv("TZ", "America/New_York", 1);
    tzset();
    sl_harness_t *h = sl_test_harness(
        "window",
        "time_field: t\ntime_unit: ms\nsize: 1h\n"
        "time_format: \"%Y-%m-%dT%H:%M:%S\"\n"
        "aggregates: [{op: count, as: n}]\n",
        NULL);
    push(h, "{\"t\":\"1970-01-01T01:59:59\"}");
    /* window bounds come out in time_unit, here ms */
    const char *want[] = {"{\"window_start\":3600000,\"window_end\":7200000,"
                          "\"n\":1}"};
    flush_expect(h, want, N(want));
    sl_harness_destroy(&h);

    h = sl_test_harness("window",
                        "time_field: t\nsize: 1m\n"
                        "aggregates: [{op: count, as: n}]\n",
                        NULL);
    sl_test_push_fails(h, "{\"t\":\"12:00\"}", "record 1: time field 't' is "
                                               "a string, but no "
                                               "time_format is set");
    sl_harness_destroy(&h);
    unsetenv("TZ");
    tzset();
}

Test(window, flush_order_is_window_end_then_first_seen)
{
    sl_harness_t *h = sl_test_harness(
        "window",
        "time_field: ts\nsize: 10s\nlateness: 100s\nkey: k\n"
        "aggregates: [{op: count, as: n}]\n",
        NULL);
    push(h, "{\"ts\":25,\"k\":\"b\"}");
    push(h, "{\"ts\":5,\"k\":\"c\"}");
    push(h, "{\"ts\":15,\"k\":\"c\"}");
    push(h, "{\"ts\":6,\"k\":\"b\"}");
    push(h, "{\"ts\":7,\"k\":\"a\"}");
    push(h, "{\"ts\":8,\"k\":\"c\"}");
    cr_assert_eq(sl_harness_count(h), 0);
    /* One record far ahead closes all three windows at once. */
    const char *want[] = {
        "{\"window_start\":0,\"window_end\":10,\"k\":\"c\",\"n\":2}",
        "{\"window_start\":0,\"window_end\":10,\"k\":\"b\",\"n\":1}",
        "{\"window_start\":0,\"window_end\":10,\"k\":\"a\",\"n\":1}",
        "{\"window_start\":10,\"window_end\":20,\"k\":\"c\",\"n\":1}",
        "{\"window_start\":20,\"window_end\":30,\"k\":\"b\",\"n\":1}",
    };
    push_expect(h, "{\"ts\":200,\"k\":\"d\"}", want, N(want));
    const char *rest[] = {
        "{\"window_start\":200,\"window_end\":210,\"k\":\"d\",\"n\":1}"};
    flush_expect(h, rest, N(rest));
    /* a second flush has nothing left */
    flush_expect(h, NULL, 0);
    sl_harness_destroy(&h);
}

Test(window, key_values_keep_their_types)
{
    sl_harness_t *h = sl_test_harness(
        "window",
        "time_field: ts\nsize: 10s\nkey: [user.id, status]\n"
        "aggregates: [{op: count, as: n}]\n",
        NULL);
    push(h, "{\"ts\":1,\"user\":{\"id\":7},\"status\":\"200\"}");
    push(h, "{\"ts\":1,\"user\":{\"id\":7},\"status\":200}");
    push(h, "{\"ts\":1,\"user\":{\"id\":7.0},\"status\":200}");
    push(h, "{\"ts\":1,\"status\":200}");
    push(h, "{\"ts\":1,\"user\":{\"id\":null},\"status\":200}");
    push(h, "{\"ts\":2,\"status\":200,\"user\":{\"id\":7}}");
    const char *want[] = {
        "{\"window_start\":0,\"window_end\":10,\"user.id\":7,"
        "\"status\":\"200\",\"n\":1}",
        "{\"window_start\":0,\"window_end\":10,\"user.id\":7,\"status\":200,"
        "\"n\":2}",
        "{\"window_start\":0,\"window_end\":10,\"user.id\":7.0,"
        "\"status\":200,\"n\":1}",
        /* a missing key field groups as null, like an explicit null */
        "{\"window_start\":0,\"window_end\":10,\"user.id\":null,"
        "\"status\":200,\"n\":2}",
    };
    flush_expect(h, want, N(want));
    sl_harness_destroy(&h);
}

Test(window, emit_empty_fills_gaps_per_key)
{
    sl_harness_t *h = sl_test_harness(
        "window",
        "time_field: ts\nsize: 10s\nemit_empty: true\nkey: k\n"
        "aggregates: [{op: count, as: n}, {op: sum, field: v, as: s}]\n",
        NULL);
    push(h, "{\"ts\":1,\"k\":\"a\",\"v\":1}");
    push(h, "{\"ts\":12,\"k\":\"b\",\"v\":2}");
    const char *w0[] = {
        "{\"window_start\":0,\"window_end\":10,\"k\":\"a\",\"n\":1,\"s\":1}"};
    expect_outputs(h, 0, w0, N(w0));
    /* [10, 20): b's group, then a without records; [20, 30): both empty */
    const char *w1[] = {
        "{\"window_start\":10,\"window_end\":20,\"k\":\"b\",\"n\":1,\"s\":2}",
        "{\"window_start\":10,\"window_end\":20,\"k\":\"a\",\"n\":0,"
        "\"s\":null}",
        "{\"window_start\":20,\"window_end\":30,\"k\":\"a\",\"n\":0,"
        "\"s\":null}",
        "{\"window_start\":20,\"window_end\":30,\"k\":\"b\",\"n\":0,"
        "\"s\":null}",
    };
    push_expect(h, "{\"ts\":35,\"k\":\"a\",\"v\":3}", w1, N(w1));
    const char *rest[] = {
        "{\"window_start\":30,\"window_end\":40,\"k\":\"a\",\"n\":1,\"s\":3}",
        "{\"window_start\":30,\"window_end\":40,\"k\":\"b\",\"n\":0,"
        "\"s\":null}",
    };
    flush_expect(h, rest, N(rest));
    sl_harness_destroy(&h);

    /* Without a key: one group, an empty window is count 0. */
    h = sl_test_harness("window",
                        "time_field: ts\nsize: 10s\nemit_empty: true\n"
                        "aggregates: [{op: count, as: n}]\n",
                        NULL);
    push(h, "{\"ts\":5}");
    push(h, "{\"ts\":31}");
    const char *nokey[] = {"{\"window_start\":0,\"window_end\":10,\"n\":1}",
                           "{\"window_start\":10,\"window_end\":20,\"n\":0}",
                           "{\"window_start\":20,\"window_end\":30,\"n\":0}",
                           "{\"window_start\":30,\"window_end\":40,\"n\":1}"};
    cr_assert_eq(sl_harness_flush(h), 0);
    expect_outputs(h, 0, nokey, N(nokey));
    sl_harness_destroy(&h);

    /* A gap of more than 10000 windows (a bad timestamp, say) is not
     * filled: keys x windows records would come out. */
    h = sl_test_harness("window",
                        "time_field: ts\nsize: 1s\nemit_empty: true\n"
                        "aggregates: [{op: count, as: n}]\n",
                        NULL);
    push(h, "{\"ts\":0}");
    push(h, "{\"ts\":1000000}");
    const char *gap[] = {"{\"window_start\":0,\"window_end\":1,\"n\":1}",
                         "{\"window_start\":1000000,\"window_end\":1000001,"
                         "\"n\":1}"};
    cr_assert_eq(sl_harness_flush(h), 0);
    expect_outputs(h, 0, gap, N(gap));
    sl_harness_destroy(&h);
}

Test(window, max_groups_bounds_open_groups)
{
    sl_harness_t *h = sl_test_harness(
        "window",
        "time_field: ts\nsize: 10s\nkey: k\nmax_groups: 2\n"
        "aggregates: [{op: count, as: n}]\n",
        NULL);
    push(h, "{\"ts\":1,\"k\":\"a\"}");
    push(h, "{\"ts\":2,\"k\":\"b\"}");
    push(h, "{\"ts\":3,\"k\":\"a\"}"); /* an existing group: no new one */
    sl_test_push_fails(h, "{\"ts\":4,\"k\":\"c\"}",
                       "record 4: max_groups (2) reached: it needs 1 new "
                       "(window, key) groups and 2 are open");
    /* Closing [0, 10) makes room in the same record. */
    const char *w0[] = {
        "{\"window_start\":0,\"window_end\":10,\"k\":\"a\",\"n\":2}",
        "{\"window_start\":0,\"window_end\":10,\"k\":\"b\",\"n\":1}"};
    push_expect(h, "{\"ts\":11,\"k\":\"c\"}", w0, N(w0));
    push(h, "{\"ts\":12,\"k\":\"a\"}");
    sl_test_push_fails(h, "{\"ts\":13,\"k\":\"d\"}", "max_groups (2)");
    /* the failed records changed nothing */
    const char *rest[] = {
        "{\"window_start\":10,\"window_end\":20,\"k\":\"c\",\"n\":1}",
        "{\"window_start\":10,\"window_end\":20,\"k\":\"a\",\"n\":1}"};
    flush_expect(h, rest, N(rest));
    sl_harness_destroy(&h);

    /* A sliding record needs size / slide groups. */
    h = sl_test_harness("window",
                        "time_field: ts\nsize: 10s\nslide: 2s\nmax_groups: 4\n"
                        "aggregates: [{op: count, as: n}]\n",
                        NULL);
    sl_test_push_fails(h, "{\"ts\":1}", "it needs 5 new (window, key) "
                                        "groups and 0 are open");
    sl_harness_destroy(&h);
}

Test(window, bad_records_name_field_and_record)
{
    sl_harness_t *h = sl_test_harness(
        "window",
        "time_field: meta.ts\nsize: 10s\n"
        "aggregates: [{op: sum, field: bytes}, {op: max, field: ms}]\n",
        NULL);
    sl_test_push_fails(h, "{\"bytes\":1}",
                       "record 1: time field 'meta.ts' is missing");
    sl_test_push_fails(h, "{\"meta\":{\"ts\":true}}",
                       "record 2: time field 'meta.ts' must be a number or "
                       "a string, got a bool");
    sl_test_push_fails(h, "{\"meta\":{\"ts\":1},\"bytes\":\"12\"}",
                       "record 3: field 'bytes' must be a number (or null), "
                       "got a string");
    sl_test_push_fails(h, "{\"meta\":{\"ts\":1},\"bytes\":1,\"ms\":[1]}",
                       "record 4: field 'ms' must be a number (or null), got "
                       "an array");
    sl_test_push_fails(h, "{\"meta\":{\"ts\":1e300}}",
                       "record 5: time field 'meta.ts' is out of range");
    sl_test_push_fails(h, "{\"meta\":{\"ts\":9223372036854775807}}",
                       "time field 'meta.ts' is out of range");
    /* a failed record leaves no trace */
    push(h, "{\"meta\":{\"ts\":-1},\"bytes\":2}");
    const char *want[] = {"{\"window_start\":-10,\"window_end\":0,"
                          "\"sum_bytes\":2,\"max_ms\":null}"};
    flush_expect(h, want, N(want));
    cr_expect_eq(sl_harness_errors(h), 6);
    sl_harness_destroy(&h);
}

#define REFUSED(yaml, want) sl_test_refused("window", yaml, NULL, want)
#define BASE "time_field: ts\naggregates: [{op: count}]\n"

Test(window, config_errors)
{
    REFUSED("time_field: ts\nsize: 60s\nslide: 7s\n"
            "aggregates: [{op: count}]\n",
            "config:3:8: window: 'size' (60s) must be a multiple of 'slide' "
            "(7s)");
    REFUSED("time_field: ts\nsize: 10s\n"
            "aggregates: [{op: count}, {op: median, field: x}]\n",
            "config:3:32: window: unknown op 'median' (want count, sum, "
            "avg, min or max)");
    REFUSED("time_field: ts\nsize: 10s\naggregates:\n"
            "  - {op: count}\n  - {op: sum, as: total}\n",
            "config:5:5: window: op 'sum' needs 'field' (the numeric field "
            "to read)");
    REFUSED(BASE "size: 60\n",
            "config:3:7: window: 'size' must be a duration such as 60s, "
            "500ms or 1.5m (a number and a unit: ns, us, ms, s, m or h)");
    REFUSED(BASE "size: 10 minutes\n", "config:3:7: window: 'size' must be "
                                       "a duration");
    REFUSED(BASE "size: 0s\n", "config:3:7: window: 'size' must be more "
                               "than 0");
    REFUSED(BASE "size: 10s\nlateness: -1s\n",
            "config:4:11: window: 'lateness' must be a duration");
    REFUSED(BASE "size: 10s\nslide: 1.5\n",
            "config:4:8: window: 'slide' must be a duration");
    REFUSED(BASE "size: 0.5ns\n", "'size' must be a duration");
    REFUSED(BASE "size: 200000h\n", "config:3:7: window: 'size' must be at "
                                    "most 100000h");
    REFUSED(BASE "size: 1500ms\n",
            "config:3:7: window: 'size' (1500ms) must be a whole number of "
            "time_unit (s)");
    REFUSED(BASE "size: 10s\nslide: 2500ms\n", "'slide' (2500ms) must be a "
                                               "whole number of time_unit");
    REFUSED(BASE "size: 10h\nslide: 1s\n",
            "'size' / 'slide' is 36000 windows per record; at most 10000");
    REFUSED("size: 10s\naggregates: [{op: count}]\n",
            "config:1:1: window: missing required key 'time_field'");
    REFUSED("time_field: ts\naggregates: [{op: count}]\n",
            "missing required key 'size'");
    REFUSED("time_field: ts\nsize: 10s\n",
            "missing required key 'aggregates'");
    REFUSED("time_field: ts\nsize: 10s\naggregates: []\n",
            "config:3:13: window: 'aggregates' must be a non-empty list");
    REFUSED(BASE "size: 10s\ntime_unit: minutes\n",
            "config:4:12: window: 'time_unit' must be s, ms, us or ns");
    REFUSED(BASE "size: 10s\ntime_format: \"%s\"\n",
            "config:4:14: window: 'time_format' must not use %s");
    REFUSED(BASE "size: 10s\nlate: ignore\n",
            "config:4:7: window: 'late' must be dead_letter or drop");
    REFUSED(BASE "size: 10s\nmax_groups: 0\n",
            "config:4:13: window: 'max_groups' must be an integer from 1 to "
            "2147483647");
    REFUSED(BASE "size: 10s\nemit_empty: maybe\n", "emit_empty");
    REFUSED(BASE "size: 10s\nkey: [a, b, a]\n",
            "config:4:13: window: 'key' names 'a' twice");
    REFUSED(BASE "size: 10s\nkey: window_end\n",
            "key field 'window_end' would clash");
    REFUSED("time_field: ts\nsize: 10s\nkey: host\n"
            "aggregates: [{op: count, as: n}, {op: sum, field: b, as: n}]\n",
            "config:4:58: window: output field 'n' is used twice");
    REFUSED("time_field: ts\nsize: 10s\nkey: host\n"
            "aggregates: [{op: count, as: host}]\n",
            "output field 'host' is used twice");
    REFUSED("time_field: ts\nsize: 10s\n"
            "aggregates: [{op: sum, field: b, by: x}]\n",
            "config:3:38: window: unknown key 'by' in an aggregate");
    REFUSED(BASE "size: 10s\nwindow: 5\n", "unknown key 'window'");
}

Test(window, durations_accept_fractions_and_units)
{
    sl_harness_t *h = sl_test_harness(
        "window",
        "time_field: ts\ntime_unit: ms\nsize: 1.5s\nslide: 500ms\n"
        "lateness: 0.25m\naggregates: [{op: count, as: n}]\n",
        NULL);
    push(h, "{\"ts\":1000}");
    /* 1000 is in [0, 1500), [500, 2000) and [1000, 2500); lateness 15 s */
    push_expect(h, "{\"ts\":16499}", NULL, 0);
    const char *w[] = {"{\"window_start\":0,\"window_end\":1500,\"n\":1}"};
    push_expect(h, "{\"ts\":16500}", w, N(w));
    sl_harness_destroy(&h);
}

/* ---- against a reference model ----------------------------------------- */

#define M_KEYS 13
#define M_WINDOWS 64 /* window starts 0 .. (M_WINDOWS - 1) * slide */

typedef struct mcell {
    long n;
    long sum;
    long min, max;
    int emitted;
} mcell_t;

/* 20k records with random keys, times drifting up with a jitter that now
 * and then exceeds the lateness; late ones are dropped. The model applies
 * the rules of docs/stages/window.md directly: a record counts in each of
 * its windows that ends after the watermark before it. */
Test(window, random_records_match_reference_model, .timeout = 120)
{
    enum { N_REC = 20000, SIZE = 6000, SLIDE = 2000, LATE = 1500 };
    sl_harness_t *h = sl_test_harness(
        "window",
        "time_field: t\ntime_unit: ms\nsize: 6s\nslide: 2s\nlateness: 1500ms\n"
        "key: k\nlate: drop\n"
        "aggregates: [{op: count, as: n}, {op: sum, field: v, as: s},"
        " {op: min, field: v, as: lo}, {op: max, field: v, as: hi}]\n",
        NULL);
    static mcell_t m[M_WINDOWS + 3][M_KEYS];
    memset(m, 0, sizeof(m));
    uint64_t rs = 0x77177;
    long max = -1, dropped = 0, partial = 0;
    for (long i = 0; i < N_REC; i++) {
        /* one record in 8 is up to 9 s behind: late, or partly late */
        uint64_t r = sl_test_rand(&rs);
        long t = 15000 + i * 5 - (long)(r % 8 ? r % 1000 : r % 9000);
        long k = (long)(sl_test_rand(&rs) % M_KEYS);
        long v = (long)(sl_test_rand(&rs) % 1000) - 500;
        long wm = max < 0 ? -1000000 : max - LATE;
        long last = t / SLIDE * SLIDE;
        int counted = 0, skipped = 0;
        for (long s = last - SIZE + SLIDE; s <= last; s += SLIDE) {
            if (s + SIZE <= wm) {
                skipped = 1;
                continue;
            }
            mcell_t *c = &m[s / SLIDE][k];
            if (c->n == 0 || v < c->min)
                c->min = v;
            if (c->n == 0 || v > c->max)
                c->max = v;
            c->n++;
            c->sum += v;
            counted = 1;
        }
        dropped += !counted;
        partial += counted && skipped;
        if (t > max)
            max = t;
        char rec[96];
        snprintf(rec, sizeof(rec), "{\"t\":%ld,\"k\":%ld,\"v\":%ld}", t, k, v);
        push(h, rec);
    }
    cr_assert_eq(sl_harness_flush(h), 0);
    cr_assert_gt(dropped, 0, "the jitter should make some records late");
    cr_assert_gt(partial, 0, "and some late for their older windows only");
    cr_assert_eq(sl_harness_errors(h), 0);

    long prev_end = -1, groups = 0;
    for (size_t i = 0; i < sl_harness_count(h); i++) {
        const char *o = sl_harness_output(h, i);
        long ws, we, k, n, s, lo, hi;
        cr_assert_eq(sscanf(o, "{\"window_start\":%ld,\"window_end\":%ld,"
                               "\"k\":%ld,\"n\":%ld,\"s\":%ld,\"lo\":%ld,"
                               "\"hi\":%ld}",
                            &ws, &we, &k, &n, &s, &lo, &hi),
                     7, "bad output %s", o);
        cr_assert_eq(we - ws, SIZE);
        cr_assert_geq(we, prev_end, "output %zu out of order: %s", i, o);
        prev_end = we;
        cr_assert(ws >= 0 && ws / SLIDE < M_WINDOWS + 3 && k >= 0 &&
                  k < M_KEYS, "%s", o);
        mcell_t *c = &m[ws / SLIDE][k];
        cr_assert_eq(c->emitted, 0, "emitted twice: %s", o);
        c->emitted = 1;
        cr_assert_eq(n, c->n, "%s: model count %ld", o, c->n);
        cr_assert_eq(s, c->sum, "%s: model sum %ld", o, c->sum);
        cr_assert_eq(lo, c->min, "%s", o);
        cr_assert_eq(hi, c->max, "%s", o);
        groups++;
    }
    long want = 0;
    for (size_t w = 0; w < M_WINDOWS + 3; w++)
        for (size_t k = 0; k < M_KEYS; k++)
            want += m[w][k].n > 0;
    cr_assert_eq(groups, want);
    cr_log_info("window model: %ld groups, %ld of %d records late, %ld "
                "partly", groups, dropped, N_REC, partial);
    sl_harness_destroy(&h);
}
