/* Bad input is answered, not crashed on: each kind of bad topology, bad
 * data and buggy plugin, through the real CLI (and the harness where a
 * plugin's own view is needed), with the exact message, naming the file,
 * line and field, and the exact counts of records delivered and
 * dead-lettered where the run goes on. docs/reliability.md ("Bad input")
 * lists the cases and points here. */
#include <criterion/criterion.h>

#include "harness.h"
#include "testutil.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PLUGINS SL_TEST_BINARY_DIR "/tests/plugins"

static void s_setup(void)
{
    sl_test_tmpdir_setup();
    /* The test plugins (garbage, garbage_source, garbage_sink) by name. */
    cr_assert_eq(setenv("SLUICE_PLUGIN_PATH", PLUGINS, 1), 0);
}

TestSuite(bad_input, .init = s_setup, .fini = sl_test_tmpdir_teardown);

/* ---- helpers ------------------------------------------------------------- */

static const char *s_path(const char *name)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf), "%s/%s", sl_test_dir(), name);
    return buf;
}

static void s_write_bin(const char *name, const void *data, size_t len)
{
    FILE *f = fopen(s_path(name), "wb");
    cr_assert_not_null(f, "%s", s_path(name));
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

static void s_write(const char *name, const char *text)
{
    s_write_bin(name, text, strlen(text));
}

/* Runs `sluice ARGS` in the test's folder; returns the exit code, stdout
 * and stderr in *log. */
static int s_cli(const char *args, char **log)
{
    char *cmd = NULL;
    cr_assert_gt(asprintf(&cmd, "cd '%s' && '%s' %s 2>&1", sl_test_dir(),
                          sl_test_cli(), args),
                 0);
    int code = sl_test_run(cmd, log);
    cr_assert_not_null(*log);
    free(cmd);
    return code;
}

static int s_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The lines of text, sorted, joined again: runs may finish records in
 * any order, the set is what counts. */
static char *s_sorted(const char *text)
{
    size_t n = 0, cap = 16;
    char **v = malloc(cap * sizeof(*v));
    char *copy = strdup(text), *save = NULL;
    for (char *l = strtok_r(copy, "\n", &save); l;
         l = strtok_r(NULL, "\n", &save)) {
        if (n == cap)
            v = realloc(v, (cap *= 2) * sizeof(*v));
        v[n++] = l;
    }
    qsort(v, n, sizeof(*v), s_cmp);
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(v[i]) + 1;
    char *out = malloc(len), *w = out;
    *w = '\0';
    for (size_t i = 0; i < n; i++)
        w += sprintf(w, "%s\n", v[i]);
    free(copy);
    free(v);
    return out;
}

/* A file's lines must be want's lines, in any order. */
static void s_expect_lines(const char *name, const char *want)
{
    char *text = sl_test_read_file(s_path(name), NULL);
    cr_assert_not_null(text, "no file %s", name);
    char *got = s_sorted(text), *exp = s_sorted(want);
    cr_expect_str_eq(got, exp, "%s:\n%s\nwant (sorted):\n%s", name, got, exp);
    free(got);
    free(exp);
    free(text);
}

/* The entries of a JSON-lines dead-letter file, each shortened to
 * "attempts=N " and the entry from its "error" key on (the stable part:
 * ids and times change), in any order. */
static void s_expect_dead(const char *name, const char *want)
{
    char *text = sl_test_read_file(s_path(name), NULL);
    cr_assert_not_null(text, "no dead-letter file %s", name);
    size_t cap = strlen(text) + 1;
    char *short_ = malloc(cap), *w = short_;
    *w = '\0';
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l;
         l = strtok_r(NULL, "\n", &save)) {
        const char *a = strstr(l, "\"attempts\":");
        const char *e = strstr(l, ",\"error\":");
        cr_assert(a && e, "not a dead-letter entry: %s", l);
        w += sprintf(w, "attempts=%ld %s\n", strtol(a + 11, NULL, 10),
                     e + 1);
    }
    char *got = s_sorted(short_), *exp = s_sorted(want);
    cr_expect_str_eq(got, exp, "%s:\n%s\nwant (sorted):\n%s", name, got, exp);
    free(got);
    free(exp);
    free(short_);
    free(text);
}

/* The row of a transform or sink in the run's summary. */
static void s_expect_row(const char *log, const char *stage, uint64_t in,
                         uint64_t out, uint64_t filtered, uint64_t dead)
{
    unsigned workers;
    uint64_t i, o, f, d;
    sl_test_summary_row(log, stage, &workers, &i, &o, &f, &d);
    cr_expect(i == in && o == out && f == filtered && d == dead,
              "stage '%s': in %" PRIu64 " out %" PRIu64 " filtered %" PRIu64
              " dead %" PRIu64 ", want %" PRIu64 " %" PRIu64 " %" PRIu64
              " %" PRIu64 ":\n%s",
              stage, i, o, f, d, in, out, filtered, dead, log);
}

static void s_expect_in_log(const char *log, const char *want)
{
    cr_expect_not_null(strstr(log, want), "'%s' not in:\n%s", want, log);
}

/* ---- a plugin returning garbage ------------------------------------------ */

/* What the garbage plugin gets back from each misuse of the emit calls
 * (reported in its {"do","rc"} records), and where each bad record ends:
 * the host refuses what it can check at emit time; bytes it cannot check
 * there (a map header followed by garbage) are refused by the next stage
 * that decodes them, dead-lettered there byte for byte; failures keep no
 * output; undefined status codes from process() are read by their
 * sign. */
