/*
 * burn: spends CPU on each record, then passes it on unchanged. Models a
 * CPU-bound transform so that worker scaling can be measured. Either for a
 * fixed time (`us`, checked against the monotonic clock) or for a fixed
 * amount of work (`iterations`, which scales with the machine).
 */
#include <sluice/stage.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define BURN_MAX_US 10e6       /* one record may hold a worker 10 s at most */
#define BURN_MAX_ITER 10000000000LL

typedef struct burn_opts {
    uint64_t ns;         /* busy time per record, or 0 */
    uint64_t iterations; /* mixing rounds per record, or 0 */
} burn_opts_t;

typedef struct burn_state {
    burn_opts_t o;
    /* The result of the busy work lands here so that the compiler cannot
     * prove it dead and drop the loop. */
    volatile uint64_t sink;
    uint64_t acc;
} burn_state_t;

static const char *const s_keys[] = {"us", "iterations", NULL};

static const char *s_text(const sl_config_t *n)
{
    const char *s = sl_config_str(n);
    return s ? s : "a sequence or map";
}

static int burn_parse(const sl_config_t *cfg, burn_opts_t *o)
{
    const sl_config_t *us = sl_config_get(cfg, "us");
    const sl_config_t *it = sl_config_get(cfg, "iterations");
    double d;
    int64_t i;

    memset(o, 0, sizeof(*o));
    if (us && it)
        return sl_config_error(it, "give either 'us' or 'iterations', "
                                   "not both");
    if (!us && !it)
        return sl_config_error(cfg, "one of 'us' (microseconds of CPU per "
                                    "record) or 'iterations' is required");
    if (us) {
        if (sl_config_double(us, &d) < 0) {
            if (sl_config_int(us, &i) < 0)
                return sl_config_error(us, "'us' must be a number, got '%s'",
                                       s_text(us));
            d = (double)i;
        }
        if (!(d >= 0 && d <= BURN_MAX_US))
            return sl_config_error(us, "'us' must be between 0 and %.0f, "
                                       "got %s", BURN_MAX_US, s_text(us));
        o->ns = (uint64_t)(d * 1000 + 0.5);
        return 0;
    }
    if (sl_config_int(it, &i) < 0)
        return sl_config_error(it, "'iterations' must be an integer, got "
                                   "'%s'", s_text(it));
    if (i < 0 || i > BURN_MAX_ITER)
        return sl_config_error(it, "'iterations' must be between 0 and "
                                   "%lld, got %s", BURN_MAX_ITER, s_text(it));
    o->iterations = (uint64_t)i;
    return 0;
}

static int burn_validate(const sl_config_t *cfg)
{
    burn_opts_t o;
    return burn_parse(cfg, &o);
}

static int burn_init(sl_ctx_t *ctx, const sl_config_t *cfg, void **state)
{
    burn_state_t *st = calloc(1, sizeof(*st));
    int rc;

    if (!st)
        return -ENOMEM;
    rc = burn_parse(cfg, &st->o);
    if (rc < 0) {
        free(st);
        return rc;
    }
    st->acc = sl_ctx_worker(ctx) + 1;
    *state = st;
    return 0;
}

/* A 64-bit finaliser: cheap, data-dependent, and not foldable. */
static inline uint64_t s_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdu;
    x ^= x >> 33;
    return x;
}

static int burn_process(void *state, sl_ctx_t *ctx, sl_record_t *rec)
{
    burn_state_t *st = state;
    uint64_t acc = st->acc;
    const void *data;
    size_t len;
    int rc;

    if (st->o.ns) {
        uint64_t deadline = sl_mono_ns() + st->o.ns;
        /* Reading the clock costs ~20 ns; batching keeps it from being
         * most of the work while overshooting by well under a microsecond. */
        do {
            for (unsigned i = 0; i < 64; i++)
                acc = s_mix(acc + i);
        } while (sl_mono_ns() < deadline);
    } else {
        for (uint64_t i = 0; i < st->o.iterations; i++)
            acc = s_mix(acc + i);
    }
    st->acc = acc;
    st->sink = acc;

    data = sl_record_data(rec, &len);
    rc = sl_emit_raw(ctx, data, len);
    if (rc == -EBADMSG)
        return sl_ctx_fail(ctx, "record is not a msgpack map");
    if (rc < 0)
        return sl_ctx_error(ctx, "cannot pass the record on: %s",
                            strerror(-rc));
    return 0;
}

static void burn_fini(void *state)
{
    free(state);
}

SL_STAGE_DEFINE(.name = "burn",
                .summary = "spends CPU on each record ('us' or 'iterations'), "
                           "then passes it on unchanged",
                .kind = SL_STAGE_TRANSFORM,
                .max_workers = 0,
                .config_keys = s_keys,
                .validate = burn_validate,
                .init = burn_init,
                .process = burn_process,
                .fini = burn_fini);
