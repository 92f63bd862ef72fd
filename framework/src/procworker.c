/*
 * The child side of a process lane: `sluice __worker ...`. One plugin
 * instance, fed one item at a time by the parent's dispatcher. Before each
 * record it notes in the shared heartbeat page which record it is on, so
 * that if it dies the parent blames exactly that record.
 *
 * Failures are routed as in a thread lane (worker.c): a record with
 * attempts left goes back to the parent with the item's DONE, for the
 * dispatcher's delayed retry queue; a last failure goes to the dead-letter
 * stage (as records in the DONE), or to the dead-letter file, which the
 * child appends to itself.
 */
#include "ctx.h"
#include "deadletter.h"
#include "failure.h"
#include "log.h"
#include "ppwire.h"
#include "procpool.h"
#include "resource.h"
#include "topology.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

/* How often an idle worker checks that its parent is still there, on top
 * of the parent-death signal. */
#define PARENT_CHECK_MS 500

typedef struct s_held {
    char *buf;
    size_t len;
} s_held_t;

/* Batches kept until the item's DONE. */
typedef struct s_frames {
    s_held_t *v;
    size_t n, cap;
} s_frames_t;

typedef struct s_child {
    uint64_t slow_logged; /* slow handler calls so far (log rate limit) */
    void *zctx;
    void *sock;
    pid_t ppid;
    sl_heartbeat_t *hb;
    sl_topology_t *topo;
    const sl_topo_stage_t *stage;
    const sl_stage_desc_t *desc;
    sl_ctx_t ctx;
    int ctx_ready;
    void *state;
    int state_ready;
    sl_deadletter_t *dl;
    int timeouts;       /* the parent enforces a timeout: stamp each record */
    uint64_t errors_logged;
    atomic_int stopping;
    int sync_on;        /* the run keeps positions: sync() after each item */
    uint32_t dl_batch;  /* most dead letters per batch (dead-letter stage) */
    sl_resources_t *rs; /* shared limits, or NULL */
    int *res_slots;     /* slots held of the stage's `uses` */
    s_frames_t held;    /* full output batches of the item in hand */
    s_frames_t dl_held; /* full dead-letter batches of the item in hand */
    sl_batch_t dl_out;  /* dead letters for the dead-letter stage */
    sl_batch_t retry_out; /* failures with attempts left */
    unsigned char *retry_first; /* u64 LE per retry: first failure time */
    size_t retry_first_cap;     /* in records */
    char res_err[256];  /* why the resource table could not be attached */
} s_child_t;

static int s_frames_push(s_frames_t *f, sl_batch_t *b)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        s_held_t *bigger = realloc(f->v, cap * sizeof(*bigger));
        if (!bigger)
            return -ENOMEM;
        f->v = bigger;
        f->cap = cap;
    }
    s_held_t *h = &f->v[f->n];
    h->buf = sl__batch_release(b, &h->len);
    if (!h->buf)
        return -ENOMEM;
    f->n++;
    return 0;
}

/* Sends every held frame (the last with `more` as given) and frees them
 * all, sent or not. */
static int s_frames_send(void *sock, s_frames_t *f, int rc, int more)
{
    for (size_t i = 0; i < f->n; i++) {
        int flags = i + 1 < f->n || more ? ZMQ_SNDMORE : 0;
        if (rc == 0 && zmq_send(sock, f->v[i].buf, f->v[i].len, flags) < 0)
            rc = -EIO;
        free(f->v[i].buf);
    }
    f->n = 0;
    return rc;
}

static void s_frames_fini(s_frames_t *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->v[i].buf);
    free(f->v);
    memset(f, 0, sizeof(*f));
}

/* Sends a DONE or FLUSHED: the header, the output batches that filled up
 * during the call, then the last (possibly empty) batch; then the item's
 * dead letters for the dead-letter stage and its retries (ppwire.h). */
