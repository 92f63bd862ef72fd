/*
 * pg_sink: record values to fields of PostgreSQL's COPY text format.
 *
 * Everything the server would refuse for a reason the sink can see is
 * refused here, per record, before the row joins a batch: a value of the
 * wrong kind, an integer out of range, a NUL byte in text or jsonb, text
 * that is not UTF-8, a time that is not one. A batch then fails on the
 * server only for what the sink cannot know (an existing table's
 * constraints).
 */
#ifndef PG_CONV_H
#define PG_CONV_H

#include "pg_opts.h"

#include <msgpack.h>
#include <stddef.h>

/* A growable byte buffer. */
typedef struct pg_buf {
    char *p;
    size_t len, cap;
} pg_buf_t;

/* Makes room for more bytes: 0 or -ENOMEM. */
int pg_buf_reserve(pg_buf_t *b, size_t more);
void pg_buf_free(pg_buf_t *b);
/* Appends n bytes: 0 or -ENOMEM. */
int pg_buf_add(pg_buf_t *b, const void *p, size_t n);

/* Appends v (not nil) as the COPY text field of column c. Returns 0;
 * -ENOMEM; or -EINVAL once sl_ctx_fail() has named the field, the column
 * and the problem (b may then hold part of the field: the caller cuts the
 * row back). json is scratch memory for jsonb columns. */
int pg_conv_field(pg_buf_t *b, msgpack_sbuffer *json, const pg_col_t *c,
                  const msgpack_object *v, sl_ctx_t *ctx);

#endif
