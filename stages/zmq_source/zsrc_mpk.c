#include "zsrc_mpk.h"

#include <stdint.h>

/* The parts of one value's header. */
typedef struct head {
    size_t size;       /* header bytes, type byte included */
    uint64_t payload;  /* bytes of data after the header */
    uint64_t children; /* values that follow as its elements */
    int container;     /* an array or map, even an empty one */
} head_t;

static uint64_t s_be(const unsigned char *p, size_t bytes)
{
    uint64_t v = 0;

    for (size_t i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

/* Reads the header at p (n >= 1 bytes available). Returns 0, -1 when the
 * header itself is cut off, or -2 for the unused byte 0xc1. */
static int s_head(const unsigned char *p, size_t n, head_t *h)
{
    unsigned char c = p[0];
    size_t lenbytes = 0;
    enum { FIXED, DATA, EXT, ARRAY, MAP } kind = FIXED;

    h->size = 1;
    h->payload = 0;
    h->children = 0;
    h->container = 0;
    if (c <= 0x7f || c >= 0xe0)
        return 0; /* fixint */
    if (c <= 0x8f) {
        h->children = 2u * (c & 0x0fu);
        h->container = 1;
        return 0;
    }
    if (c <= 0x9f) {
        h->children = c & 0x0fu;
        h->container = 1;
        return 0;
    }
    if (c <= 0xbf) {
        h->payload = c & 0x1fu; /* fixstr */
        return 0;
    }
    switch (c) {
    case 0xc0: case 0xc2: case 0xc3: return 0;
    case 0xc1: return -2;
    case 0xc4: case 0xd9: lenbytes = 1; kind = DATA; break;
    case 0xc5: case 0xda: lenbytes = 2; kind = DATA; break;
    case 0xc6: case 0xdb: lenbytes = 4; kind = DATA; break;
    case 0xc7: lenbytes = 1; kind = EXT; break;
    case 0xc8: lenbytes = 2; kind = EXT; break;
    case 0xc9: lenbytes = 4; kind = EXT; break;
    case 0xcc: case 0xd0: h->payload = 1; return 0;
    case 0xcd: case 0xd1: h->payload = 2; return 0;
    case 0xca: case 0xce: case 0xd2: h->payload = 4; return 0;
    case 0xcb: case 0xcf: case 0xd3: h->payload = 8; return 0;
    case 0xd4: h->payload = 2; return 0; /* fixext: type byte + data */
    case 0xd5: h->payload = 3; return 0;
    case 0xd6: h->payload = 5; return 0;
    case 0xd7: h->payload = 9; return 0;
    case 0xd8: h->payload = 17; return 0;
    case 0xdc: lenbytes = 2; kind = ARRAY; break;
    case 0xdd: lenbytes = 4; kind = ARRAY; break;
    case 0xde: lenbytes = 2; kind = MAP; break;
    default:   lenbytes = 4; kind = MAP; break; /* 0xdf */
    }
    if (n < 1 + lenbytes)
        return -1;
    uint64_t v = s_be(p + 1, lenbytes);
    h->size = 1 + lenbytes;
    switch (kind) {
    case DATA: h->payload = v; break;
    case EXT: h->payload = v + 1; break; /* the type byte */
    case ARRAY: h->children = v; h->container = 1; break;
    case MAP: h->children = 2 * v; h->container = 1; break;
    default: break;
    }
    return 0;
}

zsrc_mpk_t zsrc_mpk_check(const void *data, size_t n, size_t *len)
{
    const unsigned char *p = data;
    /* Elements still to come in each open container, innermost last. */
    uint64_t open[ZSRC_MPK_MAX_DEPTH];
    size_t depth = 0, pos = 0;
    /* Values still to read in all. Each needs one byte at least, so it
     * never exceeds what is left: no claimed count is believed beyond
     * that, and nothing here can overflow. */
    uint64_t pending = 1;
    int deep = 0;

    while (pending) {
        head_t h;
        if (pos >= n)
            return ZSRC_MPK_TRUNCATED;
        int rc = s_head(p + pos, n - pos, &h);
        if (rc == -2) {
            *len = pos;
            return ZSRC_MPK_INVALID;
        }
        if (rc < 0 || h.payload > n - pos - h.size)
            return ZSRC_MPK_TRUNCATED;
        pos += h.size + (size_t)h.payload;
        if (h.children > n - pos)
            return ZSRC_MPK_TRUNCATED;
        pending = pending - 1 + h.children;
        if (pending > n - pos)
            return ZSRC_MPK_TRUNCATED;
        if (deep)
            continue; /* only the end matters now */
        if (depth)
            open[depth - 1]--;
        if (h.container) {
            if (depth == ZSRC_MPK_MAX_DEPTH) {
                deep = 1;
                continue;
            }
            open[depth++] = h.children;
        }
        while (depth && open[depth - 1] == 0)
            depth--;
    }
    *len = pos;
    return deep ? ZSRC_MPK_DEEP : ZSRC_MPK_OK;
}

const char *zsrc_mpk_kind(unsigned char c)
{
    if (zsrc_mpk_is_map(c))
        return "a map";
    if (c <= 0x7f || c >= 0xe0 || (c >= 0xca && c <= 0xd3))
        return "a number";
    if (c <= 0x9f || c == 0xdc || c == 0xdd)
        return "an array";
    if (c <= 0xbf || (c >= 0xd9 && c <= 0xdb))
        return "a string";
    if (c == 0xc0)
        return "nil";
    if (c == 0xc2 || c == 0xc3)
        return "a boolean";
    if (c >= 0xc4 && c <= 0xc6)
        return "binary data";
    if (c == 0xc1)
        return "the unused byte 0xc1";
    return "an extension value";
}
