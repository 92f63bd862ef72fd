/*
 * filter: keeps the records for which an expression is true and drops the
 * rest. The expression is compiled once per worker at init; per record the
 * stage decodes the map, evaluates, and forwards the original bytes
 * unchanged (no re-encoding), so a kept record costs one copy.
 */
#include "expr.h"
#include "record_map.h"

#include <sluice/stage.h>

#include <errno.h>
#include <stdlib.h>

typedef struct filter {
    expr_t *expr;
} filter_t;

static const char *const s_keys[] = {"expr", NULL};

/* Shared by validate (out == NULL: check only) and init. */
static int parse_config(const sl_config_t *cfg, expr_t **out)
{
    const sl_config_t *node = cfg ? sl_config_get(cfg, "expr") : NULL;
    if (!node)
        return sl_config_error(cfg, "missing required key 'expr'");
    if (sl_config_type(node) != SL_CONFIG_STRING)
        return sl_config_error(node, "'expr' must be a string expression");
    char err[256];
    int rc = expr_compile(sl_config_str(node), out, err, sizeof err);
    if (rc == -ENOMEM)
        return sl_config_error(node, "expr: out of memory");
    if (rc < 0)
        return sl_config_error(node, "expr: %s", err);
    return 0;
}

static int filter_validate(const sl_config_t *cfg)
{
    return parse_config(cfg, NULL);
}

static int filter_init(sl_ctx_t *ctx, const sl_config_t *cfg, void **state)
{
    (void)ctx;
    filter_t *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    int rc = parse_config(cfg, &f->expr);
    if (rc < 0) {
        free(f);
        return rc;
    }
    *state = f;
    return 0;
}

static int filter_process(void *state, sl_ctx_t *ctx, sl_record_t *rec)
{
    const filter_t *f = state;
    const msgpack_object *map;
    int map_rc = stage_record_map(ctx, rec, &map);
    if (map_rc < 0)
        return map_rc;
    if (!expr_eval(f->expr, map))
        return 0;
    size_t len;
    const void *data = sl_record_data(rec, &len);
    return sl_emit_raw(ctx, data, len);
}

static void filter_fini(void *state)
{
    filter_t *f = state;
    if (!f)
        return;
    expr_destroy(&f->expr);
    free(f);
}

SL_STAGE_DEFINE(.name = "filter",
                .summary = "keep records matching an expression, drop the rest",
                .kind = SL_STAGE_TRANSFORM, .config_keys = s_keys,
                .validate = filter_validate, .init = filter_init,
                .process = filter_process, .fini = filter_fini);
