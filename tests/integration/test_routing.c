/* Routing end to end: priority serving under saturation (and the rule's
 * forms), shared limits across stages (`resources:` / `uses:`), dead
 * letters routed to a stage (with backpressure on that link), fan-out
 * isolation with `when_full: spill | dead_letter | block`, and the exact
 * errors for the keys that drive all of it. */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "diag.h"
#include "resource.h"
#include "run.h"
#include "testutil.h"
#include "topology.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define PLUGINS SL_TEST_BINARY_DIR "/tests/plugins"
#define PRIO_SO PLUGINS "/prio_latency.so"
#define PROBE_SO PLUGINS "/probe.so"
#define MISBEHAVE_SO PLUGINS "/misbehave.so"
#define CHECKSUM_SO PLUGINS "/checksum_sink.so"

TestSuite(routing, .init = sl_test_tmpdir_setup,
          .fini = sl_test_tmpdir_teardown);

/* ---- helpers ------------------------------------------------------------- */

static char *path_in(const char *name)
{
    char *p = NULL;
    cr_assert_gt(asprintf(&p, "%s/%s", sl_test_dir(), name), 0);
    return p;
}

static char *fmt(const char *f, ...) SL_PRINTF(1, 2);
static char *fmt(const char *f, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, f);
    cr_assert_gt(vasprintf(&s, f, ap), 0);
    va_end(ap);
    return s;
}

static void stats_of(sl_run_t *run, const sl_topology_t *t, const char *name,
                     sl_stage_stats_t *st)
{
    sl_test_stage_stats(run, t, name, st);
}

/* Sleeps a little, for bounded polling of a live run's counters (not for
 * synchronisation: every poll loop also has a deadline). */
