/* Resource limits and bounded decoding of records.
 *
 * - limits_config: the `limits:` keys of a topology, top level and per
 *   stage, their defaults, and each error with its exact FILE:LINE:COL
 *   text; producers' batches capped by their consumers' max_batch_records.
 * - record_map: hostile headers (the fuzz reproducer, a map of 2^32 - 1
 *   entries, a str of 4 GiB, arrays nested 10000 deep) through
 *   sl_record_map: -EBADMSG, and no large allocation (the process's peak
 *   address space, measured in a child, next to a control where
 *   msgpack_unpack of the same kind of bytes does allocate).
 * - decode: sl__mpscan_decode gives what msgpack_unpack gives, on random
 *   records of every type and width and on damaged copies of them.
 * - emit: records over the limits at emit, in a transform (the input
 *   record fails for good, with the reason) and in a source (refused and
 *   handed on with its bytes, the source goes on), a runaway record that
 *   is never kept whole, and the same through the harness and a plugin. */
#include <criterion/criterion.h>

#include "batch.h"
#include "ctx.h"
#include "harness.h"
#include "mpscan.h"
#include "topology.h"
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- limits_config ---------------------------------------------------------- */

static sl_diag_t g_diag;
static sl_topology_t *g_topo;

static void s_cfg_setup(void)
{
    sl__diag_init(&g_diag);
    g_topo = NULL;
}

static void s_cfg_teardown(void)
{
    sl__topology_destroy(&g_topo);
    sl__diag_fini(&g_diag);
}

TestSuite(limits_config, .init = s_cfg_setup, .fini = s_cfg_teardown);

static sl_topology_t *s_parse(const char *yaml)
{
    g_topo = sl__topology_parse("topo.yaml", "/base", yaml, &g_diag);
    return g_topo;
}

static void s_ok(const char *yaml)
{
    cr_assert_not_null(s_parse(yaml), "refused:\n%s",
                       sl_test_diag_text(&g_diag));
}

static void s_fails(const char *yaml, const char *line)
{
    cr_assert_null(s_parse(yaml), "expected the topology to be refused");
    sl_test_expect_line(&g_diag, line);
}

#define GEN_NULL                                                               \
    "stages:\n"                                                                \
    "  - name: gen\n"                                                          \
    "    plugin: generator\n"                                                  \
    "    config: {count: 1}\n"                                                 \
    "  - name: sink\n"                                                         \
    "    plugin: null\n"

static void s_expect_limits(const sl_limits_t *l, uint32_t bytes,
                            uint32_t depth, uint32_t batch)
{
    cr_expect_eq(l->max_record_bytes, bytes);
    cr_expect_eq(l->max_depth, depth);
    cr_expect_eq(l->max_batch_records, batch);
}

Test(limits_config, defaults)
{
    s_ok(GEN_NULL);
    s_expect_limits(&g_topo->limits, 1048576, 32, 4096);
    for (size_t i = 0; i < g_topo->n_stages; i++)
        s_expect_limits(&g_topo->stages[i].limits, 1048576, 32, 4096);
    cr_expect_eq(g_topo->stages[0].batch, 256);
}

Test(limits_config, top_level_and_stage_override)
{
    s_ok("limits: {max_record_bytes: 4096, max_depth: 8}\n"
         "stages:\n"
         "  - name: gen\n"
         "    plugin: generator\n"
         "    config: {count: 1}\n"
         "    limits: {max_depth: 3}\n"
         "  - name: sink\n"
         "    plugin: null\n"
         "    limits: {max_record_bytes: 100, max_batch_records: 64}\n");
    s_expect_limits(&g_topo->limits, 4096, 8, 4096);
    s_expect_limits(&g_topo->stages[0].limits, 4096, 3, 4096);
    s_expect_limits(&g_topo->stages[1].limits, 100, 8, 64);
    /* the producer's batch fits what its consumer accepts */
    cr_expect_eq(g_topo->stages[0].batch, 64);
}

