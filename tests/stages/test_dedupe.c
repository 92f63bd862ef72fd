/* The dedupe stage through the single-stage harness: which records of a
 * sequence with duplicates come out (count, time and unbounded windows),
 * key tuples and key types, records missing their fields, max_keys, config
 * errors, and 100k random records against a simple reference model. */
#include <criterion/criterion.h>

#include "harness.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Pushes each record in turn and asserts that exactly those flagged in
 * keep came out, unchanged and in order. */
static void expect_kept(sl_harness_t *h, const char *const *recs,
                        const int *keep, size_t n)
{
    size_t want = sl_harness_count(h);
    for (size_t i = 0; i < n; i++) {
        int rc = sl_harness_push_json(h, recs[i]);
        cr_assert_eq(rc, 0, "record %zu %s: rc %d (%s)", i, recs[i], rc,
                     sl_harness_last_error(h));
        if (keep[i]) {
            cr_assert_eq(sl_harness_count(h), want + 1,
                         "record %zu %s should pass", i, recs[i]);
            cr_assert_str_eq(sl_harness_output(h, want), recs[i]);
            want++;
        } else {
            cr_assert_eq(sl_harness_count(h), want,
                         "record %zu %s should be dropped", i, recs[i]);
        }
    }
    cr_assert_eq(sl_harness_errors(h), 0);
}

Test(dedupe, count_window_evicts_least_recent_key)
{
    sl_harness_t *h = sl_test_harness("dedupe", "key: k\nwindow: {count: 2}\n",
                                      NULL);
    /* After n=3 touches a, b is the least recent and goes when c comes;
     * then each new key pushes out the other old one. */
    const char *recs[] = {
        "{\"k\":\"a\",\"n\":1}", "{\"k\":\"b\",\"n\":2}",
        "{\"k\":\"a\",\"n\":3}", "{\"k\":\"c\",\"n\":4}",
        "{\"k\":\"b\",\"n\":5}", "{\"k\":\"a\",\"n\":6}",
        "{\"k\":\"a\",\"n\":7}", "{\"k\":\"b\",\"n\":8}",
        "{\"k\":\"c\",\"n\":9}",
    };
    const int keep[] = {1, 1, 0, 1, 1, 1, 0, 0, 1};
    expect_kept(h, recs, keep, 9);
    sl_harness_destroy(&h);
}

Test(dedupe, event_time_window_expires_keys)
{
    sl_harness_t *h = sl_test_harness(
        "dedupe", "key: k\nwindow: {time: 10s, field: ts, unit: s}\n", NULL);
    const char *recs[] = {
        "{\"k\":\"a\",\"ts\":0}",  "{\"k\":\"a\",\"ts\":5}",
        "{\"k\":\"b\",\"ts\":6}",  "{\"k\":\"a\",\"ts\":10}",
        "{\"k\":\"a\",\"ts\":15}", "{\"k\":\"b\",\"ts\":15}",
        "{\"k\":\"b\",\"ts\":16}", "{\"k\":\"a\",\"ts\":19}",
        /* late: the newest time seen (19) counts, not the record's own */
        "{\"k\":\"c\",\"ts\":3}",  "{\"k\":\"c\",\"ts\":12}",
        "{\"k\":\"a\",\"ts\":20.5}",
    };
    const int keep[] = {1, 0, 1, 1, 0, 0, 1, 0, 1, 0, 1};
    expect_kept(h, recs, keep, 11);
    sl_harness_destroy(&h);
}

