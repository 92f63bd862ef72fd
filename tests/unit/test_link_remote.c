/* The session layer of links between nodes (link_remote.h): what the
 * sender keeps, what it sends again after a reconnect or a restart of the
 * receiver, the window bound, and the receiver's verdicts. */
#include <criterion/criterion.h>

#include "link_remote.h"

#include <string.h>

static void s_msg(zmq_msg_t *m, const char *text)
{
    cr_assert_eq(zmq_msg_init_size(m, strlen(text)), 0);
    memcpy(zmq_msg_data(m), text, strlen(text));
}

/* Sends count batches of `records` records each: returns the last seq. */
static uint64_t s_push(sl_rtx_t *t, unsigned count, uint32_t records)
{
    uint64_t seq = 0;
    for (unsigned i = 0; i < count; i++) {
        zmq_msg_t m;
        s_msg(&m, "batch");
        cr_assert(sl__rtx_room(t, records));
        cr_assert_eq(sl__rtx_push(t, &m, records, &seq), 0);
        zmq_msg_close(&m); /* the ring holds its own reference */
    }
    return seq;
}

Test(rtx, keeps_until_acknowledged_and_bounds_the_window)
{
    sl_rtx_t t;
    sl__rtx_init(&t, 100);
    t.up = 1;
    cr_assert_eq(s_push(&t, 10, 10), 10, "numbered from 1");
    cr_assert_eq(t.unacked, 100);
    cr_assert_not(sl__rtx_room(&t, 1), "the window is full");
    sl__rtx_ack(&t, 3);
    cr_assert_eq(t.unacked, 70);
    cr_assert_eq(t.acked, 3);
    cr_assert(sl__rtx_room(&t, 30));
    cr_assert_not(sl__rtx_room(&t, 31));
    sl__rtx_ack(&t, 2); /* old news */
    cr_assert_eq(t.acked, 3);
    sl__rtx_ack(&t, 1000); /* never ahead of what was sent */
    cr_assert_eq(t.acked, 10);
    cr_assert_eq(t.unacked, 0);
    cr_assert(sl__rtx_room(&t, 500), "one big batch goes alone");
    cr_assert_eq(t.sess_sent, 100);
    sl__rtx_fini(&t);
}

Test(rtx, the_same_receiver_gets_only_what_it_lacks)
{
    sl_rtx_t t;
    sl__rtx_init(&t, 1000);
    cr_assert_eq(sl__rtx_welcome(&t, 77, 0), 0);
    s_push(&t, 5, 4);
    sl__rtx_ack(&t, 1);
    sl__rtx_lost(&t, 123);
    cr_assert_eq(atomic_load(&t.losses), 1);
    cr_assert_null(sl__rtx_due(&t), "nothing goes while down");
    /* it had received up to 3: 4 and 5 go again, 2 and 3 wait for acks */
    t.sync_ns = 1;
    cr_assert_eq(sl__rtx_welcome(&t, 77, 3), 8);
    cr_assert_not(sl__rtx_room(&t, 1), "re-sends go before new batches");
    sl_rtx_entry_t *e = sl__rtx_due(&t);
    cr_assert(e);
    cr_assert_eq(e->seq, 4);
    sl__rtx_resent(&t);
    cr_assert_eq(sl__rtx_due(&t)->seq, 5);
    sl__rtx_resent(&t);
    cr_assert_null(sl__rtx_due(&t));
    cr_assert(sl__rtx_room(&t, 1));
    cr_assert_eq(atomic_load(&t.resent), 8);
    cr_assert_eq(atomic_load(&t.restarts), 0);
    cr_assert_eq(t.sess_sent, 20, "each batch counted once per session");
    sl__rtx_fini(&t);
}

Test(rtx, a_restarted_receiver_gets_everything_unacknowledged)
{
    sl_rtx_t t;
    sl__rtx_init(&t, 1000);
    sl__rtx_welcome(&t, 77, 0);
    s_push(&t, 6, 2);
    sl__rtx_ack(&t, 2);
    sl__rtx_lost(&t, 5);
    t.sync_ns = 1;
    /* a new process: it counts from zero and has none of them */
    cr_assert_eq(sl__rtx_welcome(&t, 99, 0), 8);
    cr_assert_eq(atomic_load(&t.restarts), 1);
    cr_assert_eq(t.sess_sent, 0);
    for (uint64_t want = 3; want <= 6; want++) {
        cr_assert_eq(sl__rtx_due(&t)->seq, want);
        sl__rtx_resent(&t);
    }
    cr_assert_eq(t.sess_sent, 8, "its end-of-stream will announce these");
    /* a batch that could not go waits for the next connection */
    uint64_t seq = s_push(&t, 1, 3);
    sl__rtx_unsent(&t);
    cr_assert_eq(sl__rtx_due(&t)->seq, seq);
    sl__rtx_fini(&t);
}

Test(rtx, the_ring_grows_and_keeps_order)
{
    sl_rtx_t t;
    sl__rtx_init(&t, 100000);
    t.up = 1;
    s_push(&t, 10, 1);
    sl__rtx_ack(&t, 7); /* head moves, so growing must unwrap */
    s_push(&t, 100, 1);
    cr_assert_eq(t.n, 103);
    t.next = 0;
    for (uint64_t want = 8; want <= 110; want++) {
        sl_rtx_entry_t *e = sl__rtx_due(&t);
        cr_assert(e);
        cr_assert_eq(e->seq, want);
        cr_assert_eq(zmq_msg_size(&e->msg), 5);
        sl__rtx_resent(&t);
    }
    sl__rtx_fini(&t);
}

Test(rrx, verdicts)
{
    sl_rrx_t x;
    memset(&x, 0, sizeof(x));
    cr_assert_eq(sl__rrx_seq(&x, 1, 1), SL_RRX_STALE, "before any SYNC");
    cr_assert_eq(sl__rrx_sync(&x, 500, 1), 1);
    /* a new session may start anywhere: earlier batches were acknowledged
     * to this link's previous process */
    cr_assert_eq(sl__rrx_seq(&x, 1, 41), SL_RRX_TAKE);
    x.sess_received = 10;
    cr_assert_eq(sl__rrx_seq(&x, 1, 42), SL_RRX_TAKE);
    cr_assert_eq(sl__rrx_seq(&x, 1, 42), SL_RRX_DUP);
    cr_assert_eq(sl__rrx_seq(&x, 1, 44), SL_RRX_GAP);
    cr_assert_eq(sl__rrx_seq(&x, 2, 43), SL_RRX_STALE, "another connection");
    /* the same sender reconnects: its place is kept */
    cr_assert_eq(sl__rrx_sync(&x, 500, 2), 0);
    cr_assert_eq(x.last_seq, 42);
    cr_assert_eq(sl__rrx_seq(&x, 2, 42), SL_RRX_DUP);
    cr_assert_eq(sl__rrx_seq(&x, 2, 43), SL_RRX_TAKE);
    /* a restarted sender starts over */
    cr_assert_eq(sl__rrx_sync(&x, 600, 1), 1);
    cr_assert_eq(x.last_seq, 0);
    cr_assert_eq(x.sess_received, 0);
    cr_assert_eq(atomic_load(&x.sessions), 2);
    cr_assert_eq(sl__rrx_seq(&x, 1, 1), SL_RRX_TAKE);
}