Test(bad_input, plugin_garbage_is_answered_call_by_call, .timeout = 60)
{
    s_write("in.jsonl",
            "{\"i\":1}\n"
            "{\"i\":2,\"do\":\"nonmap_raw\"}\n"
            "{\"i\":3,\"do\":\"empty_raw\"}\n"
            "{\"i\":4,\"do\":\"bad_byte\"}\n"
            "{\"i\":5,\"do\":\"truncated\"}\n"
            "{\"i\":6,\"do\":\"two_maps\"}\n"
            "{\"i\":7,\"do\":\"deep\"}\n"
            "{\"i\":8,\"do\":\"begin_nonmap\"}\n"
            "{\"i\":9,\"do\":\"begin_no_commit\"}\n"
            "{\"i\":10,\"do\":\"begin_twice\"}\n"
            "{\"i\":11,\"do\":\"begin_two_maps\"}\n"
            "{\"i\":12,\"do\":\"commit_alone\"}\n"
            "{\"i\":13,\"do\":\"object_nonmap\"}\n"
            "{\"i\":14,\"do\":\"fail_then_emit\"}\n"
            "{\"i\":15,\"do\":\"fail_return_ok\"}\n"
            "{\"i\":16,\"do\":\"status_positive\"}\n"
            "{\"i\":17,\"do\":\"status_eof\"}\n"
            "{\"i\":18,\"do\":\"status_unknown\"}\n"
            "{\"i\":19,\"do\":\"long_error\"}\n"
            "{\"i\":20,\"do\":\"binary_error\"}\n"
            "{\"i\":21,\"do\":\"priority_255\"}\n"
            "{\"i\":22}\n");
    s_write("t.yaml",
            "stages:\n"
            "  - name: src\n"
            "    plugin: file_source\n"
            "    config: {path: in.jsonl}\n"
            "  - name: gb\n"
            "    plugin: garbage\n"
            "    retry: {max_attempts: 2, backoff_ms: 1}\n"
            "    dead_letter: gb.dl.jsonl\n"
            "  - name: chk\n"
            "    plugin: filter\n"
            "    config: {expr: 'true'}\n"
            "    dead_letter: chk.dl.jsonl\n"
            "  - name: out\n"
            "    plugin: file_sink\n"
            "    config: {path: out.jsonl}\n");
    char *log = NULL;
    int code = s_cli("run t.yaml", &log);
    cr_assert_eq(code, 0, "exit %d:\n%s", code, log);

    /* -74 is -EBADMSG (not a map), -22 -EINVAL (nothing begun, or not a
     * map object). */
    s_expect_lines("out.jsonl",
                   "{\"i\":1}\n"
                   "{\"do\":\"nonmap_raw\",\"rc\":-74}\n"
                   "{\"do\":\"empty_raw\",\"rc\":-74}\n"
                   "{\"do\":\"bad_byte\",\"rc\":0}\n"
                   "{\"do\":\"truncated\",\"rc\":0}\n"
                   "{\"do\":\"two_maps\",\"rc\":0}\n"
                   "{\"do\":\"begin_nonmap\",\"rc\":-74}\n"
                   "{\"a\":1}\n"
                   "{\"do\":\"begin_twice\",\"rc\":0}\n"
                   "{\"do\":\"begin_two_maps\",\"rc\":0}\n"
                   "{\"i\":12,\"do\":\"commit_alone\"}\n"
                   "{\"do\":\"commit_alone\",\"rc\":-22}\n"
                   "{\"do\":\"object_nonmap\",\"rc\":-22}\n"
                   "{\"i\":15,\"do\":\"fail_return_ok\"}\n"
                   "{\"i\":16,\"do\":\"status_positive\"}\n"
                   "{\"i\":21,\"do\":\"priority_255\"}\n"
                   "{\"i\":22}\n");

    /* The plugin's own failures: kept with their message (cut to 511
     * bytes; bytes that are not UTF-8 become U+FFFD), the output of a
     * failed call dropped; a negative code without a message is retried,
     * then named by its errno text, or as an unknown code when it is not
     * an errno. An output nested past limits.max_depth
     * fails its input record for good, whatever the handler returned. */
    char long_e[512];
    memset(long_e, 'e', 511);
    long_e[511] = '\0';
    char want_gb[2048];
    snprintf(want_gb, sizeof(want_gb),
             "attempts=1 \"error\":\"failed on purpose, then emitted\","
             "\"record\":{\"i\":14,\"do\":\"fail_then_emit\"}}\n"
             "attempts=1 \"error\":\"stage 'gb': output record nested "
             "deeper than limits.max_depth (32)\","
             "\"record\":{\"i\":7,\"do\":\"deep\"}}\n"
             "attempts=2 \"error\":\"unknown error code -99999\","
             "\"record\":{\"i\":18,\"do\":\"status_unknown\"}}\n"
             "attempts=1 \"error\":\"%s\","
             "\"record\":{\"i\":19,\"do\":\"long_error\"}}\n"
             "attempts=1 \"error\":\"bad bytes \xef\xbf\xbd\xef\xbf\xbd"
             "\xef\xbf\xbd end\","
             "\"record\":{\"i\":20,\"do\":\"binary_error\"}}\n",
             long_e);
    s_expect_dead("gb.dl.jsonl", want_gb);

    /* The bytes that passed the emit-time check: refused by the first
     * stage that decodes them, for good (no retry), kept byte for byte. */
    const char *want_chk =
        "attempts=1 \"error\":\"record is not a msgpack map\","
        "\"record_msgpack_b64\":\"gaFrwQ==\"}\n"
        "attempts=1 \"error\":\"record is not a msgpack map\","
        "\"record_msgpack_b64\":\"gqFhAQ==\"}\n"
        "attempts=1 \"error\":\"record is not a msgpack map\","
        "\"record_msgpack_b64\":\"gaFhAYGhYgI=\"}\n"
        "attempts=1 \"error\":\"record is not a msgpack map\","
        "\"record_msgpack_b64\":\"gaFhAYGhYgI=\"}\n";
    s_expect_dead("chk.dl.jsonl", want_chk);

    /* gb: 22 in; begin_no_commit and status_eof emit nothing (filtered);
     * 5 dead; 17 good + 4 bad records out. */
    s_expect_row(log, "gb", 22, 21, 2, 5);
    s_expect_row(log, "chk", 21, 17, 0, 4);
    s_expect_row(log, "out", 17, 0, 0, 0);
    s_expect_in_log(log, "records: 22 read, 17 delivered, 2 filtered, "
                         "9 dead-lettered, 0 spilled, 0 shed");
    s_expect_in_log(log, "ledger balanced");
    free(log);
}