Test(dedupe, event_time_units)
{
    /* auto: below 1e11 seconds, below 1e14 ms, below 1e17 us, else ns */
    sl_harness_t *h = sl_test_harness(
        "dedupe", "key: k\nwindow: {time: 1m, field: t}\n", NULL);
    const char *recs[] = {
        "{\"k\":1,\"t\":1700000000}",          /* s */
        "{\"k\":1,\"t\":1700000059000}",       /* ms, 59 s later */
        "{\"k\":1,\"t\":1700000060000000}",    /* us, 60 s later */
        "{\"k\":1,\"t\":1700000119999999999}", /* ns, just under 60 s */
        "{\"k\":1,\"t\":1700000120000000000}",
    };
    const int keep[] = {1, 0, 1, 0, 1};
    expect_kept(h, recs, keep, 5);
    sl_harness_destroy(&h);

    h = sl_test_harness("dedupe",
                        "key: k\nwindow: {time: 100ms, field: t, unit: ms}\n",
                        NULL);
    const char *ms[] = {"{\"k\":1,\"t\":1000}", "{\"k\":1,\"t\":1099.5}",
                        "{\"k\":1,\"t\":1100}"};
    const int keep_ms[] = {1, 0, 1};
    expect_kept(h, ms, keep_ms, 3);
    sl_harness_destroy(&h);
}

Test(dedupe, processing_time_window)
{
    sl_harness_t *h = sl_test_harness("dedupe", "key: k\nwindow: {time: 1h}\n",
                                      NULL);
    const char *recs[] = {"{\"k\":1}", "{\"k\":1}", "{\"k\":2}", "{\"k\":1}"};
    const int keep[] = {1, 0, 1, 0};
    expect_kept(h, recs, keep, 4);
    sl_harness_destroy(&h);

    h = sl_test_harness("dedupe", "key: k\nwindow: {time: 2ms}\n", NULL);
    cr_assert_eq(sl_harness_push_json(h, "{\"k\":1}"), 0);
    /* Waiting for time itself to pass: nothing else to synchronise with. */
    double until = sl_test_now() + 0.005;
    while (sl_test_now() < until)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    cr_assert_eq(sl_harness_push_json(h, "{\"k\":1}"), 0);
    cr_assert_eq(sl_harness_count(h), 2, "the key should have expired");
    sl_harness_destroy(&h);
}

Test(dedupe, key_tuple_and_nested_paths)
{
    sl_harness_t *h = sl_test_harness(
        "dedupe", "key: [user.id, action]\nwindow: {count: 100}\n", NULL);
    const char *recs[] = {
        "{\"user\":{\"id\":1},\"action\":\"x\"}",
        "{\"user\":{\"id\":1},\"action\":\"y\"}",
        "{\"user\":{\"id\":1,\"name\":\"z\"},\"action\":\"x\"}",
        "{\"user\":{\"id\":2},\"action\":\"x\"}",
        "{\"action\":\"y\",\"user\":{\"id\":1}}",
        /* ("1x", "") and ("1", "x") must not collide */
        "{\"user\":{\"id\":\"1x\"},\"action\":\"\"}",
        "{\"user\":{\"id\":\"1\"},\"action\":\"x\"}",
    };
    const int keep[] = {1, 1, 0, 1, 0, 1, 1};
    expect_kept(h, recs, keep, 7);
    sl_harness_destroy(&h);
}

Test(dedupe, key_types_are_distinct)
{
    sl_harness_t *h = sl_test_harness("dedupe", "key: k\n", NULL);
    const char *recs[] = {
        "{\"k\":5}",     "{\"k\":\"5\"}", "{\"k\":5.0}",  "{\"k\":5}",
        "{\"k\":5.0}",   "{\"k\":null}",  "{\"k\":null}", "{\"k\":true}",
        "{\"k\":[5]}",   "{\"k\":[5]}",   "{\"k\":{\"a\":5}}", "{\"k\":-5}",
        "{\"k\":18446744073709551615}", "{\"k\":18446744073709551615}",
    };
    const int keep[] = {1, 1, 1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 1, 0};
    expect_kept(h, recs, keep, 14);
    sl_harness_destroy(&h);
}

/* 5 packed as int64 and as uint64 is the same key: msgpack-c packs
 * integers by value. */
