/* The `priority:` rule: see prio_rule.h. */
#include "prio_rule.h"

#include <sluice/stage.h>

#include <stdlib.h>
#include <string.h>

/* ---- a bounded msgpack reader: one token at a time ---- */

typedef enum {
    T_OTHER = 0, /* nil, floats, bin, ext: skipped, never matched */
    T_UINT,
    T_INT,       /* negative */
    T_BOOL,
    T_STR,
    T_ARRAY,
    T_MAP
} s_kind_t;

typedef struct {
    s_kind_t kind;
    uint64_t u;       /* T_UINT, T_BOOL; T_ARRAY/T_MAP: element count */
    int64_t i;        /* T_INT */
    const char *str;  /* T_STR */
    size_t len;       /* T_STR */
} s_tok_t;

static uint64_t s_be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Reads one token header at *pp, and steps over its inline body (string,
 * bin and ext bytes); container elements follow as tokens of their own.
 * 0, or -1 if the token is invalid or runs past end. */
static int s_token(const unsigned char **pp, const unsigned char *end,
                   s_tok_t *t)
{
    const unsigned char *p = *pp;
    if (p >= end)
        return -1;
    unsigned c = *p++;
    size_t avail = (size_t)(end - p);
    size_t hdr = 0;  /* big-endian length/value bytes after c */
    size_t body = 0; /* bytes skipped after those */
    memset(t, 0, sizeof(*t));
    if (c <= 0x7f) {
        t->kind = T_UINT;
        t->u = c;
    } else if (c <= 0x8f) {
        t->kind = T_MAP;
        t->u = c & 0x0f;
    } else if (c <= 0x9f) {
        t->kind = T_ARRAY;
        t->u = c & 0x0f;
    } else if (c <= 0xbf) {
        t->kind = T_STR;
        body = c & 0x1f;
    } else if (c >= 0xe0) {
        t->kind = T_INT;
        t->i = (int8_t)c;
    } else {
        switch (c) {
        case 0xc0: break;
        case 0xc2: case 0xc3: t->kind = T_BOOL; t->u = c == 0xc3; break;
        case 0xc4: case 0xc5: case 0xc6: hdr = (size_t)1 << (c - 0xc4); break;
        case 0xc7: case 0xc8: case 0xc9: hdr = (size_t)1 << (c - 0xc7); break;
        case 0xca: body = 4; break;
        case 0xcb: body = 8; break;
        case 0xcc: case 0xcd: case 0xce: case 0xcf:
            t->kind = T_UINT; hdr = (size_t)1 << (c - 0xcc); break;
        case 0xd0: case 0xd1: case 0xd2: case 0xd3:
            t->kind = T_INT; hdr = (size_t)1 << (c - 0xd0); break;
        case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
            body = 1 + ((size_t)1 << (c - 0xd4)); break;
        case 0xd9: case 0xda: case 0xdb:
            t->kind = T_STR; hdr = (size_t)1 << (c - 0xd9); break;
        case 0xdc: case 0xdd:
            t->kind = T_ARRAY; hdr = (size_t)2 << (c - 0xdc); break;
        case 0xde: case 0xdf:
            t->kind = T_MAP; hdr = (size_t)2 << (c - 0xde); break;
        default: return -1; /* 0xc1: never used */
        }
    }
    if (hdr > avail)
        return -1;
    uint64_t v = s_be(p, hdr);
    p += hdr;
    avail -= hdr;
    if (hdr) {
        if (t->kind == T_UINT || t->kind == T_ARRAY || t->kind == T_MAP) {
            t->u = v;
        } else if (t->kind == T_INT) {
            /* Sign-extend from hdr bytes. */
            unsigned shift = (unsigned)(64 - 8 * hdr);
            t->i = shift ? (int64_t)(v << shift) >> shift : (int64_t)v;
            if (t->i >= 0) { /* int8..int64 may hold a positive value */
                t->kind = T_UINT;
                t->u = (uint64_t)t->i;
            }
        } else if (c >= 0xc7 && c <= 0xc9) {
            body = (size_t)v + 1; /* ext: the type byte, then the data */
        } else {
            body = (size_t)v;     /* str, bin */
        }
    }
    if (body > avail)
        return -1;
    if (t->kind == T_STR) {
        t->str = (const char *)p;
        t->len = body;
    }
    *pp = p + body;
    return 0;
}

/* Skips n whole values. Every value takes at least one byte, so a header
 * claiming more elements than bytes remain is refused at once: the count
 * of values still owed stays below the input size, and the walk is linear
 * with no recursion however deep the nesting. */
static int s_skip(const unsigned char **pp, const unsigned char *end,
                  uint64_t n)
{
    while (n > 0) {
        s_tok_t t;
        if (s_token(pp, end, &t))
            return -1;
        n--;
        if (t.kind == T_ARRAY)
            n += t.u;
        else if (t.kind == T_MAP)
            n += 2 * t.u;
        if (n > (uint64_t)(end - *pp))
            return -1;
    }
    return 0;
}

