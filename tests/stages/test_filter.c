/* The filter stage and its expression language, driven through the
 * single-stage harness. */
#include <criterion/criterion.h>

#include "harness.h"
#include "testutil.h"

#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The expression as a YAML single-quoted scalar ('' stands for '). */
static char *yaml_for(const char *expr)
{
    size_t n = strlen(expr);
    char *y = malloc(2 * n + 16);
    cr_assert_not_null(y);
    char *o = y + sprintf(y, "expr: '");
    for (size_t i = 0; i < n; i++) {
        if (expr[i] == '\'')
            *o++ = '\'';
        *o++ = expr[i];
    }
    strcpy(o, "'\n");
    return y;
}

static sl_harness_t *filter_new(const char *expr)
{
    char err[1024];
    char *yaml = yaml_for(expr);
    sl_harness_t *h = sl_harness_new("filter", yaml, NULL, err, sizeof err);
    cr_assert_not_null(h, "expr <%s>: %s", expr, err);
    free(yaml);
    return h;
}

/* 1 if expr keeps the record, 0 if it drops it; fails the test on an error. */
static int keeps(const char *expr, const char *json)
{
    sl_harness_t *h = filter_new(expr);
    int rc = sl_harness_push_json(h, json);
    cr_assert_eq(rc, 0, "expr <%s> on %s: rc %d (%s)", expr, json, rc,
                 sl_harness_last_error(h));
    size_t n = sl_harness_count(h);
    cr_assert(n <= 1);
    if (n == 1)
        cr_assert_str_eq(sl_harness_output(h, 0), json,
                         "a kept record must pass unchanged: got %s",
                         sl_harness_output(h, 0));
    sl_harness_destroy(&h);
    return (int)n;
}

#define KEEP(expr, json)                                                       \
    cr_expect_eq(keeps(expr, json), 1, "<%s> should keep %s", expr, json)
#define DROP(expr, json)                                                       \
    cr_expect_eq(keeps(expr, json), 0, "<%s> should drop %s", expr, json)

/* The config error for a bad expression (NULL if it was accepted). */
static char *compile_error(const char *expr)
{
    char err[1024];
    char *yaml = yaml_for(expr);
    sl_harness_t *h = sl_harness_new("filter", yaml, NULL, err, sizeof err);
    free(yaml);
    if (h) {
        sl_harness_destroy(&h);
        return NULL;
    }
    return strdup(err);
}

#define BAD(expr, fragment)                                                    \
    do {                                                                       \
        char *e_ = compile_error(expr);                                        \
        cr_assert_not_null(e_, "<%s> should not compile", expr);               \
        cr_expect(strstr(e_, fragment) != NULL, "<%s>: got '%s', want '%s'",   \
                  expr, e_, fragment);                                         \
        free(e_);                                                              \
    } while (0)

static const char *const REC =
    "{\"a\":5,\"s\":\"hello\",\"f\":2.5,\"b\":true,\"n\":null,"
    "\"u\":{\"age\":30,\"name\":\"Ann\"}}";

Test(filter_ops, comparisons_on_ints)
{
    KEEP("a == 5", REC);
    DROP("a == 4", REC);
    KEEP("a != 4", REC);
    DROP("a != 5", REC);
    KEEP("a < 6", REC);
    DROP("a < 5", REC);
    KEEP("a <= 5", REC);
    DROP("a <= 4", REC);
    KEEP("a > 4", REC);
    DROP("a > 5", REC);
    KEEP("a >= 5", REC);
    DROP("a >= 6", REC);
    KEEP("5 == a", REC);
    KEEP("-3 < a", REC);
}

Test(filter_ops, comparisons_on_strings_are_bytewise)
{
    KEEP("s == \"hello\"", REC);
    KEEP("s == 'hello'", REC);
    DROP("s == \"Hello\"", REC);
    KEEP("s > \"Hello\"", REC); /* 'h' (0x68) > 'H' (0x48) */
    KEEP("s < \"hellp\"", REC);
    KEEP("s > \"hell\"", REC); /* a proper prefix sorts first */
    DROP("s < \"hell\"", REC);
    KEEP("s != \"x\"", REC);
    KEEP("u.name == \"Ann\"", REC);
}

Test(filter_ops, string_operators)
{
    KEEP("s contains \"ell\"", REC);
    DROP("s contains \"elx\"", REC);
    KEEP("s contains \"\"", REC);
    KEEP("s startswith \"he\"", REC);
    DROP("s startswith \"el\"", REC);
    KEEP("s endswith \"llo\"", REC);
    DROP("s endswith \"hello!\"", REC);
    DROP("a contains \"5\"", REC); /* not a string: false, not an error */
}

