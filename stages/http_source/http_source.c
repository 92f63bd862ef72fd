/*
 * http_source: records from HTTP POST bodies (JSON, NDJSON or msgpack).
 *
 * libmicrohttpd's threads take requests, decode each body whole into
 * packed records and queue it, all or nothing, answering 202 only once
 * every record of the body is queued. A full queue answers 503 with
 * Retry-After, so the pipeline's backpressure reaches the client instead
 * of growing memory. pull() moves queued records into the pipeline with
 * one copy each and no allocation.
 *
 * A 202 is a promise: once the run stops, new bodies get 503, and pull()
 * returns SL_EOF only when everything accepted has been emitted.
 *
 * One worker: the listening socket is the stage's.
 */
#include "http_source.h"

#include <sluice/stage.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* pull() returns this soon when there is nothing to emit. */
#define HS_IDLE_NS 100000000ull

static int hs_validate(const sl_config_t *cfg)
{
    hs_opts_t o;
    return hs_opts_parse(cfg, &o);
}

static void hs_fini(void *state);

static int hs_init(sl_ctx_t *ctx, const sl_config_t *cfg, void **state)
{
    hs_state_t *st = calloc(1, sizeof(*st));
    pthread_condattr_t ca;
    int rc;

    if (!st)
        return -ENOMEM;
    st->ctx = ctx;
    pthread_mutex_init(&st->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&st->cv, &ca);
    pthread_condattr_destroy(&ca);
    if ((rc = hs_opts_parse(cfg, &st->o)) < 0)
        goto fail;
    if (st->o.auth_env) {
        const char *tok = getenv(st->o.auth_env);
        if (!tok || !*tok) {
            rc = sl_config_error(st->o.auth_node, "'auth_token_env': the "
                                 "environment variable %s is not set or "
                                 "empty", st->o.auth_env);
            goto fail;
        }
        rc = -ENOMEM;
        if (!(st->token = strdup(tok)))
            goto fail;
        st->token_len = strlen(tok);
    }
    if ((rc = hs_server_start(st, cfg)) < 0)
        goto fail;
    sl_log(ctx, SL_LOG_INFO, "listening on http://%s%s%s:%u%s (%s)",
           st->o.host_v6 ? "[" : "", st->o.host, st->o.host_v6 ? "]" : "",
           st->port, st->o.path, hs_format_name(st->o.format));
    *state = st;
    return 0;
fail:
    hs_fini(st);
    return rc;
}

int hs_stopping(hs_state_t *st)
{
    /* sl_ctx_stopping reads one atomic flag of the run, so the HTTP
     * threads may ask too: a body that arrives after the stop is refused
     * at once even if pull() is never called again. */
    return sl_ctx_stopping(st->ctx);
}

int hs_queue_full(hs_state_t *st)
{
    pthread_mutex_lock(&st->mu);
    int full = st->nrec >= st->o.queue || st->nbytes >= st->o.queue_bytes;
    pthread_mutex_unlock(&st->mu);
    return full;
}

int hs_queue_put(hs_state_t *st, hs_batch_t *b)
{
    int rc = 0;

    pthread_mutex_lock(&st->mu);
    if (st->closed || hs_stopping(st)) {
        st->closed = 1;
        rc = -ESHUTDOWN;
    } else if (b->n > st->o.queue - st->nrec ||
               b->len > st->o.queue_bytes - st->nbytes) {
        rc = -EAGAIN;
    } else {
        b->next = NULL;
        if (st->tail)
            st->tail->next = b;
        else
            st->head = b;
        st->tail = b;
        st->nrec += b->n;
        st->nbytes += b->len;
        if (st->waiting)
            pthread_cond_signal(&st->cv);
    }
    pthread_mutex_unlock(&st->mu);
    return rc;
}

/* Waits until a batch is queued, the run stops or HS_IDLE_NS pass.
 * Called and returns with the lock held. */
