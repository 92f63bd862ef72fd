/* Bad input through the CLI: malformed JSON lines, CSV rows of the wrong
 * width and unparseable JSON text are each reported as FILE:LINE with the
 * reason, counted in the summary, and skipped; every good unit still comes
 * out, byte for byte, and the run exits 0.
 *
 * Inputs are in tests/data/integ_malformed; the bad units are at fixed line
 * numbers listed below. */
#include <criterion/criterion.h>

#include "testutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DATA SL_TEST_DATA_DIR "/integ_malformed"

typedef struct bad_unit {
    unsigned line;
    const char *reason; /* what follows "FILE:LINE: " */
} bad_unit_t;

typedef struct row {
    uint64_t in, out, filtered, errors;
    int is_read; /* the "in" column was "<n>r" (a source) */
} row_t;

typedef struct cli_run {
    char *dir;
    char out[512];
    char *log; /* stdout and stderr of the run */
    int code;
} cli_run_t;

/* Writes the topology (fmt's only %s is the output path) and runs it. */
static void run_cli(cli_run_t *r, const char *out_name, const char *fmt)
{
    memset(r, 0, sizeof(*r));
    r->dir = sl_test_tmpdir();
    cr_assert_not_null(r->dir);
    snprintf(r->out, sizeof(r->out), "%s/%s", r->dir, out_name);
    char *yaml = NULL, *topo = NULL, *cmd = NULL;
    cr_assert_gt(asprintf(&yaml, fmt, r->out), 0);
    cr_assert_gt(asprintf(&topo, "%s/malformed.yaml", r->dir), 0);
    cr_assert_eq(sl_test_write_file(topo, yaml), 0);
    cr_assert_gt(asprintf(&cmd, "'%s' run '%s' 2>&1", sl_test_cli(), topo),
                 0);
    r->code = sl_test_run(cmd, &r->log);
    cr_assert_not_null(r->log);
    free(cmd);
    free(topo);
    free(yaml);
}

static void cli_done(cli_run_t *r)
{
    free(r->log);
    sl_test_rmtree(r->dir);
}

/* The summary table's row for a stage: "name plugin workers in out
 * filtered errors ...", the source's `in` written as "<read>r". */
static void summary_row(const char *log, const char *stage, row_t *row)
{
    char head[80];
    snprintf(head, sizeof(head), "\n%s ", stage);
    const char *p = strstr(log, head);
    cr_assert_not_null(p, "no summary row for '%s' in:\n%s", stage, log);
    char in[32];
    unsigned workers;
    int n = sscanf(p + 1,
                   "%*s %*s %u %31s %" SCNu64 " %" SCNu64 " %" SCNu64,
                   &workers, in, &row->out, &row->filtered, &row->errors);
    cr_assert_eq(n, 5, "cannot read the summary row of '%s'", stage);
    char *end = NULL;
    row->in = strtoull(in, &end, 10);
    row->is_read = *end == 'r';
}

/* Each bad unit is named once as "path:line: reason", and no other line
 * of the file is named at all. */
static void expect_bad_units(const char *log, const char *path,
                             const bad_unit_t *bad, size_t n_bad,
                             unsigned n_lines)
{
    for (unsigned line = 1; line <= n_lines; line++) {
        char where[600];
        snprintf(where, sizeof(where), "%s:%u: ", path, line);
        const char *hit = strstr(log, where);
        const bad_unit_t *b = NULL;
        for (size_t i = 0; i < n_bad; i++)
            if (bad[i].line == line)
                b = &bad[i];
        if (!b) {
            cr_expect_null(hit, "good line %u reported:\n%s", line, log);
            continue;
        }
        cr_expect_not_null(hit, "bad line %u not reported as '%s':\n%s",
                           line, where, log);
        if (!hit)
            continue;
        cr_expect(strncmp(hit + strlen(where), b->reason,
                          strlen(b->reason)) == 0,
                  "line %u: want '%s%s', got:\n%.200s", line, where,
                  b->reason, hit);
        cr_expect_null(strstr(hit + 1, where), "line %u reported twice",
                       line);
    }
}

static void expect_file(const char *path, const char *want)
{
    char *got = sl_test_read_file(path, NULL);
    cr_assert_not_null(got, "no output file %s", path);
    cr_expect_str_eq(got, want);
    free(got);
}

