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
                           c->name, sql_conf_text(n));
}

/* A column map's `unit`, once its other keys are read (rc is theirs). */
static int s_parse_extra(const sl_config_t *v, pg_col_t *c, int rc)
{
    const sl_config_t *n = sl_config_get(v, "unit");

    if (n && s_parse_unit(n, c) < 0)
        rc = -EINVAL;
    else if (n && rc == 0 && c->type != PG_TIMESTAMPTZ)
        rc = sl_config_error(n, "column '%s': 'unit' applies to timestamptz "
                                "columns only", c->name);
    return rc;
}

static const sql_cols_spec_t s_cols_spec = {
    .types = s_types,
    .ntypes = S_NTYPES,
    .types_want = "text, bigint, integer, double precision, boolean, "
                  "timestamptz, jsonb or bytea",
    .lists = 1,
    .unique = 1,
    .reserved = PG_ROW_COLUMN,
    .reserved_for = "the sink's staging table",
    .extra_key = "unit",
    .keys_want = "type, field, required, unit",
    .extra = s_parse_extra,
};

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
        if (!sql_conf_nonempty(ci))
            return sl_config_error(ci, "'conninfo' must be a non-empty "
                                       "libpq connection string");
        o->conninfo = sl_config_str(ci);
        return 0;
    }
    if (sl_config_type(env) != SL_CONFIG_STRING ||
        !s_env_name(sl_config_str(env)))
        return sl_config_error(env, "'conninfo_env' must be an environment "
                                    "variable name, got '%s'",
                               sql_conf_text(env));
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
                               (long long)lo, (long long)hi, sql_conf_text(n));
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
    if (n && !sql_conf_nonempty(n))
        rc = sl_config_error(n, "'schema' must be a non-empty name");
    else if (n)
        o->schema = sl_config_str(n);

    if (sql_table_parse(cfg, &s_cols_spec, &o->table, &o->cols, &o->ncols,
                        &o->nkeys) < 0)
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

static void s_qualified(FILE *f, const pg_opts_t *o, const char *table)
{
    if (o->schema) {
        sql_ident(f, o->schema);
        fputc('.', f);
    }
    sql_ident(f, table);
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
        sql_ident(f, o->cols[i].name);
        sep = ", ";
    }
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
    return sql_close(f, &buf);
}

static void s_col_decls(FILE *f, const pg_opts_t *o)
{
    for (size_t i = 0; i < o->ncols; i++) {
        if (i)
            fputs(", ", f);
        sql_ident(f, o->cols[i].name);
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
    return sql_close(f, &buf);
}

char *pg_sql_create_batches(const pg_opts_t *o)
{
    S_OPEN();
    fputs("CREATE TABLE IF NOT EXISTS ", f);
    s_qualified(f, o, PG_BATCH_TABLE);
    fputs(" (sink text NOT NULL, batch_key text PRIMARY KEY, rows integer "
          "NOT NULL, at timestamptz NOT NULL DEFAULT now())",
          f);
    return sql_close(f, &buf);
}

char *pg_sql_staging(const pg_opts_t *o)
{
    S_OPEN();
    fputs("CREATE TEMP TABLE IF NOT EXISTS " PG_STAGING_TABLE " (", f);
    s_col_decls(f, o);
    fputs(", " PG_ROW_COLUMN " bigint) ON COMMIT DELETE ROWS", f);
    return sql_close(f, &buf);
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
    return sql_close(f, &buf);
}

char *pg_sql_merge(const pg_opts_t *o, int check)
{
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
        return sql_close(f, &buf);
    fputs(" ORDER BY ", f);
    s_cols(f, o, 1, "");
    fputs(", " PG_ROW_COLUMN " DESC ON CONFLICT (", f);
    s_cols(f, o, 1, "");
    fputc(')', f);
    if (o->nkeys == o->ncols) {
        fputs(" DO NOTHING", f);
        return sql_close(f, &buf);
    }
    fputs(" DO UPDATE SET ", f);
    sql_update_set(f, o->cols, o->ncols, "EXCLUDED.");
    return sql_close(f, &buf);
}
