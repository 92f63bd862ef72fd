/*
 * The session layer of a link between two nodes (proto.h has the wire
 * form). Credit alone bounds a link; across machines it must also survive
 * a broken connection and a node that restarts, so:
 *
 * - the sender numbers its batches and keeps each one (a reference to the
 *   same ZeroMQ message, no copy) until the receiver acknowledges it;
 * - the receiver acknowledges a batch once it has handled every record of
 *   it and of the batches before, and whatever they became has been
 *   acknowledged in turn by the next node (or written, at a sink);
 * - after a reconnect the sender re-sends what the receiver says it lacks:
 *   the batches after the last one it received when it is the same
 *   process, every unacknowledged one when it restarted (at-least-once:
 *   those are counted as re-sent, and may reach the sink twice).
 *
 * The unacknowledged batches are bounded by a window in records, like
 * credit: a sender with a full window waits.
 */
#ifndef SL_LINK_REMOTE_H
#define SL_LINK_REMOTE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

typedef struct sl_rtx_entry {
    uint64_t seq;
    uint32_t count;
    zmq_msg_t msg; /* a reference to the batch as sent */
} sl_rtx_entry_t;

/* The sender's side, one per output link to another node. */
typedef struct sl_rtx {
    uint32_t conn;         /* number of the last SYNC (its connection) */
    int up;                /* a WELCOME for conn has come */
    uint64_t sync_ns;      /* when that SYNC went, 0: none yet */
    uint64_t peer_session; /* the receiver's, from the last WELCOME */
    uint64_t next_seq;     /* the next batch's number (from 1) */
    uint64_t acked;        /* every batch up to here is acknowledged */
    sl_rtx_entry_t *ring;  /* unacknowledged batches in order */
    size_t cap, head, n;
    size_t next;           /* entries [0, next) are on the wire, the rest
                              wait to be re-sent */
    uint32_t unacked;      /* records in the ring */
    uint32_t window;       /* most records unacknowledged at once */
    uint64_t counted;      /* highest seq counted in sess_sent */
    uint64_t sess_sent;    /* records sent to the receiver's session (its
                              end-of-stream count) */
    int eos;               /* 0 not sent, 1 sent, 2 acknowledged */
    uint64_t down_ns;      /* when the connection was lost, 0 if not */
    int welcomed;          /* any WELCOME ever: a loss is a loss, not a
                              refused handshake */
    atomic_uint_fast64_t resent;   /* records sent again */
    atomic_uint_fast64_t losses;   /* connections lost */
    atomic_uint_fast64_t restarts; /* the receiver came back as a new
                                      process */
} sl_rtx_t;

int sl__rtx_init(sl_rtx_t *t, uint32_t window);
void sl__rtx_fini(sl_rtx_t *t);
/* n records may go now: the window has room and nothing waits to be
 * re-sent before them. */
int sl__rtx_room(const sl_rtx_t *t, uint32_t n);
/* A new batch goes out: keeps a reference to msg and numbers it. Counts it
 * in sess_sent. 0 or -ENOMEM. */
int sl__rtx_push(sl_rtx_t *t, zmq_msg_t *msg, uint32_t count, uint64_t *seq);
/* The batch just pushed could not go (the connection is gone): it waits
 * to be re-sent. */
void sl__rtx_unsent(sl_rtx_t *t);
/* The receiver has everything up to seq. */
void sl__rtx_ack(sl_rtx_t *t, uint64_t seq);
/* A WELCOME on the current connection: from session, which last received
 * last_seq. Sets up what must be sent again; returns the records that
 * will be. */
uint64_t sl__rtx_welcome(sl_rtx_t *t, uint64_t session, uint64_t last_seq);
/* The connection is gone: nothing more can be sent until a new WELCOME. */
void sl__rtx_lost(sl_rtx_t *t, uint64_t now_ns);
/* The next batch to send again, or NULL; sl__rtx_resent() after sending
 * it (a new reference: zmq_msg_copy from entry->msg). */
sl_rtx_entry_t *sl__rtx_due(sl_rtx_t *t);
void sl__rtx_resent(sl_rtx_t *t);

/* The receiver's side, one per input link from another node. */
typedef struct sl_rrx {
    int synced;
    uint64_t session;      /* the sender's */
    uint32_t conn;         /* its current connection */
    uint64_t last_seq;     /* the last batch taken in, in order */
    uint64_t sess_received;/* records taken in from this sender session */
    uint64_t ack_ready;    /* batches up to here may be acknowledged */
    uint64_t ack_sent;
    uint64_t unmarked;     /* taken in, not yet given an ack marker */
    atomic_uint_fast64_t dups;     /* records received twice, dropped */
    atomic_uint_fast64_t sessions; /* sender sessions seen */
} sl_rrx_t;

/* What to do with a SEQ frame. */
typedef enum {
    SL_RRX_TAKE,  /* the next batch: take it in */
    SL_RRX_DUP,   /* had it already: drop it, return its credit */
    SL_RRX_STALE, /* of an older connection or before SYNC: drop it */
    SL_RRX_GAP,   /* a batch is missing before it: drop it */
} sl_rrx_verdict_t;

/* A SYNC: 1 if it is a new sender session (the sender restarted). */
int sl__rrx_sync(sl_rrx_t *x, uint64_t session, uint32_t conn);
sl_rrx_verdict_t sl__rrx_seq(sl_rrx_t *x, uint32_t conn, uint64_t seq);

#endif