Test(limits_config, batch_capped_by_each_consumer)
{
    s_ok("stages:\n"
         "  - name: gen\n"
         "    plugin: generator\n"
         "    config: {count: 1}\n"
         "    batch: 1000\n"
         "  - name: a\n"
         "    plugin: null\n"
         "    from: gen\n"
         "    limits: {max_batch_records: 500}\n"
         "  - name: b\n"
         "    plugin: null\n"
         "    from: gen\n"
         "    limits: {max_batch_records: 300}\n"
         "  - name: gen2\n"
         "    plugin: generator\n"
         "    config: {count: 1}\n"
         "    batch: 20\n"
         "  - name: c\n"
         "    plugin: null\n"
         "    from: gen2\n"
         "    limits: {max_batch_records: 300}\n");
    cr_expect_eq(g_topo->stages[0].batch, 300);
    cr_expect_eq(g_topo->stages[3].batch, 20);
}

Test(limits_config, not_a_map)
{
    s_fails("limits: 5\n" GEN_NULL,
            "topo.yaml:1:9: 'limits' must be a map such as "
            "{max_record_bytes: 1048576, max_depth: 32}, got integer '5'");
}

Test(limits_config, unknown_key_with_hint)
{
    s_fails("limits:\n"
            "  max_records_bytes: 10\n" GEN_NULL,
            "topo.yaml:2:3: unknown key 'max_records_bytes' in 'limits'; "
            "did you mean 'max_record_bytes'?");
}

Test(limits_config, not_an_integer)
{
    s_fails("limits: {max_record_bytes: big}\n" GEN_NULL,
            "topo.yaml:1:28: 'limits.max_record_bytes' must be an integer "
            "from 16 to 1073741824, got string 'big'");
}

Test(limits_config, record_bytes_range)
{
    s_fails("limits: {max_record_bytes: 8}\n" GEN_NULL,
            "topo.yaml:1:28: 'limits.max_record_bytes' must be from 16 to "
            "1073741824, got 8");
}

Test(limits_config, depth_over_what_can_be_decoded)
{
    s_fails("limits: {max_depth: 64}\n" GEN_NULL,
            "topo.yaml:1:21: 'limits.max_depth' must be from 1 to 32 "
            "(msgpack-c decodes at most 32 levels), got 64");
}

Test(limits_config, stage_errors_name_the_stage)
{
    s_fails("stages:\n"
            "  - name: gen\n"
            "    plugin: generator\n"
            "    config: {count: 1}\n"
            "    limits: {max_batch_records: 0, depth: 3}\n"
            "  - name: sink\n"
            "    plugin: null\n"
            "    limits: [1]\n",
            "topo.yaml:5:33: stage 'gen': 'limits.max_batch_records' must be "
            "from 1 to 4096 (the largest 'batch'), got 0");
    sl_test_expect_line(&g_diag, "topo.yaml:5:36: unknown key 'depth' in "
                                 "'limits' of stage 'gen'");
    sl_test_expect_line(&g_diag, "topo.yaml:8:13: stage 'sink': 'limits' "
                                 "must be a map such as {max_record_bytes: "
                                 "1048576, max_depth: 32}, got a sequence");
}

/* The batch reader of a stage that takes at most max_batch_records per
 * link message refuses a longer one from its header alone. */
Test(limits_config, batch_reader)
{
    sl_batch_t b;
    sl__batch_init(&b);
    sl_envelope_t env = {.id = 1};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(sl__batch_append(&b, &env, "\x80", 1), 0);
    size_t len;
    char *msg = sl__batch_release(&b, &len);
    uint32_t count = 0;
    cr_expect_eq(sl__batch_validate_max(msg, len, 5, &count), 0);
    cr_expect_eq(count, 5);
    cr_expect_eq(sl__batch_validate_max(msg, len, 4, &count), -EMSGSIZE);
    cr_expect_eq(count, 5);
    /* a header announcing 2^32 - 1 records in 8 bytes: not walked */
    static const char huge[] = "D\x01\x00\x00\xff\xff\xff\xff";
    cr_expect_eq(sl__batch_validate_max(huge, 8, 4096, &count), -EMSGSIZE);
    cr_expect_eq(count, UINT32_MAX);
    cr_expect_eq(sl__batch_validate_max(huge, 8, UINT32_MAX, &count),
                 -EBADMSG);
    free(msg);
    sl__batch_fini(&b);
}