Test(filter_ops, regex_matches_unanchored_extended)
{
    KEEP("s matches \"^h(e|a)l+o$\"", REC);
    KEEP("s matches \"l+\"", REC);
    DROP("s matches \"^l+\"", REC);
    DROP("a matches \"5\"", REC);
    DROP("missing matches \".*\"", REC);
    /* the record's string is not NUL-terminated: $ must see its end */
    KEEP("s matches \"lo$\"", "{\"s\":\"hello\",\"t\":\"zz\"}");
}

Test(filter_ops, in_list)
{
    KEEP("a in [1, 5, 9]", REC);
    DROP("a in [1, 2]", REC);
    KEEP("s in [\"x\", \"hello\"]", REC);
    KEEP("a in [\"5\", 5.0]", REC);
    DROP("a in []", REC);
    KEEP("missing in [1, null]", REC);
    DROP("missing in [1, 2]", REC);
}

Test(filter_ops, exists_and_bare_booleans)
{
    KEEP("exists(a)", REC);
    KEEP("exists(n)", REC); /* present though null */
    KEEP("exists(u.age)", REC);
    DROP("exists(u.zip)", REC);
    DROP("exists(a.b)", REC);
    KEEP("b", REC);
    DROP("!b", REC);
    DROP("a", REC); /* only the boolean true is true */
    DROP("missing", REC);
    KEEP("!missing", REC);
    DROP("b", "{\"b\":\"true\"}");
    KEEP("true", REC);
    DROP("false", REC);
}

Test(filter_ops, logic_words_and_symbols)
{
    KEEP("a == 5 && s == \"hello\"", REC);
    DROP("a == 5 && s == \"x\"", REC);
    KEEP("a == 5 and s == \"hello\"", REC);
    KEEP("a == 1 || s == \"hello\"", REC);
    KEEP("a == 1 or s == \"hello\"", REC);
    DROP("a == 1 or s == \"x\"", REC);
    KEEP("!(a == 1)", REC);
    KEEP("not a == 1", REC);
    DROP("not not a == 1", REC);
}

Test(filter_precedence, and_binds_tighter_than_or)
{
    const char *r = "{\"a\":1,\"b\":0,\"c\":0}";
    KEEP("a == 1 || b == 2 && c == 3", r); /* a || (b && c) */
    DROP("(a == 1 || b == 2) && c == 3", r);
    KEEP("b == 2 && c == 3 || a == 1", r);
    KEEP("a == 1 or b == 2 and c == 3", r);
}

Test(filter_precedence, not_applies_to_the_whole_comparison)
{
    const char *r = "{\"a\":1,\"b\":0}";
    DROP("!a == 1", r);           /* !(a == 1) */
    KEEP("!a == 1 || b == 0", r); /* (!(a == 1)) || (b == 0) */
    DROP("!(a == 1 || b == 0)", r);
    KEEP("!a == 2 && b == 0", r);
}

Test(filter_missing, missing_fields_compare_false_except_eq_null)
{
    DROP("m == 1", REC);
    DROP("m != 1", REC);
    DROP("m < 1", REC);
    DROP("m >= 1", REC);
    DROP("m == \"\"", REC);
    KEEP("m == null", REC);
    DROP("m != null", REC);
    KEEP("!(m == 1)", REC); /* the way to say "absent or not 1" */
    DROP("u.zip.code == 1", REC);
    DROP("m == other", REC); /* both missing: not equal */
}

Test(filter_missing, null_values)
{
    KEEP("n == null", REC);
    DROP("n != null", REC);
    KEEP("a != null", REC);
    DROP("a == null", REC);
    KEEP("n != 0", REC); /* null is unequal to every non-null value */
    DROP("n == 0", REC);
    DROP("n < 1", REC);
}

Test(filter_types, type_mismatch_is_false_for_every_operator)
{
    DROP("a == \"5\"", REC); /* numeric strings are not converted */
    DROP("a != \"5\"", REC);
    DROP("s > 1", REC);
    DROP("b == 1", REC);
    DROP("b != 1", REC);
    DROP("u == 1", REC);
    KEEP("b == true", REC);
    KEEP("b != false", REC);
    DROP("b < true", REC); /* booleans have no order */
}

