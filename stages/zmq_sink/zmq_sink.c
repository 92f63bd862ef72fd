/*
 * zmq_sink: sends records to external programs over ZeroMQ (PUSH or PUB),
 * as msgpack maps or JSON lines, `batch` records per message.
 *
 * Exactness: process() succeeds only when its record has been handed to
 * the socket (zmq_send accepted the message holding it) or, with batch > 1,
 * sits in the batch buffer that the next full batch, sync() or flush()
 * sends. A record whose send fails is taken back out of the buffer before
 * process() fails, so the host's retry sends it once, never twice, and a
 * failed record is never half sent: zmq_send takes a whole message or
 * nothing.
 *
 * No send waits longer than send_timeout_ms. A PUSH socket that connects
 * keeps ZeroMQ's default of queueing (up to sndhwm messages) for a peer
 * that is not there yet or reconnects: ZMQ_IMMEDIATE would refuse those
 * sends instead, but it also throws away, silently, what is queued for a
 * peer whose connection drops. PUB is an XPUB with ZMQ_XPUB_NODROP: a
 * subscriber that does not keep up makes the send wait and fail like a
 * slow PUSH peer, rather than lose messages. With no subscriber at all,
 * PUB discards what it sends by design; the sink counts those records (it
 * follows the subscriptions) and logs them.
 *
 * The socket is closed at the end of the stream, in flush(): ZeroMQ gets
 * the linger to deliver what it holds, and if that runs out the flush
 * fails, so the run does not end as if everything had left.
 */
#include "record_map.h"
#include "zsnk_conf.h"

#include <sluice/json.h>
#include <sluice/stage.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

/* The longest nap between two sends on a PUB socket whose subscriber is
 * full: XPUB never polls as writable, so the sink retries. */
#define ZSNK_PUB_NAP_MAX_MS 20
/* The shortest linger at close (see s_close). */
#define ZSNK_MIN_LINGER_MS 100

typedef struct zsnk_state {
    zsnk_opts_t o;
    char *stage;         /* for what fini logs; owned */
    void *zctx;
    void *sock;
    msgpack_sbuffer buf; /* the batch being gathered */
    size_t count;        /* records in buf */
    long subs;           /* PUB: live subscriptions */
    int unheard_warned;  /* PUB: the current stretch without one logged */
    uint64_t unheard;    /* PUB: records sent while nobody subscribed */
    int linger_ms;       /* what ZeroMQ gets to deliver at close */
} zsnk_state_t;

/* ---- sending ------------------------------------------------------------- */

/* Follows subscriptions (XPUB hands them up as messages: 1 + prefix to
 * subscribe, 0 + prefix to unsubscribe, each one with XPUB_VERBOSER). */
static void s_read_subs(zsnk_state_t *st)
{
    int events = 0;
    size_t sz = sizeof(events);
    unsigned char b[1];

    while (zmq_getsockopt(st->sock, ZMQ_EVENTS, &events, &sz) == 0 &&
           (events & ZMQ_POLLIN)) {
        /* Only the first byte matters; the rest is cut off. */
        if (zmq_recv(st->sock, b, sizeof(b), ZMQ_DONTWAIT) < 1)
            break;
        if (b[0] == 1)
            st->subs++;
        else if (b[0] == 0 && st->subs > 0)
            st->subs--;
    }
}

static void s_count_unheard(zsnk_state_t *st, const sl_ctx_t *ctx,
                            size_t recs)
{
    if (st->subs > 0) {
        st->unheard_warned = 0;
        return;
    }
    st->unheard += recs;
    if (!st->unheard_warned)
        sl_log(ctx, SL_LOG_WARN, "%s: no subscriber: PUB discards the "
               "records sent now (counted; the total is logged at the end)",
               st->o.conn.endpoint);
    st->unheard_warned = 1;
}

/* Sends one message of recs records, waiting at most send_timeout_ms.
 * Returns 0, -ETIMEDOUT, or another negative errno from ZeroMQ. */
static int s_send(zsnk_state_t *st, const sl_ctx_t *ctx, const void *data,
                  size_t len, size_t recs)
{
    uint64_t deadline =
        sl_mono_ns() + (uint64_t)st->o.send_timeout_ms * 1000000u;
    int pub = st->o.socket == ZSNK_PUB;
    long nap_ms = 1;

    for (;;) {
        if (pub)
            s_read_subs(st);
        if (zmq_send(st->sock, data, len, ZMQ_DONTWAIT) >= 0) {
            if (pub)
                s_count_unheard(st, ctx, recs);
            return 0;
        }
        if (errno != EAGAIN && errno != EINTR)
            return -errno;
        uint64_t now = sl_mono_ns();
        if (now >= deadline)
            return -ETIMEDOUT;
        long left_ms = (long)((deadline - now + 999999u) / 1000000u);
        zmq_pollitem_t item = {.socket = st->sock,
                               .events = pub ? ZMQ_POLLIN : ZMQ_POLLOUT};
        if (pub) {
            /* Wakes early for a subscription, else naps and retries. */
            if (nap_ms < left_ms)
                left_ms = nap_ms;
            if (nap_ms < ZSNK_PUB_NAP_MAX_MS)
                nap_ms *= 2;
        }
        if (zmq_poll(&item, 1, left_ms) < 0 && errno != EINTR)
            return -errno;
    }
}

