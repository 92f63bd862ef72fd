#include "ctx.h"
#include "endian.h"
#include "log.h"
#include "mpscan.h"
#include "prio_rule.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Ids are unique per run without coordination: 16 bits of stage, 8 of
 * worker, 40 of sequence (a trillion records per worker). */
#define ID_STAGE_SHIFT 48
#define ID_WORKER_SHIFT 40

/* msgpack's packer writes token by token (a type byte, a 2-byte length...):
 * copying those few bytes inline beats a call to memcpy. */
static int s_pack_write(void *data, const char *buf, size_t len)
{
    sl_ctx_t *ctx = data;
    sl_batch_t *b = &ctx->out;
    if (len <= 16 && b->cap - b->len >= 16) {
        char *dst = b->data + b->len;
        for (size_t i = 0; i < len; i++)
            dst[i] = buf[i];
        b->len += len;
        return 0;
    }
    /* Past the record limit bytes are only counted, so that a runaway
     * record does not grow the batch; commit refuses it with its size.
     * Checked off the fast path: the batch cannot grow without coming
     * here. */
    if (ctx->packing &&
        b->len - b->open - SL_ENV_SIZE + len > ctx->limits.max_record_bytes) {
        ctx->pack_over += len;
        return 0;
    }
    return sl__batch_write(b, buf, len);
}

int sl__ctx_init(sl_ctx_t *ctx, const char *stage, unsigned stage_index,
                 unsigned worker, unsigned workers, int is_source,
                 uint32_t max_batch, const atomic_int *stopping)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->stage = stage;
    ctx->stage_index = stage_index;
    ctx->worker = worker;
    ctx->workers = workers;
    ctx->is_source = is_source;
    ctx->max_batch = max_batch ? max_batch : 1;
    ctx->stopping = stopping;
    sl__limits_default(&ctx->limits);
    sl__batch_init(&ctx->out);
    msgpack_packer_init(&ctx->pk, ctx, s_pack_write);
    if (!msgpack_zone_init(&ctx->zone, 4096))
        return -ENOMEM;
    return 0;
}

void sl__ctx_fini(sl_ctx_t *ctx)
{
    free(ctx->pos);
    ctx->pos = NULL;
    sl__batch_fini(&ctx->out);
    msgpack_zone_destroy(&ctx->zone);
}

uint64_t sl__ctx_fresh_id(sl_ctx_t *ctx)
{
    return ((uint64_t)(ctx->stage_index + 1) << ID_STAGE_SHIFT) |
           ((uint64_t)(ctx->worker & 0xff) << ID_WORKER_SHIFT) |
           (ctx->next_seq++ & ((1ull << ID_WORKER_SHIFT) - 1));
}

void sl__ctx_begin_record(sl_ctx_t *ctx, sl_record_t *rec,
                          const sl_envelope_t *env, const char *data,
                          size_t len)
{
    rec->env = *env;
    rec->data = data;
    rec->len = len;
    rec->zone = &ctx->zone;
    rec->decoded = 0;
    rec->ctx = ctx;
    ctx->cur = rec;
    ctx->rec_mark_len = ctx->out.len;
    ctx->rec_mark_count = ctx->out.count;
    ctx->rec_handed_off = 0;
    ctx->emitted = 0;
    ctx->prio_set = 0;
    ctx->has_err = 0;
    ctx->err_final = 0;
    ctx->limit_hit = 0;
}

void sl__ctx_end_call(sl_ctx_t *ctx)
{
    /* A handler that returned between emit_begin and emit_commit: the
     * half-packed record must not reach the batch. */
    if (ctx->packing) {
        sl__batch_abort(&ctx->out);
        ctx->packing = 0;
    }
}

int sl__ctx_drop_record_output(sl_ctx_t *ctx)
{
    sl__ctx_end_call(ctx); /* a record half packed goes first */
    if (ctx->rec_handed_off)
        return -1;
    int n = (int)(ctx->out.count - ctx->rec_mark_count);
    ctx->out.len = ctx->rec_mark_len;
    ctx->out.count = ctx->rec_mark_count;
    ctx->emitted = 0;
    return n;
}

void sl__ctx_end_record(sl_ctx_t *ctx)
{
    sl__ctx_end_call(ctx);
    ctx->cur = NULL;
    msgpack_zone_clear(&ctx->zone);
}

