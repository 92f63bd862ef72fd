/*
 * What came out against what was expected. Every difference becomes one
 * reason that says where (record, output or dead letter number, counted
 * from 1, and the field's path) and shows both sides as JSON with their
 * types, because "1" and 1 print alike otherwise.
 */
#include "stagetest_int.h"

#include <sluice/json.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- showing values ----------------------------------------------------- */

const char *sl__stest_type_name(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return "null";
    case MSGPACK_OBJECT_BOOLEAN: return "bool";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "int";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return "float";
    case MSGPACK_OBJECT_STR: return "string";
    case MSGPACK_OBJECT_BIN: return "binary";
    case MSGPACK_OBJECT_ARRAY: return "array";
    case MSGPACK_OBJECT_MAP: return "map";
    case MSGPACK_OBJECT_EXT: return "ext";
    }
    return "?";
}

/* o as JSON, cut to SL_STEST_SHOW_MAX characters. */
void sl__stest_json(const msgpack_object *o, char *buf, size_t len)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (sl_json_encode(o, &sb) != 0 || !sb.data) {
        snprintf(buf, len, "?");
    } else if (sb.size > SL_STEST_SHOW_MAX) {
        snprintf(buf, len, "%.*s...", SL_STEST_SHOW_MAX, sb.data);
    } else {
        snprintf(buf, len, "%.*s", (int)sb.size, sb.data);
    }
    msgpack_sbuffer_destroy(&sb);
}

/* s[0..len) as a JSON string (escaped, cut), into out. */
void sl__stest_quote(const char *s, size_t len, char *out, size_t outlen)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_STR};
    o.via.str.ptr = s;
    o.via.str.size = (uint32_t)(len > 4096 ? 4096 : len);
    sl__stest_json(&o, out, outlen);
}

void sl__stest_show(const msgpack_object *o, char *buf, size_t len)
{
    char json[SL_STEST_SHOW_MAX + 8];
    sl__stest_json(o, json, sizeof(json));
    snprintf(buf, len, "%s (%s)", json, sl__stest_type_name(o));
}

/* A record shown without its type: always a map. */
void sl__stest_show_rec(const msgpack_object *o, char *buf, size_t len)
{
    sl__stest_json(o, buf, len);
}

/* ---- equality ----------------------------------------------------------- */

static bool s_is_int(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
           o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
}

static bool s_is_float(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_FLOAT32 ||
           o->type == MSGPACK_OBJECT_FLOAT64;
}

static const msgpack_object *s_map_find(const msgpack_object *map,
                                        const msgpack_object *key)
{
    for (uint32_t i = 0; i < map->via.map.size; i++)
        if (sl__stest_equal(&map->via.map.ptr[i].key, key))
            return &map->via.map.ptr[i].val;
    return NULL;
}

bool sl__stest_equal(const msgpack_object *a, const msgpack_object *b)
{
    if (s_is_int(a) && s_is_int(b)) {
        if (a->type != b->type) /* negative never equals non-negative */
            return false;
        return a->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                   ? a->via.u64 == b->via.u64
                   : a->via.i64 == b->via.i64;
    }
    if (s_is_float(a) && s_is_float(b))
        return a->via.f64 == b->via.f64 ||
               (isnan(a->via.f64) && isnan(b->via.f64));
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case MSGPACK_OBJECT_NIL: return true;
    case MSGPACK_OBJECT_BOOLEAN: return a->via.boolean == b->via.boolean;
    case MSGPACK_OBJECT_STR:
        return a->via.str.size == b->via.str.size &&
               memcmp(a->via.str.ptr, b->via.str.ptr, a->via.str.size) == 0;
    case MSGPACK_OBJECT_BIN:
        return a->via.bin.size == b->via.bin.size &&
               memcmp(a->via.bin.ptr, b->via.bin.ptr, a->via.bin.size) == 0;
    case MSGPACK_OBJECT_EXT:
        return a->via.ext.type == b->via.ext.type &&
               a->via.ext.size == b->via.ext.size &&
               memcmp(a->via.ext.ptr, b->via.ext.ptr, a->via.ext.size) == 0;
    case MSGPACK_OBJECT_ARRAY:
        if (a->via.array.size != b->via.array.size)
            return false;
        for (uint32_t i = 0; i < a->via.array.size; i++)
            if (!sl__stest_equal(&a->via.array.ptr[i], &b->via.array.ptr[i]))
                return false;
        return true;
    case MSGPACK_OBJECT_MAP:
        if (a->via.map.size != b->via.map.size)
            return false;
        for (uint32_t i = 0; i < a->via.map.size; i++) {
            const msgpack_object *v = s_map_find(b, &a->via.map.ptr[i].key);
            if (!v || !sl__stest_equal(&a->via.map.ptr[i].val, v))
                return false;
        }
        return true;
    default: return false;
    }
}

