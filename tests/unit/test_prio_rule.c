/* The `priority:` rule on emitted records: values lookups, integer
 * levels, defaults for anything missing or mistyped, nested paths, and
 * hostile bytes that must give the default without reading past the
 * payload or allocating what a header claims. Payloads are exact-size
 * heap copies so that ASan sees any over-read. The decoded-object form is
 * checked to agree with the byte form on every well-formed case. */
#include <criterion/criterion.h>

#include "prio_rule.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

static sl_prio_rule_t *s_rule(const char *field, const char *const *keys,
                              const uint8_t *levels, size_t n, uint8_t dflt)
{
    sl_prio_rule_t *r = calloc(1, sizeof(*r));
    cr_assert_not_null(r);
    r->field = strdup(field);
    r->dflt = dflt;
    r->n_values = n;
    if (n) {
        r->keys = calloc(n, sizeof(char *));
        r->levels = calloc(n, 1);
        for (size_t i = 0; i < n; i++) {
            r->keys[i] = strdup(keys[i]);
            r->levels[i] = levels[i];
        }
    }
    return r;
}

static const char *const LOG_KEYS[] = {"error", "warn", "info", "42", "-3",
                                       "true", "big"};
static const uint8_t LOG_LEVELS[] = {0, 1, 4, 2, 3, 5, 200};

static sl_prio_rule_t *s_log_rule(const char *field)
{
    return s_rule(field, LOG_KEYS, LOG_LEVELS, 7, 6);
}

/* ---- payloads ---- */

typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} pk_t;

static void pk_init(pk_t *p)
{
    msgpack_sbuffer_init(&p->sb);
    msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
}

static void pk_str(pk_t *p, const char *s)
{
    msgpack_pack_str(&p->pk, strlen(s));
    msgpack_pack_str_body(&p->pk, s, strlen(s));
}

/* Evaluates both ways and checks they agree (when the bytes decode). */
static uint8_t s_eval(const sl_prio_rule_t *r, const void *bytes, size_t len)
{
    char *exact = malloc(len ? len : 1);
    cr_assert_not_null(exact);
    memcpy(exact, bytes, len);
    uint8_t got = sl__prio_rule_eval(r, exact, len, NULL);
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object obj;
    size_t off = 0;
    /* Only payloads the walker could not refuse for size reach unpack:
     * the tests below keep hostile headers to the byte form. */
    if (len < 4096 && msgpack_unpack(exact, len, &off, &zone, &obj) ==
                          MSGPACK_UNPACK_SUCCESS)
        cr_assert_eq(sl__prio_rule_eval_obj(r, &obj), got,
                     "object and byte forms disagree");
    msgpack_zone_destroy(&zone);
    free(exact);
    return got;
}

/* {"msg": "x", FIELD: <packed by fn>, "z": 1} */
static uint8_t s_eval_field(const sl_prio_rule_t *r, const char *field,
                            void (*fn)(pk_t *, const void *), const void *arg)
{
    pk_t p;
    pk_init(&p);
    msgpack_pack_map(&p.pk, 3);
    pk_str(&p, "msg");
    pk_str(&p, "x");
    pk_str(&p, field);
    fn(&p, arg);
    pk_str(&p, "z");
    msgpack_pack_int(&p.pk, 1);
    uint8_t lv = s_eval(r, p.sb.data, p.sb.size);
    msgpack_sbuffer_destroy(&p.sb);
    return lv;
}

static void put_str(pk_t *p, const void *a) { pk_str(p, a); }
static void put_u64(pk_t *p, const void *a)
{
    msgpack_pack_uint64(&p->pk, *(const uint64_t *)a);
}
static void put_i64(pk_t *p, const void *a)
{
    msgpack_pack_int64(&p->pk, *(const int64_t *)a);
}
static void put_true(pk_t *p, const void *a) { (void)a; msgpack_pack_true(&p->pk); }
static void put_nil(pk_t *p, const void *a) { (void)a; msgpack_pack_nil(&p->pk); }
static void put_f64(pk_t *p, const void *a)
{
    (void)a;
    msgpack_pack_double(&p->pk, 1.0);
}
static void put_array(pk_t *p, const void *a)
{
    (void)a;
    msgpack_pack_array(&p->pk, 2);
    pk_str(p, "error");
    msgpack_pack_int(&p->pk, 0);
}
static void put_bin(pk_t *p, const void *a)
{
    msgpack_pack_bin(&p->pk, 5);
    msgpack_pack_bin_body(&p->pk, a, 5);
}