void sl__ctx_begin_pull(sl_ctx_t *ctx, size_t budget)
{
    ctx->cur = NULL;
    ctx->emitted = 0;
    ctx->budget = budget;
    ctx->pull_ts = 0;
    ctx->prio_set = 0;
    ctx->has_err = 0;
    ctx->err_final = 0;
    ctx->limit_hit = 0;
}

void sl__ctx_begin_flush(sl_ctx_t *ctx)
{
    ctx->cur = NULL;
    ctx->emitted = 0;
    ctx->budget = 0;
    ctx->pull_ts = 0;
    ctx->prio_set = 0;
    ctx->has_err = 0;
    ctx->err_final = 0;
    ctx->limit_hit = 0;
}

int sl__ctx_limit_rc(sl_ctx_t *ctx, int rc)
{
    if (!ctx->limit_hit)
        return rc;
    /* The handler may have put its own words over the reason (a plugin
     * turning a refused emit into "emit failed"): the limit is the cause. */
    snprintf(ctx->err, sizeof(ctx->err), "%s", ctx->limit_err);
    ctx->has_err = 1;
    ctx->err_final = 1;
    return -EMSGSIZE;
}

/* The current record (or what it emitted) is over the limits, reason in
 * limit_err: it fails for good, with that reason. */
static void s_limit_fail(sl_ctx_t *ctx)
{
    ctx->limit_hit = 1;
    snprintf(ctx->err, sizeof(ctx->err), "%s", ctx->limit_err);
    ctx->has_err = 1;
    ctx->err_final = 1;
}

/* ---- records ---- */

uint64_t sl_record_id(const sl_record_t *rec) { return rec->env.id; }
uint64_t sl_record_ts(const sl_record_t *rec) { return rec->env.ts_ns; }
uint32_t sl_record_attempts(const sl_record_t *rec)
{
    return rec->env.attempts;
}
uint8_t sl_record_priority(const sl_record_t *rec)
{
    return rec->env.priority;
}

const void *sl_record_data(const sl_record_t *rec, size_t *len)
{
    *len = rec->len;
    return rec->data;
}

int sl_record_map(sl_record_t *rec, const msgpack_object **map)
{
    if (rec->decoded == 0) {
        /* The bytes came from another stage, another host or a file: a
         * header must not make us allocate more than the bytes hold
         * (msgpack_unpack would), and nesting is bounded. */
        sl_ctx_t *ctx = rec->ctx;
        unsigned depth = ctx ? ctx->limits.max_depth : SL_MP_MAX_DEPTH;
        int rc = sl__mpscan_decode(rec->data, rec->len, depth, rec->zone,
                                   &rec->obj);
        if (rc == -ENOMEM)
            return rc;
        rec->decoded =
            rc == 0 && rec->obj.type == MSGPACK_OBJECT_MAP ? 1 : -1;
        if (rc == -ELOOP && ctx && ctx->cur == rec) {
            snprintf(ctx->limit_err, sizeof(ctx->limit_err),
                     "stage '%s': record nested deeper than "
                     "limits.max_depth (%u)", ctx->stage, depth);
            s_limit_fail(ctx);
        }
    }
    if (rec->decoded < 0)
        return -EBADMSG;
    *map = &rec->obj;
    return 0;
}

msgpack_zone *sl_record_zone(sl_record_t *rec) { return rec->zone; }

const msgpack_object *sl_map_getn(const msgpack_object *map, const char *key,
                                  size_t keylen)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    const msgpack_object_kv *kv = map->via.map.ptr;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &kv[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == keylen &&
            memcmp(k->via.str.ptr, key, keylen) == 0)
            return &kv[i].val;
    }
    return NULL;
}

const msgpack_object *sl_map_get(const msgpack_object *map, const char *path)
{
    const msgpack_object *cur = map;
    for (;;) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        cur = sl_map_getn(cur, path, n);
        if (!cur || !dot)
            return cur;
        path = dot + 1;
    }
}

/* ---- emitting ---- */

