/* Workers add throughput: a stage whose handler takes t per record and
 * that is fed faster than it can go handles about N / t records/s with N
 * workers, on thread and process lanes, with the default queue and batch
 * and with a queue no larger than one batch (the whole queue is then one
 * incoming batch, which must be shared out). Every worker takes part, and
 * a paced input between one worker's capacity and four workers' is kept
 * up with. */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "run.h"
#include "runner.h"
#include "testutil.h"

#include <stdio.h>
#include <string.h>

/* delay: 2 ms per record, so one worker handles at most 500 records/s. */
#define MS_PER_RECORD 2
#define RECORDS 1200u
/* Paced: above one worker's capacity (and two workers'), below four's. */
#define PACED_RATE 1200u
#define PACED_RECORDS 2400u

static const char *s_topology =
    "stages:\n"
    "  - name: gen\n"
    "    plugin: generator\n"
    "    config: {count: %u, rate: %u}\n"
    "  - name: slow\n"
    "    plugin: delay\n"
    "    workers: %u\n"
    "    lane: %s\n"
    "%s"
    "    config: {ms: %d}\n"
    "  - name: sink\n"
    "    plugin: \"null\"\n";

typedef struct s_result {
    double elapsed_s;
    double busy_s[4];   /* per worker of the delay stage */
    uint64_t in[4];     /* records each worker handled */
    uint64_t delivered; /* records into the sink */
} s_result_t;

/* Runs generator -> delay (workers, lane, extra keys) -> null to the end
 * and returns the timing and each worker's part. */
static s_result_t s_run(const char *lane, unsigned workers, const char *extra,
                        unsigned count, unsigned rate)
{
    cr_assert_leq(workers, 4);
    char yaml[1024];
    snprintf(yaml, sizeof(yaml), s_topology, count, rate, workers, lane,
             extra, MS_PER_RECORD);
    sl_test_sanitizer_worker_env();
    sl_topology_t *topo = sl_test_topology("scaling.yaml", NULL, yaml);
    sl_run_t *run = sl_test_run_to_end(topo);
    s_result_t res = {.elapsed_s = sl__run_elapsed_s(run)};
    size_t slow = sl_test_stage_index(topo, "slow");
    sl_stage_stats_t st, sink;
    sl_test_stage_stats(run, topo, "slow", &st);
    sl_test_stage_stats(run, topo, "sink", &sink);
    cr_assert_eq(st.in, count, "%s lane, %u workers: delay got %llu of %u",
                 lane, workers, (unsigned long long)st.in, count);
    cr_assert_eq(st.errors, 0);
    res.delivered = sink.in;
    const sl_runner_t *r = &run->runners[slow];
    cr_assert_eq(r->n_workers, workers);
    for (unsigned i = 0; i < workers; i++) {
        const sl_worker_stats_t *ws = &r->workers[i].stats;
        res.busy_s[i] = (double)atomic_load(&ws->busy_ns) / 1e9;
        res.in[i] = atomic_load(&ws->in);
    }
    sl__run_destroy(&run);
    sl__topology_destroy(&topo);
    return res;
}

/* The input through 4 workers must take well under half the time one
 * worker needs (ideal: a quarter), and each worker must have done a real
 * part of the work (before work was shared out, a queue of one batch kept
 * three of four workers idle). One worker's time is measured on a quarter
 * of the input, which pays the same start-up, plus the handler's least
 * time for the rest: at most what the whole input through one worker
 * would take, for a quarter of the wait. */
#define ONE_RECORDS (RECORDS / 4)

