/* The receiver thread: reads what the target's zmq_sink sends back (one
 * or more concatenated msgpack maps per message), finds each record's
 * sequence number, resolves its slot and records its latency from the
 * intended send time. Between messages it times out the records that
 * have waited longer than --timeout. */
#include "cmd_replay.h"
#include "trace.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

/* How often the timeout scan runs, and how long a poll waits. */
#define S_SCAN_NS 5000000ull
#define S_POLL_MS 5

int sl__rp_slices_init(sl_rp_slices_t *s)
{
    s->h = malloc(sizeof(*s->h) * SL_RP_SLICES);
    if (!s->h)
        return -ENOMEM;
    for (size_t i = 0; i < SL_RP_SLICES; i++)
        sl__hist_init(&s->h[i]);
    s->width_ns = 1000000; /* 1 ms: doubled as the run goes on */
    return 0;
}

void sl__rp_slices_fini(sl_rp_slices_t *s)
{
    free(s->h);
    s->h = NULL;
}

void sl__rp_slices_record(sl_rp_slices_t *s, uint64_t at, uint64_t v)
{
    while (at / s->width_ns >= SL_RP_SLICES) {
        /* the run outgrew the array: pairs become one slice twice as
         * wide (rare: once per doubling of the run) */
        for (size_t i = 0; i < SL_RP_SLICES / 2; i++) {
            sl_hist_t *a = &s->h[2 * i], *b = &s->h[2 * i + 1];
            sl__hist_merge(a, b);
            if (i)
                s->h[i] = *a;
        }
        for (size_t i = SL_RP_SLICES / 2; i < SL_RP_SLICES; i++)
            sl__hist_init(&s->h[i]);
        s->width_ns *= 2;
    }
    sl__hist_record(&s->h[at / s->width_ns], v);
}

uint64_t sl__rp_slices_p50(const sl_rp_slices_t *s, uint64_t from,
                           uint64_t to)
{
    sl_hist_t *m = malloc(sizeof(*m));
    if (!m)
        return 0;
    sl__hist_init(m);
    for (size_t i = 0; i < SL_RP_SLICES; i++) {
        uint64_t mid = i * s->width_ns + s->width_ns / 2;
        if (mid >= from && mid < to)
            sl__hist_merge(m, &s->h[i]);
    }
    uint64_t v = sl__hist_quantile(m, 0.5);
    free(m);
    return v;
}

int sl__rp_bins_init(sl_rp_bins_t *b)
{
    b->n = calloc(SL_RP_BINS, sizeof(*b->n));
    b->width_ns = 1000000;
    b->total = 0;
    return b->n ? 0 : -ENOMEM;
}

void sl__rp_bins_fini(sl_rp_bins_t *b)
{
    free(b->n);
    b->n = NULL;
}

void sl__rp_bins_add(sl_rp_bins_t *b, uint64_t at)
{
    while (at / b->width_ns >= SL_RP_BINS) {
        for (size_t i = 0; i < SL_RP_BINS / 2; i++)
            b->n[i] = b->n[2 * i] + b->n[2 * i + 1];
        memset(b->n + SL_RP_BINS / 2, 0, SL_RP_BINS / 2 * sizeof(*b->n));
        b->width_ns *= 2;
    }
    b->n[at / b->width_ns]++;
    b->total++;
}

double sl__rp_bins_time(const sl_rp_bins_t *b, double q)
{
    double want = q * (double)b->total, seen = 0;
    for (size_t i = 0; i < SL_RP_BINS; i++) {
        if (b->n[i] && seen + (double)b->n[i] >= want) {
            double f = (want - seen) / (double)b->n[i];
            return ((double)i + f) * (double)b->width_ns;
        }
        seen += (double)b->n[i];
    }
    return (double)SL_RP_BINS * (double)b->width_ns;
}

/* One returned record with sequence number seq, received at now (ns
 * after t0). */
static void s_ack(sl_replay_t *r, uint64_t seq, uint64_t now)
{
    sl_rp_acks_t *a = &r->acks;
    size_t i = (size_t)(seq % r->cap);
    uint64_t st = atomic_load_explicit(&r->state[i], memory_order_acquire);
    if (st >> 2 != seq) {
        /* older than the slot's record: its slot was reused, so it came
         * back after max-inflight newer ones (late, or a duplicate of a
         * record long done); newer: never sent by this run */
        if (seq < atomic_load_explicit(&r->issued, memory_order_acquire))
            a->late++;
        else
            a->unmatched++;
        return;
    }
    switch (st & 3) {
    case SL_RP_PENDING: {
        uint64_t at = atomic_load_explicit(&r->intended[i],
                                           memory_order_relaxed);
        if (!atomic_compare_exchange_strong(&r->state[i], &st,
                                            seq << 2 | SL_RP_ACKED)) {
            a->late++; /* the sender timed it out a moment ago */
            return;
        }
        if (at < r->o->warmup_ns) {
            a->completed_warmup++;
            return;
        }
        if (now < at) {
            /* back before it was due: no record of this run can be
             * (the sender sends none before t0, nor any more than 1 us
             * ahead of its time, far less than a round trip), so this
             * answers something else, such as a record of an earlier
             * replay still in a long-running target, with the same seq.
             * A latency of 0 would be a lie: counted, not measured. */
            a->clamped++;
        } else {
            sl__hist_record(&a->all, now - at);
            sl__rp_slices_record(&a->slices, at - r->o->warmup_ns, now - at);
        }
        sl__rp_bins_add(&a->ack_times, now);
        if (!a->completed || now < a->first_ack_ns)
            a->first_ack_ns = now;
        if (now > a->last_ack_ns)
            a->last_ack_ns = now;
        a->completed++;
        atomic_fetch_add_explicit(&r->live_acked, 1, memory_order_relaxed);
        return;
    }
    case SL_RP_ACKED:
        a->duplicates++;
        return;
    default:
        a->late++;
        return;
    }
}