Test(filter_numbers, int_and_float_compare_numerically)
{
    KEEP("a == 5.0", REC);
    KEEP("a < 5.5", REC);
    KEEP("f > 2", REC);
    KEEP("f < 3", REC);
    KEEP("f == 2.5", REC);
    KEEP("f == 25e-1", REC);
    DROP("f == 2", REC);
    KEEP("f != 2", REC);
    KEEP("x < -0.5", "{\"x\":-1}");
    KEEP("x > -1.5", "{\"x\":-1}");
}

Test(filter_numbers, exact_beyond_double_precision)
{
    /* 2^53 + 1 is not a double: converting it would make it equal */
    const char *r = "{\"x\":9007199254740993}";
    DROP("x == 9007199254740992.0", r);
    KEEP("x > 9007199254740992.0", r);
    KEEP("x == 9007199254740993", r);
    KEEP("x != 9007199254740992", r);
    const char *neg = "{\"x\":-9007199254740993}";
    KEEP("x < -9007199254740992.0", neg);
    DROP("x == -9007199254740992.0", neg);
}

/* {"x": v} packed directly: the JSON decoder widens integers above
 * INT64_MAX to floats, which would hide what is tested here. */
static int keeps_u64(const char *expr, uint64_t v)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "x", 1);
    msgpack_pack_uint64(&pk, v);
    sl_harness_t *h = filter_new(expr);
    cr_assert_eq(sl_harness_push_msgpack(h, sb.data, sb.size), 0);
    int n = (int)sl_harness_count(h);
    if (n == 1) {
        size_t len;
        const void *out = sl_harness_output_msgpack(h, 0, &len);
        cr_assert_eq(len, sb.size);
        cr_assert_eq(memcmp(out, sb.data, len), 0, "bytes must pass unchanged");
    }
    sl_harness_destroy(&h);
    msgpack_sbuffer_destroy(&sb);
    return n;
}

Test(filter_numbers, uint64_and_int64_extremes)
{
    const uint64_t max = UINT64_MAX;
    cr_expect_eq(keeps_u64("x == 18446744073709551615", max), 1);
    cr_expect_eq(keeps_u64("x > 9223372036854775807", max), 1);
    cr_expect_eq(keeps_u64("x > -1", max), 1);
    cr_expect_eq(keeps_u64("x > -9223372036854775808", max), 1);
    cr_expect_eq(keeps_u64("x == 18446744073709551614", max), 0);
    cr_expect_eq(keeps_u64("x == 18446744073709551615.0", max), 0,
                 "that double is 2^64");
    cr_expect_eq(keeps_u64("x < 18446744073709551615.0", max), 1);
    cr_expect_eq(keeps_u64("x < 1e30", max), 1);
    cr_expect_eq(keeps_u64("x == 9223372036854775808", 9223372036854775808u),
                 1);
    cr_expect_eq(keeps_u64("x > 9223372036854775807.0", 9223372036854775808u),
                 0, "2^63 as a double equals 2^63");
    cr_expect_eq(keeps_u64("x >= 9223372036854775807.0", 9223372036854775808u),
                 1);
    const char *i = "{\"x\":-9223372036854775808}";
    KEEP("x == -9223372036854775808", i);
    KEEP("x < -9223372036854775807", i);
    KEEP("x < 0", i);
    KEEP("x < 18446744073709551615", i);
    KEEP("x == -9223372036854775808.0", i);
    KEEP("x > -1e19", i);
    DROP("x < -9223372036854775808.0", i);
}

Test(filter_paths, nested_and_backtick_quoted)
{
    const char *r =
        "{\"odd key\":1,\"a.b\":2,\"in\":3,\"u\":{\"x y\":{\"z\":4}}}";
    KEEP("`odd key` == 1", r);
    KEEP("`a.b` == 2", r);
    KEEP("`in` == 3", r);
    KEEP("u.`x y`.z == 4", r);
    DROP("a.b == 2", r); /* that path means a -> b */
    KEEP("`we\\`ird` == 5", "{\"we`ird\":5}");
}

Test(filter_literals, string_escapes)
{
    KEEP("s == \"a\\\"b\"", "{\"s\":\"a\\\"b\"}");
    KEEP("s == 'it\\'s'", "{\"s\":\"it's\"}");
    KEEP("s == \"tab\\there\"", "{\"s\":\"tab\\there\"}");
    KEEP("s == \"l1\\nl2\"", "{\"s\":\"l1\\nl2\"}");
    KEEP("s == \"back\\\\slash\"", "{\"s\":\"back\\\\slash\"}");
    KEEP("s == \"caf\\u00e9\"", "{\"s\":\"caf\xc3\xa9\"}");
    KEEP("s == \"\\ud83d\\ude00\"", "{\"s\":\"\xf0\x9f\x98\x80\"}");
    KEEP("s == \"caf\xc3\xa9\"", "{\"s\":\"caf\xc3\xa9\"}");
}

