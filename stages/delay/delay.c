/*
 * delay: holds each record for a fixed time, then passes it on unchanged.
 * Used to model slow downstream work (delay -> null is a "slow sink") and
 * to exercise backpressure. The sleep uses an absolute deadline so that
 * wake-up latency is not added on top of an interrupted relative sleep.
 */
#include <sluice/stage.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Keeps one record from holding a worker past any sane shutdown wait. */
#define DELAY_MAX_MS 60000.0

typedef struct delay_opts {
    double ms;
    double jitter_ms;
} delay_opts_t;

typedef struct delay_state {
    delay_opts_t o;
    uint64_t rng; /* xorshift64* state, never 0 */
} delay_state_t;

static const char *const s_keys[] = {"ms", "jitter_ms", NULL};

static const char *s_text(const sl_config_t *n)
{
    const char *s = sl_config_str(n);
    return s ? s : "a sequence or map";
}

/* Reads an optional number in [0, DELAY_MAX_MS]; integers are accepted. */
static int s_get_ms(const sl_config_t *cfg, const char *key, int required,
                    double *out)
{
    const sl_config_t *n = sl_config_get(cfg, key);
    int64_t i;

    if (!n) {
        if (required)
            return sl_config_error(cfg, "'%s' is required (milliseconds)",
                                   key);
        *out = 0;
        return 0;
    }
    if (sl_config_double(n, out) < 0) {
        if (sl_config_int(n, &i) < 0)
            return sl_config_error(n, "'%s' must be a number, got '%s'",
                                   key, s_text(n));
        *out = (double)i;
    }
    if (!(*out >= 0 && *out <= DELAY_MAX_MS))
        return sl_config_error(n, "'%s' must be between 0 and %.0f, got %s",
                               key, DELAY_MAX_MS, s_text(n));
    return 0;
}

/* Shared by validate and init; reports every problem, not just the first. */
static int delay_parse(const sl_config_t *cfg, delay_opts_t *o)
{
    int rc = 0;

    if (s_get_ms(cfg, "ms", 1, &o->ms) < 0)
        rc = -EINVAL;
    if (s_get_ms(cfg, "jitter_ms", 0, &o->jitter_ms) < 0)
        rc = -EINVAL;
    return rc;
}

static int delay_validate(const sl_config_t *cfg)
{
    delay_opts_t o;
    return delay_parse(cfg, &o);
}

static int delay_init(sl_ctx_t *ctx, const sl_config_t *cfg, void **state)
{
    delay_state_t *st = calloc(1, sizeof(*st));
    int rc;

    if (!st)
        return -ENOMEM;
    rc = delay_parse(cfg, &st->o);
    if (rc < 0) {
        free(st);
        return rc;
    }
    /* Workers get different jitter streams; 0 would stick forever. */
    st->rng = sl_mono_ns() ^ ((uint64_t)sl_ctx_worker(ctx) << 32) ^
              0x9e3779b97f4a7c15u;
    if (!st->rng)
        st->rng = 1;
    *state = st;
    return 0;
}

static double s_uniform(uint64_t *x)
{
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return (double)((*x * 0x2545f4914f6cdd1du) >> 11) * 0x1.0p-53;
}

static void s_sleep_ns(uint64_t ns)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ns += (uint64_t)ts.tv_nsec;
    ts.tv_sec += (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
           EINTR)
        ;
}

static int delay_process(void *state, sl_ctx_t *ctx, sl_record_t *rec)
{
    delay_state_t *st = state;
    double ms = st->o.ms;
    const void *data;
    size_t len;
    int rc;

    if (st->o.jitter_ms > 0) {
        ms += (2 * s_uniform(&st->rng) - 1) * st->o.jitter_ms;
        if (ms < 0)
            ms = 0;
    }
    if (ms > 0)
        s_sleep_ns((uint64_t)(ms * 1e6 + 0.5));

    data = sl_record_data(rec, &len);
    rc = sl_emit_raw(ctx, data, len);
    if (rc == -EBADMSG)
        return sl_ctx_fail(ctx, "record is not a msgpack map");
    if (rc < 0)
        return sl_ctx_error(ctx, "cannot pass the record on: %s",
                            strerror(-rc));
    return 0;
}

static void delay_fini(void *state)
{
    free(state);
}

SL_STAGE_DEFINE(.name = "delay",
                .summary = "holds each record for 'ms' milliseconds, then "
                           "passes it on unchanged",
                .kind = SL_STAGE_TRANSFORM,
                .max_workers = 0,
                .config_keys = s_keys,
                .validate = delay_validate,
                .init = delay_init,
                .process = delay_process,
                .fini = delay_fini);