Test(malformed, jsonl_bad_lines_are_named_and_skipped, .timeout = 60)
{
    const char *in = DATA "/mixed.jsonl";
    static const bad_unit_t bad[] = {
        {3, "invalid JSON: "},
        {5, "expected a JSON object, got an array"},
        {7, "invalid JSON: "},
        {9, "expected a JSON object, got a number"},
        {11, "invalid JSON: "},
    };
    cli_run_t r;
    run_cli(&r, "good.jsonl",
            "stages:\n"
            "  - name: src\n"
            "    plugin: file_source\n"
            "    config: {path: " DATA "/mixed.jsonl, format: jsonl}\n"
            "  - name: out\n"
            "    plugin: file_sink\n"
            "    config: {path: %s, format: jsonl}\n");
    cr_assert_eq(r.code, 0, "exit %d:\n%s", r.code, r.log);
    expect_file(r.out, "{\"id\":1,\"s\":\"a\"}\n"
                       "{\"id\":2,\"s\":\"b\"}\n"
                       "{\"id\":4,\"s\":\"d\"}\n"
                       "{\"id\":6,\"s\":\"f\",\"n\":{\"x\":[1,true,null]}}\n"
                       "{\"id\":8,\"s\":\"h\"}\n"
                       "{\"id\":10,\"s\":\"j\"}\n"
                       "{\"id\":12,\"s\":\"l\"}\n");
    expect_bad_units(r.log, in, bad, 5, 12);
    row_t src, out;
    summary_row(r.log, "src", &src);
    summary_row(r.log, "out", &out);
    cr_expect(src.is_read);
    cr_expect_eq(src.in, 12);
    cr_expect_eq(src.out, 7);
    cr_expect_eq(src.errors, 5);
    cr_expect_eq(out.in, 7);
    cr_expect_eq(out.errors, 0);
    cr_expect_not_null(strstr(r.log, "s, 7 records into sinks"), "%s", r.log);
    cr_expect_not_null(strstr(r.log, "ledger balanced"), "%s", r.log);
    cli_done(&r);
}

Test(malformed, csv_rows_of_the_wrong_width_are_named_and_skipped,
     .timeout = 60)
{
    const char *in = DATA "/rows.csv";
    static const bad_unit_t bad[] = {
        {4, "expected 3 fields, got 2"},
        {6, "expected 3 fields, got 4"},
    };
    cli_run_t r;
    run_cli(&r, "good.csv",
            "stages:\n"
            "  - name: src\n"
            "    plugin: file_source\n"
            "    config: {path: " DATA "/rows.csv, format: csv}\n"
            "  - name: out\n"
            "    plugin: file_sink\n"
            "    config: {path: %s, format: csv, fields: [id, name, city]}\n");
    cr_assert_eq(r.code, 0, "exit %d:\n%s", r.code, r.log);
    /* The good rows, quoting included, exactly as they were read. */
    expect_file(r.out, "id,name,city\n"
                       "1,ann,\"Paris, FR\"\n"
                       "2,bob,Oslo\n"
                       "4,dee,\"Rome \"\"IT\"\"\"\n"
                       "6,fay,Kyiv\n");
    expect_bad_units(r.log, in, bad, 2, 7);
    row_t src, out;
    summary_row(r.log, "src", &src);
    summary_row(r.log, "out", &out);
    cr_expect_eq(src.in, 6, "data rows read (the header is not a record)");
    cr_expect_eq(src.out, 4);
    cr_expect_eq(src.errors, 2);
    cr_expect_eq(out.in, 4);
    cr_expect_not_null(strstr(r.log, "s, 4 records into sinks"), "%s", r.log);
    cr_expect_not_null(strstr(r.log, "ledger balanced"), "%s", r.log);
    cli_done(&r);
}

Test(malformed, json_parse_names_the_line_with_position, .timeout = 60)
{
    const char *in = DATA "/lines.txt";
    static const bad_unit_t bad[] = {
        {2, "field 'line': invalid JSON: "},
        {4, "field 'line': JSON value is a string, not an object"},
    };
    cli_run_t r;
    run_cli(&r, "parsed.jsonl",
            "stages:\n"
            "  - name: src\n"
            "    plugin: file_source\n"
            "    config: {path: " DATA "/lines.txt, format: lines,\n"
            "             with_position: true}\n"
            "  - name: parse\n"
            "    plugin: json_parse\n"
            "    config: {field: line}\n"
            "  - name: out\n"
            "    plugin: file_sink\n"
            "    config: {path: %s, fields: [id, ok, lineno]}\n");
    cr_assert_eq(r.code, 0, "exit %d:\n%s", r.code, r.log);
    expect_file(r.out, "{\"id\":1,\"ok\":true,\"lineno\":1}\n"
                       "{\"id\":3,\"ok\":true,\"lineno\":3}\n"
                       "{\"id\":5,\"ok\":false,\"lineno\":5}\n");
    expect_bad_units(r.log, in, bad, 2, 5);
    row_t src, parse, out;
    summary_row(r.log, "src", &src);
    summary_row(r.log, "parse", &parse);
    summary_row(r.log, "out", &out);
    cr_expect_eq(src.in, 5);
    cr_expect_eq(src.errors, 0, "every line is a valid text line");
    cr_expect_eq(parse.in, 5);
    cr_expect_eq(parse.out, 3);
    cr_expect_eq(parse.errors, 2);
    cr_expect_eq(out.in, 3);
    cr_expect_not_null(strstr(r.log, "s, 3 records into sinks"), "%s", r.log);
    cr_expect_not_null(strstr(r.log, "ledger balanced"), "%s", r.log);
    cli_done(&r);
}
