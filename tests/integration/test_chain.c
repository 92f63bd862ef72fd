/* End to end through the in-process run API: a straight chain keeps every
 * record exactly once (count, sum and xor of ids at the sink), a filter
 * drops an exact, known subset, and every stage's counters balance. */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "run.h"
#include "testutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECKSUM_SO SL_TEST_BINARY_DIR "/tests/plugins/checksum_sink.so"

/* (a) stays at a million records in the normal build, as the benchmark
 * numbers are quoted for; the sanitizers only need to see the paths. */
#if defined(__SANITIZE_ADDRESS__)
#define CHAIN_N 300001u /* odd, so that the xor of the ids is not 0 */
#else
#define CHAIN_N 1000000u
#endif
#define FILTER_N 80000u

Test(chain, million_records_exactly_once, .timeout = 240)
{
    char *dir = sl_test_tmpdir();
    cr_assert_not_null(dir);
    char out[512];
    snprintf(out, sizeof(out), "%s/sums.txt", dir);
    char *yaml = NULL;
    cr_assert_gt(asprintf(&yaml,
                          "name: chain\n"
                          "stages:\n"
                          "  - name: gen\n"
                          "    plugin: generator\n"
                          "    config: {count: %u}\n"
                          "  - name: tag\n"
                          "    plugin: fields\n"
                          "    workers: 2\n"
                          "    config: {set: {stamp: chained}}\n"
                          "  - name: sink\n"
                          "    plugin: %s\n"
                          "    config: {path: %s}\n",
                          CHAIN_N, CHECKSUM_SO, out),
                 0);
    sl_topology_t *t = sl_test_topology("chain.yaml", dir, yaml);
    sl_run_t *run = sl_test_run_to_end(t);

    sl_stage_stats_t gen, tag, sink;
    sl_test_stage_stats(run, t, "gen", &gen);
    sl_test_stage_stats(run, t, "tag", &tag);
    sl_test_stage_stats(run, t, "sink", &sink);
    cr_expect_eq(gen.read, CHAIN_N);
    cr_expect_eq(gen.out, CHAIN_N);
    cr_expect_eq(gen.ok, CHAIN_N);
    cr_expect_eq(gen.errors, 0);
    cr_expect_eq(gen.sent, CHAIN_N);
    cr_expect_eq(tag.workers, 2);
    cr_expect_eq(tag.in, CHAIN_N);
    cr_expect_eq(tag.ok, CHAIN_N);
    cr_expect_eq(tag.out, CHAIN_N);
    cr_expect_eq(tag.filtered, 0);
    cr_expect_eq(tag.errors, 0);
    cr_expect_eq(tag.sent, CHAIN_N);
    cr_expect_eq(sink.in, CHAIN_N);
    cr_expect_eq(sink.ok, CHAIN_N);
    cr_expect_eq(sink.errors, 0);
    cr_expect_eq(sink.out, 0);
    cr_expect_eq(sink.lat_count, CHAIN_N);
    cr_expect_leq(gen.held_max, gen.capacity);
    cr_expect_leq(tag.held_max, tag.capacity);
    cr_expect_leq(sink.held_max, sink.capacity);

    /* The sink writes its line when its state is torn down. */
    sl__run_destroy(&run);
    sl_test_sums_t got, want;
    sl_test_read_sums(out, &got);
    sl_test_expected_ids(0, CHAIN_N, NULL, &want);
    sl_test_expect_ids(&got, &want);
    cr_log_info("chain: %" PRIu64 " records, sum %" PRIu64 " xor %" PRIx64,
                got.count, got.sum, got.xor_);

    sl__topology_destroy(&t);
    free(yaml);
    sl_test_rmtree(dir);
}

/* generator: country is ["US","DE","FR","GB","JP","BR","IN","CA"][n % 8]. */
static int us_or_de(uint64_t seq) { return seq % 8 < 2; }