/* A 5-byte record whose map header claims 2^32-1 pairs. Only the header
 * byte is checked at emit; the next stage's sl_record_map() must find the
 * bytes missing without allocating for what the header claims (some
 * 256 GB, which AddressSanitizer would abort on), and dead-letter it. */
Test(bad_input, plugin_garbage_map_header_claiming_4g_pairs, .timeout = 60)
{
    s_write("in.jsonl", "{\"i\":1}\n{\"i\":2,\"do\":\"huge_header\"}\n"
                        "{\"i\":3}\n");
    s_write("t.yaml",
            "stages:\n"
            "  - name: src\n"
            "    plugin: file_source\n"
            "    config: {path: in.jsonl}\n"
            "  - name: gb\n"
            "    plugin: garbage\n"
            "    config: {report: false}\n"
            "  - name: chk\n"
            "    plugin: filter\n"
            "    config: {expr: 'true'}\n"
            "    dead_letter: chk.dl.jsonl\n"
            "  - name: out\n"
            "    plugin: file_sink\n"
            "    config: {path: out.jsonl}\n");
    char *log = NULL;
    int code = s_cli("run t.yaml", &log);
    cr_assert_eq(code, 0, "exit %d:\n%s", code, log);
    s_expect_lines("out.jsonl", "{\"i\":1}\n{\"i\":3}\n");
    s_expect_dead("chk.dl.jsonl",
                  "attempts=1 \"error\":\"record is not a msgpack map\","
                  "\"record_msgpack_b64\":\"3/////8=\"}\n");
    s_expect_row(log, "chk", 3, 2, 0, 1);
    free(log);
}

/* INT_MIN from every callback that returns a code. It cannot be negated
 * (undefined behaviour, which UBSan stops the process on): the host names
 * it without negating it, in a thread lane and in a process lane. */