/* One message: records until the bytes run out. */
static void s_message(sl_replay_t *r, const uint8_t *p, size_t len,
                      uint64_t now)
{
    const sl_rp_opts_t *o = r->o;
    r->acks.messages++;
    while (len) {
        uint64_t seq;
        size_t used;
        int rc = sl__rp_mpk_find_u64(p, len, o->seq_field, o->seq_len, &seq,
                                     &used);
        if (rc == -EBADMSG) {
            /* not a map, or cut short: the rest cannot be split */
            r->acks.malformed++;
            return;
        }
        if (rc == 0)
            s_ack(r, seq, now);
        else
            r->acks.unmatched++;
        if (r->capture) {
            if (!r->acks.captured++)
                r->acks.capture_base = now;
            sl_trace_write(r->capture, now - r->acks.capture_base, p, used);
        }
        p += used;
        len -= used;
    }
}

/* Times out the oldest records that waited past the timeout; returns the
 * first seq not yet resolved. Intended times grow with seq, so the scan
 * stops at the first record that may still come. */
static uint64_t s_scan(sl_replay_t *r, uint64_t from, uint64_t now)
{
    uint64_t end = atomic_load_explicit(&r->published, memory_order_acquire);
    uint64_t timeout = r->o->timeout_ns;
    while (from < end) {
        size_t i = (size_t)(from % r->cap);
        uint64_t st = atomic_load_explicit(&r->state[i], memory_order_acquire);
        if (st >> 2 == from && (st & 3) == SL_RP_PENDING) {
            uint64_t at = atomic_load_explicit(&r->intended[i],
                                               memory_order_relaxed);
            if (now < at + timeout)
                break;
            /* a failed exchange means the sender's max-inflight bound
             * took it first: resolved either way */
            if (atomic_compare_exchange_strong(&r->state[i], &st,
                                               from << 2 | SL_RP_TIMED_OUT) &&
                at >= r->o->warmup_ns) {
                r->acks.timeouts++;
                atomic_fetch_add_explicit(&r->live_timeouts, 1,
                                          memory_order_relaxed);
            }
        }
        from++;
    }
    return from;
}

/* What is still pending when a second signal ends the wait. */
static void s_count_unresolved(sl_replay_t *r, uint64_t from)
{
    uint64_t end = atomic_load_explicit(&r->published, memory_order_acquire);
    for (; from < end; from++) {
        size_t i = (size_t)(from % r->cap);
        uint64_t st = atomic_load_explicit(&r->state[i], memory_order_acquire);
        if (st >> 2 == from && (st & 3) == SL_RP_PENDING &&
            atomic_load_explicit(&r->intended[i], memory_order_relaxed) >=
                r->o->warmup_ns)
            r->acks.in_flight_at_stop++;
    }
}

void *sl__rp_receiver_main(void *arg)
{
    sl_replay_t *r = arg;
    zmq_msg_t m;
    zmq_msg_init(&m);
    uint64_t scan = 0, last_scan = 0, drain_until = 0;
    zmq_pollitem_t item = {.socket = r->pull, .events = ZMQ_POLLIN};
    for (;;) {
        if (atomic_load(&r->stop_all)) {
            s_count_unresolved(r, scan);
            break;
        }
        int done = atomic_load(&r->sender_done);
        zmq_poll(&item, 1, S_POLL_MS);
        /* a bounded drain, so that the scan runs under a flood too */
        for (int k = 0; k < 4096; k++) {
            if (zmq_msg_recv(&m, r->pull, ZMQ_DONTWAIT) < 0)
                break;
            uint64_t now = sl__rp_now();
            now = now > r->t0 ? now - r->t0 : 0;
            s_message(r, zmq_msg_data(&m), zmq_msg_size(&m), now);
        }
        uint64_t now = sl__rp_now();
        now = now > r->t0 ? now - r->t0 : 0;
        if (now - last_scan >= S_SCAN_NS || done) {
            scan = s_scan(r, scan, now);
            last_scan = now;
        }
        /* done was read before the last scan's view of published, so
         * everything sent is covered; then late duplicates and unmatched
         * records still have the drain time to come */
        if (!drain_until && done && scan >= atomic_load(&r->published))
            drain_until = now + r->o->drain_ns + 1;
        if (drain_until && now >= drain_until)
            break;
    }
    zmq_msg_close(&m);
    atomic_store(&r->recv_done, 1);
    return NULL;
}
