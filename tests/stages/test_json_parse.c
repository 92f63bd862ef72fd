/* json_parse: merging, target, keep_source, and the failure messages. */
#include <criterion/criterion.h>

#include "harness.h"
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Test(json_parse, merges_keys_at_the_source_position)
{
    sl_harness_t *h = sl_test_harness("json_parse", "", NULL);
    sl_test_push_ok(h, "{\"ts\":5,\"line\":\"{\\\"a\\\":1,\\\"b\\\":[true,"
                    "null],\\\"c\\\":{\\\"d\\\":2.5}}\",\"x\":\"y\"}",
                    "{\"ts\":5,\"a\":1,\"b\":[true,null],\"c\":{\"d\":2.5},"
                    "\"x\":\"y\"}");
    /* A parsed key replaces a record field of the same name. */
    sl_test_push_ok(h, "{\"a\":0,\"line\":\"{\\\"a\\\":1,\\\"z\\\":2}\","
                    "\"z\":3,\"k\":4}",
                    "{\"a\":1,\"z\":2,\"k\":4}");
    sl_test_push_ok(h, "{\"line\":\" {} \"}", "{}");
    cr_expect_eq(sl_harness_errors(h), 0);
    sl_harness_destroy(&h);
}

Test(json_parse, keep_source_and_other_field)
{
    sl_harness_t *h = sl_test_harness("json_parse",
                                      "field: msg\nkeep_source: true",
                                      NULL);
    sl_test_push_ok(h, "{\"msg\":\"{\\\"n\\\":1}\",\"line\":\"untouched\"}",
                    "{\"msg\":\"{\\\"n\\\":1}\",\"n\":1,"
                    "\"line\":\"untouched\"}");
    /* If the parsed object has the source's own name, the parsed wins. */
    sl_test_push_ok(h, "{\"msg\":\"{\\\"msg\\\":\\\"inner\\\"}\"}",
                    "{\"msg\":\"inner\"}");
    sl_harness_destroy(&h);
}

Test(json_parse, target_keeps_any_value_under_a_key)
{
    sl_harness_t *h = sl_test_harness("json_parse", "target: doc", NULL);
    sl_test_push_ok(h, "{\"line\":\"{\\\"a\\\":1}\",\"doc\":\"old\",\"k\":1}",
                    "{\"k\":1,\"doc\":{\"a\":1}}");
    sl_test_push_ok(h, "{\"line\":\"[1,\\\"two\\\",3.0]\"}",
                    "{\"doc\":[1,\"two\",3.0]}");
    sl_test_push_ok(h, "{\"line\":\"42\"}", "{\"doc\":42}");
    sl_harness_destroy(&h);

    h = sl_test_harness("json_parse", "target: line", NULL);
    sl_test_push_ok(h, "{\"line\":\"{\\\"a\\\":1}\",\"k\":1}",
                    "{\"k\":1,\"line\":{\"a\":1}}");
    sl_harness_destroy(&h);

    h = sl_test_harness("json_parse", "target: parsed\nkeep_source: true",
                        NULL);
    sl_test_push_ok(h, "{\"line\":\"true\"}",
                    "{\"line\":\"true\",\"parsed\":true}");
    sl_harness_destroy(&h);
}

Test(json_parse, invalid_json_names_field_position_and_reason)
{
    sl_harness_t *h = sl_test_harness("json_parse", "", NULL);
    sl_test_push_fails(h, "{\"line\":\"{\\\"a\\\": }\"}",
                       "field 'line': invalid JSON: line 1 column 7: parse "
                       "error: unallowed token at this point in JSON text");
    sl_test_push_fails(h, "{\"line\":\"{\\\"a\\\":1,\\n\\\"b\\\"\"}",
                       "field 'line': invalid JSON: line 2 column 3: ");
    sl_test_push_fails(h, "{\"line\":\"\"}",
                       "field 'line': invalid JSON: line 1 column 0");
    /* Position fields from file_source lead the message. */
    sl_test_push_fails(h, "{\"line\":\"{oops\",\"file\":\"/data/in.log\","
                       "\"lineno\":7}",
                       "/data/in.log:7: field 'line': invalid JSON: line 1 "
                       "column 2: lexical error: invalid char in json text");
    /* Good records still pass after failures. */
    sl_test_push_ok(h, "{\"line\":\"{\\\"ok\\\":true}\"}", "{\"ok\":true}");
    cr_expect_eq(sl_harness_errors(h), 4);
    sl_harness_destroy(&h);
}

Test(json_parse, missing_or_non_string_field_and_non_object)
{
    sl_harness_t *h = sl_test_harness("json_parse", "field: body", NULL);
    sl_test_push_fails(h, "{\"line\":\"{}\"}", "field 'body' is missing");
    sl_test_push_fails(h, "{\"body\":12}",
                       "field 'body' is a number, not a string");
    sl_test_push_fails(h, "{\"body\":{\"a\":1}}",
                       "field 'body' is an object, not a string");
    sl_test_push_fails(h, "{\"body\":\"[1,2]\"}", "field 'body': JSON value "
                       "is an array, not an object (set 'target' to keep it "
                       "under a key)");
    sl_test_push_fails(h,
                       "{\"body\":\"null\",\"file\":\"f.txt\",\"lineno\":3}",
                       "f.txt:3: field 'body': JSON value is null, not an "
                       "object");
    sl_harness_destroy(&h);
}

Test(json_parse, config_errors)
{
    sl_test_refused("json_parse", "field: ''", NULL,
                    "'field' must not be empty");
    sl_test_refused("json_parse", "target: ''", NULL,
                    "'target' must not be empty");
    sl_test_refused("json_parse", "keep_source: maybe", NULL, "keep_source");
    sl_test_refused("json_parse", "fields: x", NULL, "fields");
}
