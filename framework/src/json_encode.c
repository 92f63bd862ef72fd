/*
 * JSON encoding: msgpack objects to JSON text (see sluice/json.h).
 *
 * The encoder writes straight into the caller's sbuffer: one reserve per
 * value (amortised doubling, like msgpack_sbuffer_write) and bulk copies of
 * string runs that need no escaping, so a record costs no allocation once
 * the buffer has grown to the usual record size.
 */
#include <sluice/json.h>

#include "json_utf8.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The encoder's recursion limit: well inside a worker thread's stack, and far
 * above anything the decoder produces. */
#define S_MAX_DEPTH 2048

/* ---- output buffer ------------------------------------------------------- */

/* Makes room for n more bytes. sbuffer memory is realloc/free-owned, so
 * growing it here is equivalent to what msgpack_sbuffer_write would do. */
static int s_reserve(msgpack_sbuffer *out, size_t n)
{
    if (out->alloc - out->size >= n)
        return 0;
    size_t want = out->size + n;
    size_t cap = out->alloc ? out->alloc : 256;
    while (cap < want) {
        if (cap > SIZE_MAX / 2)
            return -ENOMEM;
        cap *= 2;
    }
    char *p = realloc(out->data, cap);
    if (!p)
        return -ENOMEM;
    out->data = p;
    out->alloc = cap;
    return 0;
}

static int s_put(msgpack_sbuffer *out, const void *p, size_t n)
{
    if (s_reserve(out, n) < 0)
        return -ENOMEM;
    memcpy(out->data + out->size, p, n);
    out->size += n;
    return 0;
}

static int s_putc(msgpack_sbuffer *out, char c)
{
    if (out->size == out->alloc && s_reserve(out, 1) < 0)
        return -ENOMEM;
    out->data[out->size++] = c;
    return 0;
}

/* ---- scalars ------------------------------------------------------------- */

static int s_put_u64(msgpack_sbuffer *out, uint64_t v)
{
    char tmp[24];
    char *p = tmp + sizeof(tmp);
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return s_put(out, p, (size_t)(tmp + sizeof(tmp) - p));
}

static int s_put_i64(msgpack_sbuffer *out, int64_t v)
{
    if (v >= 0)
        return s_put_u64(out, (uint64_t)v);
    if (s_putc(out, '-') < 0)
        return -ENOMEM;
    /* Negating in unsigned arithmetic also handles INT64_MIN. */
    return s_put_u64(out, 0 - (uint64_t)v);
}

/* Shortest of %.15g..%.17g (%.6g..%.9g for float32) that reads back as the
 * same value, always with a '.' or an exponent so that it parses back as a
 * float rather than an integer. */
/* Most doubles in records are prices, amounts, coordinates: a few
 * decimals. Such a value prints exactly as integer digits with a point put
 * in, when m / 10^6 (m = d * 10^6 rounded) gives d back: that division is
 * correctly rounded, as strtod is, so the text reads back as d. This skips
 * snprintf and strtod, which cost most of a JSON line's encoding. Returns
 * the length written, or 0 when the value needs the general path. */