static int s_send_counts(s_child_t *c, ppw_type_t type, ppw_msg_t *m)
{
    size_t len = 0, retry_len = 0;
    char *buf = NULL, *retry = NULL;
    if (c->ctx.out.count)
        buf = sl__batch_release(&c->ctx.out, &len);
    else
        sl__batch_reset(&c->ctx.out);
    int rc = 0;
    if (c->dl_out.count && s_frames_push(&c->dl_held, &c->dl_out) != 0)
        rc = -ENOMEM;
    if (m->retried && !(retry = sl__batch_release(&c->retry_out, &retry_len)))
        rc = -ENOMEM;
    m->n_out = (uint32_t)c->held.n + 1;
    m->n_dl = (uint32_t)c->dl_held.n;
    unsigned char hdr[PPW_COUNTS_SIZE];
    ppw_counts(hdr, type, m);
    if (rc == 0 && zmq_send(c->sock, hdr, sizeof(hdr), ZMQ_SNDMORE) < 0)
        rc = -EIO;
    rc = s_frames_send(c->sock, &c->held, rc, 1);
    int more = m->n_dl || m->retried;
    if (rc == 0 && zmq_send(c->sock, buf ? buf : "", len,
                            more ? ZMQ_SNDMORE : 0) < 0)
        rc = -EIO;
    free(buf);
    rc = s_frames_send(c->sock, &c->dl_held, rc, m->retried != 0);
    if (m->retried) {
        if (rc == 0 && (zmq_send(c->sock, retry, retry_len, ZMQ_SNDMORE) < 0 ||
                        zmq_send(c->sock, c->retry_first, m->retried * 8,
                                 0) < 0))
            rc = -EIO;
        free(retry);
    }
    sl__batch_reset(&c->retry_out);
    sl__batch_reset(&c->dl_out);
    return rc;
}

/* Output filled a batch in the middle of an item: keep it until the item
 * is done, so that nothing of an item leaves before all of it is handled
 * (a worker that dies then has sent nothing that will be sent again). */
static int s_on_full(sl_ctx_t *ctx, void *arg)
{
    s_child_t *c = arg;
    return s_frames_push(&c->held, &ctx->out);
}

static void s_on_reject(sl_ctx_t *ctx, const void *rec, size_t len,
                        const char *msg, void *arg);

static int s_send_small(s_child_t *c, ppw_type_t type)
{
    unsigned char hdr[PPW_SMALL_SIZE];
    ppw_small(hdr, type);
    return zmq_send(c->sock, hdr, sizeof(hdr), 0) < 0 ? -EIO : 0;
}

static void s_send_fail(s_child_t *c, const char *why)
{
    unsigned char hdr[PPW_SMALL_SIZE];
    ppw_small(hdr, PPW_FAIL);
    zmq_send(c->sock, hdr, sizeof(hdr), ZMQ_SNDMORE);
    zmq_send(c->sock, why, strlen(why), 0);
}

/* Receives a whole multipart message into frames; returns the count, 0 on
 * timeout, negative when the socket failed. */
static int s_recv(s_child_t *c, zmq_msg_t *frames, int max, int timeout_ms)
{
    zmq_pollitem_t item = {.socket = c->sock, .events = ZMQ_POLLIN};
    int rc = zmq_poll(&item, 1, timeout_ms);
    if (rc <= 0)
        return rc < 0 && errno != EINTR ? -EIO : 0;
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t tmp, *f = n < max ? &frames[n] : &tmp;
        zmq_msg_init(f);
        if (zmq_msg_recv(f, c->sock, 0) < 0) {
            zmq_msg_close(f);
            return -EIO;
        }
        more = zmq_msg_more(f);
        if (f == &tmp)
            zmq_msg_close(f);
        else
            n++;
    }
    return n;
}

static void s_close_frames(zmq_msg_t *frames, int n)
{
    for (int i = 0; i < n; i++)
        zmq_msg_close(&frames[i]);
}

static char *s_frame_str(zmq_msg_t *f)
{
    return strndup(zmq_msg_data(f), zmq_msg_size(f));
}

