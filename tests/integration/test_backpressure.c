/* Backpressure end to end: with a slow sink the sources read only as fast
 * as the sink takes records, what is in flight stays within the queues,
 * memory stays flat, and a graceful stop drains to a balanced ledger.
 *
 * The bound sampled here: a record read by the source and not yet counted
 * in by the sink is held by some stage, and each stage holds at most its
 * `queue` (runner.h). The counters move while we read them, so the sink is
 * read first (that can only overstate the gap) and each worker is allowed
 * one record of slack for a counter it has not published yet. */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "run.h"
#include "testutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024.0 * 1024.0)

typedef struct sample_result {
    uint64_t max_gap;   /* largest source read - sink in seen */
    uint64_t bound;     /* sum of queues + sum of workers */
    uint64_t queues;    /* sum of queues */
    unsigned skewed;    /* samples dropped: the sink moved while read */
    uint64_t last_read; /* source read at the last sample */
    uint64_t last_in;   /* sink in at the last sample */
    unsigned samples;
    long rss_1s;        /* bytes, first sample at or after 1 s */
    long rss_max_late;  /* bytes, max over the second half */
} sample_result_t;

static long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    if (!f)
        return -1;
    int n = fscanf(f, "%ld %ld", &size, &resident);
    fclose(f);
    return n == 2 ? resident * sysconf(_SC_PAGESIZE) : -1;
}

/* Samples the running run every ~10 ms for `seconds`, asserting the gap
 * bound at every sample and that no stage exceeds its queue. */
static void sample(sl_run_t *run, const sl_topology_t *t, size_t src,
                   size_t sink, double seconds, sample_result_t *res)
{
    memset(res, 0, sizeof(*res));
    for (size_t i = 0; i < t->n_stages; i++) {
        res->queues += t->stages[i].queue;
        res->bound += t->stages[i].queue + t->stages[i].workers;
    }
    res->rss_1s = -1;
    const struct timespec tick = {0, 10 * 1000 * 1000};
    double t0 = sl_test_now();
    for (;;) {
        double el = sl_test_now() - t0;
        if (el >= seconds)
            break;
        sl_stage_stats_t in_st, src_st, again;
        sl__run_stats(run, sink, &in_st);
        sl__run_stats(run, src, &src_st);
        sl__run_stats(run, sink, &again);
        cr_assert_geq(src_st.read, in_st.in,
                      "sink counted %" PRIu64 " in, source read only %" PRIu64,
                      in_st.in, src_st.read);
        uint64_t gap = src_st.read - in_st.in;
        /* If this thread was preempted between the reads, the sink (and
         * so the source) moved on meanwhile and the gap is overstated by
         * about that much: such a sample proves nothing either way. */
        if (again.in - in_st.in > res->bound - res->queues) {
            res->skewed++;
            nanosleep(&tick, NULL);
            continue;
        }
        cr_assert_leq(gap, res->bound,
                      "at %.2f s: source read %" PRIu64 ", sink in %" PRIu64
                      ": %" PRIu64 " in flight > bound %" PRIu64,
                      el, src_st.read, in_st.in, gap, res->bound);
        if (gap > res->max_gap)
            res->max_gap = gap;
        cr_assert(!src_st.finished, "the source ended while it should be "
                  "held back (read %" PRIu64 ")", src_st.read);
        for (size_t i = 0; i < t->n_stages; i++) {
            sl_stage_stats_t st;
            sl__run_stats(run, i, &st);
            cr_assert_leq(st.held, st.capacity,
                          "stage '%s' holds %u records, queue %u",
                          t->stages[i].name, st.held, st.capacity);
        }
        long rss = rss_bytes();
        cr_assert_gt(rss, 0, "cannot read /proc/self/statm");
        if (el >= 1.0 && res->rss_1s < 0)
            res->rss_1s = rss;
        if (el >= seconds / 2 && rss > res->rss_max_late)
            res->rss_max_late = rss;
        res->last_read = src_st.read;
        res->last_in = in_st.in;
        res->samples++;
        nanosleep(&tick, NULL);
    }
    cr_assert_geq(res->rss_1s, 0, "sampling stopped before 1 s");
    cr_assert_gt(res->samples, 4 * res->skewed,
                 "%u samples, %u of them skewed", res->samples + res->skewed,
                 res->skewed);
}

