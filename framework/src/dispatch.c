#include "batch_prio.h"
#include "dispatch_int.h"
#include "endian.h"
#include "link_remote.h"
#include "mpscan.h"
#include "log.h"
#include "failure.h"
#include "run.h"
#include "spill.h"
#include "tap.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RELAXED memory_order_relaxed

/* A broadcast batch goes to several links without copying: each ZeroMQ
 * message holds one reference. */
typedef struct s_shared {
    atomic_int refs;
    char *buf;
} s_shared_t;

static void s_free_plain(void *data, void *hint)
{
    (void)hint;
    free(data);
}

static void s_free_shared(void *data, void *hint)
{
    (void)data;
    s_shared_t *sh = hint;
    if (atomic_fetch_sub(&sh->refs, 1) == 1) {
        free(sh->buf);
        free(sh);
    }
}

void sl__dispatch_fail(sl_runner_t *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sl__vlog(SL_LOG_ERROR, r->spec->name, -1, fmt, ap);
    va_end(ap);
    atomic_store(&r->failed, 1);
    atomic_store(&r->run->failed, 1);
    atomic_store(&r->run->aborting, 1);
}

static void s_update_held(sl_runner_t *r, uint32_t held)
{
    atomic_store_explicit(&r->held_now, held, RELAXED);
    if (held > atomic_load_explicit(&r->held_max, RELAXED))
        atomic_store_explicit(&r->held_max, held, RELAXED);
}

static int s_send_credit(sl_runner_t *r, size_t link, uint32_t n)
{
    unsigned char msg[SL_MSG_CREDIT_SIZE];
    /* over tcp a credit names its connection (link_remote.h) */
    sl__msg_credit_conn(msg, n, r->in_remote && r->in_remote[link]
                                    ? r->rrx[link].conn : 0);
    if (zmq_send(r->in_sock, r->in_ident[link], 5, ZMQ_SNDMORE) < 0 ||
        zmq_send(r->in_sock, msg, sizeof(msg), 0) < 0) {
        /* A producer on another node that has gone (after its
         * end-of-stream, or to restart) has no route: its credit is moot. */
        if (errno == EHOSTUNREACH && r->remote_in)
            return 0;
        sl__dispatch_fail(r, "cannot send credit upstream: %s", zmq_strerror(errno));
        return -EIO;
    }
    return 0;
}

/* Splits a batch by the hash of the partition key so that equal keys
 * always reach the same worker, in arrival order. */
static uint64_t s_hash_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t s_hash_key(const msgpack_object *o)
{
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)(o ? o->type : 0xff);
    if (!o)
        return h;
    switch (o->type) {
    case MSGPACK_OBJECT_STR:
        return s_hash_bytes(h, o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_BIN:
        return s_hash_bytes(h, o->via.bin.ptr, o->via.bin.size);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: {
        /* 5 and 5u must land together */
        uint64_t v = o->via.u64;
        return s_hash_bytes(0xcbf29ce484222325ull, &v, sizeof(v));
    }
    case MSGPACK_OBJECT_BOOLEAN:
        return s_hash_bytes(h, &o->via.boolean, sizeof(o->via.boolean));
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return s_hash_bytes(h, &o->via.f64, sizeof(o->via.f64));
    default:
        return h; /* maps, arrays, nil: all in one partition */
    }
}

/* The level of a batch's first record (0 for an empty or short one). */
static uint8_t s_first_level(const char *batch, size_t len)
{
    if (len < SL_BATCH_HDR + SL_ENV_SIZE)
        return 0;
    uint8_t p = (uint8_t)batch[SL_BATCH_HDR + 20];
    return p < SL_PRIO_LEVELS ? p : SL_PRIO_LEVELS - 1;
}

/* Hands an item to the workers: the shared or a worker's own queue for
 * thread lanes (caller holds r->mu), the process pool for process lanes. */
static int s_deliver_locked(sl_runner_t *r, sl_work_t *item)
{
    /* a retry's records were counted in their generation when they came */
    if (!item->retry)
        r->gen_held[item->gen % SL_GEN_RING] += item->count;
    if (r->pp) {
        r->inflight++;
        return 0; /* queued by the caller once the lock is dropped */
    }
    sl_prioq_t *q = item->worker >= 0 ? &r->workers[item->worker].pq : &r->pq;
    if (sl_prioq_push(q, item, item->level, sl_mono_ns()) != 0)
        return -ENOMEM;
    if (q == &r->pq)
        r->queued += item->count; /* what the workers share out */
    r->inflight++;
    return 0;
}

static int s_enqueue_partitioned(sl_runner_t *r, zmq_msg_t *msg,
                                 uint32_t link)
{
    unsigned n = r->n_workers;
    sl_batch_t *parts = calloc(n, sizeof(*parts));
    if (!parts)
        return -ENOMEM;
    msgpack_zone zone;
    msgpack_zone_init(&zone, 2048);
    sl_batch_iter_t it;
    sl__batch_iter_init(&it, zmq_msg_data(msg), zmq_msg_size(msg), NULL);
    sl_envelope_t env;
    const char *payload;
    size_t plen;
    int rc = 0;
    while (rc == 0 && sl__batch_next(&it, &env, &payload, &plen) == 1) {
        msgpack_object obj;
        const msgpack_object *key = NULL;
        /* bounded: the bytes are another stage's (or node's) */
        if (sl__mpscan_decode(payload, plen, r->spec->limits.max_depth,
                              &zone, &obj) == 0)
            key = sl_map_get(&obj, r->spec->partition_by);
        unsigned w = (unsigned)(s_hash_key(key) % n);
        rc = sl__batch_append(&parts[w], &env, payload, plen);
        msgpack_zone_clear(&zone);
    }
    msgpack_zone_destroy(&zone);
    sl_work_t *items[n];
    memset(items, 0, sizeof(items));
    for (unsigned w = 0; w < n && rc == 0; w++) {
        if (!parts[w].count)
            continue;
        items[w] = calloc(1, sizeof(sl_work_t));
        if (!items[w]) {
            rc = -ENOMEM;
            break;
        }
        items[w]->count = parts[w].count;
        items[w]->link = link;
        items[w]->worker = (int)w;
        items[w]->gen = r->gen_cur;
        /* key order first: a partition's batch is served at the level of
         * its first record */
        items[w]->level = s_first_level(parts[w].data, parts[w].len);
        items[w]->owned_buf = sl__batch_release(&parts[w], &items[w]->owned_len);
        if (!items[w]->owned_buf)
            rc = -ENOMEM;
    }
    if (rc == 0) {
        pthread_mutex_lock(&r->mu);
        for (unsigned w = 0; w < n; w++)
            if (items[w] && s_deliver_locked(r, items[w]) != 0) {
                sl__work_free(items[w]);
                items[w] = NULL;
                rc = -ENOMEM;
            }
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        if (r->pp)
            for (unsigned w = 0; w < n; w++)
                if (items[w])
                    sl__procpool_enqueue(r->pp, items[w]);
    } else {
        for (unsigned w = 0; w < n; w++)
            if (items[w]) {
                free(items[w]->owned_buf);
                free(items[w]);
            }
    }
    for (unsigned w = 0; w < n; w++)
        sl__batch_fini(&parts[w]);
    free(parts);
    zmq_msg_close(msg);
    return rc;
}

