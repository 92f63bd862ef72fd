/* Link messages (encode/parse, malformed input) and the receiver's credit
 * accounting, including a long randomized run against a model sender. */
#include <criterion/criterion.h>

#include "batch.h"
#include "proto.h"
#include "testutil.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- messages ------------------------------------------------------------ */

Test(proto, hello_round_trip)
{
    const uint32_t links[] = {0, 1, 0x01020304u, UINT32_MAX};
    for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
        unsigned char buf[SL_MSG_HELLO_SIZE];
        sl__msg_hello(buf, links[i]);
        cr_assert_eq(buf[0], 'H');
        cr_assert_eq(buf[1], SL_PROTO_VERSION);
        cr_assert_eq(buf[2], 0);
        cr_assert_eq(buf[3], 0);
        sl_msg_t m;
        cr_assert_eq(sl__msg_parse(buf, sizeof(buf), &m), 0);
        cr_assert_eq(m.type, SL_MSG_HELLO);
        cr_assert_eq(m.link, links[i]);
        cr_assert_eq(m.credit, 0);
        cr_assert_eq(m.sent, 0);
    }
    /* Little-endian on the wire whatever the host. */
    unsigned char buf[SL_MSG_HELLO_SIZE];
    sl__msg_hello(buf, 0x01020304u);
    cr_assert_eq(buf[4], 0x04);
    cr_assert_eq(buf[7], 0x01);
}

Test(proto, credit_round_trip)
{
    const uint32_t credits[] = {0, 1, 4096, UINT32_MAX};
    for (size_t i = 0; i < sizeof(credits) / sizeof(credits[0]); i++) {
        unsigned char buf[SL_MSG_CREDIT_SIZE];
        sl__msg_credit(buf, credits[i]);
        cr_assert_eq(buf[0], 'C');
        sl_msg_t m;
        cr_assert_eq(sl__msg_parse(buf, sizeof(buf), &m), 0);
        cr_assert_eq(m.type, SL_MSG_CREDIT);
        cr_assert_eq(m.credit, credits[i]);
        cr_assert_eq(m.link, 0);
    }
}

Test(proto, eos_round_trip)
{
    unsigned char buf[SL_MSG_EOS_SIZE];
    sl__msg_eos(buf, 7, UINT64_MAX);
    cr_assert_eq(buf[0], 'E');
    cr_assert_eq(buf[1], SL_PROTO_VERSION);
    sl_msg_t m;
    cr_assert_eq(sl__msg_parse(buf, sizeof(buf), &m), 0);
    cr_assert_eq(m.type, SL_MSG_EOS);
    cr_assert_eq(m.link, 7);
    cr_assert_eq(m.sent, UINT64_MAX);

    sl__msg_eos(buf, UINT32_MAX, 0x0102030405060708ull);
    cr_assert_eq(sl__msg_parse(buf, sizeof(buf), &m), 0);
    cr_assert_eq(m.link, UINT32_MAX);
    cr_assert_eq(m.sent, 0x0102030405060708ull);
    cr_assert_eq(buf[8], 0x08);
    cr_assert_eq(buf[15], 0x01);
}

Test(proto, data_header)
{
    sl_batch_t b;
    sl__batch_init(&b);
    sl_envelope_t env = {.id = 1};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(sl__batch_append(&b, &env, "\x80", 1), 0);
    size_t len;
    char *msg = sl__batch_release(&b, &len);
    cr_assert_not_null(msg);
    sl_msg_t m;
    cr_assert_eq(sl__msg_parse(msg, len, &m), 0);
    cr_assert_eq(m.type, SL_MSG_DATA);
    cr_assert_eq(m.records, 5);
    /* Only the header is looked at: a header alone parses. */
    cr_assert_eq(sl__msg_parse(msg, SL_BATCH_HDR, &m), 0);
    cr_assert_eq(m.type, SL_MSG_DATA);
    cr_assert_eq(m.records, 5);
    free(msg);
    sl__batch_fini(&b);
}

