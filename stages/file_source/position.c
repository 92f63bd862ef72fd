#include "position.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static const unsigned char s_magic[4] = {'S', 'L', 'F', 'P'};

uint64_t fs_fnv1a(const void *data, size_t len)
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

void fs_pos_encode(const fs_pos_t *p, unsigned char *out)
{
    memcpy(out, s_magic, 4);
    out[4] = FS_POS_VERSION;
    out[5] = (unsigned char)p->format;
    s_put(out + 6, p->path_len, 2);
    s_put(out + 8, p->ino, 8);
    s_put(out + 16, p->offset, 8);
    s_put(out + 24, p->lineno, 8);
    s_put(out + 32, p->fp_len, 4);
    s_put(out + 36, p->fp_hash, 8);
    memcpy(out + FS_POS_FIXED, p->path, p->path_len);
    size_t body = FS_POS_FIXED + p->path_len;
    s_put(out + body, fs_fnv1a(out, body), 8);
}

int fs_pos_decode(const void *blob, size_t len, fs_pos_t *p,
                  const char **why)
{
    const unsigned char *b = blob;

    *why = NULL;
    if (!b || len < FS_POS_FIXED + FS_POS_TRAILER || memcmp(b, s_magic, 4))
        *why = "not a file_source position";
    else if (b[4] != FS_POS_VERSION)
        *why = "unknown position version";
    else if (len != fs_pos_size((size_t)s_get(b + 6, 2)))
        *why = "corrupt position: wrong length";
    else if (s_get(b + len - FS_POS_TRAILER, 8) !=
             fs_fnv1a(b, len - FS_POS_TRAILER))
        *why = "corrupt position: checksum mismatch";
    if (*why)
        return -EINVAL;
    p->format = b[5];
    p->path_len = (size_t)s_get(b + 6, 2);
    p->ino = s_get(b + 8, 8);
    p->offset = s_get(b + 16, 8);
    p->lineno = s_get(b + 24, 8);
    p->fp_len = (uint32_t)s_get(b + 32, 4);
    p->fp_hash = s_get(b + 36, 8);
    p->path = (const char *)b + FS_POS_FIXED;
    /* A checksum only catches accidents; these keep a well-formed but
     * inconsistent position from steering the reader anywhere odd. */
    if (p->format > 3 || p->fp_len > FS_FP_MAX || p->fp_len > p->offset ||
        p->lineno > p->offset || memchr(p->path, '\0', p->path_len)) {
        *why = "corrupt position: inconsistent fields";
        return -EINVAL;
    }
    return 0;
}

int fs_fp_get(fs_fp_t *fp, int fd, uint64_t upto, uint32_t *len,
              uint64_t *hash)
{
    size_t want = upto < FS_FP_MAX ? (size_t)upto : FS_FP_MAX;

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
    if (want > fp->have)
        want = fp->have;
    if (want != fp->hashed_len || want == 0) {
        fp->hash = fs_fnv1a(fp->buf, want);
        fp->hashed_len = want;
    }
    *len = (uint32_t)want;
    *hash = fp->hash;
    return 0;
}
