/*
 * Resume positions of a file for sl_ctx_set_position(), as file_source and
 * tail_source write them: which file (inode, and the device where a kind
 * has it, and a fingerprint of its first bytes) and where in it, as a
 * self-checking byte string. Each stage is a kind: its own magic, and
 * which of the optional fields it carries.
 *
 * Layout, integers little-endian, optional fields only where the kind has
 * them (so each stage's fixed part has its own length):
 *      4  magic
 *      1  version
 *      1  the stage's own byte (file_source: format, tail_source: flags)
 *      2  path length P
 *     [8  device]
 *      8  inode
 *      8  offset of the next unread byte
 *      8  lines read before offset
 *     [8  emit_from]
 *      4  fingerprint length F: the first min(offset, FILE_FP_MAX) bytes
 *      8  FNV-1a 64 of those F bytes
 *      P  the path
 *      8  FNV-1a 64 of all the bytes before it
 * Also the fingerprint of a file: its first bytes, read with pread as far
 * as needed.
 */
#ifndef SL_FILE_POS_H
#define SL_FILE_POS_H

#include <stddef.h>
#include <stdint.h>

#define FILE_POS_TRAILER 8
/* Bytes before the path in a kind without the optional fields. */
#define FILE_POS_BASE 44
/* Bytes of a file's start that identify it: a log file keeps its first
 * lines while it grows, and a new one rarely starts with the same KiB. */
#define FILE_FP_MAX 1024

typedef struct file_pos_kind {
    unsigned char magic[4];
    unsigned char version;
    unsigned char own_mask; /* bits the own byte may have set */
    unsigned char has_dev;
    unsigned char has_emit_from;
    const char *foreign; /* why, for a blob with another magic */
} file_pos_kind_t;

typedef struct file_pos {
    unsigned own;
    uint64_t dev;
    uint64_t ino;
    uint64_t offset;
    uint64_t lineno;
    uint64_t emit_from;
    uint32_t fp_len;
    uint64_t fp_hash;
    const char *path; /* not NUL-terminated when decoded */
    size_t path_len;
} file_pos_t;

uint64_t file_pos_fnv1a(const void *data, size_t len);

/* Bytes of a kind's position for a path of path_len bytes. */
static inline size_t file_pos_size(const file_pos_kind_t *k, size_t path_len)
{
    return FILE_POS_BASE + (k->has_dev ? 8 : 0) + (k->has_emit_from ? 8 : 0) +
           path_len + FILE_POS_TRAILER;
}
/* Writes p into out, which holds file_pos_size(k, p->path_len) bytes. */
void file_pos_encode(const file_pos_kind_t *k, const file_pos_t *p,
                     unsigned char *out);
/* Reads and checks a position; p->path then points into blob. On failure
 * returns -EINVAL and *why says what is wrong with it. */
int file_pos_decode(const file_pos_kind_t *k, const void *blob, size_t len,
                    file_pos_t *p, const char **why);

/* The first bytes of an open file. */
typedef struct file_fp {
    unsigned char buf[FILE_FP_MAX];
    size_t have;
} file_fp_t;

/* Makes fp hold the first min(upto, FILE_FP_MAX) bytes of fd's file (fewer
 * if the file is shorter) and returns how many it holds, or -errno. */
long file_fp_fill(file_fp_t *fp, int fd, uint64_t upto);
/* Whether the file behind fd still starts with the bytes fp holds: 1 yes,
 * 0 no (shorter, or other bytes), -errno if it cannot be read. */
int file_fp_same(const file_fp_t *fp, int fd);

#endif
