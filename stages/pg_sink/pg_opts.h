/*
 * pg_sink's configuration: parsed once, shared by validate and init, and
 * the SQL text derived from it.
 */
#ifndef PG_OPTS_H
#define PG_OPTS_H

#include "sql_columns.h"

#include <sluice/stage.h>

#include <stddef.h>
#include <stdint.h>

typedef enum pg_type {
    PG_TEXT = 0,
    PG_BIGINT,
    PG_INTEGER,
    PG_DOUBLE,
    PG_BOOLEAN,
    PG_TIMESTAMPTZ,
    PG_JSONB,
    PG_BYTEA,
} pg_type_t;

/* Its type is a pg_type_t. */
typedef sql_col_t pg_col_t;

typedef struct pg_opts {
    const char *conninfo;     /* config tree; NULL with conninfo_env */
    const char *conninfo_env; /* config tree; NULL with conninfo */
    const char *schema;       /* config tree; NULL: the search path's */
    const char *table;        /* config tree */
    pg_col_t *cols;           /* owned, config order */
    size_t ncols;
    size_t nkeys;
    int create;
    int64_t batch_rows;
    int64_t connect_timeout_ms;
    int64_t retry_ms;
    int64_t timeout_ms;
} pg_opts_t;

extern const char *const pg_config_keys[];

/* The name of the table that records committed batches. */
#define PG_BATCH_TABLE "sluice_pg_batches"
/* The session's temporary staging table (upserts, and the start check). */
#define PG_STAGING_TABLE "sluice_pg_staging"
/* Its extra column: the row's place in the batch, so the newest wins. */
#define PG_ROW_COLUMN "sluice_row"

/* Reports every problem with sl_config_error and returns -EINVAL; nothing
 * is opened and the environment is not read. On success the caller owns o
 * (pg_opts_free). */
int pg_opts_parse(const sl_config_t *cfg, pg_opts_t *o);
void pg_opts_free(pg_opts_t *o);
const char *pg_type_name(pg_type_t t);

/* SQL text, malloc'd; NULL if memory ran out. */
char *pg_sql_create(const pg_opts_t *o);        /* CREATE TABLE IF NOT EXISTS */
char *pg_sql_create_batches(const pg_opts_t *o); /* the bookkeeping table */
char *pg_sql_staging(const pg_opts_t *o);       /* CREATE TEMP TABLE */
char *pg_sql_copy(const pg_opts_t *o);          /* COPY ... FROM STDIN */
/* Upsert: staging -> table. Plain insert: NULL, unless check is set: then
 * the INSERT ... SELECT that init EXPLAINs to check the table. */
char *pg_sql_merge(const pg_opts_t *o, int check);
/* The qualified name of a table in the sink's schema, quoted. */
char *pg_sql_name(const pg_opts_t *o, const char *table);

#endif
