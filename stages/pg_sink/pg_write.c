/*
 * pg_sink: writing the buffered rows, exactly once per batch.
 *
 * One batch is one transaction:
 *
 *   BEGIN;
 *   INSERT INTO sluice_pg_batches (sink, batch_key, rows) VALUES (...)
 *       ON CONFLICT (batch_key) DO NOTHING;           -- 1 row, or 0
 *   COPY table (or the staging table) FROM STDIN;     -- the rows
 *   [INSERT INTO table SELECT ... FROM staging ON CONFLICT ... DO UPDATE;]
 *   DELETE FROM sluice_pg_batches WHERE batch_key = <the previous key>;
 *   COMMIT;
 *
 * If the connection breaks before COMMIT's answer arrives, the batch may
 * or may not have committed. The rows then stay buffered and are sent
 * again only under the same key: the key's INSERT finds the row of the
 * earlier transaction if that committed (0 rows: the batch is done, and
 * the COPY is abandoned), and waits for it, on the primary key's index, if
 * the server is still finishing it. So a batch commits once, whatever
 * broke when.
 *
 * The key is the worker's random nonce and a batch counter, not a digest
 * of the records: a batch in doubt never leaves this buffer (its records
 * were accepted, so the host never hands them out again), so only the
 * same bytes are ever sent under one key, while record ids repeat from one
 * run to the next and a digest of them would make a second run skip rows.
 *
 * A batch the server refuses for its data (SQLSTATE classes 22 and 23: a
 * constraint of an existing table, say) is split in halves until the
 * refused rows are alone; the others are written, the refused ones logged
 * one by one (the record being handled, if it is one, fails instead).
 */
#include "pg_sink.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
    S_OK,      /* committed */
    S_ALREADY, /* had committed in an earlier attempt */
    S_DATA,    /* refused for its data: not committed */
    S_FAIL,    /* other error: not committed now, but an earlier attempt
                * under the same key may still be undecided */
    S_LOST,    /* no answer: unknown until the key is checked */
};

static uint64_t s_deadline(int64_t ms)
{
    return sl_mono_ns() + (uint64_t)ms * 1000000u;
}

int pg_connect(pg_state_t *st)
{
    const char *keys[] = {"dbname", "fallback_application_name",
                          "client_encoding", NULL};
    const char *vals[] = {st->conninfo, st->app, "UTF8", NULL};
    int rc = pgc_connect(&st->c, keys, vals,
                         s_deadline(st->o.connect_timeout_ms));

    if (rc != PGC_OK)
        return rc;
    rc = pgc_run(&st->c, st->sql_session, s_deadline(st->o.timeout_ms), NULL,
                 0);
    if (rc == PGC_OK)
        return PGC_OK;
    if (rc == PGC_ERROR) {
        char why[sizeof(st->c.msg)];
        memcpy(why, st->c.msg, sizeof(why));
        /* cut to fit: the server's message is the part that matters */
        snprintf(st->c.msg, sizeof(st->c.msg), "preparing the session: %.*s",
                 (int)(sizeof(st->c.msg) - 32), why);
    }
    pgc_close(&st->c);
    return PGC_LOST;
}

/* printf into the scratch buffer; NULL if memory ran out. */
static const char *s_sql(pg_state_t *st, const char *fmt, ...)
    SL_PRINTF(2, 3);
static const char *s_sql(pg_state_t *st, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (int i = 0; i < 2; i++) {
        va_start(ap, fmt);
        n = vsnprintf(st->sql.p, st->sql.cap, fmt, ap);
        va_end(ap);
        if (n < 0)
            return NULL;
        if ((size_t)n < st->sql.cap)
            return st->sql.p;
        st->sql.len = 0;
        if (pg_buf_reserve(&st->sql, (size_t)n + 1) < 0)
            return NULL;
    }
    return NULL;
}