/* ---- reasons ------------------------------------------------------------ */

/* The path to a map entry: "a", "a.b"; keys that are not strings as JSON. */
static void s_child_path(char *out, size_t len, const char *path,
                         const msgpack_object *key)
{
    char k[SL_STEST_SHOW_MAX + 8];
    if (key->type == MSGPACK_OBJECT_STR)
        snprintf(k, sizeof(k), "%.*s", (int)key->via.str.size,
                 key->via.str.ptr);
    else
        sl__stest_json(key, k, sizeof(k));
    snprintf(out, len, "%s%s%s", path, *path ? "." : "", k);
}

/* Adds one reason per difference between want and got (which differ). */
static void s_diff(sl_diag_t *r, const char *prefix, const char *path,
                   const msgpack_object *w, const msgpack_object *g)
{
    char a[SL_STEST_SHOW_MAX + 32], b[SL_STEST_SHOW_MAX + 32], child[512];
    if (w->type == MSGPACK_OBJECT_MAP && g->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < w->via.map.size; i++) {
            const msgpack_object_kv *kv = &w->via.map.ptr[i];
            const msgpack_object *gv = s_map_find(g, &kv->key);
            s_child_path(child, sizeof(child), path, &kv->key);
            if (!gv) {
                sl__stest_show(&kv->val, a, sizeof(a));
                sl__stest_fail(r, "%sfield \"%s\": expected %s, got nothing "
                               "(no such field)", prefix, child, a);
            } else if (!sl__stest_equal(&kv->val, gv)) {
                s_diff(r, prefix, child, &kv->val, gv);
            }
        }
        for (uint32_t i = 0; i < g->via.map.size; i++) {
            const msgpack_object_kv *kv = &g->via.map.ptr[i];
            if (s_map_find(w, &kv->key))
                continue;
            s_child_path(child, sizeof(child), path, &kv->key);
            sl__stest_show(&kv->val, b, sizeof(b));
            sl__stest_fail(r, "%sunexpected field \"%s\": %s", prefix, child,
                           b);
        }
        return;
    }
    if (w->type == MSGPACK_OBJECT_ARRAY && g->type == MSGPACK_OBJECT_ARRAY &&
        w->via.array.size == g->via.array.size) {
        for (uint32_t i = 0; i < w->via.array.size; i++) {
            if (sl__stest_equal(&w->via.array.ptr[i], &g->via.array.ptr[i]))
                continue;
            snprintf(child, sizeof(child), "%s[%u]", path, i);
            s_diff(r, prefix, child, &w->via.array.ptr[i],
                   &g->via.array.ptr[i]);
        }
        return;
    }
    sl__stest_show(w, a, sizeof(a));
    sl__stest_show(g, b, sizeof(b));
    if (*path)
        sl__stest_fail(r, "%sfield \"%s\": expected %s, got %s", prefix, path,
                       a, b);
    else
        sl__stest_fail(r, "%sexpected %s, got %s", prefix, a, b);
}

/* The first difference only, as text (for "closest output" hints). */
void sl__stest_first_diff(const msgpack_object *w, const msgpack_object *g,
                         char *out, size_t len)
{
    sl_diag_t d;
    sl__diag_init(&d);
    s_diff(&d, "", "", w, g);
    snprintf(out, len, "%s", d.count ? d.lines[0] : "equal");
    sl__diag_fini(&d);
}

static size_t s_diff_count(const msgpack_object *w, const msgpack_object *g)
{
    sl_diag_t d;
    sl__diag_init(&d);
    s_diff(&d, "", "", w, g);
    size_t n = d.count;
    sl__diag_fini(&d);
    return n;
}

/* ---- unpacking ---------------------------------------------------------- */

/* Unpacks n blobs into objs (in zone); a blob that is not msgpack becomes
 * nil, which then shows in the reasons. */
static msgpack_object *s_unpack_all(const sl_stest_blob_t *blobs, size_t n,
                                    msgpack_zone *zone)
{
    msgpack_object *objs = calloc(n ? n : 1, sizeof(*objs));
    for (size_t i = 0; objs && i < n; i++) {
        size_t off = 0;
        if (msgpack_unpack(blobs[i].data, blobs[i].len, &off, zone,
                           &objs[i]) != MSGPACK_UNPACK_SUCCESS)
            objs[i].type = MSGPACK_OBJECT_NIL;
    }
    return objs;
}

