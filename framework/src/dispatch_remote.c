/* A stage's links to and from other nodes: the session layer of
 * link_remote.h on the dispatcher thread. */
#include "batch.h"
#include "dispatch_int.h"
#include "link_remote.h"
#include "log.h"
#include "spill.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A SYNC that got no WELCOME (lost with a connection that was dying as it
 * went) goes again after this long. */
#define RESYNC_MS 1000
/* Warnings that could repeat for every message are logged this often. */
#define NOISY_EVERY 1000

static const char *s_stage(const sl_runner_t *r, size_t stage)
{
    return r->run->topo->stages[stage].name;
}

static const char *s_node(const sl_runner_t *r, size_t stage)
{
    const sl_topology_t *t = r->run->topo;
    return t->hosts[t->stages[stage].host].name;
}

static int s_noisy(uint64_t *count)
{
    return ++*count <= 5 || *count % NOISY_EVERY == 0;
}

/* The frames left of a message that is being dropped. */
static void s_skip_rest(void *sock, const zmq_msg_t *last)
{
    int more = zmq_msg_more(last);
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, sock, 0) < 0)
            more = 0;
        else
            more = zmq_msg_more(&part);
        zmq_msg_close(&part);
    }
}

static void s_reply(sl_runner_t *r, uint32_t link, const void *msg, size_t len)
{
    /* no route: the producer has gone; it re-syncs when it is back */
    if (zmq_send(r->in_sock, r->in_ident[link], 5, ZMQ_SNDMORE) >= 0)
        zmq_send(r->in_sock, msg, len, 0);
}

/* ---- input links from other nodes ------------------------------------- */

static void s_ack_mark(sl_runner_t *r, uint32_t link, uint64_t seq)
{
    sl_rrx_t *x = &r->rrx[link];
    sl_mark_t mk = {.link = (int32_t)link, .epoch = seq, .session = x->session};
    /* with no generation to spare, a later marker covers this batch */
    x->unmarked = sl__dispatch_push_mark(r, &mk) == 0 ? 0 : seq;
}

void sl__remote_local_batch(sl_runner_t *r, uint32_t link)
{
    sl_rrx_t *x = &r->rrx[link];
    x->last_seq++;
    s_ack_mark(r, link, x->last_seq);
}

static void s_on_sync(sl_runner_t *r, uint32_t link, const sl_msg_t *m)
{
    sl_rrx_t *x = &r->rrx[link];
    int was = x->synced;
    int fresh = sl__rrx_sync(x, m->session, m->conn);
    size_t up = r->spec->inputs[link];
    if (was)
        sl__log(SL_LOG_INFO, r->spec->name, -1, "'%s' on node '%s' %s",
                s_stage(r, up), s_node(r, up), fresh
                    ? "restarted: taking what it sends again (records it "
                      "re-sends may reach the sinks twice)"
                    : "reconnected");
    /* an acknowledgement sent on the old connection may be lost */
    x->ack_sent = 0;
    uint32_t grant = sl__credit_rx_open(&r->rx, link);
    unsigned char msg[SL_MSG_WELCOME_SIZE];
    sl__msg_welcome(msg, m->conn, grant, r->run->session,
                    fresh ? 0 : x->last_seq);
    s_reply(r, link, msg, sizeof(msg));
}

