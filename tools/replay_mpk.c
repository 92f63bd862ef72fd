/* The little msgpack the replayer needs, on raw bytes: the length of one
 * object, a u64 appended to a map, and a u64 found in a map. Returned
 * records come from the network, so every size is checked against what
 * is left before it is used, and nothing is allocated. */
#include "cmd_replay.h"

#include <errno.h>
#include <string.h>

static uint64_t s_be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* The header of the object at p: its size in bytes (hdr), the payload
 * bytes that follow it (body) and the objects nested in it (kids).
 * -EBADMSG when the header itself does not fit or is the unused 0xc1. */
static int s_head(const uint8_t *p, size_t len, size_t *hdr, uint64_t *body,
                  uint64_t *kids)
{
    if (len < 1)
        return -EBADMSG;
    uint8_t b = p[0];
    *body = 0;
    *kids = 0;
    *hdr = 1;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        return 0;
    if (b >= 0x80 && b <= 0x8f) {
        *kids = 2u * (b & 0x0f);
        return 0;
    }
    if (b >= 0x90 && b <= 0x9f) {
        *kids = b & 0x0f;
        return 0;
    }
    if (b >= 0xa0 && b <= 0xbf) {
        *body = b & 0x1f;
        return 0;
    }
    /* size of the length field, of a fixed payload */
    unsigned lf = 0, fixed = 0;
    switch (b) {
    case 0xc4: case 0xd9: lf = 1; break;               /* bin8, str8 */
    case 0xc5: case 0xda: lf = 2; break;               /* bin16, str16 */
    case 0xc6: case 0xdb: lf = 4; break;               /* bin32, str32 */
    case 0xc7: lf = 1; fixed = 1; break;               /* ext8 (+type) */
    case 0xc8: lf = 2; fixed = 1; break;
    case 0xc9: lf = 4; fixed = 1; break;
    case 0xca: fixed = 4; break;                       /* float32 */
    case 0xcb: fixed = 8; break;                       /* float64 */
    case 0xcc: case 0xd0: fixed = 1; break;
    case 0xcd: case 0xd1: fixed = 2; break;
    case 0xce: case 0xd2: fixed = 4; break;
    case 0xcf: case 0xd3: fixed = 8; break;
    case 0xd4: fixed = 2; break;                       /* fixext 1..16 */
    case 0xd5: fixed = 3; break;
    case 0xd6: fixed = 5; break;
    case 0xd7: fixed = 9; break;
    case 0xd8: fixed = 17; break;
    case 0xdc: case 0xdd: {                            /* array16/32 */
        unsigned n = b == 0xdc ? 2 : 4;
        if (len < 1 + n)
            return -EBADMSG;
        *kids = s_be(p + 1, n);
        *hdr = 1 + n;
        return 0;
    }
    case 0xde: case 0xdf: {                            /* map16/32 */
        unsigned n = b == 0xde ? 2 : 4;
        if (len < 1 + n)
            return -EBADMSG;
        *kids = 2 * s_be(p + 1, n);
        *hdr = 1 + n;
        return 0;
    }
    default:
        return -EBADMSG; /* 0xc1 */
    }
    if (len < 1 + lf)
        return -EBADMSG;
    *hdr = 1 + lf;
    *body = (lf ? s_be(p + 1, lf) : 0) + fixed;
    return 0;
}

int sl__rp_mpk_skip(const uint8_t *p, size_t len, size_t *n)
{
    size_t at = 0;
    uint64_t todo = 1;
    while (todo) {
        size_t hdr;
        uint64_t body, kids;
        if (s_head(p + at, len - at, &hdr, &body, &kids) != 0)
            return -EBADMSG;
        at += hdr;
        if (body > len - at)
            return -EBADMSG;
        at += (size_t)body;
        todo--;
        /* each nested object takes at least one byte: a header claiming
         * more than what is left is a lie, caught before it is counted */
        if (kids > len - at || todo > len - at - kids)
            return -EBADMSG;
        todo += kids;
    }
    *n = at;
    return 0;
}

/* The entry count and header size of the map at rec. */
static int s_map_head(const uint8_t *rec, size_t len, uint64_t *count,
                      size_t *hdr)
{
    if (len < 1)
        return -EBADMSG;
    uint8_t b = rec[0];
    if (b >= 0x80 && b <= 0x8f) {
        *count = b & 0x0f;
        *hdr = 1;
    } else if (b == 0xde && len >= 3) {
        *count = s_be(rec + 1, 2);
        *hdr = 3;
    } else if (b == 0xdf && len >= 5) {
        *count = s_be(rec + 1, 4);
        *hdr = 5;
    } else {
        return -EBADMSG;
    }
    return 0;
}

