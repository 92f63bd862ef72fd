/* The fields stage, driven through the single-stage harness. */
#include <criterion/criterion.h>

#include "harness.h"
#include "testutil.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Runs one record through a fresh stage and checks the one output. */
static void expect_out(const char *yaml, const char *in, const char *want)
{
    sl_harness_t *h = sl_test_harness("fields", yaml, NULL);
    int rc = sl_harness_push_json(h, in);
    cr_assert_eq(rc, 0, "%s on %s: rc %d (%s)", yaml, in, rc,
                 sl_harness_last_error(h));
    cr_assert_eq(sl_harness_count(h), 1);
    cr_expect_str_eq(sl_harness_output(h, 0), want, "config:\n%s\ninput %s",
                     yaml, in);
    sl_harness_destroy(&h);
}

/* What the harness reported about failed records. */

/* Runs one record that must fail; checks the message, that nothing was
 * emitted, and that it is dead-lettered at once: every per-record failure
 * of this stage is in the data, which a retry cannot change. */
static void expect_fail(const char *yaml, const char *in, const char *msg)
{
    sl_harness_t *h = sl_test_harness("fields", yaml, NULL);
    sl_test_fail_log_t f = {0};
    sl_harness_on_fail(h, sl_test_on_fail, &f);
    int rc = sl_harness_push_json(h, in);
    cr_assert_lt(rc, 0, "%s on %s should fail", yaml, in);
    cr_assert_eq(sl_harness_errors(h), 1);
    cr_assert_eq(sl_harness_count(h), 0);
    cr_expect_str_eq(sl_harness_last_error(h), msg);
    cr_assert_eq(f.n, 1);
    cr_expect_str_eq(f.msg, msg);
    cr_expect_eq(f.final, 1, "%s on %s: '%s' would be retried", yaml, in,
                 msg);
    sl_harness_destroy(&h);
}

/* The config error text, which must contain every fragment. */
static void expect_config_error(const char *yaml, const char *frag1,
                                const char *frag2)
{
    char err[2048];
    sl_harness_t *h = sl_harness_new("fields", yaml, NULL, err, sizeof err);
    cr_assert_null(h, "config <%s> should be refused", yaml);
    cr_expect(strstr(err, frag1) != NULL, "got '%s', want '%s'", err, frag1);
    if (frag2)
        cr_expect(strstr(err, frag2) != NULL, "got '%s', want '%s'", err,
                  frag2);
}

/* ---- cast ---------------------------------------------------------------- */

Test(fields_cast, to_int)
{
    const char *y = "cast: {a: int, b: int, c: int, d: int, e: int, f: int}";
    expect_out(
        y,
        "{\"a\":\"42\",\"b\":\"-7\",\"c\":3.0,\"d\":true,\"e\":9,\"f\":null}",
        "{\"a\":42,\"b\":-7,\"c\":3,\"d\":1,\"e\":9,\"f\":null}");
    expect_out(
        "cast: {a: int, b: int}",
        "{\"a\":\"18446744073709551615\",\"b\":\"-9223372036854775808\"}",
        "{\"a\":18446744073709551615,\"b\":-9223372036854775808}");
    expect_out("cast: {a: int}", "{\"a\":\"007\"}", "{\"a\":7}");
}

Test(fields_cast, to_int_failures)
{
    const char *y = "cast: {n: int}";
    expect_fail(y, "{\"n\":\"12a\"}",
                "cast n to int: \"12a\" is not an integer");
    expect_fail(y, "{\"n\":\" 12\"}",
                "cast n to int: \" 12\" is not an integer");
    expect_fail(y, "{\"n\":\"\"}", "cast n to int: \"\" is not an integer");
    expect_fail(y, "{\"n\":\"-\"}", "cast n to int: \"-\" is not an integer");
    expect_fail(y, "{\"n\":\"12.0\"}",
                "cast n to int: \"12.0\" is not an integer");
    expect_fail(y, "{\"n\":\"18446744073709551616\"}",
                "cast n to int: \"18446744073709551616\" is out of range");
    expect_fail(y, "{\"n\":\"-9223372036854775809\"}",
                "cast n to int: \"-9223372036854775809\" is out of range");
    expect_fail(y, "{\"n\":12.5}", "cast n to int: 12.5 is not an integer");
    expect_fail(y, "{\"n\":1e30}", "cast n to int: 1e+30 is out of range");
    expect_fail(y, "{\"n\":[1]}", "cast n to int: an array is not an integer");
}