Test(dedupe, integer_encodings_are_one_key)
{
    sl_harness_t *h = sl_test_harness("dedupe", "key: k\n", NULL);
    /* {"k": 5} with 5 as uint64 (0xcf) and as int8 (0xd0) */
    const unsigned char u64[] = {0x81, 0xa1, 'k', 0xcf, 0, 0, 0, 0,
                                 0,    0,    0,   5};
    const unsigned char i8[] = {0x81, 0xa1, 'k', 0xd0, 5};
    cr_assert_eq(sl_harness_push_msgpack(h, u64, sizeof(u64)), 0);
    cr_assert_eq(sl_harness_push_msgpack(h, i8, sizeof(i8)), 0);
    cr_assert_eq(sl_harness_push_json(h, "{\"k\":5}"), 0);
    cr_assert_eq(sl_harness_count(h), 1);
    size_t len;
    const void *out = sl_harness_output_msgpack(h, 0, &len);
    cr_assert_eq(len, sizeof(u64));
    cr_assert_eq(memcmp(out, u64, len), 0, "kept bytes must be unchanged");
    sl_harness_destroy(&h);
}

Test(dedupe, on_missing_fail_names_the_field)
{
    sl_harness_t *h = sl_test_harness("dedupe", "key: [a, user.id]\n", NULL);
    sl_test_push_fails(h, "{\"a\":1}", "key field 'user.id' is missing");
    sl_test_push_fails(h, "{\"user\":{\"id\":1}}", "key field 'a' is missing");
    sl_test_push_ok(h, "{\"a\":1,\"user\":{\"id\":1}}",
                    "{\"a\":1,\"user\":{\"id\":1}}");
    sl_harness_destroy(&h);

    h = sl_test_harness("dedupe", "key: k\nwindow: {time: 1m, field: ts}\n",
                        NULL);
    sl_test_push_fails(h, "{\"k\":1}", "timestamp field 'ts' is missing");
    sl_test_push_fails(h, "{\"k\":1,\"ts\":\"noon\"}",
                       "timestamp field 'ts' must be a non-negative number");
    sl_test_push_fails(h, "{\"k\":1,\"ts\":-3}",
                       "timestamp field 'ts' must be a non-negative number");
    sl_harness_destroy(&h);
}

Test(dedupe, on_missing_pass_and_drop)
{
    sl_harness_t *h = sl_test_harness("dedupe", "key: k\non_missing: pass\n",
                                      NULL);
    const char *recs[] = {"{\"x\":1}", "{\"x\":1}", "{\"k\":1}", "{\"k\":1}"};
    const int pass[] = {1, 1, 1, 0};
    expect_kept(h, recs, pass, 4);
    sl_harness_destroy(&h);

    h = sl_test_harness("dedupe", "key: k\non_missing: drop\n", NULL);
    const int drop[] = {0, 0, 1, 0};
    expect_kept(h, recs, drop, 4);
    sl_harness_destroy(&h);
}

Test(dedupe, max_keys_evicts_least_recent)
{
    sl_harness_t *h = sl_test_harness("dedupe", "key: k\nmax_keys: 2\n", NULL);
    const char *recs[] = {"{\"k\":1}", "{\"k\":2}", "{\"k\":1}", "{\"k\":3}",
                          "{\"k\":1}", "{\"k\":2}", "{\"k\":3}"};
    /* 3 evicts 2 (1 was touched), 2 then evicts 3, 3 evicts 1 */
    const int keep[] = {1, 1, 0, 1, 0, 1, 1};
    expect_kept(h, recs, keep, 7);
    sl_harness_destroy(&h);

    /* In a time window the oldest kept key goes first. */
    h = sl_test_harness("dedupe",
                        "key: k\nmax_keys: 2\nwindow: {time: 1h, field: t}\n",
                        NULL);
    const char *t[] = {"{\"k\":1,\"t\":1}", "{\"k\":2,\"t\":2}",
                       "{\"k\":1,\"t\":3}", "{\"k\":3,\"t\":4}",
                       "{\"k\":2,\"t\":5}", "{\"k\":1,\"t\":6}"};
    const int keep_t[] = {1, 1, 0, 1, 0, 1};
    expect_kept(h, t, keep_t, 6);
    sl_harness_destroy(&h);
}

#define REFUSED(yaml, want) sl_test_refused("dedupe", yaml, NULL, want)

