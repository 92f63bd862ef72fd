/*
 * Worker contexts and records as the host sees them: what sits behind the
 * opaque sl_ctx_t and sl_record_t of <sluice/stage.h>. One context per
 * worker, used only by that worker's thread.
 */
#ifndef SL_CTX_H
#define SL_CTX_H

#include "batch.h"
#include "record_limits.h"
#include <sluice/stage.h>
#include <stdatomic.h>

struct sl_record {
    sl_envelope_t env;
    const char *data;
    size_t len;
    msgpack_zone *zone;  /* the worker's, cleared after each record */
    msgpack_object obj;
    int decoded;         /* 0 not yet, 1 ok, -1 not a single map */
    sl_ctx_t *ctx;       /* the context handling it: its limits */
};

/* Called by emit when the output batch is full, to hand it off before the
 * next record goes in. Returns 0 or a negative code (then emit fails). */
typedef int (*sl_ctx_full_fn)(sl_ctx_t *ctx, void *arg);
/* Called for every sl_ctx_input_error(). */
typedef void (*sl_ctx_input_error_fn)(sl_ctx_t *ctx, const char *msg,
                                      void *arg);
/* Called for a record over the stage's limits that no input record stands
 * for (one a source emits, or one from flush()), with its bytes (valid for
 * the call) and the reason: it was not emitted, and the handler goes on.
 * Without it such a record counts as an input error (on_input_error). */
typedef void (*sl_ctx_reject_fn)(sl_ctx_t *ctx, const void *rec, size_t len,
                                 const char *msg, void *arg);

struct sl_ctx {
    const char *stage;
    unsigned stage_index;
    unsigned worker;
    unsigned workers;
    int is_source;
    int no_emit;             /* sinks: emitting is a bug */

    sl_batch_t out;          /* emitted records, owned by the context */
    uint32_t max_batch;      /* hand off when out.count reaches this */
    sl_ctx_full_fn on_full;
    void *on_full_arg;
    sl_ctx_input_error_fn on_input_error;
    void *on_input_error_arg;
    sl_ctx_reject_fn on_reject;
    void *on_reject_arg;
    /* Checked on every record emitted and decoded (the defaults until the
     * runtime sets the stage's). A transform's record over them fails the
     * input record for good: limit_hit, with the reason in limit_err, which
     * the caller applies whatever the handler returned (sl__ctx_limit_rc). */
    sl_limits_t limits;
    int limit_hit;
    char limit_err[256];

    sl_record_t *cur;        /* the record being handled (transforms) */
    size_t rec_mark_len;     /* out as it was when cur began */
    uint32_t rec_mark_count;
    int rec_handed_off;      /* part of cur's output has left already */
    uint32_t emitted;        /* records emitted for cur / in this pull */
    size_t budget;           /* sources: allowed in this pull */
    uint64_t pull_ts;        /* sources: the timestamp of this pull's records */
    uint64_t next_seq;       /* for fresh ids */
    int prio_set;
    uint8_t prio;
    const struct sl_prio_rule *prio_rule; /* the stage's `priority:` */
    msgpack_packer pk;       /* writes into out */
    int packing;             /* between emit_begin and emit_commit */
    size_t pack_over;        /* bytes of the record being packed not kept:
                                it went over limits.max_record_bytes */

    const atomic_int *stopping;
    /* Resumable sources: positions are kept only when the run commits
     * them (positions_on); `pos` is the newest, `pos_new` says it changed
     * since the host last took it. `resume` is owned by whoever set it. */
    int positions_on;
    int pos_new;
    size_t pos_len;
    const void *resume;
    size_t resume_len;
    char *pos;               /* SL_POSITION_MAX bytes once positions_on */
    char err[512];
    int has_err;
    int err_final;           /* sl_ctx_fail: no retry */
    msgpack_zone zone;
};

/* Sets up a context for one worker. 0 or -ENOMEM. */
int sl__ctx_init(sl_ctx_t *ctx, const char *stage, unsigned stage_index,
                 unsigned worker, unsigned workers, int is_source,
                 uint32_t max_batch, const atomic_int *stopping);
void sl__ctx_fini(sl_ctx_t *ctx);

/* Prepares rec (pointing into a received batch) for a handler call. */
void sl__ctx_begin_record(sl_ctx_t *ctx, sl_record_t *rec,
                          const sl_envelope_t *env, const char *data,
                          size_t len);
/* The current record failed: what it emitted is dropped, so that a retry
 * does not send it twice. Returns how many records were dropped, or -1
 * when part of it had already been handed on (a full batch mid-record);
 * then nothing is dropped. */
int sl__ctx_drop_record_output(sl_ctx_t *ctx);
/* Ends the call: clears the zone and per-call state. */
void sl__ctx_end_record(sl_ctx_t *ctx);
/* Ends a pull() or flush() call: drops a record begun and not committed. */
void sl__ctx_end_call(sl_ctx_t *ctx);
/* Prepares a source pull with a budget. */
void sl__ctx_begin_pull(sl_ctx_t *ctx, size_t budget);
/* Prepares a flush() call (no current record; emits get fresh ids). */
void sl__ctx_begin_flush(sl_ctx_t *ctx);
/* A fresh, run-unique record id. */
uint64_t sl__ctx_fresh_id(sl_ctx_t *ctx);
/* After a handler call on a record: when the record went over the
 * stage's limits (an output too big or too deep, or the record itself too
 * deep to decode), puts the reason in err as a failure no retry can fix
 * and returns -EMSGSIZE, whatever the handler returned; otherwise rc. */
int sl__ctx_limit_rc(sl_ctx_t *ctx, int rc);

#endif