Test(fields_cast, to_float)
{
    expect_out(
        "cast: {a: float, b: float, c: float, d: float, e: float}",
        "{\"a\":\"12.5\",\"b\":\"-1e3\",\"c\":7,\"d\":false,\"e\":\".5\"}",
        "{\"a\":12.5,\"b\":-1000.0,\"c\":7.0,\"d\":0.0,\"e\":0.5}");
}

Test(fields_cast, to_float_failures)
{
    const char *y = "cast: {amount: float}";
    expect_fail(y, "{\"amount\":\"12,5\"}",
                "cast amount to float: \"12,5\" is not a number");
    expect_fail(y, "{\"amount\":\"nan\"}",
                "cast amount to float: \"nan\" is not a number");
    expect_fail(y, "{\"amount\":\"0x10\"}",
                "cast amount to float: \"0x10\" is not a number");
    expect_fail(y, "{\"amount\":\"1e999\"}",
                "cast amount to float: \"1e999\" is out of range");
    expect_fail(y, "{\"amount\":\"1.5 \"}",
                "cast amount to float: \"1.5 \" is not a number");
    expect_fail(y, "{\"amount\":{\"v\":1}}",
                "cast amount to float: a map is not a number");
}

Test(fields_cast, long_values_are_truncated_in_messages)
{
    expect_fail("cast: {x: float}",
                "{\"x\":\"abcdefghijklmnopqrstuvwxyz0123456789\"}",
                "cast x to float: \"abcdefghijklmnopqrstuvwxyz012345...\" is "
                "not a number");
}

Test(fields_cast, to_string)
{
    expect_out(
        "cast: {a: string, b: string, c: string, d: string, e: string, "
        "f: string, g: string}",
        "{\"a\":5,\"b\":-2,\"c\":0.1,\"d\":true,\"e\":\"s\",\"f\":{\"k\":[1,"
        "\"x\"]},\"g\":null}",
        "{\"a\":\"5\",\"b\":\"-2\",\"c\":\"0.1\",\"d\":\"true\",\"e\":\"s\","
        "\"f\":\"{\\\"k\\\":[1,\\\"x\\\"]}\",\"g\":null}");
}

Test(fields_cast, to_bool)
{
    expect_out(
        "cast: {a: bool, b: bool, c: bool, d: bool, e: bool, f: bool}",
        "{\"a\":\"true\",\"b\":\"false\",\"c\":\"1\",\"d\":\"0\",\"e\":1,"
        "\"f\":0.0}",
        "{\"a\":true,\"b\":false,\"c\":true,\"d\":false,\"e\":true,"
        "\"f\":false}");
    expect_fail("cast: {a: bool}", "{\"a\":\"yes\"}",
                "cast a to bool: \"yes\" is not a boolean");
    expect_fail("cast: {a: bool}", "{\"a\":\"True\"}",
                "cast a to bool: \"True\" is not a boolean");
    expect_fail("cast: {a: bool}", "{\"a\":2}",
                "cast a to bool: 2 is not a boolean (only 0 and 1 are)");
}

Test(fields_cast, nested_paths_and_missing_fields)
{
    expect_out("cast: {u.age: int, u.zip: int, nope.x: int}",
               "{\"u\":{\"age\":\"30\"},\"v\":1}",
               "{\"u\":{\"age\":30},\"v\":1}");
}

/* ---- rename ------------------------------------------------------------- */

