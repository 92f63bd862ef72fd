#include "config.h"
#include "deadletter.h"
#include "endian.h"
#include "failure.h"
#include "log.h"
#include "run.h"
#include "spill.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>


#define RELAXED memory_order_relaxed
/* Sinks sample end-to-end latency for up to this many records per batch. */
#define LAT_BATCH 4096
/* A share split off a batch must be worth this much handler time: below
 * it the extra hand-over (a post, a wake-up, a smaller output message)
 * costs more than spreading the work gains. */
#define SHARE_MIN_NS 200000ull

void sl__runner_post_done(sl_runner_t *r, sl_done_t *done)
{
    pthread_mutex_lock(&r->mu);
    /* The item is no longer in flight at the same instant its output
     * appears, so a dispatcher woken by this post sees both. */
    if (done->ends_item)
        r->inflight--;
    if (r->done_tail)
        r->done_tail->next = done;
    else
        r->done_head = done;
    r->done_tail = done;
    pthread_mutex_unlock(&r->mu);
    /* Only a dispatcher that may be asleep needs the syscall; a busy one
     * looks at the done list before it polls again. */
    if (atomic_exchange(&r->polling, 0)) {
        uint64_t one = 1;
        ssize_t w = write(r->efd, &one, sizeof(one));
        (void)w; /* EAGAIN only when the counter is saturated: still woken */
    }
}

/* Moves the failures gathered so far into done: dead letters always,
 * retries only with the item's last post (they keep its credit). */
static int s_attach_failures(sl_worker_t *w, sl_done_t *done, int ends_item)
{
    if (w->dl_out.count) {
        done->dl_count = w->dl_out.count;
        if (!(done->dl_buf = sl__batch_release(&w->dl_out, &done->dl_len)))
            return -ENOMEM;
    }
    if (ends_item && w->retry_out.count) {
        uint32_t n = w->retry_out.count;
        done->retry_first = malloc(n * sizeof(uint64_t));
        if (!done->retry_first)
            return -ENOMEM;
        memcpy(done->retry_first, w->retry_first, n * sizeof(uint64_t));
        done->retry_count = n;
        if (!(done->retry_buf = sl__batch_release(&w->retry_out,
                                                  &done->retry_len)))
            return -ENOMEM;
    }
    return 0;
}

void sl__done_free(sl_done_t *d)
{
    if (!d)
        return;
    free(d->buf);
    free(d->retry_buf);
    free(d->retry_first);
    free(d->dl_buf);
    free(d);
}

static int s_post_output(sl_worker_t *w, uint32_t link, uint32_t release,
                         int last, int ends_item)
{
    sl_runner_t *r = w->runner;
    sl_done_t *done = calloc(1, sizeof(*done));
    if (!done)
        return -ENOMEM;
    if (s_attach_failures(w, done, ends_item) != 0) {
        sl__done_free(done);
        return -ENOMEM;
    }
    if (ends_item)
        release -= done->retry_count;
    if (w->ctx.out.count) {
        done->count = w->ctx.out.count;
        done->buf = sl__batch_release(&w->ctx.out, &done->len);
        if (!done->buf) {
            sl__done_free(done);
            return -ENOMEM;
        }
    } else {
        sl__batch_reset(&w->ctx.out);
    }
    done->link = link;
    done->release = release;
    done->last = last;
    done->ends_item = ends_item;
    done->gen = w->item_gen;
    done->retry_worker =
        r->spec->partition_by && r->n_workers > 1 ? (int)w->index : -1;
    sl__runner_post_done(r, done);
    return 0;
}

/* A batch filled up in the middle of an input batch: send it on ahead
 * without releasing credit (that waits for the input's last output). */
static int s_on_full(sl_ctx_t *ctx, void *arg)
{
    (void)ctx;
    return s_post_output(arg, 0, 0, 0, 0);
}

/* Input that never became a record (a malformed line) is dead-lettered
 * with its reason, which names the file and line. */
static void s_on_input_error(sl_ctx_t *ctx, const char *msg, void *arg)
{
    sl_worker_t *w = arg;
    atomic_fetch_add_explicit(&w->stats.read, 1, RELAXED);
    sl_envelope_t env = {.id = sl__ctx_fresh_id(ctx), .ts_ns = sl_now_ns()};
    char why[600];
    snprintf(why, sizeof(why), "input error: %s", msg);
    /* no record to retry: dead-lettered at once */
    sl__worker_record_failed(w, &env, NULL, 0, why, 0);
}

static int s_dead_letter_to_stage(sl_worker_t *w, const sl_envelope_t *env,
                                  const char *payload, size_t len,
                                  const char *why, uint32_t attempts,
                                  uint64_t first_ns, uint64_t last_ns);

