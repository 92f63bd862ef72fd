/* Bounded msgpack walking and decoding: see mpscan.h. */
#include "mpscan.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

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

/* What a header is and how long, for the walk: kept apart from
 * sl__mpscan_head, which also decodes values, because the walk checks
 * records as they are emitted and should cost little more than reading
 * their type bytes. */
enum { S_SCALAR, S_BODY, S_ARRAY, S_MAP, S_BAD };

/* Reads the header at p[0] (avail > 0 bytes): its class, its size and n
 * (body bytes or items). 0, or -EAGAIN when the header is cut short. */
static inline int s_walk_head(const unsigned char *p, size_t avail,
                              int *cls, size_t *hdr, uint64_t *n)
{
    unsigned c = p[0];
    size_t lenb = 0;
    *n = 0;
    *hdr = 1;
    if (c <= 0x7f || c >= 0xe0) {
        *cls = S_SCALAR;
        return 0;
    }
    if (c >= 0xa0 && c <= 0xbf) {
        *cls = S_BODY;
        *n = c & 0x1f;
        return 0;
    }
    if (c <= 0x8f) {
        *cls = S_MAP;
        *n = c & 0x0f;
        return 0;
    }
    if (c <= 0x9f) {
        *cls = S_ARRAY;
        *n = c & 0x0f;
        return 0;
    }
    switch (c) {
    case 0xc0: case 0xc2: case 0xc3:
        *cls = S_SCALAR;
        return 0;
    case 0xc1:
        *cls = S_BAD;
        return 0;
    case 0xc4: case 0xc5: case 0xc6:
        *cls = S_BODY;
        lenb = (size_t)1 << (c - 0xc4);
        break;
    case 0xc7: case 0xc8: case 0xc9: /* ext: the type byte after the length */
        *cls = S_BODY;
        lenb = (size_t)1 << (c - 0xc7);
        *hdr = 2;
        break;
    case 0xca: case 0xcb:
        *cls = S_SCALAR;
        *hdr = c == 0xca ? 5 : 9;
        break;
    case 0xcc: case 0xcd: case 0xce: case 0xcf:
    case 0xd0: case 0xd1: case 0xd2: case 0xd3:
        *cls = S_SCALAR;
        *hdr = 1 + ((size_t)1 << ((c - 0xcc) & 3));
        break;
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
        *cls = S_BODY; /* fixext: a type byte, then 1..16 bytes */
        *hdr = 2;
        *n = (uint64_t)1 << (c - 0xd4);
        break;
    case 0xd9: case 0xda: case 0xdb:
        *cls = S_BODY;
        lenb = (size_t)1 << (c - 0xd9);
        break;
    case 0xdc: case 0xdd:
        *cls = S_ARRAY;
        lenb = c == 0xdc ? 2 : 4;
        break;
    default: /* 0xde, 0xdf */
        *cls = S_MAP;
        lenb = c == 0xde ? 2 : 4;
        break;
    }
    *hdr += lenb;
    if (avail < *hdr)
        return -EAGAIN;
    if (lenb)
        *n = s_be(p + 1, lenb);
    return 0;
}

int sl__mpscan_object(const void *data, size_t len, unsigned max_depth,
                      size_t *used)
{
    const unsigned char *p = data;
    /* The parent levels' items still due; the open level's count is in
     * `rem`, so that a scalar costs a compare and a decrement. */
    uint64_t left[SL_MP_MAX_DEPTH + 1];
    uint64_t rem = 1; /* the object itself */
    unsigned depth = 0;
    size_t pos = 0;
    if (max_depth > SL_MP_MAX_DEPTH)
        max_depth = SL_MP_MAX_DEPTH;
    for (;;) {
        if (pos >= len)
            goto cut;
        unsigned c = p[pos];
        if (c <= 0x7f || c >= 0xe0) { /* fixint */
            pos++;
        } else if (c >= 0xa0 && c <= 0xbf) { /* fixstr */
            size_t n = c & 0x1f;
            if (n >= len - pos)
                goto cut;
            pos += 1 + n;
        } else {
            int cls;
            size_t hdr;
            uint64_t n;
            if (s_walk_head(p + pos, len - pos, &cls, &hdr, &n))
                goto cut;
            if (cls == S_BAD) {
                *used = pos;
                return -EBADMSG;
            }
            if (cls == S_ARRAY || cls == S_MAP) {
                /* An empty container still counts as a level. */
                if (depth == max_depth) {
                    *used = pos;
                    return -ELOOP;
                }
                pos += hdr;
                if (n) {
                    left[depth++] = rem;
                    rem = cls == S_MAP ? n * 2 : n;
                    continue;
                }
            } else {
                pos += hdr;
                if (cls == S_BODY) {
                    if (n > len - pos)
                        goto cut;
                    pos += (size_t)n;
                }
            }
        }
        /* One item done: close every level it completes. */
        while (--rem == 0) {
            if (!depth) {
                *used = pos;
                return 0;
            }
            rem = left[--depth];
        }
    }
cut:
    *used = len;
    return -EAGAIN;
}