Test(fields_rename, keeps_position_and_value)
{
    expect_out("rename: {b: beta}", "{\"a\":1,\"b\":[2],\"c\":3}",
               "{\"a\":1,\"beta\":[2],\"c\":3}");
}

Test(fields_rename, is_simultaneous_so_swaps_work)
{
    expect_out("rename: {a: b, b: a}", "{\"a\":1,\"b\":2}",
               "{\"b\":1,\"a\":2}");
}

Test(fields_rename, replaces_an_existing_field_of_the_new_name)
{
    expect_out("rename: {a: b}", "{\"b\":0,\"a\":1,\"c\":2}",
               "{\"b\":1,\"c\":2}");
}

Test(fields_rename, nested_and_parent_together)
{
    /* both paths use the input's names; the inner rename runs first */
    expect_out("rename: {user: person, user.name: user.full_name}",
               "{\"user\":{\"name\":\"Ann\",\"age\":3}}",
               "{\"person\":{\"full_name\":\"Ann\",\"age\":3}}");
}

Test(fields_rename, missing_is_skipped)
{
    expect_out("rename: {nope: x, u.nope: u.x}", "{\"u\":{\"a\":1}}",
               "{\"u\":{\"a\":1}}");
}

/* ---- drop and select ---------------------------------------------------- */

Test(fields_drop, top_level_nested_and_missing)
{
    expect_out(
        "drop: [debug, u.secret, nope, u.nope.x]",
        "{\"id\":1,\"debug\":true,\"u\":{\"secret\":\"x\",\"name\":\"A\"}}",
        "{\"id\":1,\"u\":{\"name\":\"A\"}}");
}

Test(fields_select, keeps_only_listed_paths_in_input_order)
{
    expect_out("select: [c, a]", "{\"a\":1,\"b\":2,\"c\":3}",
               "{\"a\":1,\"c\":3}");
    expect_out("select: [u.name, id]",
               "{\"id\":1,\"u\":{\"name\":\"A\",\"age\":3},\"x\":0}",
               "{\"id\":1,\"u\":{\"name\":\"A\"}}");
    /* a whole map wins over a narrower path */
    expect_out("select: [u.name, u]", "{\"u\":{\"name\":\"A\",\"age\":3}}",
               "{\"u\":{\"name\":\"A\",\"age\":3}}");
}

Test(fields_select, missing_paths_leave_no_empty_maps)
{
    expect_out("select: [id, u.zip, v.w]",
               "{\"id\":1,\"u\":{\"name\":\"A\"},\"v\":5}", "{\"id\":1}");
}

/* ---- set ------------------------------------------------------------------
 */

Test(fields_set, keeps_yaml_types)
{
    expect_out("set: {n: 5, s: \"5\", f: 1.5, b: true, z: null, big: "
               "18446744073709551615, neg: -3}",
               "{\"id\":1}",
               "{\"id\":1,\"n\":5,\"s\":\"5\",\"f\":1.5,\"b\":true,\"z\":null,"
               "\"big\":18446744073709551615,\"neg\":-3}");
}

Test(fields_set, replaces_in_place_and_creates_maps)
{
    expect_out("set: {a: x, meta.src: api, u.tag: t}",
               "{\"a\":1,\"b\":2,\"u\":{\"name\":\"A\"}}",
               "{\"a\":\"x\",\"b\":2,\"u\":{\"name\":\"A\",\"tag\":\"t\"},"
               "\"meta\":{\"src\":\"api\"}}");
}

Test(fields_set, through_a_non_map_fails_the_record)
{
    expect_fail("set: {u.tag: t}", "{\"u\":\"bob\"}",
                "set u.tag: 'u' is \"bob\", not a map");
}

/* ---- order, strictness, records --------------------------------------------
 */

