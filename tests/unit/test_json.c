/* sl_json_encode / sl_json_decode: round trips, escaping, UTF-8 repair and
 * validation, number formatting, duplicate keys, error positions, reuse of
 * the per-thread decoder state, and robustness against arbitrary bytes. */
#include <criterion/criterion.h>
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/json.h>

#include "testutil.h"

/* Encodes obj and returns the text (malloc'd, NUL-terminated). */
static char *enc(const msgpack_object *obj)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(sl_json_encode(obj, &sb), 0);
    char *s = strndup(sb.data ? sb.data : "", sb.size);
    msgpack_sbuffer_destroy(&sb);
    return s;
}

/* Encodes msgpack bytes (one value). */
static char *enc_bytes(const char *data, size_t len)
{
    msgpack_zone z;
    msgpack_object obj;
    msgpack_zone_init(&z, 1024);
    cr_assert_eq(msgpack_unpack(data, len, NULL, &z, &obj),
                 MSGPACK_UNPACK_SUCCESS);
    char *s = enc(&obj);
    msgpack_zone_destroy(&z);
    return s;
}

/* JSON -> msgpack -> JSON. */
static char *rt(const char *json)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char err[256] = "";
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = sl_json_decode(json, strlen(json), &pk, err, sizeof(err));
    cr_assert_eq(rc, 0, "decode of %s failed: %s", json, err);
    char *s = enc_bytes(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return s;
}

static void check_rt(const char *json, const char *want)
{
    char *got = rt(json);
    cr_expect_str_eq(got, want, "input %s: got %s want %s", json, got, want);
    free(got);
}

/* Decodes json expecting failure; returns the error text in err. */
static void check_err(const char *json, size_t len, const char *want)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char err[256] = "";
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    cr_assert_eq(sl_json_decode(json, len, &pk, err, sizeof(err)), -EBADMSG,
                 "input %s", json);
    cr_expect_eq(sb.size, 0, "something was packed on error");
    cr_expect(strstr(err, want) != NULL, "error '%s' lacks '%s'", err, want);
    msgpack_sbuffer_destroy(&sb);
}

/* Decodes json (len bytes) into sb, which the caller initialised. */
static int dec(const char *json, size_t len, msgpack_sbuffer *sb, char *err,
               size_t errlen)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    return sl_json_decode(json, len, &pk, err, errlen);
}

Test(json, round_trip_basic)
{
    check_rt("{}", "{}");
    check_rt("[]", "[]");
    check_rt(" {\"a\": 1, \"b\": [true, false, null], \"c\": \"x\"} \n",
             "{\"a\":1,\"b\":[true,false,null],\"c\":\"x\"}");
    check_rt("{\"n\":{\"m\":{\"k\":[1,[2,[3]]]}}}",
             "{\"n\":{\"m\":{\"k\":[1,[2,[3]]]}}}");
    /* Scalars at the top level are accepted (JSON_DECODE_ANY). */
    check_rt("42", "42");
    check_rt("\"s\"", "\"s\"");
    check_rt("null", "null");
}

Test(json, key_order_kept)
{
    check_rt("{\"z\":1,\"a\":2,\"m\":3,\"b\":4,\"y\":5}",
             "{\"z\":1,\"a\":2,\"m\":3,\"b\":4,\"y\":5}");
    /* A duplicate key keeps its first position and the last value. */
    check_rt("{\"a\":1,\"b\":2,\"a\":3}", "{\"a\":3,\"b\":2}");
}

Test(json, duplicate_keys)
{
    /* Three times, containers as values: the values skipped are whole
     * subtrees, and the one kept may be a container too. */
    check_rt("{\"a\":{\"x\":[1,{\"a\":2}]},\"b\":2,\"a\":3,\"c\":[],"
             "\"a\":[4,{\"y\":5}]}",
             "{\"a\":[4,{\"y\":5}],\"b\":2,\"c\":[]}");
    /* The same key in different maps is no duplicate, including a parent's
     * key seen again inside a child and after it. */
    check_rt("{\"a\":{\"a\":1,\"b\":2},\"b\":{\"a\":3,\"a\":4},\"c\":5}",
             "{\"a\":{\"a\":1,\"b\":2},\"b\":{\"a\":4},\"c\":5}");
    /* Keys that share a prefix or differ only by length are distinct;
     * escaped and plain spellings of one key are the same key. */
    check_rt("{\"ab\":1,\"a\":2,\"abc\":3,\"\":4,\"\\u0061\":5,\"\":6}",
             "{\"ab\":1,\"a\":5,\"abc\":3,\"\":6}");
    check_rt("[{\"k\":1},{\"k\":2,\"k\":3},{\"k\":4}]",
             "[{\"k\":1},{\"k\":3},{\"k\":4}]");
}