static void s_on_seq(sl_runner_t *r, uint32_t link, const sl_msg_t *m,
                     zmq_msg_t *batch)
{
    sl_rrx_t *x = &r->rrx[link];
    size_t up = r->spec->inputs[link];
    uint32_t count;
    int bad = sl__batch_validate_max(zmq_msg_data(batch), zmq_msg_size(batch),
                                     r->spec->limits.max_batch_records,
                                     &count);
    if (bad) {
        sl__dispatch_fail(r, bad == -EMSGSIZE
                                 ? "'%s' on node '%s' sent a batch over "
                                   "limits.max_batch_records"
                                 : "corrupt batch from '%s' on node '%s'",
                          s_stage(r, up), s_node(r, up));
        zmq_msg_close(batch);
        return;
    }
    static _Thread_local uint64_t gaps_logged;
    switch (sl__rrx_seq(x, m->conn, m->seq)) {
    case SL_RRX_TAKE:
        if (sl__credit_rx_received(&r->rx, link, count) != 0) {
            sl__dispatch_fail(r, "'%s' on node '%s' sent %u records beyond "
                              "its credit", s_stage(r, up), s_node(r, up),
                              count);
            break;
        }
        x->sess_received += count;
        sl__dispatch_take(r, link, batch, count);
        s_ack_mark(r, link, m->seq);
        return;
    case SL_RRX_DUP:
        /* it went again after a reconnect that had kept it: the credit it
         * used comes back, the records do not go on twice */
        atomic_fetch_add(&x->dups, count);
        if (sl__credit_rx_received(&r->rx, link, count) == 0)
            sl__credit_rx_completed(&r->rx, link, count);
        break;
    case SL_RRX_GAP:
        /* never acknowledged, so the sender still has the missing ones */
        if (s_noisy(&gaps_logged))
            sl__log(SL_LOG_WARN, r->spec->name, -1, "batch %" PRIu64 " from "
                    "'%s' on node '%s' came before %" PRIu64 ": dropped",
                    m->seq, s_stage(r, up), s_node(r, up), x->last_seq + 1);
        break;
    case SL_RRX_STALE:
        break; /* of a connection given up: sent again on the new one */
    }
    zmq_msg_close(batch);
}

static void s_on_eos(sl_runner_t *r, uint32_t link, const sl_msg_t *m)
{
    sl_rrx_t *x = &r->rrx[link];
    if (!x->synced)
        return;
    if (!r->in_eos[link]) {
        r->in_eos[link] = 1;
        /* the count is of this sender session's records; earlier
         * sessions' are already in in_received */
        r->in_expected[link] = m->sent + (r->in_received[link] -
                                          x->sess_received);
        r->eos_count++;
    }
    unsigned char ack[SL_MSG_ACK_SIZE];
    sl__msg_ack(ack, x->session, SL_ACK_EOS);
    s_reply(r, link, ack, sizeof(ack));
}

void sl__remote_input(sl_runner_t *r, uint32_t link, zmq_msg_t *body)
{
    static _Thread_local uint64_t bad_logged;
    size_t up = r->spec->inputs[link];
    sl_msg_t m;
    int bad = sl__msg_parse(zmq_msg_data(body), zmq_msg_size(body), &m);
    if (!bad && m.type == SL_MSG_SEQ && zmq_msg_more(body)) {
        zmq_msg_t batch;
        zmq_msg_init(&batch);
        if (zmq_msg_recv(&batch, r->in_sock, 0) < 0) {
            zmq_msg_close(&batch);
            zmq_msg_close(body);
            return;
        }
        s_skip_rest(r->in_sock, &batch);
        zmq_msg_close(body);
        s_on_seq(r, link, &m, &batch);
        return;
    }
    s_skip_rest(r->in_sock, body);
    if (!bad && m.type == SL_MSG_SYNC)
        s_on_sync(r, link, &m);
    else if (!bad && m.type == SL_MSG_EOS)
        s_on_eos(r, link, &m);
    else if (s_noisy(&bad_logged))
        sl__log(SL_LOG_WARN, r->spec->name, -1, "a %s message (%zu bytes) "
                "from '%s' on node '%s' dropped", bad ? "malformed"
                : "misplaced", zmq_msg_size(body), s_stage(r, up),
                s_node(r, up));
    zmq_msg_close(body);
}

