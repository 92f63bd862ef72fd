/*
 * upper: uppercases (ASCII) the string value of one top-level field.
 *
 *   config:  field  the field's name (default "name")
 *
 * A record without the field passes unchanged; a record whose field is not
 * a string fails with a message naming the field. Written against
 * <sluice/stage.h> only; build it with
 *
 *   cc -shared -fPIC -O2 -I framework/include -o /tmp/plugins/upper.so \
 *      docs/examples/upper.c
 */
#include <sluice/stage.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct upper {
    const char *field; /* points into the config tree, which outlives us */
    size_t field_len;
} upper_t;

static const char *const upper_keys[] = {"field", NULL};

/* One parser for validate and init, so they can never disagree. It only
 * reads cfg: no side effects. */
static int upper_parse(const sl_config_t *cfg, upper_t *u)
{
    const sl_config_t *node = sl_config_get(cfg, "field");
    if (node && sl_config_type(node) != SL_CONFIG_STRING)
        return sl_config_error(node, "'field' must be a string (a field "
                                     "name), not %s",
                               sl_config_str(node) ? sl_config_str(node)
                                                   : "a list or map");
    u->field = node ? sl_config_str(node) : "name";
    if (!u->field[0])
        return sl_config_error(node, "'field' must not be empty");
    u->field_len = strlen(u->field);
    return 0;
}

static int upper_validate(const sl_config_t *cfg)
{
    upper_t u;
    return upper_parse(cfg, &u);
}

static int upper_init(sl_ctx_t *ctx, const sl_config_t *cfg, void **state)
{
    (void)ctx;
    upper_t *u = malloc(sizeof(*u));
    if (!u)
        return -ENOMEM;
    int rc = upper_parse(cfg, u);
    if (rc) {
        free(u);
        return rc;
    }
    *state = u;
    return 0;
}

static const char *upper_type_name(msgpack_object_type t)
{
    switch (t) {
    case MSGPACK_OBJECT_NIL: return "null";
    case MSGPACK_OBJECT_BOOLEAN: return "a boolean";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "an integer";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return "a float";
    case MSGPACK_OBJECT_ARRAY: return "a list";
    case MSGPACK_OBJECT_MAP: return "a map";
    default: return "binary";
    }
}

static int upper_process(void *state, sl_ctx_t *ctx, sl_record_t *rec)
{
    const upper_t *u = state;
    const msgpack_object *map;
    if (sl_record_map(rec, &map) != 0)
        return sl_ctx_error(ctx, "record is not a msgpack map");

    const msgpack_object *val = sl_map_getn(map, u->field, u->field_len);
    if (!val) {
        /* Nothing to change: forward the bytes as they came. */
        size_t len;
        const void *data = sl_record_data(rec, &len);
        return sl_emit_raw(ctx, data, len);
    }
    if (val->type != MSGPACK_OBJECT_STR)
        return sl_ctx_error(ctx, "field '%s' is %s, not a string", u->field,
                            upper_type_name(val->type));

    /* The uppercased copy lives in the record's zone: freed by the host
     * when this call returns, no malloc per record. */
    uint32_t n = val->via.str.size;
    char *up = msgpack_zone_malloc(sl_record_zone(rec), n ? n : 1);
    if (!up)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        char c = val->via.str.ptr[i];
        up[i] = c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
    }

    /* Pack the output map straight into the outgoing batch. If anything
     * fails before sl_emit_commit(), returning drops the partial record. */
    msgpack_packer *pk = sl_emit_begin(ctx);
    if (!pk)
        return -ENOBUFS;
    const msgpack_object_kv *kv = map->via.map.ptr;
    int rc = msgpack_pack_map(pk, map->via.map.size);
    for (uint32_t i = 0; rc == 0 && i < map->via.map.size; i++) {
        rc = msgpack_pack_object(pk, kv[i].key);
        if (rc == 0 && &kv[i].val == val) {
            rc = msgpack_pack_str(pk, n);
            if (rc == 0)
                rc = msgpack_pack_str_body(pk, up, n);
        } else if (rc == 0) {
            rc = msgpack_pack_object(pk, kv[i].val);
        }
    }
    if (rc != 0)
        return -ENOMEM;
    return sl_emit_commit(ctx);
}

static void upper_fini(void *state)
{
    free(state);
}

SL_STAGE_DEFINE(.name = "upper",
                .summary = "uppercases the string value of one field",
                .kind = SL_STAGE_TRANSFORM,
                .config_keys = upper_keys,
                .validate = upper_validate,
                .init = upper_init,
                .process = upper_process,
                .fini = upper_fini);
