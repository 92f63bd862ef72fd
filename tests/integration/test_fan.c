/* Fan-out, fan-in and partitioning end to end: broadcast copies every
 * record to every consumer, round_robin splits them without loss or
 * duplication, and partition_by keeps each key's records in order through
 * several workers (checked per key by checksum_sink's order_by). */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "run.h"
#include "testutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECKSUM_SO SL_TEST_BINARY_DIR "/tests/plugins/checksum_sink.so"

/* Not a multiple of 4, so that the xor of the ids 0..N-1 is not 0. */
#if defined(__SANITIZE_ADDRESS__)
#define FAN_N 60001u
#else
#define FAN_N 200003u
#endif

typedef struct fan_test {
    char *dir;
    char out[512];
    char *yaml;
    sl_topology_t *topo;
    sl_run_t *run;
} fan_test_t;

/* Builds the topology from fmt, which takes in order: %u the record count
 * (FAN_N), %s the checksum_sink .so and %s its output file; then runs it
 * to the end and checks the ledger. */
static void fan_start(fan_test_t *ft, const char *fmt)
{
    memset(ft, 0, sizeof(*ft));
    ft->dir = sl_test_tmpdir();
    cr_assert_not_null(ft->dir);
    snprintf(ft->out, sizeof(ft->out), "%s/sums.txt", ft->dir);
    cr_assert_gt(asprintf(&ft->yaml, fmt, FAN_N, CHECKSUM_SO, ft->out), 0);
    ft->topo = sl_test_topology("fan.yaml", ft->dir, ft->yaml);
    ft->run = sl_test_run_to_end(ft->topo);
}

static void stats_of(fan_test_t *ft, const char *name, sl_stage_stats_t *st)
{
    sl_test_stage_stats(ft->run, ft->topo, name, st);
    cr_assert_eq(st->errors, 0, "stage '%s' has %" PRIu64 " errors", name,
                 st->errors);
}

/* Tears the run down (the sink writes its line then) and reads it. */
static void fan_finish(fan_test_t *ft, sl_test_sums_t *got)
{
    sl__run_destroy(&ft->run);
    sl_test_read_sums(ft->out, got);
    sl__topology_destroy(&ft->topo);
    free(ft->yaml);
    sl_test_rmtree(ft->dir);
}

Test(fan, broadcast_copies_to_both_branches, .timeout = 120)
{
    fan_test_t ft;
    fan_start(&ft, "stages:\n"
                   "  - name: gen\n"
                   "    plugin: generator\n"
                   "    config: {count: %u}\n"
                   "  - name: a\n"
                   "    plugin: fields\n"
                   "    from: gen\n"
                   "    config: {set: {branch: a}}\n"
                   "  - name: b\n"
                   "    plugin: fields\n"
                   "    from: gen\n"
                   "    workers: 2\n"
                   "    config: {set: {branch: b}}\n"
                   "  - name: sink\n"
                   "    plugin: %s\n"
                   "    from: [a, b]\n"
                   "    config: {path: %s}\n");
    sl_stage_stats_t gen, a, b, sink;
    stats_of(&ft, "gen", &gen);
    stats_of(&ft, "a", &a);
    stats_of(&ft, "b", &b);
    stats_of(&ft, "sink", &sink);
    cr_expect_eq(gen.read, FAN_N);
    cr_expect_eq(gen.out, FAN_N);
    cr_expect_eq(gen.sent, 2 * FAN_N, "broadcast sent %" PRIu64, gen.sent);
    cr_expect_eq(a.in, FAN_N);
    cr_expect_eq(a.out, FAN_N);
    cr_expect_eq(b.in, FAN_N);
    cr_expect_eq(b.out, FAN_N);
    cr_expect_eq(sink.in, 2 * FAN_N);

    sl_test_sums_t got, want;
    fan_finish(&ft, &got);
    sl_test_expected_ids(0, FAN_N, NULL, &want);
    cr_expect_eq(got.count, 2 * FAN_N);
    /* Each id arrives twice: twice the sum, and the xor cancels out. */
    cr_expect_eq(got.sum, 2 * want.sum, "sum %" PRIu64 ", want %" PRIu64,
                 got.sum, 2 * want.sum);
    cr_expect_eq(got.xor_, 0, "xor %" PRIx64 ", want 0", got.xor_);
}

Test(fan, round_robin_splits_without_loss, .timeout = 120)
{
    fan_test_t ft;
    fan_start(&ft, "stages:\n"
                   "  - name: gen\n"
                   "    plugin: generator\n"
                   "    fanout: round_robin\n"
                   "    config: {count: %u}\n"
                   "  - name: a\n"
                   "    plugin: fields\n"
                   "    from: gen\n"
                   "    config: {set: {branch: a}}\n"
                   "  - name: b\n"
                   "    plugin: fields\n"
                   "    from: gen\n"
                   "    config: {set: {branch: b}}\n"
                   "  - name: sink\n"
                   "    plugin: %s\n"
                   "    from: [a, b]\n"
                   "    config: {path: %s}\n");
    sl_stage_stats_t gen, a, b, sink;
    stats_of(&ft, "gen", &gen);
    stats_of(&ft, "a", &a);
    stats_of(&ft, "b", &b);
    stats_of(&ft, "sink", &sink);
    cr_expect_eq(gen.read, FAN_N);
    cr_expect_eq(gen.sent, FAN_N, "round_robin sent %" PRIu64, gen.sent);
    cr_expect_eq(a.in + b.in, FAN_N, "a %" PRIu64 " + b %" PRIu64, a.in,
                 b.in);
    cr_expect_gt(a.in, 0, "round_robin gave branch a nothing");
    cr_expect_gt(b.in, 0, "round_robin gave branch b nothing");
    cr_expect_eq(sink.in, FAN_N);
    cr_log_info("round_robin: a got %" PRIu64 ", b got %" PRIu64, a.in, b.in);

    sl_test_sums_t got, want;
    fan_finish(&ft, &got);
    sl_test_expected_ids(0, FAN_N, NULL, &want);
    sl_test_expect_ids(&got, &want);
}