Test(bad_input, plugin_returning_int_min, .timeout = 60)
{
    static const char *const lanes[] = {"thread", "process"};
    s_write("in.jsonl", "{\"i\":1,\"do\":\"status_min\"}\n{\"i\":2}\n");
    for (size_t l = 0; l < 2; l++) {
        char yaml[1024];
        snprintf(yaml, sizeof(yaml),
                 "stages:\n"
                 "  - name: src\n"
                 "    plugin: file_source\n"
                 "    config: {path: in.jsonl}\n"
                 "  - name: gb\n"
                 "    plugin: garbage\n"
                 "    lane: %s\n"
                 "    retry: {max_attempts: 1}\n"
                 "    dead_letter: gb.dl.jsonl\n"
                 "  - name: out\n"
                 "    plugin: file_sink\n"
                 "    config: {path: out.jsonl}\n",
                 lanes[l]);
        s_write("t.yaml", yaml);
        unlink(s_path("gb.dl.jsonl"));
        char *log = NULL;
        int code = s_cli("run t.yaml", &log);
        cr_assert_eq(code, 0, "lane %s: exit %d:\n%s", lanes[l], code, log);
        s_expect_lines("out.jsonl", "{\"i\":2}\n");
        s_expect_dead("gb.dl.jsonl",
                      "attempts=1 \"error\":\"unknown error code "
                      "-2147483648\","
                      "\"record\":{\"i\":1,\"do\":\"status_min\"}}\n");
        free(log);
    }

    static const char *const topo =
        "stages:\n"
        "  - name: src\n"
        "    plugin: %s\n"
        "    config: {%s}\n"
        "  - name: gb\n"
        "    plugin: garbage\n"
        "    config: {%s}\n"
        "  - name: out\n"
        "    plugin: file_sink\n"
        "    config: {path: out.jsonl}\n";
    static const struct {
        const char *src, *src_config, *gb_config, *cmd;
        int code;
        const char *want;
    } cases[] = {
        {"file_source", "path: in.jsonl", "validate_rc: -2147483648",
         "check t.yaml", 2,
         "t.yaml:7:13: stage 'gb': plugin 'garbage' rejected its config "
         "(unknown error code -2147483648)\n"},
        {"file_source", "path: in.jsonl", "init_rc: -2147483648",
         "run t.yaml", 1,
         "sluice run: stage 'gb': garbage init failed: unknown error code "
         "-2147483648"},
        {"file_source", "path: in.jsonl", "flush_rc: -2147483648",
         "run t.yaml", 1,
         "stage=gb worker=0 msg=\"flush failed: unknown error code "
         "-2147483648\""},
        {"garbage_source", "count: 2, end_rc: -2147483648", "", "run t.yaml",
         1, "stage=src worker=0 msg=\"source failed: unknown error code "
            "-2147483648\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char yaml[1024];
        snprintf(yaml, sizeof(yaml), topo, cases[i].src, cases[i].src_config,
                 cases[i].gb_config);
        s_write("t.yaml", yaml);
        char *log = NULL;
        int code = s_cli(cases[i].cmd, &log);
        cr_expect_eq(code, cases[i].code, "%s %s: exit %d:\n%s",
                     cases[i].src_config, cases[i].gb_config, code, log);
        s_expect_in_log(log, cases[i].want);
        free(log);
    }
}

/* validate(), init() and flush() returning codes without a message: the
 * host still says which stage and plugin, and what the code means; a
 * positive code from validate() or init() (which the ABI does not define)
 * is said as it is, not read as an errno. */
Test(bad_input, plugin_garbage_codes_from_validate_init_and_flush,
     .timeout = 60)
{
    static const char *const topo =
        "stages:\n"
        "  - name: src\n"
        "    plugin: file_source\n"
        "    config: {path: in.jsonl}\n"
        "  - name: gb\n"
        "    plugin: garbage\n"
        "    config: {%s}\n"
        "  - name: out\n"
        "    plugin: file_sink\n"
        "    config: {path: out.jsonl}\n";
    static const struct {
        const char *config, *cmd;
        int code;
        const char *want;
    } cases[] = {
        {"validate_rc: 5", "check t.yaml", 2,
         "t.yaml:7:13: stage 'gb': plugin 'garbage' rejected its config "
         "(validate returned 5, not 0 or a negative errno code)\n"},
        {"validate_rc: -5", "check t.yaml", 2,
         "t.yaml:7:13: stage 'gb': plugin 'garbage' rejected its config "
         "(Input/output error)\n"},
        {"validate_rc: -99999", "check t.yaml", 2,
         "t.yaml:7:13: stage 'gb': plugin 'garbage' rejected its config "
         "(unknown error code -99999)\n"},
        {"init_rc: -99999", "run t.yaml", 1,
         "sluice run: stage 'gb': garbage init failed: unknown error code "
         "-99999"},
        {"init_rc: 3", "run t.yaml", 1,
         "sluice run: stage 'gb': garbage init failed: init returned 3, not "
         "0 or a negative errno code"},
        {"flush_rc: -5", "run t.yaml", 1,
         "stage=gb worker=0 msg=\"flush failed: Input/output error\""},
        /* A positive flush result is not an error. */
        {"flush_rc: 9", "run t.yaml", 0, "ledger balanced"},
    };
    s_write("in.jsonl", "{\"i\":1}\n{\"i\":2}\n");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char yaml[1024];
        snprintf(yaml, sizeof(yaml), topo, cases[i].config);
        s_write("t.yaml", yaml);
        char *log = NULL;
        int code = s_cli(cases[i].cmd, &log);
        cr_expect_eq(code, cases[i].code, "%s: exit %d:\n%s",
                     cases[i].config, code, log);
        s_expect_in_log(log, cases[i].want);
        free(log);
    }
    /* A failed flush fails the run, after the records it already had. */
    char *out = sl_test_read_file(s_path("out.jsonl"), NULL);
    cr_assert_not_null(out);
    cr_expect_str_eq(out, "{\"i\":1}\n{\"i\":2}\n");
    free(out);
    /* The harness (`sluice test`, stage tests) refuses it the same way. */
    char err[1024];
    sl_harness_t *h = sl_harness_new(PLUGINS "/garbage.so", "validate_rc: 5",
                                     NULL, err, sizeof(err));
    cr_assert_null(h, "a config its validate() refused was accepted");
    cr_expect_str_eq(err, "plugin 'garbage' rejected its config "
                          "(validate returned 5, not 0 or a negative errno "
                          "code)");
}

/* A source that emits past its budget, and non-maps: the host takes
 * exactly the budget per pull and nothing that is not a map. */
Test(bad_input, source_over_budget_and_non_maps)
{
    char err[2048];
    sl_harness_t *h = sl_harness_new(PLUGINS "/garbage_source.so",
                                     "count: 10\nextra: 5\nnonmap: true",
                                     NULL, err, sizeof(err));
    cr_assert_not_null(h, "%s", err);
    cr_assert_eq(sl_harness_pull_all(h, 4, 1), -ETIMEDOUT);
    cr_assert_eq(sl_harness_count(h), 4, "one pull, budget 4");
    cr_assert_eq(sl_harness_pull_all(h, 4, 100), 0);
    cr_assert_eq(sl_harness_count(h), 10);
    for (size_t i = 0; i < 10; i++) {
        char want[32];
        snprintf(want, sizeof(want), "{\"n\":%zu}", i);
        cr_expect_str_eq(sl_harness_output(h, i), want);
    }
    cr_expect_eq(sl_harness_errors(h), 0);
    sl_harness_destroy(&h);
}

/* A source failing with a code that is not an errno: the run fails and
 * says so, and keeps what was read before. */
Test(bad_input, source_failing_with_an_unknown_code, .timeout = 60)
{
    s_write("t.yaml",
            "stages:\n"
            "  - name: src\n"
            "    plugin: garbage_source\n"
            "    config: {count: 5, end_rc: -99999}\n"
            "  - name: out\n"
            "    plugin: file_sink\n"
            "    config: {path: out.jsonl}\n");
    char *log = NULL;
    int code = s_cli("run t.yaml", &log);
    cr_assert_eq(code, 1, "exit %d:\n%s", code, log);
    s_expect_in_log(log, "stage=src worker=0 msg=\"source failed: unknown "
                         "error code -99999\"");
    s_expect_in_log(log, "records: 5 read, 5 delivered, 0 filtered, 0 "
                         "dead-lettered");
    s_expect_lines("out.jsonl", "{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n"
                                "{\"n\":4}\n");
    free(log);
}

