/*
 * Between a stage's dispatcher (dispatch.c) and its half for links to
 * other nodes (dispatch_remote.c, the session layer of link_remote.h).
 * Everything here runs on the dispatcher thread.
 */
#ifndef SL_DISPATCH_INT_H
#define SL_DISPATCH_INT_H

#include "run.h"

/* dispatch.c */
void sl__dispatch_fail(sl_runner_t *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A checked batch of count records from input link, within its credit:
 * counted and handed to the workers (ownership of msg passes). */
void sl__dispatch_take(sl_runner_t *r, uint32_t link, zmq_msg_t *msg,
                       uint32_t count);
/* Queues a marker at the current generation and starts the next one.
 * -EAGAIN when every generation of the ring is in use. */
int sl__dispatch_push_mark(sl_runner_t *r, const sl_mark_t *mk);

/* dispatch_remote.c */
/* A message from an input link of another node (the routing frame read):
 * handles it and any frame that belongs to it. */
void sl__remote_input(sl_runner_t *r, uint32_t link, zmq_msg_t *body);
/* A batch arrived on a link inside the node that carries
 * acknowledgements (run.c, s_ack_chain): numbered and marked like one
 * from another node. */
void sl__remote_local_batch(sl_runner_t *r, uint32_t link);
/* Acknowledges what is safe downstream (after markers became ready). */
void sl__remote_acks(sl_runner_t *r);
/* Credit, WELCOME and ACK from the consumer of output o. */
void sl__remote_drain_out(sl_runner_t *r, size_t o);
/* Once a loop turn: connection events, SYNC, re-sends, acknowledgements.
 * Returns whether something waits on a connection (poll sooner). */
int sl__remote_turn(sl_runner_t *r);
/* Whether n records may go on output o (besides its credit). */
int sl__remote_can_send(const sl_runner_t *r, size_t o, uint32_t n);
/* Sends a batch of count records on output o, keeping it for a re-send.
 * Ownership of m passes. 0, or negative when the run must fail. */
int sl__remote_send(sl_runner_t *r, size_t o, zmq_msg_t *m, uint32_t count);
/* An acknowledgement marker whose records are all handled. */
void sl__remote_mark_done(sl_runner_t *r, const sl_mark_t *mk);
/* The stage is done: 1 once every output to another node has its
 * batches and its end-of-stream acknowledged (or, past the grace period,
 * what was not is spilled). */
int sl__remote_ended(sl_runner_t *r);

#endif
