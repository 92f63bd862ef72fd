/*
 * json_parse: parses a string field holding JSON and merges the object's
 * keys into the record (or puts the value under `target`).
 *
 * The text is decoded once into a per-worker scratch buffer; its msgpack
 * bytes are then copied into the output as they are, so the parsed values
 * are never packed twice. Only the record's own fields are re-packed.
 */
#include "record_map.h"

#include <sluice/json.h>
#include <sluice/stage.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct jp_state {
    const char *field; /* points into the config tree, which outlives us */
    size_t field_len;
    const char *target; /* NULL: merge into the top level */
    size_t target_len;
    int keep_source;
    msgpack_sbuffer scratch; /* the parsed value as msgpack */
    msgpack_packer spk;
} jp_state_t;

static const char *const s_keys[] = {"field", "target", "keep_source", NULL};

/* Shared by validate and init (st may be a throwaway). */
static int s_parse(const sl_config_t *cfg, jp_state_t *st)
{
    int rc = 0;

    if (sl_config_get_str(cfg, "field", "line", &st->field) < 0)
        rc = -EINVAL;
    else if (!*st->field)
        rc = sl_config_error(sl_config_get(cfg, "field"),
                             "'field' must not be empty");
    if (sl_config_get_str(cfg, "target", NULL, &st->target) < 0)
        rc = -EINVAL;
    else if (st->target && !*st->target)
        rc = sl_config_error(sl_config_get(cfg, "target"),
                             "'target' must not be empty (leave it out to "
                             "merge the parsed object into the record)");
    if (sl_config_get_bool(cfg, "keep_source", 0, &st->keep_source) < 0)
        rc = -EINVAL;
    if (rc == 0) {
        st->field_len = strlen(st->field);
        st->target_len = st->target ? strlen(st->target) : 0;
    }
    return rc;
}

static int jp_validate(const sl_config_t *cfg)
{
    jp_state_t tmp;
    memset(&tmp, 0, sizeof(tmp));
    return s_parse(cfg, &tmp);
}

static int jp_init(sl_ctx_t *ctx, const sl_config_t *cfg, void **state)
{
    (void)ctx;
    jp_state_t *st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    int rc = s_parse(cfg, st);
    if (rc < 0) {
        free(st);
        return rc;
    }
    msgpack_sbuffer_init(&st->scratch);
    msgpack_packer_init(&st->spk, &st->scratch, msgpack_sbuffer_write);
    *state = st;
    return 0;
}

static void jp_fini(void *state)
{
    jp_state_t *st = state;
    if (!st)
        return;
    msgpack_sbuffer_destroy(&st->scratch);
    free(st);
}

static int s_key_is(const msgpack_object *k, const char *s, size_t n)
{
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
           memcmp(k->via.str.ptr, s, n) == 0;
}

static int s_map_has(const msgpack_object *map, const msgpack_object *key)
{
    if (key->type != MSGPACK_OBJECT_STR)
        return 0;
    for (uint32_t i = 0; i < map->via.map.size; i++)
        if (s_key_is(&map->via.map.ptr[i].key, key->via.str.ptr,
                     key->via.str.size))
            return 1;
    return 0;
}

static const char *s_type_name(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return "null";
    case MSGPACK_OBJECT_BOOLEAN: return "a boolean";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return "a number";
    case MSGPACK_OBJECT_STR: return "a string";
    case MSGPACK_OBJECT_ARRAY: return "an array";
    case MSGPACK_OBJECT_MAP: return "an object";
    default: return "binary data";
    }
}

/* "FILE:LINENO: " when the record says where it came from (file_source
 * with_position), so a bad line can be found; "" otherwise. */
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

static int s_pack_kv(msgpack_packer *pk, const msgpack_object_kv *kv)
{
    if (msgpack_pack_object(pk, kv->key) < 0 ||
        msgpack_pack_object(pk, kv->val) < 0)
        return -ENOMEM;
    return 0;
}

/* Copies already-packed msgpack bytes into the output. */
static void s_pack_raw(msgpack_packer *pk, const void *p, size_t n)
{
    pk->callback(pk->data, p, n);
}

static int s_emit_target(jp_state_t *st, sl_ctx_t *ctx,
                         const msgpack_object *map, uint32_t src)
{
    const msgpack_object_kv *kv = map->via.map.ptr;
    uint32_t n = map->via.map.size, count = 1;

    for (uint32_t i = 0; i < n; i++)
        count += !(s_key_is(&kv[i].key, st->target, st->target_len) ||
                   (i == src && !st->keep_source));
    msgpack_packer *pk = sl_emit_begin(ctx);
    if (!pk)
        return sl_ctx_error(ctx, "field '%s': cannot emit the record",
                            st->field);
    msgpack_pack_map(pk, count);
    for (uint32_t i = 0; i < n; i++) {
        if (s_key_is(&kv[i].key, st->target, st->target_len) ||
            (i == src && !st->keep_source))
            continue;
        s_pack_kv(pk, &kv[i]);
    }
    msgpack_pack_str_with_body(pk, st->target, st->target_len);
    s_pack_raw(pk, st->scratch.data, st->scratch.size);
    return sl_emit_commit(ctx);
}

