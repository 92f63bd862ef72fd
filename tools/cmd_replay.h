/* `sluice replay`: sends recorded (or synthetic) records into a running
 * topology's zmq_source on an open-loop schedule, takes them back from its
 * zmq_sink, and reports latency measured from each record's intended send
 * time (docs/replay.md).
 *
 * The command is split by thread and concern:
 *   cmd_replay.c     options, the run's orchestration (main thread)
 *   replay_pace.c    the sender thread: schedule, batching, seq fields
 *   replay_ack.c     the receiver thread: matching, timeouts, histograms
 *   replay_source.c  the records: a trace (in memory) or a synth template
 *   replay_mpk.c     bounded msgpack walking and the seq field append
 *   replay_target.c  `--topology`: the child `sluice run` and its endpoints
 *   replay_stages.c  per-stage breakdown from the target's /metrics
 *   replay_report.c  text, --json, --hdr and --compare
 */
#ifndef SL_CMD_REPLAY_H
#define SL_CMD_REPLAY_H

#include "hist.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

int sl_cmd_replay(int argc, char **argv);

#define SL_RP_SEQ_FIELD "_replay_seq"
/* Records per zmq message and bytes per message the sender batches at
 * most: large enough to amortise a send, small enough that one message
 * never holds a target's queue hostage. */
#define SL_RP_BATCH_MAX 128
#define SL_RP_BATCH_BYTES (256u << 10)
/* Slices of the run kept as histograms of their own, for the first and
 * last fifths (pairs are merged as the run grows). */
#define SL_RP_SLICES 64

typedef struct sl_rp_opts {
    const char *trace;    /* TRACE, or NULL */
    const char *synth;    /* --synth TEMPLATE.yaml, or NULL */
    const char *topology; /* --topology FILE.yaml, or NULL */
    const char *to;       /* --to: where the records go */
    const char *ack;      /* --ack: where they come back */
    const char *metrics;  /* --metrics URL of the target, or NULL */
    const char *seq_field;
    size_t seq_len;
    double speed;         /* multiple of the recorded pace; 0 = max */
    double rate;          /* --rate: records/s, 0 when not given */
    uint64_t duration_ns; /* 0: the trace's length (or forever with loop) */
    uint64_t warmup_ns;
    uint64_t timeout_ns;
    uint64_t drain_ns;    /* listening on after the last record resolved */
    uint64_t max_inflight;
    int loop;
    int quiet;
    const char *json;     /* --json OUT */
    const char *hdr;      /* --hdr OUT */
    const char *compare;  /* --compare OLD.json */
    double threshold;     /* --threshold, a fraction (0.10) */
    const char *capture;  /* --capture OUT.trace: what came back */
} sl_rp_opts_t;

/* Where the records come from: a trace file or the synth module. next()
 * returns 0 with an entry, 1 at the end, or a negative errno with the
 * reason in error(). */
typedef struct sl_rp_source {
    void *self;
    int (*next)(void *self, uint64_t *offset_ns, const void **rec,
                size_t *len);
    int (*rewind)(void *self);
    const char *(*error)(void *self);
    void (*close)(void *self);
} sl_rp_source_t;

/* Opens o's trace or synth template into src; on failure the reason is
 * on stderr and a negative errno returned. */
int sl__rp_source_open(const sl_rp_opts_t *o, sl_rp_source_t *src);

/* A slot's state word: (seq << 2) | state. Written by the sender when it
 * takes the slot for a new seq, moved on from PENDING exactly once (CAS)
 * by whoever resolves it. */
enum {
    SL_RP_PENDING = 0,
    SL_RP_ACKED = 1,
    SL_RP_TIMED_OUT = 2,
    SL_RP_FAILED = 3 /* the send failed */
};

/* Latency of the records whose intended time lies in one slice of the
 * run. */
typedef struct sl_rp_slices {
    sl_hist_t *h;      /* SL_RP_SLICES of them */
    uint64_t width_ns; /* doubles when the run outgrows the array */
} sl_rp_slices_t;

/* Counts by time in SL_RP_BINS bins whose width doubles as the run
 * grows: when records came back, for a completion rate that a few
 * stragglers at either end do not distort. */
#define SL_RP_BINS 1024
typedef struct sl_rp_bins {
    uint64_t *n;
    uint64_t width_ns;
    uint64_t total;
} sl_rp_bins_t;

/* What the receiver measured; read by the main thread once it has
 * joined the receiver. */
