/* Bounded msgpack walking: see mpscan.h. */
#include "mpscan.h"

#include <errno.h>
#include <string.h>

static uint64_t s_be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Sets the kind and how many big-endian bytes after the type byte hold a
 * length (lenb) and whether an ext type byte follows them. */
static int s_classify(unsigned c, sl_mp_head_t *h, size_t *lenb, int *ext)
{
    *lenb = 0;
    *ext = 0;
    if (c <= 0x7f || c >= 0xe0) {
        h->kind = SL_MP_INT;
        if (c <= 0x7f)
            h->u = c;
        else {
            h->neg = 1;
            h->i = (int64_t)(int8_t)c;
        }
        return 0;
    }
    if (c <= 0x8f) {
        h->kind = SL_MP_MAP;
        h->n = c & 0x0f;
        return 0;
    }
    if (c <= 0x9f) {
        h->kind = SL_MP_ARRAY;
        h->n = c & 0x0f;
        return 0;
    }
    if (c <= 0xbf) {
        h->kind = SL_MP_STR;
        h->n = c & 0x1f;
        return 0;
    }
    switch (c) {
    case 0xc0: h->kind = SL_MP_NIL; return 0;
    case 0xc1: return -EBADMSG;
    case 0xc2: case 0xc3:
        h->kind = SL_MP_BOOL;
        h->u = c == 0xc3;
        return 0;
    case 0xc4: case 0xc5: case 0xc6:
        h->kind = SL_MP_BIN;
        *lenb = (size_t)1 << (c - 0xc4);
        return 0;
    case 0xc7: case 0xc8: case 0xc9:
        h->kind = SL_MP_EXT;
        *lenb = (size_t)1 << (c - 0xc7);
        *ext = 1;
        return 0;
    case 0xca: h->kind = SL_MP_FLOAT32; return 0;
    case 0xcb: h->kind = SL_MP_FLOAT64; return 0;
    case 0xcc: case 0xcd: case 0xce: case 0xcf:
    case 0xd0: case 0xd1: case 0xd2: case 0xd3:
        h->kind = SL_MP_INT;
        return 0;
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
        h->kind = SL_MP_EXT;
        h->n = (uint64_t)1 << (c - 0xd4);
        *ext = 1;
        return 0;
    case 0xd9: case 0xda: case 0xdb:
        h->kind = SL_MP_STR;
        *lenb = (size_t)1 << (c - 0xd9);
        return 0;
    case 0xdc: case 0xdd:
        h->kind = SL_MP_ARRAY;
        *lenb = c == 0xdc ? 2 : 4;
        return 0;
    default: /* 0xde, 0xdf */
        h->kind = SL_MP_MAP;
        *lenb = c == 0xde ? 2 : 4;
        return 0;
    }
}

int sl__mpscan_head(const void *data, size_t len, sl_mp_head_t *h)
{
    const unsigned char *p = data;
    memset(h, 0, sizeof(*h));
    if (len < 1)
        return -EAGAIN;
    unsigned c = p[0];
    size_t lenb;
    int ext;
    if (s_classify(c, h, &lenb, &ext) < 0)
        return -EBADMSG;
    size_t hdr = 1 + lenb + (size_t)ext;
    /* Numbers carry their value right after the type byte. */
    size_t valb = 0;
    if (c == 0xca)
        valb = 4;
    else if (c == 0xcb)
        valb = 8;
    else if (c >= 0xcc && c <= 0xd3)
        valb = (size_t)1 << ((c - 0xcc) & 3);
    hdr += valb;
    if (len < hdr)
        return -EAGAIN;
    if (lenb)
        h->n = s_be(p + 1, lenb);
    if (valb) {
        uint64_t v = s_be(p + 1, valb);
        if (c == 0xca) {
            float f;
            uint32_t w = (uint32_t)v;
            memcpy(&f, &w, sizeof(f));
            h->f = f;
        } else if (c == 0xcb) {
            memcpy(&h->f, &v, sizeof(h->f));
        } else if (c <= 0xcf) {
            h->u = v;
        } else {
            /* Sign-extend from the encoded width. */
            unsigned bits = (unsigned)valb * 8;
            if (bits < 64 && (v >> (bits - 1)) & 1)
                v |= ~(uint64_t)0 << bits;
            h->i = (int64_t)v;
            if (h->i >= 0)
                h->u = v;
            else
                h->neg = 1;
        }
    }
    h->hdr = hdr;
    return 0;
}

int sl__mpscan_object(const void *data, size_t len, unsigned max_depth,
                size_t *used)
{
    const unsigned char *p = data;
    uint64_t left[SL_MP_MAX_DEPTH + 1]; /* items still due per open level */
    unsigned depth = 0;
    size_t pos = 0;
    if (max_depth > SL_MP_MAX_DEPTH)
        max_depth = SL_MP_MAX_DEPTH;
    for (;;) {
        sl_mp_head_t h;
        int rc = sl__mpscan_head(p + pos, len - pos, &h);
        if (rc < 0) {
            *used = rc == -EAGAIN ? len : pos;
            return rc;
        }
        size_t at = pos;
        pos += h.hdr;
        if (h.kind == SL_MP_STR || h.kind == SL_MP_BIN ||
            h.kind == SL_MP_EXT) {
            if (h.n > len - pos) {
                *used = len;
                return -EAGAIN;
            }
            pos += (size_t)h.n;
        } else if ((h.kind == SL_MP_ARRAY || h.kind == SL_MP_MAP) && h.n) {
            if (depth == max_depth) {
                *used = at;
                return -ELOOP;
            }
            left[depth++] = h.kind == SL_MP_MAP ? h.n * 2 : h.n;
            continue;
        } else if (h.kind == SL_MP_ARRAY || h.kind == SL_MP_MAP) {
            /* An empty container still counts as a level. */
            if (depth == max_depth) {
                *used = at;
                return -ELOOP;
            }
        }
        /* One item done: close every level it completes. */
        while (depth && --left[depth - 1] == 0)
            depth--;
        if (!depth) {
            *used = pos;
            return 0;
        }
    }
}

const char *sl__mpscan_kind_name(sl_mp_kind_t kind)
{
    static const char *const names[SL_MP_KINDS] = {
        "nil", "bool", "int", "float32", "float64",
        "str", "bin",  "array", "map",   "ext"};
    return (unsigned)kind < SL_MP_KINDS ? names[kind] : "?";
}
