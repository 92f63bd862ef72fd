/* The sender thread: an open-loop schedule. Record i is due at
 * t0 + offset_i / speed (or t0 + i / rate); the thread sleeps until then,
 * sends, and never waits for an answer. When it falls behind (the socket
 * blocked at its high-water mark, or the machine was busy) it sends what
 * is overdue at once, batched, and each record keeps its own intended
 * time: latency is measured from there, so a stall of the target shows
 * in every record it delayed (coordinated omission, corrected). */
#include "cmd_replay.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <zmq.h>

/* Sleeping wakes late by the scheduler's latency; the last stretch
 * before a send time is spun instead. */
#define S_SPIN_NS 20000ull
/* A record due within this of now is sent now, in the same message. */
#define S_SAME_NS 1000ull

uint64_t sl__rp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Now, in ns after t0 (0 before it). */
static uint64_t s_rel(const sl_replay_t *r)
{
    uint64_t now = sl__rp_now();
    return now > r->t0 ? now - r->t0 : 0;
}

static inline void s_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

typedef struct s_pacer {
    sl_replay_t *r;
    uint8_t *buf;       /* the message being built */
    size_t len;
    uint64_t first_seq; /* of the records in buf */
    unsigned n;
    uint64_t oldest_intended; /* of the first record in buf */
    uint64_t at[SL_RP_BATCH_MAX]; /* intended times of the records in buf */
    uint64_t seq;       /* next sequence number */
    int measured_in_buf;
    int sent_measured;  /* a measured record has gone out */
} s_pacer_t;

/* Until t (absolute, monotonic ns) or a stop. */
static void s_wait_until(sl_replay_t *r, uint64_t t)
{
    uint64_t now = sl__rp_now();
    while (t > now + S_SPIN_NS) {
        /* at most 100 ms per sleep, so that a stop is seen */
        uint64_t until = t - S_SPIN_NS;
        if (until > now + 100000000ull)
            until = now + 100000000ull;
        struct timespec ts = {.tv_sec = (time_t)(until / 1000000000ull),
                              .tv_nsec = (long)(until % 1000000000ull)};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        if (atomic_load_explicit(&r->stop_send, memory_order_relaxed))
            return;
        now = sl__rp_now();
    }
    while (sl__rp_now() < t)
        s_relax();
}

/* Resolves the slots of the records in the buffer as failed sends. */
static void s_fail_batch(s_pacer_t *p)
{
    sl_replay_t *r = p->r;
    for (unsigned i = 0; i < p->n; i++) {
        uint64_t seq = p->first_seq + i;
        _Atomic uint64_t *st = &r->state[seq % r->cap];
        uint64_t want = seq << 2 | SL_RP_PENDING;
        if (atomic_compare_exchange_strong(st, &want,
                                           seq << 2 | SL_RP_FAILED)) {
            uint64_t at = atomic_load_explicit(&r->intended[seq % r->cap],
                                               memory_order_relaxed);
            if (at >= r->o->warmup_ns)
                r->sends.errors++;
        }
    }
}

/* Sends the buffer; a blocked socket is retried until it takes the
 * message or the run is stopped for good. */
