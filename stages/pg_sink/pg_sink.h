/*
 * pg_sink's worker state, shared by the callbacks (pg_sink.c) and the
 * batch writer (pg_write.c).
 */
#ifndef PG_SINK_H
#define PG_SINK_H

#include "pg_conn.h"
#include "pg_conv.h"
#include "pg_opts.h"

#include <sluice/stage.h>

#include <stddef.h>
#include <stdint.h>

#define PG_KEY_MAX 160

typedef struct pg_state {
    pg_opts_t o;
    char *conninfo;  /* owned copy: from the config or the environment */
    char app[96];    /* fallback_application_name */
    char *stage;
    unsigned worker;
    pgc_t c;
    int down;        /* the last attempt failed: log the recovery */
    int refusing;    /* process() fails records until a write succeeds */

    /* SQL, built at init */
    char *sql_session; /* per connection: settings, staging table */
    char *sql_copy;
    char *sql_merge;   /* upsert only */
    char *q_batches;   /* the bookkeeping table, quoted */
    char *q_sink;      /* the stage's name as an SQL literal */

    /* the buffered rows: COPY text, row i at buf[off[i] .. off[i+1]) */
    pg_buf_t buf;
    size_t *off;   /* batch_rows + 1 */
    uint64_t *ids; /* record ids, for messages */
    size_t n;      /* rows buffered */
    size_t done;   /* rows [0, done) are written or refused */
    size_t chunk;  /* rows per transaction while isolating a refused row */
    msgpack_sbuffer json; /* scratch for jsonb */
    pg_buf_t sql;         /* scratch for per-batch SQL */

    /* Exactly once per batch (docs/stages/pg_sink.md): rows [done, fly_hi)
     * went out under fly_key and no answer came back. Until the key tells
     * whether they committed, they are sent again only under that key. */
    size_t fly_hi; /* 0: nothing in doubt */
    char fly_key[PG_KEY_MAX];
    char prev_key[PG_KEY_MAX]; /* the last committed key, deleted next */
    uint64_t nonce, seq;

    uint64_t refused;  /* rows the server refused, logged one by one */
    int in_process;    /* pg_write runs inside process(): its record's
                        * row is the last one */
    int cur_refused;   /* that row was refused */
    char cur_msg[512];
} pg_state_t;

/* Writes rows [done, n) within budget_ms, reconnecting with backoff, and
 * empties the buffer once every row is written or refused: 0. -EAGAIN if
 * the server could not be reached in time (the rows stay buffered, and
 * st->c.msg says why). ctx may be NULL. */
int pg_write(pg_state_t *st, sl_ctx_t *ctx, int64_t budget_ms);
/* Connects and prepares the session; PGC_OK or PGC_LOST (st->c.msg). */
int pg_connect(pg_state_t *st);

#endif