/* A source whose pull() returns a positive code that is neither 0 nor
 * SL_EOF: not read as "nothing now" (the source would be pulled again at
 * once, for ever, at full CPU) but as a failure naming the stage and the
 * code, in a run, in `sluice record` and in the harness. */
Test(bad_input, source_returning_an_undefined_positive_code, .timeout = 60)
{
    s_write("t.yaml",
            "stages:\n"
            "  - name: src\n"
            "    plugin: garbage_source\n"
            "    config: {count: 5, end_rc: 2}\n"
            "  - name: out\n"
            "    plugin: file_sink\n"
            "    config: {path: out.jsonl}\n");
    /* The failure mode is a run that never ends: waited for with a bound,
     * in a child that dies with the test. */
    const char *const run[] = {"run", "t.yaml", NULL};
    int code = sl_test_wait_exit(sl_test_spawn_cli("run.log", run), 20);
    char *log = sl_test_read_file(s_path("run.log"), NULL);
    cr_assert_not_null(log);
    cr_assert_eq(code, 1, "exit %d (-1: still running after 20 s):\n%s",
                 code, log);
    s_expect_in_log(log, "stage=src worker=0 msg=\"source failed: pull "
                         "returned 2, not 0, SL_EOF (1) or a negative errno "
                         "code\"");
    s_expect_in_log(log, "records: 5 read, 5 delivered, 0 filtered, 0 "
                         "dead-lettered");
    s_expect_lines("out.jsonl", "{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n"
                                "{\"n\":3}\n{\"n\":4}\n");
    free(log);

    const char *const record[] = {"record", "t.yaml", "--stage", "src",
                                  "-o", "src.trace", NULL};
    code = sl_test_wait_exit(sl_test_spawn_cli("record.log", record), 20);
    log = sl_test_read_file(s_path("record.log"), NULL);
    cr_assert_not_null(log);
    cr_expect_eq(code, 1, "exit %d (-1: still running after 20 s):\n%s",
                 code, log);
    s_expect_in_log(log, "sluice record: stage 'src' failed: pull returned "
                         "2, not 0, SL_EOF (1) or a negative errno code\n");
    free(log);

    char err[2048];
    sl_harness_t *h = sl_harness_new(PLUGINS "/garbage_source.so",
                                     "count: 3\nend_rc: 2", NULL, err,
                                     sizeof(err));
    cr_assert_not_null(h, "%s", err);
    cr_expect_eq(sl_harness_pull_all(h, 2, 100), -EPROTO);
    cr_expect_str_eq(sl_harness_last_error(h), "pull returned 2, not 0, "
                     "SL_EOF (1) or a negative errno code");
    cr_expect_eq(sl_harness_count(h), 3);
    sl_harness_destroy(&h);
}

/* A sink cannot emit: refused with -EPERM, and a packer is never handed
 * out, whatever the sink does with the answer. */
Test(bad_input, sink_that_emits, .timeout = 60)
{
    s_write("in.jsonl", "{\"i\":1}\n{\"i\":2}\n");
    s_write("t.yaml",
            "stages:\n"
            "  - name: src\n"
            "    plugin: file_source\n"
            "    config: {path: in.jsonl}\n"
            "  - name: out\n"
            "    plugin: garbage_sink\n");
    char *log = NULL;
    int code = s_cli("run t.yaml", &log);
    cr_assert_eq(code, 0, "exit %d:\n%s", code, log);
    const char *line = "stage=out worker=0 msg=\"emit from a sink returned "
                       "-1, begin gave NULL\"";
    const char *first = strstr(log, line);
    cr_assert_not_null(first, "%s", log);
    cr_expect_not_null(strstr(first + 1, line), "once per record:\n%s", log);
    s_expect_row(log, "out", 2, 0, 0, 0);
    s_expect_in_log(log, "records: 2 read, 2 delivered");
    free(log);
}

/* ---- bad data ------------------------------------------------------------ */

/* Wrong types, invalid UTF-8, nesting too deep and a line too long in a
 * JSON-lines file: each unit named by file and line (or by field), dead-
 * lettered once, and every good record delivered. */