static void nap_ms(unsigned ms)
{
    struct timespec ts = {0, (long)ms * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* prio_latency's lines, by level. */
typedef struct lat {
    uint64_t count, p50, p99, max;
} lat_t;

static void read_lat(const char *path, lat_t out[SL_PRIO_LEVELS])
{
    memset(out, 0, sizeof(lat_t) * SL_PRIO_LEVELS);
    char *text = sl_test_read_file(path, NULL);
    cr_assert_not_null(text, "prio_latency wrote nothing at %s", path);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        unsigned l;
        lat_t v;
        int n = sscanf(line,
                       "level=%u count=%" SCNu64 " p50=%" SCNu64
                       " p99=%" SCNu64 " max=%" SCNu64,
                       &l, &v.count, &v.p50, &v.p99, &v.max);
        cr_assert_eq(n, 5, "bad prio_latency line '%s'", line);
        cr_assert_lt(l, SL_PRIO_LEVELS, "level %u out of range", l);
        cr_assert_eq(out[l].count, 0, "level %u reported twice", l);
        out[l] = v;
    }
    free(text);
}

/* ---- 1. priority --------------------------------------------------------- */

#define PRIO_N 10000u

/* One record in ten (key k0) is urgent. The bottleneck has one worker and
 * a deep queue, and the source runs at about twice what it can serve, so
 * a backlog builds and nearly every record waits there. Urgent records
 * must overtake it.
 *
 * Records a producer has made but cannot send yet wait in its FIFO until
 * the consumer returns credit, which comes back in chunks of a quarter of
 * the consumer's share (1000 records, ~0.3 s here): priority cannot act
 * there. So the source holds at most one tiny batch (queue and batch 4,
 * under 1% of a chunk) and the source is paced rather than bursting, so
 * that p99 measures the consumer's queue, not that FIFO. */
Test(routing, priority_overtakes_a_backlog, .timeout = 60)
{
    char *out = path_in("lat.txt");
    char *yaml = fmt("defaults: {batch: 4}\n"
                     "stages:\n"
                     "  - name: gen\n"
                     "    plugin: generator\n"
                     "    queue: 4\n"
                     "    config: {count: %u, keys: 10, rate: 8000}\n"
                     "    priority: {field: key, values: {k0: 0}, default: 6}\n"
                     "  - name: work\n"
                     "    plugin: delay\n"
                     "    queue: 4000\n"
                     "    config: {ms: 0.25}\n"
                     "  - name: sink\n"
                     "    plugin: %s\n"
                     "    config: {path: %s}\n",
                     PRIO_N, PRIO_SO, out);
    sl_topology_t *t = sl_test_topology("prio.yaml", sl_test_dir(), yaml);
    sl_run_t *run = sl_test_run_to_end(t);
    sl_stage_stats_t gen, work, sink;
    stats_of(run, t, "gen", &gen);
    stats_of(run, t, "work", &work);
    stats_of(run, t, "sink", &sink);
    cr_expect_eq(gen.out, PRIO_N);
    cr_expect_eq(work.in, PRIO_N);
    cr_expect_eq(work.errors, 0);
    cr_expect_eq(sink.in, PRIO_N);
    cr_log_info("work held at most %u of %u", work.held_max, work.capacity);
    sl__run_destroy(&run);

    lat_t lat[SL_PRIO_LEVELS];
    read_lat(out, lat);
    cr_expect_eq(lat[0].count, PRIO_N / 10, "urgent: %" PRIu64, lat[0].count);
    cr_expect_eq(lat[6].count, PRIO_N - PRIO_N / 10, "bulk: %" PRIu64,
                 lat[6].count);
    for (unsigned l = 1; l < SL_PRIO_LEVELS; l++)
        if (l != 6)
            cr_expect_eq(lat[l].count, 0, "level %u got %" PRIu64, l,
                         lat[l].count);
    cr_log_info("p99 urgent %.1f ms (p50 %.1f), bulk %.1f ms (p50 %.1f)",
                lat[0].p99 / 1e6, lat[0].p50 / 1e6, lat[6].p99 / 1e6,
                lat[6].p50 / 1e6);
    /* The backlog is real (else the comparison says nothing)... */
    cr_expect_gt(lat[6].p50, 300000000u, "bulk p50 only %.1f ms: no backlog",
                 lat[6].p50 / 1e6);
    /* ...and urgent records skip it. */
    cr_expect_lt(lat[0].p99 * 4, lat[6].p99,
                 "urgent p99 %.1f ms is not far below bulk p99 %.1f ms",
                 lat[0].p99 / 1e6, lat[6].p99 / 1e6);
    cr_expect_lt(lat[0].p50 * 10, lat[6].p50,
                 "urgent p50 %.1f ms is not far below bulk p50 %.1f ms",
                 lat[0].p50 / 1e6, lat[6].p50 / 1e6);
    sl__topology_destroy(&t);
    free(yaml);
    free(out);
}

/* The rule's other forms: an integer field is the level itself (clamped
 * to 7), a constant applies to everything, and a later stage's rule
 * replaces the priority its input had. */
Test(routing, priority_rule_forms, .timeout = 30)
{
    char *a = path_in("a.txt"), *b = path_in("b.txt");
    char *yaml = fmt("stages:\n"
                     "  - name: gen\n"
                     "    plugin: generator\n"
                     "    config: {count: 100, fields: 1}\n"
                     "    priority: 0\n"
                     "  - name: by_field\n"
                     "    plugin: fields\n"
                     "    from: gen\n"
                     "    config: {set: {x: 1}}\n"
                     "    priority: {field: f1}\n"
                     "  - name: constant\n"
                     "    plugin: fields\n"
                     "    from: gen\n"
                     "    config: {set: {x: 2}}\n"
                     "    priority: 2\n"
                     "  - name: sink_a\n"
                     "    plugin: %s\n"
                     "    from: by_field\n"
                     "    config: {path: %s}\n"
                     "  - name: sink_b\n"
                     "    plugin: %s\n"
                     "    from: constant\n"
                     "    config: {path: %s}\n",
                     PRIO_SO, a, PRIO_SO, b);
    sl_topology_t *t = sl_test_topology("forms.yaml", sl_test_dir(), yaml);
    sl_run_t *run = sl_test_run_to_end(t);
    sl__run_destroy(&run);
    lat_t la[SL_PRIO_LEVELS], lb[SL_PRIO_LEVELS];
    read_lat(a, la);
    read_lat(b, lb);
    /* f1 = seq + 1 = 1..100: levels 1..6 once each, the rest clamped. */
    cr_expect_eq(la[0].count, 0);
    for (unsigned l = 1; l <= 6; l++)
        cr_expect_eq(la[l].count, 1, "level %u: %" PRIu64, l, la[l].count);
    cr_expect_eq(la[7].count, 94, "level 7: %" PRIu64, la[7].count);
    for (unsigned l = 0; l < SL_PRIO_LEVELS; l++)
        cr_expect_eq(lb[l].count, l == 2 ? 100u : 0u, "constant, level %u: %"
                     PRIu64, l, lb[l].count);
    sl__topology_destroy(&t);
    free(yaml);
    free(a);
    free(b);
}

/* ---- 2. shared limits ---------------------------------------------------- */

static uint64_t probe_max(const char *path)
{
    size_t len = 0;
    char *m = sl_test_read_file(path, &len);
    cr_assert_not_null(m, "no probe counter at %s", path);
    cr_assert_geq(len, 2 * sizeof(uint64_t));
    uint64_t c[2];
    memcpy(c, m, sizeof(c));
    free(m);
    cr_expect_eq(c[0], 0, "probe: %" PRIu64 " calls still inside", c[0]);
    return c[1];
}

#define LIMIT_N 1500u
#define LIMIT_SLEEP_US 2000u

/* Two stages of four workers each share db: 3. Never more than 3 calls
 * hold it; the 8 workers keep it busy, so 3 are reached and the run takes
 * about a third of the serial time. */
Test(routing, shared_limit_across_stages, .timeout = 60)
{
    char *counter = path_in("probe.bin");
    char *yaml = fmt("resources: {db: 3}\n"
                     "defaults: {batch: 16}\n"
                     "stages:\n"
                     "  - name: gen\n"
                     "    plugin: generator\n"
                     "    fanout: round_robin\n"
                     "    config: {count: %u}\n"
                     "  - name: a\n"
                     "    plugin: %s\n"
                     "    from: gen\n"
                     "    workers: 4\n"
                     "    uses: db\n"
                     "    config: {counter: %s, sleep_us: %u}\n"
                     "  - name: b\n"
                     "    plugin: %s\n"
                     "    from: gen\n"
                     "    workers: 4\n"
                     "    uses: [db]\n"
                     "    config: {counter: %s, sleep_us: %u}\n"
                     "  - name: sink\n"
                     "    plugin: \"null\"\n"
                     "    from: [a, b]\n",
                     LIMIT_N, PROBE_SO, counter, LIMIT_SLEEP_US, PROBE_SO,
                     counter, LIMIT_SLEEP_US);
    sl_topology_t *t = sl_test_topology("limit.yaml", sl_test_dir(), yaml);
    double t0 = sl_test_now();
    sl_run_t *run = sl_test_run_to_end(t);
    double took = sl_test_now() - t0;
    sl_stage_stats_t a, b, sink;
    stats_of(run, t, "a", &a);
    stats_of(run, t, "b", &b);
    stats_of(run, t, "sink", &sink);
    cr_expect_eq(a.in + b.in, LIMIT_N);
    cr_expect_gt(a.in, 0);
    cr_expect_gt(b.in, 0);
    cr_expect_eq(sink.in, LIMIT_N);
    cr_assert_not_null(run->resources);
    cr_expect_eq(sl__resources_max_in_use(run->resources, 0), 3);
    cr_expect_eq(sl__resources_in_use(run->resources, 0), 0);
    cr_expect_gt(sl__resources_waits(run->resources, 0), 0,
                 "8 workers for 3 slots never waited");
    sl__run_destroy(&run);

    cr_expect_eq(probe_max(counter), 3, "probe saw %" PRIu64 " at once",
                 probe_max(counter));
    double serial = LIMIT_N * LIMIT_SLEEP_US / 1e6;
    cr_log_info("limit 3: %.2f s (serial %.2f s)", took, serial);
    cr_expect_lt(took, 0.6 * serial, "%.2f s: the limit let fewer than 3 run "
                 "at once", took);
    cr_expect_geq(took, serial / 3, "%.2f s is faster than 3 at a time "
                  "allows (%.2f s)", took, serial / 3);
    sl__topology_destroy(&t);
    free(yaml);
    free(counter);
}

/* Two resources taken in opposite YAML order by two stages: they are
 * acquired in one global order, so nothing deadlocks, and the tighter one
 * bounds both stages together. */
Test(routing, two_resources_in_either_order, .timeout = 60)
{
    char *counter = path_in("probe.bin");
    char *yaml = fmt("resources: {db: 2, api: 3}\n"
                     "defaults: {batch: 8}\n"
                     "stages:\n"
                     "  - name: gen\n"
                     "    plugin: generator\n"
                     "    config: {count: 600}\n"
                     "  - name: a\n"
                     "    plugin: %s\n"
                     "    from: gen\n"
                     "    workers: 3\n"
                     "    uses: [db, api]\n"
                     "    config: {counter: %s, sleep_us: 1000}\n"
                     "  - name: b\n"
                     "    plugin: %s\n"
                     "    from: gen\n"
                     "    workers: 3\n"
                     "    uses: [api, db]\n"
                     "    config: {counter: %s, sleep_us: 1000}\n"
                     "  - name: sink\n"
                     "    plugin: \"null\"\n"
                     "    from: [a, b]\n",
                     PROBE_SO, counter, PROBE_SO, counter);
    sl_topology_t *t = sl_test_topology("two.yaml", sl_test_dir(), yaml);
    cr_assert_eq(t->n_resources, 2);
    sl_run_t *run = sl_test_run_to_end(t);
    sl_stage_stats_t a, b, sink;
    stats_of(run, t, "a", &a);
    stats_of(run, t, "b", &b);
    stats_of(run, t, "sink", &sink);
    cr_expect_eq(a.in, 600);
    cr_expect_eq(b.in, 600);
    cr_expect_eq(sink.in, 1200);
    cr_expect_eq(sl__resources_max_in_use(run->resources, 0), 2); /* db */
    /* api is taken after db, so at most 2 take it together; a third can
     * slip in while a holder gives back db before api. */
    uint32_t api = sl__resources_max_in_use(run->resources, 1);
    cr_expect(api >= 2 && api <= 3, "api: %u at once", api);
    sl__run_destroy(&run);
    cr_expect_eq(probe_max(counter), 2);
    sl__topology_destroy(&t);
    free(yaml);
    free(counter);
}

/* ---- 3. dead letters to a stage ------------------------------------------ */

/* Input lines {"n": i, "bad": true|false}; bad when i % every == 0. */
static char *write_input(unsigned n, unsigned every)
{
    char *path = path_in("in.jsonl");
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (unsigned i = 0; i < n; i++)
        fprintf(f, "{\"n\":%u,\"bad\":%s}\n", i, i % every ? "false" : "true");
    cr_assert_eq(fclose(f), 0);
    return path;
}

/* Checks the dead-letter records file_sink wrote: exactly the bad n's,
 * each once, from stage `stage`, with the error of the last attempt. */
static void expect_dead_letters(const char *path, unsigned n, unsigned every,
                                const char *stage, unsigned attempts)
{
    char want_att[32], want_err[64];
    snprintf(want_att, sizeof(want_att), ",\"attempts\":%u,", attempts);
    snprintf(want_err, sizeof(want_err),
             ",\"error\":\"bad is true (attempt %u)\",", attempts);
    char *text = sl_test_read_file(path, NULL);
    cr_assert_not_null(text, "no dead-letter output at %s", path);
    unsigned char *seen = calloc(n, 1);
    cr_assert_not_null(seen);
    char want_stage[64];
    snprintf(want_stage, sizeof(want_stage), "{\"stage\":\"%s\",\"id\":",
             stage);
    unsigned lines = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save), lines++) {
        cr_assert(strncmp(line, want_stage, strlen(want_stage)) == 0,
                  "entry does not start with %s: %s", want_stage, line);
        const char *rec = strstr(line, ",\"record\":{\"n\":");
        unsigned v;
        cr_assert(rec && sscanf(rec, ",\"record\":{\"n\":%u,", &v) == 1,
                  "no record in %s", line);
        cr_assert_lt(v, n, "%s", line);
        cr_expect_eq(v % every, 0, "record %u was not bad: %s", v, line);
        cr_expect_eq(seen[v], 0, "record %u dead-lettered twice", v);
        seen[v] = 1;
        cr_expect(strstr(rec, ",\"bad\":true}") != NULL, "%s", line);
        cr_expect(strstr(line, want_att) != NULL, "no %s: %s", want_att, line);
        cr_expect(strstr(line, want_err) != NULL, "no %s: %s", want_err, line);
        cr_expect(strstr(line, ",\"first_failure\":") != NULL, "%s", line);
        cr_expect(strstr(line, ",\"last_failure\":") != NULL, "%s", line);
        cr_expect(strstr(line, ",\"priority\":") != NULL, "%s", line);
    }
    unsigned want = (n + every - 1) / every;
    cr_expect_eq(lines, want, "%u dead letters, want %u", lines, want);
    free(seen);
    free(text);
}

