/* generator: counts, sequence, budget, shape, size, keys, pacing. */
#include <criterion/criterion.h>

#include "harness.h"
#include "testutil.h"

#include <errno.h>
#include <jansson.h>
#include <sluice/stage.h>
#include <stdio.h>
#include <string.h>

static json_t *s_out(const sl_harness_t *h, size_t i)
{
    json_error_t e;
    const char *text = sl_harness_output(h, i);
    cr_assert_not_null(text, "no output %zu", i);
    json_t *j = json_loads(text, 0, &e);
    cr_assert_not_null(j, "output %zu is not JSON: %s", i, text);
    return j;
}

static json_int_t s_int(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    cr_assert(json_is_integer(v), "'%s' is not an integer", key);
    return json_integer_value(v);
}

Test(generator, count_exact_and_seq_contiguous)
{
    sl_harness_t *h = sl_test_harness("generator", "count: 1000", NULL);
    cr_assert_eq(sl_harness_pull_all(h, 64, 1000), 0);
    cr_assert_eq(sl_harness_count(h), 1000);
    cr_assert_eq(sl_harness_read(h), 1000);
    cr_assert_eq(sl_harness_errors(h), 0);
    for (size_t i = 0; i < 1000; i++) {
        json_t *j = s_out(h, i);
        cr_assert_eq(s_int(j, "seq"), (json_int_t)i);
        json_decref(j);
    }
    sl_harness_destroy(&h);
}

Test(generator, default_record_is_exact)
{
    uint64_t before = sl_now_ns();
    sl_harness_t *h = sl_test_harness("generator", "count: 1\nstart: 1234",
                                      NULL);
    const char *tail = ",\"user\":\"user-234\",\"amount\":720.46,"
                       "\"country\":\"FR\","
                       "\"msg\":\"the quick brown fox jumps over\"}";
    char want[256];
    size_t len;

    cr_assert_eq(sl_harness_pull_all(h, 100, 10), 0);
    uint64_t after = sl_now_ns();
    cr_assert_eq(sl_harness_count(h), 1);
    json_t *j = s_out(h, 0);
    json_int_t ts = s_int(j, "ts");
    cr_assert(ts >= (json_int_t)before && ts <= (json_int_t)after,
              "ts %lld outside [%llu, %llu]", (long long)ts,
              (unsigned long long)before, (unsigned long long)after);
    snprintf(want, sizeof(want), "{\"seq\":1234,\"ts\":%lld%s",
             (long long)ts, tail);
    cr_assert_str_eq(sl_harness_output(h, 0), want);
    json_decref(j);
    sl_harness_output_msgpack(h, 0, &len);
    cr_assert(len >= 90 && len <= 110, "default record is %zu bytes", len);
    sl_harness_destroy(&h);
}

Test(generator, budget_is_honoured_per_call)
{
    sl_harness_t *h = sl_test_harness("generator", "count: 50", NULL);
    size_t calls = 0;
    int rc;

    /* One pull per harness call: each must use its whole budget of 7 (and
     * can use no more) until the count runs out. */
    while ((rc = sl_harness_pull_all(h, 7, 1)) == -ETIMEDOUT) {
        calls++;
        size_t want = calls * 7 < 50 ? calls * 7 : 50;
        cr_assert_eq(sl_harness_count(h), want, "after call %zu", calls);
        cr_assert_lt(calls, 20);
    }
    cr_assert_eq(rc, 0);
    cr_assert_eq(calls, 8, "7 full calls, 1 with the last record");
    cr_assert_eq(sl_harness_count(h), 50);
    sl_harness_destroy(&h);

    h = sl_test_harness("generator", "count: 100", NULL);
    cr_assert_eq(sl_harness_pull_all(h, 1, 1000), 0);
    cr_assert_eq(sl_harness_count(h), 100);
    sl_harness_destroy(&h);
}

Test(generator, count_zero_is_eof)
{
    sl_harness_t *h = sl_test_harness("generator", "count: 0", NULL);
    cr_assert_eq(sl_harness_pull_all(h, 10, 1), 0);
    cr_assert_eq(sl_harness_count(h), 0);
    sl_harness_destroy(&h);
}

Test(generator, keys_are_evenly_spread)
{
    sl_harness_t *h = sl_test_harness("generator", "count: 100\nkeys: 4",
                                      NULL);
    int seen[4] = {0};

    cr_assert_eq(sl_harness_pull_all(h, 64, 100), 0);
    cr_assert_eq(sl_harness_count(h), 100);
    for (size_t i = 0; i < 100; i++) {
        json_t *j = s_out(h, i);
        const char *k = json_string_value(json_object_get(j, "key"));
        char want[8];
        snprintf(want, sizeof(want), "k%zu", i % 4);
        cr_assert_str_eq(k, want);
        seen[k[1] - '0']++;
        json_decref(j);
    }
    for (int k = 0; k < 4; k++)
        cr_assert_eq(seen[k], 25, "k%d seen %d times", k, seen[k]);
    sl_harness_destroy(&h);
}