Test(prio_rule, values_map_hits_and_misses)
{
    sl_prio_rule_t *r = s_log_rule("level");
    cr_assert_eq(s_eval_field(r, "level", put_str, "error"), 0);
    cr_assert_eq(s_eval_field(r, "level", put_str, "warn"), 1);
    cr_assert_eq(s_eval_field(r, "level", put_str, "info"), 4);
    cr_assert_eq(s_eval_field(r, "level", put_str, "debug"), 6, "unknown");
    cr_assert_eq(s_eval_field(r, "level", put_str, "erro"), 6, "prefix");
    cr_assert_eq(s_eval_field(r, "level", put_str, "errors"), 6, "longer");
    cr_assert_eq(s_eval_field(r, "level", put_str, ""), 6);
    cr_assert_eq(s_eval_field(r, "level", put_str, "big"), 7, "clamped");
    /* Integers and booleans through their text. */
    uint64_t u = 42;
    cr_assert_eq(s_eval_field(r, "level", put_u64, &u), 2);
    u = 43;
    cr_assert_eq(s_eval_field(r, "level", put_u64, &u), 6);
    int64_t i = -3;
    cr_assert_eq(s_eval_field(r, "level", put_i64, &i), 3);
    i = INT64_MIN;
    cr_assert_eq(s_eval_field(r, "level", put_i64, &i), 6);
    cr_assert_eq(s_eval_field(r, "level", put_true, NULL), 5);
    sl__prio_rule_free(r);
}

/* A string value with a NUL inside must not match the key before it. */
Test(prio_rule, embedded_nul_does_not_match)
{
    sl_prio_rule_t *r = s_log_rule("level");
    const unsigned char bytes[] = {0x81, 0xa5, 'l', 'e', 'v', 'e', 'l',
                                   0xa6, 'e', 'r', 'r', 'o', 'r', 0};
    cr_assert_eq(s_eval(r, bytes, sizeof(bytes)), 6);
    sl__prio_rule_free(r);
}

Test(prio_rule, integer_field_without_values)
{
    sl_prio_rule_t *r = s_rule("prio", NULL, NULL, 0, 5);
    for (uint64_t u = 0; u < 8; u++)
        cr_assert_eq(s_eval_field(r, "prio", put_u64, &u), u);
    uint64_t u = 9;
    cr_assert_eq(s_eval_field(r, "prio", put_u64, &u), 7, "clamped");
    u = UINT64_MAX;
    cr_assert_eq(s_eval_field(r, "prio", put_u64, &u), 7);
    int64_t i = -1;
    cr_assert_eq(s_eval_field(r, "prio", put_i64, &i), 5, "negative");
    cr_assert_eq(s_eval_field(r, "prio", put_str, "2"), 5, "text is not int");
    cr_assert_eq(s_eval_field(r, "prio", put_f64, NULL), 5, "float");
    cr_assert_eq(s_eval_field(r, "prio", put_true, NULL), 5, "bool");
    /* Signed encodings of small positive values are integers too. */
    const unsigned char i8[] = {0x81, 0xa4, 'p', 'r', 'i', 'o', 0xd0, 0x03};
    cr_assert_eq(s_eval(r, i8, sizeof(i8)), 3);
    const unsigned char i64[] = {0x81, 0xa4, 'p', 'r', 'i', 'o', 0xd3,
                                 0, 0, 0, 0, 0, 0, 0, 0x02};
    cr_assert_eq(s_eval(r, i64, sizeof(i64)), 2);
    const unsigned char u16[] = {0x81, 0xa4, 'p', 'r', 'i', 'o', 0xcd,
                                 0x00, 0x01};
    cr_assert_eq(s_eval(r, u16, sizeof(u16)), 1);
    sl__prio_rule_free(r);
}

Test(prio_rule, missing_field_and_wrong_types_get_the_default)
{
    sl_prio_rule_t *r = s_log_rule("level");
    cr_assert_eq(s_eval_field(r, "other", put_str, "error"), 6, "missing");
    cr_assert_eq(s_eval_field(r, "level", put_nil, NULL), 6, "nil");
    cr_assert_eq(s_eval_field(r, "level", put_f64, NULL), 6, "float");
    cr_assert_eq(s_eval_field(r, "level", put_array, NULL), 6, "array");
    cr_assert_eq(s_eval_field(r, "level", put_bin, "error"), 6, "bin");
    /* The root is not a map. */
    const unsigned char arr[] = {0x91, 0xa5, 'e', 'r', 'r', 'o', 'r'};
    cr_assert_eq(s_eval(r, arr, sizeof(arr)), 6);
    const unsigned char str[] = {0xa5, 'e', 'r', 'r', 'o', 'r'};
    cr_assert_eq(s_eval(r, str, sizeof(str)), 6);
    cr_assert_eq(s_eval(r, "", 0), 6, "empty payload");
    sl__prio_rule_free(r);
    /* Without any default set, the rule's default is what the parser
     * stored; a stored default above the range is clamped. */
    r = s_rule("level", NULL, NULL, 0, 99);
    cr_assert_eq(s_eval_field(r, "other", put_str, "x"), 7);
    sl__prio_rule_free(r);
}