Test(dedupe, config_errors)
{
    REFUSED("window: {count: 3}\n",
            "missing required key 'key'");
    REFUSED("key: 5\n",
            "'key' must be a field path or a list of field paths");
    REFUSED("key: {a: 1}\n",
            "'key' must be a field path or a list of field paths");
    REFUSED("key: []\n", "'key' must name at least one");
    REFUSED("key: [a, [b]]\n",
            "'key' entries must be non-empty field paths");
    REFUSED("key: k\non_missing: skip\n",
            "'on_missing' must be pass, drop or fail");
    REFUSED("key: k\nwindow: 10\n", "'window' must be a map");
    REFUSED("key: k\nwindow: {}\n",
            "'window' needs 'count' or 'time'");
    REFUSED("key: k\nwindow: {count: 2, time: 1s}\n",
            "'window' takes 'count' or 'time', not both");
    REFUSED("key: k\nwindow: {count: 0}\n",
            "'window.count' must be an integer of at least 1");
    REFUSED("key: k\nwindow: {count: 2, size: 1}\n",
            "unknown key 'size' in 'window'");
    REFUSED("key: k\nwindow: {count: 2, field: ts}\n",
            "'window.field' needs 'window.time'");
    REFUSED("key: k\nwindow: {time: 10 minutes}\n",
            "'window.time' must be a positive duration");
    REFUSED("key: k\nwindow: {time: 0s}\n",
            "'window.time' must be a positive duration");
    REFUSED("key: k\nwindow: {time: 1s, unit: ms}\n",
            "'window.unit' needs 'window.field'");
    REFUSED("key: k\nwindow: {time: 1s, field: t, unit: minutes}\n",
            "'window.unit' must be auto, s, ms, us or ns");
    REFUSED("key: k\nmax_keys: 0\n",
            "'max_keys' must be an integer from 1 to 2147483647");
    REFUSED("key: k\nmax_keys: 10\nwindow: {count: 11}\n",
            "'window.count' (11) is more than 'max_keys' (10)");
    REFUSED("key: k\nspan: 3\n", "span");
}

/* The reference: the window's keys, most recently seen first. */
typedef struct model {
    long keys[64];
    size_t n;
} model_t;

static int model_push(model_t *m, long k, size_t cap)
{
    size_t i = 0;
    while (i < m->n && m->keys[i] != k)
        i++;
    int fresh = i == m->n;
    if (fresh && m->n == cap)
        i = --m->n;
    if (fresh)
        m->n++;
    memmove(&m->keys[1], &m->keys[0], i * sizeof(m->keys[0]));
    m->keys[0] = k;
    return fresh;
}

Test(dedupe, random_records_match_reference_model, .timeout = 120)
{
    enum { N = 100000, WINDOW = 50, KEYS = 160 };
    sl_harness_t *h = sl_test_harness("dedupe", "key: [k]\nwindow: {count: 50}\n",
                                      NULL);
    model_t m = {.n = 0};
    uint64_t rs = 0x5eed;
    size_t kept = 0;
    for (long i = 0; i < N; i++) {
        long k = (long)(sl_test_rand(&rs) % KEYS);
        char rec[96];
        /* Half the keys are strings, so both encodings are in play. */
        if (k % 2)
            snprintf(rec, sizeof(rec), "{\"k\":%ld,\"i\":%ld}", k, i);
        else
            snprintf(rec, sizeof(rec), "{\"k\":\"key-%ld\",\"i\":%ld}", k, i);
        int fresh = model_push(&m, k, WINDOW);
        cr_assert_eq(sl_harness_push_json(h, rec), 0, "%s: %s", rec,
                     sl_harness_last_error(h));
        kept += (size_t)fresh;
        cr_assert_eq(sl_harness_count(h), kept, "record %ld (%s): want %s",
                     i, rec, fresh ? "kept" : "dropped");
        if (fresh)
            cr_assert_str_eq(sl_harness_output(h, kept - 1), rec);
    }
    cr_log_info("dedupe random: %zu of %d kept", kept, N);
    /* About 1 - 50/160 of the keys are outside the window. */
    cr_assert_gt(kept, N / 2);
    cr_assert_lt(kept, N * 9 / 10);
    sl_harness_destroy(&h);
}