/* Hands items to the workers (ownership passes; each is freed on error). */
static int s_deliver(sl_runner_t *r, sl_work_t **items, size_t n)
{
    int rc = 0;
    pthread_mutex_lock(&r->mu);
    for (size_t k = 0; k < n; k++)
        if (s_deliver_locked(r, items[k]) != 0) {
            sl__work_free(items[k]);
            items[k] = NULL;
            rc = -ENOMEM;
        }
    /* an item for one worker's own queue must wake that worker */
    if (n > 1 || (n == 1 && items[0] && items[0]->worker >= 0))
        pthread_cond_broadcast(&r->cv);
    else
        pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (r->pp)
        for (size_t k = 0; k < n; k++)
            if (items[k])
                sl__procpool_enqueue(r->pp, items[k]);
    return rc;
}

/* A batch whose records have several priorities becomes one item per
 * level, so that each level can be served on its own. */
static int s_enqueue_levels(sl_runner_t *r, zmq_msg_t *msg, uint32_t link,
                            sl_batch_t *parts, const uint32_t *counts)
{
    sl_work_t *items[SL_PRIO_LEVELS];
    size_t n = 0;
    int rc = 0;
    for (unsigned l = 0; l < SL_PRIO_LEVELS && rc == 0; l++) {
        if (!counts[l])
            continue;
        sl_work_t *item = calloc(1, sizeof(*item));
        if (!item) {
            rc = -ENOMEM;
            break;
        }
        item->owned_buf = sl__batch_release(&parts[l], &item->owned_len);
        if (!item->owned_buf) {
            free(item);
            rc = -ENOMEM;
            break;
        }
        item->count = counts[l];
        item->link = link;
        item->worker = -1;
        item->gen = r->gen_cur;
        item->level = (uint8_t)l;
        items[n++] = item;
    }
    zmq_msg_close(msg);
    if (rc) {
        for (size_t k = 0; k < n; k++)
            sl__work_free(items[k]);
        return rc;
    }
    return s_deliver(r, items, n);
}

static int s_enqueue(sl_runner_t *r, zmq_msg_t *msg, uint32_t link,
                     uint32_t count)
{
    if (r->spec->partition_by && r->n_workers > 1)
        return s_enqueue_partitioned(r, msg, link);
    sl_batch_t parts[SL_PRIO_LEVELS];
    uint32_t counts[SL_PRIO_LEVELS];
    int single = 0;
    for (unsigned l = 0; l < SL_PRIO_LEVELS; l++)
        sl__batch_init(&parts[l]);
    int rc = sl__batch_split_prio(zmq_msg_data(msg), zmq_msg_size(msg), parts,
                                  counts, &single);
    if (rc == 0 && single < 0)
        rc = s_enqueue_levels(r, msg, link, parts, counts);
    for (unsigned l = 0; l < SL_PRIO_LEVELS; l++)
        sl__batch_fini(&parts[l]);
    if (rc || single < 0)
        return rc;
    sl_work_t *item = calloc(1, sizeof(*item));
    if (!item) {
        zmq_msg_close(msg);
        return -ENOMEM;
    }
    zmq_msg_init(&item->msg);
    zmq_msg_move(&item->msg, msg);
    item->count = count;
    item->link = link;
    item->worker = -1;
    item->gen = r->gen_cur;
    item->level = (uint8_t)single;
    return s_deliver(r, &item, 1);
}

/* A marker waits for every record received before it: those of its
 * generation and all earlier ones. */
int sl__dispatch_push_mark(sl_runner_t *r, const sl_mark_t *mk)
{
    if (r->gen_cur - r->gen_low >= SL_GEN_RING - 1)
        return -EAGAIN;
    if (r->n_marks == r->cap_marks) {
        size_t cap = r->cap_marks ? 2 * r->cap_marks : 16;
        sl_mark_t *marks = realloc(r->marks, cap * sizeof(*marks));
        if (!marks)
            return -ENOMEM;
        r->marks = marks;
        r->cap_marks = cap;
    }
    r->marks[r->n_marks] = *mk;
    r->marks[r->n_marks++].gen = r->gen_cur;
    r->gen_cur++;
    return 0;
}

static void s_on_mark(sl_runner_t *r, const sl_msg_t *m)
{
    sl_mark_t mk = {.source = m->source, .worker = m->worker,
                    .epoch = m->epoch, .link = -1};
    /* when dropped, a later marker covers its epoch */
    (void)sl__dispatch_push_mark(r, &mk);
}

void sl__dispatch_take(sl_runner_t *r, uint32_t link, zmq_msg_t *msg,
                       uint32_t count)
{
    r->in_received[link] += count;
    s_update_held(r, sl__credit_rx_held(&r->rx));
    if (count == 0) {
        zmq_msg_close(msg);
        return;
    }
    if (atomic_load_explicit(&r->run->spilling, RELAXED)) {
        sl__spill_batch(r->run, r->spec->name, zmq_msg_data(msg),
                        zmq_msg_size(msg), NULL);
        atomic_fetch_add(&r->in_direct, count);
        atomic_fetch_add(&r->spilled_in, count);
        sl__credit_rx_completed(&r->rx, link, count);
        zmq_msg_close(msg);
        return;
    }
    if (s_enqueue(r, msg, link, count) != 0)
        sl__dispatch_fail(r, "out of memory queueing a batch");
}