static int s_setup(s_child_t *c, unsigned worker)
{
    zmq_msg_t f[4];
    int n;
    do {
        n = s_recv(c, f, 4, PARENT_CHECK_MS);
        if (n == 0 && getppid() != c->ppid)
            return -ESRCH;
    } while (n == 0);
    ppw_msg_t m;
    if (n != 4 || ppw_parse(zmq_msg_data(&f[0]), zmq_msg_size(&f[0]), &m) != 0 ||
        m.type != PPW_SETUP) {
        if (n > 0)
            s_close_frames(f, n);
        return -EPROTO;
    }
    char *name = s_frame_str(&f[1]);
    char *dir = s_frame_str(&f[2]);
    char *text = s_frame_str(&f[3]);
    s_close_frames(f, n);
    int rc = -ENOMEM;
    if (!name || !dir || !text)
        goto out;

    sl_diag_t diag;
    sl__diag_init(&diag);
    c->topo = sl__topology_parse(name, dir, text, &diag);
    if (!c->topo || m.stage >= c->topo->n_stages) {
        s_send_fail(c, diag.count ? diag.lines[0] : "topology does not match");
        sl__diag_fini(&diag);
        rc = -EINVAL;
        goto out;
    }
    sl__diag_fini(&diag);
    c->stage = &c->topo->stages[m.stage];
    c->desc = c->stage->plugin->desc;
    c->timeouts = m.timeout_ms != 0;
    c->sync_on = (m.flags & PPW_SETUP_SYNC) && c->desc->sync;
    c->dl_batch = m.dl_batch ? m.dl_batch : 1;
    if (c->stage->n_uses && !c->rs) {
        s_send_fail(c, c->res_err[0] ? c->res_err
                                     : "no shared resource table from the "
                                       "parent");
        rc = -EINVAL;
        goto out;
    }
    if (c->stage->n_uses &&
        !(c->res_slots = malloc(c->stage->n_uses * sizeof(int)))) {
        s_send_fail(c, "out of memory");
        goto out;
    }
    for (size_t k = 0; k < c->stage->n_uses; k++)
        c->res_slots[k] = -1;
    rc = sl__ctx_init(&c->ctx, c->stage->name, m.stage, worker, m.workers, 0,
                      m.batch ? m.batch : 1, &c->stopping);
    if (rc) {
        s_send_fail(c, "out of memory");
        goto out;
    }
    c->ctx_ready = 1;
    c->ctx.limits = c->stage->limits;
    c->ctx.no_emit = c->desc->kind == SL_STAGE_SINK;
    c->ctx.on_full = s_on_full;
    c->ctx.on_full_arg = c;
    c->ctx.on_reject = s_on_reject;
    c->ctx.on_reject_arg = c;

    sl__diag_init(&diag);
    char context[160];
    snprintf(context, sizeof(context), "stage '%s'", c->stage->name);
    sl__config_doc_set_diag(c->topo->doc, &diag, context);
    rc = c->desc->init(&c->ctx, c->stage->config, &c->state);
    sl__config_doc_set_diag(c->topo->doc, NULL, NULL);
    if (rc) {
        char why[512], code[SL_RC_TEXT_MAX];
        snprintf(why, sizeof(why), "%s",
                 diag.count ? diag.lines[0]
                            : sl__rc_text(rc, "init", code, sizeof(code)));
        s_send_fail(c, why);
        sl__diag_fini(&diag);
        goto out;
    }
    sl__diag_fini(&diag);
    c->state_ready = 1;
    if (c->stage->dl_path) {
        char err[512];
        c->dl = sl__deadletter_open(c->stage->dl_path, c->stage->dl_format,
                                    err, sizeof(err));
        if (!c->dl) {
            s_send_fail(c, err);
            rc = -EIO;
            goto out;
        }
    }
    rc = s_send_small(c, PPW_READY);
out:
    free(name);
    free(dir);
    free(text);
    return rc;
}

/* A dead letter for the stage's dead-letter stage, as one of its records;
 * a full batch waits beside the output so that each fits that stage's
 * credit share. */
static int s_dead_letter_to_stage(s_child_t *c, const sl_envelope_t *env,
                                  const char *p, size_t len, const char *why,
                                  uint32_t attempts, uint64_t first_ns,
                                  uint64_t last_ns)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int rc = sl__deadletter_encode(&sb, c->stage->name, env, p, len, why,
                                   attempts, first_ns, last_ns);
    sl_envelope_t out = {.id = env->id, .ts_ns = env->ts_ns,
                         .priority = env->priority};
    if (rc == 0)
        rc = sl__batch_append(&c->dl_out, &out, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    if (rc == 0 && c->dl_out.count >= c->dl_batch)
        rc = s_frames_push(&c->dl_held, &c->dl_out);
    return rc;
}

/* A record from flush() over the stage's limits: as on a thread lane
 * (worker.c) no input record stands for it, so it is counted nowhere and
 * goes to the dead-letter target with the reason, one attempt. */