Test(routing, dead_letters_go_to_a_stage, .timeout = 60)
{
    const unsigned n = 5000, every = 7;
    char *in = write_input(n, every);
    char *good = path_in("good.txt"), *errs = path_in("errors.jsonl");
    char *yaml = fmt("stages:\n"
                     "  - name: read\n"
                     "    plugin: file_source\n"
                     "    config: {path: %s}\n"
                     "  - name: check\n"
                     "    plugin: %s\n"
                     "    workers: 2\n"
                     "    config: {fail_when: bad}\n"
                     "    retry: {max_attempts: 2, backoff_ms: 0, "
                     "max_backoff_ms: 0}\n"
                     "    dead_letter: {stage: errors}\n"
                     "  - name: ok\n"
                     "    plugin: %s\n"
                     "    config: {path: %s}\n"
                     "  - name: errors\n"
                     "    plugin: file_sink\n"
                     "    config: {path: %s}\n",
                     in, MISBEHAVE_SO, CHECKSUM_SO, good, errs);
    sl_topology_t *t = sl_test_topology("dl.yaml", sl_test_dir(), yaml);
    size_t ierr = sl_test_stage_index(t, "errors");
    size_t icheck = sl_test_stage_index(t, "check");
    cr_expect_eq(t->stages[icheck].dl_stage, (long)ierr);
    cr_expect_eq(t->stages[ierr].n_inputs, 1, "errors takes only dead letters");
    sl_run_t *run = sl_test_run_to_end(t);
    sl_stage_stats_t check, ok, er;
    stats_of(run, t, "check", &check);
    stats_of(run, t, "ok", &ok);
    stats_of(run, t, "errors", &er);
    unsigned bad = (n + every - 1) / every;
    cr_expect_eq(check.in, n);
    cr_expect_eq(check.errors, bad);
    cr_expect_eq(check.retried, bad, "retried %" PRIu64, check.retried);
    cr_expect_eq(check.out, n - bad);
    cr_expect_eq(ok.in, n - bad);
    cr_expect_eq(er.in, bad, "errors got %" PRIu64 ", want %u", er.in, bad);
    sl_run_totals_t tot;
    sl__run_totals(run, &tot);
    cr_expect_eq(tot.read, n);
    cr_expect_eq(tot.dead_lettered, bad);
    cr_expect_eq(tot.lost, 0);
    sl__run_destroy(&run);
    expect_dead_letters(errs, n, every, "check", 2);
    sl_test_sums_t sums;
    sl_test_read_sums(good, &sums);
    cr_expect_eq(sums.count, n - bad);
    sl__topology_destroy(&t);
    free(yaml);
    free(in);
    free(good);
    free(errs);
}

