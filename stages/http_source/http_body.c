/* http_source: body decoding and a bounded msgpack walker. */
#include "http_body.h"

#include <sluice/json.h>

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* msgpack-c unpacks at most 32 nested containers; a deeper record could
 * be queued but never read, so it is refused at the door. */
#define HS_MAX_DEPTH 32

static int s_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int s_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -EBADMSG;
}

static int s_is_map(unsigned char c)
{
    return (c & 0xf0) == 0x80 || c == 0xde || c == 0xdf;
}

/* What a msgpack value is, from its first byte, for messages. */
static const char *s_kind(unsigned char c)
{
    if (c <= 0x7f || c >= 0xe0 || (c >= 0xcc && c <= 0xd3) || c == 0xca ||
        c == 0xcb)
        return "a number";
    if (s_is_map(c))
        return "an object";
    if ((c & 0xf0) == 0x90 || c == 0xdc || c == 0xdd)
        return "an array";
    if ((c & 0xe0) == 0xa0 || (c >= 0xd9 && c <= 0xdb))
        return "a string";
    if (c == 0xc0)
        return "null";
    if (c == 0xc2 || c == 0xc3)
        return "a boolean";
    if (c >= 0xc4 && c <= 0xc6)
        return "binary data";
    return "an extension value";
}

static uint64_t s_be(const unsigned char *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Skips one msgpack value at p[*off..len), checking that it is whole and
 * nests at most HS_MAX_DEPTH containers. Each element takes at least one
 * byte, so the walk is bounded by len whatever the headers claim. Returns
 * 0, or -EBADMSG with *why set. */
static int s_mp_skip(const unsigned char *p, size_t len, size_t *off,
                     const char **why)
{
    static const unsigned char s_lenbytes[] = {
        /* 0xc4 bin8 .. 0xc9 ext32: bytes of the length field */
        1, 2, 4, 1, 2, 4};
    static const unsigned char s_fixed[] = {
        /* 0xca .. 0xd8: payload bytes after the head */
        4, 8, 1, 2, 4, 8, 1, 2, 4, 8, 2, 3, 5, 9, 17};
    uint64_t left[HS_MAX_DEPTH + 1];
    int depth = 0;
    size_t i = *off;

    left[0] = 1;
    while (depth >= 0) {
        if (left[depth] == 0) {
            depth--;
            continue;
        }
        left[depth]--;
        if (i >= len)
            goto truncated;
        unsigned c = p[i++];
        uint64_t skip = 0, items = 0;
        int container = 0;
        if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
            /* the head is the whole value */
        } else if (c <= 0x8f) {
            items = 2u * (c & 0x0f);
            container = 1;
        } else if (c <= 0x9f) {
            items = c & 0x0f;
            container = 1;
        } else if (c <= 0xbf) {
            skip = c & 0x1f;
        } else if (c == 0xc1) {
            *why = "byte 0xc1 is not msgpack";
            return -EBADMSG;
        } else if (c <= 0xc9) { /* bin, ext: a length, then (ext) a type */
            unsigned n = s_lenbytes[c - 0xc4];
            if (len - i < n)
                goto truncated;
            skip = s_be(p + i, n) + (c >= 0xc7 ? 1 : 0);
            i += n;
        } else if (c <= 0xd8) {
            skip = s_fixed[c - 0xca];
        } else if (c <= 0xdb) { /* str8/16/32 */
            unsigned n = 1u << (c - 0xd9);
            if (len - i < n)
                goto truncated;
            skip = s_be(p + i, n);
            i += n;
        } else { /* 0xdc..0xdf: array16/32, map16/32 */
            unsigned n = (c == 0xdc || c == 0xde) ? 2 : 4;
            if (len - i < n)
                goto truncated;
            items = s_be(p + i, n) * (c >= 0xde ? 2u : 1u);
            i += n;
            container = 1;
        }
        if (len - i < skip)
            goto truncated;
        i += (size_t)skip;
        if (container) {
            if (depth >= HS_MAX_DEPTH) {
                *why = "nested deeper than 32 levels";
                return -EBADMSG;
            }
            if (items)
                left[++depth] = items;
        }
    }
    *off = i;
    return 0;
truncated:
    *why = "cut short";
    return -EBADMSG;
}

static hs_batch_t *s_batch_new(size_t cap)
{
    hs_batch_t *b = malloc(sizeof(*b) + (cap ? cap : 1) * sizeof(size_t));
    if (!b)
        return NULL;
    memset(b, 0, sizeof(*b));
    b->cap = cap ? cap : 1;
    return b;
}

void hs_batch_free(hs_batch_t *b)
{
    if (!b)
        return;
    free(b->data);
    free(b);
}

/* Packs into a buffer sized from the body: msgpack is rarely larger than
 * the JSON it came from, so it grows at most a few times. */
static int s_sbuf_init(msgpack_sbuffer *sb, size_t len)
{
    msgpack_sbuffer_init(sb);
    sb->data = malloc(len + 64);
    if (!sb->data)
        return -ENOMEM;
    sb->alloc = len + 64;
    return 0;
}

/* The count and header size of a msgpack array head at p[0..len), or -1. */
static int s_array_head(const unsigned char *p, size_t len, uint64_t *count,
                        size_t *hdr)
{
    if (len >= 1 && (p[0] & 0xf0) == 0x90) {
        *count = p[0] & 0x0f;
        *hdr = 1;
    } else if (len >= 3 && p[0] == 0xdc) {
        *count = s_be(p + 1, 2);
        *hdr = 3;
    } else if (len >= 5 && p[0] == 0xdd) {
        *count = s_be(p + 1, 4);
        *hdr = 5;
    } else {
        return -1;
    }
    return 0;
}