/* One message from an upstream link (identity frame already read). */
static void s_on_input(sl_runner_t *r, uint32_t link, zmq_msg_t *msg)
{
    sl_msg_t m;
    if (sl__msg_parse(zmq_msg_data(msg), zmq_msg_size(msg), &m) != 0) {
        sl__dispatch_fail(r, "malformed message on input link %u (%zu bytes)", link,
               zmq_msg_size(msg));
        zmq_msg_close(msg);
        return;
    }
    switch (m.type) {
    case SL_MSG_HELLO: {
        zmq_msg_close(msg);
        uint32_t grant = sl__credit_rx_open(&r->rx, link);
        if (grant)
            s_send_credit(r, link, grant);
        return;
    }
    case SL_MSG_DATA: {
        uint32_t count;
        int bad = sl__batch_validate_max(zmq_msg_data(msg), zmq_msg_size(msg),
                                         r->spec->limits.max_batch_records,
                                         &count);
        if (bad == -EMSGSIZE) {
            sl__dispatch_fail(r, "input link %u sent a batch of %u records, "
                              "over limits.max_batch_records (%u)", link,
                              count, r->spec->limits.max_batch_records);
            zmq_msg_close(msg);
            return;
        }
        if (bad) {
            sl__dispatch_fail(r, "corrupt batch on input link %u", link);
            zmq_msg_close(msg);
            return;
        }
        if (sl__credit_rx_received(&r->rx, link, count) != 0) {
            sl__dispatch_fail(r, "input link %u sent %u records beyond its credit", link,
                   count);
            zmq_msg_close(msg);
            return;
        }
        sl__dispatch_take(r, link, msg, count);
        if (r->in_acked && r->in_acked[link])
            sl__remote_local_batch(r, link);
        return;
    }
    case SL_MSG_MARK:
        zmq_msg_close(msg);
        s_on_mark(r, &m);
        return;
    case SL_MSG_EOS:
        zmq_msg_close(msg);
        if (!r->in_eos[link]) {
            r->in_eos[link] = 1;
            r->in_expected[link] = m.sent;
            r->eos_count++;
        }
        return;
    default:
        zmq_msg_close(msg);
        sl__dispatch_fail(r, "unexpected message type '%c' on input link %u", m.type,
               link);
    }
}

static void s_drain_input(sl_runner_t *r)
{
    for (;;) {
        zmq_msg_t ident, body;
        zmq_msg_init(&ident);
        if (zmq_msg_recv(&ident, r->in_sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ident);
            return;
        }
        int more = zmq_msg_more(&ident);
        uint32_t link = UINT32_MAX;
        if (zmq_msg_size(&ident) == 5 &&
            ((unsigned char *)zmq_msg_data(&ident))[0] == 'L')
            link = sl__get_u32((unsigned char *)zmq_msg_data(&ident) + 1);
        zmq_msg_close(&ident);
        if (!more)
            continue;
        zmq_msg_init(&body);
        if (zmq_msg_recv(&body, r->in_sock, 0) < 0) {
            zmq_msg_close(&body);
            return;
        }
        if (link >= r->rx.n_links) {
            sl__log(SL_LOG_WARN, r->spec->name, -1,
                    "message from an unknown peer dropped");
            while (zmq_msg_more(&body) && zmq_msg_recv(&body, r->in_sock, 0) >= 0)
                ;
            zmq_msg_close(&body);
            continue;
        }
        if (r->in_remote && r->in_remote[link])
            sl__remote_input(r, link, &body);
        else
            s_on_input(r, link, &body);
    }
}

/* acks: the consumer acknowledges this link's batches (s_ack_chain in
 * run.c), or NULL. */
static void s_drain_credit(sl_runner_t *r, void *sock, sl_credit_tx_t *tx,
                           sl_rtx_t *acks)
{
    for (;;) {
        unsigned char buf[64];
        int n = zmq_recv(sock, buf, sizeof(buf), ZMQ_DONTWAIT);
        if (n < 0)
            return;
        sl_msg_t m;
        if (n <= (int)sizeof(buf) && acks &&
            sl__msg_parse(buf, (size_t)n, &m) == 0 && m.type == SL_MSG_ACK) {
            sl__rtx_ack(acks, m.seq);
            continue;
        }
        if (n > (int)sizeof(buf) || sl__msg_parse(buf, (size_t)n, &m) != 0 ||
            m.type != SL_MSG_CREDIT) {
            sl__dispatch_fail(r, "malformed message from a downstream link");
            return;
        }
        tx->credit += m.credit;
        tx->ready = 1;
    }
}

static void s_release(sl_runner_t *r, const sl_done_t *d)
{
    if (!d->release)
        return;
    if (r->desc->kind == SL_STAGE_SOURCE) {
        pthread_mutex_lock(&r->mu);
        r->src_held -= d->release;
        s_update_held(r, r->src_held);
        pthread_cond_signal(&r->cv);
        pthread_mutex_unlock(&r->mu);
    } else {
        sl__credit_rx_completed(&r->rx, d->link, d->release);
        s_update_held(r, sl__credit_rx_held(&r->rx));
        if (d->ends_item)
            r->gen_held[d->gen % SL_GEN_RING] -= d->release;
    }
}

static void s_send_mark(sl_runner_t *r, uint32_t source, uint32_t worker,
                        uint64_t epoch)
{
    unsigned char msg[SL_MSG_MARK_SIZE];
    sl__msg_mark(msg, source, worker, epoch);
    for (size_t o = 0; o < r->n_out; o++)
        if (zmq_send(r->out_socks[o], msg, sizeof(msg), ZMQ_DONTWAIT) < 0)
            sl__dispatch_fail(r, "cannot send a marker: %s", zmq_strerror(errno));
    if (r->dl_sock &&
        zmq_send(r->dl_sock, msg, sizeof(msg), ZMQ_DONTWAIT) < 0)
        sl__dispatch_fail(r, "cannot send a marker: %s", zmq_strerror(errno));
}

/* Markers whose generations have all finished go on (or, at a sink, are
 * acknowledged), in arrival order. */
static void s_marks_ready(sl_runner_t *r)
{
    size_t k = 0;
    for (; k < r->n_marks; k++) {
        sl_mark_t *mk = &r->marks[k];
        while (r->gen_low != mk->gen + 1 &&
               r->gen_held[r->gen_low % SL_GEN_RING] == 0)
            r->gen_low++;
        if (r->gen_low != mk->gen + 1)
            break;
        if (mk->link >= 0)
            sl__remote_mark_done(r, mk);
        else if (r->n_out || r->dl_sock)
            s_send_mark(r, mk->source, mk->worker, mk->epoch);
        else if (!atomic_load(&r->run->no_commit)) /* a sink lost writes */
            sl__ckpt_ack(r->run->ckpt, mk->source, mk->worker, mk->epoch);
    }
    if (k) {
        memmove(r->marks, r->marks + k, (r->n_marks - k) * sizeof(*r->marks));
        r->n_marks -= k;
    }
}

