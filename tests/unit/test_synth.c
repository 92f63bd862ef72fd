/* Synthetic traffic (framework/src/synth*.c): the same seed gives the same
 * bytes, each generator stays in its range, each rate shape puts records
 * exactly where its curve says, and bad templates are refused with
 * FILE:LINE:COL. */
#include "synth.h"
#include "testutil.h"
#include "timefmt.h"

#include <criterion/criterion.h>
#include <msgpack.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char s_err[4096];

static sl_synth_t *s_load(const char *yaml)
{
    s_err[0] = '\0';
    sl_synth_t *s = sl_synth_parse("t.yaml", yaml, strlen(yaml), s_err,
                                   sizeof(s_err));
    cr_assert(s, "refused:\n%s\n--- template:\n%s", s_err, yaml);
    return s;
}

static void s_refused(const char *yaml, const char *want)
{
    s_err[0] = '\0';
    sl_synth_t *s = sl_synth_parse("t.yaml", yaml, strlen(yaml), s_err,
                                   sizeof(s_err));
    cr_assert_null(s, "accepted:\n%s", yaml);
    cr_assert(strstr(s_err, want), "want:\n%s\ngot:\n%s", want, s_err);
}

/* Every record of s: offsets into offs (up to max), and the records
 * decoded into objs with zone. Returns the count. */
static size_t s_all(sl_synth_t *s, uint64_t *offs, msgpack_object *objs,
                    msgpack_zone *zone, size_t max)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    size_t n = 0;
    uint64_t off;
    int rc;
    while ((rc = sl_synth_next(s, &off, &sb)) == 0) {
        cr_assert(n < max, "more than %zu records", max);
        if (offs)
            offs[n] = off;
        if (objs) {
            /* Decoded strings point into the bytes: keep a copy. */
            char *copy = msgpack_zone_malloc(zone, sb.size);
            cr_assert(copy);
            memcpy(copy, sb.data, sb.size);
            size_t pos = 0;
            cr_assert_eq(msgpack_unpack(copy, sb.size, &pos, zone,
                                        &objs[n]),
                         MSGPACK_UNPACK_SUCCESS);
            cr_assert_eq(pos, sb.size);
            cr_assert_eq(objs[n].type, MSGPACK_OBJECT_MAP);
        }
        n++;
    }
    cr_assert_eq(rc, 1);
    cr_assert_eq(sl_synth_next(s, &off, &sb), 1, "the end stays the end");
    msgpack_sbuffer_destroy(&sb);
    return n;
}

static const msgpack_object *s_get(const msgpack_object *m, const char *key)
{
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object_kv *kv = &m->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR &&
            kv->key.via.str.size == strlen(key) &&
            !memcmp(kv->key.via.str.ptr, key, strlen(key)))
            return &kv->val;
    }
    return NULL;
}

static int64_t s_int(const msgpack_object *o)
{
    cr_assert(o);
    cr_assert(o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
              o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER, "type %d", o->type);
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int64_t)o->via.u64
                                                      : o->via.i64;
}

static const char *s_str(const msgpack_object *o, char *buf, size_t len)
{
    cr_assert(o && o->type == MSGPACK_OBJECT_STR);
    snprintf(buf, len, "%.*s", (int)o->via.str.size, o->via.str.ptr);
    return buf;
}

static const char s_mixed[] =
    "seed: 7\n"
    "count: 2000\n"
    "arrivals: poisson\n"
    "rate: {constant: {rate: 500/s}}\n"
    "fields:\n"
    "  id: {seq: {start: 10, step: 3}}\n"
    "  qty: {int: {min: -5, max: 5}}\n"
    "  price: {float: {min: 1.5, max: 2.5, decimals: 2}}\n"
    "  side: {choice: [buy, sell, hold], weights: [1, 0, 3]}\n"
    "  at: {timestamp: {start: 1000, unit: ms}}\n"
    "  user: {string: \"user-%04d\"}\n"
    "  code: {string: {pattern: \"[a-z]{8}-\\\\d{2,3}\"}}\n"
    "  shard: {string: {pattern: \"s%d\", min: 1, max: 4}}\n"
    "  tag: {const: {v: [1, true, null, 2.5, x]}}\n"
    "  note: {const: hello, missing: 0.5}\n";

