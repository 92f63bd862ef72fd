/* Resource limits in a real run (`sluice run`): records over the
 * topology's `limits:` and a stage's own are dead-lettered with the reason
 * naming the stage and the limit, counted in the ledger (which balances),
 * and every other record arrives. docs/topology.md ("Limits") and
 * docs/reliability.md ("Resource limits") describe what is checked.
 *
 *   read (file_source, jsonl)  limits of the topology: 4096 bytes, depth 6
 *   shape (fields, adds "tag") its own: 2048 bytes, depth 3
 *   write (file_sink, jsonl)
 *
 * The input: 40 small records that pass, 5 of 5011 bytes and 5 nested 7
 * deep (refused as `read` emits them: input errors), 10 of 3011 bytes
 * whose output from `shape` is 3017 bytes, and 5 nested 4 deep that
 * `shape` refuses to decode (both: `shape`'s input dead-lettered). The
 * same run with `shape` in a thread lane and in a process lane (whose
 * worker processes apply the limits themselves). */
#include <criterion/criterion.h>

#include "testutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(limits_run, .init = sl_test_tmpdir_setup,
          .fini = sl_test_tmpdir_teardown);

/* The topology; its %s is the lane of shape. */
static const char s_topology[] =
    "limits: {max_record_bytes: 4096, max_depth: 6}\n"
    "defaults:\n"
    "  dead_letter: dead-{stage}.jsonl\n"
    "stages:\n"
    "  - name: read\n"
    "    plugin: file_source\n"
    "    config: {path: in.jsonl, format: jsonl}\n"
    "  - name: shape\n"
    "    plugin: fields\n"
    "    config: {set: {tag: x}}\n"
    "    lane: %s\n"
    "    limits: {max_record_bytes: 2048, max_depth: 3}\n"
    "  - name: write\n"
    "    plugin: file_sink\n"
    "    config: {path: out.jsonl}\n";

static char *s_path(const char *name)
{
    char *p = NULL;
    cr_assert_gt(asprintf(&p, "%s/%s", sl_test_dir(), name), 0);
    return p;
}

/* {"i":i,"d":{"a":{"a":...1}}}: `levels` containers, the record's own map
 * included. */
static void s_deep(FILE *f, int i, int levels)
{
    fprintf(f, "{\"i\":%d,\"d\":", i);
    for (int k = 1; k < levels; k++)
        fputs(k + 1 < levels ? "{\"a\":" : "{\"a\":1", f);
    for (int k = 1; k < levels; k++)
        fputc('}', f);
    fputs("}\n", f);
}

static void s_long(FILE *f, int i, size_t n)
{
    fprintf(f, "{\"i\":%d,\"msg\":\"", i);
    for (size_t k = 0; k < n; k++)
        fputc('m', f);
    fputs("\"}\n", f);
}

static void s_write_input(void)
{
    char *in = s_path("in.jsonl");
    FILE *f = fopen(in, "w");
    cr_assert_not_null(f);
    /* interleaved, so that refused records sit between good ones */
    for (int i = 0; i < 65; i++) {
        switch (i % 13) {
        case 0: s_long(f, i, 5000); break; /* 5011 bytes: over 4096 */
        case 1: s_deep(f, i, 7); break;    /* over read's depth 6 */
        case 2: case 3: s_long(f, i, 3000); break; /* 3017 out of shape */
        case 4: s_deep(f, i, 4); break;    /* over shape's depth 3 */
        default: fprintf(f, "{\"i\":%d,\"msg\":\"ok\"}\n", i); break;
        }
    }
    cr_assert_eq(fclose(f), 0);
    free(in);
}

/* The number of lines of a file that contain `what`. */
static int s_count(const char *name, const char *what)
{
    char *path = s_path(name);
    char *text = sl_test_read_file(path, NULL);
    cr_assert_not_null(text, "no file %s", path);
    int n = 0;
    for (char *l = text, *e; *l; l = e + 1) {
        e = strchr(l, '\n');
        cr_assert_not_null(e, "%s: a line without a newline", name);
        *e = '\0';
        n += strstr(l, what) != NULL;
    }
    free(text);
    free(path);
    return n;
}

static long s_lines(const char *name)
{
    char *path = s_path(name);
    long n = sl_test_count_lines(path);
    free(path);
    return n;
}

