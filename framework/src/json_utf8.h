/*
 * UTF-8 validation shared by the JSON encoder, which replaces ill-formed
 * sequences by U+FFFD, and the decoder, which refuses them. Inline because
 * the encoder runs it on every non-ASCII sequence of every string.
 */
#ifndef SL_JSON_UTF8_H
#define SL_JSON_UTF8_H

#include <stddef.h>

/* Length of the valid UTF-8 sequence at p (n >= 1 bytes left), or 0 if
 * invalid: overlong forms, encoded surrogates and code points above
 * U+10FFFF are invalid too. *bad is then the length of the maximal
 * ill-formed prefix to replace by a single U+FFFD (Unicode's "maximal
 * subpart" practice, at least 1); it is left alone for a valid sequence. */
static inline size_t sl__utf8_len(const unsigned char *p, size_t n,
                                  size_t *bad)
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

#endif
