/* Fan-out, fan-in and partitioning end to end: broadcast copies every
 * record to every consumer, round_robin splits them without loss or
 * duplication, and partition_by keeps each key's records in order through
 * several workers (checked per key by checksum_sink's order_by). */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "run.h"
#include "testutil.h"

#include <ftw.h>
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

typedef struct sums {
    uint64_t count, sum, xor_, violations, keys;
    unsigned lines;
} sums_t;

typedef struct fan_test {
    char *dir;
    char out[512];
    char *yaml;
    sl_topology_t *topo;
    sl_run_t *run;
} fan_test_t;

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Sum and xor of the ids the generator at index 0 (one worker) gives
 * seq 0..n-1. */
static void expected_ids(uint64_t n, sums_t *out)
{
    memset(out, 0, sizeof(*out));
    for (uint64_t seq = 0; seq < n; seq++) {
        uint64_t id = (1ull << 48) | seq;
        out->count++;
        out->sum += id;
        out->xor_ ^= id;
    }
}

static void read_sums(const char *path, sums_t *out)
{
    memset(out, 0, sizeof(*out));
    char *text = sl_test_read_file(path, NULL);
    cr_assert_not_null(text, "checksum_sink wrote no file at %s", path);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        uint64_t c, s, x, v, k;
        int n = sscanf(line,
                       "count=%" SCNu64 " sum=%" SCNu64 " xor=%" SCNu64
                       " violations=%" SCNu64 " keys=%" SCNu64,
                       &c, &s, &x, &v, &k);
        cr_assert_eq(n, 5, "unexpected checksum line '%s'", line);
        out->count += c;
        out->sum += s;
        out->xor_ ^= x;
        out->violations += v;
        out->keys += k;
        out->lines++;
    }
    free(text);
    cr_assert_gt(out->lines, 0, "checksum file %s is empty", path);
}

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
    sl_diag_t diag;
    sl__diag_init(&diag);
    ft->topo = sl__topology_parse("fan.yaml", ft->dir, ft->yaml, &diag);
    char msg[2048] = "";
    for (size_t i = 0, off = 0; i < diag.count && off < sizeof(msg); i++)
        off += (size_t)snprintf(msg + off, sizeof(msg) - off, "%s\n",
                                diag.lines[i]);
    sl__diag_fini(&diag);
    cr_assert_not_null(ft->topo, "topology rejected:\n%s---\n%s", msg,
                       ft->yaml);

    char err[1024];
    ft->run = sl__run_new(ft->topo, err, sizeof(err));
    cr_assert_not_null(ft->run, "sl__run_new: %s", err);
    cr_assert_eq(sl__run_start(ft->run), 0);
    cr_assert_eq(sl__run_wait(ft->run), 0, "the run did not end cleanly");
    sl__diag_init(&diag);
    int rc = sl__run_check_ledger(ft->run, &diag);
    cr_assert_eq(rc, 0, "ledger: %zu problem(s), first: %s", diag.count,
                 diag.count ? diag.lines[0] : "-");
    sl__diag_fini(&diag);
}

static void stats_of(fan_test_t *ft, const char *name, sl_stage_stats_t *st)
{
    long i = sl__topology_find(ft->topo, name);
    cr_assert_geq(i, 0, "no stage '%s'", name);
    sl__run_stats(ft->run, (size_t)i, st);
    cr_assert(st->finished, "stage '%s' has not finished", name);
    cr_assert_eq(st->errors, 0, "stage '%s' has %" PRIu64 " errors", name,
                 st->errors);
}

/* Tears the run down (the sink writes its line then) and reads it. */
static void fan_finish(fan_test_t *ft, sums_t *got)
{
    sl__run_destroy(&ft->run);
    read_sums(ft->out, got);
    sl__topology_destroy(&ft->topo);
    free(ft->yaml);
    nftw(ft->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(ft->dir);
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

    sums_t got, want;
    fan_finish(&ft, &got);
    expected_ids(FAN_N, &want);
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

    sums_t got, want;
    fan_finish(&ft, &got);
    expected_ids(FAN_N, &want);
    cr_expect_eq(got.count, FAN_N);
    cr_expect_eq(got.sum, want.sum, "sum %" PRIu64 ", want %" PRIu64,
                 got.sum, want.sum);
    cr_expect_eq(got.xor_, want.xor_, "xor %" PRIx64 ", want %" PRIx64,
                 got.xor_, want.xor_);
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

    sums_t got, want;
    fan_finish(&ft, &got);
    expected_ids(FAN_N, &want);
    cr_expect_eq(got.count, FAN_N);
    cr_expect_eq(got.sum, want.sum);
    cr_expect_eq(got.xor_, want.xor_);
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

    sums_t got, want;
    fan_finish(&ft, &got);
    expected_ids(FAN_N, &want);
    cr_expect_eq(got.count, FAN_N);
    cr_expect_eq(got.sum, want.sum);
    cr_expect_eq(got.xor_, want.xor_);
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

    sums_t got, want;
    fan_finish(&ft, &got);
    expected_ids(FAN_N, &want);
    cr_expect_eq(got.count, 2 * FAN_N);
    cr_expect_eq(got.sum, 2 * want.sum);
    cr_expect_eq(got.violations, 0, "%" PRIu64 " records out of order",
                 got.violations);
    cr_expect_eq(got.keys, 32, "distinct (key, branch) pairs: %" PRIu64,
                 got.keys);
}
