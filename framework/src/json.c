/*
 * JSON <-> msgpack (see sluice/json.h).
 *
 * The encoder writes straight into the caller's sbuffer: one reserve per
 * value (amortised doubling, like msgpack_sbuffer_write) and bulk copies of
 * string runs that need no escaping, so a record costs no allocation once
 * the buffer has grown to the usual record size.
 *
 * The decoder lets jansson build a tree, then packs it. jansson refuses
 * integers outside int64 ("too big integer"); rather than fail the record we
 * re-parse a copy in which such tokens carry a ".0", so they become floats.
 */
#include <sluice/json.h>

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Same nesting limit as jansson's parser: anything we decode we can encode,
 * and the recursion stays well inside a worker thread's stack. */
#define S_MAX_DEPTH 2048
/* Containers msgpack-c's C unpacker can nest: its fixed stack size
 * (MSGPACK_EMBED_STACK_SIZE), compiled into libmsgpackc. */
#define S_MSGPACK_DEPTH 32

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
static int s_put_double(msgpack_sbuffer *out, double d, int is_f32)
{
    if (!isfinite(d))
        return s_put(out, "null", 4);
    char buf[40];
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

/* Length of the valid UTF-8 sequence at p (n bytes left), or 0 if invalid;
 * *bad is then the length of the maximal ill-formed prefix to replace by a
 * single U+FFFD (Unicode's "maximal subpart" practice, at least 1). */
static size_t s_utf8_len(const unsigned char *p, size_t n, size_t *bad)
{
    unsigned char c = p[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xbf; /* range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        need = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else {
        *bad = 1;
        return 0;
    }
    size_t i = 1;
    if (i < n && p[i] >= lo && p[i] <= hi) {
        for (i = 2; i < need && i < n; i++)
            if ((p[i] & 0xc0) != 0x80)
                break;
    }
    if (i == need)
        return need;
    *bad = i;
    return 0;
}

static int s_put_str(msgpack_sbuffer *out, const char *str, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)str;
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
            size_t len = s_utf8_len(p, (size_t)(end - p), &bad);
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

/* ---- decoding ------------------------------------------------------------ */

static int s_pack(const json_t *j, msgpack_packer *pk)
{
    int rc = 0;
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        const char *key;
        size_t klen;
        json_t *val;
        rc = msgpack_pack_map(pk, json_object_size(j));
        /* jansson >= 2.8 iterates in insertion order, which keeps the key
         * order of the text (a duplicate key keeps its first position). */
        json_object_keylen_foreach((json_t *)j, key, klen, val) {
            if (rc < 0)
                break;
            rc = msgpack_pack_str_with_body(pk, key, klen);
            if (rc == 0)
                rc = s_pack(val, pk);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        rc = msgpack_pack_array(pk, n);
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = s_pack(json_array_get(j, i), pk);
        break;
    }
    case JSON_STRING:
        rc = msgpack_pack_str_with_body(pk, json_string_value(j),
                                        json_string_length(j));
        break;
    case JSON_INTEGER:
        rc = msgpack_pack_int64(pk, json_integer_value(j));
        break;
    case JSON_REAL:
        rc = msgpack_pack_double(pk, json_real_value(j));
        break;
    case JSON_TRUE:
        rc = msgpack_pack_true(pk);
        break;
    case JSON_FALSE:
        rc = msgpack_pack_false(pk);
        break;
    case JSON_NULL:
        rc = msgpack_pack_nil(pk);
        break;
    }
    return rc < 0 ? -ENOMEM : 0;
}

/* A malloc'd copy of text in which each integer token outside int64 is
 * followed by ".0", so that jansson reads it as a float; all other tokens
 * are copied unchanged. Only called after jansson reported such an integer,
 * so the common path never pays for the scan. NULL on allocation failure. */
static char *s_widen_ints(const char *text, size_t len, size_t *outlen)
{
    size_t cap = len + 1;
    size_t tokens = 0;
    for (size_t i = 0; i < len; i++)
        tokens += text[i] >= '0' && text[i] <= '9';
    if (tokens > (SIZE_MAX - cap) / 2)
        return NULL;
    cap += 2 * tokens;
    char *w = malloc(cap);
    if (!w)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        char c = text[i];
        if (c == '"') {
            /* Copy the string verbatim, honouring backslash escapes. */
            w[o++] = text[i++];
            while (i < len && text[i] != '"') {
                if (text[i] == '\\' && i + 1 < len)
                    w[o++] = text[i++];
                w[o++] = text[i++];
            }
            if (i < len)
                w[o++] = text[i++];
            continue;
        }
        if (c == '-' || (c >= '0' && c <= '9')) {
            size_t s = i;
            if (text[i] == '-')
                i++;
            while (i < len && text[i] >= '0' && text[i] <= '9')
                i++;
            int is_int = !(i < len && (text[i] == '.' || text[i] == 'e' ||
                                       text[i] == 'E'));
            memcpy(w + o, text + s, i - s);
            o += i - s;
            /* Only tokens that really overflow int64 are widened; the digit
             * count is a cheap pre-filter, strtoll decides. */
            size_t digits = i - s - (text[s] == '-');
            if (is_int && digits >= 19) {
                char num[32];
                errno = 0;
                if (digits < sizeof(num) - 2) {
                    memcpy(num, text + s, i - s);
                    num[i - s] = '\0';
                    (void)strtoll(num, NULL, 10);
                } else {
                    errno = ERANGE;
                }
                if (errno == ERANGE) {
                    w[o++] = '.';
                    w[o++] = '0';
                }
            }
            continue;
        }
        w[o++] = text[i++];
    }
    *outlen = o;
    return w;
}

/* msgpack-c's C unpacker has a fixed stack of MSGPACK_EMBED_STACK_SIZE
 * containers: a deeper record could be packed but never unpacked again, so
 * such text is refused here, where the error can still name a position. */
static int s_depth_ok(const json_t *j, int left)
{
    if (!json_is_object(j) && !json_is_array(j))
        return 1;
    if (left == 0)
        return 0;
    if (json_is_array(j)) {
        size_t n = json_array_size(j);
        for (size_t i = 0; i < n; i++)
            if (!s_depth_ok(json_array_get(j, i), left - 1))
                return 0;
        return 1;
    }
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)j, key, val) {
        if (!s_depth_ok(val, left - 1))
            return 0;
    }
    return 1;
}

