/*
 * pg_sink: writes each record as one row of a PostgreSQL table, inserting
 * or, with `key:`, upserting, through libpq.
 *
 * Each worker has its own connection and buffers rows as COPY text; a
 * batch of `batch_rows` rows goes out in one transaction when it is full,
 * at sync() and at flush(). pg_write.c makes each batch commit exactly
 * once across lost connections.
 *
 * Where a record fails when the server stays away. process() cannot fail a
 * record it has already accepted, and sync()/flush() failing fails the run
 * (stage.h). So a record is accepted only into a batch that still has room;
 * when the buffer is full and cannot be written within `retry_ms`, the
 * record at hand is not buffered and fails with sl_ctx_error(): the host
 * keeps it and tries it again after its backoff (and dead-letters it once
 * retry.max_attempts are spent), so nothing is lost and at most one batch
 * of accepted rows waits in memory. Those are written by a later call; if
 * sync() or flush() cannot write them within `retry_ms`, they fail, and the
 * run with them, rather than let a position commit or a run end clean past
 * rows that are not in the table.
 */
#include "pg_sink.h"
#include "record_map.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

/* Serialises CREATE TABLE IF NOT EXISTS between workers, which would
 * otherwise race on the catalog: an advisory lock on "sluice-p" read as a
 * big-endian int64. */
#define S_DDL_LOCK "8317151707346054512"

static void pg_fini(void *state);

static int pg_validate(const sl_config_t *cfg)
{
    pg_opts_t o;
    int rc = pg_opts_parse(cfg, &o);

    if (rc == 0)
        pg_opts_free(&o);
    return rc;
}

/* 'text' as an SQL literal (standard_conforming_strings is on). */
static char *s_literal(const char *text)
{
    size_t n = strlen(text), k = 0;
    char *out = malloc(2 * n + 3);

    if (!out)
        return NULL;
    out[k++] = '\'';
    for (size_t i = 0; i < n; i++) {
        if (text[i] == '\'')
            out[k++] = '\'';
        out[k++] = text[i];
    }
    out[k++] = '\'';
    out[k] = '\0';
    return out;
}

static int s_build_sql(pg_state_t *st)
{
    char *staging = pg_sql_staging(&st->o);
    int n;

    if (!staging)
        return -ENOMEM;
    n = asprintf(&st->sql_session,
                 "SET standard_conforming_strings = on; SET TimeZone = "
                 "'UTC'; SET DateStyle = 'ISO, YMD'; SET "
                 "idle_in_transaction_session_timeout = %lld; %s",
                 (long long)st->o.timeout_ms, staging);
    free(staging);
    if (n < 0) {
        st->sql_session = NULL;
        return -ENOMEM;
    }
    st->sql_copy = pg_sql_copy(&st->o);
    st->q_batches = pg_sql_name(&st->o, PG_BATCH_TABLE);
    st->q_sink = s_literal(st->stage);
    if (!st->sql_copy || !st->q_batches || !st->q_sink)
        return -ENOMEM;
    if (st->o.nkeys && !(st->sql_merge = pg_sql_merge(&st->o, 0)))
        return -ENOMEM;
    return 0;
}

static const sl_config_t *s_conn_node(const sl_config_t *cfg)
{
    const sl_config_t *n = sl_config_get(cfg, "conninfo");
    return n ? n : sl_config_get(cfg, "conninfo_env");
}

/* Creates what is missing (under a lock: workers start together) and
 * checks the table against the columns by EXPLAINing the statement that
 * moves rows from the staging table into it: a missing table or column, a
 * type that cannot be assigned or a key without a matching unique
 * constraint stops the run here, with the server's words. */
static int s_prepare_tables(pg_state_t *st, const sl_config_t *cfg)
{
    const sl_config_t *tnode = sl_config_get(cfg, "table");
    char *batches = pg_sql_create_batches(&st->o);
    char *create = st->o.create ? pg_sql_create(&st->o) : NULL;
    char *check = pg_sql_merge(&st->o, 1);
    char *sql = NULL;
    int rc = -ENOMEM;

    if (!batches || (st->o.create && !create) || !check ||
        asprintf(&sql, "BEGIN; SELECT pg_advisory_xact_lock(" S_DDL_LOCK
                       "); %s; %s%sCOMMIT",
                 batches, create ? create : "", create ? "; " : "") < 0) {
        sql = NULL;
        goto out;
    }
    rc = pgc_run(&st->c, sql, sl_mono_ns() + (uint64_t)st->o.timeout_ms *
                                                 1000000u, NULL, 0);
    if (rc == PGC_OK) {
        free(sql);
        sql = NULL;
        if (asprintf(&sql, "EXPLAIN %s", check) < 0) {
            sql = NULL;
            rc = -ENOMEM;
            goto out;
        }
        rc = pgc_run(&st->c, sql, sl_mono_ns() + (uint64_t)st->o.timeout_ms *
                                                     1000000u, NULL, 0);
    }
    if (rc != PGC_OK) {
        sl_config_error(tnode, "table '%s': %s", st->o.table, st->c.msg);
        rc = -EIO;
    }
out:
    free(sql);
    free(check);
    free(create);
    free(batches);
    return rc;
}