void sl__remote_mark_done(sl_runner_t *r, const sl_mark_t *mk)
{
    sl_rrx_t *x = &r->rrx[mk->link];
    if (x->session != mk->session)
        return; /* of a sender process that has gone */
    if (!r->out_acked || !r->n_out) { /* a sink: handled is safe */
        if (mk->epoch > x->ack_ready)
            x->ack_ready = mk->epoch;
        return;
    }
    /* What these records became must be acknowledged downstream first:
     * the row waits for every output's batches sent so far. */
    size_t stride = 3 + r->n_out;
    if (r->ackw_n == r->ackw_cap) {
        size_t cap = r->ackw_cap ? 2 * r->ackw_cap : 16;
        uint64_t *rows = malloc(cap * stride * sizeof(*rows));
        if (!rows) {
            sl__dispatch_fail(r, "out of memory keeping acknowledgements");
            return;
        }
        for (size_t i = 0; i < r->ackw_n; i++)
            memcpy(rows + i * stride,
                   r->ackw + ((r->ackw_head + i) % r->ackw_cap) * stride,
                   stride * sizeof(*rows));
        free(r->ackw);
        r->ackw = rows;
        r->ackw_cap = cap;
        r->ackw_head = 0;
    }
    uint64_t *row = r->ackw + ((r->ackw_head + r->ackw_n) % r->ackw_cap) * stride;
    row[0] = (uint64_t)mk->link;
    row[1] = mk->session;
    row[2] = mk->epoch;
    for (size_t o = 0; o < r->n_out; o++)
        row[3 + o] = r->out_acked[o] ? r->rtx[o].next_seq - 1 : 0;
    r->ackw_n++;
}

void sl__remote_acks(sl_runner_t *r)
{
    size_t n_links = r->spec->n_inputs;
    for (size_t l = 0; l < n_links; l++)
        if (r->in_acked[l] && r->rrx[l].unmarked)
            s_ack_mark(r, (uint32_t)l, r->rrx[l].unmarked);
    size_t stride = 3 + r->n_out;
    while (r->ackw_n) {
        const uint64_t *row = r->ackw + r->ackw_head * stride;
        size_t o = 0;
        while (o < r->n_out &&
               (!r->out_acked[o] || r->rtx[o].acked >= row[3 + o]))
            o++;
        if (o < r->n_out)
            break;
        sl_rrx_t *x = &r->rrx[row[0]];
        if (x->session == row[1] && row[2] > x->ack_ready)
            x->ack_ready = row[2];
        r->ackw_head = (r->ackw_head + 1) % r->ackw_cap;
        r->ackw_n--;
    }
    for (size_t l = 0; l < n_links; l++) {
        sl_rrx_t *x = &r->rrx[l];
        if (!r->in_acked[l] || !x->synced || x->ack_ready <= x->ack_sent)
            continue;
        unsigned char ack[SL_MSG_ACK_SIZE];
        sl__msg_ack(ack, x->session, x->ack_ready);
        s_reply(r, (uint32_t)l, ack, sizeof(ack));
        x->ack_sent = x->ack_ready;
    }
}

/* ---- output links to other nodes -------------------------------------- */

static void s_lost(sl_runner_t *r, size_t o, const char *how)
{
    sl_rtx_t *t = &r->rtx[o];
    if (!t->up && !t->sync_ns)
        return; /* already down */
    size_t c = r->spec->outputs[o];
    if (t->up)
        sl__log(SL_LOG_WARN, r->spec->name, -1, "lost the link to '%s' on "
                "node '%s' (%s; peer_timeout %" PRIu32 " ms): %" PRIu32
                " records not yet acknowledged are kept and sent again "
                "once it is back", s_stage(r, c), s_node(r, c), how,
                r->run->topo->peer_timeout_ms, t->unacked);
    sl__rtx_lost(t, sl_mono_ns());
    r->tx[o].credit = 0; /* granted to a connection that is gone */
}

int sl__remote_can_send(const sl_runner_t *r, size_t o, uint32_t n)
{
    if (!r->out_remote || !r->out_remote[o])
        return 1;
    return r->rtx[o].up && sl__rtx_room(&r->rtx[o], n);
}

