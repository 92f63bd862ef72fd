/*
 * sqlite_sink's configuration: parsed once, shared by validate and init,
 * and the SQL text derived from it.
 */
#ifndef SQ_OPTS_H
#define SQ_OPTS_H

#include "sql_columns.h"

#include <sluice/stage.h>

#include <stddef.h>
#include <stdint.h>

typedef enum sq_type {
    SQ_INTEGER = 0,
    SQ_REAL,
    SQ_TEXT,
    SQ_BLOB,
    SQ_JSON,
} sq_type_t;

/* Its type is an sq_type_t. */
typedef sql_col_t sq_col_t;

typedef struct sq_opts {
    char *path;        /* owned */
    const char *table; /* config tree */
    sq_col_t *cols;    /* owned, config order */
    size_t ncols;
    size_t nkeys;
    int create;
    int64_t batch_rows;
    int64_t busy_timeout_ms;
} sq_opts_t;

extern const char *const sq_config_keys[];

/* Reports every problem with sl_config_error and returns -EINVAL; no file
 * is touched. On success the caller owns o (sq_opts_free). */
int sq_opts_parse(const sl_config_t *cfg, sq_opts_t *o);
void sq_opts_free(sq_opts_t *o);
const char *sq_type_name(sq_type_t t);

/* The CREATE TABLE IF NOT EXISTS and INSERT (or upsert) statements, as
 * malloc'd text; NULL if memory ran out. */
char *sq_sql_create(const sq_opts_t *o);
char *sq_sql_insert(const sq_opts_t *o);

#endif