/* Half the records fail into a dead-letter stage that takes 1 ms each
 * behind a queue of 4: the producer waits for it (the run cannot be
 * faster than the dead-letter path) and nothing is lost. */
Test(routing, slow_dead_letter_stage_gets_everything, .timeout = 60)
{
    const unsigned n = 1000, every = 2;
    char *in = write_input(n, every);
    char *errs = path_in("errors.jsonl");
    char *yaml = fmt("defaults: {batch: 32}\n"
                     "stages:\n"
                     "  - name: read\n"
                     "    plugin: file_source\n"
                     "    config: {path: %s}\n"
                     "  - name: check\n"
                     "    plugin: %s\n"
                     "    config: {fail_when: bad}\n"
                     "    retry: {max_attempts: 1}\n"
                     "    dead_letter: {stage: slow_dl}\n"
                     "  - name: ok\n"
                     "    plugin: \"null\"\n"
                     "  - name: slow_dl\n"
                     "    plugin: delay\n"
                     "    queue: 4\n"
                     "    config: {ms: 1}\n"
                     "  - name: errors\n"
                     "    plugin: file_sink\n"
                     "    config: {path: %s}\n",
                     in, MISBEHAVE_SO, errs);
    sl_topology_t *t = sl_test_topology("dlslow.yaml", sl_test_dir(), yaml);
    double t0 = sl_test_now();
    sl_run_t *run = sl_test_run_to_end(t);
    double took = sl_test_now() - t0;
    sl_stage_stats_t check, dl, er;
    stats_of(run, t, "check", &check);
    stats_of(run, t, "slow_dl", &dl);
    stats_of(run, t, "errors", &er);
    cr_expect_eq(check.errors, n / every);
    cr_expect_eq(dl.in, n / every);
    cr_expect_eq(er.in, n / every);
    cr_expect_leq(dl.held_max, 4, "slow_dl held %u > its queue", dl.held_max);
    sl_run_totals_t tot;
    sl__run_totals(run, &tot);
    cr_expect_eq(tot.dead_lettered, n / every);
    cr_expect_eq(tot.shed, 0);
    cr_expect_eq(tot.spilled, 0);
    cr_expect_eq(tot.lost, 0);
    sl__run_destroy(&run);
    cr_expect_geq(took, n / every * 1e-3, "%.2f s: dead letters did not wait "
                  "for the slow stage", took);
    expect_dead_letters(errs, n, every, "check", 1);
    sl__topology_destroy(&t);
    free(yaml);
    free(in);
    free(errs);
}