Test(synth, same_seed_same_bytes)
{
    sl_synth_t *a = s_load(s_mixed), *b = s_load(s_mixed);
    msgpack_sbuffer sa, sb;
    msgpack_sbuffer_init(&sa);
    msgpack_sbuffer_init(&sb);
    /* Also after a rewind: b goes through once first. */
    uint64_t oa, ob;
    while (sl_synth_next(b, &ob, &sb) == 0)
        ;
    sl_synth_rewind(b);
    size_t n = 0;
    int ra, rb;
    for (;;) {
        ra = sl_synth_next(a, &oa, &sa);
        rb = sl_synth_next(b, &ob, &sb);
        cr_assert_eq(ra, rb);
        if (ra)
            break;
        cr_assert_eq(oa, ob, "record %zu", n);
        cr_assert_eq(sa.size, sb.size, "record %zu", n);
        cr_assert_eq(memcmp(sa.data, sb.data, sa.size), 0, "record %zu", n);
        n++;
    }
    cr_assert_eq(n, 2000);
    cr_assert_eq(sl_synth_made(a), 2000);
    cr_assert_str_eq(sl_synth_origin(a), "synth t.yaml seed 7");
    sl_synth_destroy(&a);
    sl_synth_destroy(&b);
    cr_assert_null(a);

    /* Another seed: other values. */
    char other[sizeof(s_mixed)];
    memcpy(other, s_mixed, sizeof(s_mixed));
    other[6] = '8';
    a = s_load(s_mixed);
    b = s_load(other);
    size_t same = 0;
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(sl_synth_next(a, &oa, &sa), 0);
        cr_assert_eq(sl_synth_next(b, &ob, &sb), 0);
        same += sa.size == sb.size && !memcmp(sa.data, sb.data, sa.size);
    }
    cr_assert_lt(same, 5);
    sl_synth_destroy(&a);
    sl_synth_destroy(&b);
    msgpack_sbuffer_destroy(&sa);
    msgpack_sbuffer_destroy(&sb);
}

