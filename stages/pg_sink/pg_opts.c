/* pg_sink: config parsing and SQL generation. */
#include "pg_opts.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const pg_config_keys[] = {
    "conninfo",   "conninfo_env", "schema",
    "table",      "columns",      "key",
    "create",     "batch_rows",   "connect_timeout_ms",
    "retry_ms",   "timeout_ms",   NULL};

static const char *const s_types[] = {"text",        "bigint",
                                      "integer",     "double precision",
                                      "boolean",     "timestamptz",
                                      "jsonb",       "bytea"};
#define S_NTYPES (sizeof(s_types) / sizeof(s_types[0]))

const char *pg_type_name(pg_type_t t)
{
    return s_types[t];
}

void pg_opts_free(pg_opts_t *o)
{
    free(o->cols);
    memset(o, 0, sizeof(*o));
}

static const char *s_text(const sl_config_t *n)
{
    const char *s = sl_config_str(n);
    return s ? s : "a sequence or map";
}

static int s_nonempty_str(const sl_config_t *n)
{
    const char *s = sl_config_str(n);
    return n && s && *s && sl_config_type(n) == SL_CONFIG_STRING;
}

static int s_parse_type(const sl_config_t *n, const char *col, pg_type_t *t)
{
    const char *s = sl_config_str(n);

    for (size_t i = 0; s && i < S_NTYPES; i++) {
        if (!strcmp(s, s_types[i])) {
            *t = (pg_type_t)i;
            return 0;
        }
    }
    return sl_config_error(n, "column '%s': unknown type '%s' (want text, "
                              "bigint, integer, double precision, boolean, "
                              "timestamptz, jsonb or bytea)",
                           col, s_text(n));
}

static int s_parse_unit(const sl_config_t *n, pg_col_t *c)
{
    static const char *const units[] = {"s", "ms", "us", "ns"};
    static const int64_t per[] = {1, 1000, 1000000, 1000000000};
    const char *s = sl_config_str(n);

    for (size_t i = 0; s && i < 4; i++) {
        if (!strcmp(s, units[i])) {
            c->per_second = per[i];
            return 0;
        }
    }
    return sl_config_error(n, "column '%s': unknown unit '%s' (want s, ms, "
                              "us or ns)",
                           c->name, s_text(n));
}

/* One entry of `columns`: a type name, or {type, field, required, unit}. */
static int s_parse_col(const sl_config_t *v, pg_col_t *c)
{
    const sl_config_t *n;
    int rc = 0;

    c->per_second = 1;
    if (sl_config_type(v) != SL_CONFIG_MAP)
        return s_parse_type(v, c->name, &c->type);
    for (size_t i = 0; i < sl_config_len(v); i++) {
        const char *k = sl_config_key_at(v, i);
        if (strcmp(k, "type") && strcmp(k, "field") && strcmp(k, "required") &&
            strcmp(k, "unit"))
            rc = sl_config_error(sl_config_value_at(v, i),
                                 "column '%s': unknown key '%s' (want type, "
                                 "field, required, unit)", c->name, k);
    }
    n = sl_config_get(v, "type");
    if (!n)
        rc = sl_config_error(v, "column '%s': 'type' is required", c->name);
    else if (s_parse_type(n, c->name, &c->type) < 0)
        rc = -EINVAL;
    n = sl_config_get(v, "field");
    if (n && !s_nonempty_str(n))
        rc = sl_config_error(n, "column '%s': 'field' must be a non-empty "
                                "field path", c->name);
    else if (n)
        c->field = sl_config_str(n);
    if (sl_config_get_bool(v, "required", 0, &c->required) < 0)
        rc = -EINVAL;
    n = sl_config_get(v, "unit");
    if (n && s_parse_unit(n, c) < 0)
        rc = -EINVAL;
    else if (n && rc == 0 && c->type != PG_TIMESTAMPTZ)
        rc = sl_config_error(n, "column '%s': 'unit' applies to timestamptz "
                                "columns only", c->name);
    return rc;
}

/* The i-th column of `columns`: from a map entry, or from a list item that
 * is a map of one entry. *name_node is where to report about the name. */
