/*
 * regex_parse: matches a string field against a POSIX extended regular
 * expression (or a built-in access log format) and puts the capture
 * groups into the record as named, typed fields.
 *
 * The pattern is compiled once per worker. The string is matched where it
 * lies in the record (REG_STARTEND: no copy, no NUL needed), the groups
 * are converted into a per-worker array first (so a conversion error
 * leaves nothing half-emitted), and the output is packed straight into
 * the emitted record.
 */
#include "record_map.h"
#include "rp_conf.h"
#include "rp_fast.h"
#include "rp_value.h"

#include <sluice/stage.h>

#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes of a value quoted in an error message. */
#define RP_QUOTE_MAX 80

typedef struct rp_state {
    rp_conf_t c;
    regex_t re;
    int re_ready;
    regmatch_t *m; /* n_groups + 1 */
    rp_val_t *vals; /* n_groups */
    rp_conv_t conv;
    int conv_ready;
    int fast; /* 0: regexec; 1 common, 2 combined: rp_fast.c */
} rp_state_t;

static const char *const s_type_names[] = {"a string", "an int", "a float",
                                           "a bool", "a time"};

static int rp_validate(const sl_config_t *cfg)
{
    rp_conf_t c;
    int rc = rp_conf_parse(cfg, &c, NULL);

    if (rc == 0)
        rp_conf_fini(&c);
    return rc;
}

static void rp_fini(void *state)
{
    rp_state_t *st = state;

    if (!st)
        return;
    if (st->conv_ready)
        rp_conv_fini(&st->conv);
    if (st->re_ready)
        regfree(&st->re);
    free(st->m);
    free(st->vals);
    rp_conf_fini(&st->c);
    free(st);
}

static int rp_init(sl_ctx_t *ctx, const sl_config_t *cfg, void **state)
{
    rp_state_t *st = calloc(1, sizeof(*st));
    int rc;

    (void)ctx;
    if (!st)
        return -ENOMEM;
    rc = rp_conf_parse(cfg, &st->c, &st->re);
    if (rc < 0) {
        free(st);
        return rc;
    }
    st->re_ready = 1;
    if (st->c.preset)
        st->fast = strcmp(st->c.preset, "combined") ? 1 : 2;
    rc = -ENOMEM;
    st->m = calloc(st->c.n_groups + 1, sizeof(*st->m));
    st->vals = calloc(st->c.n_groups, sizeof(*st->vals));
    if (!st->m || !st->vals)
        goto fail;
    if ((rc = rp_conv_init(&st->conv, st->c.time_format)) < 0)
        goto fail;
    st->conv_ready = 1;
    *state = st;
    return 0;

fail:
    rp_fini(st);
    return rc;
}

/* ---- messages ------------------------------------------------------------ */

static const char *s_kind_name(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return "null";
    case MSGPACK_OBJECT_BOOLEAN: return "a boolean";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return "a number";
    case MSGPACK_OBJECT_ARRAY: return "an array";
    case MSGPACK_OBJECT_MAP: return "a map";
    default: return "binary data";
    }
}

/* How many of the n bytes at s to quote: at most RP_QUOTE_MAX, not
 * cutting a UTF-8 sequence. */
static int s_quote_len(const char *s, size_t n)
{
    if (n <= RP_QUOTE_MAX)
        return (int)n;
    n = RP_QUOTE_MAX;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    return (int)n;
}

static int s_mismatch(rp_state_t *st, sl_ctx_t *ctx, const char *s, size_t n)
{
    int q = s_quote_len(s, n);

    if (st->c.drop_mismatch)
        return 0;
    return sl_ctx_fail(ctx, "field '%s' does not match the pattern%s%s%s: "
                            "'%.*s'%s", st->c.field,
                       st->c.preset ? " (preset " : "",
                       st->c.preset ? st->c.preset : "",
                       st->c.preset ? ")" : "", q, s,
                       (size_t)q < n ? "..." : "");
}

static int s_bad_value(rp_state_t *st, sl_ctx_t *ctx, const rp_group_t *g,
                       const char *s, size_t n, int rc)
{
    int q = s_quote_len(s, n);
    const char *more = (size_t)q < n ? "..." : "";

    if (g->type == RP_TIME)
        return sl_ctx_fail(ctx, "field '%s': '%.*s'%s does not match "
                                "time_format '%s'", g->name, q, s, more,
                           st->c.time_format);
    if (rc == -ERANGE)
        return sl_ctx_fail(ctx, "field '%s': '%.*s'%s is out of the int64 "
                                "range", g->name, q, s, more);
    return sl_ctx_fail(ctx, "field '%s': '%.*s'%s is not %s", g->name, q, s,
                       more, s_type_names[g->type]);
}

/* ---- output -------------------------------------------------------------- */

static int s_is_captured(const rp_state_t *st, const msgpack_object *k)
{
    if (k->type != MSGPACK_OBJECT_STR)
        return 0;
    for (size_t i = 0; i < st->c.n_groups; i++) {
        const rp_group_t *g = &st->c.groups[i];
        if (g->name && g->len == k->via.str.size &&
            !memcmp(g->name, k->via.str.ptr, g->len))
            return 1;
    }
    return 0;
}