/* Builds {"k0":0,...,"k<n-1>":n-1<tail>} where the value of key k<idx[j]>
 * is vals[j] instead. */
static char *seq_map(int n, const char *tail, int nover, const int *idx,
                     const char *const *vals)
{
    size_t cap = (size_t)n * 24 + strlen(tail) + 8;
    for (int j = 0; j < nover; j++)
        cap += strlen(vals[j]);
    char *s = malloc(cap);
    size_t o = 0;
    s[o++] = '{';
    for (int i = 0; i < n; i++) {
        const char *v = NULL;
        for (int j = 0; j < nover; j++)
            if (idx[j] == i)
                v = vals[j];
        o += (size_t)(v ? snprintf(s + o, cap - o, "%s\"k%d\":%s",
                                   i ? "," : "", i, v)
                        : snprintf(s + o, cap - o, "%s\"k%d\":%d",
                                   i ? "," : "", i, i));
    }
    snprintf(s + o, cap - o, "%s}", tail);
    return s;
}

Test(json, duplicate_keys_in_big_maps)
{
    /* Past 16 keys duplicates are found through a hash index: check the
     * first, a middle and the last key, in two big maps open at once (the
     * nested one must not take its parent's keys for its own). */
    char *inner = seq_map(40, ",\"k0\":\"i0\",\"k39\":\"i39\"", 0, NULL, NULL);
    size_t tcap = strlen(inner) + 128;
    char *tail = malloc(tcap);
    snprintf(tail, tcap,
             ",\"k0\":\"first\",\"k500\":\"mid\",\"sub\":%s,\"k999\":\"last\"",
             inner);
    char *in = seq_map(1000, tail, 0, NULL, NULL);

    static const int iidx[] = {0, 39};
    static const char *const ivals[] = {"\"i0\"", "\"i39\""};
    char *want_inner = seq_map(40, "", 2, iidx, ivals);
    snprintf(tail, tcap, ",\"sub\":%s", want_inner);
    static const int oidx[] = {0, 500, 999};
    static const char *const ovals[] = {"\"first\"", "\"mid\"", "\"last\""};
    char *want = seq_map(1000, tail, 3, oidx, ovals);
    check_rt(in, want);
    free(want);
    free(want_inner);
    free(in);
    free(tail);
    free(inner);

    /* Exactly one pair per distinct key: 1000 keys, each given twice. */
    char *once = seq_map(1000, "", 0, NULL, NULL);
    size_t len = strlen(once);
    char *twice = malloc(2 * len + 2);
    memcpy(twice, once, len - 1);
    twice[len - 1] = ',';
    memcpy(twice + len, once + 1, len);
    check_rt(twice, once);
    free(twice);
    free(once);
}

Test(json, integers)
{
    check_rt("[0,-1,127,128,-32,-33,65535,4294967296]",
             "[0,-1,127,128,-32,-33,65535,4294967296]");
    check_rt("[9223372036854775807,-9223372036854775808]",
             "[9223372036854775807,-9223372036854775808]");
    /* Above int64 but within uint64: exact unsigned integers. */
    check_rt("{\"big\":18446744073709551615,\"small\":7,\"s\":\"123456789012345678901\"}",
             "{\"big\":18446744073709551615,\"small\":7,\"s\":\"123456789012345678901\"}");
    check_rt("[9223372036854775808,-0]", "[9223372036854775808,0]");
    /* Beyond both: floats. */
    check_rt("[18446744073709551616,-9223372036854775809]",
             "[1.8446744073709552e+19,-9.223372036854776e+18]");
    check_rt("[100000000000000000000000000000000000000000000000000]",
             "[1e+50]");

    /* The msgpack types: UINT64_MAX is a positive integer, not a float. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(dec("[18446744073709551615,-9223372036854775808,1.0]", 47,
                     &sb, NULL, 0),
                 0);
    msgpack_zone z;
    msgpack_object a;
    msgpack_zone_init(&z, 256);
    cr_assert_eq(msgpack_unpack(sb.data, sb.size, NULL, &z, &a),
                 MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(a.via.array.size, 3);
    cr_expect_eq(a.via.array.ptr[0].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    cr_expect_eq(a.via.array.ptr[0].via.u64, UINT64_MAX);
    cr_expect_eq(a.via.array.ptr[1].type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    cr_expect_eq(a.via.array.ptr[1].via.i64, INT64_MIN);
    cr_expect_eq(a.via.array.ptr[2].type, MSGPACK_OBJECT_FLOAT64);
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&sb);

    /* uint64 beyond int64 from msgpack prints exactly. */
    msgpack_object o = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER,
                        .via.u64 = UINT64_MAX};
    char *s = enc(&o);
    cr_expect_str_eq(s, "18446744073709551615");
    free(s);
}