Test(proto, malformed_messages)
{
    unsigned char big[64];
    memset(big, 0, sizeof(big));
    sl_msg_t m;

    /* Wrong sizes for each fixed-size type. */
    sl__msg_hello(big, 1);
    for (size_t n = 0; n < sizeof(big); n++)
        if (n != SL_MSG_HELLO_SIZE)
            cr_assert_eq(sl__msg_parse(big, n, &m), -EBADMSG, "HELLO of %zu", n);
    sl__msg_credit(big, 1);
    for (size_t n = 0; n < sizeof(big); n++)
        if (n != SL_MSG_CREDIT_SIZE)
            cr_assert_eq(sl__msg_parse(big, n, &m), -EBADMSG, "CREDIT of %zu", n);
    sl__msg_eos(big, 1, 2);
    for (size_t n = 0; n < sizeof(big); n++)
        if (n != SL_MSG_EOS_SIZE)
            cr_assert_eq(sl__msg_parse(big, n, &m), -EBADMSG, "EOS of %zu", n);
    /* DATA shorter than its header. */
    memset(big, 0, sizeof(big));
    big[0] = 'D';
    big[1] = SL_PROTO_VERSION;
    for (size_t n = 0; n < SL_BATCH_HDR; n++)
        cr_assert_eq(sl__msg_parse(big, n, &m), -EBADMSG, "DATA of %zu", n);

    /* Wrong version, for every type. */
    const unsigned char types[] = {'H', 'C', 'E', 'D'};
    const size_t sizes[] = {SL_MSG_HELLO_SIZE, SL_MSG_CREDIT_SIZE,
                            SL_MSG_EOS_SIZE, SL_BATCH_HDR};
    for (size_t i = 0; i < 4; i++) {
        memset(big, 0, sizeof(big));
        big[0] = types[i];
        big[1] = SL_PROTO_VERSION;
        cr_assert_eq(sl__msg_parse(big, sizes[i], &m), 0, "type %c", types[i]);
        big[1] = SL_PROTO_VERSION + 1;
        cr_assert_eq(sl__msg_parse(big, sizes[i], &m), -EBADMSG,
                     "type %c, version 2", types[i]);
        big[1] = 0;
        cr_assert_eq(sl__msg_parse(big, sizes[i], &m), -EBADMSG,
                     "type %c, version 0", types[i]);
    }

    /* Unknown types, at every plausible size. */
    for (int t = 0; t < 256; t++) {
        if (strchr("HCEDSQWA", t) && t)
            continue;
        memset(big, 0, sizeof(big));
        big[0] = (unsigned char)t;
        big[1] = SL_PROTO_VERSION;
        cr_assert_eq(sl__msg_parse(big, 8, &m), -EBADMSG, "type %d", t);
        cr_assert_eq(sl__msg_parse(big, 16, &m), -EBADMSG, "type %d", t);
    }
}

/* The session messages of links between nodes: round trips, exact sizes
 * and versions. */
Test(proto, session_messages)
{
    unsigned char buf[64];
    sl_msg_t m;
    sl__msg_sync(buf, 7, 3, 0x1122334455667788ull);
    cr_assert_eq(sl__msg_parse(buf, SL_MSG_SYNC_SIZE, &m), 0);
    cr_assert_eq(m.type, SL_MSG_SYNC);
    cr_assert_eq(m.link, 7);
    cr_assert_eq(m.conn, 3);
    cr_assert_eq(m.session, 0x1122334455667788ull);

    sl__msg_seq(buf, 9, 1ull << 40);
    cr_assert_eq(sl__msg_parse(buf, SL_MSG_SEQ_SIZE, &m), 0);
    cr_assert_eq(m.type, SL_MSG_SEQ);
    cr_assert_eq(m.conn, 9);
    cr_assert_eq(m.seq, 1ull << 40);

    sl__msg_welcome(buf, 4, 1000, 42, 77);
    cr_assert_eq(sl__msg_parse(buf, SL_MSG_WELCOME_SIZE, &m), 0);
    cr_assert_eq(m.type, SL_MSG_WELCOME);
    cr_assert_eq(m.conn, 4);
    cr_assert_eq(m.credit, 1000);
    cr_assert_eq(m.session, 42);
    cr_assert_eq(m.seq, 77);

    /* an ACK carries the low half of the sender's session */
    sl__msg_ack(buf, 0xabcdef0012345678ull, SL_ACK_EOS);
    cr_assert_eq(sl__msg_parse(buf, SL_MSG_ACK_SIZE, &m), 0);
    cr_assert_eq(m.type, SL_MSG_ACK);
    cr_assert_eq(m.session, 0x12345678u);
    cr_assert_eq(m.seq, SL_ACK_EOS);

    /* a credit names its connection in 16 bits; plain credit says 0 */
    sl__msg_credit_conn(buf, 5, 0x12345);
    cr_assert_eq(sl__msg_parse(buf, SL_MSG_CREDIT_SIZE, &m), 0);
    cr_assert_eq(m.credit, 5);
    cr_assert_eq(m.conn, 0x2345);
    sl__msg_credit(buf, 5);
    cr_assert_eq(sl__msg_parse(buf, SL_MSG_CREDIT_SIZE, &m), 0);
    cr_assert_eq(m.conn, 0);

    const unsigned char types[] = {'S', 'Q', 'W', 'A'};
    const size_t sizes[] = {SL_MSG_SYNC_SIZE, SL_MSG_SEQ_SIZE,
                            SL_MSG_WELCOME_SIZE, SL_MSG_ACK_SIZE};
    for (size_t i = 0; i < 4; i++) {
        memset(buf, 0, sizeof(buf));
        buf[0] = types[i];
        buf[1] = SL_PROTO_VERSION;
        for (size_t n = 0; n < sizeof(buf); n++)
            cr_assert_eq(sl__msg_parse(buf, n, &m),
                         n == sizes[i] ? 0 : -EBADMSG, "%c of %zu", types[i], n);
        buf[1] = SL_PROTO_VERSION + 1;
        cr_assert_eq(sl__msg_parse(buf, sizes[i], &m), -EBADMSG,
                     "%c, another version", types[i]);
    }
}

