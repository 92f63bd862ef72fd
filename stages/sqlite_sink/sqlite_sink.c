/*
 * sqlite_sink: writes each record as one row of an SQLite table, inserting
 * or, with `key:`, upserting.
 *
 * Rows are written in transactions of `batch_rows` records, committed when
 * full, at sync() (so a committed source position never runs ahead of the
 * rows) and at flush/fini. A record that cannot be written (a field of the
 * wrong type, a constraint violation) fails alone: with SQLite's default
 * ABORT conflict handling a failed statement undoes only its own changes
 * and leaves the transaction open, so no savepoint per record is needed.
 * If SQLite rolls a whole transaction back anyway (disk full, I/O error),
 * the rows of that batch are lost: that is logged, and every later sync and
 * flush fails so that the run does not count them as written.
 *
 * One worker at most: SQLite has one writer per database, so a second
 * worker would only wait for the first one's transaction (or time out).
 */
#include "record_map.h"
#include "sqlite_opts.h"

#include <sluice/json.h>
#include <sluice/stage.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

typedef struct sq_state {
    sq_opts_t o;
    sqlite3 *db;
    sqlite3_stmt *insert;
    sqlite3_stmt *begin, *commit, *rollback;
    msgpack_sbuffer *json; /* one per column, used by json columns */
    int64_t in_tx;         /* rows in the open transaction (0: none open) */
    int tx_open;
    uint64_t lost; /* rows of batches SQLite rolled back */
} sq_state_t;

static int sq_validate(const sl_config_t *cfg)
{
    sq_opts_t o;
    int rc = sq_opts_parse(cfg, &o);

    if (rc == 0)
        sq_opts_free(&o);
    return rc;
}

static void sq_fini(void *state);

static int s_exec(sq_state_t *st, const sl_config_t *cfg, const char *sql)
{
    char *msg = NULL;

    if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    sl_config_error(cfg, "%s: %s", st->o.path,
                    msg ? msg : sqlite3_errmsg(st->db));
    sqlite3_free(msg);
    return -EIO;
}

static int s_prepare(sq_state_t *st, const sl_config_t *cfg, const char *sql,
                     sqlite3_stmt **out)
{
    if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, out,
                           NULL) == SQLITE_OK)
        return 0;
    sl_config_error(cfg, "%s: table '%s': %s", st->o.path, st->o.table,
                    sqlite3_errmsg(st->db));
    return -EIO;
}

static int sq_init(sl_ctx_t *ctx, const sl_config_t *cfg, void **state)
{
    sq_state_t *st;
    char *sql = NULL;
    int rc;

    (void)ctx;
    st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    rc = sq_opts_parse(cfg, &st->o);
    if (rc < 0) {
        free(st);
        return rc;
    }
    rc = -ENOMEM;
    st->json = calloc(st->o.ncols, sizeof(*st->json));
    if (!st->json)
        goto fail;
    for (size_t i = 0; i < st->o.ncols; i++)
        msgpack_sbuffer_init(&st->json[i]);
    if (sqlite3_open_v2(st->o.path, &st->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                        NULL) != SQLITE_OK) {
        rc = sl_config_error(sl_config_get(cfg, "path"), "cannot open %s: "
                             "%s", st->o.path,
                             st->db ? sqlite3_errmsg(st->db) : "no memory");
        goto fail;
    }
    sqlite3_busy_timeout(st->db, (int)st->o.busy_timeout_ms);
    /* WAL lets readers see committed rows while the sink writes; NORMAL
     * sync puts each commit in the WAL file (the kernel) without an fsync,
     * which is what sync() promises. */
    if ((rc = s_exec(st, cfg, "PRAGMA journal_mode=WAL")) < 0 ||
        (rc = s_exec(st, cfg, "PRAGMA synchronous=NORMAL")) < 0)
        goto fail;
    if (st->o.create) {
        rc = -ENOMEM;
        sql = sq_sql_create(&st->o);
        if (!sql || (rc = s_exec(st, cfg, sql)) < 0)
            goto fail;
        free(sql);
    }
    rc = -ENOMEM;
    sql = sq_sql_insert(&st->o);
    if (!sql || (rc = s_prepare(st, cfg, sql, &st->insert)) < 0 ||
        (rc = s_prepare(st, cfg, "BEGIN IMMEDIATE", &st->begin)) < 0 ||
        (rc = s_prepare(st, cfg, "COMMIT", &st->commit)) < 0 ||
        (rc = s_prepare(st, cfg, "ROLLBACK", &st->rollback)) < 0)
        goto fail;
    free(sql);
    *state = st;
    return 0;
fail:
    free(sql);
    sq_fini(st);
    return rc;
}

