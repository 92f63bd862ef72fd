/* `sluice dlq inspect` and `sluice dlq replay`: the exact text of inspect
 * for both formats and for corrupt and missing files; a failed run's dead
 * letters replayed through the fixed topology complete the output with
 * every record exactly once under its original id; the replay reads only
 * what the file held when it started; skipped input errors, unknown and
 * ambiguous stages; and the topology surgery itself. */
#include <criterion/criterion.h>

#include "deadletter.h"
#include "replay.h"
#include "run.h"
#include "testutil.h"
#include "topology.h"

#include <inttypes.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

TestSuite(dlq, .init = sl_test_tmpdir_setup, .fini = sl_test_tmpdir_teardown,
          .timeout = 120);

static char *path_in(const char *name)
{
    char *p = NULL;
    cr_assert_gt(asprintf(&p, "%s/%s", sl_test_dir(), name), 0);
    return p;
}

/* Runs `sluice ARGS` in the test's folder with the test plugins on the
 * search path; stdout and stderr together in *out. */
static int cli(char **out, const char *fmt, ...) SL_PRINTF(2, 3);
static int cli(char **out, const char *fmt, ...)
{
    char *args = NULL, *cmd = NULL;
    va_list ap;
    va_start(ap, fmt);
    cr_assert_gt(vasprintf(&args, fmt, ap), 0);
    va_end(ap);
    cr_assert_gt(asprintf(&cmd, "cd '%s' && SLUICE_PLUGIN_PATH='%s' '%s' %s "
                          "2>&1", sl_test_dir(),
                          SL_TEST_BINARY_DIR "/tests/plugins", sl_test_cli(),
                          args), 0);
    int rc = sl_test_run(cmd, out);
    cr_assert_not_null(*out);
    free(args);
    free(cmd);
    return rc;
}

/* ---- inspect ------------------------------------------------------------ */

#define T0 1714564800123456789ull /* 2024-05-01T12:00:00.123456789Z */
#define T1 1714564801000000000ull
#define T2 1714564802500000000ull

/* Three entries: two records that failed in 'parse' with one error, and
 * input that never became a record in 'read'. */
static void write_three(const char *path, sl_dl_format_t format)
{
    char err[512];
    sl_deadletter_t *dl = sl__deadletter_open(path, format, err, sizeof(err));
    cr_assert_not_null(dl, "%s", err);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "a", 1);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_str_with_body(&pk, "b", 1);
    msgpack_pack_str_with_body(&pk, "x\ny", 3);
    sl_envelope_t e1 = {.id = 42, .ts_ns = T0, .priority = 2};
    sl_envelope_t e2 = {.id = 43, .ts_ns = T0};
    sl_envelope_t e3 = {.id = 7, .ts_ns = T1};
    cr_assert_eq(sl__deadletter_write(dl, "parse", &e1, sb.data, sb.size,
                                      "boom", 3, T1, T2), 0);
    cr_assert_eq(sl__deadletter_write(dl, "read", &e3, NULL, 0,
                                      "input error: f.csv:3: bad row", 1, T1,
                                      T1), 0);
    cr_assert_eq(sl__deadletter_write(dl, "parse", &e2, sb.data, sb.size,
                                      "boom", 1, T2, T2), 0);
    msgpack_sbuffer_destroy(&sb);
    sl__deadletter_close(&dl);
}

static const char s_three_text[] =
    "entry 1: id 42, stage 'parse', attempts 3, priority 2\n"
    "  ts:            2024-05-01T12:00:00.123Z\n"
    "  first failure: 2024-05-01T12:00:01.000Z\n"
    "  last failure:  2024-05-01T12:00:02.500Z\n"
    "  error:         boom\n"
    "  record:        {\"a\":1,\"b\":\"x\\ny\"}\n"
    "entry 2: id 7, stage 'read', attempts 1, priority 0\n"
    "  ts:            2024-05-01T12:00:01.000Z\n"
    "  first failure: 2024-05-01T12:00:01.000Z\n"
    "  last failure:  2024-05-01T12:00:01.000Z\n"
    "  error:         input error: f.csv:3: bad row\n"
    "  record:        (no record: input error)\n"
    "entry 3: id 43, stage 'parse', attempts 1, priority 0\n"
    "  ts:            2024-05-01T12:00:00.123Z\n"
    "  first failure: 2024-05-01T12:00:02.500Z\n"
    "  last failure:  2024-05-01T12:00:02.500Z\n"
    "  error:         boom\n"
    "  record:        {\"a\":1,\"b\":\"x\\ny\"}\n";

