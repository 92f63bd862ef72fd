/*
 * The child side of a process lane: `sluice __worker ...`. One plugin
 * instance, fed one item at a time by the parent's dispatcher. Before each
 * record it notes in the shared heartbeat page which record it is on, so
 * that if it dies the parent blames exactly that record.
 */
#include "ctx.h"
#include "deadletter.h"
#include "failure.h"
#include "log.h"
#include "ppwire.h"
#include "procpool.h"
#include "topology.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <signal.h>
#include <unistd.h>
#include <zmq.h>

/* How often an idle worker checks that its parent is still there, on top
 * of the parent-death signal. */
#define PARENT_CHECK_MS 500

typedef struct s_held {
    char *buf;
    size_t len;
} s_held_t;

typedef struct s_child {
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
    s_held_t *held; /* full output batches of the item in hand */
    size_t n_held, cap_held;
} s_child_t;

/* Sends a DONE or FLUSHED: the header, the output batches that filled up
 * during the call, then the last (possibly empty) batch. */
static int s_send_counts(s_child_t *c, ppw_type_t type, const ppw_msg_t *m)
{
    unsigned char hdr[PPW_COUNTS_SIZE];
    ppw_counts(hdr, type, m);
    size_t len = 0;
    char *buf = NULL;
    if (c->ctx.out.count)
        buf = sl__batch_release(&c->ctx.out, &len);
    else
        sl__batch_reset(&c->ctx.out);
    int rc = zmq_send(c->sock, hdr, sizeof(hdr), ZMQ_SNDMORE) < 0 ? -EIO : 0;
    for (size_t i = 0; i < c->n_held; i++) {
        if (rc == 0 && zmq_send(c->sock, c->held[i].buf, c->held[i].len,
                                ZMQ_SNDMORE) < 0)
            rc = -EIO;
        free(c->held[i].buf);
    }
    c->n_held = 0;
    if (rc == 0 && zmq_send(c->sock, buf ? buf : "", len, 0) < 0)
        rc = -EIO;
    free(buf);
    return rc;
}

/* Output filled a batch in the middle of an item: keep it until the item
 * is done, so that nothing of an item leaves before all of it is handled
 * (a worker that dies then has sent nothing that will be sent again). */
static int s_on_full(sl_ctx_t *ctx, void *arg)
{
    (void)ctx;
    s_child_t *c = arg;
    if (c->n_held == c->cap_held) {
        size_t cap = c->cap_held ? c->cap_held * 2 : 8;
        s_held_t *bigger = realloc(c->held, cap * sizeof(*bigger));
        if (!bigger)
            return -ENOMEM;
        c->held = bigger;
        c->cap_held = cap;
    }
    s_held_t *h = &c->held[c->n_held];
    h->buf = sl__batch_release(&c->ctx.out, &h->len);
    if (!h->buf)
        return -ENOMEM;
    c->n_held++;
    return 0;
}

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
    rc = sl__ctx_init(&c->ctx, c->stage->name, m.stage, worker, m.workers, 0,
                      m.batch ? m.batch : 1, &c->stopping);
    if (rc) {
        s_send_fail(c, "out of memory");
        goto out;
    }
    c->ctx_ready = 1;
    c->ctx.no_emit = c->desc->kind == SL_STAGE_SINK;
    c->ctx.on_full = s_on_full;
    c->ctx.on_full_arg = c;

    sl__diag_init(&diag);
    char context[160];
    snprintf(context, sizeof(context), "stage '%s'", c->stage->name);
    sl__config_doc_set_diag(c->topo->doc, &diag, context);
    rc = c->desc->init(&c->ctx, c->stage->config, &c->state);
    sl__config_doc_set_diag(c->topo->doc, NULL, NULL);
    if (rc) {
        char why[512];
        snprintf(why, sizeof(why), "%s",
                 diag.count ? diag.lines[0] : strerror(-rc));
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

static int s_handle_item(s_child_t *c, uint64_t seq, zmq_msg_t *batch)
{
    ppw_msg_t m = {.seq = seq};
    uint64_t t0 = sl_mono_ns();
    int is_sink = c->desc->kind == SL_STAGE_SINK;
    sl_batch_iter_t it;
    sl_envelope_t env;
    const char *p;
    size_t len;
    sl_record_t rec;
    uint32_t index = 0;
    atomic_store_explicit(&c->hb->index, 0, memory_order_relaxed);
    atomic_store_explicit(&c->hb->since_ns, c->timeouts ? t0 : 0,
                          memory_order_relaxed);
    atomic_store(&c->hb->item, seq);
    if (sl__batch_iter_init(&it, zmq_msg_data(batch), zmq_msg_size(batch), NULL))
        return -EPROTO;
    while (sl__batch_next(&it, &env, &p, &len) == 1) {
        atomic_store_explicit(&c->hb->index, index, memory_order_relaxed);
        if (c->timeouts)
            atomic_store_explicit(&c->hb->since_ns, sl_mono_ns(),
                                  memory_order_relaxed);
        /* the index must be visible before anything the record does */
        atomic_thread_fence(memory_order_seq_cst);
        sl__ctx_begin_record(&c->ctx, &rec, &env, p, len);
        int rc = c->desc->process(c->state, &c->ctx, &rec);
        uint32_t emitted = c->ctx.emitted;
        if (rc < 0) {
            m.errors++;
            sl__record_give_up(c->stage->name, (int)c->ctx.worker,
                               &c->errors_logged, c->dl, &env, p, len,
                               c->ctx.has_err ? c->ctx.err : strerror(-rc),
                               env.attempts + 1);
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
    /* Handled, though the parent may never hear of it if we die now. */
    atomic_store(&c->hb->done, seq);
    atomic_store(&c->hb->item, 0);
    m.busy_ns = sl_mono_ns() - t0;
    return s_send_counts(c, PPW_DONE, &m);
}

static int s_loop(s_child_t *c)
{
    for (;;) {
        zmq_msg_t f[2];
        int n = s_recv(c, f, 2, PARENT_CHECK_MS);
        if (n < 0)
            return n;
        if (n == 0) {
            if (getppid() != c->ppid)
                return -ESRCH;
            continue;
        }
        ppw_msg_t m;
        int rc = ppw_parse(zmq_msg_data(&f[0]), zmq_msg_size(&f[0]), &m);
        if (rc == 0 && m.type == PPW_ITEM && n == 2) {
            rc = s_handle_item(c, m.seq, &f[1]);
        } else if (rc == 0 && m.type == PPW_FLUSH) {
            ppw_msg_t out = {0};
            if (c->desc->flush) {
                sl__ctx_begin_flush(&c->ctx);
                int frc = c->desc->flush(c->state, &c->ctx);
                sl__ctx_end_call(&c->ctx);
                out.emitted = c->ctx.emitted;
                if (frc < 0) {
                    out.errors = 1;
                    sl__log(SL_LOG_ERROR, c->stage->name, (int)c->ctx.worker,
                            "flush failed: %s",
                            c->ctx.has_err ? c->ctx.err : strerror(-frc));
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
    if (argc != 6) {
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
    c.ppid = (pid_t)strtol(argv[5], NULL, 10);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != c.ppid)
        return 1;

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
    for (size_t i = 0; i < c.n_held; i++)
        free(c.held[i].buf);
    free(c.held);
    sl__deadletter_close(&c.dl);
    sl__topology_destroy(&c.topo);
    if (c.sock)
        zmq_close(c.sock);
    if (c.zctx)
        zmq_ctx_term(c.zctx);
    munmap(c.hb, sizeof(sl_heartbeat_t));
    return code;
}