static int s_send_batch(sl_runner_t *r, size_t o, zmq_msg_t *m,
                        uint32_t count)
{
    if (r->out_remote && r->out_remote[o])
        return sl__remote_send(r, o, m, count);
    if (r->out_acked && r->out_acked[o])
        r->rtx[o].next_seq++; /* the consumer counts them the same way */
    if (zmq_msg_send(m, r->out_socks[o], ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(m);
        sl__dispatch_fail(r, "cannot send to '%s': %s",
               r->run->topo->stages[r->spec->outputs[o]].name,
               zmq_strerror(errno));
        return -EIO;
    }
    return 0;
}

/* A full consumer's copy of a batch goes where its when_full says: the
 * spill file, or its dead-letter file; either way it is finished here. */
static void s_shed(sl_runner_t *r, size_t o, const sl_done_t *d)
{
    size_t c = r->spec->outputs[o];
    const sl_topo_stage_t *cs = &r->run->topo->stages[c];
    char why[200];
    snprintf(why, sizeof(why), "stage '%s' was full (when_full: %s)",
             cs->name, cs->when_full == SL_WHEN_FULL_SPILL ? "spill"
                                                           : "dead_letter");
    sl_deadletter_t *dl = cs->when_full == SL_WHEN_FULL_DEAD_LETTER
                              ? r->run->runners[c].dl : NULL;
    sl_batch_iter_t it;
    sl_envelope_t env;
    const char *payload;
    size_t len;
    uint64_t now = sl_now_ns();
    if (sl__batch_iter_init(&it, d->buf, d->len, NULL) != 0)
        return;
    while (sl__batch_next(&it, &env, &payload, &len) == 1) {
        if (dl)
            sl__record_give_up_at(cs->name, -1, &r->shed_logged, dl, &env,
                                  payload, len, why, env.attempts, now, now);
        else
            sl__spill_record_why(r->run, cs->name, &env, payload, len, 0, why);
    }
    r->link_shed[o] += d->count;
}

/* A copy for the taps on this link, before the buffer goes to ZeroMQ. */
static inline void s_tap(sl_runner_t *r, size_t o, const sl_done_t *d)
{
    if (sl__taps_on(r->run->taps, r->index))
        sl__taps_batch(r->run->taps, r->index, r->spec->outputs[o], d->buf,
                       d->len);
}

/* Sends the head of the pending list if credit allows. 1 sent, 0 blocked,
 * negative on error. Ownership of the buffer passes to ZeroMQ. */
/* Credit, and for a link to another node room in its re-send window. */
static inline int s_can_send(const sl_runner_t *r, size_t o, uint32_t n)
{
    return sl__credit_tx_can_send(&r->tx[o], n) &&
           sl__remote_can_send(r, o, n);
}

static int s_send_head(sl_runner_t *r, sl_done_t *d)
{
    size_t n_out = r->n_out;
    if (r->spec->fanout == SL_FANOUT_ROUND_ROBIN && n_out > 1) {
        for (size_t k = 0; k < n_out; k++) {
            size_t o = (r->rr_next + k) % n_out;
            if (!s_can_send(r, o, d->count))
                continue;
            s_tap(r, o, d);
            zmq_msg_t m;
            if (zmq_msg_init_data(&m, d->buf, d->len, s_free_plain, NULL))
                return -ENOMEM;
            d->buf = NULL;
            r->tx[o].credit -= d->count;
            r->link_sent[o] += d->count;
            r->rr_next = (o + 1) % n_out;
            return s_send_batch(r, o, &m, d->count) == 0 ? 1 : -EIO;
        }
        return 0;
    }
    /* A consumer without room holds everything back, unless it said
     * when_full: spill or dead_letter; then its copy is shed and the
     * others go on. */
    size_t n_ready = 0;
    for (size_t o = 0; o < n_out; o++) {
        if (s_can_send(r, o, d->count))
            n_ready++;
        else if (r->run->topo->stages[r->spec->outputs[o]].when_full ==
                 SL_WHEN_FULL_BLOCK)
            return 0;
    }
    if (n_ready < n_out) {
        for (size_t o = 0; o < n_out; o++)
            if (!s_can_send(r, o, d->count))
                s_shed(r, o, d);
        if (!n_ready) {
            free(d->buf);
            d->buf = NULL;
            return 1;
        }
    }
    if (n_ready == 1) {
        size_t o = 0;
        while (!s_can_send(r, o, d->count))
            o++;
        s_tap(r, o, d);
        zmq_msg_t m;
        if (zmq_msg_init_data(&m, d->buf, d->len, s_free_plain, NULL))
            return -ENOMEM;
        d->buf = NULL;
        r->tx[o].credit -= d->count;
        r->link_sent[o] += d->count;
        return s_send_batch(r, o, &m, d->count) == 0 ? 1 : -EIO;
    }
    s_shared_t *sh = malloc(sizeof(*sh));
    if (!sh)
        return -ENOMEM;
    atomic_init(&sh->refs, (int)n_ready);
    sh->buf = d->buf;
    d->buf = NULL;
    for (size_t o = 0; o < n_out; o++) {
        if (!s_can_send(r, o, d->count))
            continue; /* shed above */
        s_tap(r, o, d);
        zmq_msg_t m;
        zmq_msg_init_data(&m, sh->buf, d->len, s_free_shared, sh);
        r->tx[o].credit -= d->count;
        r->link_sent[o] += d->count;
        if (s_send_batch(r, o, &m, d->count) != 0)
            return -EIO;
    }
    return 1;
}

/* Dead letters go to the dead-letter stage when it has room; they hold
 * their input's credit until then. 1 sent, 0 blocked, negative on error. */
static int s_send_dead_letters(sl_runner_t *r, sl_done_t *d)
{
    if (!r->dl_sock) { /* unreachable: workers route only when linked */
        free(d->dl_buf);
        d->dl_buf = NULL;
        d->dl_count = 0;
        return 1;
    }
    if (!sl__credit_tx_can_send(&r->dl_tx, d->dl_count))
        return 0;
    zmq_msg_t m;
    if (zmq_msg_init_data(&m, d->dl_buf, d->dl_len, s_free_plain, NULL))
        return -ENOMEM;
    d->dl_buf = NULL;
    r->dl_tx.credit -= d->dl_count;
    r->dl_sent += d->dl_count;
    if (zmq_msg_send(&m, r->dl_sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
        sl__dispatch_fail(r, "cannot send dead letters to '%s': %s",
               r->run->topo->stages[r->spec->dl_stage].name,
               zmq_strerror(errno));
        return -EIO;
    }
    d->dl_count = 0;
    return 1;
}

/* Failed records with attempts left wait in the retry queue; they keep
 * their input credit (d->release does not count them). */
static void s_queue_retries(sl_runner_t *r, sl_done_t *d)
{
    sl_batch_iter_t it;
    sl_envelope_t env;
    const char *payload;
    size_t len;
    uint64_t now = sl_mono_ns();
    uint32_t k = 0;
    if (sl__batch_iter_init(&it, d->retry_buf, d->retry_len, NULL) != 0)
        return;
    while (sl__batch_next(&it, &env, &payload, &len) == 1) {
        sl_retry_entry_t e = {
            .due_ns = now + sl__retryq_delay_ns(&r->retries, env.attempts,
                                                r->spec->backoff_ms,
                                                r->spec->max_backoff_ms),
            .first_ns = d->retry_first[k++],
            .link = d->link,
            .gen = d->gen,
            .worker = d->retry_worker,
            .env = env,
            .len = len};
        e.payload = malloc(len ? len : 1);
        if (e.payload)
            memcpy(e.payload, payload, len);
        if (!e.payload || sl__retryq_push(&r->retries, &e) != 0) {
            free(e.payload);
            sl__dispatch_fail(r, "out of memory queueing a retry");
            return;
        }
    }
    d->retry_count = 0;
}

/* Due retries go back to the workers, as items of one link, worker and
 * generation each. */
static void s_run_due_retries(sl_runner_t *r)
{
    uint64_t now = sl_mono_ns();
    while (sl__retryq_next_due(&r->retries) <= now) {
        sl_retry_entry_t first;
        sl__retryq_pop(&r->retries, &first);
        sl_batch_t b;
        sl__batch_init(&b);
        uint32_t cap = r->spec->batch ? r->spec->batch : 1;
        uint64_t *firsts = malloc(cap * sizeof(*firsts));
        sl_work_t *item = calloc(1, sizeof(*item));
        int rc = firsts && item ? 0 : -ENOMEM;
        sl_retry_entry_t e = first;
        for (;;) {
            if (rc == 0)
                rc = sl__batch_append(&b, &e.env, e.payload, e.len);
            if (rc == 0)
                firsts[b.count - 1] = e.first_ns;
            free(e.payload);
            if (rc || b.count == cap || !r->retries.n ||
                r->retries.heap[0].due_ns > now ||
                r->retries.heap[0].link != first.link ||
                r->retries.heap[0].worker != first.worker ||
                r->retries.heap[0].gen != first.gen)
                break;
            sl__retryq_pop(&r->retries, &e);
        }
        size_t len = 0;
        char *buf = rc ? NULL : sl__batch_release(&b, &len);
        sl__batch_fini(&b);
        if (!buf || zmq_msg_init_data(&item->msg, buf, len, s_free_plain,
                                      NULL) != 0) {
            free(buf);
            free(firsts);
            free(item);
            sl__dispatch_fail(r, "out of memory handing out retries");
            return;
        }
        item->count = sl__get_u32((unsigned char *)buf + 4);
        item->link = first.link;
        item->worker = first.worker;
        item->gen = first.gen;
        item->retry = 1;
        item->first_ns = firsts;
        item->level = first.env.priority < SL_PRIO_LEVELS
                          ? first.env.priority : SL_PRIO_LEVELS - 1;
        if (s_deliver(r, &item, 1) != 0)
            sl__dispatch_fail(r, "out of memory handing out retries");
    }
}

/* Past the grace period what a done would send is spilled instead: its
 * outputs at the consumers (which have not handled them), its dead
 * letters at the dead-letter stage, its retries at this stage. */
static void s_spill_done(sl_runner_t *r, sl_done_t *d)
{
    const sl_topology_t *topo = r->run->topo;
    if (d->count && !d->data_sent && d->buf) {
        size_t n = r->spec->fanout == SL_FANOUT_ROUND_ROBIN ? 1 : r->n_out;
        for (size_t o = 0; o < n; o++) {
            sl__spill_batch(r->run, topo->stages[r->spec->outputs[o]].name,
                            d->buf, d->len, NULL);
            r->link_spilled[o] += d->count;
        }
        r->out_records += d->count;
        d->data_sent = 1;
    }
    if (d->dl_count && d->dl_buf) {
        sl__spill_batch(r->run, topo->stages[r->spec->dl_stage].name,
                        d->dl_buf, d->dl_len, NULL);
        r->dl_spilled += d->dl_count;
        d->dl_count = 0;
    }
    if (d->retry_count) {
        sl__spill_batch(r->run, r->spec->name, d->retry_buf, d->retry_len,
                        d->retry_first);
        atomic_fetch_add(&r->spilled_in, d->retry_count);
        d->release += d->retry_count;
        d->retry_count = 0;
    }
}

static void s_spill_item(sl_runner_t *r, sl_work_t *item)
{
    if (item->view_end) { /* a worker's share of a batch: its records only */
        sl_batch_iter_t it;
        sl_envelope_t env;
        const char *payload;
        size_t plen;
        uint32_t k = 0;
        if (sl__work_iter(item, &it) == 0)
            while (sl__batch_next(&it, &env, &payload, &plen) == 1) {
                sl__spill_record(r->run, r->spec->name, &env, payload, plen,
                                 item->first_ns ? item->first_ns[k] : 0);
                k++;
            }
    } else {
        const void *data = item->owned_buf ? item->owned_buf
                                           : zmq_msg_data(&item->msg);
        size_t len = item->owned_buf ? item->owned_len
                                     : zmq_msg_size(&item->msg);
        sl__spill_batch(r->run, r->spec->name, data, len, item->first_ns);
    }
    atomic_fetch_add(&r->spilled_in, item->count);
    r->gen_held[item->gen % SL_GEN_RING] -= item->count;
    if (!item->retry) /* a retry's records were counted in when they came */
        atomic_fetch_add(&r->in_direct, item->count);
    sl__credit_rx_completed(&r->rx, item->link, item->count);
    sl__work_free(item);
}

static void s_spill_cb(void *item, void *arg)
{
    s_spill_item(arg, item);
}

/* Spills what waits for a worker or a retry: nothing of it has started. */
static void s_spill_waiting(sl_runner_t *r)
{
    pthread_mutex_lock(&r->mu);
    size_t n = sl_prioq_drain(&r->pq, s_spill_cb, r);
    r->queued = 0;
    for (unsigned i = 0; i < r->n_workers && r->workers; i++)
        n += sl_prioq_drain(&r->workers[i].pq, s_spill_cb, r);
    r->inflight -= (uint32_t)n;
    pthread_mutex_unlock(&r->mu);
    if (r->pp)
        sl__procpool_spill(r->pp, s_spill_cb, r);
    sl_retry_entry_t e;
    while (sl__retryq_pop(&r->retries, &e) == 0) {
        sl__spill_record(r->run, r->spec->name, &e.env, e.payload, e.len,
                         e.first_ns);
        atomic_fetch_add(&r->spilled_in, 1);
        sl__credit_rx_completed(&r->rx, e.link, 1);
        r->gen_held[e.gen % SL_GEN_RING] -= 1;
        free(e.payload);
    }
    s_update_held(r, sl__credit_rx_held(&r->rx));
}

/* Backpressure: spells during which finished output waited for credit. */
static void s_bp_begin(sl_runner_t *r)
{
    if (!atomic_load_explicit(&r->bp_since, RELAXED))
        atomic_store_explicit(&r->bp_since, sl_mono_ns(), RELAXED);
}

static void s_bp_end(sl_runner_t *r)
{
    uint64_t since = atomic_exchange_explicit(&r->bp_since, 0, RELAXED);
    if (since)
        atomic_fetch_add_explicit(&r->bp_ns, sl_mono_ns() - since, RELAXED);
}

/* Moves finished work to the pending list and sends what credit allows,
 * in order (so per-worker order is kept end to end). */
static void s_pump(sl_runner_t *r)
{
    pthread_mutex_lock(&r->mu);
    sl_done_t *head = r->done_head;
    sl_done_t *tail = r->done_tail;
    r->done_head = r->done_tail = NULL;
    pthread_mutex_unlock(&r->mu);
    if (head) {
        if (r->pend_tail)
            r->pend_tail->next = head;
        else
            r->pend_head = head;
        r->pend_tail = tail;
    }
    while (r->pend_head) {
        sl_done_t *d = r->pend_head;
        if (d->mark_epoch)
            s_send_mark(r, d->mark_source, (uint32_t)d->worker, d->mark_epoch);
        if (atomic_load_explicit(&r->run->spilling, RELAXED))
            s_spill_done(r, d);
        if (d->count && !d->data_sent) {
            if (r->n_out == 0) {
                /* a sink emitted: refused by emit, so unreachable */
                free(d->buf);
                d->buf = NULL;
            } else {
                int rc = s_send_head(r, d);
                if (rc == 0) {
                    s_bp_begin(r);
                    return;
                }
                if (rc < 0) {
                    sl__dispatch_fail(r, "cannot send a batch downstream");
                    return;
                }
                r->out_records += d->count;
            }
            d->data_sent = 1;
        }
        if (d->dl_count) {
            int rc = s_send_dead_letters(r, d);
            if (rc == 0) {
                s_bp_begin(r);
                return;
            }
            if (rc < 0)
                return;
        }
        if (d->retry_count)
            s_queue_retries(r, d);
        s_release(r, d);
        if (d->last)
            r->lasts++;
        if (d->retired) {
            if (!r->pp)
                sl__worker_reap(r, (unsigned)d->worker);
            r->n_retiring--;
        }
        r->pend_head = d->next;
        if (!r->pend_head)
            r->pend_tail = NULL;
        sl__done_free(d);
    }
    s_bp_end(r);
}

/* Credit goes back in chunks of a quarter of the link's share, or all of it
 * once the stage has nothing in hand (no further completion will come to
 * round the chunk up). Fewer, larger CREDIT messages; the upstream never
 * waits on credit that is merely being held back, because an idle stage
 * returns everything. */
static void s_return_credit(sl_runner_t *r)
{
    pthread_mutex_lock(&r->mu);
    int idle = r->inflight == 0;
    pthread_mutex_unlock(&r->mu);
    idle = idle && !r->pend_head;
    for (size_t l = 0; l < r->rx.n_links; l++) {
        const sl_credit_link_t *link = &r->rx.links[l];
        uint32_t chunk = link->share / 4 ? link->share / 4 : 1;
        if (!idle && link->to_return < chunk)
            continue;
        uint32_t n = sl__credit_rx_take_return(&r->rx, l);
        if (n && !r->in_eos[l])
            s_send_credit(r, l, n);
    }
}

static void s_send_eos(sl_runner_t *r)
{
    for (size_t o = 0; o < r->n_out; o++) {
        if (r->out_remote && r->out_remote[o])
            continue; /* sent once acknowledged (sl__remote_ended) */
        unsigned char msg[SL_MSG_EOS_SIZE];
        sl__msg_eos(msg, r->out_link[o], r->link_sent[o]);
        if (zmq_send(r->out_socks[o], msg, sizeof(msg), 0) < 0)
            sl__dispatch_fail(r, "cannot send end-of-stream: %s", zmq_strerror(errno));
    }
    if (r->dl_sock) {
        unsigned char msg[SL_MSG_EOS_SIZE];
        sl__msg_eos(msg, r->dl_link, r->dl_sent);
        if (zmq_send(r->dl_sock, msg, sizeof(msg), 0) < 0)
            sl__dispatch_fail(r, "cannot send end-of-stream: %s", zmq_strerror(errno));
    }
}

/* Dispatcher lag: one turn of the loop (everything between two polls)
 * should take microseconds; a long one delays every link of the stage.
 * The longest turn of each second is published, and a turn over
 * LAG_WARN_MS is logged. Also publishes each input link's credit. */
#define LAG_WARN_MS 100

static void s_observe_turn(sl_runner_t *r, uint64_t start)
{
    uint64_t now = sl_mono_ns(), took = now - start;
    if (took > r->lag_window_max)
        r->lag_window_max = took;
    if (now - r->lag_window_at >= 1000000000ull) {
        atomic_store_explicit(&r->lag_max, r->lag_window_max, RELAXED);
        r->lag_window_max = 0;
        r->lag_window_at = now;
    }
    if (took > LAG_WARN_MS * 1000000ull &&
        (++r->lag_logged <= 10 || r->lag_logged % 1000 == 0))
        sl__log(SL_LOG_WARN, r->spec->name, -1,
                "dispatcher loop took %llu ms (over %d ms): the stage's "
                "links waited", (unsigned long long)(took / 1000000),
                LAG_WARN_MS);
    for (size_t l = 0; l < r->rx.n_links && r->link_credit; l++)
        atomic_store_explicit(&r->link_credit[l], r->rx.links[l].outstanding,
                              RELAXED);
}

/* The grace period is over: a producer on another node that has not
 * ended by now may never start, and a stop on this node cannot reach it.
 * Its links count as ended (the ledger still says they had no
 * end-of-stream). */
static void s_waive_remote_eos(sl_runner_t *r)
{
    const sl_topology_t *topo = r->run->topo;
    r->eos_waived = 0;
    for (size_t l = 0; l < r->rx.n_links; l++) {
        const sl_topo_stage_t *up = &topo->stages[r->spec->inputs[l]];
        if (r->in_eos[l] || up->host == r->run->node)
            continue;
        r->eos_waived++;
        sl__log(SL_LOG_WARN, r->spec->name, -1, "no end-of-stream from "
                "'%s' on node '%s' by the end of the grace period: its link "
                "counts as ended", up->name, topo->hosts[up->host].name);
    }
}

/* True once every input has ended and every record taken in is handled. */
static int s_inputs_done(sl_runner_t *r)
{
    if (r->desc->kind == SL_STAGE_SOURCE)
        return 1;
    if (r->remote_in && r->eos_count < r->rx.n_links && !r->eos_waived &&
        atomic_load_explicit(&r->run->spilling, RELAXED))
        s_waive_remote_eos(r);
    if (r->eos_count + r->eos_waived < r->rx.n_links)
        return 0;
    /* A link delivers in order, so everything sent before EOS is here; a
     * count that differs is a loss the ledger reports, not a reason to
     * wait forever. */
    /* A finished item may still carry retries to the queue: not idle
     * until its done has been through the pump. */
    pthread_mutex_lock(&r->mu);
    int idle = r->inflight == 0 && !r->done_head;
    pthread_mutex_unlock(&r->mu);
    return idle && !r->pend_head && !sl__retryq_len(&r->retries);
}

/* Elastic pools: checked every ELASTIC_TICK_MS. A pool grows by one
 * worker when, on ELASTIC_FULL_TICKS checks in a row, work was waiting for
 * a worker and an input held at least ELASTIC_FULL_PCT of its share of the
 * queue; it shrinks by one when, over the stage's idle time, its work
 * would have fitted in one worker fewer. */
#define ELASTIC_TICK_MS 100
#define ELASTIC_FULL_TICKS 2
#define ELASTIC_FULL_PCT 90
#define ELASTIC_SHRINK_PCT 70

static int s_worker_busy(sl_runner_t *r, unsigned i)
{
    if (r->pp)
        return sl__procpool_busy(r->pp, i);
    return atomic_load_explicit(&r->workers[i].stats.busy, RELAXED);
}

static void s_grow(sl_runner_t *r, unsigned busy, uint32_t held)
{
    unsigned i = 0;
    while (i < r->n_workers && (r->workers[i].live || r->workers[i].started))
        i++;
    if (i == r->n_workers)
        return; /* every slot is live or still retiring */
    int rc;
    char err[512] = "";
    if (r->pp) {
        rc = sl__procpool_grow(r->pp, i);
    } else {
        rc = sl__worker_init_one(r, i, err, sizeof(err));
        if (rc == 0)
            rc = sl__worker_start_one(r, i);
        if (rc)
            sl__worker_reap(r, i);
    }
    if (rc) {
        sl__log(SL_LOG_WARN, r->spec->name, -1, "cannot grow the pool: %s",
                err[0] ? err : strerror(-rc));
        return;
    }
    r->workers[i].live = 1;
    r->n_live++;
    atomic_fetch_add(&r->grows, 1);
    sl__log(SL_LOG_INFO, r->spec->name, -1,
            "pool grown to %u workers: work waiting with %u busy, %u of %u "
            "queued", r->n_live, busy, held, r->spec->queue);
}

/* Lets one idle worker go. */
static void s_shrink(sl_runner_t *r, double load)
{
    for (unsigned k = r->n_workers; k-- > 0;) {
        sl_worker_t *w = &r->workers[k];
        if (!w->live || s_worker_busy(r, k))
            continue;
        if (r->pp) {
            if (sl__procpool_retire(r->pp, k) != 0)
                continue;
        } else {
            pthread_mutex_lock(&r->mu);
            w->retire = 1;
            pthread_cond_broadcast(&r->cv);
            pthread_mutex_unlock(&r->mu);
        }
        w->live = 0;
        r->n_live--;
        r->n_retiring++;
        atomic_fetch_add(&r->shrinks, 1);
        sl__log(SL_LOG_INFO, r->spec->name, (int)k,
                "pool shrunk to %u workers: %.1f workers' worth of work over "
                "the last %u ms", r->n_live, load, r->spec->idle_shrink_ms);
        return; /* one at a time */
    }
}

static uint64_t s_busy_ns(sl_runner_t *r)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < r->n_workers; i++)
        sum += atomic_load_explicit(&r->workers[i].stats.busy_ns, RELAXED);
    return sum;
}