/* Leaves a failed transaction, keeping the error for the message. */
static void s_rollback(pg_state_t *st)
{
    char msg[sizeof(st->c.msg)], state[sizeof(st->c.state)];

    memcpy(msg, st->c.msg, sizeof(msg));
    memcpy(state, st->c.state, sizeof(state));
    if (st->c.conn && pgc_run(&st->c, "ROLLBACK",
                              s_deadline(st->o.timeout_ms), NULL, 0) != PGC_OK)
        pgc_close(&st->c);
    memcpy(st->c.msg, msg, sizeof(msg));
    memcpy(st->c.state, state, sizeof(state));
}

/* What an answer that is not PGC_OK means once the key row is this
 * transaction's: an error settles it (nothing committed; a data error is
 * one the rows caused), silence does not. */
static int s_owned_outcome(pg_state_t *st, int rc)
{
    if (rc == PGC_LOST)
        return S_LOST;
    int data = st->c.state[0] == '2' &&
               (st->c.state[1] == '2' || st->c.state[1] == '3');
    s_rollback(st);
    return data ? S_DATA : S_FAIL;
}

static void s_oom(pg_state_t *st)
{
    snprintf(st->c.msg, sizeof(st->c.msg), "out of memory");
    st->c.state[0] = '\0';
}

/* Rows [lo, hi) in one transaction under st->fly_key. */
static int s_send(pg_state_t *st, size_t lo, size_t hi)
{
    long t[4] = {-1, -1, -1, -1};
    const char *sql;
    int rc;

    sql = s_sql(st, "BEGIN; SET LOCAL lock_timeout = %lld; INSERT INTO %s "
                    "(sink, batch_key, rows) VALUES (%s, '%s', %zu) ON "
                    "CONFLICT (batch_key) DO NOTHING; %s",
                (long long)(st->o.timeout_ms / 2), st->q_batches, st->q_sink,
                st->fly_key, hi - lo, st->sql_copy);
    if (!sql) {
        s_oom(st);
        return S_FAIL;
    }
    rc = pgc_run(&st->c, sql, s_deadline(st->o.timeout_ms), t, 4);
    if (rc == PGC_LOST)
        return S_LOST;
    if (rc != PGC_COPY || (t[2] != 0 && t[2] != 1)) {
        /* Failed before the key was decided (its lock not granted in
         * lock_timeout, say): what an earlier attempt under this key did
         * is still unknown. */
        if (rc != PGC_ERROR)
            snprintf(st->c.msg, sizeof(st->c.msg), "unexpected answer to "
                                                   "the batch's first "
                                                   "statements");
        s_rollback(st);
        return S_FAIL;
    }
    if (t[2] == 0) {
        /* The key is there: an earlier attempt committed. Whatever happens
         * to this transaction now, the rows are in. */
        if (pgc_copy(&st->c, NULL, 0, "batch already written",
                     s_deadline(st->o.timeout_ms), NULL) != PGC_OK ||
            pgc_run(&st->c, "ROLLBACK", s_deadline(st->o.timeout_ms), NULL,
                    0) != PGC_OK)
            pgc_close(&st->c);
        return S_ALREADY;
    }
    /* The key row is this transaction's: no earlier attempt committed,
     * and none can any more. */
    rc = pgc_copy(&st->c, st->buf.p + st->off[lo], st->off[hi] - st->off[lo],
                  NULL, s_deadline(st->o.timeout_ms), NULL);
    if (rc != PGC_OK)
        return s_owned_outcome(st, rc);
    if (st->prev_key[0])
        sql = s_sql(st, "%s%sDELETE FROM %s WHERE batch_key = '%s'; COMMIT",
                    st->sql_merge ? st->sql_merge : "",
                    st->sql_merge ? "; " : "", st->q_batches, st->prev_key);
    else
        sql = s_sql(st, "%s%sCOMMIT", st->sql_merge ? st->sql_merge : "",
                    st->sql_merge ? "; " : "");
    if (!sql) {
        s_oom(st);
        return s_owned_outcome(st, PGC_ERROR);
    }
    rc = pgc_run(&st->c, sql, s_deadline(st->o.timeout_ms), NULL, 0);
    if (rc != PGC_OK)
        return s_owned_outcome(st, rc);
    if (strcmp(st->c.status, "COMMIT") != 0) {
        snprintf(st->c.msg, sizeof(st->c.msg), "the server rolled the "
                                               "transaction back (%s)",
                 st->c.status);
        return S_FAIL;
    }
    return S_OK;
}