static int s_fast_double(char *buf, double d)
{
    double a = fabs(d);
    if (!(a >= 1e-6 && a < 1e9))
        return 0;
    double scaled = a * 1e6;
    uint64_t m = (uint64_t)llround(scaled);
    if ((double)m / 1e6 != a)
        return 0;
    uint64_t ipart = m / 1000000, frac = m % 1000000;
    char digits[24];
    int n = 0, k = 0;
    if (d < 0)
        buf[n++] = '-';
    do {
        digits[k++] = (char)('0' + ipart % 10);
        ipart /= 10;
    } while (ipart);
    while (k)
        buf[n++] = digits[--k];
    buf[n++] = '.';
    int width = 6;
    while (width > 1 && frac % 10 == 0) {
        frac /= 10;
        width--;
    }
    for (int i = width - 1; i >= 0; i--) {
        buf[n + i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    return n + width;
}

static int s_put_double(msgpack_sbuffer *out, double d, int is_f32)
{
    if (!isfinite(d))
        return s_put(out, "null", 4);
    char buf[40];
    if (!is_f32) {
        int fast = s_fast_double(buf, d);
        if (fast)
            return s_put(out, buf, (size_t)fast);
    }
    int lo = is_f32 ? 6 : 15, hi = is_f32 ? 9 : 17;
    int n = 0;
    for (int prec = lo; prec <= hi; prec++) {
        n = snprintf(buf, sizeof(buf), "%.*g", prec, d);
        if (prec == hi)
            break;
        double back = strtod(buf, NULL);
        if (is_f32 ? (float)back == (float)d : back == d)
            break;
    }
    int has_mark = 0;
    for (int i = 0; i < n; i++) {
        /* A locale with a decimal comma must not leak into JSON. */
        if (buf[i] == ',')
            buf[i] = '.';
        if (buf[i] == '.' || buf[i] == 'e')
            has_mark = 1;
    }
    if (!has_mark) {
        buf[n++] = '.';
        buf[n++] = '0';
    }
    return s_put(out, buf, (size_t)n);
}

static const char s_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Writes "<base64 of p[0..n)>" including the quotes. */
static int s_put_base64(msgpack_sbuffer *out, const void *data, size_t n)
{
    const unsigned char *p = data;
    if (n > (SIZE_MAX - 2) / 4 * 3 - 3 ||
        s_reserve(out, (n + 2) / 3 * 4 + 2) < 0)
        return -ENOMEM;
    char *w = out->data + out->size;
    *w++ = '"';
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *w++ = s_b64[v >> 18];
        *w++ = s_b64[(v >> 12) & 63];
        *w++ = s_b64[(v >> 6) & 63];
        *w++ = s_b64[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        *w++ = s_b64[v >> 18];
        *w++ = s_b64[(v >> 12) & 63];
        *w++ = i + 1 < n ? s_b64[(v >> 6) & 63] : '=';
        *w++ = '=';
    }
    *w++ = '"';
    out->size = (size_t)(w - out->data);
    return 0;
}

/* ---- strings ------------------------------------------------------------- */

/* Bytes that can be copied as they are: printable ASCII except '"' and '\'.
 * Everything >= 0x80 goes through the UTF-8 check. */
static const unsigned char s_plain[256] = {
#define R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
    R16(0), R16(0), /* 0x00-0x1f: control characters */
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20-0x2f: '"' */
    R16(1), R16(1),                                 /* 0x30-0x4f */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x50-0x5f: '\' */
    R16(1), R16(1),                                 /* 0x60-0x7f */
    R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0),
#undef R16
};

static int s_put_str(msgpack_sbuffer *out, const char *str, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    /* msgpack-c gives an empty string a NULL pointer. */
    const unsigned char *p = n ? (const unsigned char *)str
                               : (const unsigned char *)"";
    const unsigned char *end = p + n;

    /* Worst case per input byte is 6 output bytes (\u00XX); reserving the
     * plain size plus slack covers typical strings in one step. */
    if (s_reserve(out, n + 2) < 0 || s_putc(out, '"') < 0)
        return -ENOMEM;
    while (p < end) {
        const unsigned char *run = p;
        while (p < end && s_plain[*p])
            p++;
        if (p > run && s_put(out, run, (size_t)(p - run)) < 0)
            return -ENOMEM;
        if (p == end)
            break;
        unsigned char c = *p;
        if (c >= 0x80) {
            size_t bad = 0;
            size_t len = sl__utf8_len(p, (size_t)(end - p), &bad);
            if (len) {
                if (s_put(out, p, len) < 0)
                    return -ENOMEM;
                p += len;
            } else {
                if (s_put(out, "\xef\xbf\xbd", 3) < 0)
                    return -ENOMEM;
                p += bad;
            }
            continue;
        }
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t elen = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        }
        if (s_put(out, esc, elen) < 0)
            return -ENOMEM;
        p++;
    }
    return s_putc(out, '"');
}

/* ---- values -------------------------------------------------------------- */