Test(json, floats)
{
    /* Precision starts at 15 digits, so subnormals are not the shortest
     * form (5e-324 would be) but still read back exactly. */
    check_rt("[0.1,1.0,1.5,-2.25,1e300,5e-324,1e21,123456.789]",
             "[0.1,1.0,1.5,-2.25,1e+300,4.94065645841247e-324,1e+21,"
             "123456.789]");
    check_rt("[0.30000000000000004,3.141592653589793,100.0,-0.0]",
             "[0.30000000000000004,3.141592653589793,100.0,-0.0]");
    check_rt("[1E2,2e-2,1.5E+3,1e-400]", "[100.0,0.02,1500.0,0.0]");
    /* A long mantissa goes through the scratch buffer, not the stack. */
    check_rt("[0.1000000000000000000000000000000000000000000000000000000000"
             "0000000000000000001]",
             "[0.1]");
    /* Too large for a double: refused rather than turned into null. */
    check_err("[1,\n 1e400]", 11, "line 2 column 6: number out of range");
    check_err("-1e999", 6, "line 1 column 6: number out of range");
    char huge[420] = "[";
    memset(huge + 1, '9', 400);
    strcpy(huge + 401, "]");
    check_err(huge, strlen(huge), "line 1 column 401: number out of range");

    msgpack_object o = {.type = MSGPACK_OBJECT_FLOAT64, .via.f64 = NAN};
    char *s = enc(&o);
    cr_expect_str_eq(s, "null");
    free(s);
    o.via.f64 = -INFINITY;
    s = enc(&o);
    cr_expect_str_eq(s, "null");
    free(s);
    /* float32 prints the shortest text that reads back as the same float. */
    o.type = MSGPACK_OBJECT_FLOAT32;
    o.via.f64 = (double)0.1f;
    s = enc(&o);
    cr_expect_str_eq(s, "0.1");
    free(s);
    o.via.f64 = 3.0;
    s = enc(&o);
    cr_expect_str_eq(s, "3.0");
    free(s);
}

/* Every double the encoder prints reads back as the same double: decimals
 * (the fast path), awkward binary fractions, and random bit patterns. */
Test(json, doubles_read_back_exactly)
{
    srand(12345);
    for (int i = 0; i < 200000; i++) {
        double d;
        switch (i % 4) {
        case 0: /* prices and amounts */
            d = (double)(rand() % 10000000) / 100.0;
            break;
        case 1: /* up to six decimals */
            d = (double)(rand() - RAND_MAX / 2) / 1e6;
            break;
        case 2: /* values near the fast path's edges */
            d = (rand() % 2 ? 1e9 : 1e-6) * (0.5 + (double)rand() / RAND_MAX);
            break;
        default: { /* any finite bit pattern */
            uint64_t bits = (uint64_t)rand() << 33 ^ (uint64_t)rand() << 11 ^
                            (uint64_t)rand();
            memcpy(&d, &bits, sizeof(d));
            if (!isfinite(d))
                d = 1.0 / 3.0;
        }
        }
        msgpack_object o = {.type = MSGPACK_OBJECT_FLOAT64, .via.f64 = d};
        char *text = enc(&o);
        char *end = NULL;
        double back = strtod(text, &end);
        cr_assert(*end == '\0' && back == d, "%.17g printed as %s", d, text);
        cr_assert(strpbrk(text, ".e"), "%s would read back as an integer", text);
        free(text);
    }
    char *s = rt("[720.46,0.5,-3.25,1e-6,999999999.999999]");
    cr_expect_str_eq(s, "[720.46,0.5,-3.25,0.000001,999999999.999999]");
    free(s);
}