static int s_column_at(const sl_config_t *node, size_t i, const char **name,
                       const sl_config_t **value)
{
    if (sl_config_type(node) == SL_CONFIG_MAP) {
        *name = sl_config_key_at(node, i);
        *value = sl_config_value_at(node, i);
        return 0;
    }
    const sl_config_t *item = sl_config_at(node, i);
    if (sl_config_type(item) != SL_CONFIG_MAP || sl_config_len(item) != 1)
        return sl_config_error(item, "each item of 'columns' must be one "
                                     "'column: type' pair");
    *name = sl_config_key_at(item, 0);
    *value = sl_config_value_at(item, 0);
    return 0;
}

static int s_parse_columns(const sl_config_t *cfg, pg_opts_t *o)
{
    const sl_config_t *node = sl_config_get(cfg, "columns");
    size_t n = sl_config_len(node);
    int rc = 0;

    if (!node)
        return sl_config_error(cfg, "'columns' is required (a map of "
                                    "column: type)");
    if ((sl_config_type(node) != SL_CONFIG_MAP &&
         sl_config_type(node) != SL_CONFIG_SEQ) ||
        n == 0)
        return sl_config_error(node, "'columns' must be a non-empty map (or "
                                     "list) of column: type");
    o->cols = calloc(n, sizeof(*o->cols));
    if (!o->cols)
        return -ENOMEM;
    o->ncols = n;
    for (size_t i = 0; i < n; i++) {
        pg_col_t *c = &o->cols[i];
        const sl_config_t *v = NULL;
        if (s_column_at(node, i, &c->name, &v) < 0) {
            c->name = NULL;
            rc = -EINVAL;
            continue;
        }
        c->name_len = strlen(c->name);
        if (!c->name_len) {
            rc = sl_config_error(v, "column names must not be empty");
            continue;
        }
        for (size_t j = 0; j < i; j++) {
            if (o->cols[j].name && !strcmp(o->cols[j].name, c->name)) {
                rc = sl_config_error(v, "column '%s' is listed twice",
                                     c->name);
                break;
            }
        }
        if (!strcmp(c->name, PG_ROW_COLUMN))
            rc = sl_config_error(v, "column name '%s' is reserved for the "
                                    "sink's staging table", c->name);
        if (s_parse_col(v, c) < 0)
            rc = -EINVAL;
    }
    return rc;
}

static int s_parse_key(const sl_config_t *cfg, pg_opts_t *o)
{
    const sl_config_t *node = sl_config_get(cfg, "key");
    int rc = 0;

    if (!node)
        return 0;
    if (sl_config_type(node) != SL_CONFIG_SEQ || sl_config_len(node) == 0)
        return sl_config_error(node, "'key' must be a non-empty list of "
                                     "column names");
    for (size_t i = 0; i < sl_config_len(node); i++) {
        const sl_config_t *item = sl_config_at(node, i);
        const char *s = sl_config_str(item);
        pg_col_t *c = NULL;
        for (size_t j = 0; s && j < o->ncols; j++)
            if (o->cols[j].name && !strcmp(o->cols[j].name, s))
                c = &o->cols[j];
        if (!c) {
            rc = sl_config_error(item, "'key' names '%s', which is not in "
                                       "'columns'", s_text(item));
        } else if (c->is_key) {
            rc = sl_config_error(item, "'key' names '%s' twice", s);
        } else {
            c->is_key = 1;
            c->required = 1; /* NULLs never conflict: no upsert for them */
            o->nkeys++;
        }
    }
    return rc;
}

/* An environment variable name as POSIX shells accept it. */
static int s_env_name(const char *s)
{
    if (!s || !(isalpha((unsigned char)*s) || *s == '_'))
        return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return 0;
    return 1;
}