static int pg_init(sl_ctx_t *ctx, const sl_config_t *cfg, void **state)
{
    pg_state_t *st;
    const char *ci;
    int rc;

    st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    rc = pg_opts_parse(cfg, &st->o);
    if (rc < 0) {
        free(st);
        return rc;
    }
    rc = -ENOMEM;
    st->stage = strdup(sl_ctx_stage(ctx));
    if (!st->stage)
        goto fail;
    st->worker = sl_ctx_worker(ctx);
    ci = st->o.conninfo;
    if (st->o.conninfo_env) {
        ci = getenv(st->o.conninfo_env);
        if (!ci || !*ci) {
            rc = sl_config_error(s_conn_node(cfg), "environment variable "
                                 "'%s' is not set (it should hold the libpq "
                                 "connection string)", st->o.conninfo_env);
            goto fail;
        }
    }
    if (!(st->conninfo = strdup(ci)))
        goto fail;
    snprintf(st->app, sizeof(st->app), "sluice %s/%u", st->stage,
             st->worker);
    if (getrandom(&st->nonce, sizeof(st->nonce), 0) != sizeof(st->nonce))
        st->nonce = sl_now_ns() ^ ((uint64_t)getpid() << 32) ^
                    (uint64_t)(uintptr_t)st;
    st->chunk = (size_t)st->o.batch_rows;
    st->off = calloc((size_t)st->o.batch_rows + 1, sizeof(*st->off));
    st->ids = calloc((size_t)st->o.batch_rows, sizeof(*st->ids));
    msgpack_sbuffer_init(&st->json);
    if (!st->off || !st->ids || pg_buf_reserve(&st->sql, 1024) < 0 ||
        s_build_sql(st) < 0)
        goto fail;
    if (pg_connect(st) != PGC_OK) {
        rc = sl_config_error(s_conn_node(cfg), "cannot connect to "
                             "PostgreSQL: %s", st->c.msg);
        goto fail;
    }
    if ((rc = s_prepare_tables(st, cfg)) < 0)
        goto fail;
    *state = st;
    return 0;
fail:
    pg_fini(st);
    return rc < 0 ? rc : -EIO;
}

/* Appends the record's row; sl_ctx_fail for a value no retry can fix. */
static int s_row(pg_state_t *st, sl_ctx_t *ctx, sl_record_t *rec)
{
    const msgpack_object *map;
    size_t mark = st->buf.len;
    int rc;

    int map_rc = stage_record_map(ctx, rec, &map);
    if (map_rc < 0)
        return map_rc;
    for (size_t i = 0; i < st->o.ncols; i++) {
        const pg_col_t *c = &st->o.cols[i];
        const msgpack_object *v =
            c->field ? sl_map_get(map, c->field)
                     : sl_map_getn(map, c->name, c->name_len);
        if (i && (rc = pg_buf_add(&st->buf, "\t", 1)) < 0)
            goto fail;
        if (!v || v->type == MSGPACK_OBJECT_NIL) {
            if (c->required) {
                rc = sl_ctx_fail(ctx, "field '%s' for column '%s' is "
                                 "required but %s",
                                 c->field ? c->field : c->name, c->name,
                                 v ? "null" : "missing");
                goto fail;
            }
            rc = pg_buf_add(&st->buf, "\\N", 2);
        } else {
            rc = pg_conv_field(&st->buf, &st->json, c, v, ctx);
        }
        if (rc < 0)
            goto fail;
    }
    if (st->o.nkeys) {
        char tmp[24];
        int k = snprintf(tmp, sizeof(tmp), "\t%zu", st->n);
        if ((rc = pg_buf_add(&st->buf, tmp, (size_t)k)) < 0)
            goto fail;
    }
    if ((rc = pg_buf_add(&st->buf, "\n", 1)) < 0)
        goto fail;
    st->ids[st->n] = sl_record_id(rec);
    st->off[++st->n] = st->buf.len;
    return 0;
fail:
    st->buf.len = mark;
    if (rc == -ENOMEM)
        return sl_ctx_error(ctx, "out of memory buffering the row");
    return rc;
}