Test(json, string_escaping)
{
    check_rt("\"q\\\" b\\\\ s\\/ n\\n r\\r t\\t b\\b f\\f\"",
             "\"q\\\" b\\\\ s/ n\\n r\\r t\\t b\\b f\\f\"");
    check_rt("\"\\u0001\\u001f\\u007f\"", "\"\\u0001\\u001f\x7f\"");
    /* NUL survives both ways in values; keys are refused, since sluice
     * looks fields up by C string. */
    check_rt("{\"key\":\"a\\u0000b\"}", "{\"key\":\"a\\u0000b\"}");
    check_err("{\"k\\u0000\":1}", 12, "line 1 column 10: NUL byte in object key");
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(dec("\"a\\u0000b\"", 10, &sb, NULL, 0), 0);
    cr_expect_eq(sb.size, 4);
    cr_expect(memcmp(sb.data, "\xa3" "a\0b", 4) == 0, "NUL not kept");
    msgpack_sbuffer_destroy(&sb);
    /* Non-ASCII is kept as UTF-8, escapes are turned into UTF-8. */
    check_rt("\"\\u00e9\\u20ac\\ud83d\\ude00 é€😀\"",
             "\"é€😀 é€😀\"");
}

static char *enc_str(const char *bytes, size_t n)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_STR};
    o.via.str.ptr = bytes;
    o.via.str.size = (uint32_t)n;
    return enc(&o);
}

Test(json, invalid_utf8_replaced)
{
    static const struct {
        const char *in;
        size_t len;
        const char *want;
    } cases[] = {
        {"a\xff" "b", 3, "\"a\xef\xbf\xbd" "b\""},        /* bad lead byte */
        {"\x80", 1, "\"\xef\xbf\xbd\""},                  /* lone continuation */
        {"\xc0\xaf", 2, "\"\xef\xbf\xbd\xef\xbf\xbd\""},  /* overlong 2-byte */
        {"\xe0\x80\xaf", 3,
         "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""},     /* overlong 3-byte */
        {"\xed\xa0\x80", 3,
         "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""},     /* surrogate */
        {"\xf4\x90\x80\x80", 4, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                                "\xef\xbf\xbd\""},        /* > U+10FFFF */
        {"\xe2\x82", 2, "\"\xef\xbf\xbd\""},              /* truncated at end */
        {"\xe2\x82x", 3, "\"\xef\xbf\xbdx\""},            /* truncated midway */
        {"\xf0\x9f\x98", 3, "\"\xef\xbf\xbd\""},          /* truncated 4-byte */
        {"\xf0\x9f\x98\x80", 4, "\"\xf0\x9f\x98\x80\""},  /* valid U+1F600 */
        {"\xef\xbf\xbf", 3, "\"\xef\xbf\xbf\""},          /* valid U+FFFF */
        {"\xc2\x80", 2, "\"\xc2\x80\""},                  /* valid U+0080 */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *s = enc_str(cases[i].in, cases[i].len);
        cr_expect_str_eq(s, cases[i].want, "case %zu", i);
        free(s);
    }
}

Test(json, bin_ext_and_key_types)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 8);
    msgpack_pack_str_with_body(&pk, "b0", 2);
    msgpack_pack_bin_with_body(&pk, "", 0);
    msgpack_pack_str_with_body(&pk, "b1", 2);
    msgpack_pack_bin_with_body(&pk, "f", 1);
    msgpack_pack_str_with_body(&pk, "b2", 2);
    msgpack_pack_bin_with_body(&pk, "fo", 2);
    msgpack_pack_str_with_body(&pk, "b3", 2);
    msgpack_pack_bin_with_body(&pk, "foo\xff", 4);
    msgpack_pack_int(&pk, -5); /* integer key */
    msgpack_pack_ext_with_body(&pk, "\x01\x02", 2, 7);
    msgpack_pack_nil(&pk); /* nil key */
    msgpack_pack_true(&pk);
    msgpack_pack_array(&pk, 2); /* array key holding a string */
    msgpack_pack_str_with_body(&pk, "q\"", 2);
    msgpack_pack_double(&pk, 0.5);
    msgpack_pack_int(&pk, 0);
    msgpack_pack_bin_with_body(&pk, "hi", 2); /* bin key */
    msgpack_pack_int(&pk, 1);
    char *s = enc_bytes(sb.data, sb.size);
    cr_expect_str_eq(s, "{\"b0\":\"\",\"b1\":\"Zg==\",\"b2\":\"Zm8=\","
                        "\"b3\":\"Zm9v/w==\",\"-5\":{\"ext\":7,\"data\":\"AQI=\"},"
                        "\"null\":true,\"[\\\"q\\\\\\\"\\\",0.5]\":0,\"aGk=\":1}");
    free(s);
    msgpack_sbuffer_destroy(&sb);
}

