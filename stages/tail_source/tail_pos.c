#include "tail_pos.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static const unsigned char s_magic[4] = {'S', 'L', 'T', 'P'};

uint64_t tl_fnv1a(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull;

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static void s_put(unsigned char *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t s_get(const unsigned char *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

void tl_pos_encode(const tl_pos_t *p, unsigned char *out)
{
    memcpy(out, s_magic, 4);
    out[4] = TL_POS_VERSION;
    out[5] = (unsigned char)p->flags;
    s_put(out + 6, p->path_len, 2);
    s_put(out + 8, p->dev, 8);
    s_put(out + 16, p->ino, 8);
    s_put(out + 24, p->offset, 8);
    s_put(out + 32, p->lineno, 8);
    s_put(out + 40, p->emit_from, 8);
    s_put(out + 48, p->fp_len, 4);
    s_put(out + 52, p->fp_hash, 8);
    memcpy(out + TL_POS_FIXED, p->path, p->path_len);
    size_t body = TL_POS_FIXED + p->path_len;
    s_put(out + body, tl_fnv1a(out, body), 8);
}

int tl_pos_decode(const void *blob, size_t len, tl_pos_t *p,
                  const char **why)
{
    const unsigned char *b = blob;

    *why = NULL;
    if (!b || len < TL_POS_FIXED + TL_POS_TRAILER || memcmp(b, s_magic, 4))
        *why = "not a tail_source position";
    else if (b[4] != TL_POS_VERSION)
        *why = "unknown position version";
    else if (len != tl_pos_size((size_t)s_get(b + 6, 2)))
        *why = "corrupt position: wrong length";
    else if (s_get(b + len - TL_POS_TRAILER, 8) !=
             tl_fnv1a(b, len - TL_POS_TRAILER))
        *why = "corrupt position: checksum mismatch";
    if (*why)
        return -EINVAL;
    p->flags = b[5];
    p->path_len = (size_t)s_get(b + 6, 2);
    p->dev = s_get(b + 8, 8);
    p->ino = s_get(b + 16, 8);
    p->offset = s_get(b + 24, 8);
    p->lineno = s_get(b + 32, 8);
    p->emit_from = s_get(b + 40, 8);
    p->fp_len = (uint32_t)s_get(b + 48, 4);
    p->fp_hash = s_get(b + 52, 8);
    p->path = (const char *)b + TL_POS_FIXED;
    /* A checksum only catches accidents; these keep a well-formed but
     * inconsistent position from steering the reader anywhere odd. */
    if ((p->flags & ~(unsigned)TL_POS_SKIPPING) || p->fp_len > TL_FP_MAX ||
        p->fp_len > p->offset || p->lineno > p->offset ||
        memchr(p->path, '\0', p->path_len)) {
        *why = "corrupt position: inconsistent fields";
        return -EINVAL;
    }
    return 0;
}

long tl_fp_fill(tl_fp_t *fp, int fd, uint64_t upto)
{
    size_t want = upto < TL_FP_MAX ? (size_t)upto : TL_FP_MAX;

    while (fp->have < want) {
        ssize_t n = pread(fd, fp->buf + fp->have, want - fp->have,
                          (off_t)fp->have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        fp->have += (size_t)n;
    }
    return (long)(fp->have < want ? fp->have : want);
}

int tl_fp_same(const tl_fp_t *fp, int fd)
{
    unsigned char now[TL_FP_MAX];
    size_t got = 0;

    while (got < fp->have) {
        ssize_t n = pread(fd, now + got, fp->have - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return 0;
        got += (size_t)n;
    }
    return memcmp(now, fp->buf, fp->have) == 0;
}