static int s_emit_env(sl_ctx_t *ctx, sl_envelope_t *env)
{
    if (ctx->packing)
        return -EBUSY;
    if (ctx->no_emit)
        return -EPERM;
    if (ctx->is_source && ctx->emitted >= ctx->budget)
        return -ENOBUFS;
    if (ctx->out.count >= ctx->max_batch && ctx->on_full) {
        int rc = ctx->on_full(ctx, ctx->on_full_arg);
        if (rc)
            return rc;
        ctx->rec_handed_off = 1;
    }
    if (ctx->cur) {
        *env = ctx->cur->env;
        if (ctx->emitted > 0)
            env->id = sl__ctx_fresh_id(ctx);
    } else {
        env->id = sl__ctx_fresh_id(ctx);
        /* One clock read per pull, not per record: a pull lasts
         * microseconds and the clock was a tenth of the source's cost. */
        if (!ctx->pull_ts)
            ctx->pull_ts = sl_now_ns();
        env->ts_ns = ctx->pull_ts;
        env->attempts = 0;
        env->priority = 0;
        env->flags = 0;
    }
    if (ctx->prio_set)
        env->priority = ctx->prio;
    return 0;
}

static int s_is_map_head(unsigned char c);

/* The stage's priority rule, unless the handler chose one: read from the
 * record just written at offset `at` of the output batch. */
static void s_apply_rule(sl_ctx_t *ctx, size_t at)
{
    if (!ctx->prio_rule || ctx->prio_set)
        return;
    char *env = ctx->out.data + at;
    uint32_t len = sl__get_u32((unsigned char *)env + 24);
    env[20] = (char)sl__prio_rule_eval(ctx->prio_rule, env + SL_ENV_SIZE,
                                       len, NULL);
}

/* A record over the limits that no input record stands for (a source's,
 * or one from flush()): it is not emitted, and the handler goes on. */
static void s_reject(sl_ctx_t *ctx, const void *p, size_t len)
{
    if (ctx->on_reject)
        ctx->on_reject(ctx, p, len, ctx->limit_err, ctx->on_reject_arg);
    else if (ctx->on_input_error)
        ctx->on_input_error(ctx, ctx->limit_err, ctx->on_input_error_arg);
    else
        sl_log(ctx, SL_LOG_WARN, "%s", ctx->limit_err);
}

/* The slow half of s_check_limits: the full check, and the reason. */
static int s_over_limits(sl_ctx_t *ctx, const void *p, size_t len,
                         size_t over)
{
    char why[160];
    int rc = over ? -EMSGSIZE : sl__limits_check(&ctx->limits, p, len, why,
                                                 sizeof(why));
    if (rc == 0)
        return 0;
    if (over)
        snprintf(why, sizeof(why), "of %zu bytes is over "
                 "limits.max_record_bytes (%u)", len + over,
                 (unsigned)ctx->limits.max_record_bytes);
    snprintf(ctx->limit_err, sizeof(ctx->limit_err), "stage '%s': %srecord %s",
             ctx->stage, ctx->cur ? "output " : "", why);
    if (ctx->cur) {
        s_limit_fail(ctx);
        return rc;
    }
    return 1;
}

/* Checks a record of len bytes at p against the stage's limits, `over`
 * bytes of it not kept (see s_pack_write). 0 when it is within them.
 * Otherwise the reason is in limit_err and: in a transform the input
 * record fails (a negative code is returned); else 1 is returned and the
 * caller hands the record to s_reject. Every record emitted comes here:
 * the common case is two compares and a scan (sl__limits_check). */
static inline int s_check_limits(sl_ctx_t *ctx, const void *p, size_t len,
                                 size_t over)
{
    const sl_limits_t *l = &ctx->limits;
    if (!over && len <= l->max_record_bytes &&
        (len <= l->max_depth ||
         sl__mpscan_max_containers(p, len) <= l->max_depth))
        return 0;
    return s_over_limits(ctx, p, len, over);
}

int sl_emit_raw(sl_ctx_t *ctx, const void *data, size_t len)
{
    if (len == 0 || !s_is_map_head(*(const unsigned char *)data))
        return -EBADMSG;
    sl_envelope_t env;
    int rc = s_emit_env(ctx, &env);
    if (rc)
        return rc;
    if ((rc = s_check_limits(ctx, data, len, 0)) != 0) {
        if (rc < 0)
            return rc;
        s_reject(ctx, data, len);
        return 0;
    }
    size_t at = ctx->out.len ? ctx->out.len : SL_BATCH_HDR;
    rc = sl__batch_append(&ctx->out, &env, data, len);
    if (rc == 0) {
        ctx->emitted++;
        s_apply_rule(ctx, at);
    }
    return rc;
}

msgpack_packer *sl_emit_begin(sl_ctx_t *ctx)
{
    sl_envelope_t env;
    if (s_emit_env(ctx, &env) != 0)
        return NULL;
    if (sl__batch_begin(&ctx->out, &env) != 0)
        return NULL;
    ctx->packing = 1;
    ctx->pack_over = 0;
    return &ctx->pk;
}