Test(json, invalid_utf8_and_surrogates_refused)
{
    /* yajl checks only the shape of UTF-8 sequences; the rest (overlong
     * forms, encoded surrogates, above U+10FFFF) is checked on top, in
     * values and keys, naming the column of the bad byte. */
    check_err("[\"\xff\"]", 4, "line 1 column 3: lexical error: invalid "
                                 "bytes in UTF8 string");
    check_err("[\"ab\xc0\xaf\"]", 7, "line 1 column 5: invalid UTF-8 in string");
    check_err("{\"k\":\"\xed\xa0\x80\"}", 10,
              "line 1 column 7: invalid UTF-8 in string");
    check_err("{\"\xf4\x90\x80\x80\":1}", 9,
              "line 1 column 3: invalid UTF-8 in string");
    check_err("[\"\\n\xe0\x80\xaf\"]", 9, "line 1 column 5: invalid UTF-8");
    /* Escapes must pair surrogates; yajl would make a lone high one '?'
     * and pair it with any escape that follows. The column is the last
     * character of the unpaired escape. */
    check_err("[\"\\ud800x\"]", 11, "line 1 column 8: unpaired UTF-16 "
                                    "surrogate in \\u escape");
    check_err("[\"x\\udc00\"]", 11, "line 1 column 9: unpaired UTF-16");
    check_err("{\"\\ud800\\u0041\":1}", 18, "line 1 column 8: unpaired");
    check_err("\"\\ud83d\\\\ude00\"", 17, "line 1 column 7: unpaired");
    /* Valid: a pair, a quote escaped before non-ASCII, strings at the
     * very start of the text (the raw scan must not run off the front). */
    check_rt("\"\\\"\xc3\xa9\\ud83d\\ude00\"", "\"\\\"\xc3\xa9\xf0\x9f\x98\x80\"");
    check_rt("\"\\\\\"", "\"\\\\\"");
    check_rt("{\"\\\\\":\"\xef\xbf\xbf\\\\\"}", "{\"\\\\\":\"\xef\xbf\xbf\\\\\"}");
}

Test(json, numbers_ignore_the_locale)
{
    /* An embedding program may set a decimal-comma LC_NUMERIC, under which
     * plain strtod would read "1.5" as 1. Build such a locale here. */
    char *dir = sl_test_tmpdir();
    char cmd[512], *out = NULL;
    snprintf(cmd, sizeof(cmd),
             "localedef -i de_DE -f ISO-8859-1 %s/de_DE 2>&1", dir);
    int st = sl_test_run(cmd, &out);
    free(out);
    setenv("LOCPATH", dir, 1);
    if (st != 0 || !setlocale(LC_NUMERIC, "de_DE")) {
        free(dir);
        cr_skip_test("localedef could not build de_DE (status %d)", st);
    }
    cr_assert_eq(strtod("1.5", NULL), 1.0, "locale not in effect");
    check_rt("[1.5,-0.25,2e-1,1E3]", "[1.5,-0.25,0.2,1000.0]");
    setlocale(LC_NUMERIC, "C");
    free(dir);
}

Test(json, errors_name_line_and_column)
{
    check_err("{\"a\":1,\n \"b\": }", 15, "line 2 column 7: ");
    check_err("{\"a\":1", 6, "line 1 column 6: parse error: premature EOF");
    check_err("", 0, "line 1 column 0: ");
    check_err("  \n ", 4, "line 2 column 1: ");
    check_err("{} x", 4, "line 1 column 4: parse error: trailing garbage");
    check_err("[1] 2", 5, "line 1 column 5: parse error: trailing garbage");
    check_err("[1,]", 4, "line 1 column 4: ");
    check_err("{\"a\":1,}", 8, "line 1 column 8: ");
    check_err("[01]", 4, "line 1 column 3: ");
    check_err("[\"a\tb\"]", 7, "invalid character inside string");
    check_err("[1]\0", 4, "trailing garbage");
    check_err("/* c */ 1", 9, "line 1 column 0: lexical error: probable "
                              "comment found");
    /* Columns count characters, not bytes: \xc3\xa9 is one. */
    check_err("[\"\xc3\xa9\", x]", 8, "line 1 column 7: ");
    /* Only [0,len) is read: the rest of the buffer is not looked at. */
    check_err("{\"a\":1}", 5, "line 1 column 5: ");
    /* A syntax error after a big integer is still reported. */
    check_err("[18446744073709551615, x]", 25,
              "line 1 column 24: lexical error: invalid char in json text");
    /* The reason is one line, without yajl's trailing newline. */
    msgpack_sbuffer sb0;
    char e[256];
    msgpack_sbuffer_init(&sb0);
    cr_assert_eq(dec("[tru]", 5, &sb0, e, sizeof(e)), -EBADMSG);
    cr_expect(strchr(e, '\n') == NULL, "'%s'", e);
    cr_expect_eq(e[strlen(e) - 1] != '.', 1, "'%s'", e);
    /* A short err buffer is truncated, still terminated. */
    cr_assert_eq(dec("[tru]", 5, &sb0, e, 8), -EBADMSG);
    cr_expect_str_eq(e, "line 1 ");
    msgpack_sbuffer_destroy(&sb0);

    /* errlen 0 and a NULL err are allowed. */
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    cr_expect_eq(sl_json_decode("{", 1, &pk, NULL, 0), -EBADMSG);
    msgpack_sbuffer_destroy(&sb);
}

