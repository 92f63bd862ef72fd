/*
 * The runtime of one stage (a thread lane): a dispatcher thread that owns
 * the stage's ZeroMQ sockets and its credit accounting, and a pool of
 * worker threads that run the plugin. Dispatcher and workers meet at two
 * short lists under one mutex: work (batches to handle) and done (batches
 * emitted, with the input credit they release once sent).
 *
 * The stage's bound: records granted to upstream as credit + received and
 * not yet finished + emitted and waiting for downstream credit never exceed
 * its `queue`. Credit for an input record comes back only when what it
 * became has left the stage, so a slow consumer stops the producer.
 */
#ifndef SL_RUNNER_H
#define SL_RUNNER_H

#include "ctx.h"
#include "hist.h"
#include "procpool.h"
#include "prioq.h"
#include "proto.h"
#include "retry.h"
#include "topology.h"

#include <pthread.h>
#include <stdatomic.h>
#include <zmq.h>

typedef struct sl_run sl_run_t;
typedef struct sl_runner sl_runner_t;
typedef struct sl_deadletter sl_deadletter_t;

/* Generations a stage tells apart: markers arriving faster than the stage
 * finishes work beyond this are dropped (a later one covers them). */
#define SL_GEN_RING 1024

typedef struct sl_mark {
    uint32_t source, worker;
    uint64_t epoch;
    uint32_t gen; /* it waits for every generation up to this one */
    /* An acknowledgement marker of an input link from another node
     * (link_remote.h): link >= 0, epoch = the batch number, session = the
     * sender's. -1 for a source position marker. */
    int32_t link;
    uint64_t session;
} sl_mark_t;

typedef struct sl_work {
    struct sl_work *next;
    zmq_msg_t msg;  /* the received batch, when owned_buf is NULL */
    char *owned_buf; /* a partitioned sub-batch (malloc'd) */
    size_t owned_len;
    /* A share of a batch split between workers: its records are the bytes
     * [view_off, view_end) of msg, which the other shares reference too
     * (view_end 0: the whole batch). */
    size_t view_off, view_end;
    uint32_t count;
    uint32_t link;
    int worker;      /* the worker it must go to (partitioned), or -1 */
    uint32_t gen;    /* the stage's generation when it arrived (markers) */
    int retry;       /* records coming back from the retry queue */
    uint64_t *first_ns; /* retry items: each record's first failure */
    uint8_t level;   /* priority level its records are served at */
} sl_work_t;

typedef struct sl_done {
    struct sl_done *next;
    char *buf;       /* an output batch (malloc'd), or NULL */
    size_t len;
    uint32_t count;  /* records in buf */
    uint32_t link;   /* input link whose credit this releases */
    uint32_t release;
    int last;        /* the worker has flushed (or the source ended) */
    int ends_item;   /* the last post for a work item */
    int retired;     /* worker `worker` left an elastic pool */
    int worker;
    uint32_t gen;    /* ends_item: the item's generation */
    int retry_worker; /* partitioned: the worker retries must go back to */
    int data_sent;   /* buf has gone; dl_buf may still wait for credit */
    /* Records that failed with attempts left, for the retry queue: a
     * batch (envelopes carry the attempts made) and each one's first
     * failure time. They keep their input credit. */
    char *retry_buf;
    size_t retry_len;
    uint32_t retry_count;
    uint64_t *retry_first;
    /* Dead letters for a dead-letter stage, as its records. */
    char *dl_buf;
    size_t dl_len;
    uint32_t dl_count;
    /* A source's marker (see marker.h): epoch > 0. */
    uint64_t mark_epoch;
    uint32_t mark_source;
} sl_done_t;

/* Counters a worker updates and others may read at any time. */
typedef struct sl_worker_stats {
    atomic_uint_fast64_t in;       /* records handed to process() */
    atomic_uint_fast64_t ok;       /* inputs that emitted >= 1 (or sunk) */
    atomic_uint_fast64_t filtered; /* inputs that emitted nothing */
    atomic_uint_fast64_t errors;   /* failed inputs, input errors */
    atomic_uint_fast64_t emitted;  /* records emitted */
    atomic_uint_fast64_t read;     /* sources: input units read */
    atomic_uint_fast64_t retried;  /* failures sent back for a retry */
    atomic_uint_fast64_t slow;     /* handler calls over slow_ms */
    atomic_uint_fast64_t busy_ns;
    atomic_int busy;
} sl_worker_stats_t;

