/* csv_parse: splitting a field into named columns, and the failures. */
#include <criterion/criterion.h>

#include "harness.h"
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Test(csv_parse, splits_into_columns_in_place)
{
    sl_harness_t *h = sl_test_harness("csv_parse", "columns: [a, b, c]", NULL);
    sl_test_push_ok(h, "{\"ts\":1,\"line\":\"1,\\\"x, y\\\",3\",\"k\":true}",
                    "{\"ts\":1,\"a\":\"1\",\"b\":\"x, y\",\"c\":\"3\","
                    "\"k\":true}");
    sl_test_push_ok(h, "{\"line\":\",,\"}",
                    "{\"a\":\"\",\"b\":\"\",\"c\":\"\"}");
    /* Quotes doubled inside quotes, a line break inside quotes, a CRLF at
     * the end, spaces around unquoted fields trimmed. */
    sl_test_push_ok(h, "{\"line\":\"\\\"say \\\"\\\"hi\\\"\\\"\\\","
                    "\\\"a\\nb\\\", z \\r\\n\"}",
                    "{\"a\":\"say \\\"hi\\\"\",\"b\":\"a\\nb\",\"c\":\"z\"}");
    /* A record field named like a column is replaced by the column. */
    sl_test_push_ok(h, "{\"b\":\"old\",\"line\":\"1,2,3\"}",
                    "{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\"}");
    cr_expect_eq(sl_harness_errors(h), 0);
    sl_harness_destroy(&h);
}

Test(csv_parse, delimiter_quote_field_keep_source)
{
    sl_harness_t *h = sl_test_harness("csv_parse",
                                      "field: raw\ncolumns: [k, v]\n"
                                      "delimiter: \"\\t\"\n"
                                      "quote: \"'\"\nkeep_source: true",
                                      NULL);
    sl_test_push_ok(h, "{\"raw\":\"key\\t'a\\tb'\"}",
                    "{\"raw\":\"key\\t'a\\tb'\",\"k\":\"key\","
                    "\"v\":\"a\\tb\"}");
    sl_harness_destroy(&h);
}

Test(csv_parse, failures_name_field_and_problem)
{
    sl_harness_t *h = sl_test_harness("csv_parse", "columns: [a, b, c]", NULL);
    sl_test_push_fails(h, "{\"line\":\"1,2\"}",
                       "field 'line': expected 3 fields, got 2");
    sl_test_push_fails(h, "{\"line\":\"1,2,3,4\"}",
                       "field 'line': expected 3 fields, got 4");
    sl_test_push_fails(h, "{\"line\":\"\"}",
                       "field 'line': expected 3 fields, got 0");
    sl_test_push_fails(h, "{\"line\":\"1,2,3\\n4,5,6\"}",
                       "field 'line': holds 2 CSV rows, expected one");
    sl_test_push_fails(h, "{\"line\":\"1,\\\"open,3\"}",
                       "field 'line': invalid CSV: unterminated quoted field");
    sl_test_push_fails(h, "{\"line\":\"1,x\\\"y,3\"}",
                       "field 'line': invalid CSV: misplaced quote character");
    sl_test_push_fails(h,
                       "{\"line\":\"1,2\",\"file\":\"in.csv\",\"lineno\":9}",
                       "in.csv:9: field 'line': expected 3 fields, got 2");
    sl_test_push_fails(h, "{\"other\":\"1,2,3\"}", "field 'line' is missing");
    sl_test_push_fails(h, "{\"line\":[1,2,3]}",
                       "field 'line' is not a string");
    /* The parser is usable again after every kind of failure. */
    sl_test_push_ok(h, "{\"line\":\"x,y,z\"}",
                    "{\"a\":\"x\",\"b\":\"y\",\"c\":\"z\"}");
    cr_expect_eq(sl_harness_errors(h), 9);
    sl_harness_destroy(&h);
}

Test(csv_parse, config_errors)
{
    sl_test_refused("csv_parse", "", NULL, "'columns' is required");
    sl_test_refused("csv_parse", "columns: []", NULL,
                    "'columns' must be a non-empty list");
    sl_test_refused("csv_parse", "columns: a", NULL,
                    "'columns' must be a non-empty list");
    sl_test_refused("csv_parse", "columns: [a, '']", NULL,
                    "'columns' entry 2 must be a non-empty");
    sl_test_refused("csv_parse", "columns: [a]\ndelimiter: ab", NULL,
                    "'delimiter' must be a single character");
    sl_test_refused("csv_parse", "columns: [a]\nquote: ','", NULL,
                    "'quote' and 'delimiter' must differ");
}