/* ---- record_map: hostile headers ------------------------------------------------ */

/* The record of fuzz/regressions/batch/oom-sl_record_map-map32-header:
 * the payload of the one record of that link message. */
static void *s_fuzz_reproducer(size_t *len)
{
    size_t n = 0;
    char *msg = sl_test_read_file(SL_TEST_SOURCE_DIR "/fuzz/regressions/batch/"
                                                     "oom-sl_record_map-map32-header",
                                  &n);
    cr_assert_not_null(msg);
    cr_assert_geq(n, 8 + 28);
    uint32_t plen = (uint32_t)(unsigned char)msg[8 + 24] |
                    (uint32_t)(unsigned char)msg[8 + 25] << 8 |
                    (uint32_t)(unsigned char)msg[8 + 26] << 16 |
                    (uint32_t)(unsigned char)msg[8 + 27] << 24;
    cr_assert_eq(n, 8 + 28 + (size_t)plen);
    char *p = malloc(plen);
    memcpy(p, msg + 8 + 28, plen);
    free(msg);
    *len = plen;
    return p;
}

/* Runs sl_record_map on bytes in a fresh transform context: its result,
 * and the context's limit reason (when it set one) in why. */
static int s_record_map(const void *p, size_t len, unsigned max_depth,
                        char *why, size_t whylen)
{
    sl_ctx_t ctx;
    cr_assert_eq(sl__ctx_init(&ctx, "t", 0, 0, 1, 0, 256, NULL), 0);
    if (max_depth)
        ctx.limits.max_depth = max_depth;
    sl_envelope_t env = {.id = 1};
    sl_record_t rec;
    sl__ctx_begin_record(&ctx, &rec, &env, p, len);
    const msgpack_object *m = NULL;
    int rc = sl_record_map(&rec, &m);
    cr_assert_eq(rc == 0, m != NULL);
    /* asked again, the answer is remembered, not decoded twice */
    cr_assert_eq(sl_record_map(&rec, &m), rc);
    if (why)
        snprintf(why, whylen, "%s", ctx.limit_hit ? ctx.limit_err : "");
    sl__ctx_end_record(&ctx);
    sl__ctx_fini(&ctx);
    return rc;
}

/* The process's peak address space so far, in bytes. */
static long long s_vm_peak(void)
{
    char *status = sl_test_read_file("/proc/self/status", NULL);
    cr_assert_not_null(status);
    const char *p = strstr(status, "VmPeak:");
    cr_assert_not_null(p);
    long long kb = strtoll(p + 7, NULL, 10);
    free(status);
    return kb * 1024;
}

/* How far (in MiB, at most 250) the peak address space of a child grows
 * while it decodes p: with sl_record_map, or (control) msgpack_unpack.
 * A child, so that an allocation seen once does not hide the next. */
static int s_growth_mib(const void *p, size_t len, int control)
{
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        long long before = s_vm_peak();
        if (control) {
            msgpack_zone zone;
            msgpack_zone_init(&zone, 1024);
            msgpack_object o;
            size_t off = 0;
            (void)msgpack_unpack(p, len, &off, &zone, &o);
            msgpack_zone_destroy(&zone);
        } else {
            if (s_record_map(p, len, 0, NULL, 0) != -EBADMSG)
                _exit(255);
        }
        long long mib = (s_vm_peak() - before) >> 20;
        _exit(mib > 250 ? 250 : (int)mib);
    }
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st), "the child died (status %d)", st);
    cr_assert_neq(WEXITSTATUS(st), 255, "sl_record_map did not say EBADMSG");
    return WEXITSTATUS(st);
}

Test(record_map, fuzz_reproducer)
{
    size_t len;
    void *p = s_fuzz_reproducer(&len);
    cr_assert_eq(len, 5);
    cr_assert_eq(s_record_map(p, len, 0, NULL, 0), -EBADMSG);
    cr_expect_lt(s_growth_mib(p, len, 0), 8);
    free(p);
}

