/* End to end through the in-process run API: a straight chain keeps every
 * record exactly once (count, sum and xor of ids at the sink), a filter
 * drops an exact, known subset, and every stage's counters balance. */
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

/* (a) stays at a million records in the normal build, as the benchmark
 * numbers are quoted for; the sanitizers only need to see the paths. */
#if defined(__SANITIZE_ADDRESS__)
#define CHAIN_N 300001u /* odd, so that the xor of the ids is not 0 */
#else
#define CHAIN_N 1000000u
#endif
#define FILTER_N 80000u

typedef struct sums {
    uint64_t count, sum, xor_, violations, keys;
    unsigned lines;
} sums_t;

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_tree(char *dir)
{
    if (dir)
        nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

/* The ids a generator at topology index `stage` (one worker) gives the
 * records whose seq satisfies keep (NULL: all of 0..n-1). */
static void expected_ids(unsigned stage, uint64_t n, int (*keep)(uint64_t),
                         sums_t *out)
{
    memset(out, 0, sizeof(*out));
    for (uint64_t seq = 0; seq < n; seq++) {
        if (keep && !keep(seq))
            continue;
        uint64_t id = ((uint64_t)(stage + 1) << 48) | seq;
        out->count++;
        out->sum += id;
        out->xor_ ^= id;
    }
}

/* Adds up the lines checksum_sink's workers appended to path. */
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

static sl_topology_t *load(const char *dir, const char *yaml)
{
    sl_diag_t diag;
    sl__diag_init(&diag);
    sl_topology_t *t = sl__topology_parse("chain.yaml", dir, yaml, &diag);
    char msg[2048] = "";
    for (size_t i = 0, off = 0; i < diag.count && off < sizeof(msg); i++)
        off += (size_t)snprintf(msg + off, sizeof(msg) - off, "%s\n",
                                diag.lines[i]);
    sl__diag_fini(&diag);
    cr_assert_not_null(t, "topology rejected:\n%s---\n%s", msg, yaml);
    return t;
}

/* Runs to the end; asserts a clean finish and a balanced ledger. */
static sl_run_t *run_all(const sl_topology_t *t)
{
    char err[1024];
    sl_run_t *run = sl__run_new(t, err, sizeof(err));
    cr_assert_not_null(run, "sl__run_new: %s", err);
    cr_assert_eq(sl__run_start(run), 0);
    cr_assert_eq(sl__run_wait(run), 0, "the run did not finish cleanly");
    sl_diag_t diag;
    sl__diag_init(&diag);
    int rc = sl__run_check_ledger(run, &diag);
    cr_assert_eq(rc, 0, "ledger: %zu problem(s), first: %s", diag.count,
                 diag.count ? diag.lines[0] : "-");
    sl__diag_fini(&diag);
    return run;
}

static void stats_of(sl_run_t *run, const sl_topology_t *t, const char *name,
                     sl_stage_stats_t *st)
{
    long i = sl__topology_find(t, name);
    cr_assert_geq(i, 0, "no stage '%s'", name);
    sl__run_stats(run, (size_t)i, st);
    cr_assert(st->finished, "stage '%s' has not finished", name);
}

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
    sl_topology_t *t = load(dir, yaml);
    sl_run_t *run = run_all(t);

    sl_stage_stats_t gen, tag, sink;
    stats_of(run, t, "gen", &gen);
    stats_of(run, t, "tag", &tag);
    stats_of(run, t, "sink", &sink);
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
    sums_t got, want;
    read_sums(out, &got);
    expected_ids(0, CHAIN_N, NULL, &want);
    cr_expect_eq(got.count, want.count);
    cr_expect_eq(got.sum, want.sum, "sum of ids %" PRIu64 ", want %" PRIu64,
                 got.sum, want.sum);
    cr_expect_eq(got.xor_, want.xor_, "xor of ids %" PRIx64 ", want %" PRIx64,
                 got.xor_, want.xor_);
    cr_log_info("chain: %" PRIu64 " records, sum %" PRIu64 " xor %" PRIx64,
                got.count, got.sum, got.xor_);

    sl__topology_destroy(&t);
    free(yaml);
    rm_tree(dir);
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
    sl_topology_t *t = load(dir, yaml);
    sl_run_t *run = run_all(t);

    sl_stage_stats_t gen, keep, sink;
    stats_of(run, t, "gen", &gen);
    stats_of(run, t, "keep", &keep);
    stats_of(run, t, "sink", &sink);
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
    sums_t got, want;
    read_sums(out, &got);
    expected_ids(1, FILTER_N, us_or_de, &want);
    cr_expect_eq(want.count, FILTER_N / 4);
    cr_expect_eq(got.count, want.count);
    cr_expect_eq(got.sum, want.sum, "sum of ids %" PRIu64 ", want %" PRIu64,
                 got.sum, want.sum);
    cr_expect_eq(got.xor_, want.xor_, "xor of ids %" PRIx64 ", want %" PRIx64,
                 got.xor_, want.xor_);

    sl__topology_destroy(&t);
    free(yaml);
    rm_tree(dir);
}

/* The end of stream travels down the chain as soon as the last record is
 * handled: a tiny run takes milliseconds, not a poll timeout per stage.
 * (A worker finishing the last batch must wake its dispatcher, which
 * waits for "nothing in flight" before it flushes.) */
Test(chain, end_of_stream_is_prompt, .timeout = 120)
{
    sl_topology_t *t = load("/tmp",
                            "stages:\n"
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
        sl_run_t *run = run_all(t);
        sl_stage_stats_t sink;
        stats_of(run, t, "sink", &sink);
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