static int s_step(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc;
}

/* Notices a transaction SQLite ended on its own after an error. */
static void s_check_tx(sq_state_t *st, sl_ctx_t *ctx)
{
    if (!st->tx_open || !sqlite3_get_autocommit(st->db))
        return;
    if (st->in_tx)
        sl_log(ctx, SL_LOG_ERROR, "%s: table '%s': SQLite rolled back the "
               "open transaction: %" PRId64 " rows lost", st->o.path,
               st->o.table, st->in_tx);
    st->lost += (uint64_t)st->in_tx;
    st->in_tx = 0;
    st->tx_open = 0;
}

/* Commits the open transaction, if any. A busy database keeps it open for
 * the next try; any other failure rolls it back and counts its rows lost. */
static int s_commit(sq_state_t *st, sl_ctx_t *ctx)
{
    int rc;

    if (st->tx_open) {
        rc = s_step(st->commit);
        if (rc == SQLITE_DONE) {
            st->tx_open = 0;
            st->in_tx = 0;
        } else {
            sl_log(ctx, SL_LOG_ERROR, "%s: table '%s': commit failed: %s",
                   st->o.path, st->o.table, sqlite3_errmsg(st->db));
            if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
                return -EBUSY;
            if (!sqlite3_get_autocommit(st->db))
                s_step(st->rollback);
            s_check_tx(st, ctx);
        }
    }
    if (st->lost)
        return -EIO;
    return 0;
}

static int s_mismatch(sl_ctx_t *ctx, const sq_col_t *c,
                      const msgpack_object *v)
{
    return sql_col_mismatch(ctx, c, sq_type_name(c->type), v);
}

/* Binds parameter i from v. Booleans go into integer columns as 0/1 and
 * integers into real columns; nothing else is converted. */
static int s_bind(sq_state_t *st, sl_ctx_t *ctx, size_t i,
                  const msgpack_object *v)
{
    const sq_col_t *c = &st->o.cols[i];
    sqlite3_stmt *s = st->insert;
    int p = (int)i + 1;

    /* SQLite takes lengths as int; a negative one would mean "up to the
     * first NUL". */
    if ((v->type == MSGPACK_OBJECT_STR || v->type == MSGPACK_OBJECT_BIN) &&
        v->via.str.size > INT32_MAX)
        return SQLITE_TOOBIG;

    switch (c->type) {
    case SQ_INTEGER:
        if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            return sqlite3_bind_int64(s, p, v->via.i64);
        if (v->type == MSGPACK_OBJECT_BOOLEAN)
            return sqlite3_bind_int64(s, p, v->via.boolean ? 1 : 0);
        if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            break;
        if (v->via.u64 > INT64_MAX)
            return sl_ctx_fail(ctx, "field '%s' for column '%s' (integer): "
                               "%" PRIu64 " is out of range",
                               c->field ? c->field : c->name, c->name,
                               v->via.u64);
        return sqlite3_bind_int64(s, p, (int64_t)v->via.u64);
    case SQ_REAL:
        if (v->type == MSGPACK_OBJECT_FLOAT32 ||
            v->type == MSGPACK_OBJECT_FLOAT64)
            return sqlite3_bind_double(s, p, v->via.f64);
        if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            return sqlite3_bind_double(s, p, (double)v->via.u64);
        if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            return sqlite3_bind_double(s, p, (double)v->via.i64);
        break;
    case SQ_TEXT:
        if (v->type != MSGPACK_OBJECT_STR)
            break;
        /* STATIC: the record outlives the statement's step. */
        return sqlite3_bind_text(s, p, v->via.str.size ? v->via.str.ptr : "",
                                 (int)v->via.str.size, SQLITE_STATIC);
    case SQ_BLOB:
        if (v->type == MSGPACK_OBJECT_BIN)
            return sqlite3_bind_blob(s, p, v->via.bin.ptr,
                                     (int)v->via.bin.size, SQLITE_STATIC);
        if (v->type == MSGPACK_OBJECT_STR)
            return sqlite3_bind_blob(s, p, v->via.str.ptr,
                                     (int)v->via.str.size, SQLITE_STATIC);
        break;
    case SQ_JSON:
        st->json[i].size = 0;
        if (sl_json_encode(v, &st->json[i]) < 0)
            return -ENOMEM;
        if (st->json[i].size > INT32_MAX)
            return SQLITE_TOOBIG;
        return sqlite3_bind_text(s, p, st->json[i].data ? st->json[i].data
                                                        : "",
                                 (int)st->json[i].size, SQLITE_STATIC);
    }
    return s_mismatch(ctx, c, v);
}

