/*
 * The link protocol between two stages, the same over inproc, ipc and tcp.
 *
 * A receiving stage binds a ROUTER; each upstream link connects a DEALER.
 * Flow is governed by credit, not by ZeroMQ high-water marks: the receiver
 * grants credit (in records) equal to the capacity it can spare, and the
 * sender puts a batch on the wire only when its credit covers every record
 * in it. So the records in flight into a stage, plus those it holds, never
 * exceed its capacity, whatever the transport buffers.
 *
 *   sender -> receiver   HELLO  'H' ver u16 0 u32 link
 *                        DATA   a batch (see batch.h), 'D'
 *                        EOS    'E' ver u16 0 u32 link u64 records-sent
 *                        MARK   'M' ver u16 0 u32 source u32 worker u64 epoch
 *                               (a source position marker, checkpoint.h;
 *                               in band, so it follows the data sent
 *                               before it; it needs no credit)
 *   receiver -> sender   CREDIT 'C' ver u16 0 u32 records
 *
 * A link between nodes (tcp) adds a session layer, so that a node that
 * restarts, or a connection that breaks, loses nothing (link_remote.h):
 *
 *   sender -> receiver   SYNC   'S' ver u16 0 u32 link u32 conn u32 0
 *                               u64 session                 (for HELLO)
 *                        SEQ    'Q' ver u16 0 u32 conn u64 seq, then a DATA
 *                               frame in the same message
 *                        EOS    as above, acknowledged
 *   receiver -> sender   WELCOME 'W' ver u16 0 u32 conn u32 grant u32 0
 *                               u64 session u64 last-seq-received
 *                        CREDIT with u16 = conn & 0xffff (stale ones are
 *                               ignored)
 *                        ACK    'A' ver u16 0 u32 sender-session-low
 *                               u64 seq: every batch up to seq has been
 *                               handled, and whatever it became is safe
 *                               downstream (SL_ACK_EOS: the EOS)
 */
#ifndef SL_PROTO_H
#define SL_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define SL_PROTO_VERSION 1

typedef enum sl_msg_type {
    SL_MSG_HELLO = 'H',
    SL_MSG_DATA = 'D',
    SL_MSG_EOS = 'E',
    SL_MSG_CREDIT = 'C',
    SL_MSG_MARK = 'M',
    SL_MSG_SYNC = 'S',
    SL_MSG_SEQ = 'Q',
    SL_MSG_WELCOME = 'W',
    SL_MSG_ACK = 'A',
} sl_msg_type_t;

#define SL_MSG_HELLO_SIZE 8
#define SL_MSG_CREDIT_SIZE 8
#define SL_MSG_EOS_SIZE 16
#define SL_MSG_MARK_SIZE 20
#define SL_MSG_SYNC_SIZE 24
#define SL_MSG_SEQ_SIZE 16
#define SL_MSG_WELCOME_SIZE 32
#define SL_MSG_ACK_SIZE 16
#define SL_ACK_EOS UINT64_MAX

typedef struct sl_msg {
    sl_msg_type_t type;
    uint32_t link;    /* HELLO, EOS */
    uint32_t credit;  /* CREDIT */
    uint64_t sent;    /* EOS */
    uint32_t records; /* DATA: records announced by the header */
    uint32_t source;  /* MARK: the source stage's index */
    uint32_t worker;  /* MARK: its worker */
    uint64_t epoch;   /* MARK */
    uint32_t conn;    /* SYNC, SEQ, WELCOME, CREDIT (low 16 bits) */
    uint64_t session; /* SYNC, WELCOME; ACK: the low 32 bits */
    uint64_t seq;     /* SEQ, ACK; WELCOME: the last received */
} sl_msg_t;

void sl__msg_hello(unsigned char out[SL_MSG_HELLO_SIZE], uint32_t link);
void sl__msg_credit(unsigned char out[SL_MSG_CREDIT_SIZE], uint32_t credit);
void sl__msg_credit_conn(unsigned char out[SL_MSG_CREDIT_SIZE],
                         uint32_t credit, uint32_t conn);
void sl__msg_sync(unsigned char out[SL_MSG_SYNC_SIZE], uint32_t link,
                  uint32_t conn, uint64_t session);
void sl__msg_seq(unsigned char out[SL_MSG_SEQ_SIZE], uint32_t conn,
                 uint64_t seq);
void sl__msg_welcome(unsigned char out[SL_MSG_WELCOME_SIZE], uint32_t conn,
                     uint32_t grant, uint64_t session, uint64_t last_seq);
void sl__msg_ack(unsigned char out[SL_MSG_ACK_SIZE], uint64_t session,
                 uint64_t seq);
void sl__msg_eos(unsigned char out[SL_MSG_EOS_SIZE], uint32_t link,
                 uint64_t sent);
void sl__msg_mark(unsigned char out[SL_MSG_MARK_SIZE], uint32_t source,
                  uint32_t worker, uint64_t epoch);
/* Classifies and decodes a message. DATA is only checked at the header
 * here (its records are validated by the batch reader). -EBADMSG for
 * anything malformed, of a wrong size, or of another version. */
int sl__msg_parse(const void *buf, size_t len, sl_msg_t *out);

/*
 * Receiver-side credit accounting for one stage with n input links. The
 * capacity is split into fixed per-link shares (the first capacity % n
 * links get one more), so one busy upstream cannot starve another.
 * Invariant, checked by the tests: for every link,
 *   outstanding + held <= share, and sum over links <= capacity.
 */
typedef struct sl_credit_link {
    uint32_t share;       /* this link's part of the capacity */
    uint32_t outstanding; /* granted, not yet used by the sender */
    uint32_t held;        /* received, not yet completed */
    uint32_t to_return;   /* completed, credit not yet sent back */
    int open;             /* HELLO seen */
} sl_credit_link_t;

typedef struct sl_credit_rx {
    uint32_t capacity;
    size_t n_links;
    sl_credit_link_t *links;
} sl_credit_rx_t;

/* -EINVAL if capacity < n_links (each link needs a share of at least 1). */
int sl__credit_rx_init(sl_credit_rx_t *rx, uint32_t capacity, size_t n_links);
void sl__credit_rx_fini(sl_credit_rx_t *rx);
uint32_t sl__credit_rx_share(const sl_credit_rx_t *rx, size_t link);
/* A HELLO arrived: returns the credit to grant now (the whole free share;
 * a repeated HELLO after a reconnect re-grants only what is not held). */
uint32_t sl__credit_rx_open(sl_credit_rx_t *rx, size_t link);
/* n records arrived on link: -EPROTO if the sender overdrew its credit. */
int sl__credit_rx_received(sl_credit_rx_t *rx, size_t link, uint32_t n);
/* n records from link have left the stage. */
void sl__credit_rx_completed(sl_credit_rx_t *rx, size_t link, uint32_t n);
/* Credit to send back on link now (and marks it outstanding), or 0. */
uint32_t sl__credit_rx_take_return(sl_credit_rx_t *rx, size_t link);
/* Records held in the stage across links. */
uint32_t sl__credit_rx_held(const sl_credit_rx_t *rx);

/* Sender-side: a credit counter per output link. */
typedef struct sl_credit_tx {
    uint32_t credit;
    uint64_t sent;  /* records sent on this link so far */
    int ready;      /* the first CREDIT arrived */
} sl_credit_tx_t;

static inline int sl__credit_tx_can_send(const sl_credit_tx_t *tx,
                                         uint32_t n)
{
    return tx->credit >= n;
}

#endif
