/*
 * csv_parse: splits a string field holding one CSV row into named string
 * fields (`columns`), which take the source field's place in the record.
 *
 * libcsv keeps its field buffer and csv_row its row buffer across records,
 * so a record costs no allocation once they have grown.
 */
#include "record_map.h"

#include <sluice/stage.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv_row.h"

typedef struct cp_col {
    const char *name; /* points into the config tree, which outlives us */
    size_t len;
} cp_col_t;

typedef struct cp_opts {
    const char *field;
    size_t field_len;
    cp_col_t *cols; /* owned */
    size_t ncols;
    unsigned char delim;
    unsigned char quote;
    int keep_source;
} cp_opts_t;

typedef struct cp_state {
    cp_opts_t o;
    csv_row_t csv;
} cp_state_t;

static const char *const s_keys[] = {"field", "columns", "delimiter", "quote",
                                     "keep_source", NULL};

static int s_parse_char(const sl_config_t *cfg, const char *key, char dflt,
                        unsigned char *out)
{
    const char *s;

    if (sl_config_get_str(cfg, key, NULL, &s) < 0)
        return -EINVAL;
    if (!s) {
        *out = (unsigned char)dflt;
        return 0;
    }
    if (strlen(s) != 1 || s[0] == '\n' || s[0] == '\r')
        return sl_config_error(sl_config_get(cfg, key),
                               "'%s' must be a single character other than "
                               "a line break, got '%s'", key, s);
    *out = (unsigned char)s[0];
    return 0;
}

static int s_parse_columns(const sl_config_t *node, cp_opts_t *o)
{
    size_t n = sl_config_len(node);
    int rc = 0;

    if (sl_config_type(node) != SL_CONFIG_SEQ || n == 0)
        return sl_config_error(node, "'columns' must be a non-empty list of "
                                     "field names");
    o->cols = calloc(n, sizeof(*o->cols));
    if (!o->cols)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const sl_config_t *item = sl_config_at(node, i);
        const char *name = sl_config_str(item);
        if (sl_config_type(item) == SL_CONFIG_NULL || !name || !*name) {
            rc = sl_config_error(item, "'columns' entry %zu must be a "
                                       "non-empty field name", i + 1);
            continue;
        }
        o->cols[i].name = name;
        o->cols[i].len = strlen(name);
    }
    o->ncols = n;
    return rc;
}

static void s_opts_free(cp_opts_t *o)
{
    free(o->cols);
    memset(o, 0, sizeof(*o));
}

/* Shared by validate and init; reports every problem. On success the
 * caller owns o (s_opts_free); on failure nothing is left allocated. */
static int s_parse(const sl_config_t *cfg, cp_opts_t *o)
{
    const sl_config_t *n;
    int rc = 0;

    memset(o, 0, sizeof(*o));
    if (sl_config_get_str(cfg, "field", "line", &o->field) < 0)
        rc = -EINVAL;
    else if (!*o->field)
        rc = sl_config_error(sl_config_get(cfg, "field"),
                             "'field' must not be empty");
    else
        o->field_len = strlen(o->field);

    n = sl_config_get(cfg, "columns");
    if (!n)
        rc = sl_config_error(cfg, "'columns' is required (the names of the "
                                  "CSV fields, in order)");
    else if (s_parse_columns(n, o) < 0)
        rc = -EINVAL;

    if (s_parse_char(cfg, "delimiter", ',', &o->delim) < 0 ||
        s_parse_char(cfg, "quote", '"', &o->quote) < 0)
        rc = -EINVAL;
    else if (o->delim == o->quote)
        rc = sl_config_error(sl_config_get(cfg, "quote")
                                 ? sl_config_get(cfg, "quote")
                                 : sl_config_get(cfg, "delimiter"),
                             "'quote' and 'delimiter' must differ");
    if (sl_config_get_bool(cfg, "keep_source", 0, &o->keep_source) < 0)
        rc = -EINVAL;

    if (rc < 0)
        s_opts_free(o);
    return rc;
}

static int cp_validate(const sl_config_t *cfg)
{
    cp_opts_t o;
    int rc = s_parse(cfg, &o);

    if (rc == 0)
        s_opts_free(&o);
    return rc;
}

static void cp_fini(void *state)
{
    cp_state_t *st = state;

    if (!st)
        return;
    csv_row_fini(&st->csv);
    s_opts_free(&st->o);
    free(st);
}

static int cp_init(sl_ctx_t *ctx, const sl_config_t *cfg, void **state)
{
    (void)ctx;
    cp_state_t *st = calloc(1, sizeof(*st));
    int rc;

    if (!st)
        return -ENOMEM;
    rc = s_parse(cfg, &st->o);
    if (rc < 0)
        goto fail_state;
    rc = csv_row_init(&st->csv, st->o.delim, st->o.quote, st->o.ncols);
    if (rc < 0)
        goto fail_opts;
    *state = st;
    return 0;

fail_opts:
    s_opts_free(&st->o);
fail_state:
    free(st);
    return rc;
}

static int s_key_is(const msgpack_object *k, const char *s, size_t n)
{
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
           memcmp(k->via.str.ptr, s, n) == 0;
}