typedef struct sl_rp_acks {
    sl_hist_t all;         /* latency of every measured completion */
    sl_rp_slices_t slices; /* the same by intended time */
    uint64_t completed;    /* measured records acked in time */
    uint64_t completed_warmup;
    uint64_t duplicates;   /* acked again */
    uint64_t unmatched;    /* no seq field, or a seq never sent */
    uint64_t late;         /* acked after their timeout */
    uint64_t malformed;    /* bytes that were not msgpack maps */
    uint64_t timeouts;     /* measured records the scan timed out */
    uint64_t clamped;      /* completed before their intended time: not
                              in the histograms (always 0 for records of
                              this run) */
    uint64_t in_flight_at_stop; /* unresolved when a second signal came */
    uint64_t first_ack_ns, last_ack_ns; /* measured completions */
    uint64_t messages;
    sl_rp_bins_t ack_times;   /* measured completions by arrival */
    uint64_t captured, capture_base; /* --capture */
} sl_rp_acks_t;

/* What the sender did; read by the main thread after joining it. */
typedef struct sl_rp_sends {
    uint64_t sent;        /* measured records handed to the socket */
    uint64_t sent_warmup;
    uint64_t errors;      /* measured records whose send failed */
    uint64_t overflow;    /* measured records timed out by max-inflight */
    uint64_t messages;
    uint64_t bad_records; /* source records that are not maps */
    uint64_t first_send_ns, last_send_ns;           /* measured records */
    uint64_t first_intended_ns, last_intended_ns;   /* measured records */
    uint64_t max_lag_ns;  /* the furthest behind schedule a send was */
    sl_hist_t lag;        /* how late each measured record was sent */
    int source_failed;    /* the source ended with an error */
    char source_err[512];
} sl_rp_sends_t;

typedef struct sl_replay {
    const sl_rp_opts_t *o;
    sl_rp_source_t src;
    void *zctx;
    void *push;           /* the sender thread's */
    void *pull;           /* the receiver thread's */
    struct sl_trace_writer *capture;
    uint64_t t0;          /* CLOCK_MONOTONIC ns of intended time 0 */

    /* seq -> intended time, max_inflight slots */
    _Atomic uint64_t *state;
    _Atomic uint64_t *intended; /* ns after t0 */
    uint64_t cap;

    _Atomic uint64_t issued;    /* seqs below this have taken a slot */
    _Atomic uint64_t published; /* seqs below this are resolved or sent */
    _Atomic int sender_done;
    _Atomic int recv_done;
    _Atomic int stop_send;      /* first signal, or the target died */
    _Atomic int stop_all;       /* second signal */

    /* live counters for the progress line (relaxed) */
    _Atomic uint64_t live_sent, live_acked, live_timeouts, live_lag_ns;

    sl_rp_sends_t sends;
    sl_rp_acks_t acks;
} sl_replay_t;

/* ---- replay_mpk.c ---------------------------------------------------- */

/* Length of the one msgpack object at p (at most len bytes): 0 with *n,
 * or -EBADMSG when it is malformed or cut short. Iterative, so nesting
 * depth costs nothing; never reads past len. */
int sl__rp_mpk_skip(const uint8_t *p, size_t len, size_t *n);
/* Writes map rec (len bytes) with key = v (a uint64, 0xcf form) appended
 * as its last entry into out (cap bytes): the map header is rewritten, the
 * entries copied as they are. 0 with *out_len, -EBADMSG if rec is not one
 * map, -ENOBUFS if out is too small (len + key + 17 always suffices). */
int sl__rp_mpk_append_u64(const uint8_t *rec, size_t len, const char *key,
                          size_t klen, uint64_t v, uint8_t *out, size_t cap,
                          size_t *out_len);
/* The non-negative integer under key in the map at rec (the first of
 * possibly several concatenated objects in len bytes): 0 with *v,
 * -ENOENT when the key is absent, -ERANGE when its value is not a
 * non-negative integer (both with *used, the map's length, so the caller
 * can go on with the next one), -EBADMSG when rec does not start with a
 * well-formed map (nothing after it can be trusted). */
int sl__rp_mpk_find_u64(const uint8_t *rec, size_t len, const char *key,
                        size_t klen, uint64_t *v, size_t *used);

/* ---- replay_pace.c / replay_ack.c ------------------------------------ */

void *sl__rp_sender_main(void *arg);
void *sl__rp_receiver_main(void *arg);
/* Nanoseconds on CLOCK_MONOTONIC. */
uint64_t sl__rp_now(void);

/* ---- replay_target.c -------------------------------------------------- */

typedef struct sl_rp_target {
    pid_t pid;          /* the child `sluice run`, or 0 */
    char *dir;          /* temporary folder: report and log */
    char *report_path;
    char *log_path;
    char to[512];       /* the zmq_source's endpoint, to connect to */
    char ack[512];      /* the zmq_sink's endpoint, to bind */
    char metrics[128];  /* http://127.0.0.1:PORT/metrics, once known */
    int exit_code;      /* once reaped; -1 before */
} sl_rp_target_t;

/* Loads the topology (every problem printed, -EINVAL) and finds its
 * zmq_source and zmq_sink endpoints (-ENOENT with a message when there is
 * not exactly one of each). */