Test(json, nesting_limited_to_what_msgpack_can_unpack)
{
    char buf[200];
    /* 32 nested containers unpack; 33 would not, so they are refused. */
    memset(buf, '[', 32);
    memset(buf + 32, ']', 32);
    buf[64] = '\0';
    char *s = rt(buf);
    cr_expect_str_eq(s, buf);
    free(s);

    /* The object is level 1, so the 32nd '[' is one too many; it sits on
     * line 2 after a string holding brackets that must not count. */
    char deep[200];
    int n = snprintf(deep, sizeof(deep), "{\"a\":\n[\"[[\\\"\",");
    memset(deep + n, '[', 31);
    memset(deep + n + 31, ']', 32);
    strcpy(deep + n + 63, "}");
    check_err(deep, strlen(deep), "line 2 column 39: nested deeper than 32");
}

Test(json, encoder_limits_recursion)
{
    enum { N = 3000 };
    msgpack_object *objs = calloc(N, sizeof(*objs));
    for (int i = 0; i < N; i++) {
        objs[i].type = MSGPACK_OBJECT_ARRAY;
        objs[i].via.array.size = i + 1 < N ? 1 : 0;
        objs[i].via.array.ptr = i + 1 < N ? &objs[i + 1] : NULL;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_write(&sb, "x", 1);
    cr_expect_eq(sl_json_encode(&objs[0], &sb), -ELOOP);
    /* Nothing of the failed value is left in the buffer. */
    cr_expect_eq(sb.size, 1);
    cr_expect_eq(sl_json_encode(&objs[N - 100], &sb), 0);
    cr_expect_eq(sb.size, 1 + 200);
    msgpack_sbuffer_destroy(&sb);
    free(objs);
}

Test(json, appends_without_reallocating_when_room)
{
    /* Encoding appends; with enough room it must not touch the allocation
     * (the hot path writes many records into one reused buffer). */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_write(&sb, "[", 1);
    char big[4096] = {0};
    msgpack_sbuffer_write(&sb, big, sizeof(big));
    sb.size = 1;
    char *data = sb.data;

    msgpack_sbuffer in;
    msgpack_packer pk;
    msgpack_sbuffer_init(&in);
    msgpack_packer_init(&pk, &in, msgpack_sbuffer_write);
    char err[128];
    const char *js = "{\"msg\":\"hello \\\"world\\\"\",\"n\":[1,2.5,null]}";
    cr_assert_eq(sl_json_decode(js, strlen(js), &pk, err, sizeof(err)), 0);
    msgpack_zone z;
    msgpack_object obj;
    msgpack_zone_init(&z, 1024);
    cr_assert_eq(msgpack_unpack(in.data, in.size, NULL, &z, &obj),
                 MSGPACK_UNPACK_SUCCESS);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(sl_json_encode(&obj, &sb), 0);
    cr_expect_eq(sb.data, data);
    cr_expect_eq(sb.size, 1 + 10 * strlen(js));
    cr_expect(memcmp(sb.data + 1 + 9 * strlen(js), js, strlen(js)) == 0);
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&in);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- reuse of the per-thread decoder state ------------------------------- */

/* Documents that exercise every scratch area: yajl's arena and its malloc
 * fallback (a long escaped string), the string and token buffers, the key
 * index, the nesting limit, and errors in the middle. */
static const char *const s_mix[] = {
    "{\"a\":1,\"b\":\"x\\ny\",\"c\":[true,null,2.5]}",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    "{\"a\":{\"b\":{\"c\":1,\"c\":2}},\"a\":3}",
    "[1,2,",
    "\"\\u00e9\\t\"",
    "18446744073709551615",
};

static char *long_escaped(size_t n)
{
    /* n escapes "\n" in a string: yajl unescapes it into a buffer that
     * outgrows the arena. */
    char *s = malloc(2 * n + 3);
    s[0] = '"';
    for (size_t i = 0; i < n; i++)
        memcpy(s + 1 + 2 * i, "\\n", 2);
    strcpy(s + 1 + 2 * n, "\"");
    return s;
}

/* Decodes and re-encodes doc: the JSON text, or "ERR <error>". */
static char *outcome(const char *doc, size_t len)
{
    msgpack_sbuffer sb;
    char err[256];
    msgpack_sbuffer_init(&sb);
    int rc = dec(doc, len, &sb, err, sizeof(err));
    char *s;
    if (rc == 0) {
        s = enc_bytes(sb.data, sb.size);
    } else {
        cr_assert_eq(rc, -EBADMSG);
        s = malloc(strlen(err) + 5);
        sprintf(s, "ERR %s", err);
    }
    msgpack_sbuffer_destroy(&sb);
    return s;
}

Test(json, state_reused_across_records)
{
    enum { NMIX = sizeof(s_mix) / sizeof(s_mix[0]) };
    char *big = long_escaped(100000);
    char *want[NMIX + 1];
    for (size_t i = 0; i < NMIX; i++)
        want[i] = outcome(s_mix[i], strlen(s_mix[i]));
    want[NMIX] = outcome(big, strlen(big));
    cr_expect_str_eq(want[2], "{\"a\":3}");
    cr_expect_str_eq(want[3], "ERR line 1 column 5: parse error: premature EOF");
    cr_expect_eq(strlen(want[NMIX]), 2 * 100000 + 2);
    /* Any order, many times: each record decodes as if it were the first. */
    for (int round = 0; round < 50; round++) {
        for (size_t k = 0; k <= NMIX; k++) {
            size_t i = (k * 7 + (size_t)round) % (NMIX + 1);
            const char *doc = i < NMIX ? s_mix[i] : big;
            char *got = outcome(doc, strlen(doc));
            cr_assert_str_eq(got, want[i], "round %d doc %zu", round, i);
            free(got);
        }
    }
    for (size_t i = 0; i <= NMIX; i++)
        free(want[i]);
    free(big);
}

typedef struct {
    const char *doc;
    const char *want;
    int bad;
} s_thr_t;

static void *s_thread(void *arg)
{
    s_thr_t *t = arg;
    for (int i = 0; i < 3000 && !t->bad; i++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        if (dec(t->doc, strlen(t->doc), &sb, NULL, 0) != 0) {
            t->bad = 1;
        } else {
            msgpack_zone z;
            msgpack_object o;
            msgpack_sbuffer out;
            msgpack_zone_init(&z, 1024);
            msgpack_sbuffer_init(&out);
            if (msgpack_unpack(sb.data, sb.size, NULL, &z, &o) !=
                    MSGPACK_UNPACK_SUCCESS ||
                sl_json_encode(&o, &out) != 0 ||
                out.size != strlen(t->want) ||
                memcmp(out.data, t->want, out.size) != 0)
                t->bad = 1;
            msgpack_sbuffer_destroy(&out);
            msgpack_zone_destroy(&z);
        }
        msgpack_sbuffer_destroy(&sb);
    }
    return NULL;
}

Test(json, threads_decode_independently)
{
    /* Each thread has its own state: interleaved records must not mix. */
    s_thr_t t[3] = {
        {"{\"t\":\"one\\u00e9\",\"n\":[1,2,3],\"t\":\"ONE\"}",
         "{\"t\":\"ONE\",\"n\":[1,2,3]}", 0},
        {"[{\"k\":\"two\\\\\"},18446744073709551615,-1.5]",
         "[{\"k\":\"two\\\\\"},18446744073709551615,-1.5]", 0},
        {"{\"x\":{\"y\":{\"z\":\"three\\n\"}}}",
         "{\"x\":{\"y\":{\"z\":\"three\\n\"}}}", 0},
    };
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, s_thread, &t[i]), 0);
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        cr_expect_eq(t[i].bad, 0, "thread %d saw a wrong result", i);
    }
}