static int sq_process(void *state, sl_ctx_t *ctx, sl_record_t *rec)
{
    sq_state_t *st = state;
    const msgpack_object *map;
    int rc;

    int map_rc = stage_record_map(ctx, rec, &map);
    if (map_rc < 0)
        return map_rc;
    for (size_t i = 0; i < st->o.ncols; i++) {
        const sq_col_t *c = &st->o.cols[i];
        const msgpack_object *v =
            c->field ? sl_map_get(map, c->field)
                     : sl_map_getn(map, c->name, c->name_len);
        if (!v || v->type == MSGPACK_OBJECT_NIL) {
            if (c->required)
                return sl_ctx_fail(ctx, "field '%s' for column '%s' is "
                                   "required but %s",
                                   c->field ? c->field : c->name, c->name,
                                   v ? "null" : "missing");
            rc = sqlite3_bind_null(st->insert, (int)i + 1);
        } else {
            rc = s_bind(st, ctx, i, v);
        }
        if (rc == -EINVAL)
            return rc; /* the message is set */
        if (rc != SQLITE_OK)
            return sl_ctx_error(ctx, "column '%s': cannot bind: %s", c->name,
                                rc < 0 ? strerror(-rc)
                                       : sqlite3_errstr(rc));
    }
    if (!st->tx_open) {
        if (s_step(st->begin) != SQLITE_DONE)
            return sl_ctx_error(ctx, "%s: cannot begin a transaction: %s",
                                st->o.path, sqlite3_errmsg(st->db));
        st->tx_open = 1;
    }
    rc = sqlite3_step(st->insert);
    if (rc != SQLITE_DONE) {
        /* errmsg before reset: reset may replace it. */
        sl_ctx_error(ctx, "table '%s': row not written: %s", st->o.table,
                     sqlite3_errmsg(st->db));
        sqlite3_reset(st->insert);
        s_check_tx(st, ctx);
        return -EINVAL;
    }
    sqlite3_reset(st->insert);
    /* A failed commit is logged, and sync and flush report it: this
     * record itself was written as far as this call can tell. */
    if (++st->in_tx >= st->o.batch_rows)
        (void)s_commit(st, ctx);
    return 0;
}

static int sq_sync(void *state, sl_ctx_t *ctx)
{
    return s_commit(state, ctx);
}

static int sq_flush(void *state, sl_ctx_t *ctx)
{
    return s_commit(state, ctx);
}

static void sq_fini(void *state)
{
    sq_state_t *st = state;

    if (!st)
        return;
    if (st->tx_open)
        s_commit(st, NULL);
    sqlite3_finalize(st->insert);
    sqlite3_finalize(st->begin);
    sqlite3_finalize(st->commit);
    sqlite3_finalize(st->rollback);
    if (st->db)
        sqlite3_close(st->db);
    for (size_t i = 0; st->json && i < st->o.ncols; i++)
        msgpack_sbuffer_destroy(&st->json[i]);
    free(st->json);
    sq_opts_free(&st->o);
    free(st);
}

SL_STAGE_DEFINE(.name = "sqlite_sink",
                .summary = "writes records as rows of an SQLite table "
                           "(insert or upsert)",
                .kind = SL_STAGE_SINK, .max_workers = 1,
                .config_keys = sq_config_keys, .validate = sq_validate,
                .init = sq_init, .process = sq_process, .flush = sq_flush,
                .fini = sq_fini, .sync = sq_sync);