static void s_on_reject(sl_ctx_t *ctx, const void *rec, size_t len,
                        const char *msg, void *arg)
{
    s_child_t *c = arg;
    sl_envelope_t env = {.id = sl__ctx_fresh_id(ctx), .ts_ns = sl_now_ns()};
    uint64_t now = env.ts_ns;
    if (c->stage->dl_stage >= 0 &&
        s_dead_letter_to_stage(c, &env, rec, len, msg, 1, now, now) == 0)
        return;
    sl__record_give_up_at(c->stage->name, (int)c->ctx.worker,
                          &c->errors_logged, c->dl, &env, rec, len, msg, 1,
                          now, now);
}

/* One failed attempt (see sl__worker_record_failed): back to the parent
 * for a retry while attempts are left, else a dead letter. first_ns is 0
 * on a first failure. */
static void s_record_failed(s_child_t *c, ppw_msg_t *m,
                            const sl_envelope_t *env, const char *p,
                            size_t len, const char *why, uint64_t first_ns)
{
    uint64_t now = sl_now_ns();
    uint32_t attempts = env->attempts + 1;
    if (!first_ns)
        first_ns = now;
    if (attempts < c->stage->max_attempts && !c->ctx.err_final) {
        sl_envelope_t again = *env;
        again.attempts = attempts;
        size_t n = c->retry_out.count;
        if (n == c->retry_first_cap) {
            size_t cap = n ? 2 * n : 64;
            unsigned char *f = realloc(c->retry_first, cap * 8);
            if (f) {
                c->retry_first = f;
                c->retry_first_cap = cap;
            }
        }
        if (n < c->retry_first_cap &&
            sl__batch_append(&c->retry_out, &again, p, len) == 0) {
            sl__put_u64(c->retry_first + 8 * n, first_ns);
            m->retried++;
            return;
        }
        /* out of memory: no retry; it is dead-lettered below */
    }
    m->errors++;
    if (c->stage->dl_stage >= 0 &&
        s_dead_letter_to_stage(c, env, p, len, why, attempts, first_ns,
                               now) == 0)
        return;
    sl__record_give_up_at(c->stage->name, (int)c->ctx.worker,
                          &c->errors_logged, c->dl, env, p, len, why,
                          attempts, first_ns, now);
}

/* One handler call, holding the stage's shared resources (`uses:`). The
 * timeout clock starts once they are held: waiting for a slot is not a
 * hang. */
static int s_call_process(s_child_t *c, sl_record_t *rec)
{
    size_t n_uses = c->stage->n_uses;
    if (n_uses &&
        sl__resources_acquire_set(c->rs, c->stage->uses, n_uses, &c->stopping,
                                  c->res_slots) != 0)
        return sl_ctx_error(&c->ctx, "run aborted while waiting for a "
                                     "shared resource");
    if (c->timeouts)
        atomic_store_explicit(&c->hb->since_ns, sl_mono_ns(),
                              memory_order_relaxed);
    /* the index (and start) must be visible before anything the record
     * does */
    atomic_thread_fence(memory_order_seq_cst);
    uint32_t slow_ms = c->stage->slow_ms;
    struct timespec t0, t1;
    if (slow_ms)
        clock_gettime(CLOCK_MONOTONIC_COARSE, &t0);
    int rc = c->desc->process(c->state, &c->ctx, rec);
    if (slow_ms) {
        clock_gettime(CLOCK_MONOTONIC_COARSE, &t1);
        int64_t ms = (t1.tv_sec - t0.tv_sec) * 1000 +
                     (t1.tv_nsec - t0.tv_nsec) / 1000000;
        if (ms > (int64_t)slow_ms &&
            (++c->slow_logged <= 10 || c->slow_logged % 1000 == 0))
            sl__log(SL_LOG_WARN, c->stage->name, (int)c->ctx.worker,
                    "slow handler: record %llu took %lld ms (slow_ms %u)",
                    (unsigned long long)rec->env.id, (long long)ms, slow_ms);
    }
    if (n_uses)
        sl__resources_release_set(c->rs, c->stage->uses, n_uses,
                                  c->res_slots);
    return rc;
}

