/* json_parse: merging, target, keep_source, and the failure messages. */
#include <criterion/criterion.h>

#include "harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sl_harness_t *s_new(const char *yaml)
{
    char err[2048];
    sl_harness_t *h = sl_harness_new("json_parse", yaml, NULL, err,
                                     sizeof(err));
    cr_assert_not_null(h, "harness: %s", err);
    return h;
}

static void s_refused(const char *yaml, const char *want)
{
    char err[2048] = "";
    sl_harness_t *h = sl_harness_new("json_parse", yaml, NULL, err,
                                     sizeof(err));
    cr_assert_null(h, "config accepted: %s", yaml);
    cr_assert_not_null(strstr(err, want), "error '%s' lacks '%s'", err,
                       want);
}

/* Pushes one record and expects exactly `want` to come out. */
static void s_ok(sl_harness_t *h, const char *in, const char *want)
{
    size_t before = sl_harness_count(h);
    cr_assert_eq(sl_harness_push_json(h, in), 0, "%s: %s", in,
                 sl_harness_last_error(h));
    cr_assert_eq(sl_harness_count(h), before + 1);
    cr_expect_str_eq(sl_harness_output(h, before), want, "in %s", in);
}

/* Pushes one record and expects it to fail with a message holding want. */
static void s_fails(sl_harness_t *h, const char *in, const char *want)
{
    size_t before = sl_harness_count(h), errs = sl_harness_errors(h);
    cr_assert_lt(sl_harness_push_json(h, in), 0, "%s was accepted", in);
    cr_expect_eq(sl_harness_count(h), before, "a failed record emitted");
    cr_expect_eq(sl_harness_errors(h), errs + 1);
    const char *e = sl_harness_last_error(h);
    cr_expect_not_null(strstr(e, want), "error '%s' lacks '%s'", e, want);
}

Test(json_parse, merges_keys_at_the_source_position)
{
    sl_harness_t *h = s_new("");
    s_ok(h, "{\"ts\":5,\"line\":\"{\\\"a\\\":1,\\\"b\\\":[true,null],"
            "\\\"c\\\":{\\\"d\\\":2.5}}\",\"x\":\"y\"}",
         "{\"ts\":5,\"a\":1,\"b\":[true,null],\"c\":{\"d\":2.5},\"x\":\"y\"}");
    /* A parsed key replaces a record field of the same name. */
    s_ok(h, "{\"a\":0,\"line\":\"{\\\"a\\\":1,\\\"z\\\":2}\",\"z\":3,"
            "\"k\":4}",
         "{\"a\":1,\"z\":2,\"k\":4}");
    s_ok(h, "{\"line\":\" {} \"}", "{}");
    cr_expect_eq(sl_harness_errors(h), 0);
    sl_harness_destroy(&h);
}

Test(json_parse, keep_source_and_other_field)
{
    sl_harness_t *h = s_new("field: msg\nkeep_source: true");
    s_ok(h, "{\"msg\":\"{\\\"n\\\":1}\",\"line\":\"untouched\"}",
         "{\"msg\":\"{\\\"n\\\":1}\",\"n\":1,\"line\":\"untouched\"}");
    /* If the parsed object has the source's own name, the parsed wins. */
    s_ok(h, "{\"msg\":\"{\\\"msg\\\":\\\"inner\\\"}\"}",
         "{\"msg\":\"inner\"}");
    sl_harness_destroy(&h);
}

Test(json_parse, target_keeps_any_value_under_a_key)
{
    sl_harness_t *h = s_new("target: doc");
    s_ok(h, "{\"line\":\"{\\\"a\\\":1}\",\"doc\":\"old\",\"k\":1}",
         "{\"k\":1,\"doc\":{\"a\":1}}");
    s_ok(h, "{\"line\":\"[1,\\\"two\\\",3.0]\"}", "{\"doc\":[1,\"two\",3.0]}");
    s_ok(h, "{\"line\":\"42\"}", "{\"doc\":42}");
    sl_harness_destroy(&h);

    h = s_new("target: line");
    s_ok(h, "{\"line\":\"{\\\"a\\\":1}\",\"k\":1}", "{\"k\":1,\"line\":{\"a\":1}}");
    sl_harness_destroy(&h);

    h = s_new("target: parsed\nkeep_source: true");
    s_ok(h, "{\"line\":\"true\"}", "{\"line\":\"true\",\"parsed\":true}");
    sl_harness_destroy(&h);
}

Test(json_parse, invalid_json_names_field_position_and_reason)
{
    sl_harness_t *h = s_new("");
    s_fails(h, "{\"line\":\"{\\\"a\\\": }\"}",
            "field 'line': invalid JSON: line 1 column 7: parse error: "
            "unallowed token at this point in JSON text");
    s_fails(h, "{\"line\":\"{\\\"a\\\":1,\\n\\\"b\\\"\"}",
            "field 'line': invalid JSON: line 2 column 3: ");
    s_fails(h, "{\"line\":\"\"}", "field 'line': invalid JSON: line 1 column 0");
    /* Position fields from file_source lead the message. */
    s_fails(h, "{\"line\":\"{oops\",\"file\":\"/data/in.log\",\"lineno\":7}",
            "/data/in.log:7: field 'line': invalid JSON: line 1 column 2: "
            "lexical error: invalid char in json text");
    /* Good records still pass after failures. */
    s_ok(h, "{\"line\":\"{\\\"ok\\\":true}\"}", "{\"ok\":true}");
    cr_expect_eq(sl_harness_errors(h), 4);
    sl_harness_destroy(&h);
}

Test(json_parse, missing_or_non_string_field_and_non_object)
{
    sl_harness_t *h = s_new("field: body");
    s_fails(h, "{\"line\":\"{}\"}", "field 'body' is missing");
    s_fails(h, "{\"body\":12}", "field 'body' is a number, not a string");
    s_fails(h, "{\"body\":{\"a\":1}}", "field 'body' is an object, not a string");
    s_fails(h, "{\"body\":\"[1,2]\"}",
            "field 'body': JSON value is an array, not an object (set "
            "'target' to keep it under a key)");
    s_fails(h, "{\"body\":\"null\",\"file\":\"f.txt\",\"lineno\":3}",
            "f.txt:3: field 'body': JSON value is null, not an object");
    sl_harness_destroy(&h);
}

Test(json_parse, config_errors)
{
    s_refused("field: ''", "'field' must not be empty");
    s_refused("target: ''", "'target' must not be empty");
    s_refused("keep_source: maybe", "keep_source");
    s_refused("fields: x", "fields");
}