bool sl__stest_unpack(const sl_stest_blob_t *b, msgpack_zone *zone,
                     msgpack_object *o)
{
    size_t off = 0;
    o->type = MSGPACK_OBJECT_NIL;
    return msgpack_unpack(b->data, b->len, &off, zone, o) ==
           MSGPACK_UNPACK_SUCCESS;
}

/* ---- where ------------------------------------------------------------- */

static bool s_type_is(const msgpack_object *o, const char *type)
{
    const char *t = sl__stest_type_name(o);
    return strcmp(t, type) == 0;
}

/* -1, 0, 1 for v against the bound; 2 when v is not a number. */
static int s_cmp_num(const msgpack_object *v, const sl_stest_num_t *b)
{
    if (s_is_int(v) && b->is_int) {
        bool vneg = v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
        uint64_t vmag = vneg ? 0 - (uint64_t)v->via.i64 : v->via.u64;
        if (vneg != b->neg)
            return vneg ? -1 : 1;
        int c = vmag < b->mag ? -1 : vmag > b->mag;
        return vneg ? -c : c;
    }
    double x;
    if (s_is_int(v))
        x = v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER ? (double)v->via.i64
                                                       : (double)v->via.u64;
    else if (s_is_float(v))
        x = v->via.f64;
    else
        return 2;
    if (isnan(x))
        return 2;
    return x < b->d ? -1 : x > b->d;
}

static void s_cond_check(const sl_stest_cond_t *c, const msgpack_object *rec,
                         const char *prefix, size_t out_i, msgpack_zone *zone,
                         sl_diag_t *r)
{
    static const char *const ops[] = {">", ">=", "<", "<="};
    char got[SL_STEST_SHOW_MAX + 32], want[SL_STEST_SHOW_MAX + 32];
    const msgpack_object *v = sl_map_get(rec, c->field);
    if (v)
        sl__stest_show(v, got, sizeof(got));
    if (c->ops & SL_STEST_EXISTS) {
        if (!c->exists && v) {
            sl__stest_fail(r, "%soutput %zu: field \"%s\": expected no such "
                           "field, got %s", prefix, out_i, c->field, got);
            return;
        }
        if (!c->exists)
            return;
    }
    if (!v) {
        sl__stest_fail(r, "%soutput %zu: field \"%s\": expected it to exist, "
                       "got nothing (no such field)", prefix, out_i, c->field);
        return;
    }
    if (c->ops & SL_STEST_EQUALS) {
        msgpack_object w;
        sl__stest_unpack(&c->equals, zone, &w);
        if (!sl__stest_equal(&w, v)) {
            sl__stest_show(&w, want, sizeof(want));
            sl__stest_fail(r, "%soutput %zu: field \"%s\": expected %s, got "
                           "%s", prefix, out_i, c->field, want, got);
        }
    }
    if ((c->ops & SL_STEST_TYPE) && !s_type_is(v, c->type))
        sl__stest_fail(r, "%soutput %zu: field \"%s\": expected type %s, got "
                       "%s", prefix, out_i, c->field, c->type, got);
    if (c->ops & SL_STEST_MATCHES) {
        char *s = NULL;
        if (v->type == MSGPACK_OBJECT_STR)
            s = strndup(v->via.str.ptr, v->via.str.size);
        if (!s || regexec(&c->re, s, 0, NULL, 0) != 0)
            sl__stest_fail(r, "%soutput %zu: field \"%s\": expected a string "
                           "matching \"%s\", got %s", prefix, out_i, c->field,
                           c->pattern, got);
        free(s);
    }
    for (int k = 0; k < 4; k++) {
        if (!(c->ops & (SL_STEST_GT << k)))
            continue;
        int cmp = s_cmp_num(v, &c->bound[k]);
        bool ok = cmp != 2 && (k == 0   ? cmp > 0
                               : k == 1 ? cmp >= 0
                               : k == 2 ? cmp < 0
                                        : cmp <= 0);
        if (!ok)
            sl__stest_fail(r, "%soutput %zu: field \"%s\": expected %s %s, "
                           "got %s", prefix, out_i, c->field, ops[k],
                           c->bound[k].text, got);
    }
}

/* ---- streams ------------------------------------------------------------ */

