#include "mpk_scan.h"

#include <stdint.h>

static uint64_t s_be(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

/* Header size, payload size and number of child values of the value whose
 * first byte is c; the size field itself is read from p when hdr <= n. */
static int s_head(const unsigned char *p, size_t n, size_t *hdr,
                  uint64_t *payload, uint64_t *children)
{
    unsigned char c = p[0];
    int sz = 0;           /* bytes of the length field */
    int kind = 0;         /* 0 scalar, 1 str/bin, 2 ext, 3 array, 4 map */

    *payload = 0;
    *children = 0;
    *hdr = 1;
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
        return 0;
    if (c <= 0x8f) {
        *children = 2u * (c & 0x0f);
        return 0;
    }
    if (c <= 0x9f) {
        *children = c & 0x0f;
        return 0;
    }
    if (c <= 0xbf) {
        *payload = c & 0x1f;
        return 0;
    }
    switch (c) {
    case 0xc1:
        return -1;
    case 0xc4: case 0xd9: sz = 1; kind = 1; break;
    case 0xc5: case 0xda: sz = 2; kind = 1; break;
    case 0xc6: case 0xdb: sz = 4; kind = 1; break;
    case 0xc7: sz = 1; kind = 2; break;
    case 0xc8: sz = 2; kind = 2; break;
    case 0xc9: sz = 4; kind = 2; break;
    case 0xca: *payload = 4; return 0;
    case 0xcb: *payload = 8; return 0;
    case 0xcc: case 0xd0: *payload = 1; return 0;
    case 0xcd: case 0xd1: *payload = 2; return 0;
    case 0xce: case 0xd2: *payload = 4; return 0;
    case 0xcf: case 0xd3: *payload = 8; return 0;
    case 0xd4: *payload = 2; return 0; /* fixext: type byte + data */
    case 0xd5: *payload = 3; return 0;
    case 0xd6: *payload = 5; return 0;
    case 0xd7: *payload = 9; return 0;
    case 0xd8: *payload = 17; return 0;
    case 0xdc: sz = 2; kind = 3; break;
    case 0xdd: sz = 4; kind = 3; break;
    case 0xde: sz = 2; kind = 4; break;
    case 0xdf: sz = 4; kind = 4; break;
    }
    *hdr = 1 + (size_t)sz;
    if (*hdr > n)
        return 1; /* length field not here yet */
    uint64_t v = s_be(p + 1, sz);
    switch (kind) {
    case 1: *payload = v; break;
    case 2: *payload = v + 1; break; /* type byte */
    case 3: *children = v; break;
    case 4: *children = 2 * v; break;
    }
    return 0;
}

fs_mpk_result_t fs_mpk_scan(const void *data, size_t n, size_t *len)
{
    const unsigned char *p = data;
    uint64_t rem[FS_MPK_MAX_DEPTH + 1];
    int depth = 0;
    size_t pos = 0;

    rem[0] = 1;
    for (;;) {
        if (pos >= n)
            return FS_MPK_MORE;
        size_t hdr;
        uint64_t payload, children;
        int rc = s_head(p + pos, n - pos, &hdr, &payload, &children);
        if (rc < 0) {
            *len = pos;
            return FS_MPK_INVALID;
        }
        if (rc > 0 || hdr > n - pos || payload > n - pos - hdr)
            return FS_MPK_MORE;
        size_t at = pos;
        pos += hdr + (size_t)payload;
        rem[depth]--;
        if (children) {
            if (depth == FS_MPK_MAX_DEPTH) {
                *len = at;
                return FS_MPK_DEEP;
            }
            rem[++depth] = children;
            continue;
        }
        while (rem[depth] == 0) {
            if (depth == 0) {
                *len = pos;
                return FS_MPK_DONE;
            }
            depth--;
        }
    }
}