static int s_encode(const msgpack_object *o, msgpack_sbuffer *out, int depth);

/* A non-string map key is written as a JSON string holding its value's JSON
 * text. The value is encoded in place, then its escaped form is built right
 * after it and moved down, so no scratch allocation is needed. */
static int s_encode_key(const msgpack_object *k, msgpack_sbuffer *out,
                        int depth)
{
    switch (k->type) {
    case MSGPACK_OBJECT_STR:
        return s_put_str(out, k->via.str.ptr, k->via.str.size);
    case MSGPACK_OBJECT_BIN:
        return s_put_base64(out, k->via.bin.ptr, k->via.bin.size);
    case MSGPACK_OBJECT_NIL:
    case MSGPACK_OBJECT_BOOLEAN:
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        /* Their JSON text never needs escaping. */
        if (s_putc(out, '"') < 0 || s_encode(k, out, depth) < 0)
            return -ENOMEM;
        return s_putc(out, '"');
    default:
        break;
    }
    size_t start = out->size;
    int rc = s_encode(k, out, depth);
    if (rc < 0)
        return rc;
    size_t mid = out->size;
    /* s_put_str reads from the buffer it appends to: reserve its worst case
     * (6 bytes per input byte) first so that it never reallocates. */
    if (s_reserve(out, (mid - start) * 6 + 2) < 0)
        return -ENOMEM;
    rc = s_put_str(out, out->data + start, mid - start);
    if (rc < 0)
        return rc;
    memmove(out->data + start, out->data + mid, out->size - mid);
    out->size = start + (out->size - mid);
    return 0;
}

static int s_encode(const msgpack_object *o, msgpack_sbuffer *out, int depth)
{
    if (depth > S_MAX_DEPTH)
        return -ELOOP;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return s_put(out, "null", 4);
    case MSGPACK_OBJECT_BOOLEAN:
        return o->via.boolean ? s_put(out, "true", 4) : s_put(out, "false", 5);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return s_put_u64(out, o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return s_put_i64(out, o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
        return s_put_double(out, o->via.f64, 1);
    case MSGPACK_OBJECT_FLOAT64:
        return s_put_double(out, o->via.f64, 0);
    case MSGPACK_OBJECT_STR:
        return s_put_str(out, o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_BIN:
        return s_put_base64(out, o->via.bin.ptr, o->via.bin.size);
    case MSGPACK_OBJECT_EXT:
        if (s_put(out, "{\"ext\":", 7) < 0 ||
            s_put_i64(out, o->via.ext.type) < 0 ||
            s_put(out, ",\"data\":", 8) < 0 ||
            s_put_base64(out, o->via.ext.ptr, o->via.ext.size) < 0)
            return -ENOMEM;
        return s_putc(out, '}');
    case MSGPACK_OBJECT_ARRAY: {
        if (s_putc(out, '[') < 0)
            return -ENOMEM;
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i && s_putc(out, ',') < 0)
                return -ENOMEM;
            int rc = s_encode(&o->via.array.ptr[i], out, depth + 1);
            if (rc < 0)
                return rc;
        }
        return s_putc(out, ']');
    }
    case MSGPACK_OBJECT_MAP: {
        if (s_putc(out, '{') < 0)
            return -ENOMEM;
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (i && s_putc(out, ',') < 0)
                return -ENOMEM;
            int rc = s_encode_key(&kv->key, out, depth + 1);
            if (rc < 0)
                return rc;
            if (s_putc(out, ':') < 0)
                return -ENOMEM;
            rc = s_encode(&kv->val, out, depth + 1);
            if (rc < 0)
                return rc;
        }
        return s_putc(out, '}');
    }
    }
    /* An unknown type tag means a corrupt object; null keeps output valid. */
    return s_put(out, "null", 4);
}

SL_API int sl_json_encode(const msgpack_object *obj, msgpack_sbuffer *out)
{
    size_t start = out->size;
    int rc = s_encode(obj, out, 0);
    if (rc < 0)
        out->size = start; /* no half-written value left behind */
    return rc;
}