static void s_flush(s_pacer_t *p)
{
    sl_replay_t *r = p->r;
    if (!p->n)
        return;
    int rc;
    for (;;) {
        rc = zmq_send(r->push, p->buf, p->len, 0);
        if (rc >= 0)
            break;
        if (errno == EAGAIN || errno == EINTR) {
            if (atomic_load(&r->stop_send))
                break;
            continue;
        }
        break;
    }
    uint64_t now = s_rel(r);
    if (rc < 0) {
        s_fail_batch(p);
    } else {
        r->sends.messages++;
        if (p->measured_in_buf) {
            if (!p->sent_measured)
                r->sends.first_send_ns = now;
            p->sent_measured = 1;
            r->sends.last_send_ns = now;
        }
    }
    /* the records of one message went out together: each one's lateness
     * is now - its intended time (the first is the latest) */
    for (unsigned k = 0; rc >= 0 && k < p->n; k++) {
        uint64_t at = p->at[k];
        if (at >= r->o->warmup_ns)
            sl__hist_record(&r->sends.lag, now > at ? now - at : 0);
    }
    uint64_t lag = now > p->oldest_intended ? now - p->oldest_intended : 0;
    if (lag > r->sends.max_lag_ns)
        r->sends.max_lag_ns = lag;
    atomic_store_explicit(&r->live_lag_ns, lag, memory_order_relaxed);
    atomic_store_explicit(&r->published, p->seq, memory_order_release);
    atomic_store_explicit(&r->live_sent, p->seq, memory_order_relaxed);
    p->n = 0;
    p->len = 0;
    p->measured_in_buf = 0;
}

/* Takes the slot of seq for a record due at intended. When the slot's
 * previous record (seq - cap) is still unresolved, more than max-inflight
 * records are out: that one is counted as timed out. */
static void s_take_slot(s_pacer_t *p, uint64_t seq, uint64_t intended)
{
    sl_replay_t *r = p->r;
    size_t i = (size_t)(seq % r->cap);
    uint64_t old = atomic_load_explicit(&r->state[i], memory_order_acquire);
    if (seq >= r->cap && (old & 3) == SL_RP_PENDING) {
        if (atomic_compare_exchange_strong(&r->state[i], &old,
                                           (old & ~3ull) | SL_RP_TIMED_OUT)) {
            uint64_t at = atomic_load_explicit(&r->intended[i],
                                               memory_order_relaxed);
            if (at >= r->o->warmup_ns)
                r->sends.overflow++;
        }
    }
    atomic_store_explicit(&r->intended[i], intended, memory_order_relaxed);
    atomic_store_explicit(&r->state[i], seq << 2 | SL_RP_PENDING,
                          memory_order_release);
    atomic_store_explicit(&r->issued, seq + 1, memory_order_release);
}

/* Adds one record due at intended (ns after t0) to the message. */
static void s_add(s_pacer_t *p, const void *rec, size_t len,
                  uint64_t intended)
{
    sl_replay_t *r = p->r;
    size_t room = SL_RP_BATCH_BYTES - p->len;
    size_t need = len + r->o->seq_len + 16;
    if (p->n && need > room) {
        s_flush(p);
        room = SL_RP_BATCH_BYTES;
    }
    if (need > room) {
        /* one record larger than a whole batch: a message of its own */
        uint8_t *big = realloc(p->buf, need);
        if (!big) {
            r->sends.bad_records++;
            return;
        }
        p->buf = big;
    }
    size_t n;
    uint64_t seq = p->seq;
    if (sl__rp_mpk_append_u64(rec, len, r->o->seq_field, r->o->seq_len, seq,
                              p->buf + p->len, need, &n) != 0) {
        r->sends.bad_records++;
        return;
    }
    s_take_slot(p, seq, intended);
    p->at[p->n] = intended;
    if (!p->n) {
        p->first_seq = seq;
        p->oldest_intended = intended;
    }
    p->seq++;
    p->len += n;
    p->n++;
    if (intended >= r->o->warmup_ns) {
        p->measured_in_buf = 1;
        if (!r->sends.sent)
            r->sends.first_intended_ns = intended;
        r->sends.last_intended_ns = intended;
        r->sends.sent++;
    } else {
        r->sends.sent_warmup++;
    }
    if (p->n >= SL_RP_BATCH_MAX || p->len > SL_RP_BATCH_BYTES)
        s_flush(p);
}

/* The source's next entry, looping when asked: offsets of a pass
 * continue where the previous one ended, one mean gap later. */
typedef struct s_feed {
    uint64_t base;        /* added to the offsets of this pass */
    uint64_t first, last; /* first and last offset of this pass */
    uint64_t count;       /* entries in this pass */
    int passes;
} s_feed_t;

