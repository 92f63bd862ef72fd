/*
 * garbage_sink: a test-only sink that tries to emit, which a sink must
 * not do. It ignores the refusal, as a careless plugin would, but logs
 * what the host answered ("emit from a sink returned N") so that tests can
 * check it, and counts each record as written.
 */
#include <sluice/stage.h>

#include <stddef.h>

static int gk_init(sl_ctx_t *ctx, const sl_config_t *cfg, void **state)
{
    (void)ctx;
    (void)cfg;
    *state = NULL;
    return 0;
}

static int gk_process(void *state, sl_ctx_t *ctx, sl_record_t *rec)
{
    (void)state;
    size_t len;
    const void *data = sl_record_data(rec, &len);
    int rc = sl_emit_raw(ctx, data, len);
    msgpack_packer *pk = sl_emit_begin(ctx);
    sl_log(ctx, SL_LOG_WARN, "emit from a sink returned %d, begin %s", rc,
           pk ? "gave a packer" : "gave NULL");
    if (pk)
        sl_emit_commit(ctx);
    return 0;
}

SL_STAGE_DEFINE(.name = "garbage_sink",
                .summary = "test sink: tries to emit",
                .kind = SL_STAGE_SINK, .init = gk_init,
                .process = gk_process);