/* Ownership of m passes. 0, -EAGAIN when the connection is gone. */
static int s_send_seq(sl_runner_t *r, size_t o, uint64_t seq, zmq_msg_t *m)
{
    void *sock = r->out_socks[o];
    unsigned char hdr[SL_MSG_SEQ_SIZE];
    sl__msg_seq(hdr, r->rtx[o].conn, seq);
    if (zmq_send(sock, hdr, sizeof(hdr), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_msg_send(m, sock, ZMQ_DONTWAIT) < 0) {
        int e = errno;
        zmq_msg_close(m);
        return e == EAGAIN || e == EHOSTUNREACH ? -EAGAIN : -e;
    }
    return 0;
}

int sl__remote_send(sl_runner_t *r, size_t o, zmq_msg_t *m, uint32_t count)
{
    sl_rtx_t *t = &r->rtx[o];
    uint64_t seq;
    if (sl__rtx_push(t, m, count, &seq) != 0) {
        zmq_msg_close(m);
        sl__dispatch_fail(r, "out of memory keeping a batch for a re-send");
        return -ENOMEM;
    }
    int rc = s_send_seq(r, o, seq, m);
    if (rc == -EAGAIN) {
        sl__rtx_unsent(t); /* kept: goes once the link is back */
        s_lost(r, o, "the connection closed");
        return 0;
    }
    if (rc) {
        sl__dispatch_fail(r, "cannot send to '%s': %s",
                          s_stage(r, r->spec->outputs[o]), zmq_strerror(-rc));
        return -EIO;
    }
    return 0;
}

static void s_on_welcome(sl_runner_t *r, size_t o, const sl_msg_t *m)
{
    sl_rtx_t *t = &r->rtx[o];
    if (t->up || !t->sync_ns || m->conn != t->conn)
        return; /* for a SYNC given up on */
    uint64_t down = t->down_ns;
    int restarted = t->welcomed && m->session != t->peer_session;
    uint64_t again = sl__rtx_welcome(t, m->session, m->seq);
    r->tx[o].credit = m->credit;
    r->tx[o].ready = 1;
    if (down) {
        size_t c = r->spec->outputs[o];
        sl__log(SL_LOG_INFO, r->spec->name, -1, "the link to '%s' on node "
                "'%s' is back after %.1f s (%s): sending %" PRIu64
                " records again", s_stage(r, c), s_node(r, c),
                (double)(sl_mono_ns() - down) / 1e9,
                restarted ? "the node restarted" : "the same process",
                again);
    }
}

void sl__remote_drain_out(sl_runner_t *r, size_t o)
{
    sl_rtx_t *t = &r->rtx[o];
    for (;;) {
        unsigned char buf[64];
        int n = zmq_recv(r->out_socks[o], buf, sizeof(buf), ZMQ_DONTWAIT);
        if (n < 0)
            return;
        sl_msg_t m;
        if (n > (int)sizeof(buf) || sl__msg_parse(buf, (size_t)n, &m) != 0) {
            sl__dispatch_fail(r, "malformed message from '%s' on node '%s'",
                              s_stage(r, r->spec->outputs[o]),
                              s_node(r, r->spec->outputs[o]));
            return;
        }
        switch (m.type) {
        case SL_MSG_CREDIT:
            if (t->up && m.conn == (t->conn & 0xffff))
                r->tx[o].credit += m.credit;
            break;
        case SL_MSG_WELCOME:
            s_on_welcome(r, o, &m);
            break;
        case SL_MSG_ACK:
            if (m.session != (r->run->session & 0xffffffffu))
                break; /* for the process this node ran before */
            if (m.seq == SL_ACK_EOS) {
                if (t->eos == 1)
                    t->eos = 2;
            } else {
                sl__rtx_ack(t, m.seq);
            }
            break;
        default:
            sl__dispatch_fail(r, "unexpected message '%c' from '%s' on node "
                              "'%s'", m.type, s_stage(r, r->spec->outputs[o]),
                              s_node(r, r->spec->outputs[o]));
            return;
        }
    }
}

/* Connection events of output o's socket. */
static void s_watch_out(sl_runner_t *r, size_t o)
{
    size_t c = r->spec->outputs[o];
    const char *node = s_node(r, c);
    zmq_msg_t ev, addr;
    zmq_msg_init(&ev);
    while (r->out_mon[o] &&
           zmq_msg_recv(&ev, r->out_mon[o], ZMQ_DONTWAIT) >= 0) {
        uint16_t event = 0;
        uint32_t value = 0;
        if (zmq_msg_size(&ev) >= 6) {
            memcpy(&event, zmq_msg_data(&ev), 2);
            memcpy(&value, (char *)zmq_msg_data(&ev) + 2, 4);
        }
        char ep[160] = "";
        zmq_msg_init(&addr);
        if (zmq_msg_more(&ev) && zmq_msg_recv(&addr, r->out_mon[o], 0) >= 0)
            snprintf(ep, sizeof(ep), "%.*s", (int)zmq_msg_size(&addr),
                     (const char *)zmq_msg_data(&addr));
        zmq_msg_close(&addr);
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
            sl__dispatch_fail(r, "link to '%s' on node '%s' (%s): the node "
                              "refused this node's key (ZAP status %" PRIu32
                              "); is it listed under hosts: in that node's "
                              "topology?", s_stage(r, c), node, ep, value);
        } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
            sl__dispatch_fail(r, "link to '%s' on node '%s' (%s): the CURVE "
                              "handshake failed (is hosts: %s: key the key "
                              "that node runs with?)", s_stage(r, c), node,
                              ep, node);
        } else if (event == ZMQ_EVENT_DISCONNECTED) {
            if (!r->rtx[o].welcomed && !r->hello_due[o]) {
                /* closed before any WELCOME: most often the server could
                 * not read our SYNC, sealed for another key */
                r->hello_due[o] = 1;
                sl__log(SL_LOG_WARN, r->spec->name, -1, "link to '%s' on "
                        "node '%s' (%s): the connection closed before the "
                        "link was up; retrying. Does hosts: %s: key match "
                        "the key that node runs with?", s_stage(r, c), node,
                        ep, node);
            }
            s_lost(r, o, "the connection closed or the node went silent");
        }
    }
    zmq_msg_close(&ev);
}