Test(synth, generators_stay_in_range)
{
    sl_synth_t *s = s_load(s_mixed);
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1 << 16);
    static msgpack_object objs[2000];
    static uint64_t offs[2000];
    size_t n = s_all(s, offs, objs, &zone, 2000);
    cr_assert_eq(n, 2000);
    int qty_seen[11] = {0};
    size_t sides[3] = {0}, notes = 0;
    int shard_seen[5] = {0};
    char buf[128];
    for (size_t k = 0; k < n; k++) {
        const msgpack_object *m = &objs[k];
        cr_assert_eq(s_int(s_get(m, "id")), 10 + 3 * (int64_t)k);
        int64_t q = s_int(s_get(m, "qty"));
        cr_assert(q >= -5 && q <= 5, "qty %lld", (long long)q);
        qty_seen[q + 5]++;
        const msgpack_object *p = s_get(m, "price");
        cr_assert(p && p->type == MSGPACK_OBJECT_FLOAT64);
        cr_assert(p->via.f64 >= 1.5 && p->via.f64 <= 2.5);
        double cents = p->via.f64 * 100;
        cr_assert_float_eq(cents, round(cents), 1e-6, "%.17g", p->via.f64);
        s_str(s_get(m, "side"), buf, sizeof(buf));
        cr_assert(strcmp(buf, "sell"), "weight 0 chosen");
        sides[!strcmp(buf, "buy") ? 0 : 2]++;
        cr_assert_eq(s_int(s_get(m, "at")),
                     1000 + (int64_t)(offs[k] / 1000000));
        char want[32];
        snprintf(want, sizeof(want), "user-%04zu", k);
        cr_assert_str_eq(s_str(s_get(m, "user"), buf, sizeof(buf)), want);
        s_str(s_get(m, "code"), buf, sizeof(buf));
        size_t len = strlen(buf);
        cr_assert(len == 11 || len == 12, "code '%s'", buf);
        for (int i = 0; i < 8; i++)
            cr_assert(buf[i] >= 'a' && buf[i] <= 'z', "code '%s'", buf);
        cr_assert_eq(buf[8], '-');
        for (size_t i = 9; i < len; i++)
            cr_assert(buf[i] >= '0' && buf[i] <= '9', "code '%s'", buf);
        s_str(s_get(m, "shard"), buf, sizeof(buf));
        cr_assert(buf[0] == 's' && buf[1] >= '1' && buf[1] <= '4' && !buf[2],
                  "shard '%s'", buf);
        shard_seen[buf[1] - '0']++;
        const msgpack_object *t = s_get(m, "tag");
        cr_assert(t && t->type == MSGPACK_OBJECT_MAP);
        const msgpack_object *v = s_get(t, "v");
        cr_assert(v && v->type == MSGPACK_OBJECT_ARRAY &&
                  v->via.array.size == 5);
        cr_assert_eq(v->via.array.ptr[1].type, MSGPACK_OBJECT_BOOLEAN);
        cr_assert_eq(v->via.array.ptr[2].type, MSGPACK_OBJECT_NIL);
        cr_assert_eq(v->via.array.ptr[3].type, MSGPACK_OBJECT_FLOAT64);
        cr_assert_eq(v->via.array.ptr[4].type, MSGPACK_OBJECT_STR);
        if (s_get(m, "note")) {
            notes++;
            cr_assert_eq(m->via.map.size, 10);
        } else {
            cr_assert_eq(m->via.map.size, 9);
        }
        if (k)
            cr_assert_geq(offs[k], offs[k - 1]);
    }
    for (int q = 0; q < 11; q++)
        cr_assert_gt(qty_seen[q], 100, "qty %d seen %d times", q - 5,
                     qty_seen[q]);
    for (int i = 1; i <= 4; i++)
        cr_assert_gt(shard_seen[i], 350);
    /* Weights 1:3 over 2000 draws: about 500 and 1500. */
    cr_assert(sides[0] > 400 && sides[0] < 600, "buy %zu", sides[0]);
    cr_assert(notes > 900 && notes < 1100, "note present %zu times", notes);
    /* Poisson at 500/s: 2000 records take about 4 s. */
    cr_assert(offs[n - 1] > 3600000000ull && offs[n - 1] < 4400000000ull,
              "last offset %llu", (unsigned long long)offs[n - 1]);
    msgpack_zone_destroy(&zone);
    sl_synth_destroy(&s);
}

Test(synth, timestamp_formats)
{
    sl_synth_t *s = s_load(
        "count: 3\n"
        "rate: 2/s\n"
        "fields:\n"
        "  a: {timestamp: {start: \"2024-02-29T23:59:59.250Z\", unit: ms,\n"
        "                  format: rfc3339}}\n"
        "  b: {timestamp: {start: 1700000000, unit: s}}\n"
        "  c: {timestamp: {start: \"2024-01-01T01:00:00+01:00\", unit: us}}\n");
    msgpack_zone zone;
    msgpack_zone_init(&zone, 4096);
    msgpack_object objs[3];
    uint64_t offs[3];
    cr_assert_eq(s_all(s, offs, objs, &zone, 3), 3);
    static const char *const a[] = {"2024-02-29T23:59:59.250Z",
                                    "2024-02-29T23:59:59.750Z",
                                    "2024-03-01T00:00:00.250Z"};
    char buf[64];
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(offs[k], 500000000ull * (uint64_t)k);
        cr_assert_str_eq(s_str(s_get(&objs[k], "a"), buf, sizeof(buf)), a[k]);
        cr_assert_eq(s_int(s_get(&objs[k], "b")), 1700000000 + k / 2);
        cr_assert_eq(s_int(s_get(&objs[k], "c")),
                     1704067200000000ll + 500000 * k);
    }
    msgpack_zone_destroy(&zone);
    sl_synth_destroy(&s);

    int64_t ns;
    cr_assert_eq(sl__time_parse_rfc3339("1970-01-01T00:00:01.5Z", 22, &ns), 0);
    cr_assert_eq(ns, 1500000000);
    cr_assert_eq(sl__time_parse_rfc3339("2023-02-29T00:00:00Z", 20, &ns),
                 -EINVAL);
    cr_assert_eq(sl__time_parse_rfc3339("2023-01-01 00:00:00", 19, &ns),
                 -EINVAL);
}