Test(bad_input, jsonl_wrong_types_utf8_depth_and_size, .timeout = 60)
{
    size_t cap = 2 * 1024 * 1024;
    char *text = malloc(cap), *w = text;
    w += sprintf(w, "{\"n\":\"12\",\"s\":\"ok\"}\n"
                    "{\"n\":\"twelve\"}\n"
                    "{\"n\":[1]}\n"
                    "{\"n\":\"99999999999999999999\"}\n"
                    "{\"n\":\"\xff\xfe\"}\n"
                    "{\"d\":");
    for (int i = 0; i < 32; i++)
        *w++ = '[';
    for (int i = 0; i < 32; i++)
        *w++ = ']';
    w += sprintf(w, "}\n{\"n\":\"7\",\"big\":\"");
    memset(w, 'x', 600000); /* a long string that fits max_line */
    w += 600000;
    w += sprintf(w, "\"}\n{\"big\":\"");
    memset(w, 'y', 1100000); /* one that does not (1 MiB) */
    w += 1100000;
    w += sprintf(w, "\"}\n{\"n\":\"8\"}\n");
    s_write_bin("in.jsonl", text, (size_t)(w - text));
    free(text);
    s_write("t.yaml",
            "stages:\n"
            "  - name: src\n"
            "    plugin: file_source\n"
            "    config: {path: in.jsonl}\n"
            "    dead_letter: src.dl.jsonl\n"
            "  - name: cast\n"
            "    plugin: fields\n"
            "    config: {cast: {n: int}}\n"
            "    dead_letter: cast.dl.jsonl\n"
            "  - name: out\n"
            "    plugin: file_sink\n"
            "    config: {path: out.jsonl, fields: [n, s]}\n");
    char *log = NULL;
    int code = s_cli("run t.yaml", &log);
    cr_assert_eq(code, 0, "exit %d:\n%s", code, log);
    s_expect_lines("out.jsonl", "{\"n\":12,\"s\":\"ok\"}\n{\"n\":7}\n"
                                "{\"n\":8}\n");
    char want[16384]; /* room for every path it names */
    const char *in = s_path("in.jsonl");
    snprintf(want, sizeof(want),
             "attempts=1 \"error\":\"input error: %s:5: invalid JSON: column "
             "7: lexical error: invalid bytes in UTF8 string\","
             "\"record\":null}\n"
             "attempts=1 \"error\":\"input error: %s:6: invalid JSON: column "
             "37: nested deeper than 32 levels\",\"record\":null}\n"
             "attempts=1 \"error\":\"input error: %s:8: line longer than "
             "max_line (1048576 bytes)\",\"record\":null}\n",
             in, in, in);
    s_expect_dead("src.dl.jsonl", want);
    s_expect_dead("cast.dl.jsonl",
                  "attempts=1 \"error\":\"cast n to int: \\\"twelve\\\" is not "
                  "an integer\",\"record\":{\"n\":\"twelve\"}}\n"
                  "attempts=1 \"error\":\"cast n to int: an array is not an "
                  "integer\",\"record\":{\"n\":[1]}}\n"
                  "attempts=1 \"error\":\"cast n to int: "
                  "\\\"99999999999999999999\\\" is out of range\","
                  "\"record\":{\"n\":\"99999999999999999999\"}}\n");
    s_expect_in_log(log, "records: 9 read, 3 delivered, 0 filtered, "
                         "6 dead-lettered");
    s_expect_row(log, "cast", 6, 3, 0, 3);
    free(log);
}

/* A binary file read as lines and fed to json_parse: every line is
 * answered with its file and line, none crashes the parser, and a good
 * line after the garbage still comes through. */
Test(bad_input, binary_file_fed_to_json_parse, .timeout = 60)
{
    static const unsigned char bin[] = {
        0x7f, 'E', 'L', 'F', 0x02, 0x01, 0x01, 0x00, '\n',     /* 1 */
        0x00, 0x00, 0x00, 0x00, 0xff, 0xfe, '\n',              /* 2 */
        '{', '"', 'a', '"', ':', '"', 0xc3, 0x28, '"', '}', '\n', /* 3 */
        '{', '"', 'o', 'k', '"', ':', '1', '}', '\n',          /* 4 */
        0x81, 0xa1, 'k', 0xc1, '\n',                           /* 5 */
    };
    s_write_bin("blob.bin", bin, sizeof(bin));
    s_write("t.yaml",
            "stages:\n"
            "  - name: src\n"
            "    plugin: file_source\n"
            "    config: {path: blob.bin, format: lines, "
            "with_position: true}\n"
            "  - name: parse\n"
            "    plugin: json_parse\n"
            "    dead_letter: parse.dl.jsonl\n"
            "  - name: out\n"
            "    plugin: file_sink\n"
            "    config: {path: out.jsonl, fields: [ok]}\n");
    char *log = NULL;
    int code = s_cli("run t.yaml", &log);
    cr_assert_eq(code, 0, "exit %d:\n%s", code, log);
    s_expect_lines("out.jsonl", "{\"ok\":1}\n");
    s_expect_row(log, "parse", 5, 1, 0, 4);
    s_expect_in_log(log, "records: 5 read, 1 delivered, 0 filtered, "
                         "4 dead-lettered");
    /* The messages lead with FILE:LINE (from with_position). */
    char *dl = sl_test_read_file(s_path("parse.dl.jsonl"), NULL);
    cr_assert_not_null(dl);
    static const struct {
        unsigned line;
        const char *why;
    } bad[] = {
        {1, "field 'line': invalid JSON: line 1 column 1: lexical error: "
            "invalid char in json text"},
        {2, "field 'line': invalid JSON: line 1 column 1: lexical error: "
            "invalid char in json text"},
        {3, "field 'line': invalid JSON: line 1 column 8: lexical error: "
            "invalid bytes in UTF8 string"},
        /* yajl counts a stray continuation byte as column 0. */
        {5, "field 'line': invalid JSON: line 1 column 0: lexical error: "
            "invalid char in json text"},
    };
    for (size_t i = 0; i < 4; i++) {
        char want[4400];
        snprintf(want, sizeof(want), "\"error\":\"%s:%u: %s\"",
                 s_path("blob.bin"), bad[i].line, bad[i].why);
        cr_expect_not_null(strstr(dl, want), "'%s' not in:\n%s", want, dl);
    }
    free(dl);
    free(log);
}

/* CSV rows with missing (or extra) columns and unterminated quotes, in a
 * CSV file and in a field: named by file, line and field; the rows around
 * them go on. */