/* ---- 4. fan-out isolation ------------------------------------------------ */

#define FAN_N 20000u
#define FAN_MS 1 /* per record in the slow branch */

typedef struct fan_obs {
    double fast_done;   /* s from start until the fast sink finished */
    uint64_t slow_in_then; /* what the slow branch had taken by then */
    double took;
} fan_obs_t;

/* Runs t to the end, noting when the fast branch finished. */
static sl_run_t *fan_run(const sl_topology_t *t, fan_obs_t *obs)
{
    size_t fast = sl_test_stage_index(t, "fast");
    size_t slow = sl_test_stage_index(t, "slow");
    double t0 = sl_test_now();
    sl_run_t *run = sl_test_run_start(t);
    obs->fast_done = -1;
    while (sl_test_now() - t0 < 50) {
        sl_stage_stats_t f, s;
        sl__run_stats(run, slow, &s);
        sl__run_stats(run, fast, &f);
        if (f.finished) {
            obs->fast_done = sl_test_now() - t0;
            obs->slow_in_then = s.in;
            break;
        }
        nap_ms(2);
    }
    cr_assert_geq(obs->fast_done, 0, "the fast branch never finished");
    cr_assert_eq(sl__run_wait(run), 0, "the run did not end cleanly");
    obs->took = sl_test_now() - t0;
    sl_test_expect_ledger(run);
    return run;
}

/* The slow branch ends in checksum_sink writing to sums. */
static char *fan_yaml(const char *slow_keys, const char *top, const char *sums)
{
    return fmt("%s"
               "defaults: {batch: 64}\n"
               "stages:\n"
               "  - name: gen\n"
               "    plugin: generator\n"
               "    config: {count: %u}\n"
               "  - name: fast\n"
               "    plugin: \"null\"\n"
               "    from: gen\n"
               "  - name: slow\n"
               "    plugin: delay\n"
               "    from: gen\n"
               "    queue: 8\n"
               "    config: {ms: %d}\n"
               "%s"
               "  - name: slow_sink\n"
               "    plugin: %s\n"
               "    config: {path: %s}\n",
               top, FAN_N, FAN_MS, slow_keys, CHECKSUM_SO, sums);
}

