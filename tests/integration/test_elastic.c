/* Elastic pools follow the load: a burst on top of a steady trickle makes
 * the pool grow toward its maximum, and once only the trickle is left the
 * pool shrinks back, on thread and process lanes alike. Nothing is lost
 * on the way: the ledger balances and the sink gets every record. */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "run.h"
#include "testutil.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* steady: 250 records/s for up to 10 s (long enough for the pool to
 * shrink back step by step after the burst, also on a loaded machine);
 * burst: 3,000 records as fast as 2,500/s; slow: 2 ms per record, so one
 * worker handles 500/s: the burst needs all four, the trickle half of one.
 * The run is stopped once the pool has grown and shrunk back after the
 * burst, so the trickle lasts only as long as the shrinking takes. */
static const char *s_topology =
    "stages:\n"
    "  - name: steady\n"
    "    plugin: generator\n"
    "    config: {count: 2500, rate: 250}\n"
    "  - name: burst\n"
    "    plugin: generator\n"
    "    config: {count: 3000, rate: 2500}\n"
    "  - name: slow\n"
    "    plugin: delay\n"
    "    from: [steady, burst]\n"
    "    workers: {min: 1, max: 4, idle: 300ms}\n"
    "    lane: %s\n"
    "    config: {ms: 2}\n"
    "  - name: sink\n"
    "    plugin: \"null\"\n";

#define BURST_N 3000u

static void s_follow_the_load(const char *lane)
{
    char yaml[1024];
    snprintf(yaml, sizeof(yaml), s_topology, lane);
    sl_topology_t *topo = sl_test_topology("elastic.yaml", NULL, yaml);
    sl_run_t *run = sl_test_run_start(topo);
    size_t steady = sl_test_stage_index(topo, "steady");
    size_t burst = sl_test_stage_index(topo, "burst");
    size_t slow = sl_test_stage_index(topo, "slow");
    size_t sink_i = sl_test_stage_index(topo, "sink");

    /* Sample the pool size until it has shrunk to two workers or fewer
     * after the whole burst went through it, or until the run ends
     * (bounded: 30 s). */
    unsigned peak = 0, last = 0;
    sl_stage_stats_t st;
    int stopped = 0;
    for (int i = 0; i < 3000; i++) {
        sl__run_stats(run, slow, &st);
        if (st.workers > peak)
            peak = st.workers;
        last = st.workers;
        sl_stage_stats_t sink, b;
        sl__run_stats(run, sink_i, &sink);
        if (sink.finished)
            break;
        sl__run_stats(run, burst, &b);
        if (b.finished && st.in >= BURST_N && peak >= 3 && last <= 2 &&
            st.shrinks >= 1) {
            sl__run_stop(run);
            stopped = 1;
            break;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    cr_assert_eq(sl__run_wait(run), 0);
    sl__run_stats(run, slow, &st);
    cr_log_info("%s lane: peak %u workers, %u at the end, grew %llu, shrank "
                "%llu; %s", lane, peak, last, (unsigned long long)st.grows,
                (unsigned long long)st.shrinks,
                stopped ? "stopped once shrunk" : "ran to its end");
    cr_expect_geq(peak, 3, "the burst should have grown the pool (peak %u)", peak);
    cr_expect_leq(last, 2, "the trickle should have shrunk it (%u left)", last);
    cr_expect_geq(st.grows, 2);
    cr_expect_geq(st.shrinks, 1);
    /* Nothing lost on the way: the whole burst and all the trickle read
     * before the stop went through the pool into the sink. */
    sl_stage_stats_t s_st, b_st, sink;
    sl__run_stats(run, steady, &s_st);
    sl__run_stats(run, burst, &b_st);
    sl__run_stats(run, sink_i, &sink);
    cr_expect_eq(b_st.out, BURST_N);
    cr_expect_gt(s_st.out, 0);
    cr_expect_eq(st.in, s_st.out + b_st.out);
    cr_expect_eq(sink.in, st.in);
    sl_test_expect_ledger(run);
    sl__run_destroy(&run);
    sl__topology_destroy(&topo);
}

Test(elastic, thread_pool_follows_the_load, .timeout = 60)
{
    s_follow_the_load("thread");
}

Test(elastic, process_pool_follows_the_load, .timeout = 60)
{
    s_follow_the_load("process");
}

Test(elastic, partition_by_needs_a_fixed_pool)
{
    const char *yaml = "stages:\n"
                       "  - name: g\n"
                       "    plugin: generator\n"
                       "    config: {count: 10}\n"
                       "  - name: t\n"
                       "    plugin: delay\n"
                       "    workers: {min: 1, max: 3}\n"
                       "    partition_by: user\n"
                       "    config: {ms: 0}\n"
                       "  - name: s\n"
                       "    plugin: \"null\"\n";
    /* refused when the file is loaded (so by `sluice check` too) */
    sl_diag_t diag;
    sl__diag_init(&diag);
    sl_topology_t *topo = sl__topology_parse("p.yaml", NULL, yaml, &diag);
    cr_assert_null(topo);
    sl_test_expect_line(&diag, "p.yaml:8:19: stage 't': an elastic pool "
                        "cannot keep partition_by (keys would move between "
                        "workers); give 'workers' a fixed number");
    sl__diag_fini(&diag);
}