static void s_scales(const char *lane, const char *extra, const char *what)
{
    const double serial_s = RECORDS * MS_PER_RECORD / 1000.0;
    s_result_t one = s_run(lane, 1, extra, ONE_RECORDS, 0);
    /* one worker cannot beat its handler */
    cr_assert_geq(one.elapsed_s, ONE_RECORDS * MS_PER_RECORD / 1000.0,
                  "1 worker took %.3f s for %u records", one.elapsed_s,
                  ONE_RECORDS);
    double one_s = one.elapsed_s +
                   (RECORDS - ONE_RECORDS) * MS_PER_RECORD / 1000.0;
    s_result_t four = s_run(lane, 4, extra, RECORDS, 0);
    cr_log_info("%s lane, %s: 1 worker %.3f s (%.3f s for %u), 4 workers "
                "%.3f s (%.2f); per worker records %llu %llu %llu %llu, busy "
                "%.3f %.3f %.3f %.3f s", lane, what, one_s, one.elapsed_s,
                ONE_RECORDS, four.elapsed_s, four.elapsed_s / one_s,
                (unsigned long long)four.in[0], (unsigned long long)four.in[1],
                (unsigned long long)four.in[2], (unsigned long long)four.in[3],
                four.busy_s[0], four.busy_s[1], four.busy_s[2],
                four.busy_s[3]);
    cr_assert_eq(one.delivered, ONE_RECORDS);
    cr_assert_eq(four.delivered, RECORDS);
    cr_expect_lt(four.elapsed_s, 0.45 * one_s,
                 "%s lane, %s: 4 workers took %.3f s, 1 worker %.3f s",
                 lane, what, four.elapsed_s, one_s);
    /* Spread: every worker handled at least a quarter of an even share
     * (a late-starting worker process may get less than its share, an
     * idle one gets nothing) and was busy for at least a quarter of the
     * mean. */
    double busy_sum = 0;
    uint64_t in_sum = 0;
    for (unsigned i = 0; i < 4; i++) {
        busy_sum += four.busy_s[i];
        in_sum += four.in[i];
    }
    cr_assert_eq(in_sum, RECORDS);
    /* The handler really held each record (else the time says nothing). */
    cr_assert_geq(busy_sum, serial_s, "%s lane, %s: the workers were busy "
                  "%.3f s in all for %u records of %d ms", lane, what,
                  busy_sum, RECORDS, MS_PER_RECORD);
    /* Thread workers all start at once: shares come out nearly even (a
     * batch taken whole by one worker left it doing 432 of 1,200). */
    int even = strcmp(lane, "thread") == 0;
    for (unsigned i = 0; i < 4 && even; i++)
        cr_expect(four.in[i] >= RECORDS / 4 * 3 / 4 &&
                      four.in[i] <= RECORDS / 4 * 5 / 4,
                  "%s lane, %s: worker %u handled %llu of %u records, "
                  "not within 25%% of an even share", lane, what, i,
                  (unsigned long long)four.in[i], RECORDS);
    for (unsigned i = 0; i < 4; i++) {
        cr_expect_geq(four.in[i], RECORDS / 4 / 4,
                      "%s lane, %s: worker %u handled %llu of %u records",
                      lane, what, i, (unsigned long long)four.in[i], RECORDS);
        cr_expect_geq(four.busy_s[i], busy_sum / 4 / 4,
                      "%s lane, %s: worker %u busy %.3f s of %.3f s in all",
                      lane, what, i, four.busy_s[i], busy_sum);
    }
}

/* Paced above one worker's capacity: four keep up with the input. */
static void s_keeps_up(const char *lane)
{
    s_result_t four = s_run(lane, 4, "", PACED_RECORDS, PACED_RATE);
    double rate = (double)four.delivered / four.elapsed_s;
    cr_log_info("%s lane, paced at %u/s: %.0f records/s with 4 workers",
                lane, PACED_RATE, rate);
    cr_assert_eq(four.delivered, PACED_RECORDS);
    cr_expect_geq(rate, 0.9 * PACED_RATE,
                  "%s lane: %.0f records/s for an input paced at %u/s "
                  "(%.3f s for %u records)", lane, rate, PACED_RATE,
                  four.elapsed_s, PACED_RECORDS);
}

Test(pool_scaling, thread_default_queue, .timeout = 60)
{
    s_scales("thread", "", "queue 1024, batch 256");
}

Test(pool_scaling, thread_queue_is_one_batch, .timeout = 60)
{
    s_scales("thread", "    queue: 256\n    batch: 256\n",
             "queue 256, batch 256");
}

Test(pool_scaling, process_default_queue, .timeout = 60)
{
    s_scales("process", "", "queue 1024, batch 256");
}

Test(pool_scaling, process_queue_is_one_batch, .timeout = 60)
{
    s_scales("process", "    queue: 256\n    batch: 256\n",
             "queue 256, batch 256");
}

Test(pool_scaling, thread_keeps_up_with_a_paced_input, .timeout = 60)
{
    s_keeps_up("thread");
}

Test(pool_scaling, process_keeps_up_with_a_paced_input, .timeout = 60)
{
    s_keeps_up("process");
}