static void s_elastic(sl_runner_t *r, int flushing)
{
    if (r->n_workers == r->spec->workers || flushing ||
        r->desc->kind == SL_STAGE_SOURCE)
        return;
    uint64_t now = sl_mono_ns();
    if (now < r->elastic_at)
        return;
    r->elastic_at = now + ELASTIC_TICK_MS * 1000000ull;
    unsigned busy = 0;
    for (unsigned i = 0; i < r->n_workers; i++)
        if (r->workers[i].live && s_worker_busy(r, i))
            busy++;
    /* Near capacity: some input holds most of its share of the queue (with
     * fan-in one busy upstream can only ever fill its own share). */
    uint32_t held = sl__credit_rx_held(&r->rx);
    int full = 0;
    for (size_t l = 0; l < r->rx.n_links; l++) {
        const sl_credit_link_t *link = &r->rx.links[l];
        full |= (uint64_t)link->held * 100 >=
                (uint64_t)link->share * ELASTIC_FULL_PCT;
    }
    /* Work waiting that no worker has taken means every worker is busy;
     * a stage stuck on downstream credit would not gain from more. */
    int backlog;
    if (r->pp) {
        backlog = sl__procpool_backlog(r->pp);
    } else {
        pthread_mutex_lock(&r->mu);
        backlog = !sl_prioq_empty(&r->pq);
        pthread_mutex_unlock(&r->mu);
    }
    int saturated = full && backlog && !r->pend_head;
    r->full_ticks = saturated ? r->full_ticks + 1 : 0;
    if (r->full_ticks >= ELASTIC_FULL_TICKS && r->n_live < r->n_workers) {
        r->full_ticks = 0;
        s_grow(r, busy, held);
        r->window_at = 0; /* a new measurement window */
    }
    /* Shrinking looks at a whole idle-time window: the work done in it
     * would have fitted in one worker fewer, at most ELASTIC_SHRINK_PCT
     * busy, and nothing ever waited for a worker. (Looking for one idle
     * worker would fail: work spreads over all of them.) */
    if (backlog || saturated || !r->window_at) {
        r->window_at = now;
        r->window_busy_ns = s_busy_ns(r);
        return;
    }
    uint64_t span = now - r->window_at;
    if (span < (uint64_t)r->spec->idle_shrink_ms * 1000000ull)
        return;
    uint64_t busy_now = s_busy_ns(r);
    double load = (double)(busy_now - r->window_busy_ns) / (double)span;
    r->window_at = now;
    r->window_busy_ns = busy_now;
    sl__log(SL_LOG_DEBUG, r->spec->name, -1,
            "pool of %u: %.2f workers' worth of work over %llu ms", r->n_live,
            load, (unsigned long long)(span / 1000000));
    if (r->n_live > r->spec->workers &&
        load * 100.0 <= (double)(r->n_live - 1) * ELASTIC_SHRINK_PCT)
        s_shrink(r, load);
}