static const char s_three_summary[] =
    "\n"
    "3 entries, 1 without a record (input errors)\n"
    "by stage:\n"
    "         2  parse\n"
    "         1  read\n"
    "by error (most frequent first, top 20):\n"
    "         2  boom\n"
    "         1  input error: f.csv:3: bad row\n";

static void expect_three(const char *name)
{
    char *out, *want;
    cr_assert_eq(cli(&out, "dlq inspect %s", name), 0, "%s", out);
    cr_assert_gt(asprintf(&want, "%s%s", s_three_text, s_three_summary), 0);
    cr_assert_str_eq(out, want);
    free(want);
    free(out);
}

Test(dlq, inspect_jsonl_and_msgpack_print_the_same)
{
    char *j = path_in("dl.jsonl"), *m = path_in("dl.msgpack");
    write_three(j, SL_DL_JSONL);
    write_three(m, SL_DL_MSGPACK);
    expect_three("dl.jsonl");
    expect_three("dl.msgpack");
    free(j);
    free(m);
}

Test(dlq, inspect_json_is_the_jsonl_entry_format)
{
    char *j = path_in("dl.jsonl"), *m = path_in("dl.msgpack");
    write_three(j, SL_DL_JSONL);
    write_three(m, SL_DL_MSGPACK);
    char *file = sl_test_read_file(j, NULL), *out;
    cr_assert_not_null(file);
    /* A msgpack file prints as the JSONL file of the same entries. */
    cr_assert_eq(cli(&out, "dlq inspect dl.msgpack --json"), 0, "%s", out);
    cr_assert_str_eq(out, file);
    free(out);
    cr_assert_eq(cli(&out, "dlq inspect dl.jsonl --json --limit 1"), 0);
    cr_assert_eq(strncmp(out, file, strlen(out)), 0, "%s", out);
    cr_assert_eq(strchr(file, '\n') - file + 1, (long)strlen(out), "%s", out);
    free(out);
    free(file);
    free(j);
    free(m);
}

Test(dlq, inspect_limit_shows_the_first_and_counts_all)
{
    char *j = path_in("dl.jsonl");
    write_three(j, SL_DL_JSONL);
    char *out;
    cr_assert_eq(cli(&out, "dlq inspect dl.jsonl --limit 1"), 0, "%s", out);
    const char *second = strstr(s_three_text, "entry 2:");
    char *want = NULL;
    cr_assert_gt(asprintf(&want, "%.*s(2 more entries not shown: --limit 1)"
                          "\n%s", (int)(second - s_three_text), s_three_text,
                          s_three_summary), 0);
    cr_assert_str_eq(out, want);
    free(want);
    free(out);
    free(j);
}

Test(dlq, inspect_corrupt_prints_what_came_before)
{
    char *j = path_in("dl.jsonl"), *m = path_in("dl.msgpack");
    write_three(j, SL_DL_JSONL);
    write_three(m, SL_DL_MSGPACK);
    FILE *f = fopen(j, "a");
    fputs("{\"stage\":\"parse\",\"id\":-1}\n", f);
    fclose(f);
    struct stat sb;
    cr_assert_eq(stat(m, &sb), 0);
    f = fopen(m, "ab");
    fwrite("\x93\x01\x02\x03", 1, 4, f);
    fclose(f);

    char *out, *want;
    cr_assert_eq(cli(&out, "dlq inspect dl.jsonl"), 1, "%s", out);
    cr_assert_gt(asprintf(&want, "%s%ssluice dlq inspect: dl.jsonl: entry 4 "
                          "(line 4): 'id' must be an unsigned integer in "
                          "range\n", s_three_text, s_three_summary), 0);
    cr_assert_str_eq(out, want);
    free(want);
    free(out);

    cr_assert_eq(cli(&out, "dlq inspect dl.msgpack --json"), 1, "%s", out);
    cr_assert_eq(sl_test_count_lines(j), 4);
    char *p = strstr(out, "sluice dlq inspect: ");
    cr_assert_not_null(p, "%s", out);
    cr_assert_gt(asprintf(&want, "sluice dlq inspect: dl.msgpack: entry 4: "
                          "not a msgpack map (byte 0x93 at offset %lld)\n",
                          (long long)sb.st_size), 0);
    cr_assert_str_eq(p, want);
    /* the three good entries came first, one line each */
    size_t lines = 0;
    for (const char *q = out; q < p; q++)
        lines += *q == '\n';
    cr_assert_eq(lines, 3, "%s", out);
    free(want);
    free(out);
    free(j);
    free(m);
}