/* Line and column (1-based, in bytes) of the bracket that opens the first
 * container nested deeper than max, found by a scan of the (valid) text. */
static void s_depth_pos(const char *text, size_t len, int max, int *line,
                        int *col)
{
    int depth = 0;
    *line = 1;
    *col = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        (*col)++;
        if (c == '\n') {
            (*line)++;
            *col = 0;
        } else if (c == '"') {
            for (i++; i < len && text[i] != '"'; i++) {
                (*col)++;
                if (text[i] == '\\' && i + 1 < len) {
                    i++;
                    (*col)++;
                }
            }
            (*col)++;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                return;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
}

static void s_set_err(char *err, size_t errlen, const json_error_t *je)
{
    if (err && errlen)
        snprintf(err, errlen, "line %d column %d: %s", je->line, je->column,
                 je->text);
}

SL_API int sl_json_decode(const char *text, size_t len, msgpack_packer *pk,
                          char *err, size_t errlen)
{
    /* DECODE_ANY: a record field may hold any value, not only containers.
     * ALLOW_NUL: msgpack strings may contain NUL, so "\u0000" is kept. */
    const size_t flags = JSON_DECODE_ANY | JSON_ALLOW_NUL;
    json_error_t je;
    if (!text)
        text = "";
    json_t *root = json_loadb(text, len, flags, &je);
    if (!root && json_error_code(&je) == json_error_numeric_overflow &&
        strstr(je.text, "integer")) {
        size_t wlen = 0;
        char *wide = s_widen_ints(text, len, &wlen);
        if (!wide)
            return -ENOMEM;
        json_error_t je2;
        root = json_loadb(wide, wlen, flags, &je2);
        free(wide);
        /* A later syntax error: report it (its column may be off by the two
         * bytes added per widened number before it on the same line). */
        if (!root)
            je = je2;
    }
    if (!root) {
        if (json_error_code(&je) == json_error_out_of_memory)
            return -ENOMEM;
        s_set_err(err, errlen, &je);
        return -EBADMSG;
    }
    if (!s_depth_ok(root, S_MSGPACK_DEPTH)) {
        json_decref(root);
        if (err && errlen) {
            int line, col;
            s_depth_pos(text, len, S_MSGPACK_DEPTH, &line, &col);
            snprintf(err, errlen,
                     "line %d column %d: nested deeper than %d levels", line,
                     col, S_MSGPACK_DEPTH);
        }
        return -EBADMSG;
    }
    int rc = s_pack(root, pk);
    json_decref(root);
    return rc;
}
