/*
 * Committed source positions (`state_dir:`), so that a run stopped by
 * SIGTERM, SIGKILL or a crash resumes where the last one left off.
 *
 * A resumable source reports, after each pull, the position that follows
 * what it has emitted (sl_ctx_set_position). Every MARK_INTERVAL the source
 * worker registers that position here as a new epoch and sends a marker
 * down every link, in band behind the records. A stage forwards a marker
 * (or, at a sink, acknowledges it) only once every record it had received
 * before the marker has left it: handled and sent on, filtered,
 * dead-lettered, spilled, or finished after its retries (a record waiting
 * in the retry queue holds the marker back). Sinks make what they wrote
 * durable (the plugin's sync) before that. A marker is copied onto every
 * output, so it reaches the sinks once per path; when all copies of an
 * epoch are acknowledged, every record emitted before it is finished
 * everywhere, and its position is written to the state file (write to a
 * temporary file, fsync, rename). A later epoch implies the earlier ones,
 * so markers lost on the way delay a commit but never make a wrong one.
 *
 * State files: <state_dir>/<topology>.<stage>.<worker>.pos.
 */
#ifndef SL_CHECKPOINT_H
#define SL_CHECKPOINT_H

#include "topology.h"

#include <stddef.h>
#include <stdint.h>

/* How often a source worker starts an epoch (at most). */
#define SL_MARK_INTERVAL_MS 100
/* Epochs a source worker may have in flight; past that it waits to start
 * more (a stuck sink must not grow the table). */
#define SL_MARK_MAX_PENDING 64

typedef struct sl_ckpt sl_ckpt_t;

/* NULL when the topology has no state_dir (and no error). Creates the
 * directory if needed; on failure returns NULL with err set and *failed. */
sl_ckpt_t *sl__ckpt_new(const sl_topology_t *topo, int *failed, char *err,
                        size_t errlen);
void sl__ckpt_destroy(sl_ckpt_t **ck);

/* The position committed by an earlier run for this source worker, or
 * NULL. A damaged state file is reported (logged) and ignored. Owned by
 * the checkpointer, valid until destroy. */
const void *sl__ckpt_resume(sl_ckpt_t *ck, size_t stage, unsigned worker,
                            size_t *len);
/* Starts an epoch at pos: returns its number (> 0), or 0 when too many are
 * in flight (try later). Thread-safe. */
uint64_t sl__ckpt_begin(sl_ckpt_t *ck, size_t stage, unsigned worker,
                        const void *pos, size_t len);
/* One copy of the marker reached a sink and everything before it there is
 * finished. Commits when it was the last copy. Thread-safe. */
void sl__ckpt_ack(sl_ckpt_t *ck, size_t stage, unsigned worker,
                  uint64_t epoch);
/* At the clean end of a run (ledger balanced): everything the source
 * emitted is finished, so its last position is committed directly. */
int sl__ckpt_commit(sl_ckpt_t *ck, size_t stage, unsigned worker,
                    const void *pos, size_t len);
/* Positions written so far (for reports and tests). */
uint64_t sl__ckpt_commits(const sl_ckpt_t *ck);

#endif