Test(dlq, inspect_missing_file_and_usage)
{
    char *out;
    cr_assert_eq(cli(&out, "dlq inspect nope.jsonl"), 2);
    cr_assert_str_eq(out, "sluice dlq inspect: cannot open dead-letter file "
                          "'nope.jsonl': No such file or directory\n");
    free(out);
    cr_assert_eq(cli(&out, "dlq inspect"), 2);
    cr_assert_str_eq(out, "usage: sluice dlq inspect FILE [--json] "
                          "[--limit N]\n");
    free(out);
    cr_assert_eq(cli(&out, "dlq inspect x --limit -3"), 2);
    cr_assert(strstr(out, "--limit wants a number >= 0, not '-3'"), "%s", out);
    free(out);
    char *e = path_in("empty.jsonl");
    cr_assert_eq(sl_test_write_file(e, ""), 0);
    cr_assert_eq(cli(&out, "dlq inspect empty.jsonl"), 0);
    cr_assert_str_eq(out, "0 entries, 0 without a record (input errors)\n");
    free(out);
    free(e);
}

/* ---- replay ------------------------------------------------------------- */

#define N_RECORDS 100

/* read -> check (fails records with bad: true unless `fail_when` says
 * otherwise) -> two sinks: the records as JSON, and checksum_sink for
 * their ids. */
static void write_topology(const char *name, const char *fail_when,
                           const char *suffix)
{
    char *yaml = NULL, *path = path_in(name);
    cr_assert_gt(asprintf(&yaml,
        "name: t\n"
        "defaults:\n"
        "  dead_letter: dlq.jsonl\n"
        "  retry: {max_attempts: 1}\n"
        "stages:\n"
        "  - name: read\n"
        "    plugin: file_source\n"
        "    config: {path: in.jsonl}\n"
        "  - name: check\n"
        "    plugin: misbehave\n"
        "    config: {fail_when: %s}\n"
        "  - name: write\n"
        "    plugin: file_sink\n"
        "    config: {path: out%s.jsonl}\n"
        "  - name: sums\n"
        "    plugin: checksum_sink\n"
        "    from: check\n"
        "    config: {path: sums%s.txt}\n", fail_when, suffix, suffix), 0);
    cr_assert_eq(sl_test_write_file(path, yaml), 0);
    free(yaml);
    free(path);
}

/* n = 1..N_RECORDS, bad when n is a multiple of 7, then a broken line. */
static void write_input(void)
{
    char *path = path_in("in.jsonl");
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (int n = 1; n <= N_RECORDS; n++)
        fprintf(f, "{\"n\":%d,\"bad\":%s}\n", n, n % 7 ? "false" : "true");
    fputs("{broken\n", f);
    fclose(f);
    free(path);
}

/* Marks the n of every line of an output file in seen[]. */
static void collect_n(const char *name, int *seen)
{
    char *path = path_in(name);
    char *text = sl_test_read_file(path, NULL);
    cr_assert_not_null(text, "no %s", name);
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l;
         l = strtok_r(NULL, "\n", &save)) {
        int n;
        cr_assert_eq(sscanf(l, "{\"n\":%d,", &n), 1, "line '%s'", l);
        cr_assert(n >= 1 && n <= N_RECORDS, "line '%s'", l);
        seen[n]++;
    }
    free(text);
    free(path);
}

static int multiple_of_7(uint64_t seq) { return (seq + 1) % 7 == 0; }