Test(generator, extra_fields)
{
    sl_harness_t *h = sl_test_harness("generator",
                                      "count: 2\nstart: 10\nfields: 3",
                                      NULL);
    cr_assert_eq(sl_harness_pull_all(h, 64, 10), 0);
    json_t *j = s_out(h, 1);
    cr_assert_eq(s_int(j, "seq"), 11);
    cr_assert_eq(s_int(j, "f1"), 12);
    cr_assert_eq(s_int(j, "f2"), 13);
    cr_assert_eq(s_int(j, "f3"), 14);
    cr_assert_null(json_object_get(j, "f4"));
    cr_assert_eq(json_object_size(j), 9);
    json_decref(j);
    sl_harness_destroy(&h);
}

static void s_check_size(const char *yaml, size_t lo, size_t hi)
{
    sl_harness_t *h = sl_test_harness("generator", yaml, NULL);
    cr_assert_eq(sl_harness_pull_all(h, 256, 100), 0);
    cr_assert_eq(sl_harness_count(h), 200);
    for (size_t i = 0; i < 200; i++) {
        size_t len;
        sl_harness_output_msgpack(h, i, &len);
        cr_assert(len >= lo && len <= hi, "%s: record %zu is %zu bytes",
                  yaml, i, len);
    }
    sl_harness_destroy(&h);
}

Test(generator, size_pads_to_about_that_many_bytes)
{
    s_check_size("count: 200\nsize: 1000", 990, 1010);
    s_check_size("count: 200\nsize: 300", 290, 310);
    s_check_size("count: 200\nsize: 70000\nkeys: 3\nfields: 2", 69990,
                 70010);
    /* Smaller than the bare record: no padding at all. */
    sl_harness_t *h = sl_test_harness("generator", "count: 1\nsize: 10", NULL);
    cr_assert_eq(sl_harness_pull_all(h, 8, 10), 0);
    cr_assert_null(strstr(sl_harness_output(h, 0), "\"pad\""));
    sl_harness_destroy(&h);
}

Test(generator, template_is_exact)
{
    sl_harness_t *h = sl_test_harness("generator",
                                      "count: 2\nstart: 5\nkeys: 2\n"
                                      "template:\n"
                                      "  id: $seq\n"
                                      "  kind: click\n"
                                      "  n: 1.5\n"
                                      "  tags: [a, 1, true, null]\n"
                                      "  nested: {x: {y: -2}}\n",
                                      NULL);
    cr_assert_eq(sl_harness_pull_all(h, 8, 10), 0);
    cr_assert_eq(sl_harness_count(h), 2);
    cr_assert_str_eq(sl_harness_output(h, 0),
                     "{\"id\":5,\"kind\":\"click\",\"n\":1.5,"
                     "\"tags\":[\"a\",1,true,null],"
                     "\"nested\":{\"x\":{\"y\":-2}},\"key\":\"k1\"}");
    cr_assert_str_eq(sl_harness_output(h, 1),
                     "{\"id\":6,\"kind\":\"click\",\"n\":1.5,"
                     "\"tags\":[\"a\",1,true,null],"
                     "\"nested\":{\"x\":{\"y\":-2}},\"key\":\"k0\"}");
    sl_harness_destroy(&h);

    h = sl_test_harness("generator", "count: 1\ntemplate: {t: $ts}", NULL);
    cr_assert_eq(sl_harness_pull_all(h, 8, 10), 0);
    json_t *j = s_out(h, 0);
    cr_assert_gt(s_int(j, "t"), 1500000000LL * 1000000000LL);
    json_decref(j);
    sl_harness_destroy(&h);
}

Test(generator, rate_paces_the_run)
{
    sl_harness_t *h = sl_test_harness("generator", "count: 2000\nrate: 20000",
                                      NULL);
    uint64_t t0 = sl_mono_ns();
    cr_assert_eq(sl_harness_pull_all(h, 64, 100000), 0);
    uint64_t ns = sl_mono_ns() - t0;
    cr_assert_eq(sl_harness_count(h), 2000);
    /* The last record is due 1999/20000 s after the first: a lower bound
     * only, a loaded machine may take longer. */
    cr_assert_geq(ns, 90000000u, "took %.3f s", ns / 1e9);
    sl_harness_destroy(&h);
}

Test(generator, config_errors)
{
    sl_test_refused("generator", "", NULL, "'count' is required");
    sl_test_refused("generator", "count: -1", NULL,
                    "'count' must be between 0 and");
    sl_test_refused("generator", "count: lots", NULL, "'count'");
    sl_test_refused("generator",
                    "count: 5\n"
                    "template: {a: [1, {b: 99999999999999999999999}]}",
                    NULL, "integer '99999999999999999999999' does not fit in "
                    "64 bits");
    sl_test_refused("generator", "count: 5\nrate: -3", NULL,
                    "'rate' must be between 0");
    sl_test_refused("generator", "count: 5\nrate: fast", NULL,
                    "'rate' must be a number");
    sl_test_refused("generator", "count: 5\nfields: 5000", NULL,
                    "'fields' must be between 0 and 1000");
    sl_test_refused("generator", "count: 5\ntemplate: [a]", NULL,
                    "'template' must be a map");
    sl_test_refused("generator", "count: 5\nkeys: 2\ntemplate: {key: 1}", NULL,
                    "template field 'key' clashes");
    sl_test_refused("generator", "count: 5\nfields: 2\ntemplate: {f2: 1}",
                    NULL, "template field 'f2' clashes");
    sl_test_refused("generator", "count: 5\nburst: 2", NULL,
                    "unknown key 'burst'");
}
