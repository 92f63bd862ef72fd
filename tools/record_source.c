/* `sluice record TOPOLOGY.yaml --stage SOURCE`: the source stage alone,
 * pulled in this process with its config from the topology, nothing
 * downstream of it started. Each record goes into the trace as the stage
 * emitted it, at the offset of its event time (--time-field) or of the
 * time it was emitted. */
#include "cmd_record.h"

#include "cli.h"
#include "ctx.h"
#include "diag.h"
#include "log.h"
#include "mpscan.h"
#include "timefmt.h"
#include "topology.h"
#include "trace.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Records asked of the source per pull: the runtime's usual batch. */
#define S_BUDGET 256
#define S_SHOWN_INPUT_ERRORS 5

typedef struct s_rec {
    const sl_rec_opts_t *o;
    sl_rec_result_t *res;
    sl_trace_writer_t *w;
    int have_t0;
    int64_t t0;       /* the first record's time, ns */
    uint64_t prev;    /* the last offset written */
    msgpack_zone zone;
    int failed;       /* a write failed: the reason is printed */
} s_rec_t;

/* The record's event time in ns, or -1 if it has none usable. */
static int s_event_time(s_rec_t *r, const char *data, size_t len, int64_t *ns)
{
    msgpack_object obj;
    msgpack_zone_clear(&r->zone);
    /* sl_emit_raw checks only the first byte of what the source emitted:
     * a header must not make us allocate what the bytes do not hold. */
    if (sl__mpscan_decode(data, len, SL_MP_MAX_DEPTH, &r->zone, &obj) != 0 ||
        obj.type != MSGPACK_OBJECT_MAP)
        return -1;
    const msgpack_object *v = sl_map_get(&obj, r->o->time_field);
    double unit = (double)r->o->time_unit_ns, d;
    if (!v)
        return -1;
    switch (v->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (v->via.u64 <= (uint64_t)(INT64_MAX / r->o->time_unit_ns)) {
            *ns = (int64_t)v->via.u64 * r->o->time_unit_ns;
            return 0;
        }
        return -1;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        if (v->via.i64 >= INT64_MIN / r->o->time_unit_ns) {
            *ns = v->via.i64 * r->o->time_unit_ns;
            return 0;
        }
        return -1;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        d = v->via.f64 * unit;
        break;
    case MSGPACK_OBJECT_STR: {
        char buf[64];
        if (v->via.str.size == 0 || v->via.str.size >= sizeof(buf))
            return -1;
        memcpy(buf, v->via.str.ptr, v->via.str.size);
        buf[v->via.str.size] = '\0';
        char *end;
        d = strtod(buf, &end) * unit;
        if (*end) /* not a number: an RFC 3339 time, then */
            return sl__time_parse_rfc3339(buf, v->via.str.size, ns) ? -1 : 0;
        break;
    }
    default:
        return -1;
    }
    if (!isfinite(d) || d > 9.2e18 || d < -9.2e18)
        return -1;
    *ns = (int64_t)llround(d);
    return 0;
}

static int s_write(s_rec_t *r, const sl_envelope_t *env, const char *data,
                   size_t len)
{
    int64_t t = (int64_t)env->ts_ns;
    int timed = 1;
    if (r->o->time_field && s_event_time(r, data, len, &t) < 0) {
        r->res->untimed++;
        timed = 0;
    }
    uint64_t off = r->prev;
    if (timed && !r->have_t0) {
        r->have_t0 = 1;
        r->t0 = t;
    }
    if (timed) {
        if (t < r->t0 || (uint64_t)(t - r->t0) < r->prev)
            r->res->clamped++; /* out of order: held at the previous */
        else
            off = (uint64_t)(t - r->t0);
    }
    int rc = sl_trace_write(r->w, off, data, len);
    if (rc == -EBADMSG) {
        /* What a stage emitted but a trace cannot hold (too deep, too
         * big): skipped and counted, not a reason to stop. */
        r->res->malformed++;
        return 0;
    }
    if (rc) {
        fprintf(stderr, "sluice record: cannot write %s: %s\n", r->o->out,
                strerror(-rc));
        r->failed = 1;
        return rc;
    }
    r->prev = off;
    r->res->written++;
    r->res->span_ns = off;
    return 0;
}