Test(dlq, replay_completes_the_output_with_original_ids)
{
    write_input();
    write_topology("t.yaml", "bad", "1");
    write_topology("fixed.yaml", "never", "2");
    char *out;
    cr_assert_eq(cli(&out, "run t.yaml --quiet"), 0, "%s", out);
    free(out);
    char *dl = path_in("dlq.jsonl");
    long failed = N_RECORDS / 7;
    cr_assert_eq(sl_test_count_lines(dl), failed + 1); /* + the broken line */

    cr_assert_eq(cli(&out, "dlq replay dlq.jsonl --topology fixed.yaml"), 0,
                 "%s", out);
    char want[256];
    snprintf(want, sizeof(want), "sluice dlq replay: %ld of %ld records "
             "replayed into stage 'check'; 1 entry skipped: 1 without a "
             "record (input errors)\n", failed, failed);
    cr_assert(strstr(out, want), "no '%s' in:\n%s", want, out);
    cr_assert(strstr(out, "ledger balanced"), "%s", out);
    cr_assert(strstr(out, "\ndlq_replay "), "%s", out);
    cr_assert_null(strstr(out, "\nread "), "the source still ran:\n%s", out);
    free(out);

    /* Every n exactly once over both runs. */
    int seen[N_RECORDS + 1] = {0};
    collect_n("out1.jsonl", seen);
    collect_n("out2.jsonl", seen);
    for (int n = 1; n <= N_RECORDS; n++)
        cr_assert_eq(seen[n], 1, "n=%d seen %d times", n, seen[n]);
    char *o2 = path_in("out2.jsonl");
    cr_assert_eq(sl_test_count_lines(o2), failed);
    free(o2);

    /* The replayed records kept the ids the source gave them. */
    sl_test_sums_t s1, s2, want_all, want_failed;
    char *p1 = path_in("sums1.txt"), *p2 = path_in("sums2.txt");
    sl_test_read_sums(p1, &s1);
    sl_test_read_sums(p2, &s2);
    sl_test_expected_ids(0, N_RECORDS, NULL, &want_all);
    sl_test_expected_ids(0, N_RECORDS, multiple_of_7, &want_failed);
    sl_test_expect_ids(&s2, &want_failed);
    s1.count += s2.count;
    s1.sum += s2.sum;
    s1.xor_ ^= s2.xor_;
    sl_test_expect_ids(&s1, &want_all);
    /* Nothing failed again: the file is as the first run left it. */
    cr_assert_eq(sl_test_count_lines(dl), failed + 1);
    free(p1);
    free(p2);
    free(dl);
}

Test(dlq, replay_never_reads_its_own_new_entries)
{
    write_input();
    write_topology("t.yaml", "bad", "1");
    char *out;
    cr_assert_eq(cli(&out, "run t.yaml --quiet"), 0, "%s", out);
    free(out);
    char *dl = path_in("dlq.jsonl");
    long failed = N_RECORDS / 7;
    /* Still broken: every record fails again, into the file being read. */
    cr_assert_eq(cli(&out, "dlq replay dlq.jsonl --topology t.yaml --stage "
                 "check"), 0, "%s", out);
    char want[256];
    snprintf(want, sizeof(want), "sluice dlq replay: %ld of %ld records "
             "replayed into stage 'check'", failed, failed);
    cr_assert(strstr(out, want), "no '%s' in:\n%s", want, out);
    free(out);
    cr_assert_eq(sl_test_count_lines(dl), 2 * failed + 1);
    /* Attempts started again from 0: one try each (not 2), and the
     * second half of the file has the ids of the first. */
    char *text = sl_test_read_file(dl, NULL);
    cr_assert_not_null(text);
    char *lines[2 * N_RECORDS / 7 + 1];
    size_t n = 0;
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l && n < 2 * (size_t)failed + 1;
         l = strtok_r(NULL, "\n", &save))
        lines[n++] = l;
    cr_assert_eq(n, 2 * (size_t)failed + 1);
    unsigned long long ids[2][N_RECORDS / 7];
    size_t k[2] = {0, 0};
    for (size_t i = 0; i < n; i++) {
        if (!strstr(lines[i], "\"stage\":\"check\""))
            continue; /* the broken line, from 'read' */
        cr_assert(strstr(lines[i], "\"attempts\":1,"), "%s", lines[i]);
        int half = i > (size_t)failed;
        cr_assert_eq(sscanf(strstr(lines[i], "\"id\":"), "\"id\":%llu",
                            &ids[half][k[half]]), 1);
        k[half]++;
    }
    cr_assert_eq(k[0], (size_t)failed);
    cr_assert_eq(k[1], (size_t)failed);
    for (size_t i = 0; i < k[1]; i++) {
        size_t j = 0;
        while (j < k[0] && ids[0][j] != ids[1][i])
            j++;
        cr_assert_lt(j, k[0], "id %llu was not in the first run", ids[1][i]);
    }
    free(text);
    free(dl);
}