/* ---- credit accounting ------------------------------------------------- */

Test(credit, shares_split_capacity)
{
    sl_credit_rx_t rx;
    cr_assert_eq(sl__credit_rx_init(&rx, 10, 3), 0);
    cr_assert_eq(sl__credit_rx_share(&rx, 0), 4);
    cr_assert_eq(sl__credit_rx_share(&rx, 1), 3);
    cr_assert_eq(sl__credit_rx_share(&rx, 2), 3);
    cr_assert_eq(sl__credit_rx_share(&rx, 3), 0, "no such link");
    sl__credit_rx_fini(&rx);

    /* Shares always add up to the capacity and differ by at most one. */
    for (uint32_t cap = 1; cap < 60; cap++)
        for (size_t n = 1; n <= cap && n < 12; n++) {
            cr_assert_eq(sl__credit_rx_init(&rx, cap, n), 0);
            uint32_t sum = 0, lo = UINT32_MAX, hi = 0;
            for (size_t i = 0; i < n; i++) {
                uint32_t s = sl__credit_rx_share(&rx, i);
                sum += s;
                lo = s < lo ? s : lo;
                hi = s > hi ? s : hi;
            }
            cr_assert_eq(sum, cap, "capacity %u over %zu links", cap, n);
            cr_assert_geq(lo, 1);
            cr_assert_leq(hi - lo, 1);
            sl__credit_rx_fini(&rx);
        }
}

Test(credit, capacity_below_links_is_einval)
{
    sl_credit_rx_t rx;
    cr_assert_eq(sl__credit_rx_init(&rx, 2, 3), -EINVAL);
    cr_assert_eq(sl__credit_rx_init(&rx, 0, 1), -EINVAL);
    cr_assert_eq(sl__credit_rx_init(&rx, 3, 3), 0);
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(sl__credit_rx_share(&rx, i), 1);
    sl__credit_rx_fini(&rx);
}

Test(credit, open_grants_full_share)
{
    sl_credit_rx_t rx;
    cr_assert_eq(sl__credit_rx_init(&rx, 10, 3), 0);
    cr_assert_eq(sl__credit_rx_open(&rx, 0), 4);
    cr_assert_eq(sl__credit_rx_open(&rx, 2), 3);
    cr_assert_eq(rx.links[0].outstanding, 4);
    cr_assert_eq(rx.links[1].outstanding, 0, "not opened yet");
    cr_assert_eq(sl__credit_rx_held(&rx), 0);
    sl__credit_rx_fini(&rx);
}

Test(credit, overdraw_is_eproto)
{
    sl_credit_rx_t rx;
    cr_assert_eq(sl__credit_rx_init(&rx, 10, 3), 0);
    cr_assert_eq(sl__credit_rx_received(&rx, 1, 1), -EPROTO,
                 "records before any credit");
    cr_assert_eq(sl__credit_rx_open(&rx, 0), 4);
    cr_assert_eq(sl__credit_rx_received(&rx, 0, 5), -EPROTO);
    cr_assert_eq(rx.links[0].outstanding, 4, "a refused batch changes nothing");
    cr_assert_eq(rx.links[0].held, 0);
    cr_assert_eq(sl__credit_rx_received(&rx, 0, 3), 0);
    cr_assert_eq(sl__credit_rx_received(&rx, 0, 2), -EPROTO);
    cr_assert_eq(sl__credit_rx_received(&rx, 0, 1), 0);
    cr_assert_eq(sl__credit_rx_received(&rx, 0, 1), -EPROTO);
    cr_assert_eq(sl__credit_rx_held(&rx), 4);
    sl__credit_rx_fini(&rx);
}