typedef struct sl_worker {
    sl_runner_t *runner;
    unsigned index;
    pthread_t thread;
    int started;
    sl_ctx_t ctx;
    int ctx_ready;
    void *state;
    int state_ready;
    sl_prioq_t pq;     /* own queue when the stage is partitioned */
    sl_worker_stats_t stats;
    /* Read live by metrics: both under hist_mu. */
    pthread_mutex_t hist_mu;
    sl_hist_t latency; /* sinks: end-to-end ns */
    sl_hist_t handler; /* handler call ns, 1 call in SL_HANDLER_SAMPLE */
    uint32_t sample_left;
    uint64_t coarse_mark;  /* coarse clock at the end of the last call */
    uint64_t slow_logged;
    uint64_t next_mark_ns; /* sources: when the next epoch may start */
    /* Failures of the item in hand, posted with its last output. */
    sl_batch_t retry_out;
    uint64_t *retry_first;
    size_t retry_first_cap;
    sl_batch_t dl_out;     /* dead letters for a dead-letter stage */
    uint32_t item_gen;     /* generation of the item in hand */
    int *res_slots;        /* slots held of the stage's `uses` */
    uint64_t errors_logged;
    int retire;        /* under runner->mu: leave the pool when idle */
    int live;          /* dispatcher's view: in the pool */
    atomic_uint_fast64_t last_busy_ns; /* when it last finished an item */
} sl_worker_t;

struct sl_runner {
    sl_run_t *run;
    const sl_topo_stage_t *spec;
    const sl_stage_desc_t *desc;
    size_t index;
    char endpoint[96];
    /* Running across nodes (`sluice run --node`): a stage of another node
     * is a placeholder here, finished from the start, with no threads or
     * sockets. remote_in: some input links arrive over tcp. */
    int remote;
    int remote_in;
    /* Per output, NULL when every consumer is local: the consumer is on
     * another node (out_remote[o]), the monitor of that link's socket, and
     * whether a connection that closed before the link was ever up has
     * been warned about (most often a key mismatch). */
    uint8_t *out_remote;
    void **out_mon;
    uint8_t *hello_due;
    /* The session layer of those links (link_remote.h): per output (a
     * zeroed one for local outputs), and per input link from another node
     * (in_remote[l]), with the monitor of the tcp side of the input. */
    struct sl_rtx *rtx;
    struct sl_rrx *rrx;
    uint8_t *in_remote;
    /* Acknowledgements go on down the links inside the node from a stage
     * with input from another node (run.c, s_ack_chain): per input, this
     * stage acknowledges it (from another node, or from a stage that
     * acknowledges its own inputs); per output, the consumer acknowledges
     * it. NULL outside such chains. */
    uint8_t *in_acked;
    uint8_t *out_acked;
    void *in_mon;
    /* Acknowledgements ready here but waiting for the outputs' own
     * (link_remote.h), a FIFO of (link, session, seq, then one seq per
     * output) rows. */
    uint64_t *ackw;
    size_t ackw_head, ackw_n, ackw_cap;
    /* Input links from other nodes given up on without their end-of-stream
     * once the grace period was over (their node may never come). */
    size_t eos_waived;

    /* Owned by the dispatcher thread once started. */
    void *in_sock;      /* ROUTER, NULL for sources */
    void **out_socks;   /* DEALER per output link */
    size_t n_out;
    uint32_t *out_link; /* our link index at each consumer */
    sl_credit_tx_t *tx;
    sl_credit_rx_t rx;
    char (*in_ident)[8]; /* routing id per input link */
    int *in_eos;
    uint64_t *in_received;
    uint64_t *in_expected;
    size_t eos_count;
    sl_done_t *pend_head, *pend_tail;
    size_t rr_next;
    uint32_t out_batch;  /* max records per output batch */
    pthread_t dispatcher;
    int dispatcher_started;
    int efd;
    atomic_int polling;   /* the dispatcher may be asleep: wake it */
    uint64_t *link_sent;  /* per output link */
    uint64_t out_records; /* records emitted and sent (once per record) */

    /* Shared with the workers, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sl_prioq_t pq;        /* work waiting for a worker, by priority */
    uint64_t queued;      /* records in pq (thread lanes) */
    uint32_t gen_cur;     /* generation of arriving work (markers) */
    uint32_t inflight;    /* work items queued or being handled */
    sl_done_t *done_head, *done_tail;
    int flush_now;
    unsigned lasts;       /* workers that have flushed/ended */
    uint32_t src_held;    /* sources: records emitted, not yet sent */
    int stop;             /* workers exit now (abort) */

