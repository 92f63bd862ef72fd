/* pg_sink: record values to COPY text fields (see pg_conv.h). */
#include "pg_conv.h"

#include <sluice/json.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int pg_buf_reserve(pg_buf_t *b, size_t more)
{
    if (b->cap - b->len >= more)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < more) {
        if (cap > SIZE_MAX / 2)
            return -ENOMEM;
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p)
        return -ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

void pg_buf_free(pg_buf_t *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

int pg_buf_add(pg_buf_t *b, const void *p, size_t n)
{
    if (pg_buf_reserve(b, n) < 0)
        return -ENOMEM;
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

static const char *s_fname(const pg_col_t *c)
{
    return c->field ? c->field : c->name;
}

static int s_mismatch(sl_ctx_t *ctx, const pg_col_t *c,
                      const msgpack_object *v)
{
    return sql_col_mismatch(ctx, c, pg_type_name(c->type), v);
}

/* A string for a message: at most 32 bytes, control bytes as '?'. */
static const char *s_show(const char *p, size_t n, char out[48])
{
    size_t k = n > 32 ? 32 : n;
    for (size_t i = 0; i < k; i++) {
        unsigned char ch = (unsigned char)p[i];
        out[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    strcpy(out + k, n > 32 ? "..." : "");
    return out;
}

/* ---- text ----------------------------------------------------------------- */

/* Offset of the first byte of p[0..n) that is not part of well-formed
 * UTF-8 (no overlong forms, surrogates or code points above U+10FFFF), or
 * n when it is all well formed. */
static size_t s_utf8_bad(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        unsigned char lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            lo = c == 0xe0 ? 0xa0 : 0x80;
            hi = c == 0xed ? 0x9f : 0xbf;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            lo = c == 0xf0 ? 0x90 : 0x80;
            hi = c == 0xf4 ? 0x8f : 0xbf;
        } else {
            return i;
        }
        if (n - i <= need || p[i + 1] < lo || p[i + 1] > hi)
            return i;
        for (size_t k = 2; k <= need; k++)
            if ((p[i + k] & 0xc0) != 0x80)
                return i;
        i += need + 1;
    }
    return n;
}

/* Appends p[0..n) with COPY's text escapes: backslash, newline, carriage
 * return and tab are the bytes that would end or bend the field. */
static int s_escaped(pg_buf_t *b, const char *p, size_t n)
{
    if (pg_buf_reserve(b, 2 * n) < 0)
        return -ENOMEM;
    char *o = b->p + b->len;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        switch (ch) {
        case '\\': *o++ = '\\'; *o++ = '\\'; break;
        case '\n': *o++ = '\\'; *o++ = 'n'; break;
        case '\r': *o++ = '\\'; *o++ = 'r'; break;
        case '\t': *o++ = '\\'; *o++ = 't'; break;
        default: *o++ = ch;
        }
    }
    b->len = (size_t)(o - b->p);
    return 0;
}

static int s_text(pg_buf_t *b, const pg_col_t *c, const char *p, size_t n,
                  sl_ctx_t *ctx)
{
    size_t bad;

    if (n && memchr(p, '\0', n))
        return sl_ctx_fail(ctx, "field '%s' for column '%s' (text): the "
                                "string holds a NUL byte, which PostgreSQL "
                                "text cannot store",
                           s_fname(c), c->name);
    bad = s_utf8_bad((const unsigned char *)p, n);
    if (bad < n)
        return sl_ctx_fail(ctx, "field '%s' for column '%s' (text): not "
                                "valid UTF-8 (byte %zu)",
                           s_fname(c), c->name, bad);
    return s_escaped(b, p, n);
}

/* ---- numbers --------------------------------------------------------------- */

static int s_int(pg_buf_t *b, int64_t v)
{
    char tmp[24];
    int k = snprintf(tmp, sizeof(tmp), "%" PRId64, v);
    return pg_buf_add(b, tmp, (size_t)k);
}

static int s_integer(pg_buf_t *b, const pg_col_t *c, const msgpack_object *v,
                     sl_ctx_t *ctx)
{
    int64_t lo = c->type == PG_INTEGER ? INT32_MIN : INT64_MIN;
    int64_t hi = c->type == PG_INTEGER ? INT32_MAX : INT64_MAX;

    switch (v->type) {
    case MSGPACK_OBJECT_BOOLEAN:
        return pg_buf_add(b, v->via.boolean ? "1" : "0", 1);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (v->via.u64 > (uint64_t)hi)
            return sl_ctx_fail(ctx, "field '%s' for column '%s' (%s): "
                                    "%" PRIu64 " is out of range",
                               s_fname(c), c->name, pg_type_name(c->type),
                               v->via.u64);
        return s_int(b, (int64_t)v->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        if (v->via.i64 < lo)
            return sl_ctx_fail(ctx, "field '%s' for column '%s' (%s): "
                                    "%" PRId64 " is out of range",
                               s_fname(c), c->name, pg_type_name(c->type),
                               v->via.i64);
        return s_int(b, v->via.i64);
    default:
        return s_mismatch(ctx, c, v);
    }
}

static int s_double(pg_buf_t *b, const pg_col_t *c, const msgpack_object *v,
                    sl_ctx_t *ctx)
{
    char tmp[40];
    double d;
    int k;

    switch (v->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        k = snprintf(tmp, sizeof(tmp), "%" PRIu64, v->via.u64);
        return pg_buf_add(b, tmp, (size_t)k);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return s_int(b, v->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        d = v->via.f64;
        if (isnan(d))
            return pg_buf_add(b, "NaN", 3);
        if (isinf(d))
            return d > 0 ? pg_buf_add(b, "Infinity", 8)
                         : pg_buf_add(b, "-Infinity", 9);
        /* 17 significant digits read back as the same double. */
        k = snprintf(tmp, sizeof(tmp), "%.17g", d);
        return pg_buf_add(b, tmp, (size_t)k);
    default:
        return s_mismatch(ctx, c, v);
    }
}

/* ---- times ----------------------------------------------------------------- */

/* 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z in Unix seconds. */
#define S_MIN_SECS INT64_C(-62135596800)
#define S_MAX_SECS INT64_C(253402300799)

static int s_digits(const char *p, size_t n, size_t *i, size_t count,
                    int *out)
{
    int v = 0;
    if (n - *i < count)
        return -1;
    for (size_t k = 0; k < count; k++) {
        char ch = p[*i + k];
        if (ch < '0' || ch > '9')
            return -1;
        v = v * 10 + (ch - '0');
    }
    *i += count;
    *out = v;
    return 0;
}

static int s_days_in(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* YYYY-MM-DD, then optionally [T or space]HH:MM[:SS[.fraction]] and a
 * zone: Z, or +HH, +HHMM, +HH:MM (also -), optionally after one space.
 * Fields are range-checked (February 30th is not a date). */
static int s_is_time(const char *p, size_t n)
{
    size_t i = 0;
    int y, mo, d, h, mi, s = 0;

    if (s_digits(p, n, &i, 4, &y) < 0 || y < 1 || i == n || p[i++] != '-' ||
        s_digits(p, n, &i, 2, &mo) < 0 || mo < 1 || mo > 12 || i == n ||
        p[i++] != '-' || s_digits(p, n, &i, 2, &d) < 0 || d < 1 ||
        d > s_days_in(y, mo))
        return 0;
    if (i == n)
        return 1;
    if (p[i] != 'T' && p[i] != 't' && p[i] != ' ')
        return 0;
    i++;
    if (s_digits(p, n, &i, 2, &h) < 0 || h > 23 || i == n || p[i++] != ':' ||
        s_digits(p, n, &i, 2, &mi) < 0 || mi > 59)
        return 0;
    if (i < n && p[i] == ':') {
        i++;
        if (s_digits(p, n, &i, 2, &s) < 0 || s > 59)
            return 0;
        if (i < n && p[i] == '.') {
            size_t start = ++i;
            while (i < n && p[i] >= '0' && p[i] <= '9')
                i++;
            if (i == start || i - start > 9)
                return 0;
        }
    }
    if (i < n && p[i] == ' ')
        i++;
    if (i == n)
        return p[n - 1] != ' ';
    if ((p[i] == 'Z' || p[i] == 'z') && i + 1 == n)
        return 1;
    if (p[i] != '+' && p[i] != '-')
        return 0;
    i++;
    if (s_digits(p, n, &i, 2, &h) < 0 || h > 15)
        return 0;
    if (i == n)
        return 1;
    if (p[i] == ':')
        i++;
    return s_digits(p, n, &i, 2, &mi) == 0 && mi <= 59 && i == n;
}

/* Unix seconds and microseconds as timestamptz text in UTC. */
static int s_put_time(pg_buf_t *b, int64_t secs, int64_t micros)
{
    char tmp[48];
    struct tm tm;
    time_t t = (time_t)secs;
    int k;

    if (!gmtime_r(&t, &tm))
        return -EINVAL;
    k = snprintf(tmp, sizeof(tmp), "%04d-%02d-%02d %02d:%02d:%02d",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec);
    if (micros)
        k += snprintf(tmp + k, sizeof(tmp) - (size_t)k, ".%06d",
                      (int)micros);
    k += snprintf(tmp + k, sizeof(tmp) - (size_t)k, "+00");
    return pg_buf_add(b, tmp, (size_t)k);
}

static int s_time_range(sl_ctx_t *ctx, const pg_col_t *c, const char *shown)
{
    return sl_ctx_fail(ctx, "field '%s' for column '%s' (timestamptz): %s is "
                            "out of range (years 1 to 9999)",
                       s_fname(c), c->name, shown);
}

static int s_time(pg_buf_t *b, const pg_col_t *c, const msgpack_object *v,
                  sl_ctx_t *ctx)
{
    int64_t per = c->per_second, secs, sub;
    char shown[48];

    switch (v->type) {
    case MSGPACK_OBJECT_STR:
        if (!s_is_time(v->via.str.ptr, v->via.str.size))
            return sl_ctx_fail(ctx, "field '%s' for column '%s' "
                                    "(timestamptz): \"%s\" is not an ISO "
                                    "8601 date and time",
                               s_fname(c), c->name,
                               s_show(v->via.str.ptr, v->via.str.size,
                                      shown));
        return pg_buf_add(b, v->via.str.ptr, v->via.str.size);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (v->via.u64 > (uint64_t)INT64_MAX) {
            snprintf(shown, sizeof(shown), "%" PRIu64, v->via.u64);
            return s_time_range(ctx, c, shown);
        }
        /* fall through */
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        secs = v->via.i64 / per;
        sub = v->via.i64 % per;
        if (sub < 0) { /* floor, so that -1 ms is 1969-12-31 23:59:59.999 */
            secs--;
            sub += per;
        }
        if (secs < S_MIN_SECS || secs > S_MAX_SECS) {
            snprintf(shown, sizeof(shown), "%" PRId64, v->via.i64);
            return s_time_range(ctx, c, shown);
        }
        return s_put_time(b, secs, sub * 1000000 / per);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: {
        double x = v->via.f64 / (double)per, fl = floor(x);
        if (!isfinite(x) || fl < (double)S_MIN_SECS ||
            fl > (double)S_MAX_SECS) {
            snprintf(shown, sizeof(shown), "%.17g", v->via.f64);
            return s_time_range(ctx, c, shown);
        }
        secs = (int64_t)fl;
        sub = llround((x - fl) * 1e6);
        if (sub >= 1000000) {
            secs++;
            sub -= 1000000;
        }
        if (secs > S_MAX_SECS) {
            snprintf(shown, sizeof(shown), "%.17g", v->via.f64);
            return s_time_range(ctx, c, shown);
        }
        return s_put_time(b, secs, sub);
    }
    default:
        return s_mismatch(ctx, c, v);
    }
}

/* ---- jsonb and bytea ------------------------------------------------------- */

/* jsonb refuses \u0000 in any string, a key included. */
static int s_has_nul(const msgpack_object *v, int depth)
{
    if (depth > 64)
        return 0;
    switch (v->type) {
    case MSGPACK_OBJECT_STR:
        return v->via.str.size && memchr(v->via.str.ptr, 0, v->via.str.size);
    case MSGPACK_OBJECT_ARRAY:
        for (uint32_t i = 0; i < v->via.array.size; i++)
            if (s_has_nul(&v->via.array.ptr[i], depth + 1))
                return 1;
        return 0;
    case MSGPACK_OBJECT_MAP:
        for (uint32_t i = 0; i < v->via.map.size; i++)
            if (s_has_nul(&v->via.map.ptr[i].key, depth + 1) ||
                s_has_nul(&v->via.map.ptr[i].val, depth + 1))
                return 1;
        return 0;
    default:
        return 0;
    }
}

static int s_jsonb(pg_buf_t *b, msgpack_sbuffer *json, const pg_col_t *c,
                   const msgpack_object *v, sl_ctx_t *ctx)
{
    if (s_has_nul(v, 0))
        return sl_ctx_fail(ctx, "field '%s' for column '%s' (jsonb): a "
                                "string holds a NUL character, which jsonb "
                                "cannot store",
                           s_fname(c), c->name);
    json->size = 0;
    /* The encoder writes valid UTF-8 whatever the input (U+FFFD for bad
     * bytes) and escapes control characters, so the server takes it. */
    if (sl_json_encode(v, json) < 0)
        return -ENOMEM;
    return s_escaped(b, json->data, json->size);
}

static int s_bytea(pg_buf_t *b, const char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";

    /* bytea's hex input, "\x...", with COPY's backslash doubled. */
    if (pg_buf_reserve(b, 3 + 2 * n) < 0)
        return -ENOMEM;
    char *o = b->p + b->len;
    *o++ = '\\';
    *o++ = '\\';
    *o++ = 'x';
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        *o++ = hex[ch >> 4];
        *o++ = hex[ch & 15];
    }
    b->len = (size_t)(o - b->p);
    return 0;
}

int pg_conv_field(pg_buf_t *b, msgpack_sbuffer *json, const pg_col_t *c,
                  const msgpack_object *v, sl_ctx_t *ctx)
{
    switch (c->type) {
    case PG_TEXT:
        if (v->type != MSGPACK_OBJECT_STR)
            return s_mismatch(ctx, c, v);
        return s_text(b, c, v->via.str.ptr, v->via.str.size, ctx);
    case PG_BIGINT:
    case PG_INTEGER:
        return s_integer(b, c, v, ctx);
    case PG_DOUBLE:
        return s_double(b, c, v, ctx);
    case PG_BOOLEAN:
        if (v->type != MSGPACK_OBJECT_BOOLEAN)
            return s_mismatch(ctx, c, v);
        return pg_buf_add(b, v->via.boolean ? "t" : "f", 1);
    case PG_TIMESTAMPTZ:
        return s_time(b, c, v, ctx);
    case PG_JSONB:
        return s_jsonb(b, json, c, v, ctx);
    case PG_BYTEA:
        if (v->type == MSGPACK_OBJECT_BIN)
            return s_bytea(b, v->via.bin.ptr, v->via.bin.size);
        if (v->type == MSGPACK_OBJECT_STR)
            return s_bytea(b, v->via.str.ptr, v->via.str.size);
        return s_mismatch(ctx, c, v);
    }
    return s_mismatch(ctx, c, v);
}
