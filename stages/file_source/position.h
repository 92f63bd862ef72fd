/*
 * The resume position of file_source: which file (path, inode and a
 * fingerprint of its first bytes) and where in it (byte offset of the next
 * unread unit and the number of the last line read), as a self-checking
 * byte string for sl_ctx_set_position().
 *
 * Layout, integers little-endian:
 *   0  4  magic "SLFP"
 *   4  1  version (1)
 *   5  1  format (0 lines, 1 jsonl, 2 csv, 3 msgpack)
 *   6  2  path length P
 *   8  8  inode
 *  16  8  offset of the next unread byte
 *  24  8  lines read before offset (0 for msgpack)
 *  32  4  fingerprint length F: the first min(offset, 1024) bytes
 *  36  8  FNV-1a 64 of those F bytes
 *  44  P  the file's real path (absolute, symbolic links resolved)
 *  44+P 8 FNV-1a 64 of all the bytes before it
 */
#ifndef FS_POSITION_H
#define FS_POSITION_H

#include <stddef.h>
#include <stdint.h>

#define FS_POS_VERSION 1
#define FS_POS_FIXED 44 /* bytes before the path */
#define FS_POS_TRAILER 8
/* Bytes of the file's start that identify it. A log file keeps its first
 * lines while it grows; a new file with the same name rarely starts with
 * the same kilobyte. */
#define FS_FP_MAX 1024

typedef struct fs_pos {
    unsigned format;
    uint64_t ino;
    uint64_t offset;
    uint64_t lineno;
    uint32_t fp_len;
    uint64_t fp_hash;
    const char *path; /* not NUL-terminated when decoded */
    size_t path_len;
} fs_pos_t;

uint64_t fs_fnv1a(const void *data, size_t len);

/* Bytes fs_pos_encode needs for a path of path_len bytes. */
static inline size_t fs_pos_size(size_t path_len)
{
    return FS_POS_FIXED + path_len + FS_POS_TRAILER;
}
/* Writes p into out, which holds fs_pos_size(p->path_len) bytes. */
void fs_pos_encode(const fs_pos_t *p, unsigned char *out);
/* Reads and checks a position. On success p->path points into blob. On
 * failure returns -EINVAL and *why says what is wrong with it. */
int fs_pos_decode(const void *blob, size_t len, fs_pos_t *p,
                  const char **why);

/* The fingerprint of the file being read: its first bytes as far as they
 * have been read, kept so that a position costs no I/O once the file is
 * past FS_FP_MAX bytes. */
typedef struct fs_fp {
    unsigned char buf[FS_FP_MAX];
    size_t have;       /* bytes of buf read from the file */
    size_t hashed_len; /* hash covers buf[0 .. hashed_len) */
    uint64_t hash;
} fs_fp_t;

/* Makes fp cover the first min(upto, FS_FP_MAX) bytes of the file (pread
 * from fd while it has fewer) and sets *len and *hash. Fewer bytes only if
 * the file is shorter now. 0 or -errno. */
int fs_fp_get(fs_fp_t *fp, int fd, uint64_t upto, uint32_t *len,
              uint64_t *hash);

#endif
