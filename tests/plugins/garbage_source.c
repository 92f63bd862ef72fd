/*
 * garbage_source: a test-only source that misuses the pull() contract, to
 * check that the host holds its limits against it.
 *
 * It emits {"n": 0}, {"n": 1}, ... up to `count` records. n advances only
 * when the host accepts a record, so what reaches a sink is exactly the
 * records the host took.
 *
 * Config:
 *   count: N          records to emit (default 10)
 *   extra: N          each pull tries to emit N records more than
 *                     sl_ctx_budget() allows (default 0)
 *   nonmap: true      before each record, also try to emit [n] (an array)
 *   end_rc: N         once every record is out, return N instead of
 *                     SL_EOF, without a message (default SL_EOF)
 *   position_len: N   after each record, sl_ctx_set_position with N bytes
 *                     (default 0: no position)
 *
 * At fini it writes nothing; tests read what the host counted.
 */
#include <sluice/stage.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct gs_state {
    int64_t count, extra, end_rc, position_len;
    int nonmap;
    int64_t next;
    unsigned char *pos;
} gs_state_t;

static const char *const gs_keys[] = {"count", "extra", "nonmap", "end_rc",
                                      "position_len", NULL};

static int gs_init(sl_ctx_t *ctx, const sl_config_t *cfg, void **state)
{
    (void)ctx;
    gs_state_t *st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    int rc = sl_config_get_int(cfg, "count", 10, &st->count) |
             sl_config_get_int(cfg, "extra", 0, &st->extra) |
             sl_config_get_bool(cfg, "nonmap", 0, &st->nonmap) |
             sl_config_get_int(cfg, "end_rc", SL_EOF, &st->end_rc) |
             sl_config_get_int(cfg, "position_len", 0, &st->position_len);
    if (rc || st->position_len < 0 || st->position_len > 1 << 20) {
        free(st);
        return -EINVAL;
    }
    if (st->position_len &&
        !(st->pos = calloc(1, (size_t)st->position_len))) {
        free(st);
        return -ENOMEM;
    }
    *state = st;
    return 0;
}

static int gs_pull(void *state, sl_ctx_t *ctx)
{
    gs_state_t *st = state;
    int64_t tries = (int64_t)sl_ctx_budget(ctx) + st->extra;
    for (int64_t i = 0; i < tries && st->next < st->count; i++) {
        if (st->nonmap) {
            const unsigned char arr[] = {0x91, 0x00};
            sl_emit_raw(ctx, arr, sizeof(arr)); /* refused, ignored */
        }
        msgpack_packer *pk = sl_emit_begin(ctx);
        if (!pk)
            continue; /* over budget: refused, tried again next pull */
        msgpack_pack_map(pk, 1);
        msgpack_pack_str_with_body(pk, "n", 1);
        msgpack_pack_int64(pk, st->next);
        if (sl_emit_commit(ctx) == 0)
            st->next++;
        if (st->position_len)
            sl_ctx_set_position(ctx, st->pos, (size_t)st->position_len);
    }
    return st->next < st->count ? 0 : (int)st->end_rc;
}

static void gs_fini(void *state)
{
    gs_state_t *st = state;
    free(st->pos);
    free(st);
}

SL_STAGE_DEFINE(.name = "garbage_source",
                .summary = "test source: misuses pull() on request",
                .kind = SL_STAGE_SOURCE, .config_keys = gs_keys,
                .init = gs_init, .pull = gs_pull, .fini = gs_fini);