/* The slow branch's copies are shed when it is full; checks the counts
 * and that `file` holds exactly the shed records, for stage 'slow': with
 * what reached the slow branch's sink (`sums`), every id once. */
static void expect_shed(const sl_topology_t *t, sl_run_t *run,
                        const fan_obs_t *obs, const char *file,
                        const char *sums, const char *mode)
{
    sl_stage_stats_t gen, fast, slow;
    stats_of(run, t, "gen", &gen);
    stats_of(run, t, "fast", &fast);
    stats_of(run, t, "slow", &slow);
    sl_run_totals_t tot;
    sl__run_totals(run, &tot);
    cr_log_info("when_full %s: fast done %.2f s (slow had %" PRIu64 "), end "
                "%.2f s, slow got %" PRIu64 ", shed %" PRIu64, mode,
                obs->fast_done, obs->slow_in_then, obs->took, slow.in,
                gen.shed);
    cr_expect_eq(gen.out, FAN_N);
    cr_expect_eq(fast.in, FAN_N, "the fast branch got %" PRIu64, fast.in);
    cr_expect_gt(gen.shed, 0, "nothing was shed");
    cr_expect_gt(slow.in, 0, "the slow branch got nothing");
    cr_expect_eq(slow.in + gen.shed, FAN_N, "slow %" PRIu64 " + shed %" PRIu64
                 " != %u", slow.in, gen.shed, FAN_N);
    cr_expect_eq(tot.shed, gen.shed);
    cr_expect_eq(tot.lost, 0);
    /* The slow branch alone would need FAN_N * FAN_MS ms. */
    double slow_alone = FAN_N * FAN_MS / 1e3;
    cr_expect_lt(obs->took, slow_alone / 4, "%.2f s: the run waited for the "
                 "slow branch (%.1f s alone)", obs->took, slow_alone);
    cr_expect_lt(obs->slow_in_then, FAN_N / 2, "the fast branch finished "
                 "only after the slow one took %" PRIu64, obs->slow_in_then);
    uint64_t shed = gen.shed;
    sl__run_destroy(&run); /* closes the spill file */
    long lines = sl_test_count_lines(file);
    cr_expect_eq(lines, (long)shed, "%s holds %ld entries, shed %" PRIu64,
                 file, lines, shed);
    char *text = sl_test_read_file(file, NULL);
    cr_assert_not_null(text);
    char why[96];
    snprintf(why, sizeof(why), "stage 'slow' was full (when_full: %s)", mode);
    sl_test_sums_t got, want;
    sl_test_read_sums(sums, &got);
    cr_expect_eq(got.count, slow.in);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        uint64_t id;
        cr_assert_eq(sscanf(line, "{\"stage\":\"slow\",\"id\":%" SCNu64 ",",
                            &id), 1, "not a shed entry of 'slow': %s", line);
        cr_expect(strstr(line, why) != NULL, "no '%s' in %s", why, line);
        got.count++;
        got.sum += id;
        got.xor_ ^= id;
    }
    free(text);
    sl_test_expected_ids(0, FAN_N, NULL, &want);
    sl_test_expect_ids(&got, &want);
}

Test(routing, when_full_spill_keeps_the_fast_branch_moving, .timeout = 60)
{
    char *spill = path_in("spill.jsonl"), *sums = path_in("sums.txt");
    char *top = fmt("spill: %s\n", spill);
    char *yaml = fan_yaml("    when_full: spill\n", top, sums);
    sl_topology_t *t = sl_test_topology("fan.yaml", sl_test_dir(), yaml);
    fan_obs_t obs;
    sl_run_t *run = fan_run(t, &obs);
    expect_shed(t, run, &obs, spill, sums, "spill");
    free(sums);
    sl__topology_destroy(&t);
    free(yaml);
    free(top);
    free(spill);
}

Test(routing, when_full_dead_letter_keeps_the_fast_branch_moving,
     .timeout = 60)
{
    char *dl = path_in("slow.dl.jsonl");
    char *spill = path_in("spill.jsonl");
    char *top = fmt("spill: %s\n", spill);
    char *keys = fmt("    when_full: dead_letter\n"
                     "    dead_letter: %s\n", dl);
    char *sums = path_in("sums.txt");
    char *yaml = fan_yaml(keys, top, sums);
    sl_topology_t *t = sl_test_topology("fan.yaml", sl_test_dir(), yaml);
    fan_obs_t obs;
    sl_run_t *run = fan_run(t, &obs);
    expect_shed(t, run, &obs, dl, sums, "dead_letter");
    free(sums);
    struct stat sb;
    cr_expect(stat(spill, &sb) != 0, "the spill file was written too");
    sl__topology_destroy(&t);
    free(yaml);
    free(keys);
    free(top);
    free(spill);
    free(dl);
}

/* The default: the broadcast waits for the slow branch, so the fast one
 * cannot finish before the slow one has taken (nearly) everything. */
#define BLOCK_N 750u