Test(record_map, counts_beyond_the_bytes)
{
    static const struct {
        const char *what;
        const char *bytes;
        size_t len;
    } cases[] = {
        {"map32 of 2^32-1 pairs", "\xdf\xff\xff\xff\xff\xa1k\x01", 8},
        {"map16 of 65535 pairs", "\xde\xff\xff\xa1k\x01", 6},
        {"array32 in a map", "\x81\xa1k\xdd\xff\xff\xff\xff\x01\x02", 10},
        {"str32 of 4 GiB - 1", "\x81\xa1k\xdb\xff\xff\xff\xffxyz", 11},
        {"bin32 of 4 GiB - 1", "\x81\xa1k\xc6\xff\xff\xff\xffxyz", 11},
        {"ext32 of 4 GiB - 1", "\x81\xa1k\xc9\xff\xff\xff\xff\x01xy", 11},
        {"fixstr past the end", "\x81\xa1k\xbfxy", 6},
        {"unused byte 0xc1", "\x81\xa1k\xc1", 4},
        {"bytes after the map", "\x81\xa1k\x01\x02", 5},
        {"not a map", "\x92\x01\x02", 3},
        {"empty", "", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char why[256];
        cr_expect_eq(s_record_map(cases[i].bytes, cases[i].len, 0, why,
                                  sizeof(why)),
                     -EBADMSG, "%s", cases[i].what);
        cr_expect_str_empty(why, "%s: %s", cases[i].what, why);
    }
}

/* An array of 2^25 items claimed by 5 bytes: msgpack_unpack asks for
 * 768 MiB at once; sl_record_map asks for nothing. */
Test(record_map, no_large_allocation)
{
    static const char claim[] = "\x81\xa1k\xdd\x02\x00\x00\x00\x01";
    int control = s_growth_mib(claim, sizeof(claim) - 1, 1);
    cr_assert_geq(control, 250, "the control did not allocate (%d MiB): "
                  "this check would not see an allocation", control);
    cr_expect_lt(s_growth_mib(claim, sizeof(claim) - 1, 0), 8);
    static const char map32[] = "\xdf\x00\x80\x00\x00\xa1k";
    cr_expect_lt(s_growth_mib(map32, sizeof(map32) - 1, 0), 8);
}

/* {"k": [[[...]]]}: n containers in all, the record map included. */
static char *s_nested(size_t n, size_t *len)
{
    char *p = malloc(n + 3);
    p[0] = (char)0x81;
    p[1] = (char)0xa1;
    p[2] = 'k';
    memset(p + 3, 0x91, n - 2);
    p[n + 1] = (char)0x90;
    *len = n + 2;
    return p;
}

Test(record_map, nesting)
{
    char why[256];
    size_t len;
    char *p = s_nested(10000, &len);
    cr_expect_eq(s_record_map(p, len, 0, why, sizeof(why)), -EBADMSG);
    cr_expect_str_eq(why, "stage 't': record nested deeper than "
                          "limits.max_depth (32)");
    cr_expect_lt(s_growth_mib(p, len, 0), 8);
    free(p);

    p = s_nested(32, &len);
    cr_expect_eq(s_record_map(p, len, 0, why, sizeof(why)), 0);
    free(p);
    p = s_nested(33, &len);
    cr_expect_eq(s_record_map(p, len, 0, why, sizeof(why)), -EBADMSG);
    cr_expect_str_eq(why, "stage 't': record nested deeper than "
                          "limits.max_depth (32)");
    free(p);
    p = s_nested(5, &len);
    cr_expect_eq(s_record_map(p, len, 5, why, sizeof(why)), 0);
    cr_expect_eq(s_record_map(p, len, 4, why, sizeof(why)), -EBADMSG);
    cr_expect_str_eq(why, "stage 't': record nested deeper than "
                          "limits.max_depth (4)");
    free(p);
}

/* ---- decode: the same objects as msgpack_unpack ---------------------------- */

typedef struct s_buf {
    unsigned char *p;
    size_t len, cap;
} s_buf_t;

static void s_put(s_buf_t *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void s_put_be(s_buf_t *b, unsigned type, uint64_t v, size_t w)
{
    unsigned char t[9] = {(unsigned char)type};
    for (size_t i = 0; i < w; i++)
        t[1 + i] = (unsigned char)(v >> (8 * (w - 1 - i)));
    s_put(b, t, 1 + w);
}

/* A random value of any msgpack type, in every header width (not only
 * the shortest), containers at most depth levels. */
static void s_gen(s_buf_t *b, uint64_t *rng, int depth)
{
    uint64_t r = sl_test_rand(rng);
    unsigned kind = (unsigned)(r % (depth > 0 ? 14 : 11));
    uint64_t v = sl_test_rand(rng);
    size_t n = (size_t)(r >> 8) % 6;
    static const char body[] = "0123456789abcdef";
    switch (kind) {
    case 0: s_put_be(b, (unsigned)(v & 0x7f), 0, 0); break;
    case 1: s_put_be(b, 0xe0 | (unsigned)(v & 0x1f), 0, 0); break;
    case 2: {
        unsigned c = 0xcc + (unsigned)(r >> 16) % 8; /* uint8..int64 */
        s_put_be(b, c, v, (size_t)1 << ((c - 0xcc) & 3));
        break;
    }
    case 3: s_put_be(b, 0xca + (unsigned)(r >> 16) % 2, v,
                     r >> 16 & 1 ? 8 : 4); break;
    case 4: {
        static const unsigned k[] = {0xc0, 0xc2, 0xc3}; /* nil false true */
        s_put_be(b, k[(r >> 16) % 3], 0, 0);
        break;
    }
    case 5: s_put_be(b, 0xa0 | (unsigned)n, 0, 0); s_put(b, body, n); break;
    case 6: {
        unsigned c = 0xd9 + (unsigned)(r >> 16) % 3;
        s_put_be(b, c, n, (size_t)1 << (c - 0xd9));
        s_put(b, body, n);
        break;
    }
    case 7: {
        unsigned c = 0xc4 + (unsigned)(r >> 16) % 3;
        s_put_be(b, c, n, (size_t)1 << (c - 0xc4));
        s_put(b, body, n);
        break;
    }
    case 8: {
        unsigned c = 0xd4 + (unsigned)(r >> 16) % 5;
        s_put_be(b, c, v & 0xff, 1); /* type byte */
        s_put(b, body, (size_t)1 << (c - 0xd4));
        break;
    }
    case 9: {
        unsigned c = 0xc7 + (unsigned)(r >> 16) % 3;
        s_put_be(b, c, n, (size_t)1 << (c - 0xc7));
        s_put_be(b, (unsigned)(v & 0xff), 0, 0);
        s_put(b, body, n);
        break;
    }
    case 10: s_put_be(b, 0xa0, 0, 0); break; /* "" */
    default: {
        int map = kind == 13;
        unsigned form = (unsigned)(r >> 16) % 3;
        unsigned base = map ? 0x80 : 0x90;
        if (form == 0)
            s_put_be(b, base | (unsigned)n, 0, 0);
        else
            s_put_be(b, (map ? 0xde : 0xdc) + form - 1, n, form == 1 ? 2 : 4);
        for (size_t i = 0; i < n * (map ? 2 : 1); i++)
            s_gen(b, rng, depth - 1);
        break;
    }
    }
}

/* Deep equality, floats by their bits, bytes by content. */
static int s_same(const msgpack_object *a, const msgpack_object *b)
{
    if (a->type != b->type)
        return 0;
    switch (a->type) {
    case MSGPACK_OBJECT_NIL: return 1;
    case MSGPACK_OBJECT_BOOLEAN: return a->via.boolean == b->via.boolean;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return a->via.u64 == b->via.u64;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return a->via.i64 == b->via.i64;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return memcmp(&a->via.f64, &b->via.f64, sizeof(double)) == 0;
    case MSGPACK_OBJECT_STR:
    case MSGPACK_OBJECT_BIN:
        return a->via.str.size == b->via.str.size &&
               (!a->via.str.size ||
                memcmp(a->via.str.ptr, b->via.str.ptr, a->via.str.size) == 0);
    case MSGPACK_OBJECT_EXT:
        return a->via.ext.type == b->via.ext.type &&
               a->via.ext.size == b->via.ext.size &&
               (!a->via.ext.size ||
                memcmp(a->via.ext.ptr, b->via.ext.ptr, a->via.ext.size) == 0);
    case MSGPACK_OBJECT_ARRAY:
        if (a->via.array.size != b->via.array.size)
            return 0;
        for (uint32_t i = 0; i < a->via.array.size; i++)
            if (!s_same(&a->via.array.ptr[i], &b->via.array.ptr[i]))
                return 0;
        return 1;
    case MSGPACK_OBJECT_MAP:
        if (a->via.map.size != b->via.map.size)
            return 0;
        for (uint32_t i = 0; i < a->via.map.size; i++)
            if (!s_same(&a->via.map.ptr[i].key, &b->via.map.ptr[i].key) ||
                !s_same(&a->via.map.ptr[i].val, &b->via.map.ptr[i].val))
                return 0;
        return 1;
    }
    return 0;
}

/* Decodes p both ways when the walk says msgpack_unpack is safe on it;
 * the two must agree. Returns whether it decoded. */
static int s_compare(const unsigned char *p, size_t len, msgpack_zone *z)
{
    size_t used = 0;
    int walk = sl__mpscan_object(p, len, SL_MP_MAX_DEPTH, &used);
    msgpack_object mine;
    int rc = sl__mpscan_decode(p, len, SL_MP_MAX_DEPTH, z, &mine);
    int whole = walk == 0 && used == len;
    cr_assert_eq(rc == 0, whole, "decode %d, walk %d (%zu of %zu bytes)", rc,
                 walk, used, len);
    if (!whole)
        return 0;
    msgpack_object theirs;
    size_t off = 0;
    cr_assert_eq(msgpack_unpack((const char *)p, len, &off, z, &theirs),
                 MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(off, len);
    cr_assert(s_same(&mine, &theirs), "decoded differently");
    return 1;
}

Test(decode, same_as_msgpack_unpack)
{
    uint64_t rng = 0x5eed1e55u;
    msgpack_zone zone;
    msgpack_zone_init(&zone, 4096);
    s_buf_t b = {0};
    size_t decoded = 0, damaged_ok = 0;
    for (int i = 0; i < 3000; i++) {
        b.len = 0;
        s_gen(&b, &rng, 4);
        decoded += (size_t)s_compare(b.p, b.len, &zone);
        /* cut short: never decodes */
        if (b.len > 1)
            cr_assert_eq(sl__mpscan_decode(b.p, b.len - 1 - sl_test_rand(&rng) %
                                                              (b.len - 1),
                                           SL_MP_MAX_DEPTH, &zone,
                                           &(msgpack_object){0}),
                         -EAGAIN);
        /* one byte changed: whatever decodes must agree */
        b.p[sl_test_rand(&rng) % b.len] = (unsigned char)sl_test_rand(&rng);
        damaged_ok += (size_t)s_compare(b.p, b.len, &zone);
        msgpack_zone_clear(&zone);
    }
    cr_expect_eq(decoded, 3000);
    cr_expect_gt(damaged_ok, 100);
    cr_expect_lt(damaged_ok, 3000);
    free(b.p);
    msgpack_zone_destroy(&zone);
}

/* ---- emit ---------------------------------------------------------------------- */

typedef struct s_rejects {
    int n;
    char msg[256];
    size_t len;
    int had_bytes;
} s_rejects_t;

static void s_on_reject(sl_ctx_t *ctx, const void *rec, size_t len,
                        const char *msg, void *arg)
{
    (void)ctx;
    s_rejects_t *r = arg;
    r->n++;
    snprintf(r->msg, sizeof(r->msg), "%s", msg);
    r->len = len;
    r->had_bytes = rec != NULL;
}

/* {"s": <str of n bytes>} */
static char *s_str_record(size_t n, size_t *len)
{
    char *p = malloc(n + 8);
    p[0] = (char)0x81;
    p[1] = (char)0xa1;
    p[2] = 's';
    p[3] = (char)0xdb;
    p[4] = (char)(n >> 24);
    p[5] = (char)(n >> 16);
    p[6] = (char)(n >> 8);
    p[7] = (char)n;
    memset(p + 8, 'x', n);
    *len = n + 8;
    return p;
}

Test(emit, transform_output_over_the_limits_fails_the_input)
{
    sl_ctx_t ctx;
    cr_assert_eq(sl__ctx_init(&ctx, "shape", 0, 0, 1, 0, 256, NULL), 0);
    ctx.limits.max_record_bytes = 100;
    ctx.limits.max_depth = 4;
    static const char in[] = "\x81\xa1k\x01";
    sl_envelope_t env = {.id = 7};
    sl_record_t rec;

    size_t len;
    char *big = s_str_record(200, &len);
    sl__ctx_begin_record(&ctx, &rec, &env, in, 4);
    cr_assert_eq(sl_emit_raw(&ctx, in, 4), 0);
    cr_assert_eq(sl_emit_raw(&ctx, big, len), -EMSGSIZE);
    /* the handler says something else, and returns 0 even */
    sl_ctx_error(&ctx, "emit failed");
    cr_assert_eq(sl__ctx_limit_rc(&ctx, 0), -EMSGSIZE);
    cr_assert_str_eq(ctx.err, "stage 'shape': output record of 208 bytes is "
                              "over limits.max_record_bytes (100)");
    cr_assert(ctx.err_final);
    cr_assert_eq(sl__ctx_drop_record_output(&ctx), 1);
    sl__ctx_end_record(&ctx);

    size_t dlen;
    char *deep = s_nested(5, &dlen);
    sl__ctx_begin_record(&ctx, &rec, &env, in, 4);
    msgpack_packer *pk = sl_emit_begin(&ctx);
    cr_assert_not_null(pk);
    pk->callback(pk->data, deep, dlen);
    cr_assert_eq(sl_emit_commit(&ctx), -ELOOP);
    cr_assert_eq(sl__ctx_limit_rc(&ctx, -ELOOP), -EMSGSIZE);
    cr_assert_str_eq(ctx.err, "stage 'shape': output record nested deeper "
                              "than limits.max_depth (4)");
    sl__ctx_end_record(&ctx);

    /* within the limits: emitted, nothing noted */
    char *four = s_nested(4, &dlen);
    sl__ctx_begin_record(&ctx, &rec, &env, in, 4);
    cr_assert_eq(sl_emit_raw(&ctx, four, dlen), 0);
    cr_assert_eq(sl__ctx_limit_rc(&ctx, 0), 0);
    cr_assert_eq(ctx.out.count, 1);
    sl__ctx_end_record(&ctx);
    free(four);
    free(deep);
    free(big);
    sl__ctx_fini(&ctx);
}

Test(emit, source_record_over_the_limits_is_handed_on)
{
    sl_ctx_t ctx;
    cr_assert_eq(sl__ctx_init(&ctx, "read", 0, 0, 1, 1, 256, NULL), 0);
    s_rejects_t rj = {0};
    ctx.on_reject = s_on_reject;
    ctx.on_reject_arg = &rj;
    ctx.limits.max_record_bytes = 1 << 20;
    sl__ctx_begin_pull(&ctx, 10);
    size_t len;
    char *big = s_str_record(2100000 - 8, &len);
    cr_assert_eq(sl_emit_raw(&ctx, big, len), 0);
    cr_assert_eq(rj.n, 1);
    cr_assert_str_eq(rj.msg, "stage 'read': record of 2100000 bytes is over "
                             "limits.max_record_bytes (1048576)");
    cr_assert(rj.had_bytes);
    cr_assert_eq(rj.len, 2100000);
    cr_assert_eq(ctx.emitted, 0);
    cr_assert_eq(sl_ctx_budget(&ctx), 10);

    /* packed in place: refused with its bytes */
    ctx.limits.max_depth = 3;
    size_t dlen;
    char *deep = s_nested(4, &dlen);
    msgpack_packer *pk = sl_emit_begin(&ctx);
    pk->callback(pk->data, deep, dlen);
    cr_assert_eq(sl_emit_commit(&ctx), 0);
    cr_assert_eq(rj.n, 2);
    cr_assert_str_eq(rj.msg, "stage 'read': record nested deeper than "
                             "limits.max_depth (3)");
    cr_assert_eq(rj.len, dlen);

    /* and the source goes on */
    cr_assert_eq(sl_emit_raw(&ctx, "\x81\xa1k\x01", 4), 0);
    cr_assert_eq(ctx.emitted, 1);
    cr_assert_eq(ctx.out.count, 1);
    sl__ctx_end_call(&ctx);
    free(deep);
    free(big);
    sl__ctx_fini(&ctx);
}

/* A record packed far past the limit is counted, not kept: the batch does
 * not grow to hold it, and it is refused with its full size. */
Test(emit, runaway_record_is_not_kept)
{
    sl_ctx_t ctx;
    cr_assert_eq(sl__ctx_init(&ctx, "gen", 0, 0, 1, 1, 256, NULL), 0);
    s_rejects_t rj = {0};
    ctx.on_reject = s_on_reject;
    ctx.on_reject_arg = &rj;
    ctx.limits.max_record_bytes = 4096;
    sl__ctx_begin_pull(&ctx, 10);
    msgpack_packer *pk = sl_emit_begin(&ctx);
    cr_assert_not_null(pk);
    msgpack_pack_map(pk, 1);
    msgpack_pack_str_with_body(pk, "s", 1);
    static char chunk[1000];
    memset(chunk, 'y', sizeof(chunk));
    msgpack_pack_str(pk, 64 * 1000 * 1000);
    for (int i = 0; i < 64 * 1000; i++)
        msgpack_pack_str_body(pk, chunk, sizeof(chunk));
    cr_assert_lt(ctx.out.cap, 64 * 1024, "the batch grew to %zu bytes",
                 ctx.out.cap);
    cr_assert_eq(sl_emit_commit(&ctx), 0);
    cr_assert_eq(rj.n, 1);
    cr_assert_str_eq(rj.msg, "stage 'gen': record of 64000008 bytes is over "
                             "limits.max_record_bytes (4096)");
    cr_assert(!rj.had_bytes);
    cr_assert_eq(ctx.emitted, 0);
    /* the next record is packed as usual */
    pk = sl_emit_begin(&ctx);
    msgpack_pack_map(pk, 1);
    msgpack_pack_str_with_body(pk, "s", 1);
    msgpack_pack_str_with_body(pk, chunk, 100);
    cr_assert_eq(sl_emit_commit(&ctx), 0);
    cr_assert_eq(ctx.emitted, 1);
    sl__ctx_end_call(&ctx);
    sl__ctx_fini(&ctx);
}

/* Through the harness and a real plugin: fields decodes each record with
 * sl_record_map and emits an edited copy. */
Test(emit, harness_and_plugin)
{
    sl_harness_t *h = sl_test_harness("fields", "set: {pad: "
                                      "'0123456789012345678901234567890123'}",
                                      NULL);
    size_t len;
    void *p = s_fuzz_reproducer(&len);
    cr_expect_lt(sl_harness_push_msgpack(h, p, len), 0);
    free(p);
    char *deep = s_nested(10000, &len);
    cr_expect_eq(sl_harness_push_msgpack(h, deep, len), -EMSGSIZE);
    cr_expect_str_eq(sl_harness_last_error(h), "stage 'fields': record "
                     "nested deeper than limits.max_depth (32)");
    free(deep);
    cr_expect_eq(sl_harness_errors(h), 2);
    cr_expect_eq(sl_harness_count(h), 0);

    sl_harness_set_limits(h, 64, 0);
    sl_test_push_ok(h, "{\"a\":1}",
                    "{\"a\":1,\"pad\":\"0123456789012345678901234567890123\"}");
    sl_test_push_fails(h, "{\"a\":\"0123456789012345678901\"}",
                       "stage 'fields': output record of 66 bytes is over "
                       "limits.max_record_bytes (64)");
    sl_harness_destroy(&h);
}