Test(filter_record, passes_bytes_through_and_counts_drops)
{
    sl_harness_t *h = filter_new("level == \"error\"");
    cr_assert_eq(sl_harness_push_json(h, "{\"level\":\"info\",\"id\":1}"), 0);
    cr_assert_eq(sl_harness_push_json(h, "{\"level\":\"error\",\"id\":2}"), 0);
    cr_assert_eq(sl_harness_push_json(h, "{\"id\":3}"), 0);
    cr_assert_eq(sl_harness_push_json(h, "{\"level\":\"error\",\"id\":4}"), 0);
    cr_assert_eq(sl_harness_count(h), 2);
    cr_assert_str_eq(sl_harness_output(h, 0), "{\"level\":\"error\",\"id\":2}");
    cr_assert_str_eq(sl_harness_output(h, 1), "{\"level\":\"error\",\"id\":4}");
    cr_assert_eq(sl_harness_errors(h), 0);
    sl_harness_destroy(&h);
}

Test(filter_record, a_record_that_is_not_a_map_fails)
{
    sl_harness_t *h = filter_new("true");
    unsigned char arr[] = {0x92, 0x01, 0x02}; /* [1, 2] */
    cr_assert_lt(sl_harness_push_msgpack(h, arr, sizeof arr), 0);
    cr_assert_eq(sl_harness_errors(h), 1);
    cr_assert(strstr(sl_harness_last_error(h), "not a msgpack map"), "got '%s'",
              sl_harness_last_error(h));
    cr_assert_eq(sl_harness_count(h), 0);
    sl_harness_destroy(&h);
}

Test(filter_errors, syntax_errors_name_the_column)
{
    BAD("a > ", "column 5: expected a value but found end of expression");
    BAD("", "column 1: expected an expression but found end of expression");
    BAD("a = 1", "column 3: expected '==' but found '='");
    BAD("(a == 1", "column 8: expected ')', '&&' or '||' but found end of "
                   "expression");
    BAD("a == 1)", "column 7: expected '&&', '||' or the end but found ')'");
    BAD("a == 1 == 2",
        "column 8: expected '&&' or '||' between comparisons but found '=='");
    BAD("a == 1 & b", "column 8: expected '&&' but found '&'");
    BAD("a == 1 | b", "column 8: expected '||' but found '|'");
    BAD("a in 1", "column 6: expected '[' after 'in' but found '1'");
    BAD("a in [1, b]", "column 10: expected a literal value in the list but "
                       "found 'b'");
    BAD("a in [1 2]", "column 9: expected ',' or ']' but found '2'");
    BAD("exists(1)", "column 8: expected a field path but found '1'");
    BAD("s matches x", "column 11: expected a regex string after 'matches' "
                       "but found 'x'");
    BAD("a == == 1", "column 6: expected a value but found '=='");
    BAD("&& a", "column 1: expected an expression but found '&&'");
}

Test(filter_errors, lexical_errors_name_the_column)
{
    BAD("s == \"abc", "column 6: unterminated string");
    BAD("s == \"a\\qb\"", "column 8: invalid escape '\\q' in string");
    BAD("s == \"\\u12\"", "column 7: '\\u' needs four hex digits");
    BAD("s == \"\\ud800\"", "column 7: unpaired surrogate '\\uD800'");
    BAD("a == 99999999999999999999", "column 6: integer out of range");
    BAD("a == -9223372036854775809", "column 6: integer out of range");
    BAD("a == 1e999", "column 6: number out of range");
    BAD("a == 1.", "column 6: malformed number");
    BAD("a == 12abc", "column 6: malformed number");
    BAD("a ~ 1", "column 3: unexpected character '~'");
    BAD("a == 1 \xc3\xa9", "column 8: unexpected character '\xc3\xa9'");
    BAD("\xc3\xa9\xc3\xa9 == 1", "column 1: unexpected character");
    BAD("`abc == 1", "column 1: unterminated `name`");
    BAD("`` == 1", "column 1: empty field name");
    BAD("a. == 1", "column 3: expected a field name after '.'");
    BAD("s matches \"(\"", "column 11: invalid regex:");
    /* glibc's regcomp would take minutes and gigabytes on these */
    BAD("s matches \"a++++++++++++++++++++++++\"",
        "column 11: regex refused: repetition operators follow one another "
        "at character 3 (each copies what it repeats)");
    BAD("s matches \"((a{60}){60}){60}\"",
        "column 11: regex refused: its repetitions expand to more than "
        "100000 elements by character 17");
}