/* Writes what the worker emitted, up to --count. */
static int s_drain(s_rec_t *r, sl_ctx_t *ctx)
{
    if (!ctx->out.count)
        return 0;
    size_t len;
    char *data = sl__batch_release(&ctx->out, &len);
    if (!data)
        return -ENOMEM;
    sl_batch_iter_t it;
    int rc = sl__batch_iter_init(&it, data, len, NULL);
    sl_envelope_t env;
    const char *payload;
    size_t plen;
    while (rc == 0 && (!r->o->count || r->res->written < r->o->count)) {
        rc = sl__batch_next(&it, &env, &payload, &plen);
        if (rc != 1)
            break;
        rc = s_write(r, &env, payload, plen);
    }
    free(data);
    return rc < 0 ? rc : 0;
}

static void s_input_error(sl_ctx_t *ctx, const char *msg, void *arg)
{
    (void)ctx;
    s_rec_t *r = arg;
    if (++r->res->input_errors <= S_SHOWN_INPUT_ERRORS)
        fprintf(stderr, "sluice record: stage '%s': %s\n", r->o->stage, msg);
}

/* A record over the source's limits: an input error, whose message names
 * the stage already. */
static void s_reject(sl_ctx_t *ctx, const void *rec, size_t len,
                     const char *msg, void *arg)
{
    (void)ctx;
    (void)rec;
    (void)len;
    s_rec_t *r = arg;
    if (++r->res->input_errors <= S_SHOWN_INPUT_ERRORS)
        fprintf(stderr, "sluice record: %s\n", msg);
}

static uint64_t s_mono(void)
{
    return sl_mono_ns();
}

/* A call of the source that returned anything but what it may: the
 * message the plugin gave, or what the code means. The records it emitted
 * before are in the trace. */
static int s_failed(s_rec_t *r, sl_ctx_t *ctx, int rc, const char *call)
{
    char code[SL_RC_TEXT_MAX];
    fprintf(stderr, "sluice record: stage '%s' failed: %s\n", r->o->stage,
            rc < 0 && ctx->has_err ? ctx->err
                                   : sl__rc_text(rc, call, code, sizeof(code)));
    return rc < 0 ? rc : -EPROTO;
}

/* Pulls until the end, --count, --duration or a signal. */
static int s_pull_loop(s_rec_t *r, const sl_stage_desc_t *d, void *state,
                       sl_ctx_t *ctx, atomic_int *stopping)
{
    uint64_t until = r->o->duration_ns ? s_mono() + r->o->duration_ns : 0;
    for (;;) {
        if (r->o->count && r->res->written >= r->o->count) {
            r->res->stopped_by = "count";
            return 0;
        }
        if (until && s_mono() >= until) {
            r->res->stopped_by = "duration";
            return 0;
        }
        if (sl__rec_stop) {
            atomic_store(stopping, 1);
            r->res->stopped_by = "interrupted";
            return 0;
        }
        size_t budget = S_BUDGET;
        if (r->o->count && r->o->count - r->res->written < budget)
            budget = (size_t)(r->o->count - r->res->written);
        sl__ctx_begin_pull(ctx, budget);
        int rc = d->pull(state, ctx);
        sl__ctx_end_call(ctx);
        int wrc = s_drain(r, ctx);
        if (wrc)
            return wrc;
        /* An undefined positive code fails it too: read as 0 (nothing
         * now), the source would be pulled for ever. */
        if (rc != 0 && rc != SL_EOF)
            return s_failed(r, ctx, rc, "pull");
        if (rc == SL_EOF) {
            if (d->flush) {
                sl__ctx_begin_flush(ctx);
                rc = d->flush(state, ctx);
                sl__ctx_end_call(ctx);
                if ((wrc = s_drain(r, ctx)))
                    return wrc;
                /* as in a run, a positive flush() result is not an
                 * error */
                if (rc < 0)
                    return s_failed(r, ctx, rc, "flush");
            }
            return 0;
        }
    }
}

