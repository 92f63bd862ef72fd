/*
 * The resume position of file_source: which file (path, inode and a
 * fingerprint of its first bytes) and where in it (byte offset of the next
 * unread unit and the number of the last line read), as a self-checking
 * byte string for sl_ctx_set_position() (stages/common/file_pos.h).
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

#include "file_pos.h"

#include <stddef.h>
#include <stdint.h>

/* The own byte is the format; no device, no emit_from. */
extern const file_pos_kind_t fs_pos_kind;

/* The fingerprint of the file being read: its first bytes as far as they
 * have been read, kept so that a position costs no I/O once the file is
 * past FILE_FP_MAX bytes. */
typedef struct fs_fp {
    file_fp_t head;
    size_t hashed_len; /* hash covers head.buf[0 .. hashed_len) */
    uint64_t hash;
} fs_fp_t;

/* Makes fp cover the first min(upto, FILE_FP_MAX) bytes of the file (pread
 * from fd while it has fewer) and sets *len and *hash. Fewer bytes only if
 * the file is shorter now. 0 or -errno. */
int fs_fp_get(fs_fp_t *fp, int fd, uint64_t upto, uint32_t *len,
              uint64_t *hash);

#endif