Test(credit, completion_returns_credit)
{
    sl_credit_rx_t rx;
    cr_assert_eq(sl__credit_rx_init(&rx, 10, 3), 0);
    cr_assert_eq(sl__credit_rx_open(&rx, 0), 4);
    cr_assert_eq(sl__credit_rx_received(&rx, 0, 4), 0);
    cr_assert_eq(sl__credit_rx_take_return(&rx, 0), 0, "nothing completed");
    sl__credit_rx_completed(&rx, 0, 3);
    cr_assert_eq(sl__credit_rx_held(&rx), 1);
    cr_assert_eq(sl__credit_rx_take_return(&rx, 0), 3);
    cr_assert_eq(sl__credit_rx_take_return(&rx, 0), 0, "returned once");
    cr_assert_eq(rx.links[0].outstanding, 3);
    sl__credit_rx_completed(&rx, 0, 1);
    sl__credit_rx_completed(&rx, 0, 5); /* more than held: clamped */
    cr_assert_eq(sl__credit_rx_held(&rx), 0);
    cr_assert_eq(sl__credit_rx_take_return(&rx, 0), 1);
    cr_assert_eq(rx.links[0].outstanding, 4);
    cr_assert_eq(sl__credit_rx_received(&rx, 0, 4), 0, "full share again");
    sl__credit_rx_fini(&rx);
}

Test(credit, no_return_before_open)
{
    sl_credit_rx_t rx;
    cr_assert_eq(sl__credit_rx_init(&rx, 4, 1), 0);
    sl__credit_rx_completed(&rx, 0, 1);
    cr_assert_eq(sl__credit_rx_take_return(&rx, 0), 0);
    sl__credit_rx_fini(&rx);
}

Test(credit, reopen_grants_share_minus_held)
{
    sl_credit_rx_t rx;
    cr_assert_eq(sl__credit_rx_init(&rx, 10, 3), 0);
    cr_assert_eq(sl__credit_rx_open(&rx, 0), 4);
    cr_assert_eq(sl__credit_rx_received(&rx, 0, 3), 0);
    sl__credit_rx_completed(&rx, 0, 1); /* held 2, 1 waiting to go back */
    /* The sender reconnects: its unused credit and the pending return are
     * gone; it gets what is not held here. */
    cr_assert_eq(sl__credit_rx_open(&rx, 0), 2);
    cr_assert_eq(sl__credit_rx_take_return(&rx, 0), 0);
    cr_assert_eq(sl__credit_rx_received(&rx, 0, 3), -EPROTO);
    cr_assert_eq(sl__credit_rx_received(&rx, 0, 2), 0);
    sl__credit_rx_completed(&rx, 0, 4);
    cr_assert_eq(sl__credit_rx_take_return(&rx, 0), 4);
    cr_assert_eq(rx.links[0].outstanding, 4);
    cr_assert_eq(sl__credit_rx_held(&rx), 0);
    sl__credit_rx_fini(&rx);
}

/* ---- randomized simulation ---------------------------------------------- */

/* A fixed seed, so that a failure replays exactly. */
static uint64_t s_rng = 0x9e3779b97f4a7c15ull;

static uint32_t s_below(uint32_t n)
{
    return n ? (uint32_t)(sl_test_rand(&s_rng) % n) : 0;
}

#define SIM_LINKS 5
#define SIM_CAPACITY 53
#define SIM_STEPS 100000

/* The sender side of one link as the receiver should see it: credit it may
 * still use, plus CREDIT messages on the wire (which a reconnect drops). */
typedef struct sim_link {
    uint32_t credit;
    uint32_t wire[8];
    size_t n_wire;
    uint64_t sent, completed;
} sim_link_t;