/* ---- rate shapes: offsets exactly where the curve puts them ---- */

static size_t s_offsets(const char *yaml, uint64_t *offs, size_t max)
{
    sl_synth_t *s = s_load(yaml);
    size_t n = s_all(s, offs, NULL, NULL, max);
    sl_synth_destroy(&s);
    return n;
}

static uint64_t s_offs[20000];

Test(synth, constant_rate)
{
    size_t n = s_offsets("rate: {constant: {rate: 1000/s, duration: 2s}}\n"
                         "fields: {i: {seq: {}}}\n",
                         s_offs, 20000);
    cr_assert_eq(n, 2000);
    for (size_t k = 0; k < n; k++)
        cr_assert_eq(s_offs[k], 1000000ull * k, "record %zu", k);
    /* 3 per second: k/3 s, rounded to the ns; count ends it. */
    n = s_offsets("count: 7\nrate: 180/m\nfields: {i: {seq: {}}}\n", s_offs,
                  20000);
    cr_assert_eq(n, 7);
    for (size_t k = 0; k < n; k++)
        cr_assert_eq(s_offs[k], (uint64_t)llround(k * 1e9 / 3), "record %zu",
                     k);
    /* A top-level duration overrides the shape's own. */
    n = s_offsets("duration: 500ms\nrate: {constant: {rate: 10/s, duration: "
                  "1h}}\nfields: {i: {seq: {}}}\n", s_offs, 20000);
    cr_assert_eq(n, 5);
}

Test(synth, step_rate)
{
    size_t n = s_offsets("rate: {step: {rates: [100/s, 0, 200/s], every: "
                         "1s}}\nfields: {i: {seq: {}}}\n",
                         s_offs, 20000);
    cr_assert_eq(n, 300);
    for (size_t k = 0; k < 100; k++)
        cr_assert_eq(s_offs[k], 10000000ull * k, "record %zu", k);
    /* Nothing during the second second. */
    for (size_t k = 100; k < 300; k++)
        cr_assert_eq(s_offs[k], 2000000000ull + 5000000ull * (k - 100),
                     "record %zu", k);
}

Test(synth, spike_rate)
{
    size_t n = s_offsets("duration: 3s\n"
                         "rate: {spike: {base: 10/s, peak: 100/s, at: 1s, "
                         "length: 500ms}}\n"
                         "fields: {i: {seq: {}}}\n",
                         s_offs, 20000);
    /* 10 before, 50 in the spike, 15 in the last 1.5 s. */
    cr_assert_eq(n, 75);
    for (size_t k = 0; k < 10; k++)
        cr_assert_eq(s_offs[k], 100000000ull * k);
    for (size_t k = 10; k < 60; k++)
        cr_assert_eq(s_offs[k], 1000000000ull + 10000000ull * (k - 10));
    for (size_t k = 60; k < 75; k++)
        cr_assert_eq(s_offs[k], 1500000000ull + 100000000ull * (k - 60));
}

Test(synth, ramp_rate)
{
    /* 0 to 1000/s over 10 s: the count by t is 50 t^2, so record k is at
     * sqrt(k / 50) s; 5000 records in all. */
    size_t n = s_offsets("rate: {ramp: {from: 0, to: 1000/s, duration: "
                         "10s}}\nfields: {i: {seq: {}}}\n",
                         s_offs, 20000);
    cr_assert_eq(n, 5000);
    for (size_t k = 0; k < n; k++) {
        double want = sqrt((double)k / 50) * 1e9;
        cr_assert(fabs((double)s_offs[k] - want) <= 1.0,
                  "record %zu at %llu, want %.1f", k,
                  (unsigned long long)s_offs[k], want);
    }
    /* Down from 200/s to 100/s over 2 s, then held by a longer duration:
     * 300 in the ramp and 100 per second after. */
    n = s_offsets("duration: 3s\n"
                  "rate: {ramp: {from: 200/s, to: 100/s, duration: 2s}}\n"
                  "fields: {i: {seq: {}}}\n",
                  s_offs, 20000);
    cr_assert_eq(n, 400);
    /* count(t) = 200 t - 25 t^2 */
    for (size_t k = 0; k < 300; k++) {
        double want = (200 - sqrt(40000 - 100.0 * (double)k)) / 50 * 1e9;
        cr_assert(fabs((double)s_offs[k] - want) <= 1.0, "record %zu", k);
    }
    for (size_t k = 300; k < 400; k++)
        cr_assert_eq(s_offs[k], 2000000000ull + 10000000ull * (k - 300));
}

