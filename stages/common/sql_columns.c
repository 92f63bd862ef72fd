#include "sql_columns.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const char *sql_conf_text(const sl_config_t *n)
{
    const char *s = sl_config_str(n);
    return s ? s : "a sequence or map";
}

int sql_conf_nonempty(const sl_config_t *n)
{
    const char *s = sl_config_str(n);
    return n && s && *s && sl_config_type(n) == SL_CONFIG_STRING;
}

static int s_parse_type(const sql_cols_spec_t *spec, const sl_config_t *n,
                        const char *col, int *t)
{
    const char *s = sl_config_str(n);

    for (size_t i = 0; s && i < spec->ntypes; i++) {
        if (!strcmp(s, spec->types[i])) {
            *t = (int)i;
            return 0;
        }
    }
    return sl_config_error(n, "column '%s': unknown type '%s' (want %s)",
                           col, sql_conf_text(n), spec->types_want);
}

/* One entry of `columns`: a type name, or {type, field, required, ...}. */
static int s_parse_col(const sql_cols_spec_t *spec, const sl_config_t *v,
                       sql_col_t *c)
{
    const sl_config_t *n;
    int rc = 0;

    c->per_second = 1;
    if (sl_config_type(v) != SL_CONFIG_MAP)
        return s_parse_type(spec, v, c->name, &c->type);
    for (size_t i = 0; i < sl_config_len(v); i++) {
        const char *k = sl_config_key_at(v, i);
        if (strcmp(k, "type") && strcmp(k, "field") && strcmp(k, "required") &&
            (!spec->extra_key || strcmp(k, spec->extra_key)))
            rc = sl_config_error(sl_config_value_at(v, i),
                                 "column '%s': unknown key '%s' (want %s)",
                                 c->name, k, spec->keys_want);
    }
    n = sl_config_get(v, "type");
    if (!n)
        rc = sl_config_error(v, "column '%s': 'type' is required", c->name);
    else if (s_parse_type(spec, n, c->name, &c->type) < 0)
        rc = -EINVAL;
    n = sl_config_get(v, "field");
    if (n && !sql_conf_nonempty(n))
        rc = sl_config_error(n, "column '%s': 'field' must be a non-empty "
                                "field path", c->name);
    else if (n)
        c->field = sl_config_str(n);
    if (sl_config_get_bool(v, "required", 0, &c->required) < 0)
        rc = -EINVAL;
    return spec->extra ? spec->extra(v, c, rc) : rc;
}

/* The i-th column of `columns`: from a map entry, or from a list item that
 * is a map of one entry. */
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

/* Whether the column at cols[i] repeats an earlier name; reports it. */
static int s_listed_twice(const sql_col_t *cols, size_t i,
                          const sl_config_t *v)
{
    for (size_t j = 0; j < i; j++)
        if (cols[j].name && !strcmp(cols[j].name, cols[i].name))
            return sl_config_error(v, "column '%s' is listed twice",
                                   cols[i].name);
    return 0;
}

/* `columns`: 0, -EINVAL (reported) or -ENOMEM. */
static int s_parse_columns(const sl_config_t *cfg,
                           const sql_cols_spec_t *spec, sql_col_t **cols,
                           size_t *ncols)
{
    const sl_config_t *node = sl_config_get(cfg, "columns");
    size_t n = sl_config_len(node);
    int type, rc = 0;

    *cols = NULL;
    *ncols = 0;
    if (!node)
        return sl_config_error(cfg, "'columns' is required (a map of "
                                    "column: type)");
    type = sl_config_type(node);
    if ((type != SL_CONFIG_MAP && (!spec->lists || type != SL_CONFIG_SEQ)) ||
        n == 0)
        return sl_config_error(node, spec->lists
                                         ? "'columns' must be a non-empty map "
                                           "(or list) of column: type"
                                         : "'columns' must be a non-empty map "
                                           "of column: type");
    *cols = calloc(n, sizeof(**cols));
    if (!*cols)
        return -ENOMEM;
    *ncols = n;
    for (size_t i = 0; i < n; i++) {
        sql_col_t *c = &(*cols)[i];
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
        if (spec->unique && s_listed_twice(*cols, i, v) < 0)
            rc = -EINVAL;
        if (spec->reserved && !strcmp(c->name, spec->reserved))
            rc = sl_config_error(v, "column name '%s' is reserved for %s",
                                 c->name, spec->reserved_for);
        if (s_parse_col(spec, v, c) < 0)
            rc = -EINVAL;
    }
    return rc;
}

static int s_parse_key(const sl_config_t *cfg, sql_col_t *cols,
                       size_t ncols, size_t *nkeys)
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
        sql_col_t *c = NULL;
        for (size_t j = 0; s && j < ncols; j++)
            if (cols[j].name && !strcmp(cols[j].name, s))
                c = &cols[j];
        if (!c) {
            rc = sl_config_error(item, "'key' names '%s', which is not in "
                                       "'columns'", sql_conf_text(item));
        } else if (c->is_key) {
            rc = sl_config_error(item, "'key' names '%s' twice", s);
        } else {
            c->is_key = 1;
            c->required = 1; /* NULLs never conflict: no upsert for them */
            (*nkeys)++;
        }
    }
    return rc;
}

int sql_table_parse(const sl_config_t *cfg, const sql_cols_spec_t *spec,
                    const char **table, sql_col_t **cols, size_t *ncols,
                    size_t *nkeys)
{
    const sl_config_t *n = sl_config_get(cfg, "table");
    int rc = 0;

    if (!n)
        rc = sl_config_error(cfg, "'table' is required (the table to write)");
    else if (!sql_conf_nonempty(n))
        rc = sl_config_error(n, "'table' must be a non-empty name");
    else
        *table = sl_config_str(n);

    if (s_parse_columns(cfg, spec, cols, ncols) < 0)
        rc = -EINVAL;
    if (*cols && s_parse_key(cfg, *cols, *ncols, nkeys) < 0)
        rc = -EINVAL;
    return rc;
}

void sql_ident(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

void sql_update_set(FILE *f, const sql_col_t *cols, size_t ncols,
                    const char *excluded)
{
    const char *sep = "";

    for (size_t i = 0; i < ncols; i++) {
        if (cols[i].is_key)
            continue;
        fputs(sep, f);
        sql_ident(f, cols[i].name);
        fprintf(f, " = %s", excluded);
        sql_ident(f, cols[i].name);
        sep = ", ";
    }
}

char *sql_close(FILE *f, char **buf)
{
    if (fclose(f) != 0) {
        free(*buf);
        return NULL;
    }
    return *buf;
}

const char *sql_value_kind(const msgpack_object *v)
{
    switch (v->type) {
    case MSGPACK_OBJECT_BOOLEAN: return "a boolean";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "an integer";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return "a number";
    case MSGPACK_OBJECT_STR: return "a string";
    case MSGPACK_OBJECT_BIN: return "bytes";
    case MSGPACK_OBJECT_ARRAY: return "an array";
    case MSGPACK_OBJECT_MAP: return "an object";
    default: return "an extension value";
    }
}

int sql_col_mismatch(sl_ctx_t *ctx, const sql_col_t *c,
                     const char *type_name, const msgpack_object *v)
{
    return sl_ctx_fail(ctx, "field '%s' for column '%s' (%s): got %s",
                       c->field ? c->field : c->name, c->name, type_name,
                       sql_value_kind(v));
}
