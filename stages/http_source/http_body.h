/*
 * http_source: request bodies (JSON, NDJSON, msgpack) to packed records.
 * A body becomes records whole or not at all, so that a request is either
 * queued entirely or refused entirely.
 */
#ifndef HS_BODY_H
#define HS_BODY_H

#include "http_opts.h"

#include <stddef.h>

/* The records of one accepted body, packed back to back. Immutable once
 * queued, except `pos`, which only the pulling worker touches. */
typedef struct hs_batch {
    struct hs_batch *next;
    char *data;   /* owned: msgpack; record i is data[start(i)..ends[i]) */
    size_t len;   /* bytes held, counted against queue_bytes */
    size_t first; /* start of record 0 (after a JSON array's header) */
    size_t n;     /* records */
    size_t pos;   /* records already emitted */
    size_t cap;   /* room in ends */
    size_t ends[];
} hs_batch_t;

static inline size_t hs_batch_start(const hs_batch_t *b, size_t i)
{
    return i ? b->ends[i - 1] : b->first;
}

/* Decodes (*body)[0..len) as format f (not HS_AUTO). On success *out is a
 * new batch the caller owns; a msgpack body is adopted rather than copied
 * (*body becomes NULL). Returns -EBADMSG with the reason in err for a body
 * that is not records (nothing is kept), -ENOMEM when memory runs out. */
int hs_body_decode(hs_format_t f, char **body, size_t len, hs_batch_t **out,
                   char *err, size_t errlen);
void hs_batch_free(hs_batch_t *b);

#endif