Test(dlq, replay_refuses_bad_stages)
{
    char *j = path_in("dl.jsonl");
    write_three(j, SL_DL_JSONL);
    write_input();
    write_topology("fixed.yaml", "never", "2");
    char *out;
    cr_assert_eq(cli(&out, "dlq replay dl.jsonl --topology fixed.yaml "
                 "--stage nope"), 2);
    cr_assert_str_eq(out, "sluice dlq replay: unknown stage 'nope': "
                          "topology 't' has read, check, write, sums\n");
    free(out);
    cr_assert_eq(cli(&out, "dlq replay dl.jsonl --topology fixed.yaml "
                 "--stage read"), 2);
    cr_assert_str_eq(out, "sluice dlq replay: stage 'read' is a source: "
                          "records can only be replayed into a stage that "
                          "takes input\n");
    free(out);
    /* Entries name 'parse', which this topology does not have. */
    cr_assert_eq(cli(&out, "dlq replay dl.jsonl --topology fixed.yaml"), 2);
    cr_assert_str_eq(out, "sluice dlq replay: unknown stage 'parse': "
                          "topology 't' has read, check, write, sums\n");
    free(out);
    cr_assert_eq(cli(&out, "dlq replay dl.jsonl --topology fixed.yaml "
                 "--stage check"), 2);
    cr_assert_str_eq(out, "sluice dlq replay: dl.jsonl has no records for "
                          "stage 'check'; it has records for 'parse' (2)\n");
    free(out);
    cr_assert_eq(cli(&out, "dlq replay missing.jsonl --topology "
                 "fixed.yaml"), 2);
    cr_assert_str_eq(out, "sluice dlq replay: cannot open dead-letter file "
                          "'missing.jsonl': No such file or directory\n");
    free(out);
    cr_assert_eq(cli(&out, "dlq replay dl.jsonl"), 2);
    cr_assert(strstr(out, "usage: sluice dlq replay FILE --topology T"),
              "%s", out);
    free(out);
    free(j);
}

Test(dlq, replay_needs_a_stage_when_entries_name_several)
{
    char *j = path_in("dl.jsonl");
    write_three(j, SL_DL_JSONL);
    char err[256];
    sl_deadletter_t *dl = sl__deadletter_open(j, SL_DL_JSONL, err, sizeof(err));
    cr_assert_not_null(dl);
    sl_envelope_t env = {.id = 9};
    cr_assert_eq(sl__deadletter_write(dl, "check", &env, "\x81\xa1n\x01", 4,
                                      "x", 1, 0, 0), 0);
    sl__deadletter_close(&dl);
    write_input();
    write_topology("fixed.yaml", "never", "2");
    char *out;
    cr_assert_eq(cli(&out, "dlq replay dl.jsonl --topology fixed.yaml"), 2);
    cr_assert_str_eq(out, "sluice dlq replay: dl.jsonl holds records for "
                          "several stages: 'parse' (2), 'check' (1); choose "
                          "one with --stage\n");
    free(out);
    cr_assert_eq(cli(&out, "dlq replay dl.jsonl --topology fixed.yaml "
                 "--stage check"), 0, "%s", out);
    cr_assert(strstr(out, "sluice dlq replay: 1 of 1 records replayed into "
                          "stage 'check'; 3 entries skipped: 1 without a "
                          "record (input errors), 2 for other stages\n"),
              "%s", out);
    free(out);
    char *o2 = path_in("out2.jsonl");
    char *text = sl_test_read_file(o2, NULL);
    cr_assert_str_eq(text, "{\"n\":1}\n");
    free(text);
    free(o2);
    free(j);
}

