/*
 * The `columns:` and `key:` keys of the SQL sinks (pg_sink, sqlite_sink),
 * parametrised by each database's table of type names, and the small
 * pieces of SQL text and record checking they share.
 *
 * columns: a map of column: type, where type is a type name or a map
 * {type, field, required} (plus a sink's own key); a sink may also take a
 * list of one-entry maps. key: a non-empty list of column names, the
 * primary key (keys are required: NULLs never conflict).
 */
#ifndef SL_SQL_COLUMNS_H
#define SL_SQL_COLUMNS_H

#include <sluice/stage.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct sql_col {
    const char *name;  /* column; points into the config tree */
    const char *field; /* dotted path, or NULL: the field named like it */
    size_t name_len;
    int type;     /* index into the sink's type names */
    int required; /* missing/null fails the record (always so for keys) */
    int is_key;
    /* pg_sink's timestamptz: how many of a number's units make a second
     * (1 unless its `unit` says otherwise) */
    int64_t per_second;
} sql_col_t;

/* How one sink's columns are written. */
typedef struct sql_cols_spec {
    const char *const *types; /* type names; a column's type indexes it */
    size_t ntypes;
    const char *types_want; /* the names for an error: "a, b or c" */
    int lists;              /* also a list of one-entry maps */
    int unique;             /* a name given twice is an error */
    const char *reserved;   /* a name no column may have, or NULL */
    const char *reserved_for; /* what it is kept for, for the error */
    const char *extra_key;  /* one more key of a column map, or NULL */
    const char *keys_want;  /* the column map's keys, for an error */
    /* Reads extra_key of column map v (present or not) once the others
     * are read; rc is theirs. Returns the new rc. */
    int (*extra)(const sl_config_t *v, sql_col_t *c, int rc);
} sql_cols_spec_t;

/* Reads `table` (required), then `columns` into *cols (malloc'd, config
 * order) and *ncols, then `key`, marking those columns is_key and required
 * and counting them in *nkeys. Keys are checked against the column names
 * even when a column's type is wrong, so that one run of `sluice check`
 * shows both. Reports every problem with sl_config_error and returns
 * -EINVAL, or 0; the caller frees *cols either way. */
int sql_table_parse(const sl_config_t *cfg, const sql_cols_spec_t *spec,
                    const char **table, sql_col_t **cols, size_t *ncols,
                    size_t *nkeys);

/* A config value as text for a message ("a sequence or map" if none). */
const char *sql_conf_text(const sl_config_t *n);
/* Whether n is a non-empty string. */
int sql_conf_nonempty(const sl_config_t *n);

/* Appends an identifier in double quotes, doubling any quote inside. */
void sql_ident(FILE *f, const char *s);
/* Appends "c = <excluded>c" for each column c that is not a key, comma
 * separated: an upsert's SET list (excluded: "EXCLUDED." or "excluded."). */
void sql_update_set(FILE *f, const sql_col_t *cols, size_t ncols,
                    const char *excluded);
/* Closes an open_memstream stream and returns its text, or NULL (freed)
 * if that failed; open_memstream publishes the buffer only at fclose,
 * hence **buf. */
char *sql_close(FILE *f, char **buf);

/* What kind of value v is, for a message ("an integer", "a string"). */
const char *sql_value_kind(const msgpack_object *v);
/* Fails the record (sl_ctx_fail) for a value of the wrong kind for c,
 * whose type is called type_name. */
int sql_col_mismatch(sl_ctx_t *ctx, const sql_col_t *c,
                     const char *type_name, const msgpack_object *v);

#endif