/* round_robin sends each batch to a consumer that has credit, so a slow
 * branch gets little and the fast one carries the stream. */
Test(fan, round_robin_routes_around_a_slow_branch, .timeout = 120)
{
    fan_test_t ft;
    fan_start(&ft, "defaults: {queue: 100}\n"
                   "stages:\n"
                   "  - name: gen\n"
                   "    plugin: generator\n"
                   "    fanout: round_robin\n"
                   "    config: {count: %u}\n"
                   "  - name: slow\n"
                   "    plugin: delay\n"
                   "    from: gen\n"
                   "    config: {ms: 1}\n"
                   "  - name: fast\n"
                   "    plugin: fields\n"
                   "    from: gen\n"
                   "    config: {set: {branch: fast}}\n"
                   "  - name: sink\n"
                   "    plugin: %s\n"
                   "    from: [slow, fast]\n"
                   "    config: {path: %s}\n");
    sl_stage_stats_t slow, fast, sink;
    stats_of(&ft, "slow", &slow);
    stats_of(&ft, "fast", &fast);
    stats_of(&ft, "sink", &sink);
    cr_log_info("round_robin around a slow branch: slow %" PRIu64
                ", fast %" PRIu64, slow.in, fast.in);
    cr_expect_eq(slow.in + fast.in, FAN_N);
    cr_expect_gt(slow.in, 0, "the slow branch got nothing");
    cr_expect_lt(slow.in, FAN_N / 10, "the slow branch got %" PRIu64
                 " of %u: batches waited for it", slow.in, FAN_N);
    cr_expect_eq(sink.in, FAN_N);

    sl_test_sums_t got, want;
    fan_finish(&ft, &got);
    sl_test_expected_ids(0, FAN_N, NULL, &want);
    sl_test_expect_ids(&got, &want);
}

Test(fan, partition_by_keeps_per_key_order, .timeout = 120)
{
    fan_test_t ft;
    fan_start(&ft, "stages:\n"
                   "  - name: gen\n"
                   "    plugin: generator\n"
                   "    config: {count: %u, keys: 16}\n"
                   "  - name: work\n"
                   "    plugin: fields\n"
                   "    workers: 4\n"
                   "    partition_by: key\n"
                   "    config: {set: {seen: true}}\n"
                   "  - name: sink\n"
                   "    plugin: %s\n"
                   "    config: {path: %s, order_by: [key], "
                   "seq_field: seq}\n");
    sl_stage_stats_t gen, work, sink;
    stats_of(&ft, "gen", &gen);
    stats_of(&ft, "work", &work);
    stats_of(&ft, "sink", &sink);
    cr_expect_eq(work.workers, 4);
    cr_expect_eq(work.in, FAN_N);
    cr_expect_eq(work.out, FAN_N);
    cr_expect_eq(sink.in, FAN_N);

    sl_test_sums_t got, want;
    fan_finish(&ft, &got);
    sl_test_expected_ids(0, FAN_N, NULL, &want);
    sl_test_expect_ids(&got, &want);
    cr_expect_eq(got.violations, 0, "%" PRIu64 " records out of key order",
                 got.violations);
    cr_expect_eq(got.keys, 16);
}

Test(fan, partitioned_branches_fan_in_in_order, .timeout = 120)
{
    fan_test_t ft;
    fan_start(&ft, "stages:\n"
                   "  - name: gen\n"
                   "    plugin: generator\n"
                   "    config: {count: %u, keys: 16}\n"
                   "  - name: a\n"
                   "    plugin: fields\n"
                   "    from: gen\n"
                   "    workers: 2\n"
                   "    partition_by: key\n"
                   "    config: {set: {branch: a}}\n"
                   "  - name: b\n"
                   "    plugin: fields\n"
                   "    from: gen\n"
                   "    workers: 3\n"
                   "    partition_by: key\n"
                   "    config: {set: {branch: b}}\n"
                   "  - name: sink\n"
                   "    plugin: %s\n"
                   "    from: [a, b]\n"
                   "    config: {path: %s, order_by: [key, branch], "
                   "seq_field: seq}\n");
    sl_stage_stats_t a, b, sink;
    stats_of(&ft, "a", &a);
    stats_of(&ft, "b", &b);
    stats_of(&ft, "sink", &sink);
    cr_expect_eq(a.in, FAN_N);
    cr_expect_eq(b.in, FAN_N);
    cr_expect_eq(sink.in, 2 * FAN_N);

    sl_test_sums_t got, want;
    fan_finish(&ft, &got);
    sl_test_expected_ids(0, FAN_N, NULL, &want);
    cr_expect_eq(got.count, 2 * FAN_N);
    cr_expect_eq(got.sum, 2 * want.sum);
    cr_expect_eq(got.violations, 0, "%" PRIu64 " records out of order",
                 got.violations);
    cr_expect_eq(got.keys, 32, "distinct (key, branch) pairs: %" PRIu64,
                 got.keys);
}
