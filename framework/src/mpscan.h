/*
 * Bounded msgpack walking and decoding for bytes that come from outside
 * (records on links, trace files, tap messages): every length is checked
 * against the bytes at hand before it is used, nothing is allocated on the
 * strength of a header, and nesting is bounded, so a hostile header ("a
 * map of 2^32 entries") costs no more than the bytes that really follow
 * it. msgpack-c's msgpack_unpack allocates a container's elements from its
 * header alone: never give it bytes that did not pass here first.
 */
#ifndef SL_MPSCAN_H
#define SL_MPSCAN_H

#include <msgpack.h>
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

/* An upper bound on the containers in p[0..len), from a count of the
 * bytes that could be a container's type byte (0x80..0x9f, 0xdc..0xdf),
 * wherever they are: a string full of them only makes the bound loose.
 * A few instructions per 16 bytes (SSE2 where there is SSE2), against a
 * walk's per-item cost: enough to show most records shallow without
 * walking them. */
size_t sl__mpscan_max_containers(const void *p, size_t len);

/* Decodes the object that fills p[0..len) exactly into zone, at most
 * max_depth containers deep (capped at SL_MP_MAX_DEPTH), with the layout
 * msgpack_unpack gives (strings, bins and exts point into p, so p must
 * outlive *out). A container's item count is checked against the bytes
 * left before room is made for its items, so what the zone is asked for
 * is one msgpack_object per item present, at most one per byte of input.
 * Returns 0; -EAGAIN if the bytes end early or
 * a count claims more items than bytes follow; -EBADMSG for the byte 0xc1
 * or bytes after the object; -ELOOP if nested deeper than max_depth;
 * -ENOMEM. On an error *out is unspecified and the zone may hold part of
 * the tree. One pass, O(len): cheaper than sl__mpscan_object followed by
 * msgpack_unpack. */
int sl__mpscan_decode(const void *p, size_t len, unsigned max_depth,
                      msgpack_zone *zone, msgpack_object *out);

/* "nil", "bool", "int", "float32", "float64", "str", "bin", "array",
 * "map", "ext". */
const char *sl__mpscan_kind_name(sl_mp_kind_t kind);

#endif