static int s_next(sl_replay_t *r, s_feed_t *f, uint64_t *off,
                  const void **rec, size_t *len)
{
    int rc = r->src.next(r->src.self, off, rec, len);
    if (rc == 1 && r->o->loop && f->count > 0) {
        /* A source need not start at offset 0 (a synth schedule, a trace
         * cut out of a longer one): the pass spans first..last, and the
         * next one starts a mean gap after its last record, not first
         * plus a gap later. A pass with no span (one record, or a burst
         * at one offset) repeats every second rather than at once,
         * forever. */
        uint64_t span = f->last - f->first;
        uint64_t gap = f->count > 1 && span ? span / (f->count - 1)
                                            : 1000000000ull;
        f->base += span + gap;
        f->count = 0;
        f->passes++;
        if ((rc = r->src.rewind(r->src.self)) != 0)
            return rc;
        rc = r->src.next(r->src.self, off, rec, len);
    }
    if (rc == 0) {
        if (!f->count)
            f->first = *off;
        f->last = *off;
        f->count++;
        *off += f->base;
    }
    return rc;
}

/* Record i's intended time at rate records/s. A whole rate is computed
 * in integers: i * (1e9 / rate) in doubles lands a nanosecond short of a
 * whole second for rates such as 29/s, and --duration 1s then sends a
 * 30th record due at 999999999 ns. */
static uint64_t s_rate_at(uint64_t i, double rate)
{
    if (rate >= 1 && rate <= 1e9 && rate == floor(rate)) {
        uint64_t n = (uint64_t)rate;
        /* i / n whole seconds and the rest: no overflow for any i */
        return i / n * 1000000000ull + i % n * 1000000000ull / n;
    }
    return (uint64_t)((double)i * 1e9 / rate);
}

void *sl__rp_sender_main(void *arg)
{
    sl_replay_t *r = arg;
    const sl_rp_opts_t *o = r->o;
    /* the default 50 µs timer slack would be most of a gap at 20k/s */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    s_pacer_t p = {.r = r};
    p.buf = malloc(SL_RP_BATCH_BYTES + 64);
    s_feed_t feed = {0};
    if (!p.buf) {
        r->sends.source_failed = 1;
        snprintf(r->sends.source_err, sizeof(r->sends.source_err),
                 "out of memory");
        goto done;
    }
    /* Nothing goes out before t0, where both threads' clocks start: a
     * record sent early is measured from t0 rather than from its send,
     * and one due at 0 can come back "before" t0, at a latency of 0. */
    s_wait_until(r, r->t0);
    for (uint64_t i = 0;; i++) {
        if (atomic_load_explicit(&r->stop_send, memory_order_relaxed))
            break;
        uint64_t off;
        const void *rec;
        size_t len;
        int rc = s_next(r, &feed, &off, &rec, &len);
        if (rc == 1)
            break;
        if (rc < 0) {
            r->sends.source_failed = 1;
            snprintf(r->sends.source_err, sizeof(r->sends.source_err), "%s",
                     r->src.error(r->src.self));
            break;
        }
        uint64_t now = s_rel(r);
        uint64_t at;
        if (o->rate > 0)
            at = s_rate_at(i, o->rate);
        else if (o->speed > 0)
            at = (uint64_t)((double)off / o->speed);
        else
            at = now; /* max: no schedule, the send time is the start */
        if (o->duration_ns && at >= o->duration_ns)
            break;
        if (at > now + S_SAME_NS) {
            s_flush(&p);
            s_wait_until(r, r->t0 + at);
            if (atomic_load_explicit(&r->stop_send, memory_order_relaxed))
                break;
        }
        s_add(&p, rec, len, at);
    }
    s_flush(&p);
done:
    free(p.buf);
    atomic_store_explicit(&r->published, p.seq, memory_order_release);
    atomic_store(&r->sender_done, 1);
    return NULL;
}