/* Stops the sources, waits for the drain; asserts a clean end, a balanced
 * ledger, and that everything the source read reached the sink. */
static void stop_and_drain(sl_run_t *run, size_t src, size_t sink,
                           sl_stage_stats_t *src_st, sl_stage_stats_t *in_st)
{
    double t0 = sl_test_now();
    sl__run_stop(run);
    cr_assert_eq(sl__run_wait(run), 0, "the run did not end cleanly");
    cr_log_info("drained in %.2f s", sl_test_now() - t0);
    sl_test_expect_ledger(run);
    sl__run_stats(run, src, src_st);
    sl__run_stats(run, sink, in_st);
    cr_assert(src_st->finished && in_st->finished);
    cr_assert_eq(in_st->in, src_st->read,
                 "after the drain the sink has %" PRIu64 " of the %" PRIu64
                 " records read", in_st->in, src_st->read);
}

static void log_result(const char *what, const sample_result_t *r)
{
    cr_log_info("%s: %u samples (%u skewed, dropped), max in flight %" PRIu64
                " (bound %" PRIu64 "), source read %" PRIu64 ", RSS at 1 s "
                "%.1f MiB, max later %.1f MiB",
                what, r->samples, r->skewed, r->max_gap, r->bound,
                r->last_read,
                (double)r->rss_1s / MIB, (double)r->rss_max_late / MIB);
}

Test(backpressure, slow_sink_holds_the_generator_back, .timeout = 120)
{
    char *dir = sl_test_tmpdir();
    cr_assert_not_null(dir);
    sl_topology_t *t = sl_test_topology("bp.yaml", dir,
                                        "defaults: {queue: 100}\n"
                                        "stages:\n"
                                        "  - name: gen\n"
                                        "    plugin: generator\n"
                                        "    config: {count: 10000000}\n"
                                        "  - name: reshape\n"
                                        "    plugin: fields\n"
                                        "    workers: 2\n"
                                        "    config: {set: {slow: true}}\n"
                                        "  - name: slow\n"
                                        "    plugin: delay\n"
                                        "    config: {ms: 1}\n"
                                        "  - name: sink\n"
                                        "    plugin: \"null\"\n");
    for (size_t i = 0; i < t->n_stages; i++)
        cr_assert_eq(t->stages[i].queue, 100);
    size_t src = sl_test_stage_index(t, "gen");
    size_t sink = sl_test_stage_index(t, "sink");
    sl_run_t *run = sl_test_run_start(t);

    sample_result_t r;
    sample(run, t, src, sink, 3.0, &r);
    log_result("generator -> fields -> delay -> null", &r);
    cr_expect_eq(r.bound, 4 * 100 + 5);
    /* ~1000 records/s go through a 1 ms delay; the rest must wait. */
    cr_expect_gt(r.last_in, 100, "the sink hardly moved: %" PRIu64,
                 r.last_in);
    cr_expect_lt(r.last_read, 10000, "the generator ran ahead: read %" PRIu64,
                 r.last_read);
    cr_expect_lt(r.rss_max_late - r.rss_1s, 16 * 1024 * 1024,
                 "RSS grew from %.1f MiB at 1 s to %.1f MiB",
                 (double)r.rss_1s / MIB, (double)r.rss_max_late / MIB);

    sl_stage_stats_t src_st, in_st;
    stop_and_drain(run, src, sink, &src_st, &in_st);
    cr_expect_lt(src_st.read, 10000, "generator read %" PRIu64,
                 src_st.read);
    sl_stage_stats_t st;
    sl__run_stats(run, sl_test_stage_index(t, "slow"), &st);
    cr_expect_eq(st.in, src_st.read);
    cr_expect_eq(st.out, src_st.read);
    cr_expect_leq(st.held_max, 100);
    sl__run_destroy(&run);
    sl__topology_destroy(&t);
    sl_test_rmtree(dir);
}

#define FILE_LINES 200000