/* Connections from producers on other nodes that ended (the producers
 * reconnect and re-sync themselves; this is for the log). */
static void s_watch_in(sl_runner_t *r)
{
    static _Thread_local uint64_t logged;
    zmq_msg_t ev;
    zmq_msg_init(&ev);
    while (zmq_msg_recv(&ev, r->in_mon, ZMQ_DONTWAIT) >= 0) {
        int more = zmq_msg_more(&ev);
        uint16_t event = 0;
        if (zmq_msg_size(&ev) >= 2)
            memcpy(&event, zmq_msg_data(&ev), 2);
        s_skip_rest(r->in_mon, &ev);
        if (more && event == ZMQ_EVENT_DISCONNECTED && s_noisy(&logged))
            sl__log(SL_LOG_WARN, r->spec->name, -1, "a connection from "
                    "another node closed or went silent (peer_timeout %"
                    PRIu32 " ms); its records come again once it is back",
                    r->run->topo->peer_timeout_ms);
    }
    zmq_msg_close(&ev);
}

int sl__remote_turn(sl_runner_t *r)
{
    int waiting = 0;
    if (r->in_mon)
        s_watch_in(r);
    if (r->rrx)
        sl__remote_acks(r);
    if (!r->out_remote)
        return 0;
    uint64_t now = sl_mono_ns();
    for (size_t o = 0; o < r->n_out; o++) {
        if (!r->out_remote[o])
            continue;
        s_watch_out(r, o);
        sl_rtx_t *t = &r->rtx[o];
        size_t c = r->spec->outputs[o];
        if (!t->up) {
            if (t->sync_ns && now - t->sync_ns > RESYNC_MS * 1000000ull)
                t->sync_ns = 0;
            if (!t->sync_ns) {
                unsigned char sync[SL_MSG_SYNC_SIZE];
                sl__msg_sync(sync, r->out_link[o], t->conn + 1,
                             r->run->session);
                /* ZMQ_IMMEDIATE: EAGAIN until a connection is up */
                if (zmq_send(r->out_socks[o], sync, sizeof(sync),
                             ZMQ_DONTWAIT) >= 0) {
                    t->conn++;
                    t->sync_ns = now;
                } else if (errno != EAGAIN) {
                    sl__dispatch_fail(r, "cannot reach '%s' on node '%s': %s",
                                      s_stage(r, c), s_node(r, c),
                                      zmq_strerror(errno));
                }
            }
            waiting = 1;
            continue;
        }
        sl_rtx_entry_t *e;
        while ((e = sl__rtx_due(t)) && r->tx[o].credit >= e->count) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            zmq_msg_copy(&m, &e->msg);
            int rc = s_send_seq(r, o, e->seq, &m);
            if (rc == -EAGAIN) {
                s_lost(r, o, "the connection closed");
                break;
            }
            if (rc) {
                sl__dispatch_fail(r, "cannot send to '%s': %s", s_stage(r, c),
                                  zmq_strerror(-rc));
                break;
            }
            r->tx[o].credit -= e->count;
            sl__rtx_resent(t);
        }
    }
    return waiting;
}