    sl_worker_t *workers;
    unsigned n_workers;   /* slots: the pool's maximum */
    atomic_uint n_live;   /* workers in the pool now (the dispatcher changes it) */
    uint64_t elastic_at;  /* next elastic check, monotonic ns */
    unsigned full_ticks;  /* consecutive checks that found it saturated */
    unsigned n_retiring;  /* told to leave, not yet gone */
    uint64_t window_at;   /* start of the current shrink window */
    uint64_t window_busy_ns; /* workers' busy time at its start */
    atomic_uint_fast64_t grows, shrinks;
    /* Handler time per record, a moving average over work items (ns; 0
     * until one is done): how small a share of a batch is worth its own
     * hand-over. */
    atomic_uint_fast64_t rec_ns;
    sl_procpool_t *pp;    /* process lanes: the worker processes */
    sl_deadletter_t *dl;  /* the stage's dead-letter file, or NULL */
    /* The link to the dead-letter stage (dl_stage), beside the outputs. */
    void *dl_sock;
    uint32_t dl_link;     /* our link index at that stage */
    sl_credit_tx_t dl_tx;
    uint64_t dl_sent;
    uint32_t dl_batch;    /* max dead letters per message */
    /* Delayed retries (dispatcher only). */
    sl_retryq_t retries;
    /* Shutdown spilling and when_full shedding (dispatcher only, read
     * after it ends). */
    uint64_t *link_spilled;  /* per output: emitted, spilled not sent */
    uint64_t *link_shed;     /* per output: dropped to when_full */
    uint64_t dl_spilled;
    uint64_t shed_logged;
    atomic_uint_fast64_t in_direct;  /* received and spilled on arrival */
    atomic_uint_fast64_t spilled_in; /* received, spilled unhandled */
    /* Observability (written by the dispatcher, read by metrics). */
    atomic_uint_fast64_t bp_ns;      /* output waited for credit, ended spells */
    atomic_uint_fast64_t bp_since;   /* start of the current spell, or 0 */
    atomic_uint_fast64_t lag_max;    /* longest loop turn, last full second */
    uint64_t lag_window_max, lag_window_at, lag_logged;
    _Atomic uint32_t *link_credit;   /* per input link: credit outstanding */
    /* Markers (checkpoint.h), dispatcher only: records not yet finished
     * per generation of arrival, and the markers waiting for theirs. */
    uint32_t gen_low;
    uint32_t gen_held[SL_GEN_RING];
    sl_mark_t *marks;
    size_t n_marks, cap_marks;

    /* Live gauges. */
    atomic_uint held_now;
    atomic_uint held_max;
    atomic_int finished;
    atomic_int failed;
    atomic_uint_fast64_t restarts; /* worker processes that died */
    atomic_uint_fast64_t redelivered; /* handled by a worker that died, again */
};

/* Worker side (worker.c). */
int sl__worker_init_all(sl_runner_t *r, char *err, size_t errlen);
int sl__worker_start_all(sl_runner_t *r);
int sl__worker_init_one(sl_runner_t *r, unsigned i, char *err, size_t errlen);
int sl__worker_start_one(sl_runner_t *r, unsigned i);
void sl__worker_reap(sl_runner_t *r, unsigned i);
void sl__worker_join_all(sl_runner_t *r);
void sl__worker_fini_all(sl_runner_t *r);
/* Hands a finished item to the dispatcher and wakes it. */
void sl__runner_post_done(sl_runner_t *r, sl_done_t *done);
void sl__done_free(sl_done_t *d);
/* One failed attempt on a record (see worker.c); why is the reason. */
void sl__worker_record_failed(sl_worker_t *w, const sl_envelope_t *env,
                              const char *payload, size_t len,
                              const char *why, uint64_t first_ns);
void sl__work_free(sl_work_t *item);
void sl__work_free_cb(void *item, void *arg); /* for sl_prioq_drain */

/* Sharing work between workers. A stage's `queue` bounds what it holds, so
 * a batch taken whole by one worker can leave the others idle (with
 * `queue` equal to `batch` the whole queue is one batch). */

/* How many records one hand-over should carry when `queued` records wait
 * for `live` workers: a fair part of the waiting work, at most
 * queue / (2 x live) so that the rest of the queue keeps the others busy
 * and can be refilled meanwhile, and no smaller than is worth a hand-over
 * at the measured cost per record. UINT32_MAX with one worker: no
 * splitting. */
uint32_t sl__work_share(sl_runner_t *r, uint64_t queued, unsigned live);
/* Whether an item of `count` records should give away all but `share`:
 * only when both parts are worth a hand-over. */
int sl__work_should_split(sl_runner_t *r, uint32_t count, uint32_t share);
/* Splits item after its first n records (0 < n < count): item keeps
 * them, the returned item has the rest, sharing the same bytes. NULL when
 * out of memory (item is then unchanged). Not for partitioned items. */
sl_work_t *sl__work_split(sl_work_t *item, uint32_t n);
/* Makes item a batch of its own (a view becomes a copy of its records).
 * 0 or -ENOMEM (item unchanged). */
int sl__work_own(sl_work_t *item);
/* An iterator over the item's records, view or whole batch. 0 or
 * -EBADMSG. */
int sl__work_iter(const sl_work_t *item, sl_batch_iter_t *it);
/* Feeds the per-record cost average: `ns` spent on `count` records. */
void sl__work_note_cost(sl_runner_t *r, uint64_t ns, uint32_t count);

/* Dispatcher side (dispatch.c). */
void *sl__dispatcher_main(void *arg);

#endif
