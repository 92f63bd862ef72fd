/*
 * Finds where one msgpack value ends without decoding it, so file_source
 * can hand records on as raw bytes and name the byte offset of bad data.
 */
#ifndef FS_MPK_SCAN_H
#define FS_MPK_SCAN_H

#include <stddef.h>

/* Containers nested deeper than this cannot be unpacked by msgpack-c's C
 * unpacker (its MSGPACK_EMBED_STACK_SIZE), so they are refused up front. */
#define FS_MPK_MAX_DEPTH 32

typedef enum fs_mpk_result {
    FS_MPK_DONE = 1,     /* *len is the size of the value */
    FS_MPK_MORE = 0,     /* the value goes on past p + n */
    FS_MPK_INVALID = -1, /* byte 0xc1 at p + *len */
    FS_MPK_DEEP = -2,    /* nesting limit exceeded at p + *len */
} fs_mpk_result_t;

fs_mpk_result_t fs_mpk_scan(const void *p, size_t n, size_t *len);

#endif