static int s_parse_conninfo(const sl_config_t *cfg, pg_opts_t *o)
{
    const sl_config_t *ci = sl_config_get(cfg, "conninfo");
    const sl_config_t *env = sl_config_get(cfg, "conninfo_env");

    if (ci && env)
        return sl_config_error(env, "give either 'conninfo' or "
                                    "'conninfo_env', not both");
    if (!ci && !env)
        return sl_config_error(cfg, "'conninfo' is required (a libpq "
                                    "connection string), or 'conninfo_env' "
                                    "naming an environment variable that "
                                    "holds one");
    if (ci) {
        if (!s_nonempty_str(ci))
            return sl_config_error(ci, "'conninfo' must be a non-empty "
                                       "libpq connection string");
        o->conninfo = sl_config_str(ci);
        return 0;
    }
    if (sl_config_type(env) != SL_CONFIG_STRING ||
        !s_env_name(sl_config_str(env)))
        return sl_config_error(env, "'conninfo_env' must be an environment "
                                    "variable name, got '%s'",
                               s_text(env));
    o->conninfo_env = sl_config_str(env);
    return 0;
}

static int s_ms(const sl_config_t *cfg, const char *key, int64_t dflt,
                int64_t lo, int64_t hi, int64_t *out)
{
    const sl_config_t *n = sl_config_get(cfg, key);

    if (sl_config_get_int(cfg, key, dflt, out) < 0)
        return -EINVAL;
    if (*out < lo || *out > hi)
        return sl_config_error(n, "'%s' must be %lld..%lld, got %s", key,
                               (long long)lo, (long long)hi, s_text(n));
    return 0;
}

int pg_opts_parse(const sl_config_t *cfg, pg_opts_t *o)
{
    const sl_config_t *n;
    int rc = 0;

    memset(o, 0, sizeof(*o));
    if (s_parse_conninfo(cfg, o) < 0)
        rc = -EINVAL;

    n = sl_config_get(cfg, "schema");
    if (n && !s_nonempty_str(n))
        rc = sl_config_error(n, "'schema' must be a non-empty name");
    else if (n)
        o->schema = sl_config_str(n);

    n = sl_config_get(cfg, "table");
    if (!n)
        rc = sl_config_error(cfg, "'table' is required (the table to write)");
    else if (!s_nonempty_str(n))
        rc = sl_config_error(n, "'table' must be a non-empty name");
    else
        o->table = sl_config_str(n);

    /* Keys are checked against the column names even when a column's
     * type is wrong, so that one run of `sluice check` shows both. */
    if (s_parse_columns(cfg, o) < 0)
        rc = -EINVAL;
    if (o->cols && s_parse_key(cfg, o) < 0)
        rc = -EINVAL;

    if (sl_config_get_bool(cfg, "create", 1, &o->create) < 0)
        rc = -EINVAL;
    if (s_ms(cfg, "batch_rows", 1000, 1, 1000000, &o->batch_rows) < 0)
        rc = -EINVAL;
    if (s_ms(cfg, "connect_timeout_ms", 5000, 1, 3600000,
             &o->connect_timeout_ms) < 0)
        rc = -EINVAL;
    if (s_ms(cfg, "retry_ms", 10000, 0, 86400000, &o->retry_ms) < 0)
        rc = -EINVAL;
    if (s_ms(cfg, "timeout_ms", 30000, 100, 86400000, &o->timeout_ms) < 0)
        rc = -EINVAL;
    if (rc < 0)
        pg_opts_free(o);
    return rc;
}

/* ---- SQL text ------------------------------------------------------------ */