Test(synth, poisson_arrivals)
{
    size_t n = s_offsets("count: 20000\narrivals: poisson\nseed: 3\n"
                         "rate: 1000/s\nfields: {i: {seq: {}}}\n",
                         s_offs, 20000);
    cr_assert_eq(n, 20000);
    cr_assert_eq(s_offs[0], 0);
    /* The mean gap is 1 ms, and about 1/e of the gaps exceed it. */
    double mean = (double)s_offs[n - 1] / (double)(n - 1);
    cr_assert(mean > 0.97e6 && mean < 1.03e6, "mean gap %.0f ns", mean);
    size_t longer = 0;
    for (size_t k = 1; k < n; k++) {
        cr_assert_geq(s_offs[k], s_offs[k - 1]);
        longer += s_offs[k] - s_offs[k - 1] > 1000000;
    }
    cr_assert(longer > 7000 && longer < 7700, "%zu gaps over the mean",
              longer);
}

/* ---- bad templates ---- */

Test(synth, bad_templates_name_the_position)
{
    s_refused("rate: {constant: {rate: fast}}\ncount: 1\n"
              "fields: {a: {seq: {}}}\n",
              "t.yaml:1:25: rate.constant.rate: expected a rate such as "
              "100/s, 6000/m or 2.5/s (a bare number is per second), got "
              "'fast'");
    s_refused("count: 1\nrate: {constnt: {rate: 1}}\nfields: {a: {seq: {}}}\n",
              "t.yaml:2:8: rate: unknown shape 'constnt' (expected constant, "
              "ramp, step or spike)");
    s_refused("count: 1\nrate: 1/s\nfields:\n  a: {int: {min: 5, max: 1}}\n",
              "t.yaml:4:26: fields.a.int: 'max' (1) is below 'min' (5)");
    s_refused("count: 1\nrate: 1/s\nfields:\n  a: {strng: x}\n",
              "t.yaml:4:7: fields.a: unknown key 'strng' (a generator: seq, "
              "int, float, choice, timestamp, string, const; or missing, "
              "weights)");
    s_refused("count: 1\nrate: 1/s\nfields:\n  a: {int: {min: 1, max: 2}, "
              "float: {min: 1, max: 2}}\n",
              "t.yaml:4:30: fields.a: one generator per field, found 'int' "
              "and 'float'");
    s_refused("count: 1\nrate: 1/s\nfields:\n  k: {choice: [a, b], weights: "
              "[1]}\n",
              "t.yaml:4:32: fields.k.weights: expected a list of 2 numbers, "
              "one per choice");
    s_refused("count: 1\nrate: 1/s\nfields:\n  c: {string: \"[a-z\"}\n",
              "t.yaml:4:15: fields.c.string: bad pattern \"[a-z\": at "
              "character 1: '[' without ']'");
    s_refused("count: 1\nrate: 1/s\nfields:\n  c: {string: \"x{3,1}\"}\n",
              "t.yaml:4:15: fields.c.string: bad pattern \"x{3,1}\": at "
              "character 2: repeat counts must be n <= m <= 1024");
    s_refused("count: 1\nrate: 1/s\nfields:\n  c: {string: \"id-%s\"}\n",
              "at character 4: only %d, %Nd and %0Nd placeholders");
    s_refused("count: 1\nrate: 1/s\nfields:\n  c: {string: {pattern: x, min: "
              "1, max: 2}}\n",
              "t.yaml:4:25: fields.c.string: 'min' and 'max' fill a %d, and "
              "the pattern has none");
    s_refused("rate: 1/s\nfields: {a: {seq: {}}}\n",
              "t.yaml:1:7: the traffic never ends: give 'count' or "
              "'duration' (here or in the shape)");
    s_refused("count: 1\nfields: {a: {seq: {}}}\n",
              "t.yaml:1:1: missing 'rate'");
    s_refused("count: 0\nrate: 1/s\nfields: {a: {seq: {}}}\n",
              "t.yaml:1:8: count: expected an integer of at least 1");
    s_refused("count: 1\nrate: {ramp: {from: 1/s, to: 2/s}}\n"
              "fields: {a: {seq: {}}}\n",
              "t.yaml:2:14: rate.ramp: missing 'duration'");
    s_refused("count: 1\nrate: {step: {rates: [1/s], every: 1x}}\n"
              "fields: {a: {seq: {}}}\n",
              "t.yaml:2:36: rate.step.every: expected a duration such as "
              "500ms, 10s or 2m (a bare number is milliseconds), got '1x'");
    s_refused("count: 1\nrate: 1/s\nfields: {a: {timestamp: {unit: "
              "minutes}}}\n",
              "t.yaml:3:32: fields.a.timestamp: 'unit' must be s, ms, us or "
              "ns");
    s_refused("count: 1\nrate: 1/s\narrivals: bursty\nfields: {a: {seq: {}}}\n",
              "t.yaml:3:11: arrivals: expected even or poisson");
    s_refused("count: 1\nrate: 1/s\nsead: 4\nfields: {a: {seq: {}}}\n",
              "t.yaml:3:1: unknown key 'sead' (expected seed, count, "
              "duration, arrivals, rate or fields)");
    s_refused("count: 1\nrate: 1/s\nfields: {}\n",
              "t.yaml:3:9: fields: expected a map of 1 to 1000 fields");
    s_refused("count: 1\nrate: 1/s\nfields:\n  m: {int: {min: 1, max: 2}, "
              "missing: 2}\n",
              "t.yaml:4:39: fields.m: 'missing' must be a probability from 0 "
              "to 1");
    s_refused("count: [1\n", "t.yaml:");
    /* Every problem at once, in file order. */
    s_refused("count: x\nrate: {constant: {rate: -1}}\nfields: {a: {int: "
              "{}}}\n",
              "t.yaml:1:8: count: expected an integer of at least 1\n"
              "t.yaml:2:25: rate.constant.rate: expected a rate such as "
              "100/s, 6000/m or 2.5/s (a bare number is per second), got "
              "'-1'\n"
              "t.yaml:3:19: fields.a.int: needs 'min' and 'max'");

    char path[256];
    snprintf(path, sizeof(path), "/nonexistent/t.yaml");
    cr_assert_null(sl_synth_load(path, s_err, sizeof(s_err)));
    cr_assert(strstr(s_err, "/nonexistent/t.yaml"), "%s", s_err);
}

Test(synth, load_from_a_file)
{
    char *dir = sl_test_tmpdir();
    char path[4096];
    snprintf(path, sizeof(path), "%s/t.yaml", dir);
    cr_assert_eq(sl_test_write_file(path, s_mixed), 0);
    s_err[0] = '\0';
    sl_synth_t *a = sl_synth_load(path, s_err, sizeof(s_err));
    cr_assert(a, "%s", s_err);
    sl_synth_t *b = s_load(s_mixed);
    msgpack_sbuffer sa, sb;
    msgpack_sbuffer_init(&sa);
    msgpack_sbuffer_init(&sb);
    uint64_t oa, ob;
    for (int i = 0; i < 50; i++) {
        cr_assert_eq(sl_synth_next(a, &oa, &sa), 0);
        cr_assert_eq(sl_synth_next(b, &ob, &sb), 0);
        cr_assert(oa == ob && sa.size == sb.size &&
                  !memcmp(sa.data, sb.data, sa.size));
    }
    msgpack_sbuffer_destroy(&sa);
    msgpack_sbuffer_destroy(&sb);
    sl_synth_destroy(&a);
    sl_synth_destroy(&b);
    sl_test_rmtree(dir);
}