/* {"a": 1, "user": {"x": [1, {"level": "info"}], "tier": {"level": KIND}},
 *  "level": "error"} — the top-level "level" is not the nested one. */
static void s_pack_nested(pk_t *p, const char *kind)
{
    msgpack_pack_map(&p->pk, 3);
    pk_str(p, "a");
    msgpack_pack_int(&p->pk, 1);
    pk_str(p, "user");
    msgpack_pack_map(&p->pk, 2);
    pk_str(p, "x");
    msgpack_pack_array(&p->pk, 2);
    msgpack_pack_int(&p->pk, 1);
    msgpack_pack_map(&p->pk, 1);
    pk_str(p, "level");
    pk_str(p, "info");
    pk_str(p, "tier");
    msgpack_pack_map(&p->pk, 1);
    pk_str(p, "level");
    pk_str(p, kind);
    pk_str(p, "level");
    pk_str(p, "error");
}

Test(prio_rule, nested_path)
{
    sl_prio_rule_t *r = s_log_rule("user.tier.level");
    pk_t p;
    pk_init(&p);
    s_pack_nested(&p, "warn");
    cr_assert_eq(s_eval(r, p.sb.data, p.sb.size), 1);
    msgpack_sbuffer_destroy(&p.sb);
    sl__prio_rule_free(r);

    const char *misses[] = {"user.tier", "user.x.level", "user.tier.level.x",
                            "user.nope.level", "user..level", "a.level"};
    for (size_t i = 0; i < sizeof(misses) / sizeof(misses[0]); i++) {
        r = s_log_rule(misses[i]);
        pk_init(&p);
        s_pack_nested(&p, "warn");
        cr_assert_eq(s_eval(r, p.sb.data, p.sb.size), 6, "%s", misses[i]);
        msgpack_sbuffer_destroy(&p.sb);
        sl__prio_rule_free(r);
    }
    r = s_log_rule("level");
    pk_init(&p);
    s_pack_nested(&p, "warn");
    cr_assert_eq(s_eval(r, p.sb.data, p.sb.size), 0, "top-level field");
    msgpack_sbuffer_destroy(&p.sb);
    sl__prio_rule_free(r);
}

/* Keys that are not strings, and values of every msgpack family, all
 * stepped over on the way to the field. */