/* In the map whose header token is m (its entries at *pp), finds the value
 * of the first STR key equal to key/n and reads its token into out; for a
 * container, *pp is left at its first element. 0 found, -1 not. */
static int s_find(const unsigned char **pp, const unsigned char *end,
                  const s_tok_t *m, const char *key, size_t n, s_tok_t *out)
{
    for (uint64_t i = 0; i < m->u; i++) {
        s_tok_t k;
        if (s_token(pp, end, &k))
            return -1;
        int hit = k.kind == T_STR && k.len == n && memcmp(k.str, key, n) == 0;
        if (!hit && (k.kind == T_ARRAY || k.kind == T_MAP) &&
            s_skip(pp, end, k.kind == T_MAP ? 2 * k.u : k.u))
            return -1;
        if (hit)
            return s_token(pp, end, out);
        if (s_skip(pp, end, 1))
            return -1;
    }
    return -1;
}

/* ---- the rule ---- */

static uint8_t s_clamp(uint64_t level)
{
    return level < SL_PRIO_LEVELS ? (uint8_t)level : SL_PRIO_LEVELS - 1;
}

static uint8_t s_dflt(const sl_prio_rule_t *rule)
{
    return s_clamp(rule->dflt);
}

/* keys[i] is NUL-terminated; s/n may hold NULs: compare without reading
 * past either. */
static int s_key_eq(const char *key, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (key[i] == '\0' || key[i] != s[i])
            return 0;
    return key[n] == '\0';
}

static uint8_t s_lookup(const sl_prio_rule_t *rule, const char *s, size_t n)
{
    for (size_t i = 0; i < rule->n_values; i++)
        if (s_key_eq(rule->keys[i], s, n))
            return s_clamp(rule->levels[i]);
    return s_dflt(rule);
}

static size_t s_utoa(char *buf, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}

/* One scalar to a level. */
static uint8_t s_level(const sl_prio_rule_t *rule, s_kind_t kind, uint64_t u,
                       int64_t i, const char *str, size_t len)
{
    char num[24];
    size_t n;
    switch (kind) {
    case T_STR:
        return rule->n_values ? s_lookup(rule, str, len) : s_dflt(rule);
    case T_UINT:
        if (!rule->n_values)
            return s_clamp(u);
        return s_lookup(rule, num, s_utoa(num, u));
    case T_INT:
        if (!rule->n_values)
            return s_dflt(rule);
        num[0] = '-';
        /* -(i + 1) + 1: no overflow at INT64_MIN. */
        n = s_utoa(num + 1, (uint64_t)(-(i + 1)) + 1);
        return s_lookup(rule, num, n + 1);
    case T_BOOL:
        if (!rule->n_values)
            return s_dflt(rule);
        return u ? s_lookup(rule, "true", 4) : s_lookup(rule, "false", 5);
    default:
        return s_dflt(rule);
    }
}

uint8_t sl__prio_rule_eval(const sl_prio_rule_t *rule, const char *payload,
                           size_t len, msgpack_zone *zone)
{
    (void)zone;
    if (!rule->field || !payload)
        return s_dflt(rule);
    const unsigned char *p = (const unsigned char *)payload;
    const unsigned char *end = p + len;
    s_tok_t t;
    if (s_token(&p, end, &t) || t.kind != T_MAP)
        return s_dflt(rule);
    const char *path = rule->field;
    for (;;) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        s_tok_t v;
        if (s_find(&p, end, &t, path, n, &v))
            return s_dflt(rule);
        if (!dot)
            return s_level(rule, v.kind, v.u, v.i, v.str, v.len);
        if (v.kind != T_MAP)
            return s_dflt(rule);
        t = v;
        path = dot + 1;
    }
}

uint8_t sl__prio_rule_eval_obj(const sl_prio_rule_t *rule,
                               const msgpack_object *map)
{
    if (!rule->field || !map || map->type != MSGPACK_OBJECT_MAP)
        return s_dflt(rule);
    const msgpack_object *o = sl_map_get(map, rule->field);
    if (!o)
        return s_dflt(rule);
    switch (o->type) {
    case MSGPACK_OBJECT_STR:
        return s_level(rule, T_STR, 0, 0, o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return s_level(rule, T_UINT, o->via.u64, 0, NULL, 0);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return s_level(rule, T_INT, 0, o->via.i64, NULL, 0);
    case MSGPACK_OBJECT_BOOLEAN:
        return s_level(rule, T_BOOL, o->via.boolean, 0, NULL, 0);
    default:
        return s_dflt(rule);
    }
}

void sl__prio_rule_free(sl_prio_rule_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_values; i++)
        free(r->keys ? r->keys[i] : NULL);
    free(r->keys);
    free(r->levels);
    free(r->field);
    free(r);
}
