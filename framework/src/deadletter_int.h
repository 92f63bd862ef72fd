/*
 * What the dead-letter writer (deadletter.c) and reader (deadletter_read.c)
 * share: the time unit, the base64 alphabet, error messages, and a msgpack
 * walker that never allocates. Nothing outside those two files includes
 * this header.
 */
#ifndef SL_DEADLETTER_INT_H
#define SL_DEADLETTER_INT_H

#include "deadletter.h"

#include <sluice/stage.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Times in entries are nanoseconds since the epoch. */
#define SL_DL_NS 1000000000ull

/* The base64 alphabet of RFC 4648 ('+' and '/', '=' padding): 64
 * characters and a NUL. */
extern const char sl__dl_b64[];

/* Formats a message into err (if errlen > 0, truncated to fit). A NULL
 * err is allowed: the message is then dropped. */
void sl__dl_fmt(char *err, size_t errlen, const char *fmt, ...)
    SL_PRINTF(3, 4);

/* ---- walking msgpack without allocating --------------------------------- */

/* msgpack_unpack_next allocates room for a container's elements from its
 * header alone, so a corrupt count of 2^32 becomes a 100 GB request. These
 * helpers only walk headers, and a count that cannot fit in the bytes left
 * is refused at once. */

typedef enum sl_mpk {
    SL_MP_SCALAR,
    SL_MP_BYTES, /* str, bin, ext: a body of bytes */
    SL_MP_ARRAY,
    SL_MP_MAP,
    SL_MP_BAD /* 0xc1, which msgpack never uses */
} sl_mpk_t;

/* One object's header. */
typedef struct sl_mph {
    sl_mpk_t kind;
    size_t hdr;     /* header bytes, type byte included */
    uint64_t body;  /* bytes after the header */
    uint64_t items; /* objects that follow (2 per map entry) */
} sl_mph_t;

/* The big-endian unsigned integer in p[0..w), w <= 8. */
uint64_t sl__mp_be(const unsigned char *p, size_t w);
/* Reads the header at p (avail bytes left) into *h. Returns 1, 0 if the
 * data ends inside the header, or -1 for the type byte 0xc1. Whether the
 * body fits in what is left is the caller's question. */
int sl__mp_head(const unsigned char *p, size_t avail, sl_mph_t *h);
/* Length of the whole object at p, nested objects included: 1 with *len,
 * 0 if the data ends first (or a count says it must), -1 if corrupt. Runs
 * in time linear in the objects walked. */
int sl__mp_skip(const unsigned char *p, size_t avail, size_t *len);
/* Whether the object at p (one byte at least) is a map. */
bool sl__mp_is_map(const unsigned char *p);

#endif