Test(routing, when_full_block_holds_the_fast_branch_back, .timeout = 60)
{
    char *yaml = fmt("defaults: {batch: 64}\n"
                     "stages:\n"
                     "  - name: gen\n"
                     "    plugin: generator\n"
                     "    config: {count: %u}\n"
                     "  - name: fast\n"
                     "    plugin: \"null\"\n"
                     "    from: gen\n"
                     "  - name: slow\n"
                     "    plugin: delay\n"
                     "    from: gen\n"
                     "    queue: 8\n"
                     "    when_full: block\n"
                     "    config: {ms: %d}\n"
                     "  - name: slow_sink\n"
                     "    plugin: \"null\"\n",
                     BLOCK_N, FAN_MS);
    sl_topology_t *t = sl_test_topology("block.yaml", sl_test_dir(), yaml);
    fan_obs_t obs;
    sl_run_t *run = fan_run(t, &obs);
    sl_stage_stats_t gen, fast, slow;
    stats_of(run, t, "gen", &gen);
    stats_of(run, t, "fast", &fast);
    stats_of(run, t, "slow", &slow);
    cr_log_info("when_full block: fast done %.2f s (slow had %" PRIu64
                "), end %.2f s", obs.fast_done, obs.slow_in_then, obs.took);
    cr_expect_eq(fast.in, BLOCK_N);
    cr_expect_eq(slow.in, BLOCK_N);
    cr_expect_eq(gen.shed, 0);
    /* The fast branch's last record could only leave once the slow branch
     * had credit for it: all but at most a queue's worth was taken. */
    cr_expect_geq(obs.slow_in_then + 8, BLOCK_N, "fast finished when slow "
                  "had taken only %" PRIu64, obs.slow_in_then);
    cr_expect_geq(obs.fast_done, (BLOCK_N - 8) * FAN_MS / 1e3,
                  "fast finished after %.2f s, before the slow branch could "
                  "have taken its records", obs.fast_done);
    sl__run_destroy(&run);
    sl__topology_destroy(&t);
    free(yaml);
}

/* ---- 5. errors ----------------------------------------------------------- */

/* Parses yaml as t.yaml in the test's folder; expects it refused with
 * exactly these lines (in any order, but each present, and no others). */
static void refused(const char *yaml, const char *const *want)
{
    sl_diag_t diag;
    sl__diag_init(&diag);
    sl_topology_t *t = sl__topology_parse("t.yaml", sl_test_dir(), yaml,
                                          &diag);
    cr_expect_null(t, "accepted:\n%s", yaml);
    if (t)
        sl__topology_destroy(&t);
    size_t n = 0;
    for (; want[n]; n++)
        sl_test_expect_line(&diag, want[n]);
    cr_expect_eq(diag.count, n, "%zu lines, want %zu:\n%s", diag.count, n,
                 sl_test_diag_text(&diag));
    sl__diag_fini(&diag);
}

Test(routing, errors_resources_and_uses, .timeout = 30)
{
    refused("resources: {db: 0, api: x}\n"
            "stages:\n"
            "  - name: g\n"
            "    plugin: generator\n"
            "    config: {count: 1}\n"
            "  - name: f\n"
            "    plugin: fields\n"
            "    uses: [dbb, api]\n"
            "    config: {set: {x: 1}}\n"
            "  - name: s\n"
            "    plugin: \"null\"\n"
            "    uses: {db: 1}\n",
            (const char *const[]){
                "t.yaml:1:17: resource 'db': the limit must be an integer "
                "from 1 to 1000000 (handler calls at once), got integer '0'",
                "t.yaml:1:25: resource 'api': the limit must be an integer "
                "from 1 to 1000000 (handler calls at once), got string 'x'",
                "t.yaml:8:12: stage 'f': 'uses' names unknown resource 'dbb' "
                "(the topology declares none: add 'resources: {NAME: LIMIT}' "
                "at the top level)",
                "t.yaml:8:17: stage 'f': 'uses' names unknown resource 'api' "
                "(the topology declares none: add 'resources: {NAME: LIMIT}' "
                "at the top level)",
                "t.yaml:12:11: stage 's': 'uses' names resources declared "
                "under 'resources', got a map",
                NULL});
    refused("resources: {db: 2, api: 1}\n"
            "stages:\n"
            "  - name: g\n"
            "    plugin: generator\n"
            "    config: {count: 1}\n"
            "  - name: s\n"
            "    plugin: \"null\"\n"
            "    uses: [dbb, db, db]\n",
            (const char *const[]){
                "t.yaml:8:12: stage 's': 'uses' names unknown resource 'dbb'; "
                "did you mean 'db'?",
                "t.yaml:8:21: stage 's': resource 'db' is listed twice in "
                "'uses'",
                NULL});
}

