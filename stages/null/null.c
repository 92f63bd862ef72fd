/*
 * null: a sink that discards every record. It never decodes a record, so
 * it measures the cost of everything upstream of it.
 */
#include <sluice/stage.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

typedef struct null_state {
    uint64_t records;
} null_state_t;

static const char *const s_keys[] = {NULL};

static int null_init(sl_ctx_t *ctx, const sl_config_t *cfg, void **state)
{
    (void)ctx;
    (void)cfg;
    null_state_t *st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    *state = st;
    return 0;
}

static int null_process(void *state, sl_ctx_t *ctx, sl_record_t *rec)
{
    (void)ctx;
    (void)rec;
    ((null_state_t *)state)->records++;
    return 0;
}

static int null_flush(void *state, sl_ctx_t *ctx)
{
    const null_state_t *st = state;
    sl_log(ctx, SL_LOG_DEBUG, "discarded %" PRIu64 " records", st->records);
    return 0;
}

static void null_fini(void *state)
{
    free(state);
}

SL_STAGE_DEFINE(.name = "null",
                .summary = "discards every record (counts them)",
                .kind = SL_STAGE_SINK,
                .max_workers = 0,
                .config_keys = s_keys,
                .init = null_init,
                .process = null_process,
                .flush = null_flush,
                .fini = null_fini);
