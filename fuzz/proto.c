/*
 * The link protocol as a receiving stage sees it: a stream of messages from
 * several upstream links, each parsed with sl__msg_parse and applied to the
 * receiver's credit accounting the way the dispatcher does (HELLO opens,
 * DATA is validated and charged, some records complete and their credit
 * goes back).
 *
 * Input: byte 0 sets the capacity, byte 1 the number of links; then
 * frames of [u8 link][u8 len][len bytes of message] or, when the length
 * byte is 0xff, [u8 link][0xff][u8 n]: n records of that link complete.
 *
 * Checks: a parsed message re-encodes to the same fields; DATA's record
 * count is the batch header's; per link outstanding + held + to_return
 * never exceeds its share, and the shares add up to the capacity.
 */
#include "fuzz.h"

#include "batch.h"
#include "proto.h"

#include <errno.h>

static void s_roundtrip(const sl_msg_t *m)
{
    unsigned char buf[SL_MSG_WELCOME_SIZE];
    size_t len = 0;
    switch (m->type) {
    case SL_MSG_HELLO:
        sl__msg_hello(buf, m->link);
        len = SL_MSG_HELLO_SIZE;
        break;
    case SL_MSG_CREDIT:
        sl__msg_credit_conn(buf, m->credit, m->conn);
        len = SL_MSG_CREDIT_SIZE;
        break;
    case SL_MSG_EOS:
        sl__msg_eos(buf, m->link, m->sent);
        len = SL_MSG_EOS_SIZE;
        break;
    case SL_MSG_MARK:
        sl__msg_mark(buf, m->source, m->worker, m->epoch);
        len = SL_MSG_MARK_SIZE;
        break;
    case SL_MSG_SYNC:
        sl__msg_sync(buf, m->link, m->conn, m->session);
        len = SL_MSG_SYNC_SIZE;
        break;
    case SL_MSG_SEQ:
        sl__msg_seq(buf, m->conn, m->seq);
        len = SL_MSG_SEQ_SIZE;
        break;
    case SL_MSG_WELCOME:
        sl__msg_welcome(buf, m->conn, m->credit, m->session, m->seq);
        len = SL_MSG_WELCOME_SIZE;
        break;
    case SL_MSG_ACK:
        sl__msg_ack(buf, m->session, m->seq);
        len = SL_MSG_ACK_SIZE;
        break;
    default:
        return;
    }
    sl_msg_t again;
    FUZZ_CHECK(sl__msg_parse(buf, len, &again) == 0,
               "re-encoded '%c' does not parse", (int)m->type);
    FUZZ_CHECK(memcmp(&again, m, sizeof(again)) == 0,
               "'%c' does not survive a round trip", (int)m->type);
}

static void s_check_rx(const sl_credit_rx_t *rx)
{
    uint64_t shares = 0, used = 0;
    for (size_t i = 0; i < rx->n_links; i++) {
        const sl_credit_link_t *l = &rx->links[i];
        uint64_t sum = (uint64_t)l->outstanding + l->held + l->to_return;
        FUZZ_CHECK(sum <= l->share,
                   "link %zu: outstanding %u + held %u + to_return %u > "
                   "share %u", i, l->outstanding, l->held, l->to_return,
                   l->share);
        FUZZ_CHECK(l->share >= 1, "link %zu has no share", i);
        shares += l->share;
        used += (uint64_t)l->outstanding + l->held;
    }
    FUZZ_CHECK(shares == rx->capacity, "shares %llu != capacity %u",
               (unsigned long long)shares, rx->capacity);
    FUZZ_CHECK(used <= rx->capacity, "in flight %llu > capacity %u",
               (unsigned long long)used, rx->capacity);
    FUZZ_CHECK(sl__credit_rx_held(rx) <= rx->capacity, "held > capacity");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The whole input as one message, as a receiver reads it off a socket. */
    sl_msg_t m;
    int rc = sl__msg_parse(data, size, &m);
    FUZZ_CHECK(rc == 0 || rc == -EBADMSG, "parse returned %d", rc);
    if (rc == 0)
        s_roundtrip(&m);

    if (size < 2)
        return 0;
    uint32_t capacity = 1 + data[0] % 64;
    size_t n_links = 1 + data[1] % 8;
    data += 2;
    size -= 2;
    sl_credit_rx_t rx;
    if (sl__credit_rx_init(&rx, capacity, n_links) != 0)
        return 0; /* capacity < links: refused, as documented */
    s_check_rx(&rx);
    sl_credit_tx_t tx = {0};
    while (size >= 2) {
        size_t link = data[0] % n_links;
        size_t len = data[1];
        data += 2;
        size -= 2;
        if (len == 0xff) {
            unsigned n = fuzz_take_byte(&data, &size);
            sl__credit_rx_completed(&rx, link, n);
            uint32_t back = sl__credit_rx_take_return(&rx, link);
            FUZZ_CHECK(back <= sl__credit_rx_share(&rx, link),
                       "returns %u of a share of %u", back,
                       sl__credit_rx_share(&rx, link));
            s_check_rx(&rx);
            continue;
        }
        if (len > size)
            len = size;
        rc = sl__msg_parse(data, len, &m);
        FUZZ_CHECK(rc == 0 || rc == -EBADMSG, "parse returned %d", rc);
        if (rc == 0) {
            s_roundtrip(&m);
            switch (m.type) {
            case SL_MSG_HELLO:
                sl__credit_rx_open(&rx, link);
                break;
            case SL_MSG_DATA: {
                uint32_t count;
                if (sl__batch_validate(data, len, &count) != 0)
                    break;
                FUZZ_CHECK(count == m.records, "DATA: header says %u, "
                           "batch reader %u", m.records, count);
                sl_credit_link_t before = rx.links[link];
                if (sl__credit_rx_received(&rx, link, count) != 0)
                    FUZZ_CHECK(memcmp(&before, &rx.links[link],
                                      sizeof(before)) == 0,
                               "an overdraft changed the link's state");
                break;
            }
            case SL_MSG_CREDIT:
                tx.credit += m.credit;
                tx.ready = 1;
                (void)sl__credit_tx_can_send(&tx, m.credit);
                break;
            default:
                break;
            }
        }
        data += len;
        size -= len;
        s_check_rx(&rx);
    }
    sl__credit_rx_fini(&rx);
    return 0;
}