Test(routing, errors_when_full, .timeout = 30)
{
    refused("stages:\n"
            "  - name: g\n"
            "    plugin: generator\n"
            "    config: {count: 1}\n"
            "    when_full: spill\n"
            "  - name: a\n"
            "    plugin: \"null\"\n"
            "    from: g\n"
            "    when_full: spil\n"
            "  - name: b\n"
            "    plugin: \"null\"\n"
            "    from: g\n"
            "    when_full: dead_letter\n",
            (const char *const[]){
                "t.yaml:9:16: stage 'a': 'when_full' must be 'block', 'spill' "
                "or 'dead_letter', got string 'spil'; did you mean 'spill'?",
                "t.yaml:5:16: stage 'g' is a source: it has no inputs, so "
                "'when_full' does not apply",
                "t.yaml:13:16: stage 'b': 'when_full: dead_letter' needs a "
                "dead-letter file on this stage ('dead_letter: PATH')",
                NULL});
}

Test(routing, errors_priority, .timeout = 30)
{
    refused("stages:\n"
            "  - name: g\n"
            "    plugin: generator\n"
            "    config: {count: 1}\n"
            "    priority: 8\n"
            "  - name: a\n"
            "    plugin: fields\n"
            "    config: {set: {x: 1}}\n"
            "    priority: {field: level, values: [error, info]}\n"
            "  - name: b\n"
            "    plugin: fields\n"
            "    config: {set: {x: 1}}\n"
            "    priority: {field: level, values: {error: -1}, default: 9}\n"
            "  - name: c\n"
            "    plugin: fields\n"
            "    config: {set: {x: 1}}\n"
            "    priority: {values: {error: 0}, dflt: 1}\n"
            "  - name: s\n"
            "    plugin: \"null\"\n",
            (const char *const[]){
                "t.yaml:5:15: stage 'g': 'priority' must be a priority from 0 "
                "(highest) to 7, got integer '8'",
                "t.yaml:9:38: stage 'a': 'priority.values' must map field "
                "values to priorities, such as {error: 0, info: 2}, got a "
                "sequence",
                "t.yaml:13:60: stage 'b': 'priority.default' must be a "
                "priority from 0 (highest) to 7, got integer '9'",
                "t.yaml:17:36: unknown key 'dflt' in 'priority' of stage 'c'",
                "t.yaml:17:15: stage 'c': 'priority.field' must be a dotted "
                "field path such as 'level', got nothing",
                NULL});
}

Test(routing, errors_dead_letter_stage, .timeout = 30)
{
    refused("stages:\n"
            "  - name: g\n"
            "    plugin: generator\n"
            "    config: {count: 1}\n"
            "  - name: a\n"
            "    plugin: fields\n"
            "    config: {set: {x: 1}}\n"
            "    dead_letter: {stage: nope}\n"
            "  - name: b\n"
            "    plugin: fields\n"
            "    config: {set: {x: 1}}\n"
            "    dead_letter: {stage: b}\n"
            "  - name: c\n"
            "    plugin: fields\n"
            "    config: {set: {x: 1}}\n"
            "    dead_letter: {stage: g}\n"
            "  - name: d\n"
            "    plugin: fields\n"
            "    config: {set: {x: 1}}\n"
            "    dead_letter: {stage: s, path: y.jsonl}\n"
            "  - name: e\n"
            "    plugin: fields\n"
            "    config: {set: {x: 1}}\n"
            "    dead_letter: {stage: s}\n"
            "  - name: s\n"
            "    plugin: \"null\"\n"
            "    from: e\n",
            (const char *const[]){
                "t.yaml:8:26: stage 'a': 'dead_letter.stage' names unknown "
                "stage 'nope'",
                "t.yaml:12:26: stage 'b': a stage cannot be its own "
                "dead-letter target",
                "t.yaml:16:26: stage 'c': dead-letter target 'g' is a source "
                "and takes no input",
                "t.yaml:20:35: stage 'd': 'dead_letter' takes either 'stage' "
                "or 'path' (with 'format'), not both",
                "t.yaml:24:26: stage 'e': 's' is already an output of this "
                "stage; route dead letters to a stage of their own",
                NULL});
}

Test(routing, errors_run_keys, .timeout = 30)
{
    char *state = fmt("t.yaml:2:12: top level: state_dir '%s/no/such/state': "
                      "directory '%s/no/such' does not exist", sl_test_dir(),
                      sl_test_dir());
    refused("grace: 5 s\n"
            "state_dir: no/such/state\n"
            "stages:\n"
            "  - name: g\n"
            "    plugin: generator\n"
            "    config: {count: 1}\n"
            "  - name: s\n"
            "    plugin: \"null\"\n",
            (const char *const[]){
                "t.yaml:1:8: top level: 'grace' must be a duration such as "
                "500ms, 2s or 1m (a bare number is milliseconds), got "
                "string '5 s'",
                state, NULL});
    free(state);
    refused("grace: 0\n"
            "stages:\n"
            "  - name: g\n"
            "    plugin: generator\n"
            "    config: {count: 1}\n"
            "  - name: s\n"
            "    plugin: \"null\"\n",
            (const char *const[]){
                "t.yaml:1:8: top level: 'grace' must be from 1ms to 24h, "
                "got integer '0'",
                NULL});
}
