#include "proto.h"
#include "endian.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void s_head(unsigned char *out, sl_msg_type_t type)
{
    out[0] = (unsigned char)type;
    out[1] = SL_PROTO_VERSION;
    out[2] = 0;
    out[3] = 0;
}

void sl__msg_hello(unsigned char out[SL_MSG_HELLO_SIZE], uint32_t link)
{
    s_head(out, SL_MSG_HELLO);
    sl__put_u32(out + 4, link);
}

void sl__msg_credit(unsigned char out[SL_MSG_CREDIT_SIZE], uint32_t credit)
{
    s_head(out, SL_MSG_CREDIT);
    sl__put_u32(out + 4, credit);
}

void sl__msg_credit_conn(unsigned char out[SL_MSG_CREDIT_SIZE],
                         uint32_t credit, uint32_t conn)
{
    sl__msg_credit(out, credit);
    out[2] = (unsigned char)(conn & 0xff);
    out[3] = (unsigned char)((conn >> 8) & 0xff);
}

void sl__msg_sync(unsigned char out[SL_MSG_SYNC_SIZE], uint32_t link,
                  uint32_t conn, uint64_t session)
{
    s_head(out, SL_MSG_SYNC);
    sl__put_u32(out + 4, link);
    sl__put_u32(out + 8, conn);
    sl__put_u32(out + 12, 0);
    sl__put_u64(out + 16, session);
}

void sl__msg_seq(unsigned char out[SL_MSG_SEQ_SIZE], uint32_t conn,
                 uint64_t seq)
{
    s_head(out, SL_MSG_SEQ);
    sl__put_u32(out + 4, conn);
    sl__put_u64(out + 8, seq);
}

void sl__msg_welcome(unsigned char out[SL_MSG_WELCOME_SIZE], uint32_t conn,
                     uint32_t grant, uint64_t session, uint64_t last_seq)
{
    s_head(out, SL_MSG_WELCOME);
    sl__put_u32(out + 4, conn);
    sl__put_u32(out + 8, grant);
    sl__put_u32(out + 12, 0);
    sl__put_u64(out + 16, session);
    sl__put_u64(out + 24, last_seq);
}

void sl__msg_ack(unsigned char out[SL_MSG_ACK_SIZE], uint64_t session,
                 uint64_t seq)
{
    s_head(out, SL_MSG_ACK);
    sl__put_u32(out + 4, (uint32_t)session);
    sl__put_u64(out + 8, seq);
}

void sl__msg_eos(unsigned char out[SL_MSG_EOS_SIZE], uint32_t link,
                 uint64_t sent)
{
    s_head(out, SL_MSG_EOS);
    sl__put_u32(out + 4, link);
    sl__put_u64(out + 8, sent);
}

void sl__msg_mark(unsigned char out[SL_MSG_MARK_SIZE], uint32_t source,
                  uint32_t worker, uint64_t epoch)
{
    s_head(out, SL_MSG_MARK);
    sl__put_u32(out + 4, source);
    sl__put_u32(out + 8, worker);
    sl__put_u64(out + 12, epoch);
}