/* ---- robustness ---------------------------------------------------------- */

/* Decodes len bytes of doc: it must succeed with msgpack that unpacks whole
 * and encodes, or fail with -EBADMSG, a positioned error and nothing
 * packed. Returns rc. */
static int robust(const char *doc, size_t len)
{
    msgpack_sbuffer sb;
    char err[128];
    msgpack_sbuffer_init(&sb);
    /* A copy of exactly len bytes, so ASan catches any read past the end. */
    char *copy = malloc(len ? len : 1);
    memcpy(copy, doc, len);
    memset(err, 'X', sizeof(err));
    int rc = dec(copy, len, &sb, err, sizeof(err));
    cr_assert(rc == 0 || rc == -EBADMSG, "rc %d", rc);
    if (rc == 0) {
        msgpack_zone z;
        msgpack_object o;
        size_t off = 0;
        msgpack_zone_init(&z, 1024);
        cr_assert_eq(msgpack_unpack(sb.data, sb.size, &off, &z, &o),
                     MSGPACK_UNPACK_SUCCESS);
        cr_assert_eq(off, sb.size, "trailing msgpack bytes");
        msgpack_sbuffer js;
        msgpack_sbuffer_init(&js);
        cr_assert_eq(sl_json_encode(&o, &js), 0);
        msgpack_sbuffer_destroy(&js);
        msgpack_zone_destroy(&z);
    } else {
        cr_assert_eq(sb.size, 0, "packed on error");
        cr_assert(memchr(err, '\0', sizeof(err)) != NULL, "unterminated");
        cr_assert(strncmp(err, "line ", 5) == 0, "error '%s'", err);
    }
    msgpack_sbuffer_destroy(&sb);
    free(copy);
    return rc;
}