static int s_is_map_head(unsigned char c)
{
    return (c & 0xf0) == 0x80 || c == 0xde || c == 0xdf;
}

int sl_emit_commit(sl_ctx_t *ctx)
{
    if (!ctx->packing)
        return -EINVAL;
    ctx->packing = 0;
    size_t start = ctx->out.open + SL_ENV_SIZE;
    if (ctx->out.len <= start ||
        !s_is_map_head((unsigned char)ctx->out.data[start])) {
        sl__batch_abort(&ctx->out);
        return -EBADMSG;
    }
    size_t len = ctx->out.len - start;
    int rc = s_check_limits(ctx, ctx->out.data + start, len, ctx->pack_over);
    if (rc != 0) {
        /* Dead-lettering may hand the batch on: the bytes go out of it
         * first (none when part of them were not kept). */
        char *copy = rc > 0 && !ctx->pack_over ? malloc(len) : NULL;
        if (copy)
            memcpy(copy, ctx->out.data + start, len);
        sl__batch_abort(&ctx->out);
        if (rc < 0)
            return rc;
        s_reject(ctx, copy, copy ? len : 0);
        free(copy);
        return 0;
    }
    size_t at = ctx->out.open;
    rc = sl__batch_commit(&ctx->out, NULL);
    if (rc == 0) {
        ctx->emitted++;
        s_apply_rule(ctx, at);
    }
    return rc;
}

int sl_emit_object(sl_ctx_t *ctx, const msgpack_object *map)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return -EINVAL;
    msgpack_packer *pk = sl_emit_begin(ctx);
    if (!pk)
        return ctx->packing ? -EBUSY : -ENOBUFS;
    if (msgpack_pack_object(pk, *map) != 0) {
        sl__batch_abort(&ctx->out);
        ctx->packing = 0;
        return -ENOMEM;
    }
    return sl_emit_commit(ctx);
}

void sl_emit_abort(sl_ctx_t *ctx)
{
    sl__ctx_end_call(ctx);
}

void sl_emit_priority(sl_ctx_t *ctx, uint8_t priority)
{
    ctx->prio_set = 1;
    ctx->prio = priority;
}

/* ---- context ---- */

size_t sl_ctx_budget(const sl_ctx_t *ctx)
{
    return ctx->budget > ctx->emitted ? ctx->budget - ctx->emitted : 0;
}

int sl_ctx_stopping(const sl_ctx_t *ctx)
{
    return ctx->stopping ? atomic_load_explicit(ctx->stopping,
                                                memory_order_relaxed)
                         : 0;
}

int sl_ctx_set_position(sl_ctx_t *ctx, const void *pos, size_t len)
{
    if (len > SL_POSITION_MAX || (len && !pos))
        return -EINVAL;
    if (!ctx->positions_on)
        return 0;
    if (!ctx->pos && !(ctx->pos = malloc(SL_POSITION_MAX)))
        return -ENOMEM;
    if (len)
        memcpy(ctx->pos, pos, len);
    ctx->pos_len = len;
    ctx->pos_new = 1;
    return 0;
}

const void *sl_ctx_resume_position(const sl_ctx_t *ctx, size_t *len)
{
    if (len)
        *len = ctx->resume ? ctx->resume_len : 0;
    return ctx->resume;
}

const char *sl_ctx_stage(const sl_ctx_t *ctx) { return ctx->stage; }
unsigned sl_ctx_worker(const sl_ctx_t *ctx) { return ctx->worker; }
unsigned sl_ctx_workers(const sl_ctx_t *ctx) { return ctx->workers; }

int sl_ctx_error(sl_ctx_t *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->err, sizeof(ctx->err), fmt, ap);
    va_end(ap);
    ctx->has_err = 1;
    ctx->err_final = 0;
    return -EINVAL;
}

int sl_ctx_fail(sl_ctx_t *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->err, sizeof(ctx->err), fmt, ap);
    va_end(ap);
    ctx->has_err = 1;
    ctx->err_final = 1;
    return -EINVAL;
}

void sl_ctx_input_error(sl_ctx_t *ctx, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (ctx->on_input_error)
        ctx->on_input_error(ctx, msg, ctx->on_input_error_arg);
    else
        sl_log(ctx, SL_LOG_WARN, "%s", msg);
}

uint64_t sl_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t sl_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