static int s_json(const char *body, size_t len, hs_batch_t **out, char *err,
                  size_t errlen)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    hs_batch_t *b = NULL;
    char why[200];
    int rc;

    if (s_sbuf_init(&sb, len) < 0)
        return -ENOMEM;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    rc = sl_json_decode(body, len, &pk, why, sizeof(why));
    if (rc == -EBADMSG) {
        rc = s_fail(err, errlen, "%s", why);
        goto fail;
    }
    if (rc < 0)
        goto fail;
    const unsigned char *p = (const unsigned char *)sb.data;
    if (s_is_map(p[0])) {
        rc = -ENOMEM;
        if (!(b = s_batch_new(1)))
            goto fail;
        b->ends[0] = sb.size;
        b->n = 1;
    } else {
        uint64_t count;
        size_t hdr, off;
        if (s_array_head(p, sb.size, &count, &hdr) < 0) {
            rc = s_fail(err, errlen, "the body is %s, not an object or an "
                        "array of objects", s_kind(p[0]));
            goto fail;
        }
        rc = -ENOMEM;
        if (!(b = s_batch_new((size_t)count)))
            goto fail;
        b->first = off = hdr;
        for (size_t i = 0; i < count; i++) {
            const char *w;
            if (!s_is_map(p[off])) {
                rc = s_fail(err, errlen, "element %zu is %s, not an object",
                            i + 1, s_kind(p[off]));
                goto fail;
            }
            /* The decoder wrote it, so only the depth can be wrong. */
            if (s_mp_skip(p, sb.size, &off, &w) < 0) {
                rc = s_fail(err, errlen, "element %zu: %s", i + 1, w);
                goto fail;
            }
            b->ends[i] = off;
        }
        b->n = (size_t)count;
    }
    b->data = sb.data;
    b->len = sb.size;
    *out = b;
    return 0;
fail:
    free(b);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* "line 1 column C: why" from a one-line decode, as line n of the body. */
static int s_line_error(char *err, size_t errlen, size_t n, const char *why)
{
    if (strncmp(why, "line 1 ", 7) == 0)
        return s_fail(err, errlen, "line %zu %s", n, why + 7);
    return s_fail(err, errlen, "line %zu: %s", n, why);
}

static int s_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return 0;
    return 1;
}

static int s_ndjson(const char *body, size_t len, hs_batch_t **out,
                    char *err, size_t errlen)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    hs_batch_t *b;
    size_t lines = 1;
    char why[200];
    int rc;

    for (const char *p = body; (p = memchr(p, '\n', (size_t)(body + len - p)));
         p++)
        lines++;
    if (!(b = s_batch_new(lines)))
        return -ENOMEM;
    if (s_sbuf_init(&sb, len) < 0) {
        free(b);
        return -ENOMEM;
    }
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    size_t line = 0;
    for (const char *p = body, *end = body + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        size_t at = sb.size;
        line++;
        if (!s_blank(p, n)) {
            rc = sl_json_decode(p, n, &pk, why, sizeof(why));
            if (rc == -EBADMSG) {
                rc = s_line_error(err, errlen, line, why);
                goto fail;
            }
            if (rc < 0)
                goto fail;
            unsigned char c = (unsigned char)sb.data[at];
            if (!s_is_map(c)) {
                rc = s_fail(err, errlen, "line %zu is %s, not an object",
                            line, s_kind(c));
                goto fail;
            }
            b->ends[b->n++] = sb.size;
        }
        p += n + 1;
    }
    b->data = sb.data;
    b->len = sb.size;
    *out = b;
    return 0;
fail:
    free(b);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static int s_msgpack(char **body, size_t len, hs_batch_t **out, char *err,
                     size_t errlen)
{
    const unsigned char *p = (const unsigned char *)*body;
    hs_batch_t *b = s_batch_new(64);
    size_t off = 0;

    if (!b)
        return -ENOMEM;
    while (off < len) {
        size_t at = off;
        const char *why;
        if (!s_is_map(p[off])) {
            int rc = s_fail(err, errlen, "msgpack value %zu (at byte %zu) is "
                            "%s, not a map", b->n + 1, at, s_kind(p[off]));
            free(b);
            return rc;
        }
        if (s_mp_skip(p, len, &off, &why) < 0) {
            int rc = s_fail(err, errlen, "msgpack value %zu (at byte %zu): "
                            "%s", b->n + 1, at, why);
            free(b);
            return rc;
        }
        if (b->n == b->cap) {
            hs_batch_t *g = realloc(b, sizeof(*b) + 2 * b->cap *
                                                        sizeof(size_t));
            if (!g) {
                free(b);
                return -ENOMEM;
            }
            b = g;
            b->cap *= 2;
        }
        b->ends[b->n++] = off;
    }
    b->data = *body;
    b->len = len;
    *body = NULL;
    *out = b;
    return 0;
}

int hs_body_decode(hs_format_t f, char **body, size_t len, hs_batch_t **out,
                   char *err, size_t errlen)
{
    *out = NULL;
    switch (f) {
    case HS_JSON:
        return s_json(*body ? *body : "", len, out, err, errlen);
    case HS_NDJSON:
        return s_ndjson(*body ? *body : "", len, out, err, errlen);
    case HS_MSGPACK:
        return s_msgpack(body, len, out, err, errlen);
    default:
        return -EINVAL;
    }
}