/* A source's summary row: "read file_source 1 65r 55 0 10 ...". */
static void s_source_row(const char *log, const char *stage, uint64_t *read,
                         uint64_t *out, uint64_t *dead)
{
    char head[80];
    snprintf(head, sizeof(head), "\n%s ", stage);
    const char *p = strstr(log, head);
    cr_assert_not_null(p, "no summary row for '%s' in:\n%s", stage, log);
    unsigned workers;
    uint64_t filtered;
    int n = sscanf(p + 1, "%*s %*s %u %" SCNu64 "r %" SCNu64 " %" SCNu64
                   " %" SCNu64, &workers, read, out, &filtered, dead);
    cr_assert_eq(n, 5, "cannot read the row of '%s':\n%s", stage, log);
}

static void s_run_limits(const char *lane)
{
    s_write_input();
    char *topo = s_path("limits.yaml");
    char text[sizeof(s_topology) + 16];
    snprintf(text, sizeof(text), s_topology, lane);
    cr_assert_eq(sl_test_write_file(topo, text), 0);
    char *cmd = NULL, *log = NULL;
    cr_assert_gt(asprintf(&cmd, "cd '%s' && '%s' run limits.yaml 2>&1",
                          sl_test_dir(), sl_test_cli()), 0);
    int code = sl_test_run(cmd, &log);
    cr_assert_not_null(log);
    cr_assert_eq(code, 0, "exit %d:\n%s", code, log);
    cr_assert_not_null(strstr(log, "ledger balanced"), "%s", log);

    uint64_t read, out, dead, in, filtered;
    unsigned workers;
    s_source_row(log, "read", &read, &out, &dead);
    cr_expect_eq(read, 65);
    cr_expect_eq(out, 55);
    cr_expect_eq(dead, 10);
    sl_test_summary_row(log, "shape", &workers, &in, &out, &filtered, &dead);
    cr_expect_eq(in, 55);
    cr_expect_eq(out, 40);
    cr_expect_eq(filtered, 0);
    cr_expect_eq(dead, 15);
    sl_test_summary_row(log, "write", &workers, &in, &out, &filtered, &dead);
    cr_expect_eq(in, 40);
    cr_expect_eq(dead, 0);

    /* every small record, with the field shape added */
    cr_expect_eq(s_count("out.jsonl", "\"msg\":\"ok\",\"tag\":\"x\"}"), 40);
    cr_expect_eq(s_lines("out.jsonl"), 40);

    /* refused as read emitted them: kept whole, with the reason */
    cr_expect_eq(s_lines("dead-read.jsonl"), 10);
    cr_expect_eq(s_count("dead-read.jsonl",
                         "\"error\":\"stage 'read': record of 5011 bytes is "
                         "over limits.max_record_bytes (4096)\""),
                 5);
    cr_expect_eq(s_count("dead-read.jsonl",
                         "\"error\":\"stage 'read': record nested deeper "
                         "than limits.max_depth (6)\""),
                 5);
    cr_expect_eq(s_count("dead-read.jsonl", "\"record\":{\"i\":"), 10);

    /* shape's input, dead-lettered at once (no retry fixes a limit) */
    cr_expect_eq(s_lines("dead-shape.jsonl"), 15);
    cr_expect_eq(s_count("dead-shape.jsonl",
                         "\"error\":\"stage 'shape': output record of 3017 "
                         "bytes is over limits.max_record_bytes (2048)\""),
                 10);
    cr_expect_eq(s_count("dead-shape.jsonl",
                         "\"error\":\"stage 'shape': record nested deeper "
                         "than limits.max_depth (3)\""),
                 5);
    cr_expect_eq(s_count("dead-shape.jsonl", "\"attempts\":1,"), 15);
    free(log);
    free(cmd);
    free(topo);
}

Test(limits_run, over_the_limits_is_dead_lettered_and_the_rest_arrives)
{
    s_run_limits("thread");
}

Test(limits_run, a_process_lane_applies_the_limits_too, .timeout = 60)
{
    s_run_limits("process");
}

/* Records a stage emits from flush() have no input record behind them:
 * one over the limits is dead-lettered with the reason (one attempt, and
 * counted nowhere, so the ledger still balances), on both lanes and to a
 * dead-letter file or stage. `window` emits the windows still open at the
 * end of the stream from flush(): with a 50-byte key its output record is
 * 84 bytes, over the topology's 80, while the input records (59 bytes) and
 * the windows of short keys pass. Two keys are long: two dead letters. */