/* A record over the stage's limits with no input record behind it. A
 * source's counts as an input error (read = emitted + input errors), kept
 * with its bytes. One from a transform's flush() has no input to count it
 * against (in = passed + filtered + dead-lettered): it goes to the
 * dead-letter target uncounted. */
static void s_on_reject(sl_ctx_t *ctx, const void *rec, size_t len,
                        const char *msg, void *arg)
{
    sl_worker_t *w = arg;
    sl_runner_t *r = w->runner;
    sl_envelope_t env = {.id = sl__ctx_fresh_id(ctx), .ts_ns = sl_now_ns()};
    if (ctx->is_source) {
        atomic_fetch_add_explicit(&w->stats.read, 1, RELAXED);
        /* the bytes are kept, but nothing could retry them */
        int final = ctx->err_final;
        ctx->err_final = 1;
        sl__worker_record_failed(w, &env, rec, len, msg, 0);
        ctx->err_final = final;
        return;
    }
    uint64_t now = env.ts_ns;
    if (r->spec->dl_stage >= 0 &&
        s_dead_letter_to_stage(w, &env, rec, len, msg, 1, now, now) == 0)
        return;
    sl__record_give_up_at(ctx->stage, (int)w->index, &w->errors_logged, r->dl,
                          &env, rec, len, msg, 1, now, now);
}

/* A dead letter for the stage's dead-letter stage; a full batch goes on
 * ahead so that it always fits that stage's credit share. */