static uint64_t s_rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return (uint32_t)(s_rng >> 16);
}

static const char *const s_valid[] = {
    "{\"msg\":\"hello \\\"world\\\" \\u00e9\\ud83d\\ude00 \xc3\xa9\",\"n\":[1,-2.5e3,"
    "18446744073709551615,-9223372036854775809,true,false,null],\"d\":{\"a\":1,"
    "\"a\":{\"b\":[[],{}]}}}",
    " [ \"\\\\\", \"\\/\\b\\f\\n\\r\\t\", 0.0, -0, 1E+2, {\"\":\"\"} ] \n",
    "\"a\\u0000b\"",
    "12345678901234567890123",
    "{\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,\"k8\":8,"
    "\"k9\":9,\"k10\":10,\"k11\":11,\"k12\":12,\"k13\":13,\"k14\":14,\"k15\":15,"
    "\"k16\":16,\"k17\":17,\"k3\":33,\"k18\":{\"k3\":1}}",
};

Test(json, never_crashes_on_truncated_mutated_or_random_input)
{
    for (size_t d = 0; d < sizeof(s_valid) / sizeof(s_valid[0]); d++) {
        size_t len = strlen(s_valid[d]);
        cr_assert_eq(robust(s_valid[d], len), 0, "doc %zu", d);
        for (size_t n = 0; n < len; n++)
            robust(s_valid[d], n);
        /* One to three bytes overwritten, often by JSON punctuation. */
        char *m = malloc(len);
        for (int k = 0; k < 300; k++) {
            memcpy(m, s_valid[d], len);
            for (uint32_t j = rnd() % 3; j < 3; j++) {
                static const char punct[] = "{}[]\",:\\u0-e.";
                m[rnd() % len] = rnd() % 2 ? punct[rnd() % (sizeof(punct) - 1)]
                                           : (char)rnd();
            }
            robust(m, len);
        }
        free(m);
    }
    /* Random bytes, and random sequences of JSON fragments. */
    static const char *const frag[] = {
        "{", "}", "[", "]", ",", ":", "\"", "\"k\"", "\\u", "d800", "\\",
        "1", "-", ".", "e", "0", "true", "null", "fals", " ", "\n", "\xc3",
        "\xa9", "\xff", "\xed\xa0\x80", "\\ud800", "\\udc00", "1e999",
        "18446744073709551616", "\"a\":", "\"\\u0000\"",
    };
    char buf[256];
    for (int k = 0; k < 600; k++) {
        size_t n = 0;
        if (k % 2) {
            n = rnd() % 64;
            for (size_t i = 0; i < n; i++)
                buf[i] = (char)rnd();
        } else {
            for (uint32_t parts = rnd() % 24; parts > 0; parts--) {
                const char *f = frag[rnd() % (sizeof(frag) / sizeof(frag[0]))];
                size_t fl = strlen(f);
                if (n + fl > sizeof(buf))
                    break;
                memcpy(buf + n, f, fl);
                n += fl;
            }
        }
        robust(buf, n);
    }
}