static void s_run_flush(const char *lane, int to_stage)
{
    char *in = s_path("in.jsonl");
    FILE *f = fopen(in, "w");
    cr_assert_not_null(f);
    const char *keys[] = {"a", "L1", "b", "L2", "a", "L1"};
    for (int i = 0; i < 6; i++) {
        fprintf(f, "{\"ts\":%d,\"k\":\"", i + 1);
        if (keys[i][0] == 'L')
            fprintf(f, "%s%048d", keys[i], 0);
        else
            fputs(keys[i], f);
        fputs("\"}\n", f);
    }
    cr_assert_eq(fclose(f), 0);
    char *topo = s_path("flush.yaml");
    char *text = NULL;
    cr_assert_gt(asprintf(&text,
                          "limits: {max_record_bytes: 80}\n"
                          "stages:\n"
                          "  - name: read\n"
                          "    plugin: file_source\n"
                          "    config: {path: in.jsonl, format: jsonl}\n"
                          "  - name: win\n"
                          "    plugin: window\n"
                          "    lane: %s\n"
                          "    dead_letter: %s\n"
                          "    config: {time_field: ts, size: 10s, key: k,\n"
                          "             aggregates: [{op: count, as: n}]}\n"
                          "  - name: write\n"
                          "    from: win\n"
                          "    plugin: file_sink\n"
                          "    config: {path: out.jsonl}\n"
                          "%s",
                          lane, to_stage ? "{stage: dlq}" : "dead-win.jsonl",
                          to_stage ? "  - name: dlq\n"
                                     "    plugin: file_sink\n"
                                     "    config: {path: dead-win.jsonl}\n"
                                   : ""),
                 0);
    cr_assert_eq(sl_test_write_file(topo, text), 0);
    char *cmd = NULL, *log = NULL;
    cr_assert_gt(asprintf(&cmd, "cd '%s' && '%s' run flush.yaml 2>&1",
                          sl_test_dir(), sl_test_cli()), 0);
    int code = sl_test_run(cmd, &log);
    cr_assert_not_null(log);
    cr_assert_eq(code, 0, "exit %d:\n%s", code, log);
    cr_assert_not_null(strstr(log, "ledger balanced"), "%s", log);
    cr_expect_eq(s_lines("out.jsonl"), 2, "%s", log);
    cr_expect_eq(s_count("out.jsonl", "\"k\":\"a\",\"n\":2}"), 1);
    cr_expect_eq(s_count("out.jsonl", "\"k\":\"b\",\"n\":1}"), 1);
    cr_expect_eq(s_lines("dead-win.jsonl"), 2, "%s", log);
    /* packed past the limit, its bytes were counted, not kept
     * (docs/topology.md, "Limits"): no record in the entry */
    cr_expect_eq(s_count("dead-win.jsonl",
                         "\"attempts\":1,\"priority\":0,"), 2);
    cr_expect_eq(s_count("dead-win.jsonl",
                         "\"error\":\"stage 'win': record of 84 bytes is "
                         "over limits.max_record_bytes (80)\",\"record\":"
                         "null}"),
                 2);
    free(log);
    free(cmd);
    free(text);
    free(topo);
    free(in);
}

Test(limits_run, flush_output_over_the_limits_thread_lane)
{
    s_run_flush("thread", 0);
}

Test(limits_run, flush_output_over_the_limits_process_lane, .timeout = 60)
{
    s_run_flush("process", 0);
}

Test(limits_run, flush_output_over_the_limits_to_a_stage_process_lane,
     .timeout = 60)
{
    s_run_flush("process", 1);
}

/* `sluice check` reports a bad limit with its position, and runs nothing. */
Test(limits_run, check_reports_a_bad_limit)
{
    char *topo = s_path("bad.yaml");
    cr_assert_eq(sl_test_write_file(topo,
                                    "limits: {max_depth: 40}\n"
                                    "stages:\n"
                                    "  - name: gen\n"
                                    "    plugin: generator\n"
                                    "    config: {count: 1}\n"
                                    "  - name: sink\n"
                                    "    plugin: null\n"),
                 0);
    char *cmd = NULL, *log = NULL;
    cr_assert_gt(asprintf(&cmd, "cd '%s' && '%s' check bad.yaml 2>&1",
                          sl_test_dir(), sl_test_cli()), 0);
    int code = sl_test_run(cmd, &log);
    cr_assert_not_null(log);
    cr_expect_neq(code, 0);
    cr_expect_not_null(strstr(log, "bad.yaml:1:21: 'limits.max_depth' must "
                                   "be from 1 to 32 (msgpack-c decodes at "
                                   "most 32 levels), got 40"),
                       "%s", log);
    free(log);
    free(cmd);
    free(topo);
}
