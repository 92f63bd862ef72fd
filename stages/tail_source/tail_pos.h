/*
 * The resume position of tail_source, as a self-checking byte string for
 * sl_ctx_set_position(): which file (device, inode and a fingerprint of
 * its first bytes, since a deleted file's inode number is soon reused) and
 * where in it.
 *
 * Layout, integers little-endian:
 *   0  4  magic "SLTP"
 *   4  1  version (1)
 *   5  1  flags: bit 0 = inside an over-long line (drop through its '\n')
 *   6  2  path length P
 *   8  8  device
 *  16  8  inode
 *  24  8  offset of the next unread byte (the start of an incomplete line)
 *  32  8  lines read before offset
 *  40  8  emit_from: lines starting before this offset are not emitted
 *         (start_at: end skips what the file held at the start)
 *  48  4  fingerprint length F: the first min(offset, 1024) bytes
 *  52  8  FNV-1a 64 of those F bytes
 *  60  P  the configured path, made absolute
 *  60+P 8 FNV-1a 64 of all the bytes before it
 */
#ifndef TL_POS_H
#define TL_POS_H

#include <stddef.h>
#include <stdint.h>

#define TL_POS_VERSION 1
#define TL_POS_FIXED 60
#define TL_POS_TRAILER 8
#define TL_POS_SKIPPING 0x01
/* Bytes of a file's start that identify it: a log file keeps its first
 * lines while it grows, and a new one rarely starts with the same KiB. */
#define TL_FP_MAX 1024

typedef struct tl_pos {
    unsigned flags;
    uint64_t dev;
    uint64_t ino;
    uint64_t offset;
    uint64_t lineno;
    uint64_t emit_from;
    uint32_t fp_len;
    uint64_t fp_hash;
    const char *path; /* not NUL-terminated when decoded */
    size_t path_len;
} tl_pos_t;

uint64_t tl_fnv1a(const void *data, size_t len);

static inline size_t tl_pos_size(size_t path_len)
{
    return TL_POS_FIXED + path_len + TL_POS_TRAILER;
}
/* Writes p into out, which holds tl_pos_size(p->path_len) bytes. */
void tl_pos_encode(const tl_pos_t *p, unsigned char *out);
/* Reads and checks a position; p->path then points into blob. On failure
 * returns -EINVAL and *why says what is wrong with it. */
int tl_pos_decode(const void *blob, size_t len, tl_pos_t *p,
                  const char **why);

/* The first bytes of the open file, read with pread as far as needed, so
 * that a position costs no I/O once the file is past TL_FP_MAX bytes. */
typedef struct tl_fp {
    unsigned char buf[TL_FP_MAX];
    size_t have;
} tl_fp_t;

/* Makes fp hold the first min(upto, TL_FP_MAX) bytes of fd's file (fewer
 * if the file is shorter) and returns how many it holds, or -errno. */
long tl_fp_fill(tl_fp_t *fp, int fd, uint64_t upto);
/* Whether the file behind fd still starts with the bytes fp holds: 1 yes,
 * 0 no (shorter, or other bytes), -errno if it cannot be read. */
int tl_fp_same(const tl_fp_t *fp, int fd);

#endif