static int pg_process(void *state, sl_ctx_t *ctx, sl_record_t *rec)
{
    pg_state_t *st = state;
    int rc;

    if (st->n == (size_t)st->o.batch_rows &&
        pg_write(st, ctx, st->o.retry_ms) < 0) {
        if (!st->refusing)
            sl_log(ctx, SL_LOG_WARN, "table '%s': cannot write; records "
                   "fail until it can (the host tries them again)",
                   st->o.table);
        st->refusing = 1;
        return sl_ctx_error(ctx, "table '%s': cannot write (%zu rows "
                            "wait): %s",
                            st->o.table, st->n - st->done, st->c.msg);
    }
    if ((rc = s_row(st, ctx, rec)) < 0)
        return rc;
    if (st->n < (size_t)st->o.batch_rows)
        return 0;
    /* The batch is full. If it cannot be written now, its rows (this
     * record's too) stay buffered for the next call. */
    st->in_process = 1;
    st->cur_refused = 0;
    (void)pg_write(st, ctx, st->o.retry_ms);
    st->in_process = 0;
    if (st->cur_refused)
        return sl_ctx_fail(ctx, "table '%s': row refused by the server: %s",
                           st->o.table, st->cur_msg);
    return 0;
}

/* Writes what is buffered; fails while rows wait or after the server
 * refused some (those are logged one by one as they are found). */
static int s_settle(pg_state_t *st, sl_ctx_t *ctx)
{
    if (st->done < st->n && pg_write(st, ctx, st->o.retry_ms) < 0)
        return sl_ctx_error(ctx, "table '%s': %zu rows not written: %s",
                            st->o.table, st->n - st->done, st->c.msg);
    if (st->refused)
        return sl_ctx_error(ctx, "table '%s': the server refused %" PRIu64
                            " accepted rows (each is logged)",
                            st->o.table, st->refused);
    return 0;
}

static int pg_sync(void *state, sl_ctx_t *ctx)
{
    return s_settle(state, ctx);
}

static int pg_flush(void *state, sl_ctx_t *ctx)
{
    pg_state_t *st = state;
    int rc = s_settle(st, ctx);

    /* The last key is only needed while its batch is in doubt. */
    if (rc == 0 && st->prev_key[0] && st->c.conn) {
        char *sql = NULL;
        if (asprintf(&sql, "DELETE FROM %s WHERE batch_key = '%s'",
                     st->q_batches, st->prev_key) >= 0) {
            if (pgc_run(&st->c, sql, sl_mono_ns() +
                        (uint64_t)st->o.timeout_ms * 1000000u, NULL, 0) ==
                PGC_OK)
                st->prev_key[0] = '\0';
            free(sql);
        }
    }
    return rc;
}

static void pg_fini(void *state)
{
    pg_state_t *st = state;

    if (!st)
        return;
    /* Rows still buffered here: the run stopped without a flush (past
     * its grace period, or aborted). One last try on an open connection,
     * without waiting for a server that is away. */
    if (st->done < st->n) {
        int live = st->c.conn != NULL;
        if (!live || pg_write(st, NULL, 0) < 0)
            sl_log(NULL, SL_LOG_ERROR, "%s: table '%s': %zu accepted rows "
                   "were never written: %s", st->stage, st->o.table,
                   st->n - st->done, live ? st->c.msg : "no connection");
    }
    pgc_close(&st->c);
    free(st->sql_session);
    free(st->sql_copy);
    free(st->sql_merge);
    free(st->q_batches);
    free(st->q_sink);
    pg_buf_free(&st->buf);
    pg_buf_free(&st->sql);
    msgpack_sbuffer_destroy(&st->json);
    free(st->off);
    free(st->ids);
    free(st->conninfo);
    free(st->stage);
    pg_opts_free(&st->o);
    free(st);
}

SL_STAGE_DEFINE(.name = "pg_sink",
                .summary = "writes records as rows of a PostgreSQL table "
                           "(COPY in batches, insert or upsert)",
                .kind = SL_STAGE_SINK, .max_workers = 0,
                .config_keys = pg_config_keys, .validate = pg_validate,
                .init = pg_init, .process = pg_process, .flush = pg_flush,
                .fini = pg_fini, .sync = pg_sync);