Test(bad_input, csv_missing_columns_and_unterminated_quotes, .timeout = 60)
{
    s_write("rows.csv", "id,name,city\n"
                        "1,ann,Paris\n"
                        "2,bob\n"
                        "3,cy,Oslo,extra\n"
                        "4,dee,\"Rome\n");
    s_write("lines.txt", "1,ann,Paris\n"
                         "2,bob\n"
                         "3,\"cy,Oslo\n"
                         "4,dee,Rome\n");
    s_write("t.yaml",
            "stages:\n"
            "  - name: csv\n"
            "    plugin: file_source\n"
            "    config: {path: rows.csv}\n"
            "    dead_letter: csv.dl.jsonl\n"
            "  - name: txt\n"
            "    plugin: file_source\n"
            "    config: {path: lines.txt, with_position: true}\n"
            "  - name: split\n"
            "    plugin: csv_parse\n"
            "    from: txt\n"
            "    config: {columns: [id, name, city]}\n"
            "    dead_letter: split.dl.jsonl\n"
            "  - name: out\n"
            "    plugin: file_sink\n"
            "    from: [csv, split]\n"
            "    config: {path: out.jsonl, fields: [id, name, city]}\n");
    char *log = NULL;
    int code = s_cli("run t.yaml", &log);
    cr_assert_eq(code, 0, "exit %d:\n%s", code, log);
    s_expect_lines("out.jsonl",
                   "{\"id\":\"1\",\"name\":\"ann\",\"city\":\"Paris\"}\n"
                   "{\"id\":\"1\",\"name\":\"ann\",\"city\":\"Paris\"}\n"
                   "{\"id\":\"4\",\"name\":\"dee\",\"city\":\"Rome\"}\n");
    char want[16384]; /* room for every path it names */
    const char *rows = s_path("rows.csv");
    snprintf(want, sizeof(want),
             "attempts=1 \"error\":\"input error: %s:3: expected 3 fields, "
             "got 2\",\"record\":null}\n"
             "attempts=1 \"error\":\"input error: %s:4: expected 3 fields, "
             "got 4\",\"record\":null}\n"
             "attempts=1 \"error\":\"input error: %s:5: unterminated quoted "
             "field\",\"record\":null}\n",
             rows, rows, rows);
    s_expect_dead("csv.dl.jsonl", want);
    char *dl = sl_test_read_file(s_path("split.dl.jsonl"), NULL);
    cr_assert_not_null(dl);
    char w2[4400], w3[4400];
    snprintf(w2, sizeof(w2), "\"error\":\"%s:2: field 'line': expected 3 "
             "fields, got 2\"", s_path("lines.txt"));
    snprintf(w3, sizeof(w3), "\"error\":\"%s:3: field 'line': invalid CSV: "
             "unterminated quoted field\"", s_path("lines.txt"));
    cr_expect_not_null(strstr(dl, w2), "'%s' not in:\n%s", w2, dl);
    cr_expect_not_null(strstr(dl, w3), "'%s' not in:\n%s", w3, dl);
    cr_expect_eq(sl_test_count_lines(s_path("split.dl.jsonl")), 2);
    s_expect_row(log, "split", 4, 2, 0, 2);
    s_expect_in_log(log, "records: 8 read, 3 delivered, 0 filtered, "
                         "5 dead-lettered");
    free(dl);
    free(log);
}

/* An empty input file is no records, not an error. */
Test(bad_input, empty_input_file, .timeout = 60)
{
    s_write("in.jsonl", "");
    s_write("t.yaml",
            "stages:\n"
            "  - name: src\n"
            "    plugin: file_source\n"
            "    config: {path: in.jsonl}\n"
            "  - name: out\n"
            "    plugin: file_sink\n"
            "    config: {path: out.jsonl}\n");
    char *log = NULL;
    int code = s_cli("run t.yaml", &log);
    cr_assert_eq(code, 0, "exit %d:\n%s", code, log);
    s_expect_in_log(log, "records: 0 read, 0 delivered, 0 filtered, "
                         "0 dead-lettered");
    char *out = sl_test_read_file(s_path("out.jsonl"), NULL);
    cr_assert_not_null(out, "the sink still creates its file");
    cr_expect_str_eq(out, "");
    free(out);
    free(log);
}

/* ---- bad topologies ------------------------------------------------------ */

/* `sluice check` on text: exit 2, exactly the lines want (each "\n"-
 * terminated) and the count line. */
static void s_check_refuses(const char *text, const char *want)
{
    s_write("t.yaml", text);
    char *log = NULL;
    int code = s_cli("check t.yaml", &log);
    size_t n = 0;
    for (const char *p = want; *p; p++)
        n += *p == '\n';
    char full[8192];
    snprintf(full, sizeof(full), "%st.yaml: %zu problem%s\n", want, n,
             n == 1 ? "" : "s");
    cr_expect_eq(code, 2, "exit %d:\n%s", code, log);
    cr_expect_str_eq(log, full);
    free(log);
}

#define GEN "  - name: gen\n    plugin: generator\n    config: {count: 1}\n"
#define SINK "  - name: out\n    plugin: null\n"

Test(bad_input, topology_with_duplicate_yaml_keys)
{
    /* Nowhere does the last (or first) value win silently. */
    s_check_refuses("stages:\n"
                    "  - name: gen\n"
                    "    plugin: generator\n"
                    "    config: {count: 1, count: 1000000}\n"
                    SINK
                    "    workers: 2\n"
                    "    workers: 4\n",
                    "t.yaml:4:24: duplicate key 'count' (first at 4:14)\n"
                    "t.yaml:8:5: duplicate key 'workers' (first at 7:5)\n");
}

Test(bad_input, topology_with_an_alias_bomb)
{
    s_check_refuses("x: &a [l, l, l, l, l, l, l, l, l, l]\n"
                    "y: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                    "z: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                    "w: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                    "v: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                    "u: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                    "stages:\n" GEN SINK,
                    "t.yaml:5:36: alias '*d' expands the document past "
                    "100000 nodes; aliases nested this way are refused\n");
}

Test(bad_input, topology_with_tabs)
{
    s_check_refuses("stages:\n"
                    "  - name: gen\n"
                    "\tplugin: generator\n",
                    "t.yaml:3:1: found a tab character that violates "
                    "indentation (while scanning a plain scalar at 2:11); "
                    "tabs are not allowed for indentation, use spaces\n");
}