static int s_is_column(const cp_opts_t *o, const msgpack_object *key)
{
    for (size_t i = 0; i < o->ncols; i++)
        if (s_key_is(key, o->cols[i].name, o->cols[i].len))
            return 1;
    return 0;
}

/* "FILE:LINENO: " when the record says where it came from (file_source
 * with_position); "" otherwise. */
static const char *s_where(const msgpack_object *map, char *buf, size_t len)
{
    const msgpack_object *f = sl_map_getn(map, "file", 4);
    const msgpack_object *l = sl_map_getn(map, "lineno", 6);

    buf[0] = '\0';
    if (f && l && f->type == MSGPACK_OBJECT_STR &&
        l->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        snprintf(buf, len, "%.*s:%llu: ", (int)f->via.str.size,
                 f->via.str.ptr, (unsigned long long)l->via.u64);
    return buf;
}

/* Splits text into st->csv; 0 or a negative code after sl_ctx_error. */
static int s_split(cp_state_t *st, sl_ctx_t *ctx, const msgpack_object *map,
                   const char *text, size_t len)
{
    char where[512];
    const char *why = NULL;
    csv_row_t *r = &st->csv;

    csv_row_clear(r);
    int rc = csv_row_feed(r, text, len);
    if (rc == -EBADMSG) {
        why = "misplaced quote character";
    } else if (rc == 0) {
        rc = csv_row_end(r);
        if (rc == -EBADMSG)
            why = "unterminated quoted field";
    }
    if (rc < 0 && !why)
        return sl_ctx_error(ctx, "field '%s': %s", st->o.field,
                            strerror(-rc));
    if (why)
        return sl_ctx_fail(ctx, "%sfield '%s': invalid CSV: %s",
                           s_where(map, where, sizeof(where)), st->o.field,
                           why);
    if (r->rows > 1)
        return sl_ctx_fail(ctx, "%sfield '%s': holds %zu CSV rows, expected "
                                 "one", s_where(map, where, sizeof(where)),
                           st->o.field, r->rows);
    if (r->first != st->o.ncols)
        return sl_ctx_fail(ctx, "%sfield '%s': expected %zu fields, got %zu",
                           s_where(map, where, sizeof(where)), st->o.field,
                           st->o.ncols, r->first);
    return 0;
}

static int cp_process(void *state, sl_ctx_t *ctx, sl_record_t *rec)
{
    cp_state_t *st = state;
    const msgpack_object *map;
    char where[512];
    uint32_t src;

    int map_rc = stage_record_map(ctx, rec, &map);
    if (map_rc < 0)
        return map_rc;
    const msgpack_object_kv *kv = map->via.map.ptr;
    uint32_t n = map->via.map.size;
    for (src = 0; src < n; src++)
        if (s_key_is(&kv[src].key, st->o.field, st->o.field_len))
            break;
    if (src == n)
        return sl_ctx_fail(ctx, "%sfield '%s' is missing",
                           s_where(map, where, sizeof(where)), st->o.field);
    if (kv[src].val.type != MSGPACK_OBJECT_STR)
        return sl_ctx_fail(ctx, "%sfield '%s' is not a string",
                           s_where(map, where, sizeof(where)), st->o.field);
    int rc = s_split(st, ctx, map, kv[src].val.via.str.ptr,
                     kv[src].val.via.str.size);
    if (rc < 0)
        return rc;

    /* A kept source field named like a column is replaced by the column. */
    int keep = st->o.keep_source && !s_is_column(&st->o, &kv[src].key);
    uint32_t count = (uint32_t)st->o.ncols + (uint32_t)keep;
    for (uint32_t i = 0; i < n; i++)
        count += i != src && !s_is_column(&st->o, &kv[i].key);
    msgpack_packer *pk = sl_emit_begin(ctx);
    if (!pk)
        return sl_ctx_error(ctx, "field '%s': cannot emit the record",
                            st->o.field);
    msgpack_pack_map(pk, count);
    for (uint32_t i = 0; i < n; i++) {
        if (i == src) {
            if (keep) {
                msgpack_pack_object(pk, kv[i].key);
                msgpack_pack_object(pk, kv[i].val);
            }
            for (size_t c = 0; c < st->o.ncols; c++) {
                size_t len;
                const char *v = csv_row_field(&st->csv, c, &len);
                msgpack_pack_str_with_body(pk, st->o.cols[c].name,
                                           st->o.cols[c].len);
                msgpack_pack_str_with_body(pk, v, len);
            }
        } else if (!s_is_column(&st->o, &kv[i].key)) {
            msgpack_pack_object(pk, kv[i].key);
            msgpack_pack_object(pk, kv[i].val);
        }
    }
    return sl_emit_commit(ctx);
}

SL_STAGE_DEFINE(.name = "csv_parse",
                .summary = "splits a string field holding a CSV row into "
                           "named fields",
                .kind = SL_STAGE_TRANSFORM, .config_keys = s_keys,
                .validate = cp_validate, .init = cp_init,
                .process = cp_process, .fini = cp_fini);