const char *sl__stest_plural(size_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

static void s_ordered(const msgpack_object *w, size_t nw,
                      const msgpack_object *g, size_t ng, const char *label,
                      sl_diag_t *r)
{
    char buf[SL_STEST_SHOW_MAX + 8], prefix[256];
    size_t both = nw < ng ? nw : ng;
    for (size_t i = 0; i < both; i++) {
        if (sl__stest_equal(&w[i], &g[i]))
            continue;
        snprintf(prefix, sizeof(prefix), "%srecord %zu: ", label, i + 1);
        s_diff(r, prefix, "", &w[i], &g[i]);
    }
    for (size_t i = both; i < ng; i++) {
        sl__stest_show_rec(&g[i], buf, sizeof(buf));
        sl__stest_fail(r, "%soutput %zu: unexpected record %s", label, i + 1,
                       buf);
    }
    for (size_t i = both; i < nw; i++) {
        sl__stest_show_rec(&w[i], buf, sizeof(buf));
        sl__stest_fail(r, "%srecord %zu: missing: expected %s", label, i + 1,
                       buf);
    }
}

/* Equality is an equivalence, so pairing each expected record with the
 * first equal output left is as good as any matching. */
static void s_unordered(const msgpack_object *w, size_t nw,
                        const msgpack_object *g, size_t ng, const char *label,
                        sl_diag_t *r)
{
    char buf[SL_STEST_SHOW_MAX + 8], diff[1024];
    bool *used = calloc(ng ? ng : 1, sizeof(*used));
    bool *hit = calloc(nw ? nw : 1, sizeof(*hit));
    bool *hinted = calloc(ng ? ng : 1, sizeof(*hinted));
    if (!used || !hit || !hinted) {
        sl__stest_fail(r, "%sout of memory comparing records", label);
        goto out;
    }
    for (size_t j = 0; j < nw; j++)
        for (size_t i = 0; i < ng && !hit[j]; i++)
            if (!used[i] && sl__stest_equal(&w[j], &g[i]))
                used[i] = hit[j] = true;
    for (size_t j = 0; j < nw; j++) {
        if (hit[j])
            continue;
        /* the unmatched output closest to it, to say what differs */
        size_t best = SIZE_MAX, best_n = SIZE_MAX;
        for (size_t i = 0; i < ng; i++) {
            if (used[i])
                continue;
            size_t n = s_diff_count(&w[j], &g[i]);
            if (n < best_n) {
                best = i;
                best_n = n;
            }
        }
        sl__stest_show_rec(&w[j], buf, sizeof(buf));
        if (best == SIZE_MAX) {
            sl__stest_fail(r, "%srecord %zu: missing: expected %s", label,
                           j + 1, buf);
            continue;
        }
        hinted[best] = true;
        sl__stest_first_diff(&w[j], &g[best], diff, sizeof(diff));
        sl__stest_fail(r, "%srecord %zu: no output matches %s; closest is "
                       "output %zu: %s", label, j + 1, buf, best + 1, diff);
    }
    for (size_t i = 0; i < ng; i++) {
        if (used[i] || hinted[i])
            continue;
        sl__stest_show_rec(&g[i], buf, sizeof(buf));
        sl__stest_fail(r, "%soutput %zu: unexpected record %s", label, i + 1,
                       buf);
    }
out:
    free(used);
    free(hit);
    free(hinted);
}

void sl__stest_check_stream(const sl_stest_expect_t *want,
                            const sl_stest_stream_t *got, const char *label,
                            sl_diag_t *r)
{
    msgpack_zone zone;
    msgpack_zone_init(&zone, 4096);
    msgpack_object *g = s_unpack_all(got->recs, got->n, &zone);
    msgpack_object *w = NULL;
    if (!g) {
        sl__stest_fail(r, "%sout of memory comparing records", label);
        goto out;
    }
    size_t ng = got->n;
    if (want->has_count && want->count != ng)
        sl__stest_fail(r, "%sexpected %llu %s, got %zu", label,
                       (unsigned long long)want->count,
                       sl__stest_plural(want->count, "record", "records"), ng);
    if (want->has_records) {
        size_t nw = want->n_records;
        if (!(w = s_unpack_all(want->records, nw, &zone))) {
            sl__stest_fail(r, "%sout of memory comparing records", label);
            goto out;
        }
        if (nw != ng && !(want->has_count && want->count != ng))
            sl__stest_fail(r, "%sexpected %zu %s, got %zu", label, nw,
                           sl__stest_plural(nw, "record", "records"), ng);
        if (want->ordered)
            s_ordered(w, nw, g, ng, label, r);
        else
            s_unordered(w, nw, g, ng, label, r);
    }
    for (size_t i = 0; i < ng && want->n_where; i++) {
        if (g[i].type != MSGPACK_OBJECT_MAP) {
            sl__stest_fail(r, "%soutput %zu: not a map", label, i + 1);
            continue;
        }
        for (size_t k = 0; k < want->n_where; k++)
            s_cond_check(&want->where[k], &g[i], label, i + 1, &zone, r);
    }
out:
    free(w);
    free(g);
    msgpack_zone_destroy(&zone);
}