/* `firsts`: with a retry item, each record's first failure (u64 LE). */
static int s_handle_item(s_child_t *c, uint64_t seq, zmq_msg_t *batch,
                         zmq_msg_t *firsts)
{
    ppw_msg_t m = {.seq = seq};
    uint64_t t0 = sl_mono_ns();
    int is_sink = c->desc->kind == SL_STAGE_SINK;
    sl_batch_iter_t it;
    sl_envelope_t env;
    const char *p;
    size_t len;
    sl_record_t rec;
    uint32_t index = 0, count = 0;
    const unsigned char *first = firsts ? zmq_msg_data(firsts) : NULL;
    if (sl__batch_validate(zmq_msg_data(batch), zmq_msg_size(batch), &count) ||
        (firsts && zmq_msg_size(firsts) != (size_t)count * 8) ||
        sl__batch_iter_init(&it, zmq_msg_data(batch), zmq_msg_size(batch),
                            NULL))
        return -EPROTO;
    atomic_store_explicit(&c->hb->index, 0, memory_order_relaxed);
    atomic_store_explicit(&c->hb->since_ns, 0, memory_order_relaxed);
    atomic_store(&c->hb->item, seq);
    while (sl__batch_next(&it, &env, &p, &len) == 1 && index < count) {
        /* past the grace period the parent spills what is not started */
        if (atomic_load_explicit(&c->hb->cut, memory_order_relaxed)) {
            m.flags |= PPW_DONE_CUT;
            break;
        }
        atomic_store_explicit(&c->hb->index, index, memory_order_relaxed);
        if (c->timeouts && c->stage->n_uses)
            atomic_store_explicit(&c->hb->since_ns, 0, memory_order_relaxed);
        sl__ctx_begin_record(&c->ctx, &rec, &env, p, len);
        /* a positive code counts as success, as in a thread lane */
        int rc = sl__ctx_limit_rc(&c->ctx, s_call_process(c, &rec));
        /* a failed record's output must not go on: its retry stands for it */
        if (rc < 0 && sl__ctx_drop_record_output(&c->ctx) < 0)
            sl__log(SL_LOG_WARN, c->stage->name, (int)c->ctx.worker,
                    "record %llu failed after part of its output had gone "
                    "on (a full batch); that part is not taken back",
                    (unsigned long long)env.id);
        uint32_t emitted = c->ctx.emitted;
        if (rc < 0) {
            char why[sizeof(c->ctx.err)], code[SL_RC_TEXT_MAX];
            snprintf(why, sizeof(why), "%s",
                     c->ctx.has_err ? c->ctx.err
                                    : sl__rc_text(rc, NULL, code,
                                                  sizeof(code)));
            s_record_failed(c, &m, &env, p, len, why,
                            first ? sl__get_u64(first + 8 * index) : 0);
        }
        sl__ctx_end_record(&c->ctx);
        if (rc < 0) {
            /* counted above */
        } else if (is_sink || emitted) {
            m.ok++;
        } else {
            m.filtered++;
        }
        m.emitted += emitted;
        index++;
    }
    m.handled = index;
    /* Make what the item did durable before it counts as finished. */
    if (c->sync_on) {
        int src = c->desc->sync(c->state, &c->ctx);
        if (src < 0) {
            char code[SL_RC_TEXT_MAX];
            sl__log(SL_LOG_ERROR, c->stage->name, (int)c->ctx.worker,
                    "sync failed: %s; positions are not committed past it",
                    c->ctx.has_err ? c->ctx.err
                                   : sl__rc_text(src, NULL, code,
                                                 sizeof(code)));
            m.flags |= PPW_DONE_SYNC_FAILED;
        }
    }
    /* Handled, though the parent may never hear of it if we die now. */
    atomic_store(&c->hb->done, seq);
    atomic_store(&c->hb->item, 0);
    m.busy_ns = sl_mono_ns() - t0;
    return s_send_counts(c, PPW_DONE, &m);
}