static void s_wait(hs_state_t *st, sl_ctx_t *ctx)
{
    struct timespec dl;

    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_nsec += (long)(HS_IDLE_NS % 1000000000ull);
    dl.tv_sec += (time_t)(HS_IDLE_NS / 1000000000ull) +
                 dl.tv_nsec / 1000000000L;
    dl.tv_nsec %= 1000000000L;
    st->waiting = 1;
    while (!st->head && !st->closed && !sl_ctx_stopping(ctx))
        if (pthread_cond_timedwait(&st->cv, &st->mu, &dl) == ETIMEDOUT)
            break;
    st->waiting = 0;
}

static int hs_pull(void *state, sl_ctx_t *ctx)
{
    hs_state_t *st = state;
    size_t budget = sl_ctx_budget(ctx);
    hs_batch_t *b, *done = NULL;
    int rc = 0;

    pthread_mutex_lock(&st->mu);
    if (!st->head)
        s_wait(st, ctx);
    if (sl_ctx_stopping(ctx))
        st->closed = 1;
    b = st->head;
    pthread_mutex_unlock(&st->mu);

    while (b && budget && rc == 0) {
        size_t k = b->n - b->pos, i = 0;
        if (k > budget)
            k = budget;
        /* Outside the lock: a queued batch is only read, and only here. */
        for (; i < k; i++) {
            size_t at = hs_batch_start(b, b->pos + i);
            rc = sl_emit_raw(ctx, b->data + at, b->ends[b->pos + i] - at);
            if (rc < 0)
                break;
        }
        b->pos += i;
        budget -= i;
        pthread_mutex_lock(&st->mu);
        st->nrec -= i;
        if (b->pos == b->n) {
            st->head = b->next;
            if (!st->head)
                st->tail = NULL;
            st->nbytes -= b->len;
            done = b;
        }
        b = st->head;
        pthread_mutex_unlock(&st->mu);
        hs_batch_free(done);
        done = NULL;
    }
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&st->mu);
    int end = st->closed && !st->head;
    pthread_mutex_unlock(&st->mu);
    return end ? SL_EOF : 0;
}

static const char *const s_outcome_names[HS_NOUTCOMES] = {
    "202", "400", "401", "404", "405", "413", "415", "503", "500"};

static void s_log_summary(hs_state_t *st)
{
    char line[512];
    size_t n = 0;

    for (int i = 0; i < HS_NOUTCOMES; i++) {
        uint64_t v = atomic_load(&st->outcomes[i]);
        if (!v && i != HS_202)
            continue;
        n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s: %" PRIu64,
                              n ? ", " : "", s_outcome_names[i], v);
        if (i == HS_202)
            n += (size_t)snprintf(line + n, sizeof(line) - n,
                                  " (%" PRIu64 " records)",
                                  (uint64_t)atomic_load(&st->accepted));
        if (n >= sizeof(line))
            break;
    }
    sl_log(st->ctx, SL_LOG_INFO, "requests answered: %s", line);
}

static void hs_fini(void *state)
{
    hs_state_t *st = state;

    if (!st)
        return;
    pthread_mutex_lock(&st->mu);
    st->closed = 1;
    pthread_mutex_unlock(&st->mu);
    if (st->daemon) {
        hs_server_stop(st);
        s_log_summary(st);
    }
    /* Only a run that ended without draining the stage gets here with
     * records left: say how many accepted records were never emitted. */
    if (st->nrec)
        sl_log(st->ctx, SL_LOG_ERROR, "%" PRIu64 " records of accepted "
               "(202) requests were never emitted: the run ended before "
               "they were pulled", st->nrec);
    while (st->head) {
        hs_batch_t *b = st->head;
        st->head = b->next;
        hs_batch_free(b);
    }
    free(st->token);
    pthread_cond_destroy(&st->cv);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

SL_STAGE_DEFINE(.name = "http_source",
                .summary = "records from HTTP POST bodies (JSON, NDJSON, "
                           "msgpack); 503 + Retry-After when the pipeline "
                           "is behind",
                .kind = SL_STAGE_SOURCE, .max_workers = 1,
                .config_keys = hs_config_keys, .validate = hs_validate,
                .init = hs_init, .pull = hs_pull, .fini = hs_fini);