/* Links to other nodes wake the loop this often while one waits for a
 * connection (dispatch_remote.c). */
#define REMOTE_TICK_MS 50

void *sl__dispatcher_main(void *arg)
{
    sl_runner_t *r = arg;
    sl_run_t *run = r->run;
    size_t n_fixed = (r->in_sock ? 1 : 0) + r->n_out + (r->dl_sock ? 1 : 0) + 1;
    /* a process pool adds its socket and one pidfd per child */
    size_t n_max = n_fixed + (r->pp ? 1 + r->n_workers : 0);
    zmq_pollitem_t items[n_max];
    size_t k = 0;
    if (r->in_sock)
        items[k++] = (zmq_pollitem_t){.socket = r->in_sock, .events = ZMQ_POLLIN};
    size_t out0 = k;
    for (size_t o = 0; o < r->n_out; o++)
        items[k++] = (zmq_pollitem_t){.socket = r->out_socks[o], .events = ZMQ_POLLIN};
    if (r->dl_sock)
        items[k++] = (zmq_pollitem_t){.socket = r->dl_sock, .events = ZMQ_POLLIN};
    items[k++] = (zmq_pollitem_t){.fd = r->efd, .events = ZMQ_POLLIN};

    for (size_t o = 0; o < r->n_out; o++) {
        if (r->out_remote && r->out_remote[o])
            continue; /* SYNC once the other node is there (sl__remote_turn) */
        unsigned char hello[SL_MSG_HELLO_SIZE];
        sl__msg_hello(hello, r->out_link[o]);
        if (zmq_send(r->out_socks[o], hello, sizeof(hello), 0) < 0)
            sl__dispatch_fail(r, "cannot reach '%s': %s",
                   run->topo->stages[r->spec->outputs[o]].name,
                   zmq_strerror(errno));
    }
    if (r->dl_sock) {
        unsigned char hello[SL_MSG_HELLO_SIZE];
        sl__msg_hello(hello, r->dl_link);
        if (zmq_send(r->dl_sock, hello, sizeof(hello), 0) < 0)
            sl__dispatch_fail(r, "cannot reach dead-letter stage '%s': %s",
                   run->topo->stages[r->spec->dl_stage].name,
                   zmq_strerror(errno));
    }

    if (r->pp)
        sl__procpool_start(r->pp);
    int flushing = 0;
    while (!atomic_load(&run->aborting)) {
        int n_items = (int)n_fixed;
        int timeout = r->n_workers > r->spec->workers ? ELASTIC_TICK_MS : 200;
        if ((r->out_remote || r->rrx) && sl__remote_turn(r) &&
            timeout > REMOTE_TICK_MS)
            timeout = REMOTE_TICK_MS;
        s_elastic(r, flushing);
        if (r->pp) {
            timeout = sl__procpool_tick(r->pp, timeout);
            n_items += sl__procpool_pollitems(r->pp, items + n_fixed,
                                              (int)(n_max - n_fixed));
        }
        /* A stop request is noticed by the sources themselves at their next
         * pull; the timeout only bounds how late an abort is seen. */
        /* Announce the sleep, then look once more: a worker that posts
         * after this check sees the flag and writes the eventfd. */
        atomic_store(&r->polling, 1);
        pthread_mutex_lock(&r->mu);
        int pending = r->done_head != NULL;
        pthread_mutex_unlock(&r->mu);
        uint64_t due = sl__retryq_next_due(&r->retries);
        if (due != UINT64_MAX) {
            uint64_t now = sl_mono_ns();
            long ms = due <= now ? 0 : (long)((due - now) / 1000000 + 1);
            if (ms < timeout)
                timeout = (int)ms;
        }
        int rc = zmq_poll(items, n_items, pending ? 0 : timeout);
        atomic_store(&r->polling, 0);
        if (rc < 0 && errno != EINTR) {
            sl__dispatch_fail(r, "poll failed: %s", zmq_strerror(errno));
            break;
        }
        uint64_t turn_start = sl_mono_ns();
        if (items[n_fixed - 1].revents & ZMQ_POLLIN) {
            uint64_t v;
            ssize_t got = read(r->efd, &v, sizeof(v));
            (void)got;
        }
        if (r->in_sock && (items[0].revents & ZMQ_POLLIN))
            s_drain_input(r);
        for (size_t o = 0; o < r->n_out; o++) {
            if (!(items[out0 + o].revents & ZMQ_POLLIN))
                continue;
            if (r->out_remote && r->out_remote[o])
                sl__remote_drain_out(r, o);
            else
                s_drain_credit(r, r->out_socks[o], &r->tx[o],
                               r->out_acked && r->out_acked[o] ? &r->rtx[o]
                                                               : NULL);
        }
        if (r->dl_sock && (items[out0 + r->n_out].revents & ZMQ_POLLIN))
            s_drain_credit(r, r->dl_sock, &r->dl_tx, NULL);
        if (atomic_load_explicit(&run->spilling, RELAXED))
            s_spill_waiting(r);
        else
            s_run_due_retries(r);
        if (r->pp)
            sl__procpool_on_ready(r->pp, items + n_fixed,
                                  n_items - (int)n_fixed);
        s_pump(r);
        if (r->n_marks)
            s_marks_ready(r);
        if (r->rrx)
            sl__remote_acks(r);
        s_return_credit(r);
        s_observe_turn(r, turn_start);

        if (!flushing && r->desc->kind != SL_STAGE_SOURCE && s_inputs_done(r)) {
            flushing = 1;
            if (r->pp) {
                sl__procpool_flush(r->pp);
            } else {
                pthread_mutex_lock(&r->mu);
                r->flush_now = 1;
                pthread_cond_broadcast(&r->cv);
                pthread_mutex_unlock(&r->mu);
            }
        }
        if (r->lasts == r->n_live && !r->n_retiring && !r->pend_head) {
            /* a link to another node ends once its batches are safe */
            if (r->out_remote && !sl__remote_ended(r))
                continue;
            s_send_eos(r);
            break;
        }
    }
    /* Worker processes end with the thread that started them. */
    sl__procpool_destroy(&r->pp);
    /* Workers waiting for work or credit must not outlive the dispatcher. */
    pthread_mutex_lock(&r->mu);
    if (atomic_load(&run->aborting))
        r->stop = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    atomic_store(&r->finished, 1);
    if (atomic_fetch_add(&run->n_finished, 1) + 1 == run->n_runners)
        atomic_store(&run->t_end, sl_mono_ns());
    return NULL;
}