/* The parsed object's keys take the source field's place; record fields
 * with the same name as a parsed key are dropped (the parsed data wins). */
static int s_emit_merge(jp_state_t *st, sl_ctx_t *ctx, sl_record_t *rec,
                        const msgpack_object *map, uint32_t src)
{
    const msgpack_object_kv *kv = map->via.map.ptr;
    uint32_t n = map->via.map.size;
    msgpack_object parsed;

    if (msgpack_unpack(st->scratch.data, st->scratch.size, NULL,
                       sl_record_zone(rec), &parsed) != MSGPACK_UNPACK_SUCCESS)
        return sl_ctx_error(ctx, "field '%s': out of memory", st->field);
    int keep = st->keep_source && !s_map_has(&parsed, &kv[src].key);
    uint32_t count = parsed.via.map.size + (uint32_t)keep;
    for (uint32_t i = 0; i < n; i++)
        count += i != src && !s_map_has(&parsed, &kv[i].key);

    msgpack_packer *pk = sl_emit_begin(ctx);
    if (!pk)
        return sl_ctx_error(ctx, "field '%s': cannot emit the record",
                            st->field);
    msgpack_pack_map(pk, count);
    for (uint32_t i = 0; i < n; i++) {
        if (i == src) {
            if (keep)
                s_pack_kv(pk, &kv[i]);
            /* The parsed entries, as packed by the decoder. */
            const unsigned char *p = (const unsigned char *)st->scratch.data;
            size_t hlen = (p[0] & 0xf0) == 0x80 ? 1 : p[0] == 0xde ? 3 : 5;
            s_pack_raw(pk, p + hlen, st->scratch.size - hlen);
        } else if (!s_map_has(&parsed, &kv[i].key)) {
            s_pack_kv(pk, &kv[i]);
        }
    }
    return sl_emit_commit(ctx);
}

static int jp_process(void *state, sl_ctx_t *ctx, sl_record_t *rec)
{
    jp_state_t *st = state;
    const msgpack_object *map;
    char where[512], err[256];
    uint32_t src;

    int map_rc = stage_record_map(ctx, rec, &map);
    if (map_rc < 0)
        return map_rc;
    for (src = 0; src < map->via.map.size; src++)
        if (s_key_is(&map->via.map.ptr[src].key, st->field, st->field_len))
            break;
    if (src == map->via.map.size)
        return sl_ctx_fail(ctx, "%sfield '%s' is missing",
                           s_where(map, where, sizeof(where)), st->field);
    const msgpack_object *val = &map->via.map.ptr[src].val;
    if (val->type != MSGPACK_OBJECT_STR)
        return sl_ctx_fail(ctx, "%sfield '%s' is %s, not a string",
                           s_where(map, where, sizeof(where)), st->field,
                           s_type_name(val));

    st->scratch.size = 0;
    int rc = sl_json_decode(val->via.str.ptr, val->via.str.size, &st->spk,
                            err, sizeof(err));
    if (rc == -EBADMSG)
        return sl_ctx_fail(ctx, "%sfield '%s': invalid JSON: %s",
                           s_where(map, where, sizeof(where)), st->field,
                           err);
    if (rc < 0)
        return sl_ctx_error(ctx, "field '%s': %s", st->field, strerror(-rc));
    if (st->target)
        return s_emit_target(st, ctx, map, src);
    unsigned char head = (unsigned char)st->scratch.data[0];
    if (!((head & 0xf0) == 0x80 || head == 0xde || head == 0xdf)) {
        msgpack_object tmp = {.type = MSGPACK_OBJECT_NIL};
        (void)msgpack_unpack(st->scratch.data, st->scratch.size, NULL,
                       sl_record_zone(rec), &tmp);
        return sl_ctx_fail(ctx, "%sfield '%s': JSON value is %s, not an "
                                 "object (set 'target' to keep it under a "
                                 "key)",
                           s_where(map, where, sizeof(where)), st->field,
                           s_type_name(&tmp));
    }
    return s_emit_merge(st, ctx, rec, map, src);
}

SL_STAGE_DEFINE(.name = "json_parse",
                .summary = "parses a string field as JSON into the record",
                .kind = SL_STAGE_TRANSFORM, .config_keys = s_keys,
                .validate = jp_validate, .init = jp_init,
                .process = jp_process, .fini = jp_fini);