int sl__rp_mpk_append_u64(const uint8_t *rec, size_t len, const char *key,
                          size_t klen, uint64_t v, uint8_t *out, size_t cap,
                          size_t *out_len)
{
    uint64_t count;
    size_t hdr;
    if (s_map_head(rec, len, &count, &hdr) != 0 || count >= UINT32_MAX ||
        klen > 255)
        return -EBADMSG;
    count++;
    size_t nh = count <= 15 ? 1 : count <= 0xffff ? 3 : 5;
    size_t kh = klen < 32 ? 1 : 2;
    size_t need = nh + (len - hdr) + kh + klen + 9;
    if (need > cap)
        return -ENOBUFS;
    uint8_t *o = out;
    if (nh == 1) {
        *o++ = (uint8_t)(0x80 | count);
    } else if (nh == 3) {
        *o++ = 0xde;
        *o++ = (uint8_t)(count >> 8);
        *o++ = (uint8_t)count;
    } else {
        *o++ = 0xdf;
        for (int s = 24; s >= 0; s -= 8)
            *o++ = (uint8_t)(count >> s);
    }
    memcpy(o, rec + hdr, len - hdr);
    o += len - hdr;
    if (kh == 1) {
        *o++ = (uint8_t)(0xa0 | klen);
    } else {
        *o++ = 0xd9;
        *o++ = (uint8_t)klen;
    }
    memcpy(o, key, klen);
    o += klen;
    *o++ = 0xcf;
    for (int s = 56; s >= 0; s -= 8)
        *o++ = (uint8_t)(v >> s);
    *out_len = (size_t)(o - out);
    return 0;
}

/* The string at p, if it is one: 1 with its bytes, 0 if it is not a
 * string. The caller has checked that the object fits. */
static int s_str(const uint8_t *p, const uint8_t **s, size_t *n)
{
    uint8_t b = p[0];
    if (b >= 0xa0 && b <= 0xbf) {
        *s = p + 1;
        *n = b & 0x1f;
    } else if (b == 0xd9) {
        *s = p + 2;
        *n = p[1];
    } else if (b == 0xda) {
        *s = p + 3;
        *n = (size_t)s_be(p + 1, 2);
    } else if (b == 0xdb) {
        *s = p + 5;
        *n = (size_t)s_be(p + 1, 4);
    } else {
        return 0;
    }
    return 1;
}

static int s_uint(const uint8_t *p, size_t len, uint64_t *v)
{
    uint8_t b = p[0];
    if (b <= 0x7f) {
        *v = b;
        return 0;
    }
    unsigned n = b == 0xcc || b == 0xd0   ? 1
                 : b == 0xcd || b == 0xd1 ? 2
                 : b == 0xce || b == 0xd2 ? 4
                 : b == 0xcf || b == 0xd3 ? 8
                                          : 0;
    if (!n || len < 1 + n)
        return -ERANGE;
    uint64_t x = s_be(p + 1, n);
    if (b >= 0xd0 && (x >> (8 * n - 1)) & 1)
        return -ERANGE; /* a negative signed integer */
    *v = x;
    return 0;
}

/* The size of the object at p when it is a scalar of a common kind (the
 * receiver's hot path: most fields are small ints, floats and short
 * strings); 0 when the general walk must decide. Needs len >= 1. */
static inline size_t s_quick(const uint8_t *p, size_t len)
{
    uint8_t b = p[0];
    size_t n;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        n = 1;
    else if (b >= 0xa0 && b <= 0xbf)
        n = 1 + (size_t)(b & 0x1f);
    else if (b == 0xcb || b == 0xcf || b == 0xd3)
        n = 9;
    else if (b == 0xca || b == 0xce || b == 0xd2)
        n = 5;
    else if (b == 0xcc || b == 0xd0)
        n = 2;
    else if (b == 0xcd || b == 0xd1)
        n = 3;
    else if (b == 0xd9 && len >= 2)
        n = 2 + (size_t)p[1];
    else
        return 0;
    return n <= len ? n : 0;
}

static inline int s_obj(const uint8_t *p, size_t len, size_t *n)
{
    if (!len)
        return -EBADMSG;
    if ((*n = s_quick(p, len)) != 0)
        return 0;
    return sl__rp_mpk_skip(p, len, n);
}

int sl__rp_mpk_find_u64(const uint8_t *rec, size_t len, const char *key,
                        size_t klen, uint64_t *v, size_t *used)
{
    uint64_t count;
    size_t at;
    if (s_map_head(rec, len, &count, &at) != 0)
        return -EBADMSG;
    if (count > (len - at) / 2)
        return -EBADMSG;
    int rc = -ENOENT;
    for (uint64_t i = 0; i < count; i++) {
        size_t kn, vn;
        if (s_obj(rec + at, len - at, &kn) != 0)
            return -EBADMSG;
        const uint8_t *s;
        size_t sn;
        int match = rc == -ENOENT && s_str(rec + at, &s, &sn) &&
                    sn == klen && memcmp(s, key, klen) == 0;
        at += kn;
        if (s_obj(rec + at, len - at, &vn) != 0)
            return -EBADMSG;
        if (match)
            rc = s_uint(rec + at, vn, v);
        at += vn;
    }
    *used = at;
    return rc;
}