Test(chain, filter_drops_an_exact_share, .timeout = 120)
{
    char *dir = sl_test_tmpdir();
    cr_assert_not_null(dir);
    char out[512];
    snprintf(out, sizeof(out), "%s/sums.txt", dir);
    char *yaml = NULL;
    /* The filter is the second stage so that ids are not the generator's
     * stage 0 by accident: the generator here is at index 1. */
    cr_assert_gt(asprintf(&yaml,
                          "stages:\n"
                          "  - name: sink\n"
                          "    plugin: %s\n"
                          "    from: keep\n"
                          "    config: {path: %s}\n"
                          "  - name: gen\n"
                          "    plugin: generator\n"
                          "    config: {count: %u}\n"
                          "  - name: keep\n"
                          "    plugin: filter\n"
                          "    from: gen\n"
                          "    workers: 2\n"
                          "    config: {expr: 'country in [\"US\", \"DE\"]'}\n",
                          CHECKSUM_SO, out, FILTER_N),
                 0);
    sl_topology_t *t = sl_test_topology("chain.yaml", dir, yaml);
    sl_run_t *run = sl_test_run_to_end(t);

    sl_stage_stats_t gen, keep, sink;
    sl_test_stage_stats(run, t, "gen", &gen);
    sl_test_stage_stats(run, t, "keep", &keep);
    sl_test_stage_stats(run, t, "sink", &sink);
    cr_expect_eq(gen.read, FILTER_N);
    cr_expect_eq(gen.sent, FILTER_N);
    cr_expect_eq(keep.in, FILTER_N);
    cr_expect_eq(keep.ok, FILTER_N / 4);
    cr_expect_eq(keep.out, FILTER_N / 4);
    cr_expect_eq(keep.filtered, FILTER_N / 4 * 3);
    cr_expect_eq(keep.errors, 0);
    cr_expect_eq(keep.sent, FILTER_N / 4);
    cr_expect_eq(sink.in, FILTER_N / 4);
    cr_expect_eq(sink.ok, FILTER_N / 4);

    sl__run_destroy(&run);
    sl_test_sums_t got, want;
    sl_test_read_sums(out, &got);
    sl_test_expected_ids(1, FILTER_N, us_or_de, &want);
    cr_expect_eq(want.count, FILTER_N / 4);
    sl_test_expect_ids(&got, &want);

    sl__topology_destroy(&t);
    free(yaml);
    sl_test_rmtree(dir);
}

/* The end of stream travels down the chain as soon as the last record is
 * handled: a tiny run takes milliseconds, not a poll timeout per stage.
 * (A worker finishing the last batch must wake its dispatcher, which
 * waits for "nothing in flight" before it flushes.) */
Test(chain, end_of_stream_is_prompt, .timeout = 120)
{
    sl_topology_t *t = sl_test_topology("chain.yaml", "/tmp", "stages:\n"
                                        "  - name: gen\n"
                                        "    plugin: generator\n"
                                        "    config: {count: 10}\n"
                                        "  - name: a\n"
                                        "    plugin: fields\n"
                                        "    config: {set: {a: 1}}\n"
                                        "  - name: b\n"
                                        "    plugin: fields\n"
                                        "    workers: 2\n"
                                        "    config: {set: {b: 2}}\n"
                                        "  - name: c\n"
                                        "    plugin: fields\n"
                                        "    config: {set: {c: 3}}\n"
                                        "  - name: d\n"
                                        "    plugin: fields\n"
                                        "    workers: 2\n"
                                        "    config: {set: {d: 4}}\n"
                                        "  - name: sink\n"
                                        "    plugin: \"null\"\n");
    enum { RUNS = 50 };
    unsigned slow = 0;
    double worst = 0;
    for (int i = 0; i < RUNS; i++) {
        sl_run_t *run = sl_test_run_to_end(t);
        sl_stage_stats_t sink;
        sl_test_stage_stats(run, t, "sink", &sink);
        cr_assert_eq(sink.in, 10);
        double s = sl__run_elapsed_s(run);
        if (s > worst)
            worst = s;
        slow += s > 0.15;
        sl__run_destroy(&run);
    }
    cr_log_info("%d tiny runs: %u over 150 ms, worst %.3f s", RUNS, slow,
                worst);
    cr_expect_leq(slow, 2, "%u of %d ten-record runs took over 150 ms "
                  "(worst %.3f s)", slow, RUNS, worst);
    sl__topology_destroy(&t);
}
