/*
 * A bounded msgpack checker: finds where one value ends in untrusted bytes
 * without decoding it and without believing any length it has not seen
 * the bytes for, so that a header claiming four billion entries costs
 * nothing and only values msgpack-c can unpack are handed on.
 */
#ifndef ZSRC_MPK_H
#define ZSRC_MPK_H

#include <stddef.h>

/* msgpack-c's unpacker keeps 32 open containers at most (its
 * MSGPACK_EMBED_STACK_SIZE), empty ones included. */
#define ZSRC_MPK_MAX_DEPTH 32

typedef enum zsrc_mpk {
    ZSRC_MPK_OK = 0,         /* *len: the value's size */
    ZSRC_MPK_DEEP = 1,       /* well formed (*len is its size) but nested
                                deeper than ZSRC_MPK_MAX_DEPTH */
    ZSRC_MPK_TRUNCATED = -1, /* the bytes end inside the value, or a
                                header claims more than is left */
    ZSRC_MPK_INVALID = -2,   /* byte 0xc1 (never used) at offset *len */
} zsrc_mpk_t;

/* Checks the value starting at p, within p[0..n). O(size of the value),
 * no allocation. n must be at least 1. */
zsrc_mpk_t zsrc_mpk_check(const void *p, size_t n, size_t *len);

/* What the value starting with byte c is ("a map", "an array", ...), for
 * messages. */
const char *zsrc_mpk_kind(unsigned char c);

static inline int zsrc_mpk_is_map(unsigned char c)
{
    return (c & 0xf0) == 0x80 || c == 0xde || c == 0xdf;
}

#endif