Test(fields_order, cast_rename_drop_select_set)
{
    /* cast names the input field; drop and select name the output one;
     * set survives select without being listed. */
    expect_out("cast: {amount: float}\n"
               "rename: {amount: total, tmp: debug}\n"
               "drop: [debug]\n"
               "select: [total, id, debug]\n"
               "set: {source: api, id: 7}\n",
               "{\"tmp\":0,\"id\":1,\"amount\":\"12.5\",\"x\":2}",
               "{\"id\":7,\"total\":12.5,\"source\":\"api\"}");
}

Test(fields_strict, missing_fields_fail_the_record)
{
    expect_fail("strict: true\ncast: {amount: float}", "{\"id\":1}",
                "cast amount: field is missing (strict)");
    expect_fail("strict: true\nrename: {u.a: u.b}", "{\"u\":{}}",
                "rename u.a: field is missing (strict)");
    expect_fail("strict: true\ndrop: [x]", "{\"id\":1}",
                "drop x: field is missing (strict)");
    /* present fields pass */
    expect_out("strict: true\ndrop: [x]", "{\"x\":1,\"id\":1}", "{\"id\":1}");
}

Test(fields_record, many_records_through_one_worker)
{
    sl_harness_t *h = sl_test_harness("fields",
                                      "rename: {u.a: u.b}\nset: {u.n: 1}\n"
                                      "cast: {v: string}\n",
                                      NULL);
    char in[128], want[128];
    for (int i = 0; i < 200; i++) {
        snprintf(in, sizeof in, "{\"u\":{\"a\":%d},\"v\":%d}", i, i);
        cr_assert_eq(sl_harness_push_json(h, in), 0);
    }
    cr_assert_eq(sl_harness_count(h), 200);
    for (int i = 0; i < 200; i++) {
        snprintf(want, sizeof want, "{\"u\":{\"b\":%d,\"n\":1},\"v\":\"%d\"}",
                 i, i);
        cr_assert_str_eq(sl_harness_output(h, (size_t)i), want);
    }
    sl_harness_destroy(&h);
}

Test(fields_record, a_failed_record_does_not_stop_the_next)
{
    sl_harness_t *h = sl_test_harness("fields", "cast: {n: int}", NULL);
    cr_assert_lt(sl_harness_push_json(h, "{\"n\":\"x\"}"), 0);
    cr_assert_eq(sl_harness_push_json(h, "{\"n\":\"2\"}"), 0);
    cr_assert_eq(sl_harness_errors(h), 1);
    cr_assert_eq(sl_harness_count(h), 1);
    cr_assert_str_eq(sl_harness_output(h, 0), "{\"n\":2}");
    unsigned char arr[] = {0x91, 0x01}; /* [1] */
    cr_assert_lt(sl_harness_push_msgpack(h, arr, sizeof arr), 0);
    cr_assert_str_eq(sl_harness_last_error(h), "record is not a msgpack map");
    sl_harness_destroy(&h);
}

/* Bytes that are not one well-formed map (what a buggy upstream plugin
 * can emit: the host checks only the first byte) fail on the first
 * attempt, are never retried, emit nothing, and the stage goes on. */
Test(fields_record, malformed_bytes_are_dead_lettered_at_once)
{
    static const struct {
        const char *what;
        const char *bytes;
        size_t len;
    } bad[] = {
        {"array [1]", "\x91\x01", 2},
        {"map then the unused byte 0xc1", "\x81\xa1k\xc1", 4},
        {"map of 2 pairs holding 1", "\x82\xa1" "a\x01", 4},
        {"two maps", "\x81\xa1" "a\x01\x81\xa1" "b\x02", 8},
        {"map32 header claiming 2^32-1 pairs", "\xdf\xff\xff\xff\xff", 5},
        {"a lone 0xc1", "\xc1", 1},
        {"no bytes", "", 0},
    };
    sl_harness_t *h = sl_test_harness("fields", "set: {seen: true}", NULL);
    sl_test_fail_log_t f = {0};
    sl_harness_on_fail(h, sl_test_on_fail, &f);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = sl_harness_push_msgpack(h, bad[i].bytes, bad[i].len);
        cr_assert_lt(rc, 0, "%s: accepted", bad[i].what);
        cr_assert_eq(f.n, (int)i + 1, "%s", bad[i].what);
        cr_expect_str_eq(f.msg, "record is not a msgpack map", "%s",
                         bad[i].what);
        cr_expect_eq(f.final, 1, "%s: would be retried", bad[i].what);
        cr_assert_eq(sl_harness_count(h), 0, "%s: emitted", bad[i].what);
    }
    cr_assert_eq(sl_harness_push_json(h, "{\"a\":1}"), 0, "goes on");
    cr_assert_eq(sl_harness_count(h), 1);
    cr_assert_str_eq(sl_harness_output(h, 0), "{\"a\":1,\"seen\":true}");
    cr_assert_eq(sl_harness_errors(h), sizeof bad / sizeof bad[0]);
    sl_harness_destroy(&h);
}