/* Sends the gathered batch, if any; the buffer is emptied only once the
 * socket took it. */
static int s_send_batch(zsnk_state_t *st, const sl_ctx_t *ctx)
{
    if (st->count == 0)
        return 0;
    int rc = s_send(st, ctx, st->buf.data, st->buf.size, st->count);
    if (rc == 0) {
        st->buf.size = 0;
        st->count = 0;
    }
    return rc;
}

/* Why a send failed, for messages. */
static const char *s_why(const zsnk_state_t *st, int rc, char *buf,
                         size_t len)
{
    if (rc == -ENOTCONN)
        return "the socket is closed";
    if (rc != -ETIMEDOUT)
        return zmq_strerror(-rc);
    snprintf(buf, len, "%s within %d ms (send_timeout_ms)",
             st->o.socket == ZSNK_PUB ? "a subscriber did not keep up"
                                      : "no peer took the message",
             st->o.send_timeout_ms);
    return buf;
}

/* ---- the record ---------------------------------------------------------- */

static int zk_process(void *state, sl_ctx_t *ctx, sl_record_t *rec)
{
    zsnk_state_t *st = state;
    size_t mark = st->buf.size, len;
    char why[128];
    int rc;

    if (!st->sock)
        return sl_ctx_error(ctx, "%s: the socket is closed (after the end "
                            "of the stream)", st->o.conn.endpoint);
    /* msgpack goes out as it came, so it is decoded first all the same:
     * the host checks only the first byte of what a plugin emits, and
     * bytes that are not one whole map would reach the peer as garbage
     * (in a batch, spoiling the records after them). The decode is
     * bounded by the bytes at hand and by limits.max_depth. */
    const msgpack_object *map;
    rc = stage_record_map(ctx, rec, &map);
    if (rc < 0)
        return rc;
    if (st->o.format == ZSNK_MSGPACK) {
        const void *data = sl_record_data(rec, &len);
        if (st->o.batch == 1) {
            rc = s_send(st, ctx, data, len, 1);
            goto sent;
        }
        if (msgpack_sbuffer_write(&st->buf, data, len) != 0)
            return sl_ctx_error(ctx, "out of memory for the batch");
    } else {
        if (sl_json_encode(map, &st->buf) < 0 ||
            msgpack_sbuffer_write(&st->buf, "\n", 1) != 0) {
            st->buf.size = mark;
            return sl_ctx_error(ctx, "out of memory for the batch");
        }
    }
    st->count++;
    if (st->count < st->o.batch)
        return 0;
    rc = s_send_batch(st, ctx);
    if (rc < 0) {
        /* Out again: the retry must not find it already buffered. */
        st->buf.size = mark;
        st->count--;
    }
sent:
    if (rc < 0)
        return sl_ctx_error(ctx, "%s: %s", st->o.conn.endpoint,
                            s_why(st, rc, why, sizeof(why)));
    return 0;
}

/* Closes the socket and lets ZeroMQ deliver what it still holds for at
 * most the linger. Returns -ETIMEDOUT if the linger ran out: terminating
 * the context waits only while messages are queued, so a wait as long as
 * the linger means ZeroMQ gave some up. */
static int s_close(zsnk_state_t *st)
{
    if (st->sock)
        zmq_close(st->sock);
    st->sock = NULL;
    if (!st->zctx)
        return 0;
    uint64_t t0 = sl_mono_ns();
    zmq_ctx_term(st->zctx);
    st->zctx = NULL;
    return sl_mono_ns() - t0 >= (uint64_t)st->linger_ms * 1000000u
               ? -ETIMEDOUT
               : 0;
}

/* Sends a partial batch; failing, the host fails the run rather than
 * count its records as written (and logs the message given here). */
static int zk_sync(void *state, sl_ctx_t *ctx)
{
    zsnk_state_t *st = state;
    char why[128];
    size_t count = st->count;
    int rc = st->sock ? s_send_batch(st, ctx) : -ENOTCONN;

    if (rc < 0)
        sl_ctx_error(ctx, "%s: %zu records of a partial batch not sent: %s",
                     st->o.conn.endpoint, count,
                     s_why(st, rc, why, sizeof(why)));
    return rc;
}