/* ---- a bound on nesting ------------------------------------------------------ */

/* Blocks may overlap at the end: a byte counted twice only loosens the
 * bound. */
#ifdef __SSE2__
size_t sl__mpscan_max_containers(const void *data, size_t len)
{
    const unsigned char *p = data;
    size_t n = 0, i = 0;
    if (len < 16) {
        for (; i < len; i++)
            n += (p[i] & 0xe0) == 0x80 || (p[i] & 0xfc) == 0xdc;
        return n;
    }
    const __m128i e0 = _mm_set1_epi8((char)0xe0), x80 = _mm_set1_epi8((char)0x80);
    const __m128i fc = _mm_set1_epi8((char)0xfc), xdc = _mm_set1_epi8((char)0xdc);
    const __m128i zero = _mm_setzero_si128();
    while (i < len) {
        __m128i acc = zero;
        size_t stop = len - i > 255 * 16 ? i + 255 * 16 : len;
        for (; i + 16 <= stop; i += 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(p + i));
            acc = _mm_add_epi8(acc, _mm_cmpeq_epi8(_mm_and_si128(v, e0), x80));
            acc = _mm_add_epi8(acc, _mm_cmpeq_epi8(_mm_and_si128(v, fc), xdc));
        }
        if (i < stop) { /* the last bytes, in a block that overlaps */
            __m128i v = _mm_loadu_si128((const __m128i *)(p + stop - 16));
            acc = _mm_add_epi8(acc, _mm_cmpeq_epi8(_mm_and_si128(v, e0), x80));
            acc = _mm_add_epi8(acc, _mm_cmpeq_epi8(_mm_and_si128(v, fc), xdc));
            i = stop;
        }
        /* a lane holds -count (mod 256): negate, then add lanes up */
        __m128i sum = _mm_sad_epu8(_mm_sub_epi8(zero, acc), zero);
        n += (size_t)_mm_cvtsi128_si32(sum) +
             (size_t)_mm_cvtsi128_si32(_mm_unpackhi_epi64(sum, sum));
    }
    return n;
}
#else
size_t sl__mpscan_max_containers(const void *data, size_t len)
{
    const unsigned char *p = data;
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += (p[i] & 0xe0) == 0x80 || (p[i] & 0xfc) == 0xdc;
    return n;
}
#endif

/* ---- decoding ------------------------------------------------------------ */

/* The scalar readers below run once per item of every record decoded:
 * a call per item costs a tenth of the decode. */
#if defined(__GNUC__)
#define S_HOT_INLINE inline __attribute__((always_inline))
#else
#define S_HOT_INLINE inline
#endif

typedef struct s_dec {
    const unsigned char *p;
    size_t len;
    size_t pos;
    msgpack_zone *zone;
} s_dec_t;

static inline uint64_t s_be16(const unsigned char *p)
{
    return (uint64_t)p[0] << 8 | p[1];
}