static void s_refuse(pg_state_t *st, sl_ctx_t *ctx, size_t i)
{
    const char *row = st->buf.p + st->off[i];
    size_t len = st->off[i + 1] - st->off[i] - 1; /* without the newline */

    if (st->in_process && i + 1 == st->n) {
        st->cur_refused = 1;
        snprintf(st->cur_msg, sizeof(st->cur_msg), "%s", st->c.msg);
        return;
    }
    st->refused++;
    sl_log(ctx, SL_LOG_ERROR,
           "table '%s': record %" PRIu64 " refused by the server, not "
           "written: %s; row: %.*s%s",
           st->o.table, st->ids[i], st->c.msg,
           (int)(len > 200 ? 200 : len), row, len > 200 ? "..." : "");
}

/* One transaction for the next rows: those in doubt, if any, else the
 * next chunk. */
static int s_attempt(pg_state_t *st, sl_ctx_t *ctx)
{
    size_t lo = st->done, hi;
    int r;

    if (st->fly_hi) {
        hi = st->fly_hi;
    } else {
        size_t left = st->n - lo;
        hi = lo + (st->chunk < left ? st->chunk : left);
        snprintf(st->fly_key, sizeof(st->fly_key), "%u/%016" PRIx64
                 "/%" PRIu64, st->worker, st->nonce, ++st->seq);
        st->fly_hi = hi;
    }
    r = s_send(st, lo, hi);
    switch (r) {
    case S_ALREADY:
        sl_log(ctx, SL_LOG_INFO, "table '%s': batch %s (%zu rows) had "
               "committed before the connection was lost; not sent again",
               st->o.table, st->fly_key, hi - lo);
        /* fall through */
    case S_OK:
        st->done = hi;
        st->fly_hi = 0;
        memcpy(st->prev_key, st->fly_key, sizeof(st->prev_key));
        st->chunk = (size_t)st->o.batch_rows;
        return S_OK;
    case S_DATA:
        st->fly_hi = 0;
        if (hi - lo == 1) {
            s_refuse(st, ctx, lo);
            st->done = hi;
        } else {
            st->chunk = (hi - lo + 1) / 2;
        }
        return S_DATA;
    default:
        /* S_LOST, and S_FAIL too: a failure before the key was decided
         * leaves an earlier attempt's fate open, and sending the same rows
         * under the same key is harmless after one that was decided. */
        return r;
    }
}

static void s_sleep_ms(uint64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
                          .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int pg_write(pg_state_t *st, sl_ctx_t *ctx, int64_t budget_ms)
{
    uint64_t deadline = s_deadline(budget_ms);
    uint64_t backoff = 20;

    while (st->done < st->n) {
        int r = S_LOST;
        if (st->c.conn || pg_connect(st) == PGC_OK)
            r = s_attempt(st, ctx);
        if (r == S_OK || r == S_DATA) {
            if (st->down)
                sl_log(ctx, SL_LOG_INFO, "table '%s': writing again",
                       st->o.table);
            st->down = 0;
            backoff = 20;
            continue;
        }
        if (!st->down)
            sl_log(ctx, SL_LOG_WARN, "table '%s': %zu rows not written "
                   "yet: %s; trying again for up to %lld ms",
                   st->o.table, st->n - st->done, st->c.msg,
                   (long long)budget_ms);
        st->down = 1;
        uint64_t now = sl_mono_ns();
        if (now >= deadline)
            return -EAGAIN;
        uint64_t left = (deadline - now) / 1000000;
        s_sleep_ms(backoff < left ? backoff : left);
        backoff = backoff * 2 > 1000 ? 1000 : backoff * 2;
    }
    st->refusing = 0;
    st->n = 0;
    st->done = 0;
    st->buf.len = 0;
    st->chunk = (size_t)st->o.batch_rows;
    return 0;
}