static void s_pack_val(msgpack_packer *pk, const rp_val_t *v)
{
    switch (v->kind) {
    case RP_V_STR: msgpack_pack_str_with_body(pk, v->s, v->n); break;
    case RP_V_INT: msgpack_pack_int64(pk, v->i); break;
    case RP_V_FLOAT: msgpack_pack_double(pk, v->f); break;
    case RP_V_BOOL:
        if (v->i)
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
        break;
    default: msgpack_pack_nil(pk); break;
    }
}

/* The captured fields take the source field's place; record fields of the
 * same name as one are dropped (the captured value wins). */
static int s_emit(rp_state_t *st, sl_ctx_t *ctx, const msgpack_object *map,
                  uint32_t src)
{
    const msgpack_object_kv *kv = map->via.map.ptr;
    uint32_t n = map->via.map.size;
    int keep = st->c.keep_source && !s_is_captured(st, &kv[src].key);
    size_t count = st->c.n_named + (size_t)keep;

    for (uint32_t i = 0; i < n; i++)
        count += i != src && !s_is_captured(st, &kv[i].key);
    msgpack_packer *pk = sl_emit_begin(ctx);
    if (!pk)
        return sl_ctx_error(ctx, "field '%s': cannot emit the record",
                            st->c.field);
    msgpack_pack_map(pk, count);
    for (uint32_t i = 0; i < n; i++) {
        if (i != src) {
            if (!s_is_captured(st, &kv[i].key)) {
                msgpack_pack_object(pk, kv[i].key);
                msgpack_pack_object(pk, kv[i].val);
            }
            continue;
        }
        if (keep) {
            msgpack_pack_object(pk, kv[i].key);
            msgpack_pack_object(pk, kv[i].val);
        }
        for (size_t g = 0; g < st->c.n_groups; g++) {
            const rp_group_t *grp = &st->c.groups[g];
            if (!grp->name)
                continue;
            msgpack_pack_str_with_body(pk, grp->name, grp->len);
            s_pack_val(pk, &st->vals[g]);
        }
    }
    return sl_emit_commit(ctx);
}

static int rp_process(void *state, sl_ctx_t *ctx, sl_record_t *rec)
{
    rp_state_t *st = state;
    const msgpack_object *map;
    uint32_t src;

    int map_rc = stage_record_map(ctx, rec, &map);
    if (map_rc < 0)
        return map_rc;
    for (src = 0; src < map->via.map.size; src++) {
        const msgpack_object *k = &map->via.map.ptr[src].key;
        if (k->type == MSGPACK_OBJECT_STR &&
            k->via.str.size == st->c.field_len &&
            !memcmp(k->via.str.ptr, st->c.field, st->c.field_len))
            break;
    }
    if (src == map->via.map.size)
        return sl_ctx_fail(ctx, "field '%s' is missing", st->c.field);
    const msgpack_object *val = &map->via.map.ptr[src].val;
    if (val->type != MSGPACK_OBJECT_STR)
        return sl_ctx_fail(ctx, "field '%s' is %s, not a string", st->c.field,
                           s_kind_name(val));

    /* An empty string may come without a pointer. */
    const char *s = val->via.str.size ? val->via.str.ptr : "";
    size_t n = val->via.str.size;
    int rc;
    if (st->fast) {
        rc = rp_fast_access_log(st->fast == 2, s, n, st->m) ? 0
                                                            : REG_NOMATCH;
    } else {
        st->m[0].rm_so = 0;
        st->m[0].rm_eo = (regoff_t)n;
        rc = regexec(&st->re, s, st->c.n_groups + 1, st->m, REG_STARTEND);
    }
    if (rc == REG_NOMATCH)
        return s_mismatch(st, ctx, s, n);
    if (rc != 0)
        return sl_ctx_error(ctx, "field '%s': regexec failed (%d)",
                            st->c.field, rc);
    for (size_t g = 0; g < st->c.n_groups; g++) {
        const rp_group_t *grp = &st->c.groups[g];
        const regmatch_t *m = &st->m[g + 1];
        if (!grp->name)
            continue;
        if (m->rm_so < 0) { /* an optional group that took no part */
            st->vals[g].kind = RP_V_NIL;
            continue;
        }
        const char *v = s + m->rm_so;
        size_t len = (size_t)(m->rm_eo - m->rm_so);
        rc = rp_convert(&st->conv, grp->type, v, len, &st->vals[g]);
        if (rc < 0)
            return s_bad_value(st, ctx, grp, v, len, rc);
    }
    return s_emit(st, ctx, map, src);
}

SL_STAGE_DEFINE(.name = "regex_parse",
                .summary = "parses a string field with a POSIX regex or "
                           "an access log format",
                .kind = SL_STAGE_TRANSFORM, .config_keys = rp_conf_keys,
                .validate = rp_validate, .init = rp_init,
                .process = rp_process, .fini = rp_fini);
