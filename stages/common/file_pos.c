#include "file_pos.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

uint64_t file_pos_fnv1a(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull;

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static void s_put(unsigned char **p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        (*p)[i] = (unsigned char)(v >> (8 * i));
    *p += n;
}

static uint64_t s_le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint64_t s_get(const unsigned char **p, size_t n)
{
    uint64_t v = s_le(*p, n);

    *p += n;
    return v;
}

void file_pos_encode(const file_pos_kind_t *k, const file_pos_t *p,
                     unsigned char *out)
{
    unsigned char *o = out;

    memcpy(o, k->magic, 4);
    o[4] = k->version;
    o[5] = (unsigned char)p->own;
    o += 6;
    s_put(&o, p->path_len, 2);
    if (k->has_dev)
        s_put(&o, p->dev, 8);
    s_put(&o, p->ino, 8);
    s_put(&o, p->offset, 8);
    s_put(&o, p->lineno, 8);
    if (k->has_emit_from)
        s_put(&o, p->emit_from, 8);
    s_put(&o, p->fp_len, 4);
    s_put(&o, p->fp_hash, 8);
    memcpy(o, p->path, p->path_len);
    o += p->path_len;
    s_put(&o, file_pos_fnv1a(out, (size_t)(o - out)), 8);
}

int file_pos_decode(const file_pos_kind_t *k, const void *blob, size_t len,
                    file_pos_t *p, const char **why)
{
    const unsigned char *b = blob, *i;
    size_t fixed = file_pos_size(k, 0) - FILE_POS_TRAILER;

    *why = NULL;
    memset(p, 0, sizeof(*p));
    if (!b || len < fixed + FILE_POS_TRAILER || memcmp(b, k->magic, 4))
        *why = k->foreign;
    else if (b[4] != k->version)
        *why = "unknown position version";
    else if (len != file_pos_size(k, (size_t)s_le(b + 6, 2)))
        *why = "corrupt position: wrong length";
    else if (s_le(b + len - FILE_POS_TRAILER, 8) !=
             file_pos_fnv1a(b, len - FILE_POS_TRAILER))
        *why = "corrupt position: checksum mismatch";
    if (*why)
        return -EINVAL;
    i = b + 6;
    p->own = b[5];
    p->path_len = (size_t)s_get(&i, 2);
    if (k->has_dev)
        p->dev = s_get(&i, 8);
    p->ino = s_get(&i, 8);
    p->offset = s_get(&i, 8);
    p->lineno = s_get(&i, 8);
    if (k->has_emit_from)
        p->emit_from = s_get(&i, 8);
    p->fp_len = (uint32_t)s_get(&i, 4);
    p->fp_hash = s_get(&i, 8);
    p->path = (const char *)i;
    /* A checksum only catches accidents; these keep a well-formed but
     * inconsistent position from steering the reader anywhere odd. */
    if ((p->own & ~(unsigned)k->own_mask) || p->fp_len > FILE_FP_MAX ||
        p->fp_len > p->offset || p->lineno > p->offset ||
        memchr(p->path, '\0', p->path_len)) {
        *why = "corrupt position: inconsistent fields";
        return -EINVAL;
    }
    return 0;
}

long file_fp_fill(file_fp_t *fp, int fd, uint64_t upto)
{
    size_t want = upto < FILE_FP_MAX ? (size_t)upto : FILE_FP_MAX;

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

int file_fp_same(const file_fp_t *fp, int fd)
{
    unsigned char now[FILE_FP_MAX];
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
