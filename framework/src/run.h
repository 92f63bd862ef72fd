/*
 * A run: one topology brought to life in this process. Owns the ZeroMQ
 * context, one runner per stage, and the plugins' worker states.
 */
#ifndef SL_RUN_H
#define SL_RUN_H

#include "checkpoint.h"
#include "resource.h"
#include "runner.h"
#include "topology.h"

#include <stdio.h>

typedef struct sl_stage_stats {
    uint64_t read;       /* sources: input units read */
    uint64_t in;         /* records received / handled */
    uint64_t out;        /* records emitted */
    uint64_t ok;         /* inputs that produced output (sinks: written) */
    uint64_t filtered;
    uint64_t errors;     /* dead-lettered (or logged without a target) */
    uint64_t retried;    /* failed attempts that were retried */
    uint64_t spilled_in; /* received, spilled at shutdown unhandled */
    uint64_t spilled_out; /* emitted, spilled at shutdown unsent (finished) */
    uint64_t shed;       /* emitted, given to when_full (finished) */
    uint64_t sent;       /* records put on output links (all links) */
    uint32_t held;       /* records held now */
    uint32_t held_max;
    uint32_t capacity;
    unsigned busy;       /* workers in a handler now */
    unsigned workers;
    double busy_s;
    int finished;
    uint64_t restarts;   /* worker processes that died and were replaced */
    uint64_t redelivered; /* records a dead worker had handled, handled again */
    uint64_t grows;       /* an elastic pool added a worker */
    uint64_t shrinks;     /* an elastic pool let an idle worker go */
    /* Sinks: end-to-end latency from the source timestamp, ns. */
    uint64_t lat_count, lat_p50, lat_p90, lat_p99, lat_max;
    uint64_t backpressure_ns; /* time output waited for downstream credit */
    uint64_t lag_ns_max;      /* longest dispatcher loop turn, last second */
    uint64_t slow_calls;      /* handler calls over the stage's slow_ms */
} sl_stage_stats_t;

/* Live histograms of one stage (merged over its workers), for metrics:
 * handler call time (sampled: 1 call in SL_HANDLER_SAMPLE) and, for
 * sinks, end-to-end latency. Values in ns. The caller owns *out (two
 * sl_hist_t, about 30 KiB each: not for the stack of a small thread). */
#define SL_HANDLER_SAMPLE 16
typedef struct sl_stage_hists {
    sl_hist_t handler;
    sl_hist_t latency;
} sl_stage_hists_t;
void sl__run_stage_hists(sl_run_t *run, size_t stage, sl_stage_hists_t *out);
/* Credit granted to an input link of a stage and not yet used by its
 * sender (what the sender may still send now). */
uint32_t sl__run_link_credit(sl_run_t *run, size_t stage, size_t link);
/* A link between nodes, seen from this node's end of it (zeros for a link
 * inside the node): connections lost and records sent again (producer's
 * end), records received twice and dropped (consumer's end). Returns
 * whether the link crosses nodes. */
typedef struct sl_link_remote_stats {
    uint64_t losses, resent, peer_restarts, dups;
} sl_link_remote_stats_t;
int sl__run_link_remote(sl_run_t *run, size_t stage, size_t link,
                        sl_link_remote_stats_t *out);

struct sl_run {
    const sl_topology_t *topo;
    void *zctx;
    sl_runner_t *runners;
    size_t n_runners;
    atomic_int stopping; /* sources end at the next pull */
    atomic_int aborting; /* everything ends now */
    atomic_int failed;
    int positions_on;     /* state_dir: sources' positions are committed */
    atomic_int no_commit; /* a sink could not sync: commit nothing more */
    sl_resources_t *resources; /* `resources:`, shared with worker processes */
    sl_ckpt_t *ckpt;           /* `state_dir:`: committed positions */
    struct sl_taps *taps;      /* copies of links for `sluice record` */
    /* Shutdown: past the grace period everything in flight is spilled. */
    atomic_int spilling;
    pthread_mutex_t spill_mu;
    sl_deadletter_t *spill;    /* opened at the first spill */
    int spill_failed;
    atomic_uint_fast64_t spilled;    /* records written to the spill file */
    atomic_uint_fast64_t spill_lost; /* records that could not be */
    /* when the run started; the metrics endpoint's thread serves (and
     * reads it) from before then */
    _Atomic uint64_t t_start;
    _Atomic uint64_t t_end; /* when the last dispatcher finished */
    atomic_size_t n_finished;
    unsigned long id;
    /* Across nodes: this node's index in topo->hosts (-1: the whole
     * topology here), its key pair, and the ZAP handler of zctx when some
     * stage here takes input links over tcp. */
    long node;
    uint64_t session; /* random, per process: tells a restarted node */
    struct sl_curve_keys *keys;
    struct sl_zap *zap;
};

/* Builds a run: loads nothing (the topology has its plugins), inits every
 * worker's plugin state (of the node sl__topology_set_node chose, if one
 * was). On failure returns NULL with err filled. */
sl_run_t *sl__run_new(const sl_topology_t *topo, char *err, size_t errlen);
/* The part of a topology with hosts that runs on node `node` (an index
 * into topo->hosts): runners for its stages only; links to stages of other
 * nodes go over tcp, with CURVE unless the topology is insecure (this
 * node's secret key is read from keys_dir/NAME.key). node -1
 * runs the whole topology. */
sl_run_t *sl__run_new_node(const sl_topology_t *topo, long node, char *err,
                           size_t errlen);
/* After the summary, one line per link that crosses nodes, with what this
 * node's side counted (sent or received), for the operator to compare
 * with the other node's line. Nothing without hosts. */
void sl__run_print_links(sl_run_t *run, FILE *f);
/* Starts every thread. 0 or negative. */
int sl__run_start(sl_run_t *run);
/* Waits for the end; 0 when every stage finished cleanly. */
int sl__run_wait(sl_run_t *run);
/* Graceful stop: sources end as if at EOF, everything drains. */
void sl__run_stop(sl_run_t *run);
/* The grace period is over: stop intake and spill everything in flight
 * (see spill.h); the stages then end as at end of input. */
void sl__run_spill(sl_run_t *run);
/* Immediate stop. */
void sl__run_abort(sl_run_t *run);
void sl__run_destroy(sl_run_t **run);

/* A consistent-enough live snapshot of one stage (any thread). */
void sl__run_stats(sl_run_t *run, size_t stage, sl_stage_stats_t *out);
/* Checks every stage's and link's ledger after the run; each imbalance is
 * one line in diag. Returns 0 when balanced. */
int sl__run_check_ledger(sl_run_t *run, sl_diag_t *diag);
/* Run-wide sums (sources' read, sinks' delivered, all stages' filtered,
 * dead-lettered, retried and shed; records spilled and lost). */
typedef struct sl_run_totals {
    uint64_t read, delivered, filtered, dead_lettered, retried, spilled,
        shed, lost;
} sl_run_totals_t;
void sl__run_totals(sl_run_t *run, sl_run_totals_t *t);
/* After a clean, balanced end: every record the sources emitted is
 * finished, so their last positions are committed. 0 or negative. */
int sl__run_commit_positions(sl_run_t *run);
/* The per-stage summary table. */
void sl__run_print_summary(sl_run_t *run, FILE *f);
/* The report as JSON (see docs/topology.md). */
int sl__run_write_report(sl_run_t *run, const char *path, int ledger_ok);
double sl__run_elapsed_s(sl_run_t *run);

#endif
