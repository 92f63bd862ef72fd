/* sl_json_encode / sl_json_decode: round trips, escaping, UTF-8 repair,
 * number formatting and error positions. */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/json.h>

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

Test(json, integers)
{
    check_rt("[0,-1,127,128,-32,-33,65535,4294967296]",
             "[0,-1,127,128,-32,-33,65535,4294967296]");
    check_rt("[9223372036854775807,-9223372036854775808]",
             "[9223372036854775807,-9223372036854775808]");
    /* Out of int64: floats (jansson has no uint64), the rest stays ints. */
    check_rt("{\"big\":18446744073709551615,\"small\":7,\"s\":\"123456789012345678901\"}",
             "{\"big\":1.8446744073709552e+19,\"small\":7,\"s\":\"123456789012345678901\"}");
    check_rt("[-9223372036854775809]", "[-9.223372036854776e+18]");

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

Test(json, string_escaping)
{
    check_rt("\"q\\\" b\\\\ s\\/ n\\n r\\r t\\t b\\b f\\f\"",
             "\"q\\\" b\\\\ s/ n\\n r\\r t\\t b\\b f\\f\"");
    check_rt("\"\\u0001\\u001f\\u007f\"", "\"\\u0001\\u001f\x7f\"");
    /* NUL survives both ways in values (JSON_ALLOW_NUL); jansson refuses
     * it in object keys. */
    check_rt("{\"key\":\"a\\u0000b\"}", "{\"key\":\"a\\u0000b\"}");
    check_err("{\"k\\u0000\":1}", 12, "line 1 column 10: NUL byte in object key");
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

Test(json, errors_name_line_and_column)
{
    check_err("{\"a\":1,\n \"b\": }", 15, "line 2 column 7: ");
    check_err("{\"a\":1", 6, "line 1 column 6: ");
    check_err("", 0, "line 1 column 0: ");
    check_err("{} x", 4, "end of file expected");
    check_err("[\"\xff\"]", 4, "unable to decode byte 0xff");
    /* Only [0,len) is read: the rest of the buffer is not looked at. */
    check_err("{\"a\":1}", 5, "line 1 column 5: ");
    /* A syntax error after a widened big integer is still reported. */
    check_err("[18446744073709551615, x]", 25, "invalid token");

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
