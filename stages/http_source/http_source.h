/*
 * http_source: state shared by the worker (pull) and the HTTP threads.
 *
 * Accepted bodies wait in a FIFO of batches, bounded by `queue` records
 * and `queue_bytes` bytes. The HTTP threads append whole batches under
 * the lock; pull() is the only reader and emits straight from a batch's
 * bytes outside the lock (a queued batch never changes), freeing each one
 * when its last record is out.
 */
#ifndef HS_SOURCE_H
#define HS_SOURCE_H

#include "http_body.h"
#include "http_opts.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

struct MHD_Daemon;

/* Request outcomes, counted for the summary logged at the end. */
typedef enum hs_outcome {
    HS_202 = 0,
    HS_400,
    HS_401,
    HS_404,
    HS_405,
    HS_413,
    HS_415,
    HS_503,
    HS_500,
    HS_NOUTCOMES
} hs_outcome_t;

typedef struct hs_state {
    hs_opts_t o;
    sl_ctx_t *ctx; /* the worker's; outlives the state */
    char *token;   /* bearer token, or NULL: no auth */
    size_t token_len;
    struct MHD_Daemon *daemon;
    unsigned port; /* bound */
    atomic_int mhd_started;
    char mhd_first[256]; /* MHD's first message while starting */

    pthread_mutex_t mu;
    pthread_cond_t cv;      /* signalled when a batch arrives */
    hs_batch_t *head, *tail; /* oldest first */
    uint64_t nrec;          /* records queued and not yet emitted */
    uint64_t nbytes;        /* bytes of the queued batches */
    int waiting;            /* pull() waits on cv */
    int closed;             /* stopping: no body is accepted any more */

    atomic_uint_fast64_t outcomes[HS_NOUTCOMES];
    atomic_uint_fast64_t accepted; /* records answered 202 */
} hs_state_t;

/* Queues b (ownership moves on success). -ESHUTDOWN when the stage is
 * stopping, -EAGAIN when the queue has no room for all of it now. */
int hs_queue_put(hs_state_t *st, hs_batch_t *b);
int hs_stopping(hs_state_t *st);
/* Nonzero when not even one more record fits (a hint: it may change). */
int hs_queue_full(hs_state_t *st);

/* Starts the HTTP server on o.host:o.port; reports a failure with
 * sl_config_error on the `listen` node. */
int hs_server_start(hs_state_t *st, const sl_config_t *cfg);
void hs_server_stop(hs_state_t *st);

#endif
