/* csv_parse: splitting a field into named columns, and the failures. */
#include <criterion/criterion.h>

#include "harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sl_harness_t *s_new(const char *yaml)
{
    char err[2048];
    sl_harness_t *h = sl_harness_new("csv_parse", yaml, NULL, err,
                                     sizeof(err));
    cr_assert_not_null(h, "harness: %s", err);
    return h;
}

static void s_refused(const char *yaml, const char *want)
{
    char err[2048] = "";
    sl_harness_t *h = sl_harness_new("csv_parse", yaml, NULL, err,
                                     sizeof(err));
    cr_assert_null(h, "config accepted: %s", yaml);
    cr_assert_not_null(strstr(err, want), "error '%s' lacks '%s'", err,
                       want);
}

static void s_ok(sl_harness_t *h, const char *in, const char *want)
{
    size_t before = sl_harness_count(h);
    cr_assert_eq(sl_harness_push_json(h, in), 0, "%s: %s", in,
                 sl_harness_last_error(h));
    cr_assert_eq(sl_harness_count(h), before + 1);
    cr_expect_str_eq(sl_harness_output(h, before), want, "in %s", in);
}

static void s_fails(sl_harness_t *h, const char *in, const char *want)
{
    size_t before = sl_harness_count(h), errs = sl_harness_errors(h);
    cr_assert_lt(sl_harness_push_json(h, in), 0, "%s was accepted", in);
    cr_expect_eq(sl_harness_count(h), before, "a failed record emitted");
    cr_expect_eq(sl_harness_errors(h), errs + 1);
    const char *e = sl_harness_last_error(h);
    cr_expect_not_null(strstr(e, want), "error '%s' lacks '%s'", e, want);
}

Test(csv_parse, splits_into_columns_in_place)
{
    sl_harness_t *h = s_new("columns: [a, b, c]");
    s_ok(h, "{\"ts\":1,\"line\":\"1,\\\"x, y\\\",3\",\"k\":true}",
         "{\"ts\":1,\"a\":\"1\",\"b\":\"x, y\",\"c\":\"3\",\"k\":true}");
    s_ok(h, "{\"line\":\",,\"}", "{\"a\":\"\",\"b\":\"\",\"c\":\"\"}");
    /* Quotes doubled inside quotes, a line break inside quotes, a CRLF at
     * the end, spaces around unquoted fields trimmed. */
    s_ok(h, "{\"line\":\"\\\"say \\\"\\\"hi\\\"\\\"\\\",\\\"a\\nb\\\", z \\r\\n\"}",
         "{\"a\":\"say \\\"hi\\\"\",\"b\":\"a\\nb\",\"c\":\"z\"}");
    /* A record field named like a column is replaced by the column. */
    s_ok(h, "{\"b\":\"old\",\"line\":\"1,2,3\"}",
         "{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\"}");
    cr_expect_eq(sl_harness_errors(h), 0);
    sl_harness_destroy(&h);
}

Test(csv_parse, delimiter_quote_field_keep_source)
{
    sl_harness_t *h = s_new("field: raw\ncolumns: [k, v]\ndelimiter: \"\\t\"\n"
                            "quote: \"'\"\nkeep_source: true");
    s_ok(h, "{\"raw\":\"key\\t'a\\tb'\"}",
         "{\"raw\":\"key\\t'a\\tb'\",\"k\":\"key\",\"v\":\"a\\tb\"}");
    sl_harness_destroy(&h);
}

Test(csv_parse, failures_name_field_and_problem)
{
    sl_harness_t *h = s_new("columns: [a, b, c]");
    s_fails(h, "{\"line\":\"1,2\"}", "field 'line': expected 3 fields, got 2");
    s_fails(h, "{\"line\":\"1,2,3,4\"}",
            "field 'line': expected 3 fields, got 4");
    s_fails(h, "{\"line\":\"\"}", "field 'line': expected 3 fields, got 0");
    s_fails(h, "{\"line\":\"1,2,3\\n4,5,6\"}",
            "field 'line': holds 2 CSV rows, expected one");
    s_fails(h, "{\"line\":\"1,\\\"open,3\"}",
            "field 'line': invalid CSV: unterminated quoted field");
    s_fails(h, "{\"line\":\"1,x\\\"y,3\"}",
            "field 'line': invalid CSV: misplaced quote character");
    s_fails(h, "{\"line\":\"1,2\",\"file\":\"in.csv\",\"lineno\":9}",
            "in.csv:9: field 'line': expected 3 fields, got 2");
    s_fails(h, "{\"other\":\"1,2,3\"}", "field 'line' is missing");
    s_fails(h, "{\"line\":[1,2,3]}", "field 'line' is not a string");
    /* The parser is usable again after every kind of failure. */
    s_ok(h, "{\"line\":\"x,y,z\"}", "{\"a\":\"x\",\"b\":\"y\",\"c\":\"z\"}");
    cr_expect_eq(sl_harness_errors(h), 9);
    sl_harness_destroy(&h);
}

Test(csv_parse, config_errors)
{
    s_refused("", "'columns' is required");
    s_refused("columns: []", "'columns' must be a non-empty list");
    s_refused("columns: a", "'columns' must be a non-empty list");
    s_refused("columns: [a, '']", "'columns' entry 2 must be a non-empty");
    s_refused("columns: [a]\ndelimiter: ab", "'delimiter' must be a single "
                                             "character");
    s_refused("columns: [a]\nquote: ','", "'quote' and 'delimiter' must "
                                          "differ");
}