int sl__record_source(const sl_rec_opts_t *o, sl_rec_result_t *res)
{
    sl_diag_t diag;
    sl__diag_init(&diag);
    int code = SL_EXIT_FAILED;
    s_rec_t r = {.o = o, .res = res};
    msgpack_zone_init(&r.zone, 4096);
    sl_ctx_t ctx;
    int ctx_ready = 0, state_ready = 0;
    void *state = NULL;
    atomic_int stopping = 0;
    const sl_stage_desc_t *d = NULL;
    sl_topology_t *topo = sl__topology_load(o->topology, &diag);
    if (!topo) {
        sl__diag_print(&diag, stderr);
        code = SL_EXIT_USAGE;
        goto out;
    }
    long idx = sl__topology_find(topo, o->stage);
    if (idx < 0 || topo->stages[idx].plugin->desc->kind != SL_STAGE_SOURCE) {
        fprintf(stderr, "sluice record: %s: %s '%s'; its sources:",
                o->topology, idx < 0 ? "no stage" : "not a source stage:",
                o->stage);
        for (size_t i = 0; i < topo->n_stages; i++)
            if (topo->stages[i].plugin->desc->kind == SL_STAGE_SOURCE)
                fprintf(stderr, " %s", topo->stages[i].name);
        fputc('\n', stderr);
        code = SL_EXIT_USAGE;
        goto out;
    }
    const sl_topo_stage_t *st = &topo->stages[idx];
    d = st->plugin->desc;
    if (sl__ctx_init(&ctx, st->name, (unsigned)idx, 0, 1, 1, UINT32_MAX,
                     &stopping) != 0) {
        fprintf(stderr, "sluice record: out of memory\n");
        goto out;
    }
    ctx_ready = 1;
    ctx.on_input_error = s_input_error;
    ctx.on_input_error_arg = &r;
    /* as in a run: a record over the stage's limits is an input error,
     * not a record of the trace */
    ctx.limits = st->limits;
    ctx.on_reject = s_reject;
    ctx.on_reject_arg = &r;
    char ctxname[300];
    snprintf(ctxname, sizeof(ctxname), "stage '%s'", st->name);
    sl__config_doc_set_diag(topo->doc, &diag, ctxname);
    int rc = d->init(&ctx, st->config, &state);
    sl__config_doc_set_diag(topo->doc, NULL, NULL);
    if (rc) {
        char text[SL_RC_TEXT_MAX];
        if (diag.count)
            sl__diag_print(&diag, stderr);
        fprintf(stderr, "sluice record: stage '%s' could not start: %s\n",
                st->name, sl__rc_text(rc, "init", text, sizeof(text)));
        goto out;
    }
    state_ready = 1;
    char origin[1024], err[1024];
    snprintf(origin, sizeof(origin), "stage %s of %s", st->name, o->topology);
    r.w = sl_trace_writer_new(o->out, origin, err, sizeof(err));
    if (!r.w) {
        fprintf(stderr, "sluice record: %s\n", err);
        goto out;
    }
    rc = s_pull_loop(&r, d, state, &ctx, &stopping);
    int crc = sl_trace_writer_close(&r.w);
    if (crc && !r.failed)
        fprintf(stderr, "sluice record: cannot write %s: %s\n", o->out,
                strerror(-crc));
    if (!rc && !crc)
        code = SL_EXIT_OK;
out:
    sl_trace_writer_close(&r.w);
    if (state_ready && d->fini)
        d->fini(state);
    if (ctx_ready)
        sl__ctx_fini(&ctx);
    msgpack_zone_destroy(&r.zone);
    sl__topology_destroy(&topo);
    sl__diag_fini(&diag);
    return code;
}