/* Past the grace period: the batches the other node never acknowledged
 * go to the spill file (at-least-once: it may have handled some). */
static void s_spill_unacked(sl_runner_t *r, size_t o)
{
    sl_rtx_t *t = &r->rtx[o];
    size_t c = r->spec->outputs[o];
    uint32_t n = t->unacked;
    for (sl_rtx_entry_t *e; t->n && (e = &t->ring[t->head]);) {
        sl__spill_batch(r->run, s_stage(r, c), zmq_msg_data(&e->msg),
                        zmq_msg_size(&e->msg), NULL);
        sl__rtx_ack(t, e->seq);
    }
    sl__log(SL_LOG_WARN, r->spec->name, -1, "%" PRIu32 " records sent to '%s' "
            "on node '%s' were not acknowledged by the end of the grace "
            "period: written to the spill file %s for '%s' (it may have "
            "handled some of them)", n, s_stage(r, c), s_node(r, c),
            r->run->topo->spill_path, s_stage(r, c));
}

int sl__remote_ended(sl_runner_t *r)
{
    int spilling = atomic_load(&r->run->spilling);
    int done = 1;
    for (size_t o = 0; o < r->n_out; o++) {
        sl_rtx_t *t = &r->rtx[o];
        if (!r->out_remote[o] || t->eos == 2)
            continue;
        if (t->n && spilling)
            s_spill_unacked(r, o);
        if (t->n) {
            done = 0;
            continue;
        }
        if (t->up && t->eos == 0) {
            unsigned char msg[SL_MSG_EOS_SIZE];
            sl__msg_eos(msg, r->out_link[o], t->sess_sent);
            if (zmq_send(r->out_socks[o], msg, sizeof(msg), ZMQ_DONTWAIT) >= 0)
                t->eos = 1;
        }
        /* past the grace period nobody waits for its acknowledgement */
        if (!spilling)
            done = 0;
        else if (t->eos == 0 && !t->welcomed) /* a setup that cannot work */
            sl__dispatch_fail(r, "no end-of-stream could go to '%s' on node "
                              "'%s': the link never came up",
                              s_stage(r, r->spec->outputs[o]),
                              s_node(r, r->spec->outputs[o]));
        else if (t->eos == 0)
            sl__log(SL_LOG_WARN, r->spec->name, -1, "no end-of-stream could "
                    "go to '%s' on node '%s': the link is down",
                    s_stage(r, r->spec->outputs[o]),
                    s_node(r, r->spec->outputs[o]));
    }
    return done;
}