/* Appends an identifier in double quotes, doubling any quote inside. */
static void s_ident(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void s_qualified(FILE *f, const pg_opts_t *o, const char *table)
{
    if (o->schema) {
        s_ident(f, o->schema);
        fputc('.', f);
    }
    s_ident(f, table);
}

static void s_cols(FILE *f, const pg_opts_t *o, int keys_only,
                   const char *prefix)
{
    const char *sep = "";
    for (size_t i = 0; i < o->ncols; i++) {
        if (keys_only && !o->cols[i].is_key)
            continue;
        fputs(sep, f);
        fputs(prefix, f);
        s_ident(f, o->cols[i].name);
        sep = ", ";
    }
}

/* open_memstream publishes the buffer only at fclose, hence **buf. */
static char *s_close(FILE *f, char **buf)
{
    if (fclose(f) != 0) {
        free(*buf);
        return NULL;
    }
    return *buf;
}

#define S_OPEN()                                                               \
    char *buf = NULL;                                                          \
    size_t len = 0;                                                            \
    FILE *f = open_memstream(&buf, &len);                                      \
    if (!f)                                                                    \
    return NULL

char *pg_sql_name(const pg_opts_t *o, const char *table)
{
    S_OPEN();
    s_qualified(f, o, table);
    return s_close(f, &buf);
}

static void s_col_decls(FILE *f, const pg_opts_t *o)
{
    for (size_t i = 0; i < o->ncols; i++) {
        if (i)
            fputs(", ", f);
        s_ident(f, o->cols[i].name);
        fprintf(f, " %s", s_types[o->cols[i].type]);
    }
}

char *pg_sql_create(const pg_opts_t *o)
{
    S_OPEN();
    fputs("CREATE TABLE IF NOT EXISTS ", f);
    s_qualified(f, o, o->table);
    fputs(" (", f);
    s_col_decls(f, o);
    if (o->nkeys) {
        fputs(", PRIMARY KEY (", f);
        s_cols(f, o, 1, "");
        fputc(')', f);
    }
    fputc(')', f);
    return s_close(f, &buf);
}

char *pg_sql_create_batches(const pg_opts_t *o)
{
    S_OPEN();
    fputs("CREATE TABLE IF NOT EXISTS ", f);
    s_qualified(f, o, PG_BATCH_TABLE);
    fputs(" (sink text NOT NULL, batch_key text PRIMARY KEY, rows integer "
          "NOT NULL, at timestamptz NOT NULL DEFAULT now())",
          f);
    return s_close(f, &buf);
}

char *pg_sql_staging(const pg_opts_t *o)
{
    S_OPEN();
    fputs("CREATE TEMP TABLE IF NOT EXISTS " PG_STAGING_TABLE " (", f);
    s_col_decls(f, o);
    fputs(", " PG_ROW_COLUMN " bigint) ON COMMIT DELETE ROWS", f);
    return s_close(f, &buf);
}

char *pg_sql_copy(const pg_opts_t *o)
{
    S_OPEN();
    fputs("COPY ", f);
    if (o->nkeys)
        fputs("pg_temp." PG_STAGING_TABLE, f);
    else
        s_qualified(f, o, o->table);
    fputs(" (", f);
    s_cols(f, o, 0, "");
    if (o->nkeys)
        fputs(", " PG_ROW_COLUMN, f);
    fputs(") FROM STDIN", f);
    return s_close(f, &buf);
}

char *pg_sql_merge(const pg_opts_t *o, int check)
{
    const char *sep = "";

    if (!o->nkeys && !check)
        return NULL;
    S_OPEN();
    fputs("INSERT INTO ", f);
    s_qualified(f, o, o->table);
    fputs(" (", f);
    s_cols(f, o, 0, "");
    fputs(") SELECT ", f);
    if (o->nkeys) {
        /* A key twice in one batch would make ON CONFLICT DO UPDATE touch
         * a row twice (an error): the batch's newest row wins, as it
         * would have one transaction later. */
        fputs("DISTINCT ON (", f);
        s_cols(f, o, 1, "");
        fputs(") ", f);
    }
    s_cols(f, o, 0, "");
    fputs(" FROM pg_temp." PG_STAGING_TABLE, f);
    if (!o->nkeys)
        return s_close(f, &buf);
    fputs(" ORDER BY ", f);
    s_cols(f, o, 1, "");
    fputs(", " PG_ROW_COLUMN " DESC ON CONFLICT (", f);
    s_cols(f, o, 1, "");
    fputc(')', f);
    if (o->nkeys == o->ncols) {
        fputs(" DO NOTHING", f);
        return s_close(f, &buf);
    }
    fputs(" DO UPDATE SET ", f);
    for (size_t i = 0; i < o->ncols; i++) {
        if (o->cols[i].is_key)
            continue;
        fputs(sep, f);
        s_ident(f, o->cols[i].name);
        fputs(" = EXCLUDED.", f);
        s_ident(f, o->cols[i].name);
        sep = ", ";
    }
    return s_close(f, &buf);
}
