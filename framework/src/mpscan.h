/*
 * Bounded msgpack walking for bytes that come from outside (trace files,
 * tap messages): every length is checked against the bytes at hand before
 * it is used, nothing is allocated on the strength of a header, and
 * nesting is bounded, so a hostile header ("a map of 2^32 entries") costs
 * no more than the bytes that really follow it.
 */
#ifndef SL_MPSCAN_H
#define SL_MPSCAN_H

#include <stddef.h>
#include <stdint.h>

/* Containers a record may nest, the record map included: what msgpack-c
 * can unpack, so whatever passes here also decodes in a stage. */
#define SL_MP_MAX_DEPTH 32

typedef enum sl_mp_kind {
    SL_MP_NIL = 0,
    SL_MP_BOOL,
    SL_MP_INT,     /* positive and negative alike */
    SL_MP_FLOAT32,
    SL_MP_FLOAT64,
    SL_MP_STR,
    SL_MP_BIN,
    SL_MP_ARRAY,
    SL_MP_MAP,
    SL_MP_EXT,
    SL_MP_KINDS
} sl_mp_kind_t;

/* One object's header. */
typedef struct sl_mp_head {
    sl_mp_kind_t kind;
    size_t hdr;       /* bytes of the header itself */
    uint64_t n;       /* str/bin/ext: payload bytes (after hdr); array:
                         items; map: pairs */
    int neg;          /* SL_MP_INT: a negative value (in i) */
    uint64_t u;       /* SL_MP_INT >= 0, SL_MP_BOOL */
    int64_t i;        /* SL_MP_INT < 0 */
    double f;         /* floats */
} sl_mp_head_t;

/* Reads the header at p (len bytes available). 0; -EAGAIN if the header
 * (not its payload) runs past len; -EBADMSG for the unused byte 0xc1. */
int sl__mpscan_head(const void *p, size_t len, sl_mp_head_t *h);

/* Walks one whole object at p, at most max_depth containers deep. Returns
 * 0 with its size in *used; -EAGAIN if it runs past len (cut short);
 * -EBADMSG for an invalid byte; -ELOOP if nested deeper than max_depth.
 * On an error *used is the offset of the problem (len for -EAGAIN).
 * O(len): each element costs at least one byte. */
int sl__mpscan_object(const void *p, size_t len, unsigned max_depth, size_t *used);

/* "nil", "bool", "int", "float32", "float64", "str", "bin", "array",
 * "map", "ext". */
const char *sl__mpscan_kind_name(sl_mp_kind_t kind);

#endif