static void s_check(const sl_credit_rx_t *rx, const sim_link_t *sim,
                    long step)
{
    uint64_t total = 0, held = 0;
    for (size_t i = 0; i < SIM_LINKS; i++) {
        const sl_credit_link_t *l = &rx->links[i];
        uint64_t used = (uint64_t)l->outstanding + l->held + l->to_return;
        cr_assert_leq(used, l->share, "step %ld link %zu: %u+%u+%u > %u",
                      step, i, l->outstanding, l->held, l->to_return,
                      l->share);
        total += used;
        held += l->held;
        /* What the receiver thinks is outstanding is exactly what the
         * sender has plus what is on its way to it. */
        uint64_t in_hand = sim[i].credit;
        for (size_t w = 0; w < sim[i].n_wire; w++)
            in_hand += sim[i].wire[w];
        cr_assert_eq(in_hand, l->outstanding, "step %ld link %zu", step, i);
        cr_assert_eq(sim[i].sent - sim[i].completed, l->held,
                     "step %ld link %zu", step, i);
    }
    cr_assert_leq(total, rx->capacity, "step %ld", step);
    cr_assert_eq(held, sl__credit_rx_held(rx), "step %ld", step);
}

static void s_return(sl_credit_rx_t *rx, sim_link_t *s, size_t i)
{
    uint32_t n = sl__credit_rx_take_return(rx, i);
    if (n == 0)
        return;
    if (s->n_wire == sizeof(s->wire) / sizeof(s->wire[0])) {
        s->credit += s->wire[0]; /* the oldest arrives to make room */
        memmove(s->wire, s->wire + 1, (s->n_wire - 1) * sizeof(s->wire[0]));
        s->n_wire--;
    }
    s->wire[s->n_wire++] = n;
}

Test(credit, randomized_simulation_keeps_invariant)
{
    sl_credit_rx_t rx;
    cr_assert_eq(sl__credit_rx_init(&rx, SIM_CAPACITY, SIM_LINKS), 0);
    sim_link_t sim[SIM_LINKS];
    memset(sim, 0, sizeof(sim));
    for (size_t i = 0; i < SIM_LINKS; i++)
        sim[i].credit = sl__credit_rx_open(&rx, i);
    s_check(&rx, sim, -1);

    uint64_t overdraws = 0, reconnects = 0, sends = 0;
    for (long step = 0; step < SIM_STEPS; step++) {
        size_t i = s_below(SIM_LINKS);
        sim_link_t *s = &sim[i];
        uint32_t held = rx.links[i].held;
        uint32_t r = s_below(100);
        if (r < 35) { /* send a batch within credit */
            if (s->credit) {
                uint32_t n = 1 + s_below(s->credit);
                cr_assert_eq(sl__credit_rx_received(&rx, i, n), 0,
                             "step %ld", step);
                s->credit -= n;
                s->sent += n;
                sends++;
            }
        } else if (r < 37) { /* a faulty sender overdraws */
            uint32_t n = rx.links[i].outstanding + 1 + s_below(3);
            cr_assert_eq(sl__credit_rx_received(&rx, i, n), -EPROTO,
                         "step %ld", step);
            overdraws++;
        } else if (r < 65) { /* complete some held records */
            if (held) {
                uint32_t n = 1 + s_below(held);
                sl__credit_rx_completed(&rx, i, n);
                s->completed += n;
            }
        } else if (r < 85) { /* batched credit return */
            s_return(&rx, s, i);
        } else if (r < 99) { /* a CREDIT message arrives */
            if (s->n_wire) {
                s->credit += s->wire[0];
                memmove(s->wire, s->wire + 1,
                        (s->n_wire - 1) * sizeof(s->wire[0]));
                s->n_wire--;
            }
        } else { /* reconnect: the sender's credit and the wire are lost */
            s->credit = sl__credit_rx_open(&rx, i);
            s->n_wire = 0;
            reconnects++;
        }
        s_check(&rx, sim, step);
    }
    cr_assert_gt(sends, 10000, "the simulation barely sent anything");
    cr_assert_gt(overdraws, 0);
    cr_assert_gt(reconnects, 0);

    /* Drain: everything completes, every return is delivered. */
    for (size_t i = 0; i < SIM_LINKS; i++) {
        uint32_t held = rx.links[i].held;
        sl__credit_rx_completed(&rx, i, held);
        sim[i].completed += held;
        s_return(&rx, &sim[i], i);
        for (size_t w = 0; w < sim[i].n_wire; w++)
            sim[i].credit += sim[i].wire[w];
        sim[i].n_wire = 0;
    }
    s_check(&rx, sim, SIM_STEPS);
    uint32_t total = 0;
    for (size_t i = 0; i < SIM_LINKS; i++) {
        cr_assert_eq(sim[i].credit, rx.links[i].share, "link %zu", i);
        cr_assert_eq(rx.links[i].held, 0);
        cr_assert_eq(rx.links[i].to_return, 0);
        total += sim[i].credit;
    }
    cr_assert_eq(total, SIM_CAPACITY, "all credit came back");
    sl__credit_rx_fini(&rx);
}