static int s_loop(s_child_t *c)
{
    for (;;) {
        zmq_msg_t f[3];
        int n = s_recv(c, f, 3, PARENT_CHECK_MS);
        if (n < 0)
            return n;
        if (n == 0) {
            if (getppid() != c->ppid)
                return -ESRCH;
            continue;
        }
        ppw_msg_t m;
        int rc = ppw_parse(zmq_msg_data(&f[0]), zmq_msg_size(&f[0]), &m);
        int retry = (m.flags & PPW_ITEM_RETRY) != 0;
        if (rc == 0 && m.type == PPW_ITEM && n == 2 + retry) {
            rc = s_handle_item(c, m.seq, &f[1], retry ? &f[2] : NULL);
        } else if (rc == 0 && m.type == PPW_FLUSH) {
            ppw_msg_t out = {0};
            if (c->desc->flush) {
                sl__ctx_begin_flush(&c->ctx);
                int frc = c->desc->flush(c->state, &c->ctx);
                sl__ctx_end_call(&c->ctx);
                out.emitted = c->ctx.emitted;
                if (frc < 0) {
                    char code[SL_RC_TEXT_MAX];
                    out.errors = 1;
                    sl__log(SL_LOG_ERROR, c->stage->name, (int)c->ctx.worker,
                            "flush failed: %s",
                            c->ctx.has_err
                                ? c->ctx.err
                                : sl__rc_text(frc, NULL, code, sizeof(code)));
                }
            }
            rc = s_send_counts(c, PPW_FLUSHED, &out);
        } else if (rc == 0 && m.type == PPW_QUIT) {
            s_close_frames(f, n);
            return 0;
        } else {
            rc = -EPROTO;
        }
        s_close_frames(f, n);
        if (rc)
            return rc;
    }
}

int sl__procworker_main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "sluice __worker: internal command, started by a "
                        "process-lane stage\n");
        return 2;
    }
    s_child_t c;
    memset(&c, 0, sizeof(c));
    const char *endpoint = argv[1];
    unsigned worker = (unsigned)strtoul(argv[2], NULL, 10);
    uint32_t gen = (uint32_t)strtoul(argv[3], NULL, 10);
    int hb_fd = (int)strtol(argv[4], NULL, 10);
    int res_fd = (int)strtol(argv[5], NULL, 10);
    c.ppid = (pid_t)strtol(argv[6], NULL, 10);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != c.ppid)
        return 1;
    sl__batch_init(&c.dl_out);
    sl__batch_init(&c.retry_out);
    if (res_fd >= 0) {
        /* a stage without `uses` does not need it: setup decides */
        c.rs = sl__resources_attach(res_fd, c.res_err, sizeof(c.res_err));
        close(res_fd);
    }

    int code = 1;
    c.hb = mmap(NULL, sizeof(sl_heartbeat_t), PROT_READ | PROT_WRITE,
                MAP_SHARED, hb_fd, 0);
    close(hb_fd);
    if (c.hb == MAP_FAILED)
        return 1;
    c.zctx = zmq_ctx_new();
    c.sock = c.zctx ? zmq_socket(c.zctx, ZMQ_DEALER) : NULL;
    if (!c.sock)
        goto out;
    unsigned char ident[PPW_IDENT_SIZE];
    ppw_ident(ident, worker, gen);
    int zero = 0, linger = 1000;
    zmq_setsockopt(c.sock, ZMQ_ROUTING_ID, ident, sizeof(ident));
    zmq_setsockopt(c.sock, ZMQ_SNDHWM, &zero, sizeof(zero));
    zmq_setsockopt(c.sock, ZMQ_RCVHWM, &zero, sizeof(zero));
    zmq_setsockopt(c.sock, ZMQ_LINGER, &linger, sizeof(linger));
    if (zmq_connect(c.sock, endpoint) != 0 || s_send_small(&c, PPW_HELLO) != 0)
        goto out;
    if (s_setup(&c, worker) != 0)
        goto out;
    code = s_loop(&c) == 0 ? 0 : 1;
out:
    if (c.state_ready && c.desc->fini)
        c.desc->fini(c.state);
    if (c.ctx_ready)
        sl__ctx_fini(&c.ctx);
    s_frames_fini(&c.held);
    s_frames_fini(&c.dl_held);
    sl__batch_fini(&c.dl_out);
    sl__batch_fini(&c.retry_out);
    free(c.retry_first);
    free(c.res_slots);
    sl__resources_destroy(&c.rs);
    sl__deadletter_close(&c.dl);
    sl__topology_destroy(&c.topo);
    if (c.sock)
        zmq_close(c.sock);
    if (c.zctx)
        zmq_ctx_term(c.zctx);
    munmap(c.hb, sizeof(sl_heartbeat_t));
    return code;
}