int sl__msg_parse(const void *buf, size_t len, sl_msg_t *out)
{
    const unsigned char *p = buf;
    memset(out, 0, sizeof(*out));
    if (len < 8 || p[1] != SL_PROTO_VERSION)
        return -EBADMSG;
    switch (p[0]) {
    case SL_MSG_HELLO:
        if (len != SL_MSG_HELLO_SIZE)
            return -EBADMSG;
        out->type = SL_MSG_HELLO;
        out->link = sl__get_u32(p + 4);
        return 0;
    case SL_MSG_CREDIT:
        if (len != SL_MSG_CREDIT_SIZE)
            return -EBADMSG;
        out->type = SL_MSG_CREDIT;
        out->credit = sl__get_u32(p + 4);
        out->conn = (uint32_t)p[2] | (uint32_t)p[3] << 8;
        return 0;
    case SL_MSG_SYNC:
        if (len != SL_MSG_SYNC_SIZE)
            return -EBADMSG;
        out->type = SL_MSG_SYNC;
        out->link = sl__get_u32(p + 4);
        out->conn = sl__get_u32(p + 8);
        out->session = sl__get_u64(p + 16);
        return 0;
    case SL_MSG_SEQ:
        if (len != SL_MSG_SEQ_SIZE)
            return -EBADMSG;
        out->type = SL_MSG_SEQ;
        out->conn = sl__get_u32(p + 4);
        out->seq = sl__get_u64(p + 8);
        return 0;
    case SL_MSG_WELCOME:
        if (len != SL_MSG_WELCOME_SIZE)
            return -EBADMSG;
        out->type = SL_MSG_WELCOME;
        out->conn = sl__get_u32(p + 4);
        out->credit = sl__get_u32(p + 8);
        out->session = sl__get_u64(p + 16);
        out->seq = sl__get_u64(p + 24);
        return 0;
    case SL_MSG_ACK:
        if (len != SL_MSG_ACK_SIZE)
            return -EBADMSG;
        out->type = SL_MSG_ACK;
        out->session = sl__get_u32(p + 4);
        out->seq = sl__get_u64(p + 8);
        return 0;
    case SL_MSG_EOS:
        if (len != SL_MSG_EOS_SIZE)
            return -EBADMSG;
        out->type = SL_MSG_EOS;
        out->link = sl__get_u32(p + 4);
        out->sent = sl__get_u64(p + 8);
        return 0;
    case SL_MSG_MARK:
        if (len != SL_MSG_MARK_SIZE)
            return -EBADMSG;
        out->type = SL_MSG_MARK;
        out->source = sl__get_u32(p + 4);
        out->worker = sl__get_u32(p + 8);
        out->epoch = sl__get_u64(p + 12);
        return 0;
    case SL_MSG_DATA:
        out->type = SL_MSG_DATA;
        out->records = sl__get_u32(p + 4);
        return 0;
    default:
        return -EBADMSG;
    }
}

int sl__credit_rx_init(sl_credit_rx_t *rx, uint32_t capacity, size_t n_links)
{
    memset(rx, 0, sizeof(*rx));
    if (n_links == 0)
        return 0;
    if (capacity < n_links)
        return -EINVAL;
    rx->links = calloc(n_links, sizeof(*rx->links));
    if (!rx->links)
        return -ENOMEM;
    rx->capacity = capacity;
    rx->n_links = n_links;
    for (size_t i = 0; i < n_links; i++)
        rx->links[i].share =
            capacity / (uint32_t)n_links + (i < capacity % n_links ? 1 : 0);
    return 0;
}

void sl__credit_rx_fini(sl_credit_rx_t *rx)
{
    free(rx->links);
    memset(rx, 0, sizeof(*rx));
}

uint32_t sl__credit_rx_share(const sl_credit_rx_t *rx, size_t link)
{
    return link < rx->n_links ? rx->links[link].share : 0;
}

uint32_t sl__credit_rx_open(sl_credit_rx_t *rx, size_t link)
{
    sl_credit_link_t *l = &rx->links[link];
    /* A reconnecting sender has lost whatever credit it had; the records
     * it had not sent are not held here, so the whole free share is its
     * again. */
    l->open = 1;
    l->to_return = 0;
    l->outstanding = l->share - l->held;
    return l->outstanding;
}

int sl__credit_rx_received(sl_credit_rx_t *rx, size_t link, uint32_t n)
{
    sl_credit_link_t *l = &rx->links[link];
    if (n > l->outstanding)
        return -EPROTO;
    l->outstanding -= n;
    l->held += n;
    return 0;
}

void sl__credit_rx_completed(sl_credit_rx_t *rx, size_t link, uint32_t n)
{
    sl_credit_link_t *l = &rx->links[link];
    if (n > l->held)
        n = l->held; /* a bug upstream of here; never underflow */
    l->held -= n;
    l->to_return += n;
}

uint32_t sl__credit_rx_take_return(sl_credit_rx_t *rx, size_t link)
{
    sl_credit_link_t *l = &rx->links[link];
    if (!l->open || l->to_return == 0)
        return 0;
    uint32_t n = l->to_return;
    l->to_return = 0;
    l->outstanding += n;
    return n;
}

uint32_t sl__credit_rx_held(const sl_credit_rx_t *rx)
{
    uint32_t held = 0;
    for (size_t i = 0; i < rx->n_links; i++)
        held += rx->links[i].held;
    return held;
}
