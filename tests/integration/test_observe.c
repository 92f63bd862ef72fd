/*
 * What a run tells about itself: slow-handler warnings, backpressure
 * seconds and handler percentiles in the report.
 */
#include "testutil.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(observe, .init = sl_test_tmpdir_setup,
          .fini = sl_test_tmpdir_teardown, .timeout = 60);

/* gen -> slow (delay ms, slow_ms) -> out; returns the log, the report is
 * left in report.json. */
static char *s_run(const char *delay_ms, unsigned slow_ms, unsigned count)
{
    char topo[512], text[1024], cmd[2048];
    snprintf(topo, sizeof(topo), "%s/t.yaml", sl_test_dir());
    snprintf(text, sizeof(text),
             "name: observe\n"
             "stages:\n"
             "  - name: gen\n"
             "    plugin: generator\n"
             "    queue: 16\n"
             "    batch: 4\n"
             "    config: {count: %u}\n"
             "  - name: slow\n"
             "    plugin: delay\n"
             "    slow_ms: %u\n"
             "    queue: 8\n"
             "    config: {ms: %s, jitter_ms: 0}\n"
             "  - name: out\n"
             "    plugin: \"null\"\n",
             count, slow_ms, delay_ms);
    cr_assert_eq(sl_test_write_file(topo, text), 0);
    snprintf(cmd, sizeof(cmd), "'%s' run '%s' --report '%s/report.json' 2>&1",
             sl_test_cli(), topo, sl_test_dir());
    char *out = NULL;
    int rc = sl_test_run(cmd, &out);
    cr_assert_eq(rc, 0, "exit %d:\n%s", rc, out);
    return out;
}

static json_t *s_stage(json_t *report, const char *name)
{
    size_t i;
    json_t *st;
    json_array_foreach(json_object_get(report, "stages"), i, st)
        if (strcmp(json_string_value(json_object_get(st, "name")), name) == 0)
            return st;
    cr_assert_fail("no stage %s in the report", name);
    return NULL;
}

static json_t *s_report(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/report.json", sl_test_dir());
    json_error_t err;
    json_t *r = json_load_file(path, 0, &err);
    cr_assert_not_null(r, "%s", err.text);
    return r;
}

Test(observe, slow_handler_is_logged_over_slow_ms)
{
    /* 30 ms calls against slow_ms 10: every call is slow (the coarse
     * clock's few ms of resolution cannot hide 20 ms) */
    char *log = s_run("30", 10, 12);
    const char *hit = strstr(log, "level=warn stage=slow worker=0 "
                                  "msg=\"slow handler: record ");
    cr_assert_not_null(hit, "%s", log);
    cr_assert_not_null(strstr(hit, "(slow_ms 10)"), "%s", log);
    /* rate limit: the first 10 in full, then a note */
    size_t n = 0;
    for (const char *p = log; (p = strstr(p, "slow handler: record")); p++)
        n++;
    cr_assert_eq(n, 10, "%zu warnings:\n%s", n, log);
    cr_assert_not_null(strstr(log, "further slow calls are counted"), "%s",
                       log);
    json_t *r = s_report();
    cr_assert_eq(json_integer_value(json_object_get(s_stage(r, "slow"),
                                                    "slow_calls")), 12);
    cr_assert_eq(json_integer_value(json_object_get(s_stage(r, "out"),
                                                    "slow_calls")), 0);
    json_decref(r);
    free(log);
}

Test(observe, no_warning_under_slow_ms)
{
    char *log = s_run("2", 100, 40);
    cr_assert_null(strstr(log, "slow handler"), "%s", log);
    json_t *r = s_report();
    cr_assert_eq(json_integer_value(json_object_get(s_stage(r, "slow"),
                                                    "slow_calls")), 0);
    json_decref(r);
    free(log);
}

Test(observe, report_has_backpressure_and_handler_percentiles)
{
    /* 200 records of 2 ms behind a queue of 8: the generator spends most
     * of the ~0.4 s waiting for credit */
    char *log = s_run("2", 0, 200);
    json_t *r = s_report();
    json_t *gen = s_stage(r, "gen"), *slow = s_stage(r, "slow");
    double bp = json_real_value(json_object_get(gen, "backpressure_s"));
    double elapsed = json_real_value(json_object_get(r, "elapsed_s"));
    cr_assert_gt(bp, 0.5 * elapsed, "gen waited %.3f s of %.3f s:\n%s", bp,
                 elapsed, log);
    cr_assert_leq(bp, elapsed + 0.01);
    /* nothing stands in the way of slow's output */
    cr_assert_lt(json_real_value(json_object_get(slow, "backpressure_s")),
                 0.1 * elapsed);
    json_t *h = json_object_get(slow, "handler_ns");
    cr_assert_not_null(h);
    /* sampled: 1 call in 16 */
    cr_assert_eq(json_integer_value(json_object_get(h, "sampled")), 200 / 16);
    json_int_t p50 = json_integer_value(json_object_get(h, "p50"));
    json_int_t p99 = json_integer_value(json_object_get(h, "p99"));
    cr_assert_geq(p50, 2000000, "p50 %lld ns", (long long)p50);
    cr_assert_lt(p50, 50000000, "p50 %lld ns", (long long)p50);
    cr_assert_geq(p99, p50);
    json_decref(r);
    free(log);
}