/* Nesting past limits.max_depth fails for good with the limit as reason. */
Test(fields_record, record_deeper_than_the_limit_is_dead_lettered_at_once)
{
    sl_harness_t *h = sl_test_harness("fields", "set: {seen: true}", NULL);
    sl_test_fail_log_t f = {0};
    sl_harness_on_fail(h, sl_test_on_fail, &f);
    sl_harness_set_limits(h, 0, 3);
    cr_assert_lt(sl_harness_push_json(h, "{\"a\":{\"b\":{\"c\":{}}}}"), 0);
    cr_assert_eq(f.n, 1);
    cr_expect_eq(f.final, 1);
    cr_expect(strstr(f.msg, "record nested deeper than limits.max_depth (3)"),
              "%s", f.msg);
    cr_assert_eq(sl_harness_push_json(h, "{\"a\":{\"b\":{}}}"), 0);
    cr_assert_eq(sl_harness_count(h), 1);
    sl_harness_destroy(&h);
}

/* ---- config ---------------------------------------------------------------
 */

Test(fields_config, nothing_to_do)
{
    expect_config_error("", "fields: nothing to do", NULL);
    expect_config_error("strict: true\n", "fields: nothing to do", NULL);
}

Test(fields_config, errors_point_at_the_value)
{
    expect_config_error("cast:\n  amount: integer\n", "config:2:11:",
                        "cast: unknown type 'integer' for 'amount' (expected "
                        "int, float, string or bool)");
    expect_config_error("select: id\n", "config:1:9:",
                        "select: expected a list of field paths");
    expect_config_error("select: []\n", "config:1:9:",
                        "select: an empty list would drop every field");
    expect_config_error("drop: [a, 5]\n", "config:1:11:",
                        "drop: expected a field path (a string)");
    expect_config_error("drop: [a..b]\n",
                        "config:1:8:", "drop: invalid field path 'a..b'");
    expect_config_error("rename: {user.name: name}\n",
                        "config:1:21:", "would move the field to another map");
    expect_config_error("rename: {a: c, b: c}\n", "config:1:19:",
                        "rename: 'a' and 'b' both rename to 'c'");
    expect_config_error("set: {a: [1]}\n", "config:1:10:",
                        "set: the value for 'a' must be a scalar");
    expect_config_error("set: {a: 1, a.b: 2}\n",
                        "config:1:18:", "set: 'a.b' overlaps 'a'");
    expect_config_error("cast: [a]\n",
                        "config:1:7:", "cast: expected a map of field: type");
    expect_config_error("strict: maybe\ndrop: [a]\n", "config:1:9:", NULL);
}

Test(fields_config, every_problem_is_reported)
{
    char err[2048];
    sl_harness_t *h =
        sl_harness_new("fields", "cast: {a: x}\ndrop: [1]\nselect: s\n", NULL,
                       err, sizeof err);
    cr_assert_null(h);
    cr_expect(strstr(err, "config:1:11:"), "got '%s'", err);
    cr_expect(strstr(err, "config:2:8:"), "got '%s'", err);
    cr_expect(strstr(err, "config:3:9:"), "got '%s'", err);
}