Test(filter_errors, columns_count_characters_not_bytes)
{
    BAD("s == \"\xc3\xa9\xc3\xa9\" &&", "column 13: expected an expression but "
                                        "found end of expression");
}

Test(filter_errors, message_carries_the_config_position)
{
    char *e = compile_error("a >");
    cr_assert_not_null(e);
    /* the node is the scalar after "expr: " on line 1 */
    cr_expect(strstr(e, "config:1:7:") != NULL, "got '%s'", e);
    cr_expect(strstr(e, "expr: column 4: expected a value") != NULL, "got '%s'",
              e);
    free(e);
}

Test(filter_errors, nesting_limit)
{
    char buf[512];
    /* 64 levels are fine */
    memset(buf, '(', 64);
    strcpy(buf + 64, "true");
    memset(buf + 68, ')', 64);
    buf[132] = '\0';
    sl_harness_t *h = filter_new(buf);
    cr_assert_eq(sl_harness_push_json(h, "{}"), 0);
    cr_assert_eq(sl_harness_count(h), 1);
    sl_harness_destroy(&h);
    /* the 65th is refused at its own column */
    memset(buf, '(', 65);
    strcpy(buf + 65, "true");
    memset(buf + 69, ')', 65);
    buf[134] = '\0';
    BAD(buf, "column 65: expression nested too deeply (limit 64)");
    memset(buf, '!', 100);
    strcpy(buf + 100, "true");
    BAD(buf, "column 65: expression nested too deeply (limit 64)");
    /* 'not' counts like '!' */
    buf[0] = '\0';
    for (int i = 0; i < 70; i++)
        strcat(buf, "not ");
    strcat(buf, "true");
    BAD(buf, "column 257: expression nested too deeply (limit 64)");
}

Test(filter_errors, huge_inputs_fail_cleanly)
{
    /* far deeper than any stack would take if the parser recursed freely */
    size_t n = 60000;
    char *deep = malloc(n + 8);
    memset(deep, '(', n);
    strcpy(deep + n, "true");
    BAD(deep, "expression nested too deeply");
    free(deep);
    /* over the length limit */
    n = 70000;
    char *longx = malloc(n + 1);
    memset(longx, ' ', n);
    memcpy(longx, "true", 4);
    longx[n] = '\0';
    BAD(longx, "expression is 70000 bytes long (limit 65536)");
    free(longx);
}

Test(filter_errors, long_or_chains_are_not_nesting)
{
    /* 2000 alternatives: flat, not 2000 levels deep */
    size_t cap = 2000 * 16;
    char *x = malloc(cap);
    x[0] = '\0';
    size_t len = 0;
    for (int i = 0; i < 2000; i++)
        len += (size_t)snprintf(x + len, cap - len, "%sa == %d",
                                i ? " || " : "", i);
    sl_harness_t *h = filter_new(x);
    cr_assert_eq(sl_harness_push_json(h, "{\"a\":1999}"), 0);
    cr_assert_eq(sl_harness_push_json(h, "{\"a\":2000}"), 0);
    cr_assert_eq(sl_harness_count(h), 1);
    cr_assert_str_eq(sl_harness_output(h, 0), "{\"a\":1999}");
    sl_harness_destroy(&h);
    free(x);
}

Test(filter_config, expr_is_required_and_must_be_a_string)
{
    char err[1024];
    sl_harness_t *h = sl_harness_new("filter", "", NULL, err, sizeof err);
    cr_assert_null(h);
    cr_expect(strstr(err, "missing required key 'expr'") != NULL, "got '%s'",
              err);
    h = sl_harness_new("filter", "expr: 5\n", NULL, err, sizeof err);
    cr_assert_null(h);
    cr_expect(strstr(err, "config:1:7:") &&
                  strstr(err, "'expr' must be a string"),
              "got '%s'", err);
    h = sl_harness_new("filter", "expr: 'true'\nexpression: x\n", NULL, err,
                       sizeof err);
    cr_assert_null(h);
    cr_expect(strstr(err, "config:2:1:") &&
                  strstr(err, "unknown key 'expression'"),
              "got '%s'", err);
}
