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

static int s_parse_type(const sl_config_t *n, const char *col, sq_type_t *t)
{
    const char *s = sl_config_str(n);

    for (size_t i = 0; s && i < sizeof(s_types) / sizeof(s_types[0]); i++) {
        if (!strcmp(s, s_types[i])) {
            *t = (sq_type_t)i;
            return 0;
        }
    }
    return sl_config_error(n, "column '%s': unknown type '%s' (want "
                              "integer, real, text, blob or json)",
                           col, s_text(n));
}

/* One entry of `columns`: a type name, or {type, field, required}. */
static int s_parse_col(const sl_config_t *v, sq_col_t *c)
{
    const sl_config_t *n;
    int rc = 0;

    if (sl_config_type(v) != SL_CONFIG_MAP)
        return s_parse_type(v, c->name, &c->type);
    for (size_t i = 0; i < sl_config_len(v); i++) {
        const char *k = sl_config_key_at(v, i);
        if (strcmp(k, "type") && strcmp(k, "field") && strcmp(k, "required"))
            rc = sl_config_error(sl_config_value_at(v, i),
                                 "column '%s': unknown key '%s' (want type, "
                                 "field, required)", c->name, k);
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
    return rc;
}

static int s_parse_columns(const sl_config_t *cfg, sq_opts_t *o)
{
    const sl_config_t *node = sl_config_get(cfg, "columns");
    size_t n = sl_config_len(node);
    int rc = 0;

    if (!node)
        return sl_config_error(cfg, "'columns' is required (a map of "
                                    "column: type)");
    if (sl_config_type(node) != SL_CONFIG_MAP || n == 0)
        return sl_config_error(node, "'columns' must be a non-empty map of "
                                     "column: type");
    o->cols = calloc(n, sizeof(*o->cols));
    if (!o->cols)
        return -ENOMEM;
    o->ncols = n;
    for (size_t i = 0; i < n; i++) {
        sq_col_t *c = &o->cols[i];
        c->name = sl_config_key_at(node, i);
        c->name_len = strlen(c->name);
        if (!c->name_len) {
            rc = sl_config_error(sl_config_value_at(node, i),
                                 "column names must not be empty");
            continue;
        }
        if (s_parse_col(sl_config_value_at(node, i), c) < 0)
            rc = -EINVAL;
    }
    return rc;
}

static int s_parse_key(const sl_config_t *cfg, sq_opts_t *o)
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
        sq_col_t *c = NULL;
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
    else if (!*s_text(n))
        rc = sl_config_error(n, "'path' must not be empty");

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
    if (sl_config_get_int(cfg, "batch_rows", 1000, &o->batch_rows) < 0) {
        rc = -EINVAL;
    } else if (o->batch_rows < 1) {
        n = sl_config_get(cfg, "batch_rows");
        rc = sl_config_error(n, "'batch_rows' must be >= 1, got %s",
                             s_text(n));
    }
    if (sl_config_get_int(cfg, "busy_timeout", 5000, &o->busy_timeout_ms) <
        0) {
        rc = -EINVAL;
    } else if (o->busy_timeout_ms < 0 || o->busy_timeout_ms > INT32_MAX) {
        n = sl_config_get(cfg, "busy_timeout");
        rc = sl_config_error(n, "'busy_timeout' must be 0..%d milliseconds, "
                                "got %s", INT32_MAX, s_text(n));
    }
    if (rc < 0)
        sq_opts_free(o);
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

static void s_key_list(FILE *f, const sq_opts_t *o)
{
    const char *sep = "";
    for (size_t i = 0; i < o->ncols; i++) {
        if (!o->cols[i].is_key)
            continue;
        fputs(sep, f);
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
    s_ident(f, o->table);
    fputs(" (", f);
    for (size_t i = 0; i < o->ncols; i++) {
        if (i)
            fputs(", ", f);
        s_ident(f, o->cols[i].name);
        fprintf(f, " %s", decl[o->cols[i].type]);
    }
    if (o->nkeys) {
        fputs(", PRIMARY KEY (", f);
        s_key_list(f, o);
        fputc(')', f);
    }
    fputc(')', f);
    return s_close(f, &buf);
}

char *sq_sql_insert(const sq_opts_t *o)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    const char *sep = "";

    if (!f)
        return NULL;
    fputs("INSERT INTO ", f);
    s_ident(f, o->table);
    fputs(" (", f);
    for (size_t i = 0; i < o->ncols; i++) {
        if (i)
            fputs(", ", f);
        s_ident(f, o->cols[i].name);
    }
    fputs(") VALUES (", f);
    for (size_t i = 0; i < o->ncols; i++)
        fputs(i ? ", ?" : "?", f);
    fputc(')', f);
    if (o->nkeys) {
        fputs(" ON CONFLICT (", f);
        s_key_list(f, o);
        fputs(")", f);
        if (o->nkeys == o->ncols)
            fputs(" DO NOTHING", f);
        else
            fputs(" DO UPDATE SET ", f);
        for (size_t i = 0; i < o->ncols && o->nkeys < o->ncols; i++) {
            if (o->cols[i].is_key)
                continue;
            fputs(sep, f);
            s_ident(f, o->cols[i].name);
            fputs(" = excluded.", f);
            s_ident(f, o->cols[i].name);
            sep = ", ";
        }
    }
    return s_close(f, &buf);
}