/* The end of the stream: the last partial batch, then the socket is
 * closed here rather than in fini, so that messages ZeroMQ could not
 * deliver within the linger fail the run instead of vanishing. */
static int zk_flush(void *state, sl_ctx_t *ctx)
{
    zsnk_state_t *st = state;
    int rc = zk_sync(state, ctx);

    if (st->unheard)
        sl_log(ctx, SL_LOG_WARN, "%s: %" PRIu64 " records were sent while "
               "no subscriber was connected; PUB discarded them",
               st->o.conn.endpoint, st->unheard);
    st->unheard = 0;
    if (rc < 0)
        return rc; /* the socket stays: fini tries once more */
    if (s_close(st) < 0) {
        sl_ctx_error(ctx, "%s: messages still queued %d ms after the end "
                     "(the linger) were discarded: no peer took them",
                     st->o.conn.endpoint, st->linger_ms);
        return -ETIMEDOUT;
    }
    return 0;
}

/* ---- lifecycle ----------------------------------------------------------- */

static int zk_validate(const sl_config_t *cfg)
{
    zsnk_opts_t o;
    return zsnk_opts_parse(cfg, &o);
}

static void zk_fini(void *state)
{
    zsnk_state_t *st = state;
    char why[128];

    if (!st)
        return;
    if (st->sock && st->count) {
        /* No flush (the run was stopped), or it failed: these records
         * were counted as written, so they go now or are reported. */
        int rc = s_send_batch(st, NULL);
        if (rc < 0)
            sl_log(NULL, SL_LOG_ERROR, "stage '%s': %s: %zu records of a "
                   "partial batch not sent: %s", st->stage,
                   st->o.conn.endpoint, st->count,
                   s_why(st, rc, why, sizeof(why)));
    }
    if (st->sock && s_close(st) < 0)
        sl_log(NULL, SL_LOG_ERROR, "stage '%s': %s: messages still queued "
               "%d ms after the end (the linger) were discarded: no peer "
               "took them", st->stage, st->o.conn.endpoint, st->linger_ms);
    s_close(st); /* what init left half made */
    msgpack_sbuffer_destroy(&st->buf);
    free(st->stage);
    free(st);
}

static int s_setopt(zsnk_state_t *st, int opt, int v)
{
    return zmq_conn_setopt(st->sock, opt, &v, sizeof(v));
}

static int s_open(zsnk_state_t *st, const sl_config_t *cfg, unsigned workers)
{
    const zsnk_opts_t *o = &st->o;
    int rc;

    if ((rc = zmq_conn_workers(&o->conn, cfg, workers, "receiver")) < 0)
        return rc;
    /* Long enough that a close which used it all up cannot be mistaken
     * for one that merely took a while. */
    st->linger_ms = o->send_timeout_ms > ZSNK_MIN_LINGER_MS
                        ? o->send_timeout_ms
                        : ZSNK_MIN_LINGER_MS;
    if ((rc = zmq_conn_socket(o->socket == ZSNK_PUB ? ZMQ_XPUB : ZMQ_PUSH,
                              &st->zctx, &st->sock)) < 0)
        return rc;
    if ((rc = s_setopt(st, ZMQ_SNDHWM, o->sndhwm)) < 0 ||
        (rc = s_setopt(st, ZMQ_LINGER, st->linger_ms)) < 0)
        return rc;
    if (o->socket == ZSNK_PUB &&
        ((rc = s_setopt(st, ZMQ_XPUB_NODROP, 1)) < 0 ||
         (rc = s_setopt(st, ZMQ_XPUB_VERBOSER, 1)) < 0))
        return rc;
    return zmq_conn_attach(&o->conn, cfg, st->sock);
}

static int zk_init(sl_ctx_t *ctx, const sl_config_t *cfg, void **state)
{
    zsnk_state_t *st = calloc(1, sizeof(*st));
    int rc;

    if (!st)
        return -ENOMEM;
    msgpack_sbuffer_init(&st->buf);
    if ((rc = zsnk_opts_parse(cfg, &st->o)) < 0)
        goto fail;
    rc = -ENOMEM;
    if (!(st->stage = strdup(sl_ctx_stage(ctx))))
        goto fail;
    if ((rc = s_open(st, cfg, sl_ctx_workers(ctx))) < 0)
        goto fail;
    *state = st;
    return 0;
fail:
    zk_fini(st);
    return rc;
}

SL_STAGE_DEFINE(.name = "zmq_sink",
                .summary = "sends records as msgpack or JSON over ZeroMQ "
                           "(PUSH or PUB)",
                .kind = SL_STAGE_SINK, .max_workers = 0,
                .config_keys = zsnk_keys, .validate = zk_validate,
                .init = zk_init, .process = zk_process, .sync = zk_sync,
                .flush = zk_flush, .fini = zk_fini);