Test(bad_input, topology_with_invalid_utf8_and_deep_nesting)
{
    s_check_refuses("stages:\n  - name: g\xc3\x28n\n",
                    "t.yaml:2:13: invalid trailing UTF-8 octet (byte 0x28)\n");
    char text[1200] = "stages:\n  - name: gen\n    config: {x: ";
    size_t n = strlen(text);
    memset(text + n, '[', 300);
    memset(text + n + 300, ']', 300);
    strcpy(text + n + 600, "}\n");
    /* Levels: root map, stages, the stage, config: the 253rd '[' (column
     * 17 + 252) is the 257th level. */
    s_check_refuses(text, "t.yaml:3:269: nesting deeper than 256 levels\n");
}

Test(bad_input, topology_naming_an_unknown_plugin)
{
    s_write("t.yaml", "stages:\n"
                      "  - name: gen\n"
                      "    plugin: generatr\n"
                      "  - name: out\n"
                      "    plugin: nothing_like_it\n");
    char *log = NULL;
    int code = s_cli("check t.yaml", &log);
    cr_expect_eq(code, 2, "exit %d:\n%s", code, log);
    char want[16384]; /* room for every path it names */
    snprintf(want, sizeof(want),
             "t.yaml:3:13: unknown plugin 'generatr': no generatr.so in %s, "
             SL_TEST_BINARY_DIR "/stages, ",
             PLUGINS);
    s_expect_in_log(log, want);
    s_expect_in_log(log, "(set SLUICE_PLUGIN_PATH to add folders); did you "
                         "mean 'generator'?\n");
    s_expect_in_log(log, "t.yaml:5:13: unknown plugin 'nothing_like_it': no "
                         "nothing_like_it.so in ");
    s_expect_in_log(log, "to add folders)\nt.yaml: 2 problems\n");
    free(log);
}

Test(bad_input, topology_with_cyclic_links_and_a_stage_fed_by_itself)
{
    s_check_refuses("stages:\n" GEN
                    "  - name: a\n"
                    "    plugin: delay\n"
                    "    config: {ms: 0}\n"
                    "    from: [gen, b]\n"
                    "  - name: b\n"
                    "    plugin: delay\n"
                    "    config: {ms: 0}\n"
                    "  - name: self\n"
                    "    plugin: delay\n"
                    "    config: {ms: 0}\n"
                    "    from: self\n"
                    SINK
                    "    from: [b, self]\n",
                    "t.yaml:8:17: cycle: a -> b -> a\n"
                    "t.yaml:15:11: cycle: self -> self\n");
}

Test(bad_input, topology_with_negative_and_overflowing_numbers)
{
    s_check_refuses("stages:\n"
                    "  - name: gen\n"
                    "    plugin: generator\n"
                    "    config: {count: -5}\n"
                    "    queue: -1\n"
                    "    batch: 99999999999999999999999\n"
                    "    workers: 0x7fffffffffffffff\n"
                    SINK
                    "    retry: {max_attempts: -3, backoff_ms: 1e999}\n"
                    "    timeout: -5s\n",
                    "t.yaml:4:21: stage 'gen': 'count' must be between 0 and "
                    "9223372036854775807, got -5\n"
                    "t.yaml:5:12: stage 'gen': 'queue' must be from 1 to "
                    "16777216, got -1\n"
                    "t.yaml:6:12: stage 'gen': 'batch' must be an integer "
                    "from 1 to 4096, got integer '99999999999999999999999'\n"
                    "t.yaml:7:14: stage 'gen': 'workers' must be 'auto' or an "
                    "integer from 1 to 1024, got integer "
                    "'0x7fffffffffffffff'\n"
                    "t.yaml:10:27: stage 'out': 'retry.max_attempts' must be "
                    "from 1 to 1000, got -3\n"
                    "t.yaml:10:43: stage 'out': 'retry.backoff_ms' must be an "
                    "integer from 0 to 86400000, got number '1e999'\n"
                    "t.yaml:11:14: stage 'out': 'timeout' must be a duration "
                    "such as 500ms, 2s or 1m (a bare number is milliseconds), "
                    "got string '-5s'\n");
}

Test(bad_input, dead_letter_file_that_is_a_directory, .timeout = 60)
{
    cr_assert_eq(mkdir(s_path("dlq"), 0755), 0);
    const char *text = "stages:\n" GEN SINK "    dead_letter: dlq\n";
    char want[4400];
    snprintf(want, sizeof(want), "t.yaml:7:18: stage 'out': dead_letter "
             "'%s' is a directory; name a file in it\n", s_path("dlq"));
    s_check_refuses(text, want);
    /* `run` checks the same before it starts anything. */
    char *log = NULL;
    int code = s_cli("run t.yaml", &log);
    cr_expect_eq(code, 2, "exit %d:\n%s", code, log);
    s_expect_in_log(log, want);
    free(log);
}

Test(bad_input, topology_files_that_are_empty_binary_or_a_folder)
{
    s_check_refuses("", "t.yaml:1:1: missing required key 'stages'\n");

    static const unsigned char elf[] = {0x7f, 'E', 'L', 'F', 2, 1, 1, 0};
    s_write_bin("t.yaml", elf, sizeof(elf));
    char *log = NULL;
    int code = s_cli("check t.yaml", &log);
    cr_expect_eq(code, 2);
    cr_expect_str_eq(log, "t.yaml:1:1: control characters are not allowed "
                          "(U+007F)\nt.yaml: 1 problem\n");
    free(log);

    cr_assert_eq(mkdir(s_path("dir.yaml"), 0755), 0);
    code = s_cli("check dir.yaml", &log);
    cr_expect_eq(code, 2);
    cr_expect_str_eq(log, "dir.yaml: cannot read: Is a directory\n"
                          "dir.yaml: 1 problem\n");
    free(log);
}