int sl__rp_target_endpoints(sl_rp_target_t *t, const char *topology);
/* Starts `sluice run FILE --metrics 127.0.0.1:0 --quiet --report ...`;
 * the child dies with this process. */
int sl__rp_target_start(sl_rp_target_t *t, const char *topology);
/* Waits (at most wait_ms) for the child to log where its metrics are and
 * puts the URL in t->metrics; -ETIMEDOUT if it does not. */
int sl__rp_target_metrics_url(sl_rp_target_t *t, long wait_ms);
/* 1 while the child runs; 0 once it has ended (exit_code set). */
int sl__rp_target_alive(sl_rp_target_t *t);
/* SIGTERM, then waits up to wait_ms (SIGKILL after that); 0 or -ETIMEDOUT. */
int sl__rp_target_stop(sl_rp_target_t *t, long wait_ms);
/* Prints the last lines of the child's log to f. */
void sl__rp_target_dump_log(const sl_rp_target_t *t, FILE *f);
void sl__rp_target_fini(sl_rp_target_t *t);

/* ---- replay_stages.c -------------------------------------------------- */

typedef struct sl_rp_stage_row {
    char name[64];
    char kind[16];
    double records;      /* in (or read, for a source) during the replay */
    double rate;         /* records per second */
    double handler_ns;   /* mean handler call; < 0 when not sampled */
    double depth;        /* mean records held (sampled queue depth) */
    double residence_ns; /* mean time a record spends in the stage
                            (Little's law: depth / rate) */
    double queue_ns;     /* residence - handler: waiting */
    double busy;         /* share of the workers' time in the plugin */
    unsigned workers;
} sl_rp_stage_row_t;

typedef struct sl_rp_stages sl_rp_stages_t;

/* Scrapes url (the "before" picture), trying for up to wait_ms while it
 * cannot be reached; NULL with a message on stderr when it cannot be
 * read. */
sl_rp_stages_t *sl__rp_stages_begin(const char *url, long wait_ms);
/* Samples the queue depths (call a few times a second). */
void sl__rp_stages_sample(sl_rp_stages_t *s);
/* The "after" picture; fills the rows (*rows is the stages' array, owned
 * by s). -EIO when the endpoint went away. */
int sl__rp_stages_end(sl_rp_stages_t *s, const sl_rp_stage_row_t **rows,
                      size_t *n);
void sl__rp_stages_destroy(sl_rp_stages_t **s);

/* ---- replay_report.c -------------------------------------------------- */

/* Everything the report shows, computed once from the threads' results. */
typedef struct sl_rp_result {
    double requested_rate; /* 0: as fast as possible */
    double achieved_rate;
    double completion_rate;
    double pacing_error;   /* |achieved - requested| / requested */
    uint64_t sent, completed, errors, timeouts, unmatched, duplicates;
    uint64_t late, malformed, sent_warmup, in_flight_at_stop, bad_records;
    uint64_t clamped;
    uint64_t p50, p90, p99, p999, p9999, max, min;
    double mean;
    uint64_t p50_first, p50_last; /* first and last fifths of the run */
    uint64_t lag_p50, lag_p99, lag_max; /* the sender's lateness */
    int fell_behind;
    char behind_why[256];
    double duration_s;
    const sl_hist_t *hist;
    const sl_rp_stage_row_t *stages;
    size_t n_stages;
    double replay_mean_ns;
    const char *target_report; /* the child's --report JSON text, or NULL */
    const char *mode;          /* "speed 1x", "rate 20000/s", "max" */
} sl_rp_result_t;

void sl__rp_result_compute(const sl_replay_t *r, sl_rp_result_t *res);
void sl__rp_report_text(const sl_rp_result_t *res, FILE *f);
int sl__rp_report_json(const sl_rp_result_t *res, const char *path);
int sl__rp_report_hdr(const sl_rp_result_t *res, const char *path);
/* Compares res with the report in old_path and prints a table to f:
 * 0 within threshold, 1 worse, 2 the old report is unreadable. */
int sl__rp_compare(const sl_rp_result_t *res, const char *old_path,
                   double threshold, FILE *f);

int sl__rp_bins_init(sl_rp_bins_t *b);
void sl__rp_bins_add(sl_rp_bins_t *b, uint64_t at);
/* The time by which a fraction q of the counts had come (interpolated
 * within a bin). */
double sl__rp_bins_time(const sl_rp_bins_t *b, double q);
void sl__rp_bins_fini(sl_rp_bins_t *b);

/* Slices: records latency v of a record whose intended time is at. */
int sl__rp_slices_init(sl_rp_slices_t *s);
void sl__rp_slices_record(sl_rp_slices_t *s, uint64_t at, uint64_t v);
/* p50 of the slices whose middle lies in [from, to). */
uint64_t sl__rp_slices_p50(const sl_rp_slices_t *s, uint64_t from,
                           uint64_t to);
void sl__rp_slices_fini(sl_rp_slices_t *s);

#endif