static inline uint64_t s_be32(const unsigned char *p)
{
    return (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 |
           (uint64_t)p[2] << 8 | p[3];
}

static inline uint64_t s_be64(const unsigned char *p)
{
    return s_be32(p) << 32 | s_be32(p + 4);
}

/* A str, bin or ext body of n bytes after a header of hdr bytes. */
static S_HOT_INLINE int s_body(s_dec_t *d, msgpack_object *o, msgpack_object_type t,
                         size_t hdr, uint64_t n)
{
    size_t avail = d->len - d->pos;
    if (avail < hdr || n > avail - hdr)
        return -EAGAIN;
    const char *body = (const char *)d->p + d->pos + hdr;
    o->type = t;
    if (t == MSGPACK_OBJECT_EXT) {
        /* the type byte is the last of the header */
        o->via.ext.type = (int8_t)body[-1];
        o->via.ext.ptr = body;
        o->via.ext.size = (uint32_t)n;
    } else {
        /* str and bin share a layout */
        o->via.str.ptr = body;
        o->via.str.size = (uint32_t)n;
    }
    d->pos += hdr + (size_t)n;
    return 0;
}

/* One scalar at d->pos into *o: 0, 1 if it is a container (with its item
 * count in *n and header size in *hdr, nothing consumed), or an error. */
static S_HOT_INLINE int s_dec_scalar(s_dec_t *d, msgpack_object *o, uint64_t *n,
                               size_t *hdr)
{
    if (d->pos >= d->len)
        return -EAGAIN;
    const unsigned char *q = d->p + d->pos;
    size_t avail = d->len - d->pos;
    unsigned c = q[0];
    if (c <= 0x7f) {
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.u64 = c;
        d->pos++;
        return 0;
    }
    if (c >= 0xe0) {
        o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        o->via.i64 = (int8_t)c;
        d->pos++;
        return 0;
    }
    if (c >= 0xa0 && c <= 0xbf)
        return s_body(d, o, MSGPACK_OBJECT_STR, 1, c & 0x1f);
    if (c <= 0x9f) {
        *n = c & 0x0f;
        *hdr = 1;
        return 1;
    }
    /* Numbers of a fixed width: the type byte and w bytes. */
    size_t w = 0;
    switch (c) {
    case 0xc0:
        o->type = MSGPACK_OBJECT_NIL;
        d->pos++;
        return 0;
    case 0xc1:
        return -EBADMSG;
    case 0xc2: case 0xc3:
        o->type = MSGPACK_OBJECT_BOOLEAN;
        o->via.boolean = c == 0xc3;
        d->pos++;
        return 0;
    case 0xc4:
        return avail < 2 ? -EAGAIN : s_body(d, o, MSGPACK_OBJECT_BIN, 2, q[1]);
    case 0xc5:
        return avail < 3 ? -EAGAIN
                         : s_body(d, o, MSGPACK_OBJECT_BIN, 3, s_be16(q + 1));
    case 0xc6:
        return avail < 5 ? -EAGAIN
                         : s_body(d, o, MSGPACK_OBJECT_BIN, 5, s_be32(q + 1));
    case 0xc7:
        return avail < 3 ? -EAGAIN : s_body(d, o, MSGPACK_OBJECT_EXT, 3, q[1]);
    case 0xc8:
        return avail < 4 ? -EAGAIN
                         : s_body(d, o, MSGPACK_OBJECT_EXT, 4, s_be16(q + 1));
    case 0xc9:
        return avail < 6 ? -EAGAIN
                         : s_body(d, o, MSGPACK_OBJECT_EXT, 6, s_be32(q + 1));
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
        return s_body(d, o, MSGPACK_OBJECT_EXT, 2, (uint64_t)1 << (c - 0xd4));
    case 0xd9:
        return avail < 2 ? -EAGAIN : s_body(d, o, MSGPACK_OBJECT_STR, 2, q[1]);
    case 0xda:
        return avail < 3 ? -EAGAIN
                         : s_body(d, o, MSGPACK_OBJECT_STR, 3, s_be16(q + 1));
    case 0xdb:
        return avail < 5 ? -EAGAIN
                         : s_body(d, o, MSGPACK_OBJECT_STR, 5, s_be32(q + 1));
    case 0xdc:
        if (avail < 3)
            return -EAGAIN;
        *n = s_be16(q + 1);
        *hdr = 3;
        return 1;
    case 0xdd:
        if (avail < 5)
            return -EAGAIN;
        *n = s_be32(q + 1);
        *hdr = 5;
        return 1;
    case 0xde:
        if (avail < 3)
            return -EAGAIN;
        *n = s_be16(q + 1);
        *hdr = 3;
        return 1;
    case 0xdf:
        if (avail < 5)
            return -EAGAIN;
        *n = s_be32(q + 1);
        *hdr = 5;
        return 1;
    case 0xca:
        w = 4;
        break;
    case 0xcb:
        w = 8;
        break;
    default: /* 0xcc..0xd3 */
        w = (size_t)1 << ((c - 0xcc) & 3);
        break;
    }
    if (avail < 1 + w)
        return -EAGAIN;
    uint64_t v = w == 1 ? q[1] : w == 2 ? s_be16(q + 1)
                        : w == 4 ? s_be32(q + 1) : s_be64(q + 1);
    d->pos += 1 + w;
    if (c == 0xca) {
        float f;
        uint32_t u = (uint32_t)v;
        memcpy(&f, &u, sizeof(f));
        o->type = MSGPACK_OBJECT_FLOAT32;
        o->via.f64 = f;
    } else if (c == 0xcb) {
        o->type = MSGPACK_OBJECT_FLOAT64;
        memcpy(&o->via.f64, &v, sizeof(v));
    } else if (c <= 0xcf) {
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.u64 = v;
    } else {
        /* Sign-extend from the encoded width; msgpack-c calls a
         * non-negative signed value positive. */
        unsigned bits = (unsigned)w * 8;
        if (bits < 64 && (v >> (bits - 1)) & 1)
            v |= ~(uint64_t)0 << bits;
        if ((int64_t)v < 0) {
            o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
            o->via.i64 = (int64_t)v;
        } else {
            o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
            o->via.u64 = v;
        }
    }
    return 0;
}

static int s_dec_container(s_dec_t *d, unsigned depth_left, msgpack_object *o,
                           uint64_t n, size_t hdr);

/* One item into *o: a scalar inline, a container by recursion. */
static S_HOT_INLINE int s_dec_item(s_dec_t *d, unsigned depth_left,
                             msgpack_object *o)
{
    uint64_t n = 0;
    size_t hdr = 0;
    int rc = s_dec_scalar(d, o, &n, &hdr);
    return rc <= 0 ? rc : s_dec_container(d, depth_left, o, n, hdr);
}

/* The container whose header (hdr bytes, n entries) is at d->pos, at
 * most depth_left levels deep, itself included. */
static int s_dec_container(s_dec_t *d, unsigned depth_left, msgpack_object *o,
                           uint64_t n, size_t hdr)
{
    if (!depth_left)
        return -ELOOP;
    int is_map = d->p[d->pos] <= 0x8f || d->p[d->pos] >= 0xde;
    /* Each item takes a byte at least: a count the bytes left cannot hold
     * is refused before anything is allocated for it. */
    uint64_t items = is_map ? 2 * n : n;
    if (items > d->len - d->pos - hdr)
        return -EAGAIN;
    d->pos += hdr;
    size_t each = is_map ? sizeof(msgpack_object_kv) : sizeof(msgpack_object);
    if (n > SIZE_MAX / each)
        return -ENOMEM;
    void *room = msgpack_zone_malloc(d->zone, (size_t)n * each);
    if (!room)
        return -ENOMEM;
    int rc;
    depth_left--;
    if (is_map) {
        msgpack_object_kv *kv = room;
        o->type = MSGPACK_OBJECT_MAP;
        o->via.map.ptr = kv;
        o->via.map.size = (uint32_t)n;
        for (uint64_t i = 0; i < n; i++)
            if ((rc = s_dec_item(d, depth_left, &kv[i].key)) < 0 ||
                (rc = s_dec_item(d, depth_left, &kv[i].val)) < 0)
                return rc;
    } else {
        msgpack_object *a = room;
        o->type = MSGPACK_OBJECT_ARRAY;
        o->via.array.ptr = a;
        o->via.array.size = (uint32_t)n;
        for (uint64_t i = 0; i < n; i++)
            if ((rc = s_dec_item(d, depth_left, &a[i])) < 0)
                return rc;
    }
    return 0;
}

int sl__mpscan_decode(const void *p, size_t len, unsigned max_depth,
                      msgpack_zone *zone, msgpack_object *out)
{
    s_dec_t d = {.p = p, .len = len, .zone = zone};
    if (max_depth > SL_MP_MAX_DEPTH)
        max_depth = SL_MP_MAX_DEPTH;
    int rc = s_dec_item(&d, max_depth, out);
    if (rc == 0 && d.pos != len)
        rc = -EBADMSG;
    return rc;
}

const char *sl__mpscan_kind_name(sl_mp_kind_t kind)
{
    static const char *const names[SL_MP_KINDS] = {
        "nil", "bool", "int", "float32", "float64",
        "str", "bin",  "array", "map",   "ext"};
    return (unsigned)kind < SL_MP_KINDS ? names[kind] : "?";
}
