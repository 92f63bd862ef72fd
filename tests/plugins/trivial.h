/* Callbacks for the deliberately broken test plugins: each of them is
 * valid except for the one defect its file is about, so that the loader's
 * error can only come from that defect. */
#ifndef SL_TEST_TRIVIAL_H
#define SL_TEST_TRIVIAL_H

#include <sluice/stage.h>

static inline int trivial_init(sl_ctx_t *ctx, const sl_config_t *cfg,
                               void **state)
{
    (void)ctx;
    (void)cfg;
    *state = NULL;
    return 0;
}

static inline int trivial_process(void *state, sl_ctx_t *ctx,
                                  sl_record_t *rec)
{
    (void)state;
    const void *data;
    size_t len;
    data = sl_record_data(rec, &len);
    return sl_emit_raw(ctx, data, len);
}

#endif
