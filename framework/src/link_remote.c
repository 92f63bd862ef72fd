#include "link_remote.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int sl__rtx_init(sl_rtx_t *t, uint32_t window)
{
    memset(t, 0, sizeof(*t));
    t->window = window ? window : 1;
    t->next_seq = 1;
    return 0;
}

static sl_rtx_entry_t *s_at(const sl_rtx_t *t, size_t i)
{
    return &t->ring[(t->head + i) % t->cap];
}

void sl__rtx_fini(sl_rtx_t *t)
{
    for (size_t i = 0; i < t->n; i++)
        zmq_msg_close(&s_at(t, i)->msg);
    free(t->ring);
    t->ring = NULL;
    t->n = t->cap = t->head = t->next = 0;
    t->unacked = 0;
}

int sl__rtx_room(const sl_rtx_t *t, uint32_t n)
{
    if (t->next < t->n)
        return 0;
    /* one batch larger than the window still goes, alone */
    return t->unacked == 0 || (uint64_t)t->unacked + n <= t->window;
}

static int s_grow(sl_rtx_t *t)
{
    size_t cap = t->cap ? 2 * t->cap : 16;
    sl_rtx_entry_t *ring = malloc(cap * sizeof(*ring));
    if (!ring)
        return -ENOMEM;
    /* zmq_msg_t may be moved bytewise only through zmq_msg_move */
    for (size_t i = 0; i < t->n; i++) {
        sl_rtx_entry_t *from = s_at(t, i);
        ring[i].seq = from->seq;
        ring[i].count = from->count;
        zmq_msg_init(&ring[i].msg);
        zmq_msg_move(&ring[i].msg, &from->msg);
        zmq_msg_close(&from->msg);
    }
    free(t->ring);
    t->ring = ring;
    t->cap = cap;
    t->head = 0;
    return 0;
}

int sl__rtx_push(sl_rtx_t *t, zmq_msg_t *msg, uint32_t count, uint64_t *seq)
{
    if (t->n == t->cap && s_grow(t) != 0)
        return -ENOMEM;
    sl_rtx_entry_t *e = s_at(t, t->n);
    zmq_msg_init(&e->msg);
    if (zmq_msg_copy(&e->msg, msg) != 0) {
        zmq_msg_close(&e->msg);
        return -ENOMEM;
    }
    e->seq = t->next_seq++;
    e->count = count;
    t->n++;
    t->next = t->n;
    t->unacked += count;
    t->counted = e->seq;
    t->sess_sent += count;
    *seq = e->seq;
    return 0;
}

void sl__rtx_unsent(sl_rtx_t *t)
{
    if (t->n)
        t->next = t->n - 1;
}

void sl__rtx_ack(sl_rtx_t *t, uint64_t seq)
{
    if (seq >= t->next_seq)
        seq = t->next_seq - 1; /* never ahead of what was sent */
    if (seq > t->acked)
        t->acked = seq;
    while (t->n && s_at(t, 0)->seq <= seq) {
        sl_rtx_entry_t *e = s_at(t, 0);
        t->unacked -= e->count;
        zmq_msg_close(&e->msg);
        t->head = (t->head + 1) % t->cap;
        t->n--;
        if (t->next)
            t->next--;
    }
}

uint64_t sl__rtx_welcome(sl_rtx_t *t, uint64_t session, uint64_t last_seq)
{
    if (t->welcomed && session != t->peer_session)
        atomic_fetch_add(&t->restarts, 1);
    if (session != t->peer_session) {
        /* a new receiver has none of them, and counts from zero */
        t->next = 0;
        t->counted = 0;
        t->sess_sent = 0;
    } else {
        size_t i = 0;
        while (i < t->n && s_at(t, i)->seq <= last_seq)
            i++;
        t->next = i;
    }
    t->peer_session = session;
    t->up = 1;
    t->welcomed = 1;
    t->down_ns = 0;
    if (t->eos == 1)
        t->eos = 0; /* it may not have arrived: goes again */
    uint64_t records = 0;
    for (size_t i = t->next; i < t->n; i++)
        records += s_at(t, i)->count;
    return records;
}

void sl__rtx_lost(sl_rtx_t *t, uint64_t now_ns)
{
    if (t->up || t->sync_ns)
        atomic_fetch_add(&t->losses, 1);
    t->up = 0;
    t->sync_ns = 0;
    if (!t->down_ns)
        t->down_ns = now_ns ? now_ns : 1;
}

sl_rtx_entry_t *sl__rtx_due(sl_rtx_t *t)
{
    return t->up && t->next < t->n ? s_at(t, t->next) : NULL;
}

void sl__rtx_resent(sl_rtx_t *t)
{
    sl_rtx_entry_t *e = s_at(t, t->next);
    atomic_fetch_add(&t->resent, e->count);
    if (e->seq > t->counted) {
        t->counted = e->seq;
        t->sess_sent += e->count;
    }
    t->next++;
}

int sl__rrx_sync(sl_rrx_t *x, uint64_t session, uint32_t conn)
{
    int fresh = !x->synced || session != x->session;
    if (fresh) {
        x->session = session;
        x->last_seq = 0;
        x->sess_received = 0;
        x->ack_ready = x->ack_sent = 0;
        x->unmarked = 0;
        atomic_fetch_add(&x->sessions, 1);
    }
    x->synced = 1;
    x->conn = conn;
    return fresh;
}

sl_rrx_verdict_t sl__rrx_seq(sl_rrx_t *x, uint32_t conn, uint64_t seq)
{
    if (!x->synced || conn != x->conn)
        return SL_RRX_STALE;
    /* a new session may start past 1: its earlier batches were
     * acknowledged by this stage's previous process */
    if (x->last_seq == 0 && x->sess_received == 0) {
        x->last_seq = seq;
        return SL_RRX_TAKE;
    }
    if (seq <= x->last_seq)
        return SL_RRX_DUP;
    if (seq != x->last_seq + 1)
        return SL_RRX_GAP;
    x->last_seq = seq;
    return SL_RRX_TAKE;
}