static int s_dead_letter_to_stage(sl_worker_t *w, const sl_envelope_t *env,
                                  const char *payload, size_t len,
                                  const char *why, uint32_t attempts,
                                  uint64_t first_ns, uint64_t last_ns)
{
    sl_runner_t *r = w->runner;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int rc = sl__deadletter_encode(&sb, w->ctx.stage, env, payload, len, why,
                                   attempts, first_ns, last_ns);
    sl_envelope_t out = {.id = env->id, .ts_ns = env->ts_ns,
                         .priority = env->priority};
    if (rc == 0)
        rc = sl__batch_append(&w->dl_out, &out, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    if (rc == 0 && w->dl_out.count >= r->dl_batch)
        rc = s_post_output(w, 0, 0, 0, 0);
    return rc;
}

/* One failed attempt: back to the dispatcher for a retry while attempts
 * are left, else a dead letter (the stage's file or stage) or, without a
 * target, a log line. `first_ns` is 0 on a first failure. */
void sl__worker_record_failed(sl_worker_t *w, const sl_envelope_t *env,
                              const char *payload, size_t len,
                              const char *why, uint64_t first_ns)
{
    sl_runner_t *r = w->runner;
    uint64_t now = sl_now_ns();
    uint32_t attempts = env->attempts + 1;
    if (!first_ns)
        first_ns = now;
    if (attempts < r->spec->max_attempts && payload && !w->ctx.err_final) {
        sl_envelope_t again = *env;
        again.attempts = attempts;
        uint32_t n = w->retry_out.count;
        if (n == w->retry_first_cap) {
            size_t cap = n ? 2 * (size_t)n : 64;
            uint64_t *f = realloc(w->retry_first, cap * sizeof(*f));
            if (f) {
                w->retry_first = f;
                w->retry_first_cap = cap;
            }
        }
        if (n < w->retry_first_cap &&
            sl__batch_append(&w->retry_out, &again, payload, len) == 0) {
            w->retry_first[n] = first_ns;
            atomic_fetch_add_explicit(&w->stats.retried, 1, RELAXED);
            return;
        }
        /* out of memory: no retry; it is dead-lettered below */
    }
    atomic_fetch_add_explicit(&w->stats.errors, 1, RELAXED);
    if (r->spec->dl_stage >= 0 &&
        s_dead_letter_to_stage(w, env, payload, len, why, attempts, first_ns,
                               now) == 0)
        return;
    sl__record_give_up_at(w->ctx.stage, (int)w->index, &w->errors_logged,
                          r->dl, env, payload, len, why, attempts, first_ns,
                          now);
}

static void s_record_failed(sl_worker_t *w, const sl_envelope_t *env,
                            const char *payload, size_t len, int rc,
                            uint64_t first_ns)
{
    char why[sizeof(w->ctx.err)], code[SL_RC_TEXT_MAX];
    snprintf(why, sizeof(why), "%s",
             w->ctx.has_err ? w->ctx.err
                            : sl__rc_text(rc, NULL, code, sizeof(code)));
    sl__worker_record_failed(w, env, payload, len, why, first_ns);
}

static uint64_t s_coarse_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Handler calls are timed for the metrics one in SL_HANDLER_SAMPLE (two
 * clock reads on every call would cost a few percent of throughput); a
 * call over the stage's slow_ms is caught on the cheap coarse clock. */
static int s_timed_process(sl_worker_t *w, sl_record_t *rec);

/* One handler call, holding the stage's shared resources (`uses:`). */
static int s_call_process(sl_worker_t *w, sl_record_t *rec)
{
    sl_runner_t *r = w->runner;
    size_t n_uses = r->spec->n_uses;
    if (!n_uses)
        return s_timed_process(w, rec);
    sl_resources_t *rs = r->run->resources;
    int rc = sl__resources_acquire_set(rs, r->spec->uses, n_uses,
                                       &r->run->aborting, w->res_slots);
    if (rc)
        return sl_ctx_error(&w->ctx, "run aborted while waiting for a "
                            "shared resource");
    if (r->spec->slow_ms) /* waiting for the resource is not slowness */
        w->coarse_mark = s_coarse_ns();
    rc = s_timed_process(w, rec);
    sl__resources_release_set(rs, r->spec->uses, n_uses, w->res_slots);
    return rc;
}

static int s_timed_process(sl_worker_t *w, sl_record_t *rec)
{
    sl_runner_t *r = w->runner;
    int sample = --w->sample_left == 0;
    uint32_t slow_ms = r->spec->slow_ms;
    uint64_t t0 = sample ? sl_mono_ns() : 0;
    int rc = r->desc->process(w->state, &w->ctx, rec);
    if (sample) {
        w->sample_left = SL_HANDLER_SAMPLE;
        uint64_t took = sl_mono_ns() - t0;
        pthread_mutex_lock(&w->hist_mu);
        sl__hist_record(&w->handler, took);
        pthread_mutex_unlock(&w->hist_mu);
    }
    if (!slow_ms)
        return rc;
    /* One coarse read per call: the call started when the one before it
     * ended (the microseconds between calls do not matter at slow_ms). */
    uint64_t now = s_coarse_ns(), took = now - w->coarse_mark;
    w->coarse_mark = now;
    if (took > (uint64_t)slow_ms * 1000000ull) {
        atomic_fetch_add_explicit(&w->stats.slow, 1, RELAXED);
        uint64_t n = ++w->slow_logged;
        if (n <= 10 || n % 1000 == 0)
            sl__log(SL_LOG_WARN, r->spec->name, (int)w->index,
                    "slow handler: record %llu took %llu ms (slow_ms %u)%s",
                    (unsigned long long)rec->env.id,
                    (unsigned long long)(took / 1000000), slow_ms,
                    n == 10 ? "; further slow calls are counted and logged "
                              "sparsely" : "");
    }
    return rc;
}

/* A failed record's output must not go on: its retry (or its dead letter)
 * stands for it. Output already handed on cannot be taken back: said. */
static void s_drop_failed_output(sl_worker_t *w, const sl_envelope_t *env)
{
    if (sl__ctx_drop_record_output(&w->ctx) < 0)
        sl__log(SL_LOG_WARN, w->ctx.stage, (int)w->index,
                "record %llu failed after part of its output had gone on "
                "(a full batch); that part is not taken back",
                (unsigned long long)env->id);
}

static void s_handle_item(sl_worker_t *w, sl_work_t *item)
{
    sl_runner_t *r = w->runner;
    const sl_stage_desc_t *d = r->desc;
    int is_sink = d->kind == SL_STAGE_SINK;
    uint64_t t0 = sl_mono_ns();
    uint64_t ok = 0, filtered = 0;

    sl_batch_iter_t it;
    sl_envelope_t env;
    const char *payload;
    size_t plen;
    sl_record_t rec;
    uint64_t handled = 0;
    uint64_t lat_ts[LAT_BATCH];
    uint32_t n_lat = 0;
    w->item_gen = item->gen;
    w->coarse_mark = s_coarse_ns();
    uint64_t cut = 0;
    if (sl__work_iter(item, &it) == 0) {
        while (sl__batch_next(&it, &env, &payload, &plen) == 1) {
            /* Past the grace period what is not started is spilled. */
            if (atomic_load_explicit(&r->run->spilling, RELAXED)) {
                sl__spill_record(r->run, r->spec->name, &env, payload, plen,
                                 item->first_ns ? item->first_ns[handled] : 0);
                handled++;
                cut++;
                continue;
            }
            sl__ctx_begin_record(&w->ctx, &rec, &env, payload, plen);
            /* Read by its sign: a positive code, which the ABI does not
             * define, counts as success (docs/reliability.md). */
            int rc = sl__ctx_limit_rc(&w->ctx, s_call_process(w, &rec));
            if (rc < 0)
                s_drop_failed_output(w, &env);
            uint32_t emitted = w->ctx.emitted;
            if (rc < 0)
                s_record_failed(w, &env, payload, plen, rc,
                                item->first_ns ? item->first_ns[handled] : 0);
            sl__ctx_end_record(&w->ctx);
            handled++;
            if (rc < 0)
                ; /* counted by s_record_failed */
            else if (is_sink || emitted)
                ok++;
            else
                filtered++;
            if (emitted)
                atomic_fetch_add_explicit(&w->stats.emitted, emitted, RELAXED);
            if (is_sink && n_lat < LAT_BATCH)
                lat_ts[n_lat++] = env.ts_ns;
        }
    }
    /* A record is done when its batch is: one clock read per batch. */
    if (n_lat) {
        uint64_t now = sl_now_ns();
        pthread_mutex_lock(&w->hist_mu);
        for (uint32_t i = 0; i < n_lat; i++)
            sl__hist_record(&w->latency, now > lat_ts[i] ? now - lat_ts[i] : 0);
        pthread_mutex_unlock(&w->hist_mu);
    }
    /* The dispatcher validated the batch; a short walk here would be a bug,
     * and the records not walked must still be accounted for. */
    if (handled < item->count) {
        atomic_fetch_add_explicit(&w->stats.errors, item->count - handled, RELAXED);
        sl__log(SL_LOG_ERROR, r->spec->name, (int)w->index,
                "internal: batch shorter than announced (%llu of %u)",
                (unsigned long long)handled, item->count);
    }
    if (!item->retry)
        atomic_fetch_add_explicit(&w->stats.in, item->count, RELAXED);
    if (cut)
        atomic_fetch_add(&r->spilled_in, cut);
    /* Make what the item did durable before it counts as finished. */
    if (d->sync && r->run->positions_on) {
        int src = d->sync(w->state, &w->ctx);
        if (src < 0) {
            char code[SL_RC_TEXT_MAX];
            sl__log(SL_LOG_ERROR, r->spec->name, (int)w->index,
                    "sync failed: %s; positions are not committed past it",
                    w->ctx.has_err ? w->ctx.err
                                   : sl__rc_text(src, NULL, code,
                                                 sizeof(code)));
            atomic_store(&r->failed, 1);
            atomic_store(&r->run->no_commit, 1);
        }
    }
    atomic_fetch_add_explicit(&w->stats.ok, ok, RELAXED);
    atomic_fetch_add_explicit(&w->stats.filtered, filtered, RELAXED);
    uint64_t took = sl_mono_ns() - t0;
    atomic_fetch_add_explicit(&w->stats.busy_ns, took, RELAXED);
    sl__work_note_cost(r, took, item->count);

    if (s_post_output(w, item->link, item->count, 0, 1) != 0) {
        sl__log(SL_LOG_ERROR, r->spec->name, (int)w->index,
                "out of memory handing off a batch; aborting the run");
        atomic_store(&r->run->aborting, 1);
        atomic_store(&r->run->failed, 1);
    }
}

static void s_free_item(sl_work_t *item)
{
    if (item->owned_buf)
        free(item->owned_buf);
    else
        zmq_msg_close(&item->msg);
    free(item->first_ns);
    free(item);
}

/* The plugin's flush, then the worker's last post: `last` at end of
 * stream, `retired` when an elastic pool lets it go mid-stream. */
static void s_flush(sl_worker_t *w, int retiring)
{
    const sl_stage_desc_t *d = w->runner->desc;
    if (d->flush) {
        sl__ctx_begin_flush(&w->ctx);
        int rc = d->flush(w->state, &w->ctx);
        sl__ctx_end_call(&w->ctx);
        /* A positive code counts as success, as from process(). */
        if (rc < 0) {
            char code[SL_RC_TEXT_MAX];
            sl__log(SL_LOG_ERROR, w->ctx.stage, (int)w->index,
                    "flush failed: %s",
                    w->ctx.has_err ? w->ctx.err
                                   : sl__rc_text(rc, NULL, code,
                                                 sizeof(code)));
            atomic_store(&w->runner->failed, 1);
        }
        atomic_fetch_add_explicit(&w->stats.emitted, w->ctx.emitted, RELAXED);
    }
    if (retiring) {
        sl_done_t *done = NULL;
        s_post_output(w, 0, 0, 0, 0);
        done = calloc(1, sizeof(*done));
        if (done) {
            done->retired = 1;
            done->worker = (int)w->index;
            sl__runner_post_done(w->runner, done);
        }
        return;
    }
    s_post_output(w, 0, 0, 1, 0);
}

/* Leaves all but the first n records of item to the other workers, at the
 * front of the shared queue, and wakes one of them. Returns the rest if it
 * could not be queued (this worker then handles it too). */
static sl_work_t *s_share_rest(sl_runner_t *r, sl_work_t *item, uint32_t n)
{
    sl_work_t *rest = sl__work_split(item, n);
    if (!rest)
        return NULL; /* out of memory: this worker handles it all */
    pthread_mutex_lock(&r->mu);
    r->inflight++; /* before its done can be posted */
    int rc = sl_prioq_push_front(&r->pq, rest, rest->level, sl_mono_ns());
    if (rc == 0) {
        r->queued += rest->count;
        pthread_cond_signal(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
    return rc == 0 ? NULL : rest;
}

static void *s_consumer_main(void *arg)
{
    sl_worker_t *w = arg;
    sl_runner_t *r = w->runner;
    /* the dispatcher partitions only between several workers */
    int partitioned = r->spec->partition_by != NULL && r->n_workers > 1;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        sl_prioq_t *q = partitioned ? &w->pq : &r->pq;
        while (sl_prioq_empty(q) && !r->flush_now && !r->stop && !w->retire)
            pthread_cond_wait(&r->cv, &r->mu);
        if (r->stop) {
            pthread_mutex_unlock(&r->mu);
            return NULL;
        }
        sl_work_t *item = sl_prioq_pop(q, sl_mono_ns());
        uint32_t share = UINT32_MAX;
        if (item && !partitioned) {
            share = sl__work_share(r, r->queued,
                                   atomic_load_explicit(&r->n_live, RELAXED));
            r->queued -= item->count;
        }
        /* A worker told to retire leaves even at end of stream: the
         * dispatcher no longer counts it among the pool's flushes. */
        int retiring = !item && w->retire;
        pthread_mutex_unlock(&r->mu);

        if (!item) { /* end of stream, or the pool shrinks by this worker */
            s_flush(w, retiring);
            return NULL;
        }
        /* A batch bigger than this worker's share is split: the others
         * (idle, or soon) take the rest instead of waiting for it. */
        sl_work_t *rest = NULL;
        if (sl__work_should_split(r, item->count, share))
            rest = s_share_rest(r, item, share);
        atomic_store_explicit(&w->stats.busy, 1, RELAXED);
        s_handle_item(w, item);
        s_free_item(item);
        if (rest) {
            s_handle_item(w, rest);
            s_free_item(rest);
        }
        atomic_store_explicit(&w->stats.busy, 0, RELAXED);
        atomic_store_explicit(&w->last_busy_ns, sl_mono_ns(), RELAXED);
    }
}

/* Starts an epoch at the source's newest position, at most every
 * SL_MARK_INTERVAL_MS (and at the end): its marker follows the records
 * emitted so far down every link (checkpoint.h). */
static void s_maybe_mark(sl_worker_t *w, int at_end)
{
    sl_runner_t *r = w->runner;
    if (!r->run->ckpt || !w->ctx.pos_new)
        return;
    uint64_t now = sl_mono_ns();
    if (!at_end && now < w->next_mark_ns)
        return;
    uint64_t epoch = sl__ckpt_begin(r->run->ckpt, r->index, w->index,
                                    w->ctx.pos, w->ctx.pos_len);
    if (!epoch)
        return; /* too many in flight: a later pull tries again */
    sl_done_t *d = calloc(1, sizeof(*d));
    if (!d)
        return;
    d->mark_epoch = epoch;
    d->mark_source = (uint32_t)r->index;
    d->worker = (int)w->index;
    w->ctx.pos_new = 0;
    w->next_mark_ns = now + SL_MARK_INTERVAL_MS * 1000000ull;
    sl__runner_post_done(r, d);
}

static void *s_source_main(void *arg)
{
    sl_worker_t *w = arg;
    sl_runner_t *r = w->runner;
    const sl_stage_desc_t *d = r->desc;
    uint32_t capacity = r->spec->queue;
    /* Wait for room for a whole batch: pulling into every sliver of freed
     * capacity would fill the links with tiny messages. */
    uint32_t chunk = r->out_batch < capacity ? r->out_batch : capacity;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        while (capacity - r->src_held < chunk && !r->stop)
            pthread_cond_wait(&r->cv, &r->mu);
        if (r->stop) {
            pthread_mutex_unlock(&r->mu);
            return NULL;
        }
        uint32_t budget = capacity - r->src_held;
        if (budget > r->out_batch)
            budget = r->out_batch;
        r->src_held += budget; /* reserved until we know what was used */
        pthread_mutex_unlock(&r->mu);

        int rc;
        /* A stopping run still calls pull(): a source may hold input it
         * already acknowledged (an HTTP 202) and emits it before SL_EOF.
         * Past the grace period nothing more is taken. */
        if (atomic_load_explicit(&r->run->spilling, RELAXED) ||
            atomic_load_explicit(&r->run->aborting, RELAXED)) {
            rc = SL_EOF;
            sl__ctx_begin_pull(&w->ctx, 0);
        } else {
            uint64_t t0 = sl_mono_ns();
            sl__ctx_begin_pull(&w->ctx, budget);
            atomic_store_explicit(&w->stats.busy, 1, RELAXED);
            rc = d->pull(w->state, &w->ctx);
            sl__ctx_end_call(&w->ctx);
            atomic_store_explicit(&w->stats.busy, 0, RELAXED);
            atomic_fetch_add_explicit(&w->stats.busy_ns, sl_mono_ns() - t0, RELAXED);
        }
        uint32_t emitted = w->ctx.emitted;
        atomic_fetch_add_explicit(&w->stats.emitted, emitted, RELAXED);
        atomic_fetch_add_explicit(&w->stats.read, emitted, RELAXED);
        atomic_fetch_add_explicit(&w->stats.ok, emitted, RELAXED);

        pthread_mutex_lock(&r->mu);
        r->src_held -= budget - emitted;
        pthread_mutex_unlock(&r->mu);
        if (emitted)
            s_post_output(w, 0, emitted, 0, 0);
        s_maybe_mark(w, rc == SL_EOF);
        /* Any code but 0 and SL_EOF fails the source: read as 0 (nothing
         * now), an undefined positive one would have it pulled again at
         * once, for ever. */
        if (rc != 0) {
            if (rc != SL_EOF) {
                char code[SL_RC_TEXT_MAX];
                sl__log(SL_LOG_ERROR, r->spec->name, (int)w->index,
                        "source failed: %s",
                        rc < 0 && w->ctx.has_err
                            ? w->ctx.err
                            : sl__rc_text(rc, "pull", code, sizeof(code)));
                atomic_store(&r->failed, 1);
            }
            s_flush(w, 0);
            return NULL;
        }
    }
}

static void s_worker_buffers_fini(sl_worker_t *w)
{
    sl__batch_fini(&w->retry_out);
    sl__batch_fini(&w->dl_out);
    free(w->retry_first);
    w->retry_first = NULL;
    free(w->res_slots);
    w->res_slots = NULL;
    w->retry_first_cap = 0;
}

/* Builds worker i's context and plugin state (thread lanes). */
int sl__worker_init_one(sl_runner_t *r, unsigned i, char *err, size_t errlen)
{
    const sl_topo_stage_t *s = r->spec;
    sl_worker_t *w = &r->workers[i];
    if (s->n_uses && !w->res_slots &&
        !(w->res_slots = calloc(s->n_uses, sizeof(int)))) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int rc = sl__ctx_init(&w->ctx, s->name, (unsigned)r->index, i,
                          r->n_workers, r->desc->kind == SL_STAGE_SOURCE,
                          r->out_batch, &r->run->stopping);
    if (rc) {
        snprintf(err, errlen, "out of memory");
        return rc;
    }
    w->ctx_ready = 1;
    w->ctx.prio_rule = s->priority;
    if (r->desc->kind == SL_STAGE_SOURCE && r->run->ckpt) {
        w->ctx.positions_on = 1;
        w->ctx.resume = sl__ckpt_resume(r->run->ckpt, r->index, i,
                                        &w->ctx.resume_len);
    }
    w->ctx.no_emit = r->desc->kind == SL_STAGE_SINK;
    w->ctx.on_full = s_on_full;
    w->ctx.on_full_arg = w;
    w->ctx.on_input_error = s_on_input_error;
    w->ctx.on_input_error_arg = w;
    w->ctx.on_reject = s_on_reject;
    w->ctx.on_reject_arg = w;
    w->ctx.limits = s->limits;
    sl_diag_t diag;
    sl__diag_init(&diag);
    char context[160];
    snprintf(context, sizeof(context), "stage '%s'", s->name);
    sl__config_doc_set_diag(r->run->topo->doc, &diag, context);
    rc = r->desc->init(&w->ctx, s->config, &w->state);
    sl__config_doc_set_diag(r->run->topo->doc, NULL, NULL);
    if (rc) {
        char code[SL_RC_TEXT_MAX];
        if (diag.count)
            snprintf(err, errlen, "%s", diag.lines[0]);
        else
            snprintf(err, errlen, "stage '%s': %s init failed: %s", s->name,
                     s->plugin_name, sl__rc_text(rc, "init", code,
                                                 sizeof(code)));
        /* Callers get 0 or a negative errno, whatever the plugin said. */
        if (rc > 0 || rc < -4095)
            rc = -EINVAL;
    } else {
        w->state_ready = 1;
    }
    sl__diag_fini(&diag);
    return rc;
}

/* Slots for the largest pool; the first `workers` are set up now, the
 * rest when an elastic pool grows into them. */
int sl__worker_init_all(sl_runner_t *r, char *err, size_t errlen)
{
    r->workers = calloc(r->n_workers, sizeof(*r->workers));
    if (!r->workers) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    for (unsigned i = 0; i < r->n_workers; i++) {
        sl__batch_init(&r->workers[i].retry_out);
        sl_prioq_init(&r->workers[i].pq);
        pthread_mutex_init(&r->workers[i].hist_mu, NULL);
        sl__hist_init(&r->workers[i].handler);
        r->workers[i].sample_left = SL_HANDLER_SAMPLE;
        sl__batch_init(&r->workers[i].dl_out);
        r->workers[i].runner = r;
        r->workers[i].index = i;
        r->workers[i].live = i < r->n_live;
        sl__hist_init(&r->workers[i].latency);
    }
    if (r->spec->lane == SL_LANE_PROCESS)
        return 0; /* the plugin lives in the worker processes */
    for (unsigned i = 0; i < r->n_live; i++) {
        int rc = sl__worker_init_one(r, i, err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

int sl__worker_start_one(sl_runner_t *r, unsigned i)
{
    void *(*main_fn)(void *) =
        r->desc->kind == SL_STAGE_SOURCE ? s_source_main : s_consumer_main;
    sl_worker_t *w = &r->workers[i];
    w->retire = 0;
    atomic_store_explicit(&w->last_busy_ns, sl_mono_ns(), RELAXED);
    int rc = pthread_create(&w->thread, NULL, main_fn, w);
    if (rc)
        return -rc;
    w->started = 1;
    /* thread names are capped at 15 bytes; long stage names truncate */
    char name[32];
    snprintf(name, sizeof(name), "w:%.8s/%u", r->spec->name, i % 100);
    name[15] = '\0';
    pthread_setname_np(w->thread, name);
    return 0;
}

int sl__worker_start_all(sl_runner_t *r)
{
    if (r->pp)
        return 0; /* the dispatcher starts the worker processes */
    for (unsigned i = 0; i < r->n_live; i++) {
        int rc = sl__worker_start_one(r, i);
        if (rc)
            return rc;
    }
    return 0;
}

/* A retired worker has flushed and ended: join it and free its state so
 * that its slot can be used again. */
void sl__worker_reap(sl_runner_t *r, unsigned i)
{
    sl_worker_t *w = &r->workers[i];
    if (w->started) {
        pthread_join(w->thread, NULL);
        w->started = 0;
    }
    if (w->state_ready && r->desc->fini)
        r->desc->fini(w->state);
    w->state_ready = 0;
    w->state = NULL;
    if (w->ctx_ready)
        sl__ctx_fini(&w->ctx);
    w->ctx_ready = 0;
    s_worker_buffers_fini(w);
}

void sl__worker_join_all(sl_runner_t *r)
{
    for (unsigned i = 0; r->workers && i < r->n_workers; i++)
        if (r->workers[i].started) {
            pthread_join(r->workers[i].thread, NULL);
            r->workers[i].started = 0;
        }
}

void sl__worker_fini_all(sl_runner_t *r)
{
    if (!r->workers)
        return;
    for (unsigned i = 0; i < r->n_workers; i++) {
        sl_worker_t *w = &r->workers[i];
        sl_prioq_drain(&w->pq, sl__work_free_cb, NULL);
        sl_prioq_fini(&w->pq);
        if (w->state_ready && r->desc->fini)
            r->desc->fini(w->state);
        if (w->ctx_ready)
            sl__ctx_fini(&w->ctx);
        s_worker_buffers_fini(w);
    }
    for (unsigned i = 0; i < r->n_workers; i++)
        pthread_mutex_destroy(&r->workers[i].hist_mu);
    free(r->workers);
    r->workers = NULL;
}

void sl__work_free(sl_work_t *item) { s_free_item(item); }

/* ---- sharing work between workers ------------------------------------------- */

static uint32_t s_min_share(sl_runner_t *r)
{
    uint64_t ns = atomic_load_explicit(&r->rec_ns, RELAXED);
    if (!ns)
        return 1; /* nothing measured yet: the first batches spread */
    uint64_t n = (SHARE_MIN_NS + ns - 1) / ns;
    return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

uint32_t sl__work_share(sl_runner_t *r, uint64_t queued, unsigned live)
{
    if (live <= 1)
        return UINT32_MAX;
    uint64_t share = (queued + live - 1) / live;
    uint32_t cap = r->spec->queue / (2 * live);
    if (share > cap)
        share = cap;
    uint32_t min = s_min_share(r);
    return share < min ? min : (uint32_t)share;
}

int sl__work_should_split(sl_runner_t *r, uint32_t count, uint32_t share)
{
    return share < count && count - share >= s_min_share(r);
}

void sl__work_note_cost(sl_runner_t *r, uint64_t ns, uint32_t count)
{
    if (!count || r->n_workers == 1) /* a fixed single worker never shares */
        return;
    uint64_t x = ns / count ? ns / count : 1;
    uint64_t old = atomic_load_explicit(&r->rec_ns, RELAXED);
    /* workers race here; a lost update only slows the average down */
    atomic_store_explicit(&r->rec_ns, old ? old - old / 8 + x / 8 : x,
                          RELAXED);
}

int sl__work_iter(const sl_work_t *item, sl_batch_iter_t *it)
{
    const char *data = item->owned_buf
                           ? item->owned_buf
                           : zmq_msg_data((zmq_msg_t *)&item->msg);
    size_t len = item->owned_buf ? item->owned_len
                                 : zmq_msg_size((zmq_msg_t *)&item->msg);
    if (!item->view_end)
        return sl__batch_iter_init(it, data, len, NULL);
    if (item->view_off < SL_BATCH_HDR || item->view_off > item->view_end ||
        item->view_end > len)
        return -EBADMSG;
    /* A view has no header of its own: the walk starts at its first
     * record and must end exactly at its end after `count` records. */
    it->p = (const unsigned char *)data + item->view_off;
    it->end = (const unsigned char *)data + item->view_end;
    it->left = item->count;
    return 0;
}

static void s_free_buf(void *data, void *hint)
{
    (void)hint;
    free(data);
}

sl_work_t *sl__work_split(sl_work_t *item, uint32_t n)
{
    sl_batch_iter_t it;
    sl_envelope_t env;
    const char *payload;
    size_t plen;
    if (n == 0 || n >= item->count || item->worker >= 0 ||
        sl__work_iter(item, &it) != 0)
        return NULL;
    const unsigned char *base = it.p - (item->view_end ? item->view_off
                                                       : SL_BATCH_HDR);
    for (uint32_t k = 0; k < n; k++)
        if (sl__batch_next(&it, &env, &payload, &plen) != 1)
            return NULL; /* validated on arrival: cannot happen */
    size_t off = (size_t)(it.p - base);
    size_t end = (size_t)(it.end - base);
    sl_work_t *rest = calloc(1, sizeof(*rest));
    if (!rest)
        return NULL;
    if (item->first_ns &&
        !(rest->first_ns = malloc((item->count - n) * sizeof(uint64_t))))
        goto fail;
    /* the shares reference one message: an owned buffer becomes one */
    if (item->owned_buf) {
        if (zmq_msg_init_data(&item->msg, item->owned_buf, item->owned_len,
                              s_free_buf, NULL) != 0)
            goto fail;
        item->owned_buf = NULL;
    }
    zmq_msg_init(&rest->msg);
    if (zmq_msg_copy(&rest->msg, &item->msg) != 0) {
        zmq_msg_close(&rest->msg);
        goto fail;
    }
    if (rest->first_ns)
        memcpy(rest->first_ns, item->first_ns + n,
               (item->count - n) * sizeof(uint64_t));
    rest->view_off = off;
    rest->view_end = end;
    rest->count = item->count - n;
    rest->link = item->link;
    rest->worker = item->worker;
    rest->gen = item->gen;
    rest->retry = item->retry;
    rest->level = item->level;
    if (!item->view_end)
        item->view_off = SL_BATCH_HDR;
    item->view_end = off;
    item->count = n;
    return rest;
fail:
    free(rest->first_ns);
    free(rest);
    return NULL;
}

int sl__work_own(sl_work_t *item)
{
    if (!item->view_end)
        return 0;
    const char *data = zmq_msg_data(&item->msg);
    size_t n = item->view_end - item->view_off;
    char *buf = malloc(SL_BATCH_HDR + n);
    if (!buf)
        return -ENOMEM;
    memcpy(buf, data, SL_BATCH_HDR);
    sl__put_u32((unsigned char *)buf + 4, item->count);
    memcpy(buf + SL_BATCH_HDR, data + item->view_off, n);
    zmq_msg_t m;
    if (zmq_msg_init_data(&m, buf, SL_BATCH_HDR + n, s_free_buf, NULL) != 0) {
        free(buf);
        return -ENOMEM;
    }
    zmq_msg_move(&item->msg, &m); /* releases the shared bytes */
    zmq_msg_close(&m);
    item->view_off = item->view_end = 0;
    return 0;
}

void sl__work_free_cb(void *item, void *arg)
{
    (void)arg;
    s_free_item(item);
}
