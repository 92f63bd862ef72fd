/* sqlite_sink: config parsing and SQL generation. */
#include "sqlite_opts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const sq_config_keys[] = {"path",       "table",  "columns",
                                      "key",        "create", "batch_rows",
                                      "busy_timeout", NULL};

static const char *const s_types[] = {"integer", "real", "text", "blob",
                                      "json"};

const char *sq_type_name(sq_type_t t)
{
    return s_types[t];
}

void sq_opts_free(sq_opts_t *o)
{
    free(o->path);
    free(o->cols);
    memset(o, 0, sizeof(*o));
}

static const sql_cols_spec_t s_cols_spec = {
    .types = s_types,
    .ntypes = sizeof(s_types) / sizeof(s_types[0]),
    .types_want = "integer, real, text, blob or json",
    .keys_want = "type, field, required",
};

int sq_opts_parse(const sl_config_t *cfg, sq_opts_t *o)
{
    const sl_config_t *n;
    int rc = 0;

    memset(o, 0, sizeof(*o));
    n = sl_config_get(cfg, "path");
    if (sl_config_get_path(cfg, "path", NULL, &o->path) < 0)
        rc = -EINVAL;
    else if (!o->path)
        rc = sl_config_error(cfg, "'path' is required (the database file)");
    else if (!*sql_conf_text(n))
        rc = sl_config_error(n, "'path' must not be empty");

    if (sql_table_parse(cfg, &s_cols_spec, &o->table, &o->cols, &o->ncols,
                        &o->nkeys) < 0)
        rc = -EINVAL;

    if (sl_config_get_bool(cfg, "create", 1, &o->create) < 0)
        rc = -EINVAL;
    if (sl_config_get_int(cfg, "batch_rows", 1000, &o->batch_rows) < 0) {
        rc = -EINVAL;
    } else if (o->batch_rows < 1) {
        n = sl_config_get(cfg, "batch_rows");
        rc = sl_config_error(n, "'batch_rows' must be >= 1, got %s",
                             sql_conf_text(n));
    }
    if (sl_config_get_int(cfg, "busy_timeout", 5000, &o->busy_timeout_ms) <
        0) {
        rc = -EINVAL;
    } else if (o->busy_timeout_ms < 0 || o->busy_timeout_ms > INT32_MAX) {
        n = sl_config_get(cfg, "busy_timeout");
        rc = sl_config_error(n, "'busy_timeout' must be 0..%d milliseconds, "
                                "got %s", INT32_MAX, sql_conf_text(n));
    }
    if (rc < 0)
        sq_opts_free(o);
    return rc;
}

/* ---- SQL text ------------------------------------------------------------ */

static void s_key_list(FILE *f, const sq_opts_t *o)
{
    const char *sep = "";
    for (size_t i = 0; i < o->ncols; i++) {
        if (!o->cols[i].is_key)
            continue;
        fputs(sep, f);
        sql_ident(f, o->cols[i].name);
        sep = ", ";
    }
}

char *sq_sql_create(const sq_opts_t *o)
{
    static const char *const decl[] = {"INTEGER", "REAL", "TEXT", "BLOB",
                                       "TEXT"};
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    if (!f)
        return NULL;
    fputs("CREATE TABLE IF NOT EXISTS ", f);
    sql_ident(f, o->table);
    fputs(" (", f);
    for (size_t i = 0; i < o->ncols; i++) {
        if (i)
            fputs(", ", f);
        sql_ident(f, o->cols[i].name);
        fprintf(f, " %s", decl[o->cols[i].type]);
    }
    if (o->nkeys) {
        fputs(", PRIMARY KEY (", f);
        s_key_list(f, o);
        fputc(')', f);
    }
    fputc(')', f);
    return sql_close(f, &buf);
}

char *sq_sql_insert(const sq_opts_t *o)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    if (!f)
        return NULL;
    fputs("INSERT INTO ", f);
    sql_ident(f, o->table);
    fputs(" (", f);
    for (size_t i = 0; i < o->ncols; i++) {
        if (i)
            fputs(", ", f);
        sql_ident(f, o->cols[i].name);
    }
    fputs(") VALUES (", f);
    for (size_t i = 0; i < o->ncols; i++)
        fputs(i ? ", ?" : "?", f);
    fputc(')', f);
    if (o->nkeys) {
        fputs(" ON CONFLICT (", f);
        s_key_list(f, o);
        fputs(")", f);
        if (o->nkeys == o->ncols) {
            fputs(" DO NOTHING", f);
        } else {
            fputs(" DO UPDATE SET ", f);
            sql_update_set(f, o->cols, o->ncols, "excluded.");
        }
    }
    return sql_close(f, &buf);
}