Test(backpressure, slow_sink_holds_a_file_source_back, .timeout = 120)
{
    char *dir = sl_test_tmpdir();
    cr_assert_not_null(dir);
    char path[512];
    snprintf(path, sizeof(path), "%s/big.txt", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < FILE_LINES; i++)
        fprintf(f, "line %d of the big input\n", i);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(sl_test_count_lines(path), FILE_LINES);

    char *yaml = NULL;
    cr_assert_gt(asprintf(&yaml,
                          "defaults: {queue: 100}\n"
                          "stages:\n"
                          "  - name: src\n"
                          "    plugin: file_source\n"
                          "    config: {path: %s, format: lines}\n"
                          "  - name: slow\n"
                          "    plugin: delay\n"
                          "    config: {ms: 1}\n"
                          "  - name: sink\n"
                          "    plugin: \"null\"\n",
                          path),
                 0);
    sl_topology_t *t = sl_test_topology("bp.yaml", dir, yaml);
    size_t src = sl_test_stage_index(t, "src");
    size_t sink = sl_test_stage_index(t, "sink");
    sl_run_t *run = sl_test_run_start(t);

    sample_result_t r;
    sample(run, t, src, sink, 2.0, &r);
    log_result("file_source -> delay -> null", &r);
    cr_expect_eq(r.bound, 3 * 100 + 3);
    cr_expect_gt(r.last_in, 100, "the sink hardly moved: %" PRIu64,
                 r.last_in);
    cr_expect_lt(r.last_read, FILE_LINES / 20,
                 "the file source ran ahead: read %" PRIu64, r.last_read);

    sl_stage_stats_t src_st, in_st;
    stop_and_drain(run, src, sink, &src_st, &in_st);
    cr_expect_lt(src_st.read, FILE_LINES / 20, "file source read %" PRIu64,
                 src_st.read);
    cr_expect_eq(src_st.errors, 0);
    sl__run_destroy(&run);
    sl__topology_destroy(&t);
    free(yaml);
    sl_test_rmtree(dir);
}

static const char s_slow_chain[] = "defaults: {queue: 100}\n"
                                   "stages:\n"
                                   "  - name: gen\n"
                                   "    plugin: generator\n"
                                   "    config: {count: 10000000}\n"
                                   "  - name: reshape\n"
                                   "    plugin: fields\n"
                                   "    workers: 2\n"
                                   "    config: {set: {slow: true}}\n"
                                   "  - name: slow\n"
                                   "    plugin: delay\n"
                                   "    workers: 2\n"
                                   "    config: {ms: 1}\n"
                                   "  - name: sink\n"
                                   "    plugin: \"null\"\n";

/* A stop that comes before the pipeline filled still ends every stage
 * cleanly with a balanced ledger. */
Test(backpressure, stop_right_after_start_drains, .timeout = 60)
{
    sl_topology_t *t = sl_test_topology("bp.yaml", "/tmp", s_slow_chain);
    size_t src = sl_test_stage_index(t, "gen");
    size_t sink = sl_test_stage_index(t, "sink");
    sl_run_t *run = sl_test_run_start(t);
    sl_stage_stats_t src_st, in_st;
    stop_and_drain(run, src, sink, &src_st, &in_st);
    cr_expect_leq(src_st.read, 405, "read %" PRIu64 " after an early stop",
                  src_st.read);
    sl__run_destroy(&run);
    sl__topology_destroy(&t);
}

/* An abort while records are in flight ends promptly and reports failure;
 * tearing down frees everything in the queues (ASan checks that). */
Test(backpressure, abort_with_records_in_flight_ends, .timeout = 60)
{
    sl_topology_t *t = sl_test_topology("bp.yaml", "/tmp", s_slow_chain);
    size_t sink = sl_test_stage_index(t, "sink");
    sl_run_t *run = sl_test_run_start(t);
    /* Handshake: wait (bounded) until records have reached the sink, so
     * that every queue is full when the abort comes. */
    const struct timespec tick = {0, 2 * 1000 * 1000};
    double end = sl_test_now() + 20;
    sl_stage_stats_t st;
    do {
        nanosleep(&tick, NULL);
        sl__run_stats(run, sink, &st);
    } while (st.in < 200 && sl_test_now() < end);
    cr_assert_geq(st.in, 200, "nothing reached the sink in 20 s");
    double t0 = sl_test_now();
    sl__run_abort(run);
    int rc = sl__run_wait(run);
    double took = sl_test_now() - t0;
    cr_expect_neq(rc, 0, "an aborted run reported success");
    cr_expect_lt(took, 2.0, "abort took %.2f s", took);
    cr_log_info("abort ended the run in %.3f s", took);
    sl__run_destroy(&run);
    sl__topology_destroy(&t);
}