Test(prio_rule, skips_every_kind_of_value)
{
    sl_prio_rule_t *r = s_log_rule("level");
    pk_t p;
    pk_init(&p);
    msgpack_pack_map(&p.pk, 12);
    msgpack_pack_int(&p.pk, 7);               /* int key */
    pk_str(&p, "error");
    msgpack_pack_array(&p.pk, 1);             /* array key */
    pk_str(&p, "level");
    pk_str(&p, "error");
    msgpack_pack_map(&p.pk, 1);               /* map key */
    pk_str(&p, "level");
    pk_str(&p, "error");
    pk_str(&p, "error");
    pk_str(&p, "f32");
    msgpack_pack_float(&p.pk, 1.5f);
    pk_str(&p, "f64");
    msgpack_pack_double(&p.pk, 2.5);
    pk_str(&p, "bin");
    msgpack_pack_bin(&p.pk, 300);
    char zeros[300] = {0};
    msgpack_pack_bin_body(&p.pk, zeros, sizeof(zeros));
    pk_str(&p, "ext");
    msgpack_pack_ext(&p.pk, 3, 1);
    msgpack_pack_ext_body(&p.pk, zeros, 3);
    pk_str(&p, "ext16");
    msgpack_pack_ext(&p.pk, 16, 1);
    msgpack_pack_ext_body(&p.pk, zeros, 16);
    pk_str(&p, "long");
    char big[70000];
    memset(big, 'x', sizeof(big));
    msgpack_pack_str(&p.pk, sizeof(big));
    msgpack_pack_str_body(&p.pk, big, sizeof(big));
    pk_str(&p, "ints");
    msgpack_pack_array(&p.pk, 4);
    msgpack_pack_int64(&p.pk, -100000);
    msgpack_pack_uint64(&p.pk, 1ull << 40);
    msgpack_pack_int8(&p.pk, -1);
    msgpack_pack_nil(&p.pk);
    pk_str(&p, "deep");
    for (int i = 0; i < 20; i++)
        msgpack_pack_array(&p.pk, 1);
    msgpack_pack_true(&p.pk);
    pk_str(&p, "level");
    pk_str(&p, "warn");
    cr_assert_eq(s_eval(r, p.sb.data, p.sb.size), 1);
    /* The object form agrees (too big for s_eval's cross-check). */
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object obj;
    size_t off = 0;
    cr_assert_eq(msgpack_unpack(p.sb.data, p.sb.size, &off, &zone, &obj),
                 MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(sl__prio_rule_eval_obj(r, &obj), 1);
    msgpack_zone_destroy(&zone);
    msgpack_sbuffer_destroy(&p.sb);
    sl__prio_rule_free(r);
}

static uint64_t s_rng = 88172645463325252ull;
static uint64_t s_rand(void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return s_rng;
}

Test(prio_rule, garbage_bytes_give_the_default)
{
    sl_prio_rule_t *r = s_log_rule("user.level");
    /* Headers claiming far more than the payload holds: a map32 of 4G
     * entries, an array32 in the way, a str32 running past the end. */
    const unsigned char huge_map[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    const unsigned char huge_arr[] = {0x82, 0xa1, 'x', 0xdd, 0xff, 0xff,
                                      0xff, 0xff, 0xa4, 'u', 's', 'e', 'r',
                                      0x81, 0xa5, 'l', 'e', 'v', 'e', 'l',
                                      0xa5, 'e', 'r', 'r', 'o', 'r'};
    const unsigned char long_str[] = {0x81, 0xdb, 0x7f, 0xff, 0xff, 0xff,
                                      'u'};
    const unsigned char long_val[] = {0x81, 0xa4, 'u', 's', 'e', 'r', 0x81,
                                      0xa5, 'l', 'e', 'v', 'e', 'l', 0xd9,
                                      0x20, 'e'};
    const unsigned char never[] = {0x81, 0xc1, 0xc1};
    const unsigned char cut_int[] = {0x81, 0xa4, 'u', 's', 'e', 'r', 0x81,
                                     0xa5, 'l', 'e', 'v', 'e', 'l', 0xcf, 1};
    const struct {
        const unsigned char *b;
        size_t n;
    } cases[] = {{huge_map, sizeof(huge_map)}, {huge_arr, sizeof(huge_arr)},
                 {long_str, sizeof(long_str)}, {long_val, sizeof(long_val)},
                 {never, sizeof(never)},       {cut_int, sizeof(cut_int)}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned char *m = malloc(cases[i].n);
        memcpy(m, cases[i].b, cases[i].n);
        cr_assert_eq(sl__prio_rule_eval(r, (const char *)m, cases[i].n, NULL),
                     6, "case %zu", i);
        free(m);
    }
    /* The same bytes without the bad array are fine: the walker really
     * reads the field, so the refusals above are about the array. */
    const unsigned char good[] = {0x81, 0xa4, 'u', 's', 'e', 'r', 0x81, 0xa5,
                                  'l', 'e', 'v', 'e', 'l', 0xa5, 'e', 'r',
                                  'r', 'o', 'r'};
    cr_assert_eq(s_eval(r, good, sizeof(good)), 0);
    /* Every truncation of the good payload, then random bytes behind a
     * map header: never a crash, and a truncated field is the default. */
    for (size_t cut = 0; cut < sizeof(good); cut++)
        cr_assert_eq(s_eval(r, good, cut), 6, "cut at %zu", cut);
    unsigned char buf[64];
    for (int round = 0; round < 200000; round++) {
        size_t n = 1 + (size_t)(s_rand() % sizeof(buf));
        for (size_t i = 0; i < n; i++)
            buf[i] = (unsigned char)s_rand();
        buf[0] = (unsigned char)(0x80 | (s_rand() % 16));
        unsigned char *m = malloc(n);
        memcpy(m, buf, n);
        uint8_t lv = sl__prio_rule_eval(r, (const char *)m, n, NULL);
        cr_assert_leq(lv, 7);
        free(m);
    }
    sl__prio_rule_free(r);
}

Test(prio_rule, free_accepts_null_and_partial_rules)
{
    sl__prio_rule_free(NULL);
    sl_prio_rule_t *r = calloc(1, sizeof(*r));
    sl__prio_rule_free(r); /* nothing set: no field, no values */
    r = s_rule("a.b", NULL, NULL, 0, 3);
    /* A rule without a field only ever gives its default. */
    free(r->field);
    r->field = NULL;
    const unsigned char m[] = {0x81, 0xa1, 'a', 0x01};
    cr_assert_eq(sl__prio_rule_eval(r, (const char *)m, sizeof(m), NULL), 3);
    sl__prio_rule_free(r);
}