Test(dlq, replay_of_only_input_errors_has_nothing_to_do)
{
    char *j = path_in("dl.jsonl");
    char err[256];
    sl_deadletter_t *dl = sl__deadletter_open(j, SL_DL_JSONL, err, sizeof(err));
    cr_assert_not_null(dl);
    cr_assert_eq(sl__deadletter_write(dl, "read", NULL, NULL, 0,
                                      "input error: x:1: bad", 1, 0, 0), 0);
    sl__deadletter_close(&dl);
    write_input();
    write_topology("fixed.yaml", "never", "2");
    char *out;
    cr_assert_eq(cli(&out, "dlq replay dl.jsonl --topology fixed.yaml"), 0);
    cr_assert_str_eq(out, "sluice dlq replay: dl.jsonl: nothing to replay; "
                          "1 entry skipped: 1 without a record (input "
                          "errors)\n");
    free(out);
    free(j);
}

/* ---- the surgery and the reader's bound, in process --------------------- */

Test(dlq, surgery_keeps_the_stage_and_what_is_downstream)
{
    char *j = path_in("dl.jsonl");
    write_three(j, SL_DL_JSONL);
    char *yaml = NULL;
    cr_assert_gt(asprintf(&yaml,
        "name: s\n"
        "stages:\n"
        "  - {name: a, plugin: generator, config: {count: 1}}\n"
        "  - {name: e, plugin: generator, config: {count: 1}}\n"
        "  - {name: b, plugin: filter, from: a, config: {expr: 'true'}}\n"
        "  - {name: parse, plugin: filter, from: [b, e], config: {expr: 'true'}}\n"
        "  - {name: d, plugin: filter, from: [parse, b], config: {expr: 'true'}}\n"
        "  - {name: z, plugin: null, from: d}\n"), 0);
    sl_topology_t *t = sl_test_topology("s.yaml", sl_test_dir(), yaml);
    free(yaml);
    sl_replay_info_t info;
    char err[512] = "";
    cr_assert_eq(sl__topology_replay_into(t, NULL, j, &info, err,
                                          sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(info.stage, "parse");
    cr_assert_eq(info.entries, 3);
    cr_assert_eq(info.replayed, 2);
    cr_assert_eq(info.no_record, 1);
    cr_assert_eq(t->n_stages, 4);
    const char *names[] = {"dlq_replay", "parse", "d", "z"};
    for (size_t i = 0; i < 4; i++)
        cr_assert_str_eq(t->stages[i].name, names[i]);
    cr_assert_eq(t->stages[0].plugin->desc->kind, SL_STAGE_SOURCE);
    cr_assert_eq(t->stages[0].n_inputs, 0);
    cr_assert_eq(t->stages[0].n_outputs, 1);
    cr_assert_eq(t->stages[0].outputs[0], 1);
    cr_assert_eq(t->stages[1].n_inputs, 1); /* b and e are gone */
    cr_assert_eq(t->stages[1].inputs[0], 0);
    cr_assert_eq(t->stages[1].n_outputs, 1);
    cr_assert_eq(t->stages[1].outputs[0], 2);
    cr_assert_eq(t->stages[2].n_inputs, 1); /* lost its input from b */
    cr_assert_eq(t->stages[2].inputs[0], 1);
    cr_assert_eq(t->stages[3].inputs[0], 2);
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(t->stages[i].dl_stage, -1);
    sl_run_t *run = sl_test_run_to_end(t);
    sl_stage_stats_t st;
    sl_test_stage_stats(run, t, "z", &st);
    cr_assert_eq(st.in, 2);
    sl__run_destroy(&run);
    sl__replay_info_fini(&info);
    sl__topology_destroy(&t);
    free(j);
}

Test(dlq, reader_stops_at_the_size_it_had_when_opened)
{
    char *m = path_in("dl.msgpack");
    write_three(m, SL_DL_MSGPACK);
    sl_deadletter_reader_t *rd;
    char err[256];
    cr_assert_eq(sl__deadletter_reader_open(m, UINT64_MAX, &rd, err,
                                            sizeof(err)), 0, "%s", err);
    write_three(m, SL_DL_MSGPACK);
    const sl_deadletter_entry_t *e;
    int n = 0, rc;
    while ((rc = sl__deadletter_reader_next(rd, &e, err, sizeof(err))) == 1)
        n++;
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_eq(n, 3);
    cr_assert_eq(sl__deadletter_reader_next(rd, &e, err, sizeof(err)), 0);
    sl__deadletter_reader_close(&rd);
    cr_assert_null(rd);
    free(m);
}
